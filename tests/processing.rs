//! An upload becomes playable: ffprobe on the original, an ffmpeg rung,
//! CMAF packaging, and HLS + DASH that ffprobe reads back over HTTP. A file
//! ffmpeg cannot read fails with a reason; a killed ffmpeg is restarted.

mod common;

use std::time::Duration;

use common::{TestServer, clip, ffprobe, upload};
use serde_json::Value;

#[tokio::test]
async fn an_upload_becomes_hls_and_dash() {
    let server = TestServer::start().await;
    // 4 s, 640x480, B-frames, AAC: the rung must scale it to 360p.
    let source = clip(
        "-f lavfi -i testsrc2=size=640x480:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
         -t 4 -c:v libx264 -preset ultrafast -bf 2 -c:a aac",
    )
    .await;
    let asset = upload(&server, "clip.mp4", source.clone()).await;
    let view = common::wait_for_asset(&server.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    assert_eq!(view["stage"], "ready", "{view}");
    assert_eq!(view["rungs"]["360p"], "done", "{view}");
    assert_eq!(view["rungs"]["audio"], "done", "{view}");
    assert_eq!(view["probe"]["streams"][0]["width"], 640);
    assert!((view["probe"]["duration"].as_f64().unwrap() - 4.0).abs() < 0.1);

    for url in [
        view["hls_url"].as_str().unwrap(),
        view["dash_url"].as_str().unwrap(),
    ] {
        let probed = ffprobe(&server.url(url)).await;
        let streams = probed["streams"].as_array().unwrap();
        let video = streams
            .iter()
            .find(|s| s["codec_type"] == "video")
            .expect("video");
        assert_eq!(video["codec_name"], "h264", "{url}");
        assert_eq!(video["height"], 360, "{url}");
        assert_eq!(video["width"], 480, "{url}");
        let audio = streams
            .iter()
            .find(|s| s["codec_type"] == "audio")
            .expect("audio");
        assert_eq!(audio["codec_name"], "aac", "{url}");
        let duration: f64 = probed["format"]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((duration - 4.0).abs() < 0.15, "{url}: {duration}");
    }
    // The storyboard: the pictures on screen at 0 s and 2 s, in tiles of
    // 160x120 on one sprite, as ffmpeg alone makes it from the clip.
    let vtt = reqwest::get(server.url(&format!("/vod/{asset}/storyboard.vtt")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(vtt.contains("storyboard.webp#xywh=160,0,160,120"), "{vtt}");
    let sprite = reqwest::get(server.url(&format!("/vod/{asset}/storyboard.webp")))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let tiles = "fps=fps=1/2:round=up,scale=160:120,tile=10x1";
    let psnr = common::psnr_against(&sprite, &source, tiles).await;
    assert!(
        psnr > 30.0,
        "storyboard PSNR {psnr} dB against ffmpeg's own"
    );
    server.stop().await;
}

async fn keyframe_times(url: &str) -> Vec<String> {
    let output = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
        ])
        .args(["-of", "csv=p=0", url])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "ffprobe {url}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|line| line.contains('K'))
        .map(|line| line.split(',').next().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn a_720p_source_gets_a_keyframe_aligned_ladder() {
    let server = TestServer::start().await;
    let source = clip(
        "-f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=44100 \
         -t 5 -c:v libx264 -preset ultrafast -g 90 -c:a aac",
    )
    .await;
    let asset = upload(&server, "ladder.mp4", source).await;
    let view = common::wait_for_asset(&server.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");

    let master = reqwest::get(server.url(view["hls_url"].as_str().unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(master.contains("RESOLUTION=640x360"), "{master}");
    assert!(master.contains("RESOLUTION=1280x720"), "{master}");
    assert_eq!(master.matches("#EXT-X-STREAM-INF").count(), 2, "{master}");
    assert!(master.contains("#EXT-X-MEDIA:TYPE=AUDIO"), "{master}");
    let mpd = reqwest::get(server.url(view["dash_url"].as_str().unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        mpd.contains("height=\"360\"") && mpd.contains("height=\"720\""),
        "{mpd}"
    );

    // Every rung cuts at the same instants, so players switch cleanly.
    let low = keyframe_times(&server.url(&format!("/vod/{asset}/360p-v1/media.m3u8"))).await;
    let high = keyframe_times(&server.url(&format!("/vod/{asset}/720p-v1/media.m3u8"))).await;
    assert!(low.len() >= 3, "{low:?}");
    assert_eq!(low, high);

    // Each rung's bit rate, from the bytes of its segments, is within 25 %
    // of its target (800 kb/s and 2.5 Mb/s).
    for (rung, target) in [("360p-v1", 800_000.0), ("720p-v1", 2_500_000.0)] {
        let base = server.url(&format!("/vod/{asset}/{rung}/"));
        let playlist = reqwest::get(format!("{base}media.m3u8"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut bytes = 0u64;
        for segment in playlist
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let head = reqwest::Client::new()
                .head(format!("{base}{segment}"))
                .send()
                .await
                .unwrap();
            bytes += head.headers()["content-length"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
        let rate = bytes as f64 * 8.0 / 5.0;
        assert!(
            (rate - target).abs() / target < 0.25,
            "{rung}: {rate:.0} b/s against {target}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn the_ladder_comes_from_the_configuration() {
    let server = TestServer::start_with(|c| {
        c.transcode.ladder = vec![
            streamforge_actors::transcode::LadderRung {
                height: 240,
                video_kbps: 300,
                audio_kbps: 64,
            },
            streamforge_actors::transcode::LadderRung {
                height: 480,
                video_kbps: 1000,
                audio_kbps: 96,
            },
        ];
    })
    .await;
    let source =
        clip("-f lavfi -i testsrc2=size=640x480:rate=25 -t 3 -c:v libx264 -preset ultrafast").await;
    let asset = upload(&server, "custom.mp4", source).await;
    let view = common::wait_for_asset(&server.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    let master = reqwest::get(server.url(view["hls_url"].as_str().unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(master.contains("RESOLUTION=320x240"), "{master}");
    assert!(master.contains("RESOLUTION=640x480"), "{master}");
    assert!(
        !master.contains("TYPE=AUDIO"),
        "a silent source has no audio rung: {master}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_file_ffmpeg_cannot_read_fails_with_a_reason() {
    let server = TestServer::start().await;
    let garbage: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let asset = upload(&server, "random.mp4", garbage).await;
    let view = common::wait_for_asset(&server.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "failed");
    let reason = view["error"].as_str().unwrap();
    assert!(reason.contains("not a media file"), "{reason}");
    assert!(view.get("hls_url").is_none());
    // The original is still downloadable, byte for byte.
    let original = reqwest::get(server.url(&format!("/api/assets/{asset}/original")))
        .await
        .unwrap();
    assert_eq!(original.bytes().await.unwrap().len(), 50_000);
    server.stop().await;
}

#[tokio::test]
async fn a_killed_ffmpeg_is_restarted_and_the_asset_completes() {
    let server = TestServer::start().await;
    // Long enough at this size that the rung is still running when killed.
    let source =
        clip("-f lavfi -i testsrc2=size=1280x720:rate=30 -t 8 -c:v libx264 -preset ultrafast")
            .await;
    let asset = upload(&server, "long.mp4", source).await;
    // A rung's ffmpeg reads the stored original (its path names the asset)
    // or, when processing started while the bytes arrived, the growing
    // source (its URL names the upload).
    let view: Value = reqwest::get(server.url(&format!("/api/assets/{asset}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload_id = view["upload_id"].as_str().unwrap().to_owned();
    let mut killed = false;
    for _ in 0..200 {
        let pids = std::process::Command::new("pgrep")
            .args(["-f", &format!("ffmpeg -hide_banner.*({asset}|{upload_id})")])
            .output()
            .unwrap();
        let pids = String::from_utf8_lossy(&pids.stdout).to_string();
        if let Some(pid) = pids.split_whitespace().next() {
            std::process::Command::new("kill")
                .args(["-9", pid])
                .status()
                .unwrap();
            killed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(killed, "the rung's ffmpeg was never seen running");
    let view = common::wait_for_asset(&server.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    let probed = ffprobe(&server.url(view["hls_url"].as_str().unwrap())).await;
    assert_eq!(probed["streams"][0]["height"], 360);
    server.stop().await;
}

/// The pid of a running rung ffmpeg of `asset` other than `not`: it reads
/// the stored original (its path names the asset) or the growing source
/// (its URL names the upload), and forces keyframes.
fn rung_ffmpeg(asset: &str, upload_id: &str, not: Option<&str>) -> Option<String> {
    let pids = std::process::Command::new("pgrep")
        .args([
            "-f",
            &format!("ffmpeg -hide_banner.*({asset}|{upload_id}).*-force_key_frames"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&pids.stdout)
        .split_whitespace()
        .find(|pid| Some(*pid) != not)
        .map(str::to_owned)
}

#[tokio::test]
async fn a_rung_that_fails_a_fourth_time_fails_the_asset_with_the_reason() {
    let server = TestServer::start_with(|c| {
        c.transcode.ladder = vec![streamforge_actors::transcode::LadderRung {
            height: 240,
            video_kbps: 300,
            audio_kbps: 64,
        }];
    })
    .await;
    let source =
        clip("-f lavfi -i testsrc2=size=640x360:rate=30 -t 30 -c:v libx264 -preset ultrafast")
            .await;
    let asset = upload(&server, "fails.mp4", source).await;
    let view: Value = reqwest::get(server.url(&format!("/api/assets/{asset}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload_id = view["upload_id"].as_str().unwrap().to_owned();
    // Three restarts (after 1, 2 and 4 s), then the fourth failure.
    let mut last: Option<String> = None;
    for failure in 1..=4 {
        let mut pid = None;
        common::wait_until(
            &format!("a rung ffmpeg to fail a {failure}. time"),
            async || {
                pid = rung_ffmpeg(&asset, &upload_id, last.as_deref());
                pid.is_some()
            },
        )
        .await;
        let pid = pid.unwrap_or_default();
        std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap();
        last = Some(pid);
    }
    let view = common::wait_for_asset(&server.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "failed", "{view}");
    let error = view["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("rung 240p gave up after 3 restarts"),
        "{view}"
    );
    // The reason names no internal path or URL.
    assert!(!error.contains('/'), "{error}");
    server.stop().await;
}

/// A throttled tus upload (one long PATCH, about 150 KB/s) of a faststart
/// clip: the asset exists with the first durable bytes, and a preview
/// ffprobe can read is playable before a quarter of the bytes are in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_plays_while_the_upload_is_still_arriving() {
    let server = TestServer::start().await;
    let source = clip(
        "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 \
         -t 40 -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -movflags +faststart",
    )
    .await;
    let length = source.len();
    let http = reqwest::Client::new();
    let created = http
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .header("upload-metadata", "filename Z3Jvd2luZy5tcDQ=")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = server.url(created.headers()["location"].to_str().unwrap());

    // One PATCH whose body trickles in: 16 KiB every 100 ms.
    let body = common::trickle(&source, 16 * 1024, std::time::Duration::from_millis(100));
    let patch = tokio::spawn({
        let http = http.clone();
        let location = location.clone();
        async move {
            http.patch(&location)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", "0")
                .header("content-type", "application/offset+octet-stream")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    });

    // Poll what a client would: the upload's offset and asset, then the
    // preview playlist.
    let mut preview_at = None;
    let mut asset = String::new();
    for _ in 0..600 {
        let head = http
            .head(&location)
            .header("tus-resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        let offset: usize = head.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        if let Some(id) = head.headers().get("x-asset-id") {
            asset = id.to_str().unwrap().to_owned();
            let master = http
                .get(server.url(&format!("/vod/{asset}/master.m3u8")))
                .send()
                .await
                .unwrap();
            if master.status() == 200 && offset < length {
                let probed = ffprobe(&server.url(&format!("/vod/{asset}/master.m3u8"))).await;
                assert!(
                    probed["streams"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|s| s["codec_type"] == "video"),
                    "{probed}"
                );
                preview_at = Some(offset);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let preview_at = preview_at.expect("a preview before the upload ended");
    eprintln!(
        "preview playable with {preview_at} of {length} bytes ({:.1} %)",
        preview_at as f64 * 100.0 / length as f64
    );
    assert!(
        preview_at * 4 < length,
        "the preview came only after {preview_at} of {length} bytes"
    );
    let view: Value = http
        .get(server.url(&format!("/api/assets/{asset}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["preview"], true, "{view}");
    assert!(view["preview_url"].is_string(), "{view}");
    assert_eq!(
        view["probe"]["streams"][0]["width"], 320,
        "probed while uploading"
    );

    assert_eq!(patch.await.unwrap(), 204);
    let view = common::wait_for_asset(&server.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    let original = common::original_of(&server, &asset).await;
    assert!(original == source, "the original is kept byte for byte");
    let probed = ffprobe(&server.url(view["hls_url"].as_str().unwrap())).await;
    let duration: f64 = probed["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((duration - 40.0).abs() < 0.2, "{duration}");
    server.stop().await;
}

/// Top-level MP4 boxes as (type, offset, size).
fn top_level_boxes(mp4: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= mp4.len() {
        let size = u32::from_be_bytes(mp4[at..at + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = mp4[at + 4..at + 8].try_into().unwrap();
        let size = match size {
            0 => mp4.len() - at,
            1 => u64::from_be_bytes(mp4[at + 8..at + 16].try_into().unwrap()) as usize,
            n => n,
        };
        out.push((kind, at, size));
        at += size.max(8);
    }
    out
}

/// An MP4 whose index (`moov`) is at the end, sent the way the web client
/// sends it: the tail holding the index as one partial upload first, a
/// final concatenation created before the head's bytes start
/// (`concatenation-unfinished`), then the head, throttled. Processing reads
/// the final upload across its partials as they arrive: the preview comes
/// long before the head is in, and the stored original is the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_at_the_end_sent_first_previews_at_once() {
    let server = TestServer::start().await;
    let source = clip(
        "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 \
         -t 40 -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac",
    )
    .await;
    let boxes = top_level_boxes(&source);
    let moov = boxes.iter().find(|b| &b.0 == b"moov").unwrap().1;
    let mdat = boxes.iter().find(|b| &b.0 == b"mdat").unwrap().1;
    assert!(moov > mdat, "ffmpeg writes the index last");
    let (head, tail) = source.split_at(moov);
    let http = reqwest::Client::new();
    let create = |length: usize, concat: String| {
        let http = http.clone();
        let url = server.url("/files/");
        async move {
            let created = http
                .post(url)
                .header("tus-resumable", "1.0.0")
                .header("upload-length", length.to_string())
                .header("upload-concat", concat)
                .send()
                .await
                .unwrap();
            assert_eq!(created.status(), 201);
            created.headers()["location"].to_str().unwrap().to_owned()
        }
    };
    let tail_url = create(tail.len(), "partial".into()).await;
    let patched = http
        .patch(server.url(&tail_url))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(tail.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 204);
    let head_url = create(head.len(), "partial".into()).await;
    let final_created = http
        .post(server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .header("upload-concat", format!("final;{head_url} {tail_url}"))
        .send()
        .await
        .unwrap();
    assert_eq!(final_created.status(), 201);
    let asset = final_created.headers()["x-asset-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let options = http
        .request(reqwest::Method::OPTIONS, server.url("/files/"))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert!(
        options.headers()["tus-extension"]
            .to_str()
            .unwrap()
            .contains("concatenation-unfinished")
    );

    // 80 KB/s: slow enough that the bytes arriving while ffmpeg starts
    // (seconds on a loaded machine) stay a small part of the file.
    let body = common::trickle(head, 16 * 1024, std::time::Duration::from_millis(200));
    let patch = tokio::spawn({
        let http = http.clone();
        let url = server.url(&head_url);
        async move {
            http.patch(url)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", "0")
                .header("content-type", "application/offset+octet-stream")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let mut preview_at = None;
    for _ in 0..600 {
        let head_status = http
            .head(server.url(&head_url))
            .header("tus-resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        let offset: usize = head_status.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let master = http
            .get(server.url(&format!("/vod/{asset}/master.m3u8")))
            .send()
            .await
            .unwrap();
        if master.status() == 200 && offset < head.len() {
            ffprobe(&server.url(&format!("/vod/{asset}/master.m3u8"))).await;
            preview_at = Some(tail.len() + offset);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let preview_at = preview_at.expect("a preview before the head was in");
    eprintln!(
        "index first: preview playable with {preview_at} of {} bytes ({:.1} %)",
        source.len(),
        preview_at as f64 * 100.0 / source.len() as f64
    );
    assert!(preview_at * 4 < source.len());

    assert_eq!(patch.await.unwrap(), 204);
    let view = common::wait_for_asset(&server.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");
    let original = common::original_of(&server, &asset).await;
    assert!(
        original == source,
        "the original is the file, byte for byte"
    );
    server.stop().await;
}
