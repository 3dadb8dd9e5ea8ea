//! MP4 reading: fragmented MP4 as it arrives (e.g. ffmpeg's stdout with
//! `-movflags frag_keyframe+empty_moov+default_base_moof`), and plain MP4
//! from a complete `moov` and `mdat`.
//!
//! - [`boxes`]: top-level box headers, with "need more bytes" kept apart from "invalid".
//! - [`track`]: a `trak` to a [`Track`](crate::media::Track) with its codec
//!   configuration read from `avcC`/`hvcC`/`esds`/`dOps`.
//! - [`fragmented`]: [`FragmentedReader`], push-based: `feed` bytes, `poll` events.
//! - [`progressive`]: [`ProgressiveMp4`], sample tables (`stbl`) to samples.
//!
//! Box bodies are decoded with `mp4-atom`.

pub mod boxes;
pub mod fragmented;
pub mod progressive;
pub mod track;

use crate::codec::CodecError;
use crate::media::TrackId;

pub use boxes::{BoxHeader, TopLevelBox, top_level_boxes};
pub use fragmented::{FragmentedReader, ReaderEvent};
pub use progressive::{ProgressiveMp4, SampleRef};

/// Largest top-level box buffered whole (a `moov`, `moof` or fragment `mdat`).
pub const MAX_BOX_SIZE: u64 = 64 << 20;

/// Why MP4 input could not be read. Offsets are from the start of the stream.
#[derive(Debug, thiserror::Error)]
pub enum Mp4Error {
    #[error("{context} at byte {offset}: input ends inside it")]
    Truncated { offset: u64, context: &'static str },
    #[error("{context} at byte {offset}: {reason}")]
    Invalid {
        offset: u64,
        context: &'static str,
        reason: &'static str,
    },
    #[error("box '{kind}' at byte {offset} is {size} bytes, over the {max} byte limit")]
    BoxTooLarge {
        kind: String,
        offset: u64,
        size: u64,
        max: u64,
    },
    #[error("box '{kind}' at byte {offset}: {source}")]
    Decode {
        kind: String,
        offset: u64,
        source: mp4_atom::Error,
    },
    #[error("track {track}: {source}")]
    Codec { track: TrackId, source: CodecError },
    #[error("track {track}: unsupported sample entry '{entry}'")]
    UnsupportedCodec { track: TrackId, entry: String },
}

pub(crate) fn fourcc_string(kind: &[u8; 4]) -> String {
    kind.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}
