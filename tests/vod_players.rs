//! VOD playback in real players: dash.js and Shaka Player (DASH) and hls.js
//! (HLS) in Debian's headless Chromium, driven by
//! `tests/peers/vod_players.mjs`, play an uploaded clip with B-frames. Each
//! must play without an error or a failed request, and buffer video and
//! audio from presentation time 0: no hole at the start for a player to
//! seek over, and the picture in step with its sound.

mod common;

use common::{TestServer, clip, upload, wait_for_asset};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_js_shaka_and_hls_js_play_vod_from_time_zero() {
    let server = TestServer::start().await;
    // 4 s with three B-frames (x264 delays its first picture by two frames)
    // and AAC, as phones and ffmpeg write them.
    let source = clip(
        "-f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
         -t 4 -c:v libx264 -preset veryfast -bf 3 -c:a aac",
    )
    .await;
    let asset = upload(&server, "bframes.mp4", source).await;
    let view = wait_for_asset(&server.url(""), &asset, &["ready", "failed"]).await;
    assert_eq!(view["status"], "ready", "{view}");

    let report = common::vod_players(&server.url(""), &asset, 2).await;
    for player in common::VOD_PLAYERS {
        let r = &report[player];
        let buffers = r["buffers"].as_array().unwrap();
        let start = |kind: &str| -> f64 {
            let (_, ranges) = buffers
                .iter()
                .map(|b| (b[0].as_str().unwrap(), &b[1]))
                .find(|(mime, _)| mime.starts_with(kind))
                .unwrap_or_else(|| panic!("{player}: no {kind} buffer: {r}"));
            ranges[0][0].as_f64().unwrap()
        };
        let (video, audio) = (start("video/"), start("audio/"));
        assert!(
            video.abs() < 0.001 && audio.abs() < 0.001,
            "{player}: video buffered from {video:.4} s, audio from {audio:.4} s"
        );
    }
    server.stop().await;
}
