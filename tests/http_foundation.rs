//! The HTTP front of a real server on loopback: health, readiness, metrics,
//! error bodies, limits, and bad input that must not hurt the server.

mod common;

use std::time::Duration;

use common::{TestServer, client, error_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn health_readiness_and_server_info() {
    let server = TestServer::start().await;
    let http = client();

    let health = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );

    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );

    let info: serde_json::Value = http
        .get(server.url("/api/server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let branches: Vec<&str> = info["actors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["branch"].as_str().unwrap())
        .collect();
    assert_eq!(branches, ["uploads", "transcodes", "live", "viewers"]);
    assert!(info["storage"].as_str().unwrap().starts_with("local:"));
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let server = TestServer::start().await;
    let http = client();
    for _ in 0..3 {
        http.get(server.url("/healthz")).send().await.unwrap();
    }
    http.get(server.url("/no/such/thing")).send().await.unwrap();

    let response = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    for line in [
        r#"streamforge_http_requests_total{method="GET",route="/healthz",status="200"} 3"#,
        r#"streamforge_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"streamforge_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 3"#,
        r#"streamforge_connections_open{protocol="tcp"} 1"#,
        r#"streamforge_actors{branch="uploads"} 0"#,
        r#"streamforge_actors{branch="viewers"} 0"#,
        "streamforge_child_processes 0",
        "streamforge_live_recording_samples_lost_total 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(text.trim_end().ends_with("# EOF"));
    server.stop().await;
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let server = TestServer::start().await;
    let http = client();

    let missing = http
        .get(server.url("/nothing/here.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/json");
    let (code, message) = error_of(missing).await;
    assert_eq!(code, "not_found");
    assert!(message.contains("/nothing/here.m3u8"), "{message}");

    let wrong_method = http.delete(server.url("/healthz")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert!(
        wrong_method.headers()["allow"]
            .to_str()
            .unwrap()
            .contains("GET")
    );
    assert_eq!(error_of(wrong_method).await.0, "method_not_allowed");

    // Raw requests: HTTP client libraries normalise these paths away.
    for path in [
        "/vod/../secret",
        "/vod/%2e%2e/secret",
        "/vod/..%2Fsecret",
        "/files/a%5c..%5cb",
        "/vod//x",
    ] {
        let response = raw_exchange(
            server.addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 400"), "{path}: {response}");
        assert!(
            response.contains(r#"{"error":{"code":"bad_path","#),
            "{path}: {response}"
        );
    }
    server.stop().await;
}

async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the server closes a broken connection")
        .ok();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn malformed_requests_fail_alone() {
    let server = TestServer::start_with(|c| c.http.max_header_bytes = 8192).await;

    let garbage = raw_exchange(server.addr, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage:?}");

    let bad_line = raw_exchange(server.addr, b"GET /healthz HTTP/9.9\r\n\r\n").await;
    assert!(bad_line.starts_with("HTTP/1.1 "), "{bad_line:?}");
    assert!(!bad_line.starts_with("HTTP/1.1 200"), "{bad_line:?}");

    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let too_large = raw_exchange(server.addr, huge.as_bytes()).await;
    assert!(too_large.starts_with("HTTP/1.1 431"), "{too_large:?}");

    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let too_many = raw_exchange(
        server.addr,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert!(too_many.starts_with("HTTP/1.1 431"), "{too_many:?}");

    // The server is unaffected.
    let health = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn slow_and_idle_clients_are_disconnected() {
    let server = TestServer::start_with(|c| {
        c.http.header_timeout = Duration::from_millis(300);
        c.http.idle_timeout = Duration::from_secs(1);
    })
    .await;

    // Slowloris: a request head that never completes.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "a slow request head must be cut off");

    // A client that connects and sends nothing at all.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "an idle connection must be closed");

    let health = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn http2_with_prior_knowledge_serves_the_same_routes() {
    let server = TestServer::start().await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let missing = h2.get(server.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(error_of(missing).await.0, "not_found");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_the_listener_and_idle_connections() {
    let server = TestServer::start().await;
    let addr = server.addr;
    // A keep-alive connection that has finished one request.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    server.stop().await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "idle keep-alive connections are closed at shutdown"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
