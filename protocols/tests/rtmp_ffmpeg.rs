//! FFmpeg publishes to a `ServerSession` over loopback (skipped when
//! `ffmpeg` is not installed). With `STREAMFORGE_RTMP_CAPTURE=path`, the
//! bytes FFmpeg sent are written to `path`; that is how
//! `fixtures/rtmp/ffmpeg-5.1_x264_aac_publish.bin` was made.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use streamforge_protocols::codec::CodecConfig;
use streamforge_protocols::rtmp::handshake::{DigestScheme, HandshakeKind};
use streamforge_protocols::rtmp::{ServerConfig, ServerSession, SessionEvent};

fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn ffmpeg_publishes_h264_and_aac() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not found; skipping");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=128x96:rate=15"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t", "1", "-c:v", "libx264", "-preset", "veryfast", "-g", "8", "-bf", "2",
        ])
        .args(["-b:v", "60k", "-c:a", "aac", "-b:a", "32k", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/key?token=abc"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (mut socket, _) = listener.accept().unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut session = ServerSession::new(ServerConfig {
        random_seed: [5; 32],
        ..ServerConfig::default()
    });
    let mut received = Vec::new();
    let mut events = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).unwrap();
        if n == 0 {
            session.handle_eof();
        } else {
            received.extend_from_slice(&buf[..n]);
            session.handle_input(&buf[..n]).unwrap();
        }
        loop {
            while let Some(out) = session.poll_transmit() {
                // FFmpeg may already be gone after its last message.
                let _ = socket.write_all(&out);
            }
            let Some(event) = session.poll_event() else {
                break;
            };
            if let SessionEvent::PublishRequested { request_id, .. } = &event {
                session.accept_publish(*request_id).unwrap();
            }
            events.push(event);
        }
        if n == 0 {
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "ffmpeg failed: {status}");
    if let Ok(path) = std::env::var("STREAMFORGE_RTMP_CAPTURE") {
        std::fs::write(path, &received).unwrap();
    }

    assert_eq!(
        session.handshake_kind(),
        Some(HandshakeKind::Digest(DigestScheme::DigestFirst))
    );
    let publish = events
        .iter()
        .find_map(|e| match e {
            SessionEvent::PublishRequested {
                app,
                stream_key,
                query,
                ..
            } => Some((app, stream_key, query)),
            _ => None,
        })
        .unwrap();
    assert_eq!(publish.0, "live");
    assert_eq!(publish.1, "key?token=abc");
    assert_eq!(publish.2.as_deref(), Some("token=abc"));
    let tracks = events
        .iter()
        .find_map(|e| match e {
            SessionEvent::Tracks(t) => Some(t),
            _ => None,
        })
        .unwrap();
    assert!(
        matches!(&tracks[0].codec, CodecConfig::H264(c) if c.sps.width == 128 && c.sps.height == 96)
    );
    assert!(matches!(&tracks[1].codec, CodecConfig::Aac(c) if c.sample_rate == 44_100));
    let video: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Sample(s) if s.track == 1 => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(video.len(), 15);
    assert!(video[0].keyframe);
    assert_eq!(video.iter().filter(|s| s.keyframe).count(), 2);
    assert!(
        video.iter().any(|s| s.cts_offset > 0),
        "B-frames give composition offsets"
    );
    assert!(video.windows(2).all(|w| w[0].dts < w[1].dts));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::Metadata(_)))
    );
    assert!(matches!(
        &events[events.len() - 2..],
        [SessionEvent::Unpublished, SessionEvent::Closed { .. }]
    ));
}
