//! Resumable uploads with real clients — tus-js-client (Node) and tuspy —
//! interrupted and resumed, in parallel parts, across a server restart; the
//! stored original must be byte-identical. Protocol violations get their
//! tus status and leave accepted bytes intact.

mod common;
#[path = "support/postgres.rs"]
mod postgres;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestServer, error_of};
use reqwest::header;

const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers");

fn random_file(dir: &Path, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ len as u64;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

async fn peer(program: &str, args: &[&str]) -> serde_json::Value {
    let output = tokio::process::Command::new(program)
        .args(args)
        .current_dir(PEERS)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("{program} runs (scripts/setup --test installs the peers): {e}")
        });
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{program} printed {stdout:?}: {e}"))
}

/// The asset a finished tus upload became, and its downloaded original.
async fn original_of(server: &TestServer, upload_url: &str) -> (String, Vec<u8>) {
    let http = reqwest::Client::new();
    let url = if upload_url.starts_with("http") {
        upload_url.to_owned()
    } else {
        server.url(upload_url)
    };
    let head = http
        .head(&url)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["upload-offset"],
        head.headers()["upload-length"]
    );
    let asset = head.headers()["x-asset-id"].to_str().unwrap().to_owned();
    let download = http
        .get(server.url(&format!("/api/assets/{asset}/original")))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    let disposition = download.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename="),
        "{disposition}"
    );
    (asset, download.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn tus_js_client_resumes_an_interrupted_upload() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (file, bytes) = random_file(dir.path(), "clip.mp4", 3 * 1024 * 1024 + 123);
    let endpoint = server.url("/files/");
    let file = file.to_str().unwrap();

    let first = peer(
        "node",
        &[
            "tus_js_upload.mjs",
            &endpoint,
            file,
            "--stop-after",
            "1500000",
        ],
    )
    .await;
    assert_eq!(first["done"], false);
    let url = first["url"].as_str().unwrap().to_owned();
    let resumed = peer(
        "node",
        &["tus_js_upload.mjs", &endpoint, file, "--resume-url", &url],
    )
    .await;
    assert_eq!(resumed["done"], true);

    let (asset, original) = original_of(&server, &url).await;
    assert!(
        original == bytes,
        "the stored original differs from the source"
    );
    let listed: serde_json::Value = reqwest::get(server.url("/api/assets?q=clip"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["assets"][0]["id"], asset.as_str());
    assert_eq!(listed["assets"][0]["filename"], "clip.mp4");
    assert_eq!(listed["assets"][0]["size"], bytes.len());
    // A status filter names one of the statuses the API answers with.
    let unknown = reqwest::get(server.url("/api/assets?status=done"))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    let (_, message) = common::error_of(unknown).await;
    assert!(
        message.contains("uploaded, processing, recording, ready, failed"),
        "{message}"
    );
    server.stop().await;
}

#[tokio::test]
async fn tus_js_client_parallel_parts_are_concatenated() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (file, bytes) = random_file(dir.path(), "parts.mp4", 2 * 1024 * 1024 + 7);
    let done = peer(
        "node",
        &[
            "tus_js_upload.mjs",
            &server.url("/files/"),
            file.to_str().unwrap(),
            "--parallel",
            "3",
        ],
    )
    .await;
    assert_eq!(done["done"], true);
    let (_, original) = original_of(&server, done["url"].as_str().unwrap()).await;
    assert!(
        original == bytes,
        "the concatenated original differs from the source"
    );
    server.stop().await;
}

#[tokio::test]
async fn tuspy_resumes_with_checksums_across_a_restart() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (file, bytes) = random_file(dir.path(), "restart.mov", 1024 * 1024 + 99);
    let file = file.to_str().unwrap();
    let endpoint = server.url("/files/");
    let first = peer(
        "python3",
        &[
            "tuspy_upload.py",
            &endpoint,
            file,
            "--stop-after-chunks",
            "2",
            "--chunk-size",
            "262144",
        ],
    )
    .await;
    assert_eq!(first["done"], false);
    assert_eq!(first["offset"], 2 * 262_144);
    let path = reqwest::Url::parse(first["url"].as_str().unwrap())
        .unwrap()
        .path()
        .to_owned();

    // A restart: everything acknowledged is still there.
    let server = restart_and_resume(server, &path, file, 2 * 262_144, |_| {}).await;
    let (_, original) = original_of(&server, &path).await;
    assert!(original == bytes, "the original differs after a restart");
    server.stop().await;
}

/// Restarts `server` on its data directory (configured by `adjust`),
/// checks that tus HEAD reports the `durable` offset of upload `path`, and
/// has tuspy finish uploading `file` from there.
async fn restart_and_resume(
    server: TestServer,
    path: &str,
    file: &str,
    durable: u64,
    adjust: impl FnOnce(&mut streamforge::config::Config),
) -> TestServer {
    let data = server.stop_keeping_data().await;
    let server = TestServer::start_in(data, adjust).await;
    let head = reqwest::Client::new()
        .head(server.url(path))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["upload-offset"], durable.to_string());
    let resumed = peer(
        "python3",
        &[
            "tuspy_upload.py",
            &server.url("/files/"),
            file,
            "--resume-url",
            &server.url(path),
        ],
    )
    .await;
    assert_eq!(resumed["done"], true);
    server
}

async fn create(http: &reqwest::Client, server: &TestServer, length: u64) -> String {
    let created = http
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .header("upload-metadata", "filename Y2xpcC5tcDQ=")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // An unfinished upload expires; an empty one is finished at creation.
    assert_eq!(created.headers().contains_key("upload-expires"), length > 0);
    created.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

fn patch(
    http: &reqwest::Client,
    url: String,
    offset: u64,
    body: &'static [u8],
) -> reqwest::RequestBuilder {
    http.patch(url)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", offset.to_string())
        .header(header::CONTENT_TYPE, "application/offset+octet-stream")
        .body(body)
}

async fn offset_of(http: &reqwest::Client, url: String) -> String {
    let head = http
        .head(url)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    head.headers()["upload-offset"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn protocol_violations_get_their_status_and_lose_nothing() {
    let server = TestServer::start_with(|c| c.uploads.max_size = 1024).await;
    let http = reqwest::Client::new();

    let options = http
        .request(reqwest::Method::OPTIONS, server.url("/files/"))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), 204);
    assert_eq!(options.headers()["tus-version"], "1.0.0");
    assert_eq!(options.headers()["tus-max-size"], "1024");
    let extensions = options.headers()["tus-extension"]
        .to_str()
        .unwrap()
        .to_owned();
    for extension in [
        "creation",
        "termination",
        "checksum",
        "expiration",
        "concatenation",
    ] {
        assert!(extensions.contains(extension), "{extensions}");
    }

    let location = create(&http, &server, 10).await;
    let url = server.url(&location);
    let accepted = patch(&http, url.clone(), 0, b"hello").send().await.unwrap();
    assert_eq!(accepted.status(), 204);
    assert_eq!(accepted.headers()["upload-offset"], "5");

    let wrong_offset = patch(&http, url.clone(), 3, b"xx").send().await.unwrap();
    assert_eq!(wrong_offset.status(), 409);
    assert_eq!(error_of(wrong_offset).await.0, "offset_mismatch");

    let wrong_type = http
        .patch(url.clone())
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "5")
        .header(header::CONTENT_TYPE, "text/plain")
        .body("world")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);

    let no_version = http.head(url.clone()).send().await.unwrap();
    assert_eq!(no_version.status(), 412);
    assert_eq!(no_version.headers()["tus-version"], "1.0.0");

    // sha1("world") is not sha1("WORLD").
    let bad_checksum = patch(&http, url.clone(), 5, b"WORLD")
        .header("upload-checksum", "sha1 fCEUM/AgcVl3Qeb/Wo6jR4mrv0M=")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_checksum.status(), 460);
    assert_eq!(
        offset_of(&http, url.clone()).await,
        "5",
        "a refused PATCH keeps nothing"
    );

    let too_long = patch(&http, url.clone(), 5, b"world, and more")
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), 413);
    assert_eq!(offset_of(&http, url.clone()).await, "5");

    let good_checksum = patch(&http, url.clone(), 5, b"world")
        .header("upload-checksum", "sha1 fCEUM/AgcVl3Qeb/Wo6jR4mrv0M=")
        .send()
        .await
        .unwrap();
    assert_eq!(good_checksum.status(), 204);
    assert_eq!(good_checksum.headers()["upload-offset"], "10");
    let (_, original) = original_of(&server, &location).await;
    assert_eq!(original, b"helloworld");

    let oversize = http
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "4096")
        .send()
        .await
        .unwrap();
    assert_eq!(oversize.status(), 413);

    let empty = create(&http, &server, 0).await;
    let (_, original) = original_of(&server, &empty).await;
    assert!(original.is_empty(), "a 0-byte upload is a 0-byte asset");

    let doomed = server.url(&create(&http, &server, 10).await);
    let deleted = http
        .delete(doomed.clone())
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = http
        .head(doomed)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);

    let unknown = http
        .head(server.url("/files/0123456789abcdef"))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn one_shot_post_and_ranged_download_of_the_original() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let created = http
        .post(server.url("/api/uploads?filename=take%201.mp4"))
        .header(header::CONTENT_TYPE, "video/mp4")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let answer: serde_json::Value = created.json().await.unwrap();
    assert_eq!(answer["size"], body.len());
    let asset = answer["asset_id"].as_str().unwrap();

    let ranged = http
        .get(server.url(&format!("/api/assets/{asset}/original")))
        .header(header::RANGE, "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.headers()[header::CONTENT_TYPE], "video/mp4");
    assert_eq!(
        ranged.headers()[header::CONTENT_DISPOSITION],
        "attachment; filename=\"take 1.mp4\"; filename*=UTF-8''take%201.mp4"
    );
    assert_eq!(ranged.bytes().await.unwrap(), &body[1000..2000]);

    let deleted = http
        .delete(server.url(&format!("/api/assets/{asset}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = http
        .get(server.url(&format!("/api/assets/{asset}/original")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    tokio::time::sleep(Duration::from_millis(10)).await;
    server.stop().await;
}

#[tokio::test]
async fn curl_posts_a_multipart_form() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Over the API body limit: uploads stream past it.
    let (file, bytes) = random_file(dir.path(), "form clip.mov", 3 * 1024 * 1024 + 1);
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "-F"])
        .arg(format!("file=@{};type=video/quicktime", file.display()))
        .arg(server.url("/api/uploads"))
        .output()
        .await
        .expect("curl is installed (scripts/setup --test)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    assert_eq!(answer["size"], bytes.len());
    let asset = answer["asset_id"].as_str().unwrap();
    let view: serde_json::Value = reqwest::get(server.url(&format!("/api/assets/{asset}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["filename"], "form clip.mov");
    assert_eq!(view["filetype"], "video/quicktime");
    let original = reqwest::get(server.url(&format!("/api/assets/{asset}/original")))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(original == bytes, "the multipart original differs");

    let no_file = reqwest::Client::new()
        .post(server.url("/api/uploads"))
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--x--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(no_file.status(), 400);
    assert_eq!(error_of(no_file).await.0, "bad_request");
    server.stop().await;
}

/// The server's state in PostgreSQL instead of SQLite: a tus upload
/// interrupted, the server restarted on the same database, the upload
/// resumed; the asset is processed, listed, searchable and plays.
#[tokio::test]
async fn state_in_postgresql_survives_a_restart() {
    let cluster = postgres::Postgres::start();
    let database = cluster.database("streamforge");
    let on_postgres = |c: &mut streamforge::config::Config| c.database = database.clone();
    let server = TestServer::start_with(on_postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let clip = common::clip(
        "-f lavfi -i testsrc2=size=160x120:rate=30 -t 2 -c:v libx264 -preset ultrafast -pix_fmt yuv420p",
    )
    .await;
    let file = dir.path().join("pg-restart.mp4");
    std::fs::write(&file, &clip).unwrap();
    let file = file.to_str().unwrap();
    let first = peer(
        "python3",
        &[
            "tuspy_upload.py",
            &server.url("/files/"),
            file,
            "--stop-after-chunks",
            "1",
            "--chunk-size",
            "8192",
        ],
    )
    .await;
    assert_eq!(first["done"], false);
    let path = reqwest::Url::parse(first["url"].as_str().unwrap())
        .unwrap()
        .path()
        .to_owned();

    let server = restart_and_resume(server, &path, file, 8192, on_postgres).await;
    let (asset, original) = original_of(&server, &path).await;
    assert!(original == clip, "the original differs after a restart");
    common::wait_for_asset(&server.url(""), &asset, &["ready"]).await;
    let listed: serde_json::Value = reqwest::get(server.url("/api/assets?q=PG-RESTART"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["assets"][0]["id"], asset.as_str());
    let probed = common::ffprobe(&server.url(&format!("/vod/{asset}/master.m3u8"))).await;
    assert_eq!(probed["streams"][0]["codec_type"], "video", "{probed}");
    server.stop().await;
}
