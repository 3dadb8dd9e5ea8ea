//! CMAF (ISO/IEC 23000-19) writing: track headers (init segments), media
//! segments made of chunks (`moof` + `mdat`), and the [`Fragmenter`] that
//! turns a stream of [`Sample`](crate::media::Sample)s into LL-HLS parts and
//! segments.
//!
//! - [`init`]: `ftyp` + `moov` for one track (a CMAF track file) or several.
//! - [`fragment`]: one chunk (`moof` + `mdat`) from a run of samples, and `styp`.
//! - [`fragmenter`]: the sans-IO state machine; see its docs for call order.
//!
//! Boxes are encoded with `mp4-atom`, which writes `tfhd`, `tfdt` (version 1)
//! and `trun` (version 1, signed composition offsets) exactly as CMAF needs,
//! so no box is hand-written here.

pub mod fragment;
pub mod fragmenter;
pub mod init;
#[cfg(test)]
mod tests;

use crate::media::TrackId;

pub use fragment::{ChunkSample, write_chunk_header, write_styp};
pub use fragmenter::{
    Event, Fragmenter, FragmenterConfig, Part, PartInfo, Segment, TargetDuration,
};
pub use init::{init_segment, init_segment_multi};

/// Largest sample accepted, well above any real access unit; caps memory per sample.
pub const MAX_SAMPLE_SIZE: usize = 64 << 20;

/// Why a CMAF structure could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CmafError {
    #[error("track {track}: no such track was added")]
    UnknownTrack { track: TrackId },
    #[error("track {track}: added twice")]
    DuplicateTrack { track: TrackId },
    #[error("track {track}: invalid description: {reason}")]
    InvalidTrack {
        track: TrackId,
        reason: &'static str,
    },
    #[error("track {track}: dts {dts} does not follow the previous dts {previous}")]
    NonMonotonicDts {
        track: TrackId,
        previous: i64,
        dts: i64,
    },
    #[error("track {track}: dts {dts} is negative; tfdt cannot carry it")]
    NegativeDts { track: TrackId, dts: i64 },
    #[error("track {track}: gap of {gap} ticks before dts {dts} exceeds a sample duration")]
    GapTooLarge { track: TrackId, dts: i64, gap: i64 },
    #[error("track {track}: segment would start at dts {dts} with a non-sync sample")]
    NotKeyframe { track: TrackId, dts: i64 },
    #[error("track {track}: sample at dts {dts} has zero duration")]
    ZeroDuration { track: TrackId, dts: i64 },
    #[error("track {track}: sample at dts {dts} is {size} bytes, over the {max} byte limit")]
    SampleTooLarge {
        track: TrackId,
        dts: i64,
        size: usize,
        max: usize,
    },
    #[error("track {track}: a follower track skipped segment {seq} of the track it follows")]
    FollowerSkipped { track: TrackId, seq: u64 },
    #[error("track {track}: chunk of {size} bytes does not fit one mdat")]
    ChunkTooLarge { track: TrackId, size: usize },
    #[error("track {track}: encoding {what}: {source}")]
    Encode {
        track: TrackId,
        what: &'static str,
        source: mp4_atom::Error,
    },
}
