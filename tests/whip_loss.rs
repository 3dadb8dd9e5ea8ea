//! WHIP through a lossy link: the server and Chromium's WebRTC publisher
//! (tests/peers/whip_publish.mjs) run in a network namespace of the test's
//! own where nftables drops 5 % of the UDP datagrams in each direction.
//! WebRTC repairs what it can (NACK and retransmission) and the server asks
//! for a keyframe after what it cannot: what players read must decode
//! without an error, with the loss seen and most of the video there.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::netns::Namespace;
use serde_json::Value;

/// Seconds Chromium publishes.
const SECONDS: u32 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_through_five_percent_loss_decodes_cleanly() {
    let ns = Namespace::new("whip");
    ns.lose_udp(5).await;
    let data = tempfile::tempdir().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (mut server, listening) = ns.server(data.path(), log.clone()).await;
    let http = format!("http://{}", listening["http"].as_str().unwrap());

    let publish = ns
        .command("node")
        .args(["tests/peers/whip_publish.mjs", &http, "lossy", "-"])
        .arg(SECONDS.to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), publish)
        .await
        .expect("the publisher ends")
        .unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        out.status.success() && lines.len() == 3,
        "whip_publish.mjs: {lines:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = &lines[2]["stats"];

    let status = ns.wait_ended(&http, "lossy").await;
    assert_eq!(status["last_error"], Value::Null, "{status}");
    let dropped = ns.dropped().await;
    let master = format!("{http}/live/lossy/master.m3u8");
    let decode = ns
        .command("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i", &master])
        .args(["-map", "0:v", "-f", "framemd5", "-"])
        .output()
        .await
        .unwrap();
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "decoding ({dropped} datagrams dropped): {}",
        String::from_utf8_lossy(&decode.stderr)
    );
    let (frames, longest_gap) = frames_and_longest_gap(&String::from_utf8_lossy(&decode.stdout));
    let encoded = stats["framesEncoded"].as_u64().unwrap_or(0);
    eprintln!(
        "nft dropped {dropped} datagrams; Chromium encoded {encoded} frames \
         ({} keyframes), players decode {frames}, longest gap {longest_gap:.2} s",
        stats["keyFramesEncoded"]
    );
    assert!(dropped > 20, "only {dropped} datagrams were dropped");
    // Chromium sends lost packets again on the RTX stream negotiated in
    // the answer when the server's NACKs ask for them; what could still not
    // be repaired is dropped up to the next keyframe, which the server asks
    // for at once. Measured in four runs with RTX: every frame arrived
    // (251-252 of 251-252, 45-152 datagrams dropped), pauses of at most
    // 0.08 s; without RTX (the test's publisher once offered none) 31-85 %
    // arrived with pauses up to 1.03 s.
    assert!(
        longest_gap <= 1.0,
        "the video stopped for {longest_gap:.2} s ({frames} of {encoded} frames)"
    );
    assert!(
        frames * 10 >= encoded * 9,
        "{frames} of {encoded} frames reached the players"
    );
    let _ = server.kill().await;
}

/// The frames of ffmpeg's `framemd5` output and the longest pause between
/// two of them, in seconds (from the stream's `#tb` time base).
fn frames_and_longest_gap(framemd5: &str) -> (u64, f64) {
    let mut timebase = 1.0 / 90_000.0;
    let mut times = Vec::new();
    for line in framemd5.lines() {
        if let Some(tb) = line.strip_prefix("#tb 0: ") {
            if let Some((n, d)) = tb.trim().split_once('/') {
                timebase = n.parse::<f64>().unwrap_or(1.0) / d.parse::<f64>().unwrap_or(90_000.0);
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        // stream, dts, pts, duration, size, hash
        if let Some(pts) = line
            .split(',')
            .nth(2)
            .and_then(|p| p.trim().parse::<i64>().ok())
        {
            times.push(pts as f64 * timebase);
        }
    }
    times.sort_by(f64::total_cmp);
    let gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    (times.len() as u64, gap)
}
