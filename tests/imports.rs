//! Imports from a URL against a real HTTP source (tests/peers/import_source.py):
//! a download that drops part-way is resumed with a range request and
//! processed while it arrives; private addresses are refused, directly,
//! through a DNS name and through a redirect.

mod common;

use std::time::Duration;

use common::{TestServer, client, error_of, wait_until};
use serde_json::{Value, json};

/// The Python source serving one file, stopped when dropped.
struct Source {
    _process: tokio::process::Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Source {
    async fn start(file: &[u8]) -> Source {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.mp4");
        std::fs::write(&path, file).unwrap();
        let (process, port) =
            common::python_peer(&["tests/peers/import_source.py".as_ref(), path.as_os_str()]).await;
        Source {
            _process: process,
            _dir: dir,
            port,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn requests(&self) -> Vec<Value> {
        client()
            .get(self.url("/requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

async fn import(server: &TestServer, url: &str) -> reqwest::Response {
    client()
        .post(server.url("/api/imports"))
        .json(&json!({ "url": url }))
        .send()
        .await
        .unwrap()
}

/// The import `id` once it stopped downloading; it must have completed.
async fn completed(server: &TestServer, id: &str) -> Value {
    let mut done = Value::Null;
    wait_until("the import to complete", async || {
        done = view(server, id).await;
        done["state"] != "downloading"
    })
    .await;
    assert_eq!(done["state"], "completed", "{done}");
    done
}

async fn view(server: &TestServer, id: &str) -> Value {
    client()
        .get(server.url(&format!("/api/imports/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_import_resumes_after_a_dropped_connection_and_plays_before_it_ends() {
    let clip = common::clip(
        "-f lavfi -i testsrc2=size=320x180:rate=25 -f lavfi -i sine=frequency=440 -t 6 \
         -c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 25 -c:a aac -movflags +faststart",
    )
    .await;
    let source = Source::start(&clip).await;
    let server =
        TestServer::start_with(|c| c.imports.trusted_hosts = vec!["127.0.0.1".into()]).await;
    // About five seconds of download, dropped a third of the way.
    let rate = clip.len() / 5;
    let drop_at = clip.len() / 3;
    let url = source.url(&format!("/clip.mp4?rate={rate}&drop_at={drop_at}"));
    let response = import(&server, &url).await;
    assert_eq!(response.status(), 202);
    let started: Value = response.json().await.unwrap();
    assert_eq!(started["state"], "downloading");
    assert_eq!(started["length"], clip.len() as u64);
    let id = started["id"].as_str().unwrap().to_owned();

    // The poster and a playable preview come before the last byte.
    let mut early = None;
    wait_until("the import's poster and preview", async || {
        let now = view(&server, &id).await;
        let Some(asset) = now["asset_id"].as_str() else {
            return false;
        };
        let asset: Value = client()
            .get(server.url(&format!("/api/assets/{asset}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if asset["poster"] == true && asset["preview"] == true {
            early = Some((now["offset"].as_u64().unwrap(), now["state"].clone()));
            return true;
        }
        false
    })
    .await;
    let (offset, state) = early.unwrap();
    assert_eq!(state, "downloading");
    assert!(offset < clip.len() as u64, "{offset}");

    let done = completed(&server, &id).await;
    let asset = done["asset_id"].as_str().unwrap().to_owned();
    let ready = common::wait_for_asset(&server.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["filename"], "clip.mp4");
    assert!(
        common::original_of(&server, &asset).await == clip,
        "the original differs"
    );
    // The drop was mended with a range request from where the bytes stopped.
    let ranges: Vec<Value> = source
        .requests()
        .await
        .into_iter()
        .filter_map(|r| r["range"].as_str().map(str::to_owned))
        .map(Value::from)
        .collect();
    assert!(!ranges.is_empty(), "no range request");
    let resumed_at: u64 = ranges[0]
        .as_str()
        .unwrap()
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(resumed_at > 0 && resumed_at <= drop_at as u64, "{ranges:?}");
    server.stop().await;
}

#[tokio::test]
async fn imports_refuse_private_addresses_unless_trusted() {
    let source = Source::start(&[7u8; 50_000]).await;
    let port = source.port;
    let guarded = TestServer::start().await;
    for (url, code) in [
        (source.url("/clip.mp4"), "address_not_allowed"),
        // A name that resolves to loopback.
        (
            format!("http://localhost:{port}/clip.mp4"),
            "address_not_allowed",
        ),
        (
            format!("http://[::1]:{port}/clip.mp4"),
            "address_not_allowed",
        ),
        (
            format!("http://0x7f.1:{port}/clip.mp4"),
            "address_not_allowed",
        ),
        ("file:///etc/passwd".to_owned(), "scheme_not_allowed"),
    ] {
        let refused = import(&guarded, &url).await;
        assert_eq!(refused.status(), 400, "{url}");
        let (got, message) = error_of(refused).await;
        assert_eq!(got, code, "{url}: {message}");
    }
    assert!(
        source.requests().await.is_empty(),
        "a refused import reached the source"
    );

    let trusting = TestServer::start_with(|c| {
        c.imports.trusted_hosts = vec!["127.0.0.1".into()];
        c.imports.max_size = 40_000;
    })
    .await;
    // Redirects out of the trusted host are checked like any URL: to a
    // private address, and to a name resolving to one.
    for target in [
        "http://127.0.0.2:9/x".to_owned(),
        format!("http://localhost:{port}/clip.mp4"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        let url = source.url(&format!("/redirect?to={target}"));
        let refused = import(&trusting, &url).await;
        assert_eq!(refused.status(), 400, "{target}");
        let (code, message) = error_of(refused).await;
        assert_eq!(code, "address_not_allowed", "{target}: {message}");
    }
    let missing = import(&trusting, &source.url("/missing")).await;
    assert_eq!(missing.status(), 502);
    assert_eq!(error_of(missing).await.0, "source_failed");
    let large = import(&trusting, &source.url("/clip.mp4")).await;
    assert_eq!(large.status(), 413);
    let unknown = client()
        .get(trusting.url("/api/imports/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    trusting.stop().await;
    guarded.stop().await;
}

#[tokio::test]
async fn a_cancelled_import_stops_and_keeps_nothing() {
    let source = Source::start(&[9u8; 400_000]).await;
    let server = TestServer::start_with(|c| c.imports.allow_private = true).await;
    let response = import(&server, &source.url("/clip.mp4?rate=20000")).await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_until("some bytes", async || {
        view(&server, &id).await["offset"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let http = client();
    let cancelled = http
        .delete(server.url(&format!("/api/imports/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 204);
    let after = view(&server, &id).await;
    assert_eq!(after["state"], "cancelled", "{after}");
    let upload = http
        .head(server.url(&format!("/files/{id}")))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 404, "the upload is gone");
    let again = http
        .delete(server.url(&format!("/api/imports/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(view(&server, &id).await["state"], "cancelled");
    server.stop().await;
}

/// A server stopped mid-import resumes the download when it starts again,
/// from the bytes it had.
#[tokio::test]
async fn an_import_goes_on_after_a_restart() {
    let file: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let source = Source::start(&file).await;
    let trust = |c: &mut streamforge::config::Config| c.imports.allow_private = true;
    let server = TestServer::start_with(trust).await;
    let response = import(&server, &source.url("/clip.mp4?rate=60000")).await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_until("a third of the bytes", async || {
        view(&server, &id).await["offset"].as_u64().unwrap_or(0) > 100_000
    })
    .await;
    let data = server.stop_keeping_data().await;
    let server = TestServer::start_in(data, trust).await;
    let done = completed(&server, &id).await;
    let asset = done["asset_id"].as_str().unwrap();
    assert!(common::original_of(&server, asset).await == file);
    let resumed = source
        .requests()
        .await
        .iter()
        .filter(|r| r["range"].is_string())
        .count();
    assert_eq!(resumed, 1, "one range request after the restart");
    server.stop().await;
}

/// A page rather than a file: yt-dlp (from PyPI, the real one) finds the
/// video on it and the import fetches that video itself; a page without
/// one, or any page when yt-dlp is off, is refused with the reason.
#[tokio::test]
async fn a_page_is_read_with_yt_dlp_and_its_video_imported() {
    let clip = common::clip(
        "-f lavfi -i testsrc2=size=160x120:rate=25 -t 2 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -movflags +faststart",
    )
    .await;
    let source = Source::start(&clip).await;
    let trust = |c: &mut streamforge::config::Config| {
        c.imports.trusted_hosts = vec!["127.0.0.1".into()];
    };
    let server = TestServer::start_with(|c| {
        trust(c);
        c.imports.yt_dlp = true;
    })
    .await;
    let page = source.url("/page.html?src=/clip.mp4");
    let response = import(&server, &page).await;
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    let started: Value = response.json().await.unwrap();
    assert_eq!(started["url"], page.as_str());
    assert_eq!(started["length"], clip.len() as u64);
    let id = started["id"].as_str().unwrap().to_owned();
    let done = completed(&server, &id).await;
    let asset = done["asset_id"].as_str().unwrap();
    assert!(common::original_of(&server, asset).await == clip);
    let record: Value = client()
        .get(server.url(&format!("/api/assets/{asset}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let name = record["filename"].as_str().unwrap();
    assert!(
        name.starts_with("A talk") && name.ends_with(".mp4"),
        "{name}"
    );

    let empty = import(&server, &source.url("/page.html")).await;
    assert_eq!(empty.status(), 422);
    let (code, message) = error_of(empty).await;
    assert_eq!(code, "not_media");
    assert!(message.contains("yt-dlp"), "{message}");
    server.stop().await;

    let without = TestServer::start_with(trust).await;
    let refused = import(&without, &page).await;
    assert_eq!(refused.status(), 422);
    assert!(error_of(refused).await.1.contains("HTML page"));
    without.stop().await;
}
