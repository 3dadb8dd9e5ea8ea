//! The RTMP server session on arbitrary bytes from a client, fed in
//! arbitrary pieces, accepting every publish request so the media path
//! (FLV demuxing) runs too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use streamforge_protocols::rtmp::{ServerConfig, ServerSession, SessionEvent};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let piece = usize::from(split).max(1);
    let mut session = ServerSession::new(ServerConfig::default());
    for chunk in rest.chunks(piece) {
        if session.handle_input(chunk).is_err() {
            break;
        }
        while session.poll_transmit().is_some() {}
        while let Some(event) = session.poll_event() {
            if let SessionEvent::PublishRequested { request_id, .. } = event {
                let _ = session.accept_publish(request_id);
            }
        }
    }
    session.handle_eof();
    while session.poll_event().is_some() {}
});
