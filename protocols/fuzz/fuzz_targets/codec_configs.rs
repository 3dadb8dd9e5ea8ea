//! Decoder configuration records and parameter sets: avcC, hvcC,
//! AudioSpecificConfig, and Annex B access units.
#![no_main]
use libfuzzer_sys::fuzz_target;
use streamforge_protocols::codec::{AudioSpecificConfig, AvcConfig, HevcConfig};

fuzz_target!(|data: &[u8]| {
    let _ = AvcConfig::parse(data);
    let _ = HevcConfig::parse(data);
    let _ = AudioSpecificConfig::parse(data);
    let _ = AvcConfig::from_annex_b(data);
    let _ = HevcConfig::from_annex_b(data);
});
