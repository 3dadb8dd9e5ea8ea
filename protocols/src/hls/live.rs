//! The live media playlist a packager drives, one per (stream, rendition).
//!
//! Call order:
//! 1. [`LivePlaylist::new`] with a [`LivePlaylistConfig`] (and, in low-latency mode,
//!    the preload hint of the first part).
//! 2. For every CMAF chunk written: [`push_part`](LivePlaylist::push_part)
//!    (low-latency only), naming the part that will be written next.
//! 3. At every segment boundary: [`close_segment`](LivePlaylist::close_segment);
//!    it returns the media sequence numbers that left the window, whose files
//!    must stay fetchable for a while (RFC 8216bis §6.2.2).
//! 4. On a timestamp reset or codec change, between two segments:
//!    [`discontinuity`](LivePlaylist::discontinuity).
//! 5. When the publisher stops: close the last segment, then
//!    [`end`](LivePlaylist::end).
//!
//! Viewers' requests are answered from the same value:
//! [`is_available`](LivePlaylist::is_available) for blocking reloads and
//! [`render`](LivePlaylist::render) for the playlist body. Apple players
//! want a few segments before they start: the server should
//! answer 404 until `playlist().segments.len()` reaches its minimum. Everything is
//! counted in one timescale, so the window arithmetic is exact for any
//! stream length.

use std::ops::Range;
use std::sync::Arc;

use super::error::HlsError;
use super::model::{
    LowLatency, Map, MediaPlaylist, OpenSegment, Part, PlaylistType, PreloadHint, RenditionReport,
    Segment, ServerControl, validate_part, validate_part_target, validate_segment_duration,
    validate_uri,
};
use super::render::{RenderOptions, render_media};
use super::time::{MediaDuration, UnixMillis};

/// Which segments stay listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The last `segments` segments (`EXT-X-PLAYLIST-TYPE` absent). Never
    /// shorter than three target durations (§6.2.2).
    Sliding { segments: usize },
    /// Every segment since the start (`EXT-X-PLAYLIST-TYPE:EVENT`): DVR.
    Event,
}

/// Settings fixed for the life of a live playlist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePlaylistConfig {
    pub window: Window,
    /// `EXT-X-TARGETDURATION`, whole seconds.
    pub target_duration: u32,
    /// The timescale every duration passed in is counted in.
    pub timescale: u32,
    /// `PART-TARGET` in `timescale` ticks; `Some` enables LL-HLS.
    pub part_target: Option<u64>,
    /// Advertise CAN-SKIP-UNTIL (delta updates). `None`: not offered.
    pub can_skip_until: Option<MediaDuration>,
    /// HOLD-BACK; defaults to 3 × target duration.
    pub hold_back: Option<MediaDuration>,
    /// PART-HOLD-BACK; defaults to 3 × PART-TARGET.
    pub part_hold_back: Option<MediaDuration>,
    pub independent_segments: bool,
    /// Media sequence number of the first segment (non-zero when a stream
    /// resumes under the same playlist URL).
    pub first_media_sequence: u64,
    pub first_discontinuity_sequence: u64,
}

impl LivePlaylistConfig {
    /// A plain live playlist: no parts, no delta updates.
    pub fn new(window: Window, target_duration: u32, timescale: u32) -> Self {
        Self {
            window,
            target_duration,
            timescale,
            part_target: None,
            can_skip_until: None,
            hold_back: None,
            part_hold_back: None,
            independent_segments: true,
            first_media_sequence: 0,
            first_discontinuity_sequence: 0,
        }
    }

    /// Enables LL-HLS with the given PART-TARGET (ticks of `timescale`).
    pub fn with_parts(mut self, part_target: u64) -> Self {
        self.part_target = Some(part_target);
        self
    }

    /// Offers delta updates with the smallest CAN-SKIP-UNTIL the RFC allows,
    /// six target durations (§4.4.3.8).
    pub fn with_delta_updates(mut self) -> Self {
        self.can_skip_until = Some(MediaDuration::from_secs(
            self.target_duration.saturating_mul(6),
        ));
        self
    }
}

/// The answer to a blocking playlist reload (§6.2.5.2) for `_HLS_msn` and
/// `_HLS_part`, or to "is this segment/part listed?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// The playlist lists the segment (or part), or a later one: respond now.
    Available,
    /// Not produced yet: hold the request until it is (or until a timeout).
    NotYet,
    /// Older than the window. A blocking reload is answered now (the
    /// playlist holds later segments); a segment fetch is a 404.
    Gone,
    /// Too far ahead: §6.2.5.2 lets the server answer 400 Bad Request.
    BeyondLimit,
    /// The stream has ended and will never reach it: respond now with the
    /// final playlist.
    Ended,
}

/// Position of the newest media in a playlist: what `EXT-X-RENDITION-REPORT`
/// carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub msn: u64,
    pub part: Option<u32>,
}

/// A segment as the packager hands it over when it is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSegment {
    pub uri: String,
    /// In ticks of the playlist's timescale; equal to the sum of the parts
    /// pushed for this segment, if any.
    pub duration: u64,
    pub byte_range: Option<super::model::ByteRange>,
    pub program_date_time: Option<UnixMillis>,
}

/// A segment another node listed, listed again whole by the node that
/// continues its stream (see [`LivePlaylist::inherit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InheritedSegment {
    pub segment: NewSegment,
    /// `EXT-X-DISCONTINUITY` precedes it.
    pub discontinuity: bool,
    pub map: Map,
}

/// A part as the packager hands it over when its last sample is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPart {
    pub uri: String,
    /// In ticks of the playlist's timescale.
    pub duration: u64,
    pub independent: bool,
    pub byte_range: Option<super::model::ByteRange>,
}

/// What [`LivePlaylist::close_segment`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentClosed {
    /// Media sequence number of the segment just listed.
    pub msn: u64,
    /// Segments that left the window. §6.2.2: they must stay fetchable for
    /// their duration plus the duration of the longest playlist that listed
    /// them.
    pub evicted: Range<u64>,
}

/// RFC 8216bis §4.4.4.9: "EXT-X-PART tags SHOULD be removed from the
/// Playlist after they are greater than three Target Durations from the end
/// of the Playlist."
const PART_RETENTION_TARGET_DURATIONS: u64 = 3;

/// RFC 8216bis §4.4.3.7: every part but a segment's last should last at least
/// 85 % of PART-TARGET; Apple players fall back to regular HLS otherwise.
const MIN_PART_PERCENT: u128 = 85;

/// A live media playlist and the state that keeps it valid.
#[derive(Clone, Debug)]
pub struct LivePlaylist {
    window: Window,
    timescale: u32,
    target_ticks: u64,
    playlist: MediaPlaylist,
    /// Sum of the listed segments' durations, in ticks.
    window_ticks: u64,
    /// Sum of the open segment's parts, in ticks.
    open_ticks: u64,
    current_map: Option<Arc<Map>>,
    pending_discontinuity: bool,
    /// The publisher is away: no part is announced until it is back.
    paused: bool,
    warned_short_part: bool,
    warned_long_part: bool,
}

impl LivePlaylist {
    /// `map` is the initialization section of the first segments;
    /// `first_hint` the part that will be written first (required with parts).
    pub fn new(
        config: LivePlaylistConfig,
        map: Option<Map>,
        first_hint: Option<PreloadHint>,
    ) -> Result<Self, HlsError> {
        if config.target_duration == 0 {
            return Err(HlsError::ZeroTargetDuration);
        }
        if config.timescale == 0 {
            return Err(HlsError::ZeroTimescale);
        }
        let timescale = config.timescale;
        let target = MediaDuration::from_secs(config.target_duration);
        let target_ticks =
            u64::from(config.target_duration).saturating_mul(u64::from(config.timescale));
        if let Window::Sliding { segments: 0 } = config.window {
            return Err(HlsError::ZeroWindow);
        }
        if let Some(map) = &map {
            validate_uri("EXT-X-MAP", &map.uri)?;
        }
        let hold_back = config.hold_back.unwrap_or(target.saturating_mul(3));
        let mut server_control = ServerControl {
            can_block_reload: false,
            can_skip_until: config.can_skip_until,
            hold_back: Some(hold_back),
            part_hold_back: None,
        };
        let low_latency = match config.part_target {
            None => None,
            Some(ticks) => {
                let part_target =
                    MediaDuration::new(ticks, timescale).ok_or(HlsError::ZeroTimescale)?;
                validate_part_target(part_target, config.target_duration)?;
                // §4.4.3.8: PART-HOLD-BACK "MUST be at least twice the Part
                // Target Duration" and "SHOULD be at least three times".
                server_control.part_hold_back = Some(
                    config
                        .part_hold_back
                        .unwrap_or(part_target.saturating_mul(3)),
                );
                server_control.can_block_reload = true;
                let hint = first_hint.ok_or(HlsError::MissingPreloadHint)?;
                validate_uri("EXT-X-PRELOAD-HINT", &hint.uri)?;
                Some(LowLatency {
                    part_target,
                    open: OpenSegment::default(),
                    preload_hint: Some(hint),
                })
            }
        };
        let playlist_type = match config.window {
            Window::Sliding { .. } => PlaylistType::Live,
            Window::Event => PlaylistType::Event,
        };
        let mut playlist = MediaPlaylist::new(playlist_type, config.target_duration);
        playlist.media_sequence = config.first_media_sequence;
        playlist.discontinuity_sequence = config.first_discontinuity_sequence;
        playlist.independent_segments = config.independent_segments;
        playlist.server_control = server_control;
        playlist.low_latency = low_latency;
        // Checks HOLD-BACK, PART-HOLD-BACK and CAN-SKIP-UNTIL minimums.
        playlist.validate()?;
        let current_map = map.map(Arc::new);
        if let Some(ll) = playlist.low_latency.as_mut() {
            ll.open.map.clone_from(&current_map);
        }
        Ok(Self {
            window: config.window,
            timescale,
            target_ticks,
            playlist,
            window_ticks: 0,
            open_ticks: 0,
            current_map,
            pending_discontinuity: false,
            paused: false,
            warned_short_part: false,
            warned_long_part: false,
        })
    }

    /// Raises `EXT-X-TARGETDURATION` to `secs` (never lowers it), with the
    /// HOLD-BACK and CAN-SKIP-UNTIL minimums that follow from it (§4.4.3.8).
    ///
    /// RFC 8216bis §4.4.3.1 says the target duration MUST NOT change; a live
    /// encoder whose keyframe interval exceeds it leaves only two choices:
    /// refuse the stream or list a longer target. Players (hls.js, AVPlayer,
    /// ffmpeg) read the new value on the next reload, so a packager that
    /// cannot cut earlier calls this before listing the long segment.
    pub fn raise_target_duration(&mut self, secs: u32) {
        if secs <= self.playlist.target_duration {
            return;
        }
        tracing::warn!(
            from = self.playlist.target_duration,
            to = secs,
            "segment longer than EXT-X-TARGETDURATION (keyframe interval too long); raising it"
        );
        self.playlist.target_duration = secs;
        self.target_ticks = u64::from(secs).saturating_mul(u64::from(self.timescale));
        let target = MediaDuration::from_secs(secs);
        let control = &mut self.playlist.server_control;
        if control
            .hold_back
            .is_some_and(|h| !target.saturating_mul(3).at_most(h))
        {
            control.hold_back = Some(target.saturating_mul(3));
        }
        if control
            .can_skip_until
            .is_some_and(|c| !target.saturating_mul(6).at_most(c))
        {
            control.can_skip_until = Some(target.saturating_mul(6));
        }
    }

    /// `EXT-X-TARGETDURATION`, whole seconds.
    pub fn target_duration(&self) -> u32 {
        self.playlist.target_duration
    }

    /// The playlist as it stands.
    pub fn playlist(&self) -> &MediaPlaylist {
        &self.playlist
    }

    /// Renders the playlist for one request.
    pub fn render(&self, options: &RenderOptions<'_>) -> String {
        render_media(&self.playlist, options)
    }

    pub fn is_ended(&self) -> bool {
        self.playlist.ended
    }

    fn duration(&self, ticks: u64) -> Result<MediaDuration, HlsError> {
        MediaDuration::new(ticks, self.timescale).ok_or(HlsError::ZeroTimescale)
    }

    /// Lists, ahead of this playlist's own segments, the last segments
    /// another node listed before the stream moved here (RFC 8216bis
    /// §6.2.2: they leave the playlist as the window slides, not at once).
    /// The playlist must be new: its media sequence number must be the
    /// first inherited segment's, and its discontinuity sequence number
    /// that segment's. Its own first segment starts a discontinuity; `next`
    /// is the part that will be written first.
    pub fn inherit(
        &mut self,
        segments: Vec<InheritedSegment>,
        next: PreloadHint,
    ) -> Result<(), HlsError> {
        let open = self
            .playlist
            .low_latency
            .as_ref()
            .is_some_and(|ll| !ll.open.parts.is_empty());
        if self.playlist.ended || open || !self.playlist.segments.is_empty() {
            return Err(HlsError::NotNew);
        }
        for inherited in segments {
            let NewSegment {
                uri,
                duration: ticks,
                byte_range,
                program_date_time,
            } = inherited.segment;
            validate_uri("segment", &uri)?;
            let duration = self.duration(ticks)?;
            let msn = self.playlist.next_msn();
            if validate_segment_duration(msn, duration, self.playlist.target_duration).is_err() {
                let secs = ticks.div_ceil(u64::from(self.timescale));
                self.raise_target_duration(u32::try_from(secs).unwrap_or(u32::MAX));
            }
            validate_segment_duration(msn, duration, self.playlist.target_duration)?;
            self.playlist.segments.push_back(Segment {
                uri,
                duration,
                byte_range,
                discontinuity: inherited.discontinuity,
                program_date_time,
                map: Some(Arc::new(inherited.map)),
                parts: Vec::new(),
            });
            self.window_ticks = self.window_ticks.saturating_add(ticks);
        }
        self.pending_discontinuity = !self.playlist.segments.is_empty();
        if let Some(ll) = self.playlist.low_latency.as_mut() {
            ll.preload_hint = Some(next);
        }
        Ok(())
    }

    /// Lists a completed part of the segment in progress and sets the
    /// preload hint to the part that follows it. Returns the part's position.
    pub fn push_part(&mut self, part: NewPart, next: PreloadHint) -> Result<Position, HlsError> {
        if self.playlist.ended {
            return Err(HlsError::Ended);
        }
        let msn = self.playlist.next_msn();
        let duration = self.duration(part.duration)?;
        let timescale = self.timescale;
        let target_duration = self.playlist.target_duration;
        let open_ticks = self.open_ticks;
        let ll = self
            .playlist
            .low_latency
            .as_mut()
            .ok_or(HlsError::NotLowLatency)?;
        let index = ll.open.parts.len();
        let part = Part {
            uri: part.uri,
            duration,
            independent: part.independent,
            byte_range: part.byte_range,
        };
        match validate_part(msn, index, &part, ll.part_target) {
            // A single frame longer than PART-TARGET (a camera at 2 fps, a
            // gap in the input) cannot be cut shorter; the fragmenter makes
            // no longer part otherwise. Listing it breaks §4.4.4.9's MUST
            // for one part; ending the stream over it would end every
            // viewer's playback.
            Err(HlsError::PartExceedsTarget { .. }) => {
                if !self.warned_long_part {
                    self.warned_long_part = true;
                    tracing::warn!(
                        msn,
                        part = index,
                        duration = %part.duration.decimal(),
                        part_target = %ll.part_target.decimal(),
                        "part longer than PART-TARGET: one frame lasts longer than a part \
                         (a very low frame rate or a gap in the input); logged once per stream"
                    );
                }
            }
            other => other?,
        }
        validate_uri("EXT-X-PRELOAD-HINT", &next.uri)?;
        let total = open_ticks.saturating_add(part.duration.ticks());
        if let Some(total) = MediaDuration::new(total, timescale) {
            validate_segment_duration(msn, total, target_duration)?;
        }
        let part_index =
            u32::try_from(index).map_err(|_| HlsError::SegmentInProgress { parts: index })?;
        if let Some(prev) = ll.open.parts.last() {
            let short = u128::from(prev.duration.ticks()) * 100
                < u128::from(ll.part_target.ticks()) * MIN_PART_PERCENT;
            if short && !self.warned_short_part {
                self.warned_short_part = true;
                tracing::warn!(
                    msn,
                    part = index - 1,
                    duration = %prev.duration.decimal(),
                    part_target = %ll.part_target.decimal(),
                    "part shorter than 85% of PART-TARGET inside a segment (RFC 8216bis §4.4.3.7); \
                     Apple players may fall back to regular HLS (logged once per stream)"
                );
            }
        }
        if ll.open.parts.is_empty() {
            ll.open.discontinuity = self.pending_discontinuity;
            ll.open.map.clone_from(&self.current_map);
        }
        ll.open.parts.push(part);
        ll.preload_hint = (!self.paused).then_some(next);
        self.open_ticks = total;
        Ok(Position {
            msn,
            part: Some(part_index),
        })
    }

    /// Lists the segment in progress as complete, slides the window and drops
    /// parts that are now too far from the live edge.
    pub fn close_segment(&mut self, segment: NewSegment) -> Result<SegmentClosed, HlsError> {
        if self.playlist.ended {
            return Err(HlsError::Ended);
        }
        let msn = self.playlist.next_msn();
        validate_uri("segment", &segment.uri)?;
        let duration = self.duration(segment.duration)?;
        validate_segment_duration(msn, duration, self.playlist.target_duration)?;
        let open_ticks = self.open_ticks;
        let parts = match self.playlist.low_latency.as_mut() {
            Some(ll) if !ll.open.parts.is_empty() => {
                if open_ticks != segment.duration {
                    return Err(HlsError::PartsDurationMismatch {
                        msn,
                        segment: duration,
                        parts: self.duration(open_ticks)?,
                    });
                }
                std::mem::take(&mut ll.open.parts)
            }
            _ => Vec::new(),
        };
        // A segment closed while the publisher is away (a ladder rung
        // finishing its last one) is listed whole, without parts: see
        // `pause`.
        let parts = if self.paused { Vec::new() } else { parts };
        if let Some(ll) = self.playlist.low_latency.as_mut() {
            ll.open = OpenSegment {
                discontinuity: false,
                map: self.current_map.clone(),
                parts: Vec::new(),
            };
        }
        self.playlist.segments.push_back(Segment {
            uri: segment.uri,
            duration,
            byte_range: segment.byte_range,
            discontinuity: std::mem::take(&mut self.pending_discontinuity),
            program_date_time: segment.program_date_time,
            map: self.current_map.clone(),
            parts,
        });
        self.open_ticks = 0;
        self.window_ticks = self.window_ticks.saturating_add(segment.duration);
        let evicted = self.slide();
        self.prune_parts();
        Ok(SegmentClosed { msn, evicted })
    }

    /// RFC 8216bis §6.2.2: "The server MUST NOT remove a Media Segment from
    /// a Playlist file without an EXT-X-ENDLIST tag if that would produce a
    /// Playlist whose duration is less than three times the Target Duration."
    /// A segment tagged EXT-X-DISCONTINUITY that becomes the first one
    /// increments EXT-X-DISCONTINUITY-SEQUENCE instead of keeping its tag.
    fn slide(&mut self) -> Range<u64> {
        let first = self.playlist.media_sequence;
        let Window::Sliding { segments: keep } = self.window else {
            return first..first;
        };
        let min_ticks = self.target_ticks.saturating_mul(3);
        while self.playlist.segments.len() > keep {
            let Some(front) = self.playlist.segments.front() else {
                break;
            };
            let remaining = self.window_ticks.saturating_sub(front.duration.ticks());
            if remaining < min_ticks {
                break;
            }
            let discontinuity = front.discontinuity;
            self.playlist.segments.pop_front();
            self.window_ticks = remaining;
            self.playlist.media_sequence = self.playlist.media_sequence.saturating_add(1);
            if discontinuity {
                self.playlist.discontinuity_sequence =
                    self.playlist.discontinuity_sequence.saturating_add(1);
            }
            // The first segment's discontinuity number is the sequence
            // itself (RFC 8216bis §4.4.3.3), so a discontinuity that
            // reaches the front is counted there and its tag dropped: a
            // client that also counted the tag (hls.js does) would number
            // that segment one higher than the next playlist does.
            if let Some(front) = self.playlist.segments.front_mut()
                && front.discontinuity
            {
                front.discontinuity = false;
                self.playlist.discontinuity_sequence =
                    self.playlist.discontinuity_sequence.saturating_add(1);
            }
        }
        first..self.playlist.media_sequence
    }

    /// Drops the parts of segments that start more than three target
    /// durations before the end of the playlist.
    fn prune_parts(&mut self) {
        if self.playlist.low_latency.is_none() {
            return;
        }
        let limit = self
            .target_ticks
            .saturating_mul(PART_RETENTION_TARGET_DURATIONS);
        let mut from_end = self.open_ticks;
        let mut past_limit = false;
        for seg in self.playlist.segments.iter_mut().rev() {
            from_end = from_end.saturating_add(seg.duration.ticks());
            if past_limit || from_end > limit {
                if seg.parts.is_empty() && past_limit {
                    // Older segments were pruned on earlier calls.
                    break;
                }
                past_limit = true;
                seg.parts = Vec::new();
            }
        }
    }

    /// Marks the next segment as starting a discontinuity (§4.4.4.3):
    /// timestamps reset, or the encoding changed. `map` is the new
    /// initialization section, if it changed. Only between segments.
    pub fn discontinuity(&mut self, map: Option<Map>) -> Result<(), HlsError> {
        if self.playlist.ended {
            return Err(HlsError::Ended);
        }
        if let Some(ll) = &self.playlist.low_latency
            && !ll.open.parts.is_empty()
        {
            return Err(HlsError::SegmentInProgress {
                parts: ll.open.parts.len(),
            });
        }
        if let Some(map) = map {
            validate_uri("EXT-X-MAP", &map.uri)?;
            self.current_map = Some(Arc::new(map));
        }
        self.pending_discontinuity = true;
        if let Some(ll) = self.playlist.low_latency.as_mut() {
            ll.open.map.clone_from(&self.current_map);
        }
        Ok(())
    }

    /// Ends the stream: EXT-X-ENDLIST, no more preload hint. The segment in
    /// progress must have been closed. Ending twice is a no-op.
    pub fn end(&mut self) -> Result<(), HlsError> {
        if let Some(ll) = self.playlist.low_latency.as_mut() {
            if !ll.open.parts.is_empty() {
                return Err(HlsError::SegmentInProgress {
                    parts: ll.open.parts.len(),
                });
            }
            ll.preload_hint = None;
        }
        self.playlist.ended = true;
        Ok(())
    }

    /// The publisher went away and may come back: the preload hint and the
    /// listed parts are withdrawn, for whatever comes next (if anything)
    /// starts after a discontinuity they could not announce. A client
    /// takes the segment after a parts list for the next one of the same
    /// timeline (hls.js makes it its fragment hint) and then finds its
    /// discontinuity sequence changed under it ("discontinuity sequence
    /// mismatch", fatal). Whole segments stay listed.
    pub fn pause(&mut self) {
        self.paused = true;
        if let Some(ll) = self.playlist.low_latency.as_mut() {
            ll.preload_hint = None;
        }
        for segment in &mut self.playlist.segments {
            segment.parts.clear();
        }
    }

    /// Continues a stream whose publisher came back (ended, or paused with
    /// its last segment closed): the playlist loses `EXT-X-ENDLIST` if it
    /// had it, the next segment starts a discontinuity
    /// (§4.4.4.3: the encoder restarted, timestamps and parameters may
    /// differ) with `map` as its initialization section, and media sequence
    /// numbers go on. `hint` is the first part to come (low latency only).
    pub fn resume(&mut self, map: Map, hint: Option<PreloadHint>) -> Result<(), HlsError> {
        if let Some(ll) = &self.playlist.low_latency
            && !ll.open.parts.is_empty()
        {
            return Err(HlsError::SegmentInProgress {
                parts: ll.open.parts.len(),
            });
        }
        validate_uri("EXT-X-MAP", &map.uri)?;
        self.playlist.ended = false;
        self.paused = false;
        self.current_map = Some(Arc::new(map));
        self.pending_discontinuity = true;
        if let Some(ll) = self.playlist.low_latency.as_mut() {
            let hint = hint.ok_or(HlsError::MissingPreloadHint)?;
            validate_uri("EXT-X-PRELOAD-HINT", &hint.uri)?;
            ll.preload_hint = Some(hint);
            ll.open.map.clone_from(&self.current_map);
        }
        Ok(())
    }

    /// The discontinuity sequence number of the newest segment listed or
    /// in progress (counting one announced for the next segment): a
    /// continuation of the stream elsewhere starts above it.
    pub fn last_discontinuity_sequence(&self) -> u64 {
        let p = &self.playlist;
        let listed = p.segments.iter().filter(|s| s.discontinuity).count() as u64;
        let open = p
            .low_latency
            .as_ref()
            .is_some_and(|ll| !ll.open.parts.is_empty() && ll.open.discontinuity);
        p.discontinuity_sequence + listed + u64::from(open || self.pending_discontinuity)
    }

    /// The newest segment or part listed, as `EXT-X-RENDITION-REPORT`
    /// defines LAST-MSN and LAST-PART (§4.4.5.4). `None` before anything is
    /// listed.
    pub fn last_position(&self) -> Option<Position> {
        let open_parts = self
            .playlist
            .low_latency
            .as_ref()
            .map_or(0, |ll| ll.open.parts.len());
        if open_parts > 0 {
            return Some(Position {
                msn: self.playlist.next_msn(),
                part: u32::try_from(open_parts - 1).ok(),
            });
        }
        let last = self.playlist.segments.back()?;
        Some(Position {
            msn: self.playlist.next_msn().saturating_sub(1),
            part: last
                .parts
                .len()
                .checked_sub(1)
                .and_then(|p| u32::try_from(p).ok()),
        })
    }

    /// This playlist's entry in its siblings' rendition reports.
    pub fn rendition_report(&self, uri: &str) -> Option<RenditionReport> {
        self.last_position().map(|p| RenditionReport {
            uri: uri.to_owned(),
            last_msn: p.msn,
            last_part: p.part,
        })
    }

    /// Answers a blocking reload for `_HLS_msn=msn[&_HLS_part=part]`
    /// (RFC 8216bis §6.2.5.2): the server holds the request "until the
    /// Playlist contains a Media Segment with Media Sequence Number of M or
    /// later" (or "Partial Segment N of Media Segment M or later").
    pub fn is_available(&self, msn: u64, part: Option<u32>) -> Availability {
        let pl = &self.playlist;
        let next = pl.next_msn();
        if msn < pl.media_sequence {
            return Availability::Gone;
        }
        if msn < next {
            return Availability::Available;
        }
        let open_parts = pl.low_latency.as_ref().map_or(0, |ll| ll.open.parts.len());
        if let Some(p) = part
            && msn == next
            && (p as usize) < open_parts
        {
            return Availability::Available;
        }
        if pl.ended {
            return Availability::Ended;
        }
        // §6.2.5.2: "If the _HLS_msn is greater than the Media Sequence Number
        // of the last Media Segment in the current Playlist plus two, or if
        // the _HLS_part exceeds the last Partial Segment in the current
        // Playlist by the Advance Part Limit, then the server SHOULD
        // immediately return Bad Request."
        if msn > next.saturating_add(1) {
            return Availability::BeyondLimit;
        }
        if let (Some(p), Some(ll)) = (part, &pl.low_latency) {
            let pt = ll.part_target.ticks().max(1);
            // Most parts a segment can have; an upper bound keeps the check
            // from rejecting a request that could still be satisfied.
            let per_segment = self.target_ticks.div_ceil(pt);
            let ahead = if msn == next {
                u64::from(p) + 1 - open_parts as u64
            } else {
                per_segment.saturating_sub(open_parts as u64) + u64::from(p) + 1
            };
            if ahead > self.advance_part_limit(pt) {
                return Availability::BeyondLimit;
            }
        }
        Availability::NotYet
    }

    /// §6.2.5.2: "The Advance Part Limit is three divided by the Part Target
    /// Duration if the Part Target Duration is less than one, or three
    /// otherwise." Rounded up, to err on the side of waiting.
    fn advance_part_limit(&self, part_target_ticks: u64) -> u64 {
        let ts = u64::from(self.timescale);
        if part_target_ticks < ts {
            (3 * ts).div_ceil(part_target_ticks)
        } else {
            3
        }
    }
}

/// A relayed live media playlist as it ends when its origin is gone: the
/// complete segments it lists, then `EXT-X-ENDLIST`. Parts, the preload
/// hint, rendition reports and the blocking-reload server control go (they
/// promise media that will not come), and so do tags left after the last
/// segment. A playlist that had ended already is returned unchanged; a
/// delta update (`EXT-X-SKIP`) cannot be ended this way and gives `None`.
pub fn ended_playlist(playlist: &str) -> Option<String> {
    if playlist.lines().any(|l| l.starts_with("#EXT-X-SKIP")) {
        return None;
    }
    if playlist.lines().any(|l| l == "#EXT-X-ENDLIST") {
        return Some(playlist.to_owned());
    }
    const DROPPED: [&str; 5] = [
        "#EXT-X-PART:",
        "#EXT-X-PRELOAD-HINT:",
        "#EXT-X-RENDITION-REPORT:",
        "#EXT-X-PART-INF:",
        "#EXT-X-SERVER-CONTROL:",
    ];
    let kept: Vec<&str> = playlist
        .lines()
        .filter(|l| !DROPPED.iter().any(|d| l.starts_with(d)))
        .collect();
    let last_uri = kept
        .iter()
        .rposition(|l| !l.is_empty() && !l.starts_with('#'));
    let header_end = kept
        .iter()
        .position(|l| l.starts_with("#EXTINF") || l.starts_with("#EXT-X-PROGRAM-DATE-TIME"))
        .unwrap_or(kept.len());
    let end = last_uri.map_or(header_end, |i| i + 1);
    let mut out = String::with_capacity(playlist.len());
    for line in &kept[..end] {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("#EXT-X-ENDLIST\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_playlist_ends_with_its_complete_segments() {
        let live = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.999\n#EXT-X-PART-INF:PART-TARGET=0.333\n\
#EXT-X-MAP:URI=\"init-7-0.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2026-12-03T19:57:17.719Z\n\
#EXT-X-PART:DURATION=0.320,URI=\"7.0.m4s\",INDEPENDENT=YES\n#EXTINF:2.000,\n7.m4s\n\
#EXT-X-PROGRAM-DATE-TIME:2026-12-03T19:57:19.719Z\n#EXT-X-PART:DURATION=0.320,URI=\"8.0.m4s\"\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"8.1.m4s\"\n#EXT-X-RENDITION-REPORT:URI=\"../a1/media.m3u8\",LAST-MSN=8,LAST-PART=0\n";
        let ended = ended_playlist(live).unwrap();
        assert_eq!(
            ended,
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
#EXT-X-MAP:URI=\"init-7-0.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2026-12-03T19:57:17.719Z\n\
#EXTINF:2.000,\n7.m4s\n#EXT-X-ENDLIST\n"
        );
        // Ended already: unchanged; a delta update cannot be ended.
        assert_eq!(ended_playlist(&ended).as_deref(), Some(ended.as_str()));
        assert_eq!(
            ended_playlist("#EXTM3U\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n"),
            None
        );
    }
    use crate::hls::model::ByteRange;

    const TS: u32 = 90_000;
    /// 2 s segments of six 1/3 s parts.
    const PART: u64 = 30_000;
    const SEG: u64 = 6 * PART;

    fn hint(msn: u64, part: usize) -> PreloadHint {
        PreloadHint {
            uri: format!("seg{msn}.{part}.m4s"),
            byte_range_start: None,
        }
    }

    fn ll(window: Window) -> LivePlaylist {
        let config = LivePlaylistConfig::new(window, 2, TS)
            .with_parts(PART)
            .with_delta_updates();
        let map = Map {
            uri: "init.mp4".into(),
            byte_range: None,
        };
        match LivePlaylist::new(config, Some(map), Some(hint(0, 0))) {
            Ok(pl) => pl,
            Err(e) => panic!("config rejected: {e}"),
        }
    }

    fn push(pl: &mut LivePlaylist, duration: u64) -> Result<Position, HlsError> {
        let msn = pl.playlist().next_msn();
        let index = pl
            .playlist()
            .low_latency
            .as_ref()
            .map_or(0, |l| l.open.parts.len());
        pl.push_part(
            NewPart {
                uri: format!("seg{msn}.{index}.m4s"),
                duration,
                independent: index == 0,
                byte_range: None,
            },
            hint(msn, index + 1),
        )
    }

    fn close(pl: &mut LivePlaylist, duration: u64) -> Result<SegmentClosed, HlsError> {
        let msn = pl.playlist().next_msn();
        pl.close_segment(NewSegment {
            uri: format!("seg{msn}.m4s"),
            duration,
            byte_range: None,
            program_date_time: None,
        })
    }

    fn segment(pl: &mut LivePlaylist) -> SegmentClosed {
        for _ in 0..6 {
            assert!(push(pl, PART).is_ok());
        }
        match close(pl, SEG) {
            Ok(c) => c,
            Err(e) => panic!("close rejected: {e}"),
        }
    }

    #[test]
    fn sliding_window_over_six_hours_keeps_sequence_arithmetic() {
        let mut pl = ll(Window::Sliding { segments: 6 });
        let total: u64 = 6 * 3600 / 2;
        let mut evicted_until = 0;
        for n in 0..total {
            if n % 500 == 499 {
                assert_eq!(pl.discontinuity(None), Ok(()));
            }
            let closed = segment(&mut pl);
            assert_eq!(closed.msn, n);
            assert_eq!(closed.evicted.start, evicted_until);
            evicted_until = closed.evicted.end;
            let p = pl.playlist();
            assert_eq!(p.media_sequence + p.segments.len() as u64, n + 1);
            assert!(p.segments.len() <= 6);
            // Discontinuities at segments 499, 999, …: the sequence counts
            // those that slid out.
            let listed_disc = p.segments.iter().filter(|s| s.discontinuity).count() as u64;
            let total_disc = (n + 1) / 500;
            assert_eq!(p.discontinuity_sequence + listed_disc, total_disc);
            // Once the window slides, the first segment's number is the
            // sequence alone: it never carries the tag itself.
            if p.media_sequence > 0 {
                assert!(!p.segments[0].discontinuity, "at {n}");
            }
            // Parts kept only within 3 target durations of the end.
            let with_parts = p.segments.iter().filter(|s| !s.parts.is_empty()).count();
            assert!(with_parts <= 3, "{with_parts} segments keep parts at {n}");
            assert_eq!(pl.window_ticks, SEG * p.segments.len() as u64);
        }
        assert_eq!(pl.playlist().media_sequence, total - 6);
        assert_eq!(evicted_until, total - 6);
        assert_eq!(
            pl.last_position(),
            Some(Position {
                msn: total - 1,
                part: Some(5)
            })
        );
        assert_eq!(pl.is_available(total - 6, None), Availability::Available);
        assert_eq!(pl.is_available(total - 7, None), Availability::Gone);
        assert_eq!(pl.is_available(total, Some(0)), Availability::NotYet);
    }

    #[test]
    fn window_never_shorter_than_three_target_durations() {
        let config = LivePlaylistConfig::new(Window::Sliding { segments: 2 }, 2, TS);
        let Ok(mut pl) = LivePlaylist::new(config, None, None) else {
            panic!("config rejected");
        };
        for _ in 0..10 {
            assert!(close(&mut pl, SEG).is_ok());
        }
        // Two 2 s segments would be 4 s < 3 × 2 s: three stay listed.
        assert_eq!(pl.playlist().segments.len(), 3);
        assert_eq!(pl.playlist().media_sequence, 7);
    }

    #[test]
    fn event_window_keeps_everything_and_prunes_parts() {
        let mut pl = ll(Window::Event);
        for _ in 0..1800 {
            segment(&mut pl);
        }
        let p = pl.playlist();
        assert_eq!(p.segments.len(), 1800);
        assert_eq!(p.media_sequence, 0);
        assert_eq!(p.playlist_type, PlaylistType::Event);
        let with_parts: Vec<usize> = p
            .segments
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.parts.is_empty())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(with_parts, [1797, 1798, 1799]);
    }

    #[test]
    fn availability_for_blocking_reloads() {
        let mut pl = ll(Window::Sliding { segments: 4 });
        assert_eq!(pl.is_available(0, None), Availability::NotYet);
        assert_eq!(pl.is_available(0, Some(0)), Availability::NotYet);
        assert_eq!(pl.is_available(1, None), Availability::NotYet);
        assert_eq!(pl.is_available(2, None), Availability::BeyondLimit);
        assert_eq!(pl.last_position(), None);

        assert_eq!(
            push(&mut pl, PART),
            Ok(Position {
                msn: 0,
                part: Some(0)
            })
        );
        assert_eq!(pl.is_available(0, Some(0)), Availability::Available);
        assert_eq!(pl.is_available(0, Some(1)), Availability::NotYet);
        assert_eq!(pl.is_available(0, None), Availability::NotYet);
        // Advance Part Limit: 3 / (1/3 s) = 9 parts ahead of the last one.
        assert_eq!(pl.is_available(0, Some(9)), Availability::NotYet);
        assert_eq!(pl.is_available(0, Some(10)), Availability::BeyondLimit);
        // Segment 1: at most 5 more parts of segment 0, then part p of 1.
        assert_eq!(pl.is_available(1, Some(3)), Availability::NotYet);
        assert_eq!(pl.is_available(1, Some(4)), Availability::BeyondLimit);

        for _ in 0..5 {
            assert!(push(&mut pl, PART).is_ok());
        }
        assert!(close(&mut pl, SEG).is_ok());
        assert_eq!(pl.is_available(0, None), Availability::Available);
        // A part index past the end of a complete segment: the playlist holds
        // the whole segment, so the request is satisfied.
        assert_eq!(pl.is_available(0, Some(6)), Availability::Available);
        assert_eq!(pl.is_available(1, Some(0)), Availability::NotYet);
        assert_eq!(pl.is_available(2, None), Availability::NotYet);
        assert_eq!(pl.is_available(3, None), Availability::BeyondLimit);
        assert_eq!(
            pl.last_position(),
            Some(Position {
                msn: 0,
                part: Some(5)
            })
        );
        assert_eq!(
            pl.rendition_report("../720p/index.m3u8"),
            Some(RenditionReport {
                uri: "../720p/index.m3u8".into(),
                last_msn: 0,
                last_part: Some(5)
            })
        );

        assert_eq!(pl.end(), Ok(()));
        assert_eq!(pl.is_available(1, Some(0)), Availability::Ended);
        assert_eq!(pl.is_available(9, None), Availability::Ended);
        assert_eq!(pl.is_available(0, None), Availability::Available);
        assert!(
            pl.playlist()
                .low_latency
                .as_ref()
                .is_some_and(|l| l.preload_hint.is_none())
        );
        assert_eq!(push(&mut pl, PART), Err(HlsError::Ended));
    }

    #[test]
    fn rejects_what_would_break_the_playlist() {
        let mut pl = ll(Window::Event);
        // A part longer than PART-TARGET (one frame longer than a part: the
        // fragmenter makes no other) is listed with a warning, not refused.
        assert!(push(&mut pl, PART + 1).is_ok());
        let mut pl = ll(Window::Event);
        // Parts that would make the segment round above the target duration.
        for _ in 0..7 {
            assert!(push(&mut pl, PART).is_ok());
        }
        assert!(matches!(
            push(&mut pl, PART),
            Err(HlsError::SegmentExceedsTarget {
                msn: 0,
                target: 2,
                ..
            })
        ));
        // Segment duration must equal the sum of its parts.
        assert!(matches!(
            close(&mut pl, SEG),
            Err(HlsError::PartsDurationMismatch { msn: 0, .. })
        ));
        assert_eq!(
            pl.discontinuity(None),
            Err(HlsError::SegmentInProgress { parts: 7 })
        );
        assert_eq!(pl.end(), Err(HlsError::SegmentInProgress { parts: 7 }));
        assert!(close(&mut pl, 7 * PART).is_ok());
        assert!(matches!(
            pl.close_segment(NewSegment {
                uri: "bad\nuri".into(),
                duration: SEG,
                byte_range: Some(ByteRange {
                    length: 1,
                    offset: 0
                }),
                program_date_time: None,
            }),
            Err(HlsError::InvalidUri { .. })
        ));
        // Nothing half-applied.
        assert_eq!(pl.playlist().segments.len(), 1);
        assert_eq!(pl.playlist().validate(), Ok(()));
    }

    #[test]
    fn config_minimums() {
        let base = LivePlaylistConfig::new(Window::Event, 2, TS).with_parts(PART);
        let short_hold_back = LivePlaylistConfig {
            hold_back: Some(MediaDuration::from_secs(5)),
            ..base.clone()
        };
        assert!(matches!(
            LivePlaylist::new(short_hold_back, None, Some(hint(0, 0))),
            Err(HlsError::BelowMinimum {
                attribute: "HOLD-BACK",
                ..
            })
        ));
        let short_skip = LivePlaylistConfig {
            can_skip_until: Some(MediaDuration::from_secs(11)),
            ..base.clone()
        };
        assert!(matches!(
            LivePlaylist::new(short_skip, None, Some(hint(0, 0))),
            Err(HlsError::BelowMinimum {
                attribute: "CAN-SKIP-UNTIL",
                ..
            })
        ));
        assert!(matches!(
            LivePlaylist::new(base.clone(), None, None),
            Err(HlsError::MissingPreloadHint)
        ));
        let long_part = base.clone().with_parts(3 * u64::from(TS));
        assert!(matches!(
            LivePlaylist::new(long_part, None, Some(hint(0, 0))),
            Err(HlsError::InvalidPartTarget)
        ));
        let no_window = LivePlaylistConfig::new(Window::Sliding { segments: 0 }, 2, TS);
        assert!(matches!(
            LivePlaylist::new(no_window, None, None),
            Err(HlsError::ZeroWindow)
        ));
        let Ok(pl) = LivePlaylist::new(base, None, Some(hint(0, 0))) else {
            panic!("default config rejected");
        };
        let sc = &pl.playlist().server_control;
        assert!(sc.can_block_reload);
        assert_eq!(sc.hold_back, Some(MediaDuration::from_secs(6)));
        assert_eq!(sc.part_hold_back.map(|d| d.ticks()), Some(3 * PART));
    }
}
