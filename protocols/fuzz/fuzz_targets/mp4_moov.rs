//! A progressive MP4's `moov` (sample tables) and top-level box scanning.
#![no_main]
use libfuzzer_sys::fuzz_target;
use streamforge_protocols::mp4::{ProgressiveMp4, top_level_boxes};

fuzz_target!(|data: &[u8]| {
    // As `streamforge package` parses a moov: for a file of a given size.
    let _ = ProgressiveMp4::parse_for_file(data, 64 << 20);
    let _ = top_level_boxes(data).count();
});
