//! AMF0 values (command and metadata messages).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = streamforge_protocols::rtmp::amf0::decode_all(data);
});
