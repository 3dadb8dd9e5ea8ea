//! Faults of the whole server: a graceful shutdown under load, and
//! `kill -9` in the middle of an upload and of its
//! processing: after a restart on the same data directory, tus HEAD reports
//! the durable offset, the client resumes from it, the original is
//! byte-identical, the interrupted processing resumes by itself, and no
//! ffmpeg child outlived the killed server.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// Starts the real binary on `data`; returns it and its base URL.
async fn start(data: &std::path::Path) -> (Child, String) {
    common::spawn_server(data, &[]).await
}

fn ffmpeg_children_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let Some((name, rest)) = stat.split_once(") ") else {
            continue;
        };
        let parent: Option<u32> = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        let zombie = rest.starts_with('Z');
        if parent == Some(pid) && !zombie && name.ends_with("(ffmpeg") {
            found.push(child);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_upload_and_mid_transcode_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "30",
        ])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
        ])
        .args(["-movflags", "+faststart"])
        .arg(&clip)
        .status()
        .await
        .unwrap();
    assert!(made.success());
    let source = std::fs::read(&clip).unwrap();

    let (mut server, base) = start(data.path()).await;
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", source.len().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let path = created.headers()["location"].to_str().unwrap().to_owned();

    // One PATCH trickling the file in; the server dies partway.
    let body = common::trickle(&source, 16 * 1024, std::time::Duration::from_millis(50));
    let patch = tokio::spawn({
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let _ = http
                .patch(url)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", "0")
                .header("content-type", "application/offset+octet-stream")
                .body(body)
                .send()
                .await;
        }
    });
    // Wait until processing runs on the growing upload (a rung's ffmpeg).
    let pid = server.id().unwrap();
    let started = Instant::now();
    while ffmpeg_children_of(pid).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "processing never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let head = http
        .head(format!("{base}{path}"))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    let asset = head.headers()["x-asset-id"].to_str().unwrap().to_owned();
    let children = ffmpeg_children_of(pid);
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    patch.abort();

    // The parent-death signal took the ffmpeg children with the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for child in &children {
        let alive = std::fs::read_to_string(format!("/proc/{child}/stat"))
            .map(|stat| {
                !stat
                    .split_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z'))
            })
            .unwrap_or(false);
        assert!(!alive, "ffmpeg {child} outlived the killed server");
    }

    // Restart: HEAD says what is durable; resume from there.
    let (_server, base) = start(data.path()).await;
    let head = http
        .head(format!("{base}{path}"))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let offset: usize = head.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        offset > 0 && offset < source.len(),
        "durable offset {offset}"
    );
    eprintln!("killed with {offset} of {} bytes durable", source.len());
    let resumed = http
        .patch(format!("{base}{path}"))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(source[offset..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 204);

    // The interrupted processing resumed by itself and finished.
    let view = common::wait_for_asset(&base, &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    let original = http
        .get(format!("{base}/api/assets/{asset}/original"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(original == source, "the original is byte-identical");
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(format!("{base}{}", view["hls_url"].as_str().unwrap()))
        .output()
        .await
        .unwrap();
    let duration: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!((duration - 30.0).abs() < 0.2, "{duration}");
}

/// Rung ffmpeg children of this process (the in-process test server's):
/// they run with `-nostdin`, which the test's own encoders do not.
fn rung_children() -> Vec<u32> {
    ffmpeg_children_of(std::process::id())
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("-nostdin"))
                .unwrap_or(false)
        })
        .collect()
}

/// A graceful shutdown while an upload trickles in, a transcode runs and
/// a live stream has a viewer blocked on its next part: the shutdown ends
/// within its grace period, the blocked request gets an answer, no child
/// process is left, and after a restart nothing half-done is presented as
/// done: the upload reports its durable offset and the interrupted
/// transcode finishes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_load_leaves_nothing_half_done() {
    let server = common::TestServer::start_with(|c| c.live.open_publish = true).await;
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
        ])
        .args([
            "-t",
            "20",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-movflags", "+faststart"])
        .arg(&clip)
        .status()
        .await
        .unwrap();
    assert!(made.success());
    let source = std::fs::read(&clip).unwrap();

    // A transcode in progress.
    let asset = common::upload(&server, "busy.mp4", source.clone()).await;
    // An upload trickling in.
    let tus = http
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", source.len().to_string())
        .send()
        .await
        .unwrap();
    let upload = tus.headers()["location"].to_str().unwrap().to_owned();
    let body = common::trickle(&source, 8 * 1024, std::time::Duration::from_millis(30));
    let trickle = tokio::spawn({
        let http = http.clone();
        let url = server.url(&upload);
        async move {
            let _ = http
                .patch(url)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", "0")
                .header("content-type", "application/offset+octet-stream")
                .body(body)
                .send()
                .await;
        }
    });
    // A live stream with a viewer waiting for a part far ahead.
    let mut encoder = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25",
        ])
        .args([
            "-t",
            "30",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-f",
            "flv",
        ])
        .arg(format!("{}/live/busy", server.rtmp_url()))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while http
        .get(server.url("/live/busy/master.m3u8"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the stream never started"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A viewer waiting for a part two segments on.
    let playlist = http
        .get(server.url("/live/busy/v1/media.m3u8"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let hinted: u64 = playlist
        .split("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"")
        .nth(1)
        .and_then(|rest| rest.split('.').next())
        .and_then(|msn| msn.parse().ok())
        .unwrap_or_else(|| panic!("no preload hint: {playlist}"));
    let blocked = tokio::spawn({
        let url = server.url(&format!(
            "/live/busy/v1/media.m3u8?_HLS_msn={}&_HLS_part=5",
            hinted + 1
        ));
        async move { reqwest::get(url).await.map(|r| r.status().as_u16()) }
    });
    while rung_children().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no transcode ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let before: usize = http
        .head(server.url(&upload))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap()
        .headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    eprintln!(
        "before shutdown at {:?}: {before} of {}",
        started.elapsed(),
        source.len()
    );
    let stopping = Instant::now();
    let data = server.stop_keeping_data().await;
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");
    let answered = blocked.await.unwrap();
    assert!(
        answered.is_ok(),
        "the blocked viewer got no answer: {answered:?}"
    );
    trickle.abort();
    let _ = encoder.kill().await;
    assert!(
        rung_children().is_empty(),
        "ffmpeg children outlived the shutdown"
    );

    // Restarted: the upload is where its durable bytes say, the transcode
    // finishes on its own.
    let server = common::TestServer::start_in(data, |_| {}).await;
    let head = http
        .head(server.url(&upload))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    let offset: usize = head.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(offset < source.len(), "{offset}");
    let view = common::wait_for_asset(&server.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    server.stop().await;
}
