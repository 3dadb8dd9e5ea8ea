//! Replays byte streams captured from real publishers through
//! `ServerSession`, whole and in every kind of split.
//!
//! `ffmpeg-5.1_x264_aac_publish.bin`: what FFmpeg 5.1 (Debian) sent when
//! publishing 1 s of testsrc2 128x96@15 (x264 High, B-frames, GOP 8) and a
//! 440 Hz sine (AAC-LC 44.1 kHz) to `rtmp://127.0.0.1/live/key?token=abc`;
//! recorded by `rtmp_ffmpeg.rs` with `STREAMFORGE_RTMP_CAPTURE`.

mod rtmp_support;

use rtmp_support::drive;
use streamforge_protocols::rtmp::SessionEvent;
use streamforge_protocols::rtmp::handshake::{DigestScheme, PACKET_LEN, find_client_digest};

const FFMPEG_PUBLISH: &[u8] = include_bytes!("fixtures/rtmp/ffmpeg-5.1_x264_aac_publish.bin");

#[test]
fn ffmpeg_c1_carries_a_digest_first_digest() {
    let c1: &[u8; PACKET_LEN] = FFMPEG_PUBLISH[1..1 + PACKET_LEN].try_into().unwrap();
    assert_eq!(
        find_client_digest(c1).map(|(s, _)| s),
        Some(DigestScheme::DigestFirst)
    );
}

#[test]
fn ffmpeg_capture_replays_in_any_split() {
    let (whole, _) = drive(FFMPEG_PUBLISH, &[FFMPEG_PUBLISH.len()]);
    let (bytewise, _) = drive(FFMPEG_PUBLISH, &[1]);
    assert_eq!(bytewise, whole);
    for sizes in [
        &[4096][..],
        &[1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987],
        &[1537, 1536, 7],
    ] {
        assert_eq!(drive(FFMPEG_PUBLISH, sizes).0, whole, "{sizes:?}");
    }
    let count = |track| {
        bytewise
            .iter()
            .filter(|e| matches!(e, SessionEvent::Sample(s) if s.track == track))
            .count()
    };
    assert_eq!(count(1), 15);
    assert!(count(2) >= 40, "audio samples: {}", count(2));
    let kinds: Vec<_> = bytewise
        .iter()
        .filter(|e| !matches!(e, SessionEvent::Sample(_)))
        .map(|e| match e {
            SessionEvent::ConnectRequested { .. } => "connect",
            SessionEvent::PublishRequested { .. } => "publish",
            SessionEvent::Tracks(_) => "tracks",
            SessionEvent::Metadata(_) => "metadata",
            SessionEvent::Unpublished => "unpublished",
            SessionEvent::Closed { .. } => "closed",
            SessionEvent::Sample(_) | SessionEvent::Unsupported { .. } => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "connect",
            "publish",
            "metadata",
            "tracks",
            "unpublished",
            "closed"
        ]
    );
}
