//! The web UI in a real browser: Playwright (playwright-core) drives
//! Debian's headless Chromium against a server on 127.0.0.1:0. Screenshots
//! land in `target/tmp/web-artifacts/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::TestServer;
use serde_json::Value;
use streamforge_actors::transcode::LadderRung;
use tokio::process::Command;

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-artifacts")
}

fn require_ui() {
    assert!(
        Path::new("web/dist/index.html").is_file(),
        "the web UI is not built: run scripts/setup (npm ci && npm run build in web/)"
    );
    assert!(
        Path::new("/usr/bin/chromium").is_file() || std::env::var_os("CHROMIUM").is_some(),
        "chromium is missing: run scripts/setup --test"
    );
}

async fn drive(mode: &str, base: &str, subject: &str) -> Value {
    let output = Command::new("node")
        .arg("tests/peers/web_e2e.mjs")
        .args([mode, base, subject])
        .arg(artifacts())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node is installed (scripts/setup --test)");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let findings: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    eprintln!("web {mode}: {findings}");
    findings
}

/// Console errors other than media the page probes for on purpose.
fn real_errors(findings: &Value) -> Vec<String> {
    findings["console_errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        // Chromium's own line for a failed load; the page logs its URL too.
        .filter(|e| !e.starts_with("Failed to load resource"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_play_switch_quality_and_delete_in_chromium() {
    require_ui();
    let server = TestServer::start_with(|c| {
        c.transcode.ladder = vec![
            LadderRung {
                height: 144,
                video_kbps: 150,
                audio_kbps: 64,
            },
            LadderRung {
                height: 240,
                video_kbps: 400,
                audio_kbps: 64,
            },
        ];
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("forge-clip.mp4");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000"])
        .args([
            "-t", "40", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        // Not faststart: the index is at the end, so the page sends it first.
        .args(["-c:a", "aac"])
        .arg(&clip)
        .status()
        .await
        .unwrap();
    assert!(made.success());

    let findings = drive("vod", &server.url(""), clip.to_str().unwrap()).await;
    let stages: Vec<&str> = findings["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(stages.contains(&"ready"), "{stages:?}");
    // The poster, then a preview that played while the upload went on.
    assert_eq!(findings["preview_played"], true);
    let offset = findings["offset_when_preview_played"].as_u64().unwrap();
    let length = findings["length"].as_u64().unwrap();
    assert!(offset < length, "the upload had finished: {findings}");
    assert_eq!(
        findings["index_first"], true,
        "the page sent the MP4 index first"
    );
    assert_eq!(findings["status_when_preview_played"], "processing");
    eprintln!(
        "the preview played in Chromium with {:.0} % of the upload on the server",
        offset as f64 * 100.0 / length as f64
    );
    assert_eq!(findings["progress"], 1);
    assert_eq!(findings["poster"], 1, "the card shows the poster");
    assert_eq!(findings["played"], true);
    let qualities = findings["qualities"].as_array().unwrap();
    assert_eq!(qualities.len(), 3, "Auto + 144p + 240p: {qualities:?}");
    assert_eq!(findings["switched_to"], 144);
    assert!(
        findings["thumbnail"]
            .as_str()
            .unwrap()
            .contains("storyboard"),
        "{findings}"
    );
    assert_eq!(findings["muted"], true);
    assert_eq!(findings["paused"], true);
    assert!(
        findings["download"]
            .as_str()
            .unwrap()
            .starts_with("Download original ("),
        "{findings}"
    );
    let urls = findings["urls"].as_array().unwrap();
    assert!(urls[0].as_str().unwrap().ends_with("/master.m3u8"));
    assert!(urls[1].as_str().unwrap().ends_with("/manifest.mpd"));
    assert_eq!(findings["deleted"], true);
    assert_eq!(
        findings["overflow"], false,
        "the library fits a phone screen"
    );
    assert_eq!(findings["unlabelled"], Value::Array(vec![]));
    assert_eq!(findings["unlabelled_player"], Value::Array(vec![]));
    assert!(real_errors(&findings).is_empty(), "{findings}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_stream_plays_with_low_latency_in_chromium() {
    require_ui();
    let server = TestServer::start_with(|c| c.live.open_publish = true).await;
    let url = format!("{}/live/webcam", server.rtmp_url());
    let mut encoder = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "40", "-c:v", "libx264", "-preset", "veryfast"])
        .args(["-tune", "zerolatency", "-g", "50", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-f", "flv", &url])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let findings = drive("live", &server.url(""), "webcam").await;
    assert_eq!(findings["played"], true);
    let latency = findings["latency"].as_f64().unwrap();
    assert!(latency > 0.0, "{findings}");
    eprintln!("hls.js live latency in Chromium: {latency:.2} s");
    assert_eq!(findings["unlabelled"], Value::Array(vec![]));
    assert!(real_errors(&findings).is_empty(), "{findings}");
    let _ = encoder.kill().await;
    server.stop().await;
}

/// The API reference page renders the server's own OpenAPI description
/// with Swagger UI, and "Try it out" reaches the server.
#[tokio::test]
async fn the_api_reference_renders_the_description_in_chromium() {
    require_ui();
    let server = TestServer::start_with(|c| c.http.web_dir = "web/dist".into()).await;
    let findings = drive("api", &server.url(""), "/api/webhooks/{id}/deliveries").await;
    assert!(
        findings["title"]
            .as_str()
            .unwrap_or("")
            .contains("StreamForge"),
        "{findings}"
    );
    assert_eq!(findings["has_subject"], true, "{findings}");
    assert!(
        findings["operations"].as_array().unwrap().len() >= 35,
        "{findings}"
    );
    assert_eq!(findings["try_status"], "200", "{findings}");
    assert!(real_errors(&findings).is_empty(), "{findings}");
    server.stop().await;
}
