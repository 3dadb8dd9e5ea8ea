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
    let frames = String::from_utf8_lossy(&decode.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count() as u64;
    let encoded = stats["framesEncoded"].as_u64().unwrap_or(0);
    eprintln!(
        "nft dropped {dropped} datagrams; Chromium encoded {encoded} frames \
         ({} keyframes), players decode {frames}",
        stats["keyFramesEncoded"]
    );
    assert!(dropped > 20, "only {dropped} datagrams were dropped");
    // What a keyframe request could not save is dropped, not published
    // broken; most of it is repaired.
    assert!(
        frames * 10 >= encoded * 7,
        "{frames} of {encoded} frames reached the players"
    );
    let _ = server.kill().await;
}
