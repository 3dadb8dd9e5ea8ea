//! The RTSP publish session on arbitrary bytes from a sender, fed in
//! arbitrary pieces, accepting every ANNOUNCE so SETUP, RECORD, the
//! interleaved RTP/RTCP path, the depacketizers and the timeline run too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use streamforge_protocols::rtsp::{ServerConfig, ServerSession, SessionEvent};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let piece = usize::from(split).max(1);
    let mut session = ServerSession::new(ServerConfig {
        session_id: "fuzz".into(),
        timeout_secs: 10,
        udp_ports: Some((6000, 6001)),
    });
    for chunk in rest.chunks(piece) {
        if session.handle_input(chunk).is_err() {
            break;
        }
        while session.poll_transmit().is_some() {}
        while let Some(event) = session.poll_event() {
            if let SessionEvent::AnnounceRequested { request_id, .. } = event {
                let _ = session.accept_announce(request_id);
            }
        }
    }
    session.handle_eof();
    while session.poll_event().is_some() {}
});
