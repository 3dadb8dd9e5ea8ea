//! MPEG-TS (SRT payloads): the demuxer and the session behind it, fed in
//! pieces whose sizes come from the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use streamforge_protocols::ts::TsSession;

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let mut session = TsSession::new();
    for chunk in data.chunks(usize::from(split).max(1) * 7) {
        if session.push(chunk).is_err() {
            return;
        }
        while session.poll_event().is_some() {}
    }
    let _ = session.finish();
    while session.poll_event().is_some() {}
});
