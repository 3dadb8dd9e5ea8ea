//! SRT ingest against real callers (ffmpeg's libsrt, GStreamer's srtsink):
//! refusals that leave the server and the other streams alone, and
//! encrypted publishing. The frame-exact matrix of SRT publishers is in
//! `live_matrix.rs`.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{TestServer, create_stream_key as create_key, encode, stream_status, wait_until};
use serde_json::Value;
use tokio::process::Command;

/// ffmpeg pushing MPEG-TS over SRT for `seconds` with these URL options.
fn push_srt(server: &TestServer, seconds: u32, options: &str) -> tokio::process::Child {
    let url = format!("{}?{options}", server.srt_url());
    encode(seconds, &["-f", "mpegts", &url])
}

/// Runs a short ffmpeg SRT publish to its end: whether it succeeded, and
/// what it said.
async fn try_publish(server: &TestServer, options: &str) -> (bool, String) {
    let child = push_srt(server, 2, options);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("ffmpeg ends")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A datagram srt-tokio's listener task panics on: a conclusion handshake
/// with a congestion-control extension (type 6), which it does not
/// implement.
fn forged_handshake() -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0];
    p.extend_from_slice(&[0; 12]);
    p.extend_from_slice(&5u32.to_be_bytes()); // HSv5
    p.extend_from_slice(&0u16.to_be_bytes()); // no encryption
    p.extend_from_slice(&4u16.to_be_bytes()); // extension flags: CONFIG
    p.extend_from_slice(&1u32.to_be_bytes()); // initial sequence number
    p.extend_from_slice(&1500u32.to_be_bytes());
    p.extend_from_slice(&8192u32.to_be_bytes());
    p.extend_from_slice(&(-1i32).to_be_bytes()); // conclusion
    p.extend_from_slice(&1234u32.to_be_bytes());
    p.extend_from_slice(&[0; 4 + 16]);
    p.extend_from_slice(&6u16.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(b"elif");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_the_srt_port_is_refused_and_the_good_stream_goes_on() {
    let server = TestServer::start_with(|c| c.live.idle_timeout = Duration::from_secs(3)).await;
    let key = create_key(&server, "steady").await;
    let mut steady = push_srt(&server, 40, &format!("streamid=publish:live/{key}"));
    wait_until("the SRT publish", async || {
        stream_status(&server, "steady").await["playable"] == true
    })
    .await;
    let addr = server.srt_url().trim_start_matches("srt://").to_owned();

    // Garbage datagrams of every size.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..2_000usize {
        let datagram: Vec<u8> = (0..(i % 1500) + 1)
            .map(|j| (i * 31 + j * 7) as u8)
            .collect();
        udp.send_to(&datagram, &addr).await.unwrap();
    }

    // A wrong key, no stream id, a request to play, a passphrase the
    // server does not have: each refused at the handshake.
    let other = create_key(&server, "other").await;
    let refusals = [
        "streamid=publish:live/other?key=wrong".to_owned(),
        format!("streamid=publish:live/steady?key={other}"),
        String::new(),
        "streamid=%23%21%3A%3Ar%3Dlive%2Fsteady%2Cm%3Drequest".to_owned(),
        format!("streamid=publish:live/{other}&passphrase=0123456789abcdef&pbkeylen=16"),
    ];
    for options in &refusals {
        let (ok, stderr) = try_publish(&server, options).await;
        assert!(!ok, "{options:?} was accepted: {stderr}");
        assert!(
            stderr.contains("Connection to srt://"),
            "{options:?}: {stderr}"
        );
    }
    assert_eq!(stream_status(&server, "other").await["samples"], 0);

    // A caller that sends something else than MPEG-TS, and one whose PMT
    // never passes its CRC: the publish ends with the reason.
    let (_, _) = try_publish_raw(&server, &other, RawPayload::NotTs).await;
    wait_until("the refusal of raw bytes", async || {
        let status = stream_status(&server, "other").await;
        status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not an MPEG transport stream"))
    })
    .await;
    let (_, _) = try_publish_raw(&server, &other, RawPayload::BrokenPmt).await;
    wait_until("the refusal of a broken PMT", async || {
        let status = stream_status(&server, "other").await;
        status["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no usable program") && e.contains("CRC"))
    })
    .await;

    // The good stream went on through all of it.
    let before = stream_status(&server, "steady").await["samples"]
        .as_u64()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = stream_status(&server, "steady").await;
    assert_eq!(status["live"], true, "{status}");
    assert!(status["samples"].as_u64().unwrap() > before, "{status}");
    assert_eq!(status["dropped_samples"], 0, "{status}");

    // A datagram that kills srt-tokio's listener task: the server binds the
    // port again and takes the next publisher (the SRT sessions of that
    // moment are lost with the task).
    udp.send_to(&forged_handshake(), &addr).await.unwrap();
    let _ = steady.kill().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut again = push_srt(&server, 20, &format!("streamid=publish:live/{key}"));
    wait_until("a publish after the listener came back", async || {
        let status = stream_status(&server, "steady").await;
        status["live"] == true && status["samples"].as_u64().unwrap_or(0) > 50
    })
    .await;
    let health = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let _ = again.kill().await;
    server.stop().await;
}

enum RawPayload {
    /// testsrc2 frames as raw video bytes.
    NotTs,
    /// An MPEG-TS whose PMT sections all fail their CRC.
    BrokenPmt,
}

/// Sends bytes as they are over SRT.
async fn try_publish_raw(server: &TestServer, key: &str, payload: RawPayload) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.bin");
    match payload {
        RawPayload::NotTs => {
            let status = Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi"])
                .args(["-i", "testsrc2=size=320x240:rate=25", "-t", "1"])
                .args(["-f", "rawvideo"])
                .arg(&file)
                .status()
                .await
                .unwrap();
            assert!(status.success());
        }
        RawPayload::BrokenPmt => {
            let status = Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi"])
                .args(["-i", "testsrc2=size=320x240:rate=25", "-t", "2"])
                .args(["-c:v", "libx264", "-f", "mpegts"])
                .arg(&file)
                .status()
                .await
                .unwrap();
            assert!(status.success());
            // FFmpeg's PMT is on PID 0x1000: flip the last CRC byte of each.
            let mut ts = std::fs::read(&file).unwrap();
            for packet in ts.chunks_mut(188) {
                let pid = u16::from_be_bytes([packet[1] & 0x1f, packet[2]]);
                if pid == 0x1000 && packet[1] & 0x40 != 0 {
                    let pointer = usize::from(packet[4]);
                    let section = 5 + pointer;
                    let len = (usize::from(packet[section + 1] & 0x0f) << 8)
                        | usize::from(packet[section + 2]);
                    packet[section + 2 + len] ^= 0xff;
                }
            }
            std::fs::write(&file, ts).unwrap();
        }
    }
    // FFmpeg's data demuxer and muxer pass the bytes through untouched;
    // `linger` sends them all before the socket closes (libsrt's live mode
    // drops what is unsent at close otherwise, seen on a loaded machine).
    let url = format!(
        "{}?streamid=publish:live/{key}&linger=3&pkt_size=1316",
        server.srt_url()
    );
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-f", "data", "-i"])
        .arg(&file)
        .args(["-map", "0", "-c", "copy", "-f", "data", &url])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("ffmpeg ends")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_publish_needs_the_passphrase() {
    const PASSPHRASE: &str = "correct-horse-battery";
    let server = TestServer::start_with(|c| {
        c.live.open_publish = true;
        c.live.srt_passphrase = Some(PASSPHRASE.to_owned());
    })
    .await;
    for (options, what) in [
        ("streamid=publish:live/plain", "no passphrase"),
        (
            "streamid=publish:live/wrong&passphrase=not-the-passphrase",
            "a wrong passphrase",
        ),
    ] {
        let (ok, stderr) = try_publish(&server, options).await;
        assert!(!ok, "{what} was accepted: {stderr}");
    }
    // libsrt's default key length (unstated: 16 bytes) and AES-256.
    for (stream, pbkeylen) in [("aes-default", ""), ("aes-256", "&pbkeylen=32")] {
        let options = format!("streamid=publish:live/{stream}&passphrase={PASSPHRASE}{pbkeylen}");
        let (ok, stderr) = try_publish(&server, &options).await;
        assert!(ok, "{stream}: {stderr}");
        let status = stream_status(&server, stream).await;
        assert!(status["samples"].as_u64().unwrap() > 50, "{status}");
        assert_eq!(status["protocol"], "srt");
        assert_eq!(status["last_error"], Value::Null, "{status}");
    }
    server.stop().await;
}
