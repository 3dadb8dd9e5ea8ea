//! The media model every format in this crate speaks: tracks and timed samples.
//!
//! Demuxers (FLV, RTP, fMP4 reading) produce [`Sample`]s; the CMAF fragmenter
//! consumes them. Times are integers in the track's own timescale, never
//! floating point, so that no drift accumulates across segments.

use bytes::Bytes;

/// Identifies a track within one presentation (the `track_ID` of `tkhd`/`tfhd`).
pub type TrackId = u32;

/// One access unit (a video frame or an audio frame) of one track.
///
/// `dts` and `duration` are in the track's timescale. The presentation time is
/// `dts + cts_offset`; B-frames give positive offsets (or negative ones after
/// an edit that shifts the first presentation time to zero).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub track: TrackId,
    /// Decode timestamp, in the track's timescale.
    pub dts: i64,
    /// `pts - dts`, in the track's timescale.
    pub cts_offset: i32,
    /// Duration, in the track's timescale.
    pub duration: u32,
    /// A sync sample: decoding can start here (IDR/IRAP for video; every audio frame).
    pub keyframe: bool,
    /// The sample payload in the form MP4 stores it (length-prefixed NAL units
    /// for H.264/H.265, raw frames for AAC and Opus).
    pub data: Bytes,
}

impl Sample {
    /// Presentation timestamp, in the track's timescale.
    pub fn pts(&self) -> i64 {
        self.dts + i64::from(self.cts_offset)
    }
}

/// Whether a track carries pictures or sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Video,
    Audio,
}

