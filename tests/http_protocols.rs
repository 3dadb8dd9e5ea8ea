//! One router, five ways in: plain HTTP/1.1 and h2c, HTTPS with HTTP/1.1 and
//! HTTP/2 (ALPN), and HTTP/3 over QUIC. The same requests must get the same
//! statuses, headers and bodies on every one, from real clients: reqwest
//! (hyper), curl, and an HTTP/3 client on quinn + h3.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Exchange, H3Client, TestServer, exchange_of};
use streamforge::config::TlsMode;
use streamforge_actors::storage::{ObjectKey, Storage};

async fn tls_server() -> TestServer {
    let server = TestServer::start_with(|c| {
        c.tls.mode = TlsMode::SelfSigned;
        c.tls.listen = "127.0.0.1:0".parse().unwrap();
    })
    .await;
    let storage = Storage::local(&server.data.path().join("media")).unwrap();
    let playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n".repeat(20);
    let segment: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for (key, bytes) in [
        ("assets/a1/media/master.m3u8", playlist.into_bytes()),
        ("assets/a1/media/v1/seg-00001.m4s", segment),
    ] {
        storage
            .put(&ObjectKey::new(key).unwrap(), Bytes::from(bytes))
            .await
            .unwrap();
    }
    server
}

/// Method, path and request headers.
type Probe = (
    http::Method,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

/// The requests every protocol is checked with.
fn requests() -> Vec<Probe> {
    use http::Method;
    vec![
        (Method::GET, "/healthz", vec![]),
        (Method::GET, "/nope", vec![]),
        (Method::DELETE, "/healthz", vec![]),
        (Method::GET, "/vod/a1/master.m3u8", vec![]),
        (
            Method::GET,
            "/vod/a1/master.m3u8",
            vec![("accept-encoding", "gzip")],
        ),
        (Method::GET, "/vod/a1/v1/seg-00001.m4s", vec![]),
        (Method::HEAD, "/vod/a1/v1/seg-00001.m4s", vec![]),
        (
            Method::GET,
            "/vod/a1/v1/seg-00001.m4s",
            vec![("range", "bytes=1000-1999")],
        ),
        (
            Method::GET,
            "/vod/a1/v1/seg-00001.m4s",
            vec![("range", "bytes=999999-")],
        ),
        (Method::GET, "/vod/a1/v1/missing.m4s", vec![]),
        (
            Method::GET,
            "/vod/a1/master.m3u8",
            vec![("accept-encoding", "br")],
        ),
    ]
}

async fn via_reqwest(client: &reqwest::Client, base: &str) -> Vec<Exchange> {
    let mut out = Vec::new();
    for (method, path, headers) in requests() {
        let mut request = client.request(method, format!("{base}{path}"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap().to_vec();
        out.push(exchange_of(status, &headers, body));
    }
    out
}

async fn via_h3(server: &TestServer) -> (Vec<Exchange>, Vec<http::HeaderMap>) {
    let running = server.running.as_ref().unwrap();
    let mut client = H3Client::connect(
        running.https_addr().unwrap(),
        running.certificate().unwrap(),
    )
    .await;
    let mut out = Vec::new();
    let mut all_headers = Vec::new();
    for (method, path, headers) in requests() {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("https://localhost{path}"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let (parts, body) = client.request(request.body(()).unwrap()).await;
        out.push(exchange_of(parts.status.as_u16(), &parts.headers, body));
        all_headers.push(parts.headers);
    }
    client.close().await;
    (out, all_headers)
}

#[tokio::test]
async fn every_protocol_gives_the_same_answers() {
    let server = tls_server().await;
    let running = server.running.as_ref().unwrap();
    let https = format!("https://localhost:{}", running.https_addr().unwrap().port());
    let pem = std::fs::read(running.certificate().unwrap()).unwrap();
    let trusting = || {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .resolve("localhost", running.https_addr().unwrap())
    };

    let plain_h1 = reqwest::Client::builder().http1_only().build().unwrap();
    let plain_h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let tls_h1 = trusting().http1_only().build().unwrap();
    let tls_h2 = trusting().build().unwrap();

    let reference = via_reqwest(&plain_h1, &server.url("")).await;
    assert_eq!(reference[0].status, 200);
    assert_eq!(reference[7].status, 206);
    assert_eq!(reference[8].status, 416);
    assert!(
        reference[4]
            .headers
            .contains(&("content-encoding".into(), "gzip".into()))
    );
    assert!(
        reference[10]
            .headers
            .contains(&("content-encoding".into(), "br".into()))
    );

    assert_eq!(
        via_reqwest(&plain_h2, &server.url("")).await,
        reference,
        "h2c"
    );
    assert_eq!(
        via_reqwest(&tls_h1, &https).await,
        reference,
        "HTTPS HTTP/1.1"
    );
    assert_eq!(
        via_reqwest(&tls_h2, &https).await,
        reference,
        "HTTPS HTTP/2"
    );
    let (h3, h3_headers) = via_h3(&server).await;
    for (i, (got, want)) in h3.iter().zip(&reference).enumerate() {
        assert_eq!(got, want, "HTTP/3, request {i}: {:?}", requests()[i]);
    }
    assert!(h3_headers.iter().all(|h| h.contains_key("x-request-id")));

    // HTTPS answers advertise HTTP/3 on the same port.
    let advertised = tls_h2.get(format!("{https}/healthz")).send().await.unwrap();
    assert_eq!(advertised.version(), reqwest::Version::HTTP_2);
    assert_eq!(
        advertised.headers()["alt-svc"],
        format!("h3=\":{}\"; ma=86400", running.https_addr().unwrap().port())
    );
    server.stop().await;
}

#[tokio::test]
async fn curl_speaks_http1_and_http2_over_tls() {
    let server = tls_server().await;
    let running = server.running.as_ref().unwrap();
    let port = running.https_addr().unwrap().port();
    let certificate = running.certificate().unwrap().to_owned();
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        // The server runs on this test's runtime: the child must not block it.
        let output = tokio::process::Command::new("curl")
            .args([
                "-sS",
                flag,
                "-o",
                "-",
                "-w",
                "\n%{http_version} %{http_code}",
            ])
            .arg("--cacert")
            .arg(&certificate)
            .args(["-r", "10-19"])
            .arg(format!("https://localhost:{port}/vod/a1/v1/seg-00001.m4s"))
            .output()
            .await
            .expect("curl is installed (scripts/setup --test)");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let (body, trailer) = output
            .stdout
            .split_at(output.stdout.len() - version.len() - 5);
        let expected: Vec<u8> = (10..20u8).collect();
        assert_eq!(&body[..10], &expected[..], "curl {flag}");
        assert_eq!(
            String::from_utf8_lossy(trailer).trim(),
            format!("{version} 206")
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn garbage_on_the_quic_port_leaves_http3_working() {
    let server = tls_server().await;
    let running = server.running.as_ref().unwrap();
    let addr = running.https_addr().unwrap();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for size in [1, 20, 1200, 1500, 65_000] {
        let datagram: Vec<u8> = (0..size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        socket.send_to(&datagram, addr).await.ok();
    }
    // A long-header Initial with a nonsense version and connection ids.
    let mut initial = vec![0xc0, 0xde, 0xad, 0xbe, 0xef, 8];
    initial.extend_from_slice(&[0xaa; 8]);
    initial.push(8);
    initial.extend_from_slice(&[0xbb; 8]);
    initial.resize(1200, 0);
    socket.send_to(&initial, addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut client = H3Client::connect(addr, running.certificate().unwrap()).await;
    let request = http::Request::get("https://localhost/healthz")
        .body(())
        .unwrap();
    let (parts, body) = client.request(request).await;
    assert_eq!(parts.status, 200);
    assert_eq!(body, br#"{"status":"ok"}"#);
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn aioquic_reads_the_same_bytes_over_http3() {
    use sha2_free::sha256_hex;
    let server = tls_server().await;
    let lines = aioquic_get(
        &server,
        &[],
        &[
            "/healthz",
            "/vod/a1/v1/seg-00001.m4s",
            "/vod/a1/missing.m4s",
        ],
    )
    .await;
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["status"], 200);
    let segment: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(lines[1]["status"], 200);
    assert_eq!(lines[1]["body_len"], segment.len());
    assert_eq!(lines[1]["body_sha256"], sha256_hex(&segment));
    assert_eq!(lines[1]["headers"]["content-type"], "video/iso.segment");
    assert_eq!(lines[2]["status"], 404);
    assert_eq!(lines[2]["headers"]["content-type"], "application/json");
    server.stop().await;
}

#[tokio::test]
async fn aioquic_gets_the_same_bytes_on_200_concurrent_streams_of_one_connection() {
    use sha2_free::sha256_hex;
    let server = tls_server().await;
    let storage = Storage::local(&server.data.path().join("media")).unwrap();
    // Ten different segments, so that a body sent on the wrong stream or
    // interleaved with another shows in its digest.
    let mut digests = Vec::new();
    for n in 0..10u32 {
        let segment: Vec<u8> = (0..131_072u32).map(|i| (i * (n + 3) % 253) as u8).collect();
        digests.push(sha256_hex(&segment));
        storage
            .put(
                &ObjectKey::new(format!("assets/load/media/v1/seg-{n}.m4s")).unwrap(),
                Bytes::from(segment),
            )
            .await
            .unwrap();
    }
    let paths: Vec<String> = (0..200)
        .map(|i| format!("/vod/load/v1/seg-{}.m4s", i % 10))
        .collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let lines = aioquic_get(&server, &["--concurrent"], &paths).await;
    assert_eq!(lines.len(), 200);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["body_len"], 131_072, "{line}");
        assert_eq!(line["body_sha256"], digests[i % 10].as_str(), "{line}");
    }
    server.stop().await;
}

/// GETs `paths` over HTTP/3 with aioquic (`tests/peers/h3_get.py`, with
/// `options`): one JSON line per request, in request order.
async fn aioquic_get(
    server: &TestServer,
    options: &[&str],
    paths: &[&str],
) -> Vec<serde_json::Value> {
    let running = server.running.as_ref().unwrap();
    let port = running.https_addr().unwrap().port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/h3_get.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg("--cafile")
        .arg(running.certificate().unwrap())
        .args(options)
        .args(["localhost", &port.to_string()])
        .args(paths)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "aioquic client failed (scripts/setup --test installs aioquic): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// SHA-256 through the system's `sha256sum`, to compare with the peer's digest
/// without another dependency.
mod sha2_free {
    use std::io::Write;
    use std::process::{Command, Stdio};

    pub fn sha256_hex(data: &[u8]) -> String {
        let mut child = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        let output = child.wait_with_output().unwrap();
        String::from_utf8(output.stdout).unwrap()[..64].to_owned()
    }
}
