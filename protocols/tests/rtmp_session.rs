//! Drives `ServerSession` with a scripted in-memory client built from the
//! crate's own encoders: handshake → connect → createStream → publish →
//! metadata → sequence headers → frames → unpublish; the same bytes in every
//! split; and broken input.

mod rtmp_support;

use bytes::Bytes;
use proptest::prelude::*;
use rtmp_support::{Client, Policy, drive, drive_with, server_messages};
use streamforge_protocols::codec::CodecConfig;
use streamforge_protocols::media::SessionEnd;
use streamforge_protocols::rtmp::amf0::Amf0Value;
use streamforge_protocols::rtmp::message::{Command, Message, UserControl};
use streamforge_protocols::rtmp::{
    PublishType, RtmpError, ServerConfig, ServerSession, SessionEvent,
};

// avcC of x264 High 3.1, 1280x720 (SPS/PPS from codec::h264's tests).
const AVCC: &[u8] = &[
    0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50,
    0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83,
    0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0,
];

fn video_sequence_header() -> Bytes {
    let mut body = vec![0x17, 0, 0, 0, 0];
    body.extend_from_slice(AVCC);
    Bytes::from(body)
}

fn video_frame(key: bool, cts: i32, size: usize) -> Bytes {
    let mut body = vec![if key { 0x17 } else { 0x27 }, 1];
    body.extend_from_slice(&cts.to_be_bytes()[1..]);
    body.extend_from_slice(&(size as u32 + 1).to_be_bytes());
    body.push(if key { 0x65 } else { 0x41 });
    body.extend((0..size).map(|i| i as u8));
    Bytes::from(body)
}

fn audio(seq: bool, byte: u8) -> Bytes {
    match seq {
        true => Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
        false => Bytes::from(vec![0xaf, 1, 0x21, byte]),
    }
}

/// A publishing client's whole byte stream, as FFmpeg orders it.
fn publish_script(stream_name: &str, start: u32) -> Vec<u8> {
    publish_script_with(stream_name, start, true)
}

fn publish_script_with(stream_name: &str, start: u32, unpublish: bool) -> Vec<u8> {
    let mut c = Client::handshake_plain();
    c.set_chunk_size(4096);
    c.command(0, "connect", 1.0, Client::connect_object("live"), vec![]);
    c.command(
        0,
        "releaseStream",
        2.0,
        Amf0Value::Null,
        vec![Amf0Value::string(stream_name)],
    );
    c.command(
        0,
        "FCPublish",
        3.0,
        Amf0Value::Null,
        vec![Amf0Value::string(stream_name)],
    );
    c.command(0, "createStream", 4.0, Amf0Value::Null, vec![]);
    c.command(
        1,
        "publish",
        5.0,
        Amf0Value::Null,
        vec![Amf0Value::string(stream_name), Amf0Value::string("live")],
    );
    c.send(
        4,
        1,
        0,
        &Message::Data(vec![
            Amf0Value::string("@setDataFrame"),
            Amf0Value::string("onMetaData"),
            Amf0Value::EcmaArray(vec![
                ("width".into(), Amf0Value::Number(1280.0)),
                ("height".into(), Amf0Value::Number(720.0)),
            ]),
        ]),
    );
    c.send(6, 1, start, &Message::Video(video_sequence_header()));
    c.send(4, 1, start, &Message::Audio(audio(true, 0)));
    // Shared object message and an unassigned type: both ignored.
    c.send(
        3,
        0,
        0,
        &Message::Unknown {
            type_id: 19,
            payload: Bytes::from_static(b"so"),
        },
    );
    c.send(
        3,
        0,
        0,
        &Message::Unknown {
            type_id: 0x30,
            payload: Bytes::from_static(b"??"),
        },
    );
    for i in 0..6u32 {
        let ts = start.wrapping_add(i * 33);
        // The key frame spans several 4096-byte chunks.
        let size = if i == 0 { 10_000 } else { 300 };
        c.send(6, 1, ts, &Message::Video(video_frame(i == 0, 66, size)));
        c.send(
            4,
            1,
            start.wrapping_add(i * 23),
            &Message::Audio(audio(false, i as u8)),
        );
    }
    c.send(
        2,
        0,
        0,
        &Message::UserControl(UserControl::PingRequest { timestamp: 7 }),
    );
    if unpublish {
        c.command(
            0,
            "FCUnpublish",
            6.0,
            Amf0Value::Null,
            vec![Amf0Value::string(stream_name)],
        );
        c.command(
            0,
            "deleteStream",
            7.0,
            Amf0Value::Null,
            vec![Amf0Value::Number(1.0)],
        );
    }
    c.into_bytes()
}

#[test]
fn scripted_publish_produces_the_expected_events() {
    let script = publish_script("key?token=abc", 0);
    // Byte by byte, so that the publish is decided before the client unpublishes.
    let (events, out) = drive(&script, &[1]);
    let mut it = events.iter();
    assert_eq!(
        it.next(),
        Some(&SessionEvent::ConnectRequested {
            app: "live".into(),
            tc_url: Some("rtmp://127.0.0.1:1935/live".into())
        })
    );
    assert_eq!(
        it.next(),
        Some(&SessionEvent::PublishRequested {
            request_id: 1,
            app: "live".into(),
            stream_key: "key?token=abc".into(),
            query: Some("token=abc".into()),
            publish_type: PublishType::Live,
        })
    );
    match it.next() {
        Some(SessionEvent::Metadata(m)) => {
            assert_eq!(m.get("width"), Some(&Amf0Value::Number(1280.0)))
        }
        other => panic!("expected metadata, got {other:?}"),
    }
    match it.next() {
        Some(SessionEvent::Tracks(tracks)) => {
            assert_eq!(tracks.len(), 2);
            assert!(matches!(tracks[0].codec, CodecConfig::H264(_)));
            assert_eq!(
                (tracks[0].id, tracks[0].width(), tracks[0].timescale),
                (1, Some(1280), 1000)
            );
            assert!(matches!(tracks[1].codec, CodecConfig::Aac(_)));
        }
        other => panic!("expected tracks, got {other:?}"),
    }
    let samples: Vec<_> = it
        .clone()
        .filter_map(|e| match e {
            SessionEvent::Sample(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(samples.len(), 12);
    let video: Vec<_> = samples.iter().filter(|s| s.track == 1).collect();
    assert_eq!(
        video.iter().map(|s| s.dts).collect::<Vec<_>>(),
        [0, 33, 66, 99, 132, 165]
    );
    assert_eq!(video[0].data.len(), 10_005);
    assert!(video[0].keyframe && !video[1].keyframe);
    assert_eq!(video[1].pts(), 99);
    let audio: Vec<_> = samples.iter().filter(|s| s.track == 2).collect();
    assert_eq!(
        audio.iter().map(|s| s.dts).collect::<Vec<_>>(),
        // Counted in AAC frames of 1024 samples, not in rounded ms.
        [0, 1024, 2048, 3072, 4096, 5120]
    );
    let tail: Vec<_> = it
        .filter(|e| !matches!(e, SessionEvent::Sample(_)))
        .collect();
    assert_eq!(
        tail,
        [
            &SessionEvent::Unpublished,
            &SessionEvent::Closed {
                reason: SessionEnd::ByPeer("the client closed the connection".into())
            }
        ]
    );

    // What the server said, read back with the crate's own decoder.
    let replies = server_messages(&out);
    let commands: Vec<&Command> = replies
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Command(c) => Some(c),
            _ => None,
        })
        .collect();
    assert!(matches!(replies[0].1, Message::WindowAckSize(2_500_000)));
    assert!(matches!(
        replies[1].1,
        Message::SetPeerBandwidth {
            size: 2_500_000,
            ..
        }
    ));
    assert!(matches!(replies[2].1, Message::SetChunkSize(4096)));
    let connect = commands.iter().find(|c| c.transaction_id == 1.0).unwrap();
    assert_eq!(connect.name, "_result");
    assert_eq!(
        connect.args[0].get("code").and_then(Amf0Value::as_str),
        Some("NetConnection.Connect.Success")
    );
    let create = commands.iter().find(|c| c.transaction_id == 4.0).unwrap();
    assert_eq!(create.args, [Amf0Value::Number(1.0)]);
    let statuses: Vec<_> = commands
        .iter()
        .filter(|c| c.name == "onStatus")
        .filter_map(|c| c.args[0].get("code").and_then(Amf0Value::as_str))
        .collect();
    assert_eq!(
        statuses,
        ["NetStream.Publish.Start", "NetStream.Unpublish.Success"]
    );
    assert!(replies.iter().any(|(sid, m)| *sid == 0
        && *m == Message::UserControl(UserControl::StreamBegin { stream_id: 1 })));
    assert!(
        replies
            .iter()
            .any(|(_, m)| *m == Message::UserControl(UserControl::PingResponse { timestamp: 7 }))
    );
}

#[test]
fn every_split_gives_the_same_events() {
    let script = publish_script("key", 0);
    let (whole, _) = drive(&script, &[script.len()]);
    let (bytewise, _) = drive(&script, &[1]);
    assert_eq!(bytewise, whole);
    // Splits at every position into two pieces.
    for at in (0..script.len()).step_by(97) {
        let (events, _) = drive(&script, &[at.max(1), script.len()]);
        assert_eq!(events, whole, "split at {at}");
    }
    let mut seed = 0x2545_f491_u32;
    for _ in 0..20 {
        let sizes: Vec<usize> = (0..64)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                1 + (seed % 3000) as usize
            })
            .collect();
        assert_eq!(drive(&script, &sizes).0, whole, "sizes {sizes:?}");
    }
}

#[test]
fn media_sent_before_the_decision_is_held_until_accept() {
    let script = publish_script_with("key", 0, false);
    let (events, _) = drive_with(&script, &[script.len()], Policy::AcceptAfterInput);
    let (reference, _) = drive(&script, &[script.len()]);
    assert_eq!(events, reference);
}

#[test]
fn timestamps_keep_increasing_across_extended_and_wrapped_values() {
    let start = u32::MAX - 40;
    let script = publish_script("key", start);
    let (events, _) = drive(&script, &[1]);
    let dts: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Sample(s) if s.track == 1 => Some(s.dts),
            _ => None,
        })
        .collect();
    let base = i64::from(start);
    assert_eq!(
        dts,
        [
            base,
            base + 33,
            base + 66,
            base + 99,
            base + 132,
            base + 165
        ]
    );
}

#[test]
fn rejected_publish_sends_the_reason_and_closes() {
    let script = publish_script("wrong", 0);
    let (events, out) = drive_with(&script, &[script.len()], Policy::RejectBadName);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, SessionEvent::Sample(_) | SessionEvent::Tracks(_)))
    );
    assert!(
        matches!(events.last(), Some(SessionEvent::Closed { reason: SessionEnd::Failed(reason) }) if reason.contains("unknown stream key"))
    );
    let replies = server_messages(&out);
    let status = replies.iter().rev().find_map(|(sid, m)| match m {
        Message::Command(c) if c.name == "onStatus" => Some((*sid, c.args[0].clone())),
        _ => None,
    });
    let (sid, info) = status.unwrap();
    assert_eq!(sid, 1);
    assert_eq!(
        info.get("code").and_then(Amf0Value::as_str),
        Some("NetStream.Publish.BadName")
    );
    assert_eq!(info.get("level").and_then(Amf0Value::as_str), Some("error"));
    assert_eq!(
        info.get("description").and_then(Amf0Value::as_str),
        Some("unknown stream key: check the key in the stream name")
    );
}

#[test]
fn key_inside_the_app_path_is_found() {
    let mut c = Client::handshake_plain();
    c.command(
        0,
        "connect",
        1.0,
        Client::connect_object("live/secret"),
        vec![],
    );
    c.command(0, "createStream", 2.0, Amf0Value::Null, vec![]);
    c.command(
        1,
        "publish",
        3.0,
        Amf0Value::Null,
        vec![Amf0Value::string("")],
    );
    let (events, _) = drive(&c.into_bytes(), &[1]);
    assert!(events.iter().any(|e| matches!(e,
        SessionEvent::PublishRequested { app, stream_key, query: None, .. } if app == "live" && stream_key == "secret")));
}

#[test]
fn play_is_refused_with_on_status() {
    let mut c = Client::handshake_plain();
    c.command(0, "connect", 1.0, Client::connect_object("live"), vec![]);
    c.command(0, "createStream", 2.0, Amf0Value::Null, vec![]);
    c.command(
        1,
        "play",
        3.0,
        Amf0Value::Null,
        vec![Amf0Value::string("key")],
    );
    let (_, out) = drive(&c.into_bytes(), &[usize::MAX]);
    let replies = server_messages(&out);
    assert!(replies.iter().any(|(_, m)| matches!(m, Message::Command(c)
        if c.name == "onStatus" && c.args[0].get("code") == Some(&Amf0Value::string("NetStream.Play.Failed")))));
}

fn error_of(script: &[u8], config: ServerConfig) -> (RtmpError, Vec<SessionEvent>) {
    let mut session = ServerSession::new(config);
    let err = session.handle_input(script).unwrap_err();
    let events = std::iter::from_fn(|| session.poll_event()).collect::<Vec<_>>();
    assert!(session.is_closed());
    assert!(matches!(events.last(), Some(SessionEvent::Closed { .. })));
    // Input after the close is ignored.
    assert!(session.handle_input(b"more").is_ok());
    (err, events)
}

#[test]
fn chunk_size_zero_and_top_bit_are_refused() {
    for size in [0u32, 1 << 31] {
        let mut c = Client::handshake_plain();
        c.raw_message(2, 0, 1, &size.to_be_bytes());
        let (err, _) = error_of(&c.into_bytes(), ServerConfig::default());
        assert_eq!(
            err.path(),
            Some("set chunk size (type 1, csid 2, stream 0) > set chunk size"),
            "{err}"
        );
        assert_eq!(err.offset(), Some(0));
    }
}

#[test]
fn amf_string_longer_than_its_message_is_refused() {
    let mut c = Client::handshake_plain();
    c.raw_message(3, 0, 20, &[0x02, 0x00, 0x40, b'c', b'o']);
    let (err, _) = error_of(&c.into_bytes(), ServerConfig::default());
    assert_eq!(
        err.path(),
        Some("command (type 20, csid 3, stream 0) > command > amf0 value 0 > string > bytes"),
        "{err}"
    );
}

#[test]
fn message_longer_than_the_cap_is_refused() {
    let mut c = Client::handshake_plain();
    c.raw_message(6, 1, 9, &vec![0x17; 2000]);
    let config = ServerConfig {
        max_message_len: 1000,
        ..ServerConfig::default()
    };
    let (err, _) = error_of(&c.into_bytes(), config);
    assert!(
        matches!(
            err,
            RtmpError::LimitExceeded {
                value: 2000,
                max: 1000,
                offset: 3073,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn garbage_instead_of_c0_c1_is_refused() {
    let (err, events) = error_of(
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ServerConfig::default(),
    );
    assert_eq!(err, RtmpError::UnsupportedVersion { version: b'G' });
    assert_eq!(events.len(), 1);
}

#[test]
fn disconnect_mid_chunk_reports_only_complete_messages() {
    let script = publish_script("key", 0);
    let (whole, _) = drive(&script, &[script.len()]);
    // Cut inside the 10 kB key frame: the session sees neither it nor what follows.
    let key_frame_at = script
        .windows(4)
        .position(|w| w == [0x00, 0x27, 0x11, 0x65])
        .unwrap();
    let (events, _) = drive(&script[..key_frame_at + 500], &[1]);
    let complete: Vec<_> = whole
        .iter()
        .take_while(|e| !matches!(e, SessionEvent::Sample(_)))
        .filter(|e| !matches!(e, SessionEvent::Tracks(_)))
        .cloned()
        .chain([
            SessionEvent::Unpublished,
            SessionEvent::Closed {
                reason: SessionEnd::ByPeer("the client closed the connection".into()),
            },
        ])
        .collect();
    assert_eq!(events, complete);
}

#[test]
fn a_publish_that_fails_ends_with_the_failure_not_unpublished() {
    // A publish under way, then a chunk size of 0: a protocol violation.
    let mut script = publish_script_with("key", 0, false);
    let publish = script.len();
    let mut c = Client::after_handshake(&[]);
    c.raw_message(2, 0, 1, &0u32.to_be_bytes());
    script.extend(c.into_bytes());
    let (events, _) = drive(&script, &[publish, script.len() - publish]);
    assert!(events.iter().any(|e| matches!(e, SessionEvent::Sample(_))));
    assert!(
        !events.contains(&SessionEvent::Unpublished),
        "a failed publish is not a clean unpublish: {:?}",
        events.last()
    );
    let Some(SessionEvent::Closed {
        reason: SessionEnd::Failed(reason),
    }) = events.last()
    else {
        panic!("the session ends with its failure: {:?}", events.last());
    };
    assert!(reason.contains("set chunk size"), "{reason}");
}

#[test]
fn acknowledgements_follow_the_window() {
    let mut c = Client::handshake_plain();
    c.send(2, 0, 0, &Message::WindowAckSize(5000));
    for _ in 0..10 {
        c.raw_message(3, 0, 0x30, &[0; 1000]);
    }
    let (_, out) = drive(&c.into_bytes(), &[1500]);
    let acks: Vec<u32> = server_messages(&out)
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Acknowledgement { sequence } => Some(*sequence),
            _ => None,
        })
        .collect();
    assert!(acks.len() >= 2, "{acks:?}");
    assert!(acks.windows(2).all(|w| w[1] - w[0] >= 5000), "{acks:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..4096), split in 1usize..64) {
        let mut session = ServerSession::new(ServerConfig::default());
        for piece in data.chunks(split) {
            let _ = session.handle_input(piece);
        }
        // Arbitrary bytes after a valid handshake reach the chunk layer.
        let mut session = ServerSession::new(ServerConfig::default());
        let _ = session.handle_input(&Client::handshake_plain().into_bytes());
        for piece in data.chunks(split) {
            let _ = session.handle_input(piece);
            while session.poll_event().is_some() {}
        }
    }

    #[test]
    fn mutated_publish_scripts_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut script = publish_script("key", 0);
        for (at, byte) in flips {
            let i = at.index(script.len() - 3073) + 3073;
            script[i] = byte;
        }
        let _ = drive(&script, &[977]);
    }
}
