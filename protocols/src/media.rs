//! The media model every format in this crate speaks: tracks and timed samples.
//!
//! Demuxers (FLV, RTP, fMP4 reading) produce [`Sample`]s; the CMAF fragmenter
//! consumes them. Times are integers in the track's own timescale, never
//! floating point, so that no drift accumulates across segments.

use bytes::Bytes;

use crate::codec::CodecConfig;

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

/// Everything a CMAF header (init segment) needs to describe one track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    pub id: TrackId,
    /// Ticks per second of this track's sample times (`mdhd` timescale).
    pub timescale: u32,
    pub codec: CodecConfig,
    /// ISO 639-2/T code, `und` when unknown.
    pub language: String,
    /// Media time (in `timescale`) shown at presentation time zero, written as
    /// a single edit (ISO/IEC 14496-12 §8.6.6); 0 writes no edit list. Encoders
    /// with B-frames shift by the first composition offset; AAC encoders skip
    /// their priming samples this way.
    pub presentation_offset: u64,
}

impl Track {
    pub fn new(id: TrackId, timescale: u32, codec: CodecConfig) -> Self {
        Self {
            id,
            timescale,
            codec,
            language: "und".to_owned(),
            presentation_offset: 0,
        }
    }

    pub fn kind(&self) -> MediaKind {
        self.codec.kind()
    }

    /// Displayed width in pixels, for video.
    pub fn width(&self) -> Option<u32> {
        self.codec.width()
    }

    /// Displayed height in pixels, for video.
    pub fn height(&self) -> Option<u32> {
        self.codec.height()
    }

    /// Output sample rate in Hz, for audio.
    pub fn sample_rate(&self) -> Option<u32> {
        self.codec.sample_rate()
    }

    /// Output channel count, for audio.
    pub fn channels(&self) -> Option<u16> {
        self.codec.channels()
    }
}

/// How an ingest session (RTMP, RTSP) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The peer ended it: it closed the connection or sent TEARDOWN.
    ByPeer(String),
    /// It failed: malformed input, a protocol violation, a refused publish.
    Failed(String),
}

impl SessionEnd {
    /// The failure, if the session failed.
    pub fn error(&self) -> Option<&str> {
        match self {
            SessionEnd::ByPeer(_) => None,
            SessionEnd::Failed(reason) => Some(reason),
        }
    }
}

impl std::fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionEnd::ByPeer(reason) | SessionEnd::Failed(reason) => f.write_str(reason),
        }
    }
}
