//! Helpers shared by the integration tests: a server on 127.0.0.1:0 with a
//! throw-away data directory.

#![allow(dead_code)]

pub mod netns;

use std::net::SocketAddr;
use std::time::Duration;

use streamforge::config::Config;
use streamforge::server::{self, Running};

pub struct TestServer {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub data: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_in(tempfile::tempdir().expect("temp dir"), adjust).await
    }

    /// A server on an existing data directory (a restart).
    pub async fn start_in(data: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config {
            data_dir: data.path().to_owned(),
            ..Config::default()
        };
        config.http.listen = "127.0.0.1:0".parse().unwrap();
        config.live.rtmp_listen = "127.0.0.1:0".parse().unwrap();
        config.live.rtsp_listen = "127.0.0.1:0".parse().unwrap();
        config.live.rtsp_udp_ports = [0, 0];
        config.live.srt_listen = "127.0.0.1:0".parse().unwrap();
        config.live.webrtc_listen = "127.0.0.1:0".parse().unwrap();
        config.http.shutdown_grace = Duration::from_secs(2);
        adjust(&mut config);
        // `RUST_LOG=…` shows the server's log in a test's output.
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        let running = server::start(config).await.expect("server starts");
        TestServer {
            addr: running.http_addr(),
            running: Some(running),
            data,
        }
    }

    /// `rtmp://127.0.0.1:PORT`, the server's RTMP address.
    pub fn rtmp_url(&self) -> String {
        let addr = self
            .running
            .as_ref()
            .and_then(Running::rtmp_addr)
            .expect("RTMP is on");
        format!("rtmp://{addr}")
    }

    /// `rtsp://127.0.0.1:PORT`, the server's RTSP address.
    pub fn srt_url(&self) -> String {
        let addr = self
            .running
            .as_ref()
            .and_then(Running::srt_addr)
            .expect("SRT is on");
        format!("srt://{addr}")
    }

    pub fn rtsp_url(&self) -> String {
        let addr = self
            .running
            .as_ref()
            .and_then(Running::rtsp_addr)
            .expect("RTSP is on");
        format!("rtsp://{addr}")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    /// Stops the server and hands back its data directory.
    pub async fn stop_keeping_data(mut self) -> tempfile::TempDir {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        self.data
    }
}

/// `bytes` gzip-decoded (reqwest here has no decoder: tests see the wire).
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The `{"error": {"code", "message"}}` body of an error response.
pub async fn error_of(response: reqwest::Response) -> (String, String) {
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned();
    let message = body["error"]["message"]
        .as_str()
        .expect("error.message")
        .to_owned();
    (code, message)
}

/// A response as every protocol must agree on it.
#[derive(Clone, PartialEq, Eq)]
pub struct Exchange {
    pub status: u16,
    /// The headers that must match across protocols, lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let preview = String::from_utf8_lossy(&self.body[..self.body.len().min(120)]);
        f.debug_struct("Exchange")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("body_start", &preview)
            .finish()
    }
}

/// Headers whose values must be identical whatever the protocol.
pub const COMPARED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-range",
    "cache-control",
    "etag",
    "last-modified",
    "accept-ranges",
    "allow",
    "content-encoding",
];

/// The response as compared across protocols. A compressed body is
/// compared decoded: how a compressor splits its output depends on the
/// transport's flushes, the content must not.
pub fn exchange_of(status: u16, headers: &http::HeaderMap, body: Vec<u8>) -> Exchange {
    use std::io::Read;
    let encoding = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok());
    let mut decoded = Vec::new();
    let body = match encoding {
        Some("gzip") => {
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut decoded)
                .expect("a valid gzip body");
            decoded
        }
        Some("br") => {
            brotli_decompressor::Decompressor::new(&body[..], 4096)
                .read_to_end(&mut decoded)
                .expect("a valid brotli body");
            decoded
        }
        _ => body,
    };
    let headers = COMPARED_HEADERS
        .iter()
        .filter_map(|name| {
            headers.get(*name).map(|v| {
                (
                    name.to_string(),
                    v.to_str().unwrap_or("<binary>").to_owned(),
                )
            })
        })
        .collect();
    Exchange {
        status,
        headers,
        body,
    }
}

/// A minimal HTTP/3 client: quinn + h3, trusting exactly `certificate`.
pub struct H3Client {
    endpoint: quinn::Endpoint,
    send: h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes>,
    driver: tokio::task::JoinHandle<()>,
}

impl H3Client {
    pub async fn connect(addr: SocketAddr, certificate: &std::path::Path) -> H3Client {
        use rustls_pki_types::pem::PemObject;
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(certificate).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(crypto)));
        let connection = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(connection))
            .await
            .unwrap();
        let driver = tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        H3Client {
            endpoint,
            send,
            driver,
        }
    }

    /// A handle for sending requests concurrently on this connection.
    pub fn sender(&self) -> h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes> {
        self.send.clone()
    }

    pub async fn request(
        &mut self,
        request: http::Request<()>,
    ) -> (http::response::Parts, Vec<u8>) {
        h3_request(&mut self.send, request).await
    }

    pub async fn close(self) {
        drop(self.send);
        self.endpoint.close(0u32.into(), b"done");
        self.driver.abort();
        self.endpoint.wait_idle().await;
    }
}

/// One request on an HTTP/3 connection: its response head and whole body.
pub async fn h3_request(
    send: &mut h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes>,
    request: http::Request<()>,
) -> (http::response::Parts, Vec<u8>) {
    use bytes::Buf;
    let mut stream = send.send_request(request).await.unwrap();
    stream.finish().await.unwrap();
    let response = stream.recv_response().await.unwrap();
    let mut body = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.unwrap() {
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            body.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    let (parts, ()) = response.into_parts();
    (parts, body)
}

/// An MP4 made by ffmpeg with `args` (whitespace-separated input and
/// encoding options), read into memory.
pub async fn clip(args: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    let status = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args.split_whitespace())
        .arg(&path)
        .status()
        .await
        .expect("ffmpeg is installed (scripts/setup)");
    assert!(status.success());
    std::fs::read(&path).unwrap()
}

/// Uploads `body` in one `POST /api/uploads`; returns the asset id.
pub async fn upload(server: &TestServer, name: &str, body: Vec<u8>) -> String {
    let created = reqwest::Client::new()
        .post(server.url(&format!("/api/uploads?filename={name}")))
        .header("content-type", "video/mp4")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{name}");
    let answer: serde_json::Value = created.json().await.unwrap();
    answer["asset_id"].as_str().unwrap().to_owned()
}

/// Polls `GET {base}/api/assets/{asset}` until its status is one of
/// `statuses` (two minutes at most); returns the asset.
/// Creates a tus upload of `length` bytes on `server`; its location
/// (`/files/{id}`).
pub async fn tus_create(server: &TestServer, length: usize) -> String {
    let created = client()
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    created.headers()["location"].to_str().unwrap().to_owned()
}

/// The stored original of `asset`, downloaded from `server`.
pub async fn original_of(server: &TestServer, asset: &str) -> bytes::Bytes {
    let response = client()
        .get(server.url(&format!("/api/assets/{asset}/original")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap()
}

pub async fn wait_for_asset(base: &str, asset: &str, statuses: &[&str]) -> serde_json::Value {
    let client = reqwest::Client::new();
    for _ in 0..1200 {
        let view: serde_json::Value = client
            .get(format!("{base}/api/assets/{asset}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if statuses.contains(&view["status"].as_str().unwrap_or("")) {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("asset {asset} never reached {statuses:?}");
}

/// ffprobe's streams and format of `url` (a file or a URL), as JSON;
/// panics with ffprobe's message when it cannot read it.
pub async fn ffprobe(url: &str) -> serde_json::Value {
    let output = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
            url,
        ])
        .output()
        .await
        .expect("ffprobe is installed (scripts/setup)");
    assert!(
        output.status.success(),
        "ffprobe {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Polls `check` every 100 ms until it holds; panics naming `what` after
/// 30 s.
pub async fn wait_until(what: &str, check: impl AsyncFnMut() -> bool) {
    wait_until_within(what, Duration::from_secs(30), check).await;
}

/// [`wait_until`] with another time limit.
pub async fn wait_until_within(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Reads SSE events (name, JSON data) from a streaming response.
pub struct SseReader {
    pub body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    pub buffer: String,
}

impl SseReader {
    pub async fn next(&mut self) -> (String, serde_json::Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return (
                    name,
                    serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data)),
                );
            }
            let chunk = tokio::time::timeout(
                Duration::from_secs(60),
                futures::StreamExt::next(&mut self.body),
            )
            .await
            .expect("an event within a minute")
            .expect("the stream stays open")
            .unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next status event of `type`, skipping others.
    pub async fn until(&mut self, kind: &str) -> serde_json::Value {
        loop {
            let (name, data) = self.next().await;
            if name == "status" && data["type"] == kind {
                return data;
            }
        }
    }
}

/// Starts the real binary on `data` (HTTP, RTMP and RTSP on loopback
/// port 0, JSON logs) with `env` set; returns it and its base URL once it
/// listens. Dropping the child kills it.
pub async fn spawn_server(
    data: &std::path::Path,
    env: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    let (child, listening) = spawn_node(data, env).await;
    let http = listening["http"].as_str().unwrap_or_default();
    (child, format!("http://{http}"))
}

/// `streamforge serve` with every TCP and UDP listener on 127.0.0.1, port 0
/// (RTSP's RTP ports apart: `--rtsp-udp-ports` or its variable).
pub const SERVE_ON_LOOPBACK: [&str; 11] = [
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--rtmp-listen",
    "127.0.0.1:0",
    "--rtsp-listen",
    "127.0.0.1:0",
    "--srt-listen",
    "127.0.0.1:0",
    "--webrtc-listen",
    "127.0.0.1:0",
];

/// The body of `GET path` on `server`, as text.
pub async fn get_text(server: &TestServer, path: &str) -> String {
    client()
        .get(server.url(path))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// [`spawn_server`], answering its `streamforge listening` log event (its
/// `http`, `rtmp`, `rtsp` addresses).
pub async fn spawn_node(
    data: &std::path::Path,
    env: &[(&str, &str)],
) -> (tokio::process::Child, serde_json::Value) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_streamforge"));
    for (name, _) in std::env::vars() {
        if name.starts_with("STREAMFORGE_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command
        .args(SERVE_ON_LOOPBACK)
        .env("STREAMFORGE_LIVE_RTSP_UDP_PORTS", "[0, 0]")
        .args(["--log-format", "json"])
        .arg("--data-dir")
        .arg(data)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let listening = await_listening(&mut child, None).await;
    (child, listening)
}

/// Reads a started server's JSON log (its piped stderr) up to its
/// `streamforge listening` event and answers that; the rest of the log is
/// drained (so the server never blocks on a full pipe), its events kept in
/// `sink` when given.
pub async fn await_listening(
    child: &mut tokio::process::Child,
    sink: Option<std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>>,
) -> serde_json::Value {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the server starts")
            .unwrap()
            .expect("the server logs its address");
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if event["message"] == "streamforge listening" {
            break event;
        }
    };
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let (Some(sink), Ok(event)) = (&sink, serde_json::from_str(&line)) {
                sink.lock().unwrap().push(event);
            }
        }
    });
    listening
}

/// The players `tests/peers/vod_players.mjs` drives.
pub const VOD_PLAYERS: [&str; 3] = ["dashjs", "shaka-dash", "hlsjs"];

/// Plays `asset` from `base` for `seconds` in dash.js, Shaka Player and
/// hls.js in headless Chromium; checks that each played without an error
/// or a failed request and returns their report (see the script).
pub async fn vod_players(base: &str, asset: &str, seconds: u32) -> serde_json::Value {
    let output = tokio::process::Command::new("node")
        .arg("tests/peers/vod_players.mjs")
        .args([base, asset, &seconds.to_string()])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node is installed (scripts/setup --test)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "vod_players.mjs: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    for player in VOD_PLAYERS {
        let r = &report[player];
        eprintln!("{player}: {r}");
        assert_eq!(r["errors"], serde_json::json!([]), "{player}: errors");
        assert_eq!(
            r["failed"],
            serde_json::json!([]),
            "{player}: failed requests"
        );
        assert!(
            r["played"].as_f64().unwrap() >= f64::from(seconds) || r["ended"] == true,
            "{player}: {r}"
        );
    }
    report
}

/// `bytes` as a request body that trickles in: `chunk` bytes every
/// `every`, the first after one `every`.
pub fn trickle(bytes: &[u8], chunk: usize, every: Duration) -> reqwest::Body {
    let chunks: Vec<bytes::Bytes> = bytes
        .chunks(chunk)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let stream = futures::StreamExt::then(futures::stream::iter(chunks), move |chunk| async move {
        tokio::time::sleep(every).await;
        Ok::<_, std::io::Error>(chunk)
    });
    reqwest::Body::wrap_stream(stream)
}

/// Starts ffmpeg pushing `seconds` of 320x240 25 fps H.264 (a keyframe
/// every 2 s, no B-frames) and a 48 kHz sine in AAC, in real time, with
/// the output options `output` (format and URL).
pub fn encode(seconds: u32, output: &[&str]) -> tokio::process::Child {
    encode_video(seconds, &["-tune", "zerolatency"], output)
}

/// [`encode`] with more libx264 options (`-tune zerolatency` is off).
pub fn encode_video(seconds: u32, x264: &[&str], output: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "veryfast"])
        .args(x264)
        .args(["-g", "50", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .args(output)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is installed (scripts/setup)")
}

/// The settings of live node `id` on the shared `database`, open to any
/// publisher (for [`TestServer::start_with`]).
pub fn live_node(
    database: &str,
    id: &'static str,
) -> impl FnOnce(&mut streamforge::config::Config) + Send + 'static {
    let database = database.to_owned();
    move |c: &mut streamforge::config::Config| {
        c.database = database;
        c.node.id = id.to_owned();
        c.live.open_publish = true;
    }
}

/// ffmpeg pushing RTMP to `url`.
pub fn push(url: &str, seconds: u32) -> tokio::process::Child {
    encode(seconds, &["-f", "flv", url])
}

/// The parts a media playlist lists, in order: (msn, part).
pub fn listed_parts(playlist: &str) -> Vec<(u64, u32)> {
    playlist
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .filter_map(|l| {
            let uri = l.split("URI=\"").nth(1)?.split('"').next()?;
            let (msn, part) = uri.strip_suffix(".m4s")?.split_once('.')?;
            Some((msn.parse().ok()?, part.parse().ok()?))
        })
        .collect()
}

/// A Python test peer (`python3 ARGS…`) that prints `port N` once it
/// listens on 127.0.0.1; killed when the child is dropped.
pub async fn python_peer(args: &[&std::ffi::OsStr]) -> (tokio::process::Child, u16) {
    use tokio::io::AsyncBufReadExt;
    let mut process = tokio::process::Command::new("python3")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (scripts/setup --test)");
    let mut line = String::new();
    tokio::io::BufReader::new(process.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .await
        .expect("the peer says its port");
    let port = line
        .trim()
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the peer {args:?} did not start: {line:?}"));
    (process, port)
}

/// Creates (or rotates) the publish key of `stream`; the key.
pub async fn create_stream_key(server: &TestServer, stream: &str) -> String {
    let created = create_stream_key_answer(server, stream).await;
    created["key"].as_str().unwrap().to_owned()
}

/// `POST /api/live/keys` for `stream`: the whole answer (the key and the
/// publish URLs of every protocol).
pub async fn create_stream_key_answer(server: &TestServer, stream: &str) -> serde_json::Value {
    reqwest::Client::new()
        .post(server.url("/api/live/keys"))
        .json(&serde_json::json!({ "stream": stream }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET /api/live/{stream}`.
pub async fn stream_status(server: &TestServer, stream: &str) -> serde_json::Value {
    reqwest::get(server.url(&format!("/api/live/{stream}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The PSNR (dB, all planes) of `picture` against the picture ffmpeg
/// makes from `clip` with `filter`.
pub async fn psnr_against(picture: &[u8], clip: &[u8], filter: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (ours, source) = (dir.path().join("ours.webp"), dir.path().join("clip.mp4"));
    std::fs::write(&ours, picture).unwrap();
    std::fs::write(&source, clip).unwrap();
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-i"])
        .arg(&ours)
        .arg("-i")
        .arg(&source)
        .arg("-filter_complex")
        .arg(format!(
            "[1:v]{filter},format=yuv420p[ref];[0:v]format=yuv420p[ours];[ours][ref]psnr"
        ))
        .args(["-frames:v", "1", "-f", "null", "-"])
        .output()
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    log.split("average:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no PSNR in {log}"))
}
