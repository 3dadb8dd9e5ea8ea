//! SRT through a lossy link: the server and ffmpeg run in a network
//! namespace of the test's own (everything still on its 127.0.0.1) where
//! nftables drops 5 % of the UDP datagrams in each direction at random.
//! (The kernel here has no `tc netem`; a random drop is the same loss
//! model.) SRT retransmits within its latency, so the stream must arrive
//! whole: every frame the publisher sent, steady times, nothing that fails
//! to decode, and the server's SRT statistics show the loss it repaired.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::netns::Namespace;
use serde_json::Value;

/// Packet times (seconds) of one stream, as ffprobe run in `ns` reads them.
async fn times(ns: &Namespace, url: &str, stream: &str) -> Vec<f64> {
    let out = ns
        .command("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0", url])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "ffprobe {url}");
    let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// ffmpeg in `ns` publishes 8 s over SRT to `srt`, writing what it sent to
/// `copy` too.
async fn publish_lossy(ns: &Namespace, srt: &str, copy: &Path) {
    // 8 s of 320x240@25 with AAC; SRT latency 300 ms (dozens of round
    // trips on loopback: time for several retransmissions).
    let url = format!("srt://{srt}?streamid=publish:live/lossy&latency=300000&linger=3");
    let out = ns
        .command("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "8", "-map", "0:v", "-map", "1:a"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-pix_fmt", "yuv420p",
        ])
        .args(["-c:a", "aac", "-f", "tee"])
        .arg(format!("[f=mpegts]{url}|[f=mpegts]{}", copy.display()))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("ffmpeg ends")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("failed"),
        "ffmpeg: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_through_five_percent_loss_arrives_whole() {
    let ns = Namespace::new("srt");
    ns.lose_udp(5).await;
    let data = tempfile::tempdir().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (mut server, listening) = ns.server(data.path(), log.clone()).await;
    let http = format!("http://{}", listening["http"].as_str().unwrap());
    let srt = listening["srt"].as_str().unwrap().to_owned();
    let copy = data.path().join("sent.ts");

    publish_lossy(&ns, &srt, &copy).await;

    // The stream ends; then what players read is checked.
    let status = ns.wait_ended(&http, "lossy").await;
    assert_eq!(status["dropped_samples"], 0, "{status}");
    assert_eq!(status["last_error"], Value::Null, "{status}");

    let dropped = ns.dropped().await;
    for event in log.lock().unwrap().iter() {
        if event.to_string().contains("srt") {
            eprintln!("server: {event}");
        }
    }
    let sent_video = times(&ns, copy.to_str().unwrap(), "v:0").await;
    let sent_audio = times(&ns, copy.to_str().unwrap(), "a:0").await;
    let master = format!("{http}/live/lossy/master.m3u8");
    let video = times(&ns, &master, "v:0").await;
    let audio = times(&ns, &master, "a:0").await;
    assert_eq!(
        video.len(),
        sent_video.len(),
        "video frames ({dropped} datagrams dropped): ours {:?}..{:?}, sent {:?}..{:?}, gaps {:?}",
        video.first(),
        video.last(),
        sent_video.first(),
        sent_video.last(),
        video
            .windows(2)
            .filter(|w| w[1] - w[0] > 0.05)
            .collect::<Vec<_>>()
    );
    assert!(
        audio.len() + 1 >= sent_audio.len(),
        "audio frames: {} of {} ({dropped} datagrams dropped)",
        audio.len(),
        sent_audio.len()
    );
    for pair in video.windows(2) {
        assert!(
            (pair[1] - pair[0] - 0.04).abs() < 0.002,
            "video step {pair:?}"
        );
    }
    let decode = ns
        .command("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-i",
            &master,
            "-f",
            "null",
            "-",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        decode.stderr.is_empty(),
        "decoding: {}",
        String::from_utf8_lossy(&decode.stderr)
    );

    // The loss happened, and SRT repaired it.
    assert!(dropped > 20, "only {dropped} datagrams were dropped");
    let stats = log
        .lock()
        .unwrap()
        .iter()
        .find(|e| e["message"] == "srt: connection statistics")
        .cloned()
        .expect("the SRT connection's statistics are logged");
    eprintln!("nft dropped {dropped} datagrams; server statistics: {stats}");
    assert!(stats["retransmitted"].as_u64().unwrap_or(0) > 0, "{stats}");
    let _ = server.kill().await;
}
