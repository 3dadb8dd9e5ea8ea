use super::*;

const SDP: &str = "v=0\r\n\
o=- 0 0 IN IP4 127.0.0.1\r\n\
s=No Name\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QADKzZQUH7ARAAAAMAEAAAAwPI8UKZYA==,aOvjyyLA; profile-level-id=64000C\r\n\
a=control:streamid=0\r\n\
m=audio 0 RTP/AVP 97\r\n\
a=rtpmap:97 MPEG4-GENERIC/44100/1\r\n\
a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=120856E500\r\n\
a=control:streamid=1\r\n";

const URL: &str = "rtsp://127.0.0.1:8554/live/cam?key=k1";

fn session() -> ServerSession {
    ServerSession::new(
        ServerConfig {
            session_id: "abc".into(),
            timeout_secs: 10,
            udp_ports: Some((6000, 6001)),
        },
        now(),
    )
}

/// The time of an input in tests that are not about time.
fn now() -> Instant {
    Instant::now()
}

fn request(method: &str, url: &str, cseq: u32, extra: &str, body: &str) -> Vec<u8> {
    let length = if body.is_empty() {
        String::new()
    } else {
        format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    format!("{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}{length}\r\n{body}").into_bytes()
}

fn responses(s: &mut ServerSession) -> Vec<String> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

fn events(s: &mut ServerSession) -> Vec<SessionEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn rtp(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![
        0x80,
        pt | if marker { 0x80 } else { 0 },
        (seq >> 8) as u8,
        seq as u8,
    ];
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1]);
    p.extend_from_slice(payload);
    p
}

fn sender_report(ntp: u64, ts: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6, 0, 0, 0, 1];
    p.extend_from_slice(&ntp.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p
}

fn interleaved(channel: u8, packet: &[u8]) -> Vec<u8> {
    let mut out = vec![b'$', channel];
    out.extend_from_slice(&(packet.len() as u16).to_be_bytes());
    out.extend_from_slice(packet);
    out
}

fn aac(ts: u32) -> Vec<u8> {
    // One AU of 4 bytes: AU-headers-length 16, size 4 << 3.
    rtp(
        97,
        (ts / 1024) as u16,
        ts,
        true,
        &[0, 16, 0, 4 << 3, 1, 2, 3, 4],
    )
}

/// Everything ffmpeg sends up to RECORD, then a second of media.
fn publish_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(request("OPTIONS", URL, 1, "", ""));
    out.extend(request("ANNOUNCE", URL, 2, "", SDP));
    out.extend(request(
        "SETUP",
        &format!("{URL}/streamid=0"),
        3,
        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n",
        "",
    ));
    out.extend(request(
        "SETUP",
        &format!("{URL}/streamid=1"),
        4,
        "Transport: RTP/AVP/TCP;unicast;interleaved=2-3;mode=record\r\nSession: abc\r\n",
        "",
    ));
    out.extend(request("RECORD", URL, 5, "Session: abc\r\n", ""));
    out.extend(interleaved(1, &sender_report(10 << 32, 1000)));
    out.extend(interleaved(3, &sender_report(10 << 32, 500)));
    for i in 0..25u32 {
        let nal: &[u8] = if i == 0 { &[0x65, 1, 2] } else { &[0x41, 3] };
        out.extend(interleaved(
            0,
            &rtp(96, i as u16, 1000 + i * 3600, true, nal),
        ));
        out.extend(interleaved(2, &aac(500 + i * 1764)));
    }
    out
}

fn accept(s: &mut ServerSession) -> Vec<SessionEvent> {
    let mut all = Vec::new();
    loop {
        let batch = events(s);
        if batch.is_empty() {
            return all;
        }
        for e in &batch {
            if let SessionEvent::AnnounceRequested { request_id, path } = e {
                assert_eq!(path, "live/cam?key=k1");
                s.accept_announce(*request_id).unwrap();
            }
        }
        all.extend(batch);
    }
}

#[test]
fn a_publish_over_tcp() {
    let mut s = session();
    s.handle_input(&publish_bytes(), now()).unwrap();
    let events = accept(&mut s);
    let replies = responses(&mut s);
    assert_eq!(replies.len(), 5, "{replies:?}");
    assert!(replies[0].contains("Public: OPTIONS, ANNOUNCE"));
    assert!(
        replies.iter().all(|r| r.starts_with("RTSP/1.0 200 OK\r\n")),
        "{replies:?}"
    );
    assert!(replies[2].contains("Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"));
    assert!(replies[2].contains("Session: abc;timeout=10"));

    let tracks: Vec<&Vec<Track>> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Tracks(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(tracks.len(), 1);
    assert_eq!(tracks[0][0].codec.codec_string(), "avc1.64000c");
    assert_eq!(tracks[0][1].timescale, 44_100);
    let samples: Vec<&Sample> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Sample(s) => Some(s),
            _ => None,
        })
        .collect();
    let video: Vec<i64> = samples
        .iter()
        .filter(|s| s.track == 1)
        .map(|s| s.dts)
        .collect();
    let audio: Vec<i64> = samples
        .iter()
        .filter(|s| s.track == 2)
        .map(|s| s.dts)
        .collect();
    // Both sender reports map their RTP time to the same instant: the
    // first frames are shown together. The SPS declares a reorder window of
    // two frames, so video decodes two frame intervals ahead of that.
    let first_pts = samples.iter().find(|s| s.track == 1).unwrap().pts();
    assert_eq!(first_pts, 0);
    assert_eq!(video[0], -7200);
    assert_eq!(audio[0], 0);
    assert_eq!(video[1], -3600);
    assert_eq!(audio[1], 1764);
    // The SPS declares a reorder window, so video may trail audio.
    let first_video = samples.iter().find(|s| s.track == 1).unwrap();
    assert!(first_video.keyframe);
    assert_eq!(&first_video.data[..], &[0, 0, 0, 3, 0x65, 1, 2]);
    assert!(!s.is_closed());
}

#[test]
fn every_split_gives_the_same_events() {
    let bytes = publish_bytes();
    let mut whole = session();
    whole.handle_input(&bytes, now()).unwrap();
    let expected = accept(&mut whole);
    for split in (0..bytes.len()).step_by(7) {
        let mut s = session();
        s.handle_input(&bytes[..split], now()).unwrap();
        let mut got = accept(&mut s);
        s.handle_input(&bytes[split..], now()).unwrap();
        got.extend(accept(&mut s));
        assert_eq!(got, expected, "split at {split}");
    }
}

#[test]
fn a_refused_announce_gets_its_status_and_closes() {
    let mut s = session();
    s.handle_input(&request("ANNOUNCE", URL, 1, "", SDP), now())
        .unwrap();
    let Some(SessionEvent::AnnounceRequested { request_id, .. }) = s.poll_event() else {
        panic!()
    };
    s.reject_announce(
        request_id,
        Refusal::Unauthorized,
        "wrong key for stream \"cam\"",
    );
    let replies = responses(&mut s);
    assert!(
        replies[0].starts_with("RTSP/1.0 401 Unauthorized\r\n"),
        "{replies:?}"
    );
    assert!(replies[0].contains("wrong key"));
    assert!(s.is_closed());
    assert!(matches!(s.poll_event(), Some(SessionEvent::Closed { .. })));
}

#[test]
fn udp_setup_names_the_ports() {
    let mut s = session();
    s.handle_input(&request("ANNOUNCE", URL, 1, "", SDP), now())
        .unwrap();
    accept(&mut s);
    s.handle_input(
        &request(
            "SETUP",
            &format!("{URL}/streamid=1"),
            2,
            "Transport: RTP/AVP;unicast;client_port=5000-5001;mode=record\r\n",
            "",
        ),
        now(),
    )
    .unwrap();
    let replies = responses(&mut s);
    assert!(replies[1].contains("server_port=6000-6001"), "{replies:?}");
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::UdpSetup {
            track: 1,
            rtp_port: 5000,
            rtcp_port: 5001
        }]
    );
    s.handle_input(&request("RECORD", URL, 3, "Session: abc\r\n", ""), now())
        .unwrap();
    s.handle_udp(1, false, &aac(0), now()).unwrap();
    s.handle_udp(1, false, &aac(1024), now()).unwrap();
    let got = events(&mut s);
    assert!(
        got.iter()
            .any(|e| matches!(e, SessionEvent::Tracks(t) if t.len() == 1))
    );
}

#[test]
fn wrong_payload_type_ends_the_session() {
    let mut s = session();
    let mut bytes = Vec::new();
    bytes.extend(request("ANNOUNCE", URL, 1, "", SDP));
    bytes.extend(request(
        "SETUP",
        &format!("{URL}/streamid=0"),
        2,
        "Transport: RTP/AVP/TCP;interleaved=0-1\r\n",
        "",
    ));
    bytes.extend(request("RECORD", URL, 3, "", ""));
    bytes.extend(interleaved(0, &rtp(33, 1, 0, true, &[0x65, 1])));
    s.handle_input(&bytes, now()).unwrap();
    let Some(SessionEvent::AnnounceRequested { request_id, .. }) = s.poll_event() else {
        panic!()
    };
    let err = s.accept_announce(request_id).unwrap_err();
    assert_eq!(
        err,
        RtspError::PayloadType {
            track: 0,
            sequence: 1,
            expected: 96,
            got: 33
        }
    );
    assert!(s.is_closed());
}

#[test]
fn bad_requests_get_precise_statuses() {
    let status = |bytes: Vec<u8>| {
        let mut s = session();
        let _ = s.handle_input(&bytes, now());
        responses(&mut s)
            .first()
            .map(|r| r.lines().next().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        status(b"GARBAGE\x00\x01 nonsense\r\n\r\n".to_vec()),
        "RTSP/1.0 400 Bad Request"
    );
    assert_eq!(
        status(b"OPTIONS rtsp://h/ RTSP/1.0\r\n\r\n".to_vec()),
        "RTSP/1.0 400 Bad Request"
    );
    assert_eq!(
        status(request("SETUP", URL, 1, "Transport: RTP/AVP/TCP\r\n", "")),
        "RTSP/1.0 455 Method Not Valid In This State"
    );
    assert_eq!(
        status(request("DESCRIBE", URL, 1, "", "")),
        "RTSP/1.0 405 Method Not Allowed"
    );
    assert_eq!(
        status(request("ANNOUNCE", URL, 1, "", "v=0\r\nbroken")),
        "RTSP/1.0 400 Bad Request"
    );
    let jpeg = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\n";
    assert_eq!(
        status(request("ANNOUNCE", URL, 1, "", jpeg)),
        "RTSP/1.0 415 Unsupported Media Type"
    );
}

#[test]
fn an_endless_header_is_refused() {
    let mut s = session();
    // A whole request first: the endless one starts after it.
    let first = request("OPTIONS", URL, 1, "", "");
    s.handle_input(&first, now()).unwrap();
    let mut bytes = b"OPTIONS rtsp://h/ RTSP/1.0\r\nX: ".to_vec();
    bytes.extend(std::iter::repeat_n(b'a', MAX_MESSAGE + 10));
    assert_eq!(
        s.handle_input(&bytes, now()),
        Err(RtspError::TooLarge {
            offset: first.len() as u64
        })
    );
    assert!(s.is_closed());
}

#[test]
fn garbage_is_reported_at_its_byte_offset() {
    let mut s = session();
    let first = request("OPTIONS", URL, 1, "", "");
    let mut bytes = first.clone();
    bytes.extend_from_slice(b"\x16\x03\x01 garbage\r\n\r\n");
    let err = s.handle_input(&bytes, now()).unwrap_err();
    let RtspError::Malformed { offset, near } = &err else {
        panic!("{err}");
    };
    assert_eq!(*offset, first.len() as u64, "{err}");
    assert!(near.contains("garbage"), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("at byte {}", first.len()))
    );
}

/// Inputs the `rtsp_session` fuzz target found: an SDP that tripped an
/// assertion in sdp-types 0.1 and a non-ASCII AAC `config=`.
#[test]
fn fuzz_regressions() {
    for input in [
        &include_bytes!("../../../fuzz/regressions/rtsp_session-sdp-types-assert.bin")[..],
        &include_bytes!("../../../fuzz/regressions/rtsp_session-non-ascii-config.bin")[..],
    ] {
        let (&split, rest) = input.split_first().unwrap();
        let mut s = session();
        for chunk in rest.chunks(usize::from(split).max(1)) {
            if s.handle_input(chunk, now()).is_err() {
                break;
            }
            accept(&mut s);
        }
    }
}

#[test]
fn setup_urls_with_the_query_after_the_control_name_the_track() {
    // GStreamer's rtspclientsink: `{base path}/{control}?{query}`.
    let mut s = session();
    s.handle_input(&request("ANNOUNCE", URL, 1, "", SDP), now())
        .unwrap();
    accept(&mut s);
    for (cseq, (control, channels)) in [("streamid=0", "0-1"), ("streamid=1", "2-3")]
        .into_iter()
        .enumerate()
    {
        s.handle_input(
            &request(
                "SETUP",
                &format!("rtsp://127.0.0.1:8554/live/cam/{control}?key=k1"),
                2 + cseq as u32,
                &format!("Transport: RTP/AVP/TCP;unicast;interleaved={channels};mode=record\r\n"),
                "",
            ),
            now(),
        )
        .unwrap();
    }
    let replies = responses(&mut s);
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert!(
        replies[1..]
            .iter()
            .all(|r| r.starts_with("RTSP/1.0 200 OK")),
        "{replies:?}"
    );
}

#[test]
fn a_key_sent_as_credentials_after_a_challenge_publishes() {
    let mut s = session();
    let bare = "rtsp://127.0.0.1:8554/live/cam";
    s.handle_input(&request("ANNOUNCE", bare, 1, "", SDP), now())
        .unwrap();
    let Some(SessionEvent::AnnounceRequested { request_id, path }) = s.poll_event() else {
        panic!()
    };
    assert_eq!(path, "live/cam");
    s.reject_announce(
        request_id,
        Refusal::Unauthorized,
        "stream \"cam\" needs its key",
    );
    let replies = responses(&mut s);
    assert!(
        replies[0].starts_with("RTSP/1.0 401 Unauthorized\r\n"),
        "{replies:?}"
    );
    assert!(
        replies[0].contains("WWW-Authenticate: Basic realm=\"StreamForge\""),
        "{replies:?}"
    );
    assert!(!s.is_closed());
    // ffmpeg and GStreamer answer with the URL's user:password
    // (`rtsp://publisher:k1@…`): "publisher:k1" in base64.
    s.handle_input(
        &request(
            "ANNOUNCE",
            bare,
            2,
            "Authorization: Basic cHVibGlzaGVyOmsx\r\n",
            SDP,
        ),
        now(),
    )
    .unwrap();
    let Some(SessionEvent::AnnounceRequested { request_id, path }) = s.poll_event() else {
        panic!()
    };
    assert_eq!(path, "live/cam?key=k1");
    s.accept_announce(request_id).unwrap();
    let replies = responses(&mut s);
    assert!(replies[0].starts_with("RTSP/1.0 200 OK"), "{replies:?}");

    // Wrong credentials close the session; so does a client that keeps
    // sending none after two challenges.
    let mut s = session();
    for cseq in 1..=3 {
        s.handle_input(&request("ANNOUNCE", bare, cseq, "", SDP), now())
            .unwrap();
        let Some(SessionEvent::AnnounceRequested { request_id, .. }) = s.poll_event() else {
            panic!()
        };
        s.reject_announce(request_id, Refusal::Unauthorized, "needs its key");
        assert_eq!(s.is_closed(), cseq == 3);
    }
}

/// A STAP-A (RFC 6184 §5.7.1) of `nals`.
fn stap_a(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0x18];
    for nal in nals {
        out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

#[test]
fn new_in_band_parameter_sets_announce_the_tracks_again_before_their_keyframe() {
    use crate::codec::h264::tests::{PPS_720P_HIGH, SPS_720P_HIGH};
    // The SDP's own parameter sets.
    const SPS: &[u8] = &[
        103, 100, 0, 12, 172, 217, 65, 65, 251, 1, 16, 0, 0, 3, 0, 16, 0, 0, 3, 3, 200, 241, 66,
        153, 96,
    ];
    const PPS: &[u8] = &[104, 235, 227, 203, 34, 192];
    let mut bytes = publish_bytes();
    // Cut the media after the RECORD: the frames are sent again below.
    let record = String::from_utf8_lossy(&bytes)
        .find("RECORD")
        .expect("a RECORD");
    let end = bytes[record..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap()
        + record
        + 4;
    bytes.truncate(end);
    bytes.extend(interleaved(1, &sender_report(10 << 32, 1000)));
    bytes.extend(interleaved(3, &sender_report(10 << 32, 500)));
    let mut seq = 0u16;
    for i in 0..40u32 {
        let ts = 1000 + i * 3600;
        // Keyframes at 0 (the SDP's sets, repeated in band), 12 (the same)
        // and 24 (new sets: the encoder changed its configuration).
        let sets: Option<[&[u8]; 2]> = match i {
            0 | 12 => Some([SPS, PPS]),
            24 => Some([SPS_720P_HIGH, PPS_720P_HIGH]),
            _ => None,
        };
        if let Some(sets) = sets {
            bytes.extend(interleaved(0, &rtp(96, seq, ts, false, &stap_a(&sets))));
            seq += 1;
        }
        let nal: &[u8] = if sets.is_some() {
            &[0x65, 1, 2]
        } else {
            &[0x41, 3]
        };
        bytes.extend(interleaved(0, &rtp(96, seq, ts, true, nal)));
        seq += 1;
        bytes.extend(interleaved(2, &aac(500 + i * 1764)));
    }
    let mut s = session();
    s.handle_input(&bytes, now()).unwrap();
    let events = accept(&mut s);
    let announced: Vec<(usize, u32)> = events
        .iter()
        .enumerate()
        .filter_map(|(at, e)| match e {
            SessionEvent::Tracks(t) => Some((at, t[0].width().unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(announced.len(), 2, "{announced:?}");
    assert_eq!(announced[1].1, 1280);
    // The next video sample after the second announcement is the keyframe
    // with the new sets in it; every video sample before it came earlier.
    let video_after = events[announced[1].0..]
        .iter()
        .find_map(|e| match e {
            SessionEvent::Sample(s) if s.track == 1 => Some(s),
            _ => None,
        })
        .unwrap();
    assert!(video_after.keyframe);
    // Frame 24, decoded two frames of reorder window early.
    assert_eq!(video_after.pts(), 24 * 3600);
    assert!(
        video_after
            .data
            .windows(SPS_720P_HIGH.len())
            .any(|w| w == SPS_720P_HIGH)
    );
}

#[test]
fn a_silent_sender_times_out_on_the_session_clock() {
    let t0 = Instant::now();
    let second = Duration::from_secs(1);
    let mut s = ServerSession::new(
        ServerConfig {
            session_id: "abc".into(),
            timeout_secs: 10,
            udp_ports: None,
        },
        t0,
    );
    assert_eq!(s.poll_timeout(), Some(t0 + 10 * second));
    s.handle_timeout(t0 + 9 * second);
    assert!(!s.is_closed());
    // A keep-alive at 5 s moves the deadline.
    s.handle_input(&request("OPTIONS", URL, 1, "", ""), t0 + 5 * second)
        .unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + 15 * second));
    // Input that says it arrived earlier does not move it back.
    s.handle_input(&request("OPTIONS", URL, 2, "", ""), t0 + 2 * second)
        .unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + 15 * second));
    s.handle_timeout(t0 + 14 * second);
    assert!(!s.is_closed());
    s.handle_timeout(t0 + 15 * second);
    assert!(s.is_closed());
    assert_eq!(s.poll_timeout(), None);
    let closed = events(&mut s).pop();
    assert_eq!(
        closed,
        Some(SessionEvent::Closed {
            reason: SessionEnd::Failed("no data from the sender for 10 s".into())
        })
    );
}
