//! LL-HLS blocking-reload query parameters (`_HLS_msn`, `_HLS_part`,
//! `_HLS_skip`) and live media file names.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = streamforge_protocols::hls::PlaylistQuery::parse(text);
    let _ = streamforge_protocols::live::parse_media_name(text);
    let _ = streamforge_protocols::hls::uri_query::append_query(text, "exp=1&sig=ab");
});
