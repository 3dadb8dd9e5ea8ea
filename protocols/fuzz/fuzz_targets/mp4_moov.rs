//! A progressive MP4's `moov` (sample tables) and top-level box scanning.
#![no_main]
use libfuzzer_sys::fuzz_target;
use streamforge_protocols::mp4::{ProgressiveMp4, top_level_boxes};

fuzz_target!(|data: &[u8]| {
    let _ = ProgressiveMp4::parse(data);
    let _ = top_level_boxes(data).count();
});
