//! FLV video and audio tag bodies (legacy and Enhanced RTMP).
#![no_main]
use libfuzzer_sys::fuzz_target;
use streamforge_protocols::rtmp::flv;

fuzz_target!(|data: &[u8]| {
    let body = bytes::Bytes::copy_from_slice(data);
    let _ = flv::parse_video(&body);
    let _ = flv::parse_audio(&body);
});
