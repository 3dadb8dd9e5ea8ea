//! VOD packaging of one presentation: its tracks and samples in, CMAF track
//! files plus the HLS and DASH manifests that reference them out.
//!
//! # Call order
//!
//! 1. [`Packager::new`] with the presentation's tracks, then drain
//!    [`Packager::poll_output`]: one `init.mp4` per rendition.
//! 2. [`Packager::push`] every sample, in decode order per track (tracks may
//!    interleave, as a muxed file stores them), draining `poll_output` after
//!    each push: a segment file comes out as soon as it is cut, so the caller
//!    writes it and drops it.
//! 3. [`Packager::finish`] with the publish time, then drain `poll_output`:
//!    the media playlists, the I-frame playlists, `master.m3u8` and
//!    `manifest.mpd`.
//!
//! # Layout
//!
//! ```text
//! master.m3u8                      manifest.mpd
//! v1/init.mp4  v1/seg-00001.m4s …  v1/media.m3u8  v1/iframes.m3u8
//! a1/init.mp4  a1/seg-00001.m4s …  a1/media.m3u8
//! ```
//!
//! Each rendition is one CMAF track file (ISO/IEC 23000-19 §7.3.1): a header
//! and segments cut at keyframes. The HLS playlists list the segment files by
//! name and the MPD addresses the very same files with a `SegmentTemplate`
//! (`$RepresentationID$/seg-$Number%05d$.m4s`) and a `SegmentTimeline`.
//! Every video keyframe starts its own `moof`, which the I-frame playlist
//! addresses by byte range.
//!
//! Only per-segment metadata (duration, size, earliest presentation time,
//! keyframe ranges) is kept until `finish`; segment bytes leave with their
//! [`Output`].

mod bandwidth;
mod checkpoint;
mod manifest;
mod packager;

use crate::rope::Rope;

use crate::cmaf::{CmafError, TargetDuration};
use crate::dash::DashError;
use crate::hls::{HlsError, MediaDuration};
use crate::media::{MediaKind, TrackId};

pub use bandwidth::{
    DurationStats, Span, average_bit_rate, bit_rate, dash_bandwidth, peak_segment_bit_rate,
    rational,
};
pub use checkpoint::{Checkpoint, CheckpointError};
pub use packager::{FRAGMENT_STRIDE, FinishedRendition, Packager};

/// The multivariant playlist and the MPD over renditions packaged
/// separately (with distinct [`Naming`] prefixes, so their files do not
/// collide): one variant per video rendition, sharing the audio
/// renditions, and one DASH AdaptationSet per media type where the
/// timelines align (ISO/IEC 23009-1 §5.3.3.2 segmentAlignment). Media and
/// I-frame playlists stay those each packager wrote.
pub fn combined_manifests<'a>(
    config: &PackagerConfig,
    renditions: impl IntoIterator<Item = &'a FinishedRendition>,
    publish_time: crate::hls::UnixMillis,
) -> Result<Vec<Output>, PackageError> {
    let renditions: Vec<&packager::Rendition> = renditions.into_iter().map(|r| &r.0).collect();
    let built = manifest::build(config, &renditions, publish_time)?;
    Ok(built
        .outputs
        .into_iter()
        .filter(|o| o.path == MULTIVARIANT || o.path == MPD)
        .collect())
}

/// Name of each rendition's CMAF header.
pub const INIT: &str = "init.mp4";
/// Name of each rendition's HLS media playlist.
pub const MEDIA_PLAYLIST: &str = "media.m3u8";
/// Name of each video rendition's HLS I-frame playlist.
pub const I_FRAME_PLAYLIST: &str = "iframes.m3u8";
/// The HLS multivariant playlist, at the top of the output.
pub const MULTIVARIANT: &str = "master.m3u8";
/// The DASH MPD, at the top of the output.
pub const MPD: &str = "manifest.mpd";

/// A file of the packaged presentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Relative, `/`-separated: `v1/seg-00001.m4s`, `master.m3u8`.
    pub path: String,
    /// A segment's pieces share the samples' own bytes (see [`Rope`]);
    /// headers and manifests are one piece.
    pub data: Rope,
}

/// How renditions and segments are named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naming {
    /// Video renditions are `{video_prefix}1`, `{video_prefix}2`, … in track order.
    pub video_prefix: String,
    pub audio_prefix: String,
    /// Digits of the zero-padded segment number: 5 gives `seg-00001.m4s`.
    pub number_width: u8,
}

impl Default for Naming {
    fn default() -> Self {
        Self {
            video_prefix: "v".to_owned(),
            audio_prefix: "a".to_owned(),
            number_width: 5,
        }
    }
}

impl Naming {
    /// The directory (and DASH `Representation@id`) of the `index`-th
    /// rendition of `kind`, counted from 1.
    pub fn rendition(&self, kind: MediaKind, index: usize) -> String {
        match kind {
            MediaKind::Video => format!("{}{index}", self.video_prefix),
            MediaKind::Audio => format!("{}{index}", self.audio_prefix),
        }
    }

    /// The file name of segment `number` within its rendition directory.
    pub fn segment(&self, number: u64) -> String {
        format!(
            "seg-{number:0width$}.m4s",
            width = usize::from(self.number_width)
        )
    }

    /// The `SegmentTemplate@media` that expands to [`Naming::segment`]
    /// (ISO/IEC 23009-1 §5.3.9.4.4: `$Number%0[width]d$`).
    pub fn dash_media_template(&self) -> String {
        match self.number_width {
            0 | 1 => "$RepresentationID$/seg-$Number$.m4s".to_owned(),
            width => format!("$RepresentationID$/seg-$Number%0{width}d$.m4s"),
        }
    }

    fn validate(&self) -> Result<(), PackageError> {
        // Prefixes become path segments and `Representation@id`s, which
        // §5.3.5.2 forbids to contain whitespace; keep them URL-safe.
        let safe = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !safe(&self.video_prefix) || !safe(&self.audio_prefix) {
            return Err(PackageError::InvalidNaming(
                "rendition prefixes must be non-empty [A-Za-z0-9_-]",
            ));
        }
        if self.video_prefix == self.audio_prefix {
            return Err(PackageError::InvalidNaming(
                "video and audio prefixes must differ",
            ));
        }
        if self.number_width > 10 {
            return Err(PackageError::InvalidNaming(
                "segment numbers have at most 10 digits",
            ));
        }
        Ok(())
    }
}

/// How a presentation is packaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackagerConfig {
    /// Segments are cut at the first keyframe at least this long after the
    /// segment start. The default, 4 s, halves the requests and files of
    /// 2 s segments while a player still starts after one short download;
    /// it is a whole multiple of the common 1 s and 2 s GOPs, so segments
    /// come out equal. Apple's authoring guidelines suggest 6 s; low-latency
    /// live uses shorter.
    pub segment_duration: TargetDuration,
    /// Cuts each segment into CMAF chunks of this duration (smaller `moof`s,
    /// e.g. for a later low-latency re-publication). VOD playlists do not
    /// list parts: RFC 8216bis §4.4.4.9 keeps them only near the live edge.
    pub part_duration: Option<TargetDuration>,
    pub naming: Naming,
    /// `MPD@id`.
    pub presentation_id: String,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        Self {
            segment_duration: TargetDuration::from_secs(4),
            part_duration: None,
            naming: Naming::default(),
            presentation_id: "streamforge".to_owned(),
        }
    }
}

/// What was packaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub renditions: Vec<RenditionSummary>,
    /// The longest rendition's presentation duration.
    pub duration: MediaDuration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenditionSummary {
    pub name: String,
    pub track: TrackId,
    pub kind: MediaKind,
    /// RFC 6381 codec string.
    pub codecs: String,
    pub segments: usize,
    pub keyframes: usize,
    /// Segment bytes, without the header.
    pub bytes: u64,
    pub duration: MediaDuration,
    /// Samples before the first sync sample, which no CMAF fragment can start with.
    pub dropped_leading: u64,
}

/// Why a presentation could not be packaged.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("the presentation has no tracks")]
    NoTracks,
    #[error("naming: {0}")]
    InvalidNaming(&'static str),
    #[error("track {track}: no sample to package")]
    EmptyTrack { track: TrackId },
    #[error("track {track}: segment {number}: keyframe at dts {dts} does not start a moof")]
    KeyframeNotAddressable {
        track: TrackId,
        number: u64,
        dts: u64,
    },
    #[error("samples pushed after finish")]
    Finished,
    #[error("rendition {rendition} is not in the checkpoint, or in another timescale")]
    NotResumable { rendition: String },
    #[error(transparent)]
    Cmaf(#[from] CmafError),
    #[error("HLS: {0}")]
    Hls(#[from] HlsError),
    #[error("DASH: {0}")]
    Dash(#[from] DashError),
}

#[cfg(test)]
mod tests;
