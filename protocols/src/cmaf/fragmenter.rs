//! The CMAF fragmenter: a sans-IO state machine that turns samples into
//! LL-HLS parts (CMAF chunks) and segments, per track.
//!
//! # Call order
//!
//! 1. [`Fragmenter::new`], then [`Fragmenter::add_track`] once per track;
//!    [`init_segment`](super::init_segment) gives each track's header.
//! 2. [`Fragmenter::push`] each sample, in decode order per track (tracks may
//!    interleave freely). After every `push`, drain [`Fragmenter::poll_event`]
//!    until it returns `None`.
//! 3. At end of stream, [`Fragmenter::flush`], then drain `poll_event` again.
//!    A track may continue after `flush`; its next segment must then start
//!    with a sync sample again.
//!
//! # Cutting rules
//!
//! - A segment starts with a sync sample (ISO/IEC 23000-19 §7.3.2.2: a CMAF
//!   fragment starts with a SAP of type 1 or 2). A new segment starts at the
//!   first sync sample at least the target segment duration after the
//!   current segment's start; every audio sample is a sync sample.
//! - A part ends before the sample that would take it past the part
//!   duration, or at the end of its segment. A sample's duration is only
//!   known when the next one arrives, so the decision uses the longest gap
//!   between the track's last [`RECENT_GAPS`] samples: timestamps jitter
//!   around their nominal spacing (RTMP's whole milliseconds give 30 fps as
//!   33/33/34 ms), and a part planned from the previous gap alone comes out
//!   a tick long. Whatever the jitter, no part lasts longer than the part
//!   duration (the declared `PART-TARGET`; RFC 8216bis §4.4.4.9: a Partial
//!   Segment's duration "MUST be less than or equal to the Part Target
//!   Duration"): when the next sample shows that the pending part ran past
//!   it, the part is closed without its last sample, which begins the next
//!   part. Only a single sample longer than the part duration (a frame rate
//!   under 3 fps, or a gap in the input) makes a longer part.
//! - A part that starts with a sync sample is *independent*
//!   (`EXT-X-PART:INDEPENDENT=YES`).
//! - With [`Fragmenter::split_at_keyframes`], every video sync sample is a
//!   part of its own: a `moof` + `mdat` holding that one sample, the byte
//!   range an I-frame playlist entry addresses.
//! - Each part is one `moof` + `mdat`; the first part of a segment starts with
//!   the segment's `styp`. A segment's bytes are exactly the concatenation of
//!   its parts' bytes, so HLS can address parts as byte ranges of the segment.
//!
//! # Timing
//!
//! Times are the samples' own integers in the track timescale; nothing is
//! rounded. A sample's duration in the output is the distance to the next
//! sample's dts (the stream's timeline wins over a stated duration); the
//! last sample before [`Fragmenter::flush`] keeps its stated duration. That is
//! why a part is emitted when the sample after it is pushed: only then is the
//! duration of its last sample known. Each chunk's `tfdt` is its first
//! sample's dts, and consecutive segments tile the timeline without gaps.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;

use crate::rope::Rope;

use super::fragment::{ChunkSample, write_chunk_header, write_styp};
use super::{CmafError, MAX_SAMPLE_SIZE};
use crate::media::{MediaKind, Sample, Track, TrackId};

/// How many of a track's latest sample gaps plan the next part.
pub const RECENT_GAPS: usize = 8;

/// A target duration in seconds, as an exact fraction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetDuration {
    pub num: u64,
    pub den: u64,
}

impl TargetDuration {
    pub const fn from_millis(ms: u64) -> Self {
        Self { num: ms, den: 1000 }
    }

    pub const fn from_secs(secs: u64) -> Self {
        Self { num: secs, den: 1 }
    }

    /// This duration in ticks of `timescale`, rounded down, at least one tick.
    pub fn ticks(self, timescale: u32) -> u64 {
        let ticks = u128::from(self.num) * u128::from(timescale) / u128::from(self.den.max(1));
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }
}

/// How segments and parts are cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmenterConfig {
    pub segment_duration: TargetDuration,
    /// `None` makes each segment a single part.
    pub part_duration: Option<TargetDuration>,
    /// Sequence number of each track's first segment.
    pub first_segment_seq: u64,
}

impl Default for FragmenterConfig {
    fn default() -> Self {
        Self {
            segment_duration: TargetDuration::from_secs(2),
            part_duration: None,
            first_segment_seq: 1,
        }
    }
}

/// A finished part: one CMAF chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub track: TrackId,
    pub segment_seq: u64,
    /// Index of this part within its segment, from 0.
    pub part_index: u32,
    /// The part starts with a sync sample.
    pub independent: bool,
    /// Decode time of the first sample, in the track timescale.
    pub start_dts: u64,
    pub duration: u64,
    /// `moof` + `mdat`, preceded by `styp` for part 0: the boxes in one
    /// piece, then each sample's data as it was pushed.
    pub data: Rope,
}

/// Where a part lies within its segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartInfo {
    /// Byte range within [`Segment::data`].
    pub range: Range<usize>,
    /// Where the part's `moof` starts (after the `styp` of part 0).
    pub moof_offset: usize,
    /// Where the first sample's data starts, just after the `mdat` header.
    pub data_offset: usize,
    pub start_dts: u64,
    pub duration: u64,
    pub independent: bool,
}

/// A finished segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub track: TrackId,
    pub seq: u64,
    pub start_dts: u64,
    pub duration: u64,
    /// Decode times of the sync samples in the segment; the first is `start_dts`.
    pub keyframe_dts: Vec<u64>,
    /// `styp` followed by every part's `moof` + `mdat`: the parts' pieces,
    /// shared with the [`Part`]s, not copied.
    pub data: Rope,
    pub parts: Vec<PartInfo>,
}

/// Output of the fragmenter. A segment's `Part`s all come before its `Segment`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Part(Part),
    Segment(Segment),
}

struct OpenSegment {
    seq: u64,
    start_dts: u64,
    parts: Vec<PartInfo>,
    data: Rope,
    keyframe_dts: Vec<u64>,
}

struct TrackState {
    kind: MediaKind,
    segment_ticks: u64,
    /// The longest a part may last.
    part_limit: Option<u64>,
    /// The gaps between the track's latest samples, newest at `gap_at`.
    recent_gaps: [u32; RECENT_GAPS],
    gap_at: usize,
    next_segment_seq: u64,
    next_fragment_seq: u32,
    last_dts: Option<i64>,
    segment: Option<OpenSegment>,
    pending: Vec<ChunkSample>,
    pending_start: u64,
    pending_end: u64,
    /// A follower track is cut where another track was, not by duration:
    /// the sequence number and start time of each later segment of the
    /// track it follows.
    follow: Option<VecDeque<(u64, u64)>>,
}

/// Per-presentation CMAF fragmenter; each track is cut independently.
pub struct Fragmenter {
    config: FragmenterConfig,
    split_at_keyframes: bool,
    tracks: HashMap<TrackId, TrackState>,
    events: VecDeque<Event>,
}

impl Fragmenter {
    pub fn new(config: FragmenterConfig) -> Self {
        Self {
            config,
            split_at_keyframes: false,
            tracks: HashMap::new(),
            events: VecDeque::new(),
        }
    }

    /// Also puts every video sync sample in a part of its own (RFC 8216bis
    /// §4.4.3.6: an I-frame playlist entry is a byte range holding one
    /// I-frame, which a client must be able to decode from the range alone).
    /// The range is then a whole `moof` + `mdat` whose `trun` lists only the
    /// keyframe, so even a demuxer that knows nothing of I-frame playlists
    /// reads it as a complete fragment.
    pub fn split_at_keyframes(mut self) -> Self {
        self.split_at_keyframes = true;
        self
    }

    /// Registers a track; samples for it may follow.
    pub fn add_track(&mut self, track: &Track) -> Result<(), CmafError> {
        self.add_track_from(track, self.config.first_segment_seq)
    }

    /// Registers a track whose segments are numbered from `first_segment_seq`
    /// (a stream that resumes continues each track's own numbering).
    pub fn add_track_from(
        &mut self,
        track: &Track,
        first_segment_seq: u64,
    ) -> Result<(), CmafError> {
        self.add_track_resumed(track, first_segment_seq, 1)
    }

    /// Registers a track that goes on from an earlier run: its segments
    /// numbered from `first_segment_seq` and its fragments (`mfhd`) from
    /// `first_fragment_seq`, as if the run had not stopped.
    pub fn add_track_resumed(
        &mut self,
        track: &Track,
        first_segment_seq: u64,
        first_fragment_seq: u32,
    ) -> Result<(), CmafError> {
        if track.timescale == 0 {
            return Err(CmafError::InvalidTrack {
                track: track.id,
                reason: "timescale is 0",
            });
        }
        if self.tracks.contains_key(&track.id) {
            return Err(CmafError::DuplicateTrack { track: track.id });
        }
        self.tracks.insert(
            track.id,
            TrackState {
                kind: track.kind(),
                segment_ticks: self.config.segment_duration.ticks(track.timescale),
                part_limit: self.config.part_duration.map(|d| d.ticks(track.timescale)),
                recent_gaps: [0; RECENT_GAPS],
                gap_at: 0,
                next_segment_seq: first_segment_seq,
                next_fragment_seq: first_fragment_seq,
                last_dts: None,
                segment: None,
                pending: Vec::new(),
                pending_start: 0,
                pending_end: 0,
                follow: None,
            },
        );
        Ok(())
    }

    /// Registers a track cut where another track is (a live ladder rung
    /// made from the source rendition): a segment ends only at a keyframe
    /// at or after a start given by [`follow`](Self::follow), and takes that
    /// segment's number; the first segment is numbered `first_segment_seq`.
    pub fn add_follower(&mut self, track: &Track, first_segment_seq: u64) -> Result<(), CmafError> {
        self.add_track_from(track, first_segment_seq)?;
        if let Some(state) = self.tracks.get_mut(&track.id) {
            state.follow = Some(VecDeque::new());
        }
        Ok(())
    }

    /// Whether `track` was added.
    pub fn has_track(&self, track: TrackId) -> bool {
        self.tracks.contains_key(&track)
    }

    /// Tells a follower track that segment `seq` of the track it follows
    /// starts at decode time `start`. Starts must come in increasing order;
    /// those already passed are ignored.
    pub fn follow(&mut self, track: TrackId, seq: u64, start: u64) -> Result<(), CmafError> {
        let state = self
            .tracks
            .get_mut(&track)
            .ok_or(CmafError::UnknownTrack { track })?;
        let Some(starts) = state.follow.as_mut() else {
            return Err(CmafError::InvalidTrack {
                track,
                reason: "not a follower track",
            });
        };
        let open = state.segment.as_ref().map(|s| (s.seq, s.start_dts));
        if starts.back().is_some_and(|&(s, _)| s >= seq) || open.is_some_and(|(s, _)| s >= seq) {
            return Ok(());
        }
        starts.push_back((seq, start));
        Ok(())
    }

    /// Ends one track's open part and segment (a follower whose input ended
    /// while the others go on).
    pub fn flush_track(&mut self, track: TrackId) -> Result<(), CmafError> {
        let state = self
            .tracks
            .get_mut(&track)
            .ok_or(CmafError::UnknownTrack { track })?;
        state.close_part(track, &mut self.events)?;
        state.close_segment(track, &mut self.events);
        Ok(())
    }

    /// Adds the next sample of its track. A sample refused by validation is
    /// dropped and leaves the fragmenter unchanged, so the caller may go on.
    pub fn push(&mut self, sample: Sample) -> Result<(), CmafError> {
        let track = sample.track;
        let state = self
            .tracks
            .get_mut(&track)
            .ok_or(CmafError::UnknownTrack { track })?;
        let (udts, keyframe) = state.check(&sample)?;
        if !state.pending.is_empty() {
            state.time_last_pending(track, udts, &mut self.events)?;
        }
        let follow_seq = if keyframe {
            state.followed_start(track, udts)?
        } else {
            None
        };
        let segment_due = match (&state.segment, &state.follow) {
            (Some(_), Some(_)) => follow_seq.is_some(),
            (Some(seg), None) => udts - seg.start_dts >= state.segment_ticks,
            (None, _) => false,
        };
        if keyframe && segment_due {
            state.close_part(track, &mut self.events)?;
            state.close_segment(track, &mut self.events);
        } else if !state.pending.is_empty()
            && ((self.split_at_keyframes
                && state.kind == MediaKind::Video
                && (keyframe || matches!(state.pending.as_slice(), [only] if only.keyframe)))
                || state.part_limit.is_some_and(|limit| {
                    let expected = state.recent_gaps.iter().max().copied().unwrap_or(0);
                    udts - state.pending_start + u64::from(sample.duration.max(expected)) > limit
                }))
        {
            state.close_part(track, &mut self.events)?;
        }

        if state.segment.is_none() {
            state.segment = Some(OpenSegment {
                seq: state.next_segment_seq,
                start_dts: udts,
                parts: Vec::new(),
                data: Rope::new(),
                keyframe_dts: Vec::new(),
            });
            state.next_segment_seq += 1;
        }
        if keyframe && let Some(seg) = state.segment.as_mut() {
            seg.keyframe_dts.push(udts);
        }
        if state.pending.is_empty() {
            state.pending_start = udts;
        }
        state.pending_end = udts + u64::from(sample.duration);
        state.pending.push(ChunkSample {
            duration: sample.duration,
            cts_offset: sample.cts_offset,
            keyframe,
            data: sample.data,
        });
        state.last_dts = Some(sample.dts);
        Ok(())
    }

    /// Ends every open part and segment, using the last samples' stated durations.
    pub fn flush(&mut self) -> Result<(), CmafError> {
        let mut ids: Vec<TrackId> = self.tracks.keys().copied().collect();
        ids.sort_unstable();
        for track in ids {
            if let Some(state) = self.tracks.get_mut(&track) {
                state.close_part(track, &mut self.events)?;
                state.close_segment(track, &mut self.events);
            }
        }
        Ok(())
    }

    /// The next finished part or segment. Call after every `push` and `flush`
    /// until it returns `None`.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

impl TrackState {
    /// Validates the next sample of this track: its decode time as
    /// unsigned, and whether it starts a fragment (audio always may).
    fn check(&self, sample: &Sample) -> Result<(u64, bool), CmafError> {
        let (track, dts) = (sample.track, sample.dts);
        if sample.duration == 0 {
            return Err(CmafError::ZeroDuration { track, dts });
        }
        if sample.data.len() > MAX_SAMPLE_SIZE {
            return Err(CmafError::SampleTooLarge {
                track,
                dts,
                size: sample.data.len(),
                max: MAX_SAMPLE_SIZE,
            });
        }
        let Ok(udts) = u64::try_from(dts) else {
            return Err(CmafError::NegativeDts { track, dts });
        };
        if let Some(previous) = self.last_dts
            && dts <= previous
        {
            return Err(CmafError::NonMonotonicDts {
                track,
                previous,
                dts,
            });
        }
        let keyframe = sample.keyframe || self.kind == MediaKind::Audio;
        if self.segment.is_none() && !keyframe {
            return Err(CmafError::NotKeyframe { track, dts });
        }
        Ok((udts, keyframe))
    }

    /// A sample arrived at `udts`: the last pending sample lasts until
    /// then, which may end the part before it.
    fn time_last_pending(
        &mut self,
        track: TrackId,
        udts: u64,
        events: &mut VecDeque<Event>,
    ) -> Result<(), CmafError> {
        let last_dts = self.pending_end - u64::from(self.pending.last().map_or(0, |s| s.duration));
        let gap = udts - last_dts;
        let Ok(duration) = u32::try_from(gap) else {
            return Err(CmafError::GapTooLarge {
                track,
                dts: i64::try_from(udts).unwrap_or(i64::MAX),
                gap: i64::try_from(gap).unwrap_or(i64::MAX),
            });
        };
        if let Some(last) = self.pending.last_mut() {
            last.duration = duration;
        }
        self.pending_end = udts;
        // A gap longer than a part is a pause in the input (a resumed
        // publisher, a dropped run of frames), not the spacing of the
        // frames to come.
        if self
            .part_limit
            .is_none_or(|limit| u64::from(duration) <= limit)
        {
            self.gap_at = (self.gap_at + 1) % RECENT_GAPS;
            self.recent_gaps[self.gap_at] = duration;
        }
        // The last pending sample lasted longer than planned: the part
        // would exceed its limit, so it ends before that sample.
        if self.pending.len() > 1
            && self
                .part_limit
                .is_some_and(|limit| udts - self.pending_start > limit)
        {
            self.close_part_but_last(track, events)?;
        }
        Ok(())
    }

    /// A follower's segment starts where the followed track's does: the
    /// number of the last start at or before the keyframe at `udts`, if
    /// one passed.
    fn followed_start(&mut self, track: TrackId, udts: u64) -> Result<Option<u64>, CmafError> {
        let Some(starts) = self.follow.as_mut() else {
            return Ok(None);
        };
        let mut follow_seq = None;
        while let Some(&(seq, start)) = starts.front() {
            if start > udts {
                break;
            }
            if follow_seq.is_some() && self.segment.is_some() {
                // Two starts passed at once: the follower lost a whole
                // segment, and its numbering would leave the other's.
                return Err(CmafError::FollowerSkipped { track, seq });
            }
            follow_seq = Some(seq);
            starts.pop_front();
        }
        if let Some(seq) = follow_seq {
            if self.segment.is_some() && seq != self.next_segment_seq {
                return Err(CmafError::FollowerSkipped { track, seq });
            }
            if self.segment.is_none() {
                self.next_segment_seq = seq;
            }
        }
        Ok(follow_seq)
    }

    /// Closes the pending part without its last sample, which stays
    /// pending as the first of the next part.
    fn close_part_but_last(
        &mut self,
        track: TrackId,
        events: &mut VecDeque<Event>,
    ) -> Result<(), CmafError> {
        let Some(last) = self.pending.pop() else {
            return Ok(());
        };
        let end = self.pending_end;
        self.pending_end -= u64::from(last.duration);
        self.close_part(track, events)?;
        self.pending_start = self.pending_end;
        self.pending_end = end;
        self.pending.push(last);
        Ok(())
    }

    fn close_part(
        &mut self,
        track: TrackId,
        events: &mut VecDeque<Event>,
    ) -> Result<(), CmafError> {
        let (Some(seg), false) = (self.segment.as_mut(), self.pending.is_empty()) else {
            return Ok(());
        };
        let part_index = seg.parts.len() as u32;
        let mut header = Vec::with_capacity(256 + 16 * self.pending.len());
        if part_index == 0 {
            write_styp(&mut header).map_err(|source| CmafError::Encode {
                track,
                what: "styp",
                source,
            })?;
        }
        let moof_at = header.len();
        write_chunk_header(
            &mut header,
            self.next_fragment_seq,
            track,
            self.pending_start,
            &self.pending,
        )?;
        let data_at = header.len();
        self.next_fragment_seq = self.next_fragment_seq.wrapping_add(1).max(1);
        let mut data = Rope::from(header);
        for sample in &mut self.pending {
            data.push(std::mem::take(&mut sample.data));
        }
        let duration = self.pending_end - self.pending_start;
        let independent = self.pending.first().is_some_and(|s| s.keyframe);
        let start = seg.data.len();
        seg.parts.push(PartInfo {
            range: start..start + data.len(),
            moof_offset: start + moof_at,
            data_offset: start + data_at,
            start_dts: self.pending_start,
            duration,
            independent,
        });
        seg.data.append(&data);
        events.push_back(Event::Part(Part {
            track,
            segment_seq: seg.seq,
            part_index,
            independent,
            start_dts: self.pending_start,
            duration,
            data,
        }));
        self.pending.clear();
        self.pending_start = self.pending_end;
        Ok(())
    }

    fn close_segment(&mut self, track: TrackId, events: &mut VecDeque<Event>) {
        let Some(seg) = self.segment.take() else {
            return;
        };
        if seg.parts.is_empty() {
            return;
        }
        let duration = seg.parts.iter().map(|p| p.duration).sum();
        events.push_back(Event::Segment(Segment {
            track,
            seq: seg.seq,
            start_dts: seg.start_dts,
            duration,
            keyframe_dts: seg.keyframe_dts,
            data: seg.data,
            parts: seg.parts,
        }));
    }
}
