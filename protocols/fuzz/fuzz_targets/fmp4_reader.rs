//! The fragmented-MP4 reader (ffmpeg's output on a pipe), fed in pieces.
#![no_main]
use libfuzzer_sys::fuzz_target;
use streamforge_protocols::mp4::FragmentedReader;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let piece = usize::from(split).max(1) * 16;
    let mut reader = FragmentedReader::new();
    for chunk in rest.chunks(piece) {
        reader.feed(chunk);
        loop {
            match reader.poll() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
