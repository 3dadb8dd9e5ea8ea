//! The media playlist as typed data: what [`render`](super::render) prints and
//! what [`LivePlaylist`](super::LivePlaylist) maintains.
//!
//! A VOD or I-frame playlist can be built directly from these types, checked
//! with [`MediaPlaylist::validate`], and rendered. Live playlists are owned by
//! a [`LivePlaylist`](super::LivePlaylist), which keeps them valid by
//! construction.

use std::collections::VecDeque;
use std::sync::Arc;

use super::error::HlsError;
use super::time::{MediaDuration, UnixMillis};

/// `EXT-X-PLAYLIST-TYPE` (RFC 8216bis §4.4.3.5), or its absence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaylistType {
    /// The playlist never changes.
    Vod,
    /// Segments are only appended (a DVR that keeps the whole event).
    Event,
    /// A sliding window: segments are appended and old ones removed. No
    /// `EXT-X-PLAYLIST-TYPE` tag.
    Live,
}

/// A byte range `length@offset`.
///
/// The offset is always explicit: an implicit offset continues from the
/// previous segment, which a delta update (§6.2.5.1) may have skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ByteRange {
    pub length: u64,
    pub offset: u64,
}

/// `EXT-X-MAP`: the initialization section (CMAF header) of the segments
/// that follow it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Map {
    pub uri: String,
    pub byte_range: Option<ByteRange>,
}

/// `EXT-X-PART` (§4.4.4.9): a partial segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub uri: String,
    pub duration: MediaDuration,
    /// Starts with an independent frame: `INDEPENDENT=YES`.
    pub independent: bool,
    pub byte_range: Option<ByteRange>,
}

/// `EXT-X-PRELOAD-HINT:TYPE=PART` (§4.4.5.3): the part being written now,
/// fetchable as a blocking request before it is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreloadHint {
    pub uri: String,
    /// `BYTERANGE-START`, when the part is a range of a larger resource.
    pub byte_range_start: Option<u64>,
}

/// `EXT-X-RENDITION-REPORT` (§4.4.5.4): where another rendition stands, so a
/// client can switch with a single blocking request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenditionReport {
    /// Relative URI of the other rendition's media playlist.
    pub uri: String,
    pub last_msn: u64,
    pub last_part: Option<u32>,
}

/// `EXT-X-SERVER-CONTROL` (§4.4.3.8).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerControl {
    pub can_block_reload: bool,
    /// Enables delta updates (`_HLS_skip=YES`); at least 6 × target duration.
    pub can_skip_until: Option<MediaDuration>,
    /// At least 3 × target duration.
    pub hold_back: Option<MediaDuration>,
    /// At least 2 × PART-TARGET (3 × recommended).
    pub part_hold_back: Option<MediaDuration>,
}

impl ServerControl {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A complete media segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub uri: String,
    /// Exact duration; rendered in `EXTINF` with up to microsecond precision.
    pub duration: MediaDuration,
    pub byte_range: Option<ByteRange>,
    /// `EXT-X-DISCONTINUITY` precedes this segment.
    pub discontinuity: bool,
    pub program_date_time: Option<UnixMillis>,
    /// The initialization section in effect; `EXT-X-MAP` is rendered where it
    /// changes and before the first segment listed.
    pub map: Option<Arc<Map>>,
    /// The partial segments that make up this segment, while still listed.
    pub parts: Vec<Part>,
}

/// The segment being written in a low-latency playlist: its parts so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenSegment {
    pub discontinuity: bool,
    pub map: Option<Arc<Map>>,
    pub parts: Vec<Part>,
}

/// Low-latency (LL-HLS) state of a media playlist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowLatency {
    /// `EXT-X-PART-INF:PART-TARGET`; constant for the life of the stream.
    pub part_target: MediaDuration,
    pub open: OpenSegment,
    /// Present while the stream is live.
    pub preload_hint: Option<PreloadHint>,
}

/// A media playlist. The segment at index `i` has media sequence number
/// `media_sequence + i`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaPlaylist {
    pub playlist_type: PlaylistType,
    /// `EXT-X-TARGETDURATION`, whole seconds, constant for the stream's life.
    pub target_duration: u32,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub independent_segments: bool,
    /// `EXT-X-I-FRAMES-ONLY`: each segment is one keyframe's byte range.
    pub i_frames_only: bool,
    pub server_control: ServerControl,
    pub segments: VecDeque<Segment>,
    pub low_latency: Option<LowLatency>,
    /// `EXT-X-ENDLIST`.
    pub ended: bool,
}

impl MediaPlaylist {
    /// An empty playlist with the given type and target duration.
    pub fn new(playlist_type: PlaylistType, target_duration: u32) -> Self {
        Self {
            playlist_type,
            target_duration,
            media_sequence: 0,
            discontinuity_sequence: 0,
            independent_segments: false,
            i_frames_only: false,
            server_control: ServerControl::default(),
            segments: VecDeque::new(),
            low_latency: None,
            ended: playlist_type == PlaylistType::Vod,
        }
    }

    /// Media sequence number of the segment that follows the last complete
    /// one: the segment in progress when live.
    pub fn next_msn(&self) -> u64 {
        self.media_sequence
            .saturating_add(self.segments.len() as u64)
    }

    /// Checks the rules of RFC 8216bis that the renderer relies on.
    pub fn validate(&self) -> Result<(), HlsError> {
        if self.target_duration == 0 {
            return Err(HlsError::ZeroTargetDuration);
        }
        if self.playlist_type == PlaylistType::Vod && !self.ended {
            return Err(HlsError::VodNotEnded);
        }
        let target = MediaDuration::from_secs(self.target_duration);
        if let Some(hold_back) = self.server_control.hold_back {
            // §4.4.3.8: HOLD-BACK "MUST be at least three times the Target Duration".
            check_minimum("HOLD-BACK", hold_back, target.saturating_mul(3))?;
        }
        if let Some(skip) = self.server_control.can_skip_until {
            // §4.4.3.8: CAN-SKIP-UNTIL "MUST be at least six times the Target Duration".
            check_minimum("CAN-SKIP-UNTIL", skip, target.saturating_mul(6))?;
        }
        let part_target = self.low_latency.as_ref().map(|ll| ll.part_target);
        if let Some(pt) = part_target {
            validate_part_target(pt, self.target_duration)?;
            if let Some(phb) = self.server_control.part_hold_back {
                // §4.4.3.8: PART-HOLD-BACK "MUST be at least twice the Part Target Duration".
                check_minimum("PART-HOLD-BACK", phb, pt.saturating_mul(2))?;
            }
        }
        let mut maps = self.segments.iter().filter_map(|s| s.map.as_deref());
        if let Some(map) = maps.next() {
            validate_uri("EXT-X-MAP", &map.uri)?;
        }
        for (i, seg) in self.segments.iter().enumerate() {
            let msn = self.media_sequence.saturating_add(i as u64);
            validate_uri("segment", &seg.uri)?;
            if let Some(map) = seg.map.as_deref() {
                validate_uri("EXT-X-MAP", &map.uri)?;
            }
            validate_segment_duration(msn, seg.duration, self.target_duration)?;
            validate_parts(msn, &seg.parts, part_target)?;
        }
        if let Some(ll) = &self.low_latency {
            validate_parts(self.next_msn(), &ll.open.parts, part_target)?;
            match &ll.preload_hint {
                Some(hint) => validate_uri("EXT-X-PRELOAD-HINT", &hint.uri)?,
                // hls.js reloads in a loop without a preload hint.
                None if !self.ended => return Err(HlsError::MissingPreloadHint),
                None => {}
            }
        }
        Ok(())
    }
}

pub(crate) fn check_minimum(
    attribute: &'static str,
    value: MediaDuration,
    minimum: MediaDuration,
) -> Result<(), HlsError> {
    if minimum.at_most(value) {
        Ok(())
    } else {
        Err(HlsError::BelowMinimum {
            attribute,
            value,
            minimum,
        })
    }
}

pub(crate) fn validate_part_target(pt: MediaDuration, target: u32) -> Result<(), HlsError> {
    if pt.is_zero() || !pt.at_most(MediaDuration::from_secs(target)) {
        return Err(HlsError::InvalidPartTarget);
    }
    Ok(())
}

/// RFC 8216bis §4.4.3.1: "The EXTINF duration of each Media Segment in a
/// Playlist file, when rounded to the nearest integer, MUST be less than or
/// equal to the Target Duration."
pub(crate) fn validate_segment_duration(
    msn: u64,
    duration: MediaDuration,
    target: u32,
) -> Result<(), HlsError> {
    if duration.is_zero() {
        return Err(HlsError::ZeroDuration { what: "segment" });
    }
    if duration.rounded_secs() > u64::from(target) {
        return Err(HlsError::SegmentExceedsTarget {
            msn,
            duration,
            target,
        });
    }
    Ok(())
}

fn validate_parts(
    msn: u64,
    parts: &[Part],
    part_target: Option<MediaDuration>,
) -> Result<(), HlsError> {
    if parts.is_empty() {
        return Ok(());
    }
    let pt = part_target.ok_or(HlsError::MissingPartTarget)?;
    for (index, part) in parts.iter().enumerate() {
        validate_part(msn, index, part, pt)?;
    }
    Ok(())
}

/// §4.4.4.9: the duration of a Partial Segment "MUST be less than or equal to
/// the Part Target Duration".
pub(crate) fn validate_part(
    msn: u64,
    index: usize,
    part: &Part,
    part_target: MediaDuration,
) -> Result<(), HlsError> {
    validate_uri("EXT-X-PART", &part.uri)?;
    if part.duration.is_zero() {
        return Err(HlsError::ZeroDuration { what: "part" });
    }
    if !part.duration.at_most(part_target) {
        return Err(HlsError::PartExceedsTarget {
            msn,
            part: index,
            duration: part.duration,
            part_target,
        });
    }
    Ok(())
}

/// URIs appear as quoted-strings (§4.2: no `"`, CR or LF) or on a line of
/// their own; control characters would corrupt either.
pub(crate) fn validate_uri(what: &'static str, uri: &str) -> Result<(), HlsError> {
    if uri.is_empty() || uri.chars().any(|c| c == '"' || c.is_control()) {
        return Err(HlsError::InvalidUri {
            what,
            uri: uri.to_owned(),
        });
    }
    Ok(())
}
