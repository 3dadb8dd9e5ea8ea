//! Live packaging of one published stream: samples in, LL-HLS parts, CMAF
//! segments, playlists and a dynamic MPD out, all from the same bytes.
//!
//! # Call order
//!
//! 1. [`LivePackager::new`] with the stream's tracks and the wall-clock time
//!    of its first sample (the DASH `availabilityStartTime`).
//! 2. [`LivePackager::push`] every sample as it arrives. Parts and segments
//!    are kept inside the packager (shared [`Bytes`], never copied per
//!    viewer) and announced by [`LivePackager::poll_output`].
//! 3. Viewers' requests are answered from the same value:
//!    [`media_playlist`](LivePackager::media_playlist),
//!    [`part`](LivePackager::part), [`segment_parts`](LivePackager::segment_parts),
//!    [`multivariant`](LivePackager::multivariant) and [`mpd`](LivePackager::mpd).
//!    A [`Reply::Wait`] asks the caller to hold the request until the next
//!    output and ask again (RFC 8216bis §6.2.5.2 blocking reload).
//! 4. When the publisher stops, [`LivePackager::end`]: the last segment is
//!    closed, the playlists get `EXT-X-ENDLIST` and the MPD turns static.
//!
//! # Layout (relative to `/live/{stream}/`)
//!
//! ```text
//! master.m3u8                                  manifest.mpd
//! v1/media.m3u8  v1/init.mp4  v1/{msn}.m4s  v1/{msn}.{part}.m4s
//! a1/media.m3u8  a1/init.mp4  a1/{msn}.m4s  a1/{msn}.{part}.m4s
//! ```
//!
//! A segment is exactly its parts' bytes one after the other, so a segment
//! still in progress can be sent part by part as each completes (chunked
//! transfer for low-latency DASH, whose `availabilityTimeOffset` announces
//! segments one part after they start). HLS and DASH share the numbering:
//! the media sequence number is the DASH `$Number$`.
//!
//! # Files
//!
//! This file is the packager itself (timeline, epochs, fragmenting);
//! `follower.rs` holds ladder rungs that follow the source's segments, and
//! `manifests.rs` what players read (playlists, parts, the multivariant
//! playlist, the MPD).

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::cmaf::{
    CmafError, Event, Fragmenter, FragmenterConfig, Segment as CmafSegment, TargetDuration,
    init_segment,
};
use crate::dash::{
    AdaptationSets, Addressing, DashError, Dynamic, Grouping, Mpd, Period, Presentation,
    Representation, SegmentTemplate, ServiceDescription, TimelineSegment, UtcScheme, UtcTiming,
    render_mpd,
};
use crate::hls::{
    Availability, HlsError, InheritedSegment, Listed, LivePlaylist, LivePlaylistConfig, Map,
    MediaDuration, NewPart, NewSegment, PlaylistQuery, PreloadHint, RenderOptions, RenditionReport,
    UnixMillis, Window, ladder_playlist, render_multivariant,
};
use crate::media::{MediaKind, Sample, Track, TrackId};

/// HLS `GROUP-ID` of the audio renditions.
/// Track ids of ladder rungs start here, above any publisher's.
const RUNG_TRACK_BASE: TrackId = 1 << 20;

/// How a live stream is cut and how much of it stays listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePackaging {
    /// Segments are cut at the first keyframe at least this long after the
    /// segment start (2 s: Apple's LL-HLS guidance of 1–4 s, and the GOP
    /// most encoders are configured with for live).
    pub segment: TargetDuration,
    /// LL-HLS part (CMAF chunk) target. 1/3 s gives whole frames at 24,
    /// 25, 30 and 60 fps and keeps three parts (one PART-HOLD-BACK) to 1 s.
    pub part: TargetDuration,
    /// Segments listed in the sliding window; `None` keeps every segment
    /// (DVR: an `EVENT` playlist and an unbounded time-shift buffer).
    pub window_segments: Option<usize>,
    /// Segments that left the window stay fetchable for this many more
    /// (§6.2.2: for the duration of the longest playlist that listed them).
    pub retained_segments: usize,
    /// `MPD@id`.
    pub presentation_id: String,
    /// The first segment's number, in HLS and DASH alike. Numbers, and the
    /// init sections named after this one, are never reused by a later
    /// presentation of the stream: a URL a shared cache holds keeps its
    /// bytes (the server starts each presentation at the wall clock's
    /// seconds, above any number the previous one reached).
    pub first_msn: u64,
    /// URL a DASH client reads the server's clock from (an `xs:dateTime`).
    pub time_url: String,
}

impl Default for LivePackaging {
    fn default() -> Self {
        Self {
            segment: TargetDuration::from_secs(2),
            part: TargetDuration { num: 1, den: 3 },
            window_segments: Some(6),
            retained_segments: 6,
            presentation_id: "live".to_owned(),
            first_msn: 1,
            time_url: "/time".to_owned(),
        }
    }
}

/// Why a stream cannot be packaged.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("the stream has no audio or video track")]
    NoTracks,
    #[error("the stream has ended")]
    Ended,
    #[error("the stream is running; only a paused or ended stream resumes")]
    NotEnded,
    #[error("the resumed stream's tracks ({0}) differ in kind or number from before")]
    TracksDiffer(String),
    #[error("track {track}: {source}")]
    Cmaf {
        track: TrackId,
        #[source]
        source: CmafError,
    },
    #[error("HLS: {0}")]
    Hls(#[from] HlsError),
    #[error("DASH: {0}")]
    Dash(#[from] DashError),
    #[error("no video rendition {0:?} to make a ladder rung from")]
    NoSource(String),
    #[error("rendition {0:?} exists and is not a rung of this source")]
    RenditionTaken(String),
    #[error("rung {name}: its timescale {rung} differs from the source's {source_timescale}")]
    RungTimescale {
        name: String,
        rung: u32,
        source_timescale: u32,
    },
    #[error("rung {name}: it would continue at segment {from}, but its playlist is at {expected}")]
    RungGap {
        name: String,
        from: u64,
        expected: u64,
    },
    #[error("rung {name}: its codec changed within one publish ({0})", .codec)]
    RungChanged { name: String, codec: String },
    #[error("rung {name}: segment {msn} is still open (finish the rung before it continues)")]
    RungOpen { name: String, msn: u64 },
    #[error("no rung {0:?}")]
    NoRung(String),
}

/// What the packager produced; the bytes themselves stay in the packager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveOutput {
    /// A part is complete and listed.
    Part {
        rendition: usize,
        msn: u64,
        part: u32,
        /// Wall-clock offset of the part's end from the stream start, in ms:
        /// with the arrival time of the last sample this gives the latency
        /// the packager added.
        end_ms: u64,
    },
    /// A segment is complete and listed.
    Segment { rendition: usize, msn: u64 },
}

/// The answer to a viewer's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<T> {
    Ready(T),
    /// Not there yet but expected soon: hold the request, ask again after
    /// the next output (or give up after a timeout).
    Wait,
    /// No such rendition, or the media left the window.
    NotFound,
    /// §6.2.5.2: a blocking request too far ahead of the live edge.
    BadRequest(&'static str),
}

/// What a rung's encoder reads next; see [`LivePackager::follow`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Follow {
    /// The part, and the epoch (publisher run) of its segment: a new epoch
    /// has a new init section, so the encoder starts again.
    Part { data: Bytes, epoch: u32 },
    /// The segment is complete: read the next one from part 0.
    NextSegment,
    /// Not written yet.
    Wait,
    /// The publisher is away; the stream may resume or end.
    Paused,
    /// The stream ended here.
    Ended,
    /// No such rendition, or the segment left the store.
    Gone,
}

/// One rendition as [`LivePackager::renditions`] lists it.
#[derive(Clone, Debug)]
pub struct RenditionInfo<'a> {
    pub name: &'a str,
    /// For a ladder rung, the rendition it is made from.
    pub source: Option<&'a str>,
    pub track: &'a Track,
    /// Average bit rate so far, bits per second.
    pub bit_rate: u64,
    /// It has a complete segment, and is in the multivariant playlist and MPD.
    pub listed: bool,
}

struct StoredSegment {
    msn: u64,
    /// Which run of the publisher made it (0, then 1 after a resume, …):
    /// its init segment, and its DASH period.
    epoch: u32,
    parts: Vec<Bytes>,
    complete: bool,
    /// Decode time of the first sample and duration, in the track timescale.
    start: u64,
    duration: u64,
}

/// One track of the stream, or one ladder rung made from its video,
/// packaged as one rendition.
struct Rendition {
    name: String,
    track: Track,
    /// The CMAF header and the track of each epoch the rendition has media
    /// in (a rung may miss one).
    inits: Vec<(u32, Bytes)>,
    epoch_tracks: Vec<(u32, Track)>,
    /// The epoch of the media being added now.
    epoch: u32,
    /// A ladder rung: the index of the rendition it is made from, whose
    /// segment boundaries it follows.
    follows: Option<usize>,
    /// Its first segment made here (those before were listed by the node
    /// the stream was taken over from).
    first_own_msn: u64,
    playlist: LivePlaylist,
    /// Ticks of the parts listed for the open segment.
    open_ticks: u64,
    segments: VecDeque<StoredSegment>,
    /// First msn still in the playlist window.
    window_start: u64,
    peak_bps: u64,
    total_bytes: u64,
    total_ticks: u64,
    /// Video frames in the complete segments, and in the open one.
    frames: u64,
    open_frames: u64,
}

impl Rendition {
    /// Goes on in `epoch` with `track` from segment `next_msn`: a new init
    /// section (`init_uri`) and a discontinuity in the playlist.
    fn start_epoch(
        &mut self,
        init_uri: String,
        epoch: u32,
        track: &Track,
        next_msn: u64,
    ) -> Result<(), LiveError> {
        let init = init_segment(track).map_err(|source| LiveError::Cmaf {
            track: track.id,
            source,
        })?;
        self.playlist.resume(
            Map {
                uri: init_uri,
                byte_range: None,
            },
            Some(hint(next_msn, 0)),
        )?;
        self.inits.push((epoch, init));
        self.epoch_tracks.push((epoch, track.clone()));
        self.epoch = epoch;
        Ok(())
    }

    /// Lists the segments another node listed before it handed the
    /// stream over, ahead of this node's own (see [`Handover`]); their
    /// bytes stay there.
    fn inherit(
        &mut self,
        earlier: &EarlierRendition,
        handover: &Handover,
    ) -> Result<(), LiveError> {
        let segments = earlier
            .segments
            .iter()
            .map(|s| InheritedSegment {
                segment: NewSegment {
                    uri: format!("{}.m4s", s.msn),
                    duration: s.duration,
                    byte_range: None,
                    program_date_time: s.program_date_time,
                },
                discontinuity: s.discontinuity,
                map: Map {
                    uri: handover.init_name(s.epoch),
                    byte_range: None,
                },
            })
            .collect();
        self.playlist
            .inherit(segments, hint(self.first_own_msn, 0))?;
        self.segments = earlier
            .segments
            .iter()
            .map(|s| StoredSegment {
                msn: s.msn,
                epoch: s.epoch,
                parts: Vec::new(),
                complete: true,
                start: s.start,
                duration: s.duration,
            })
            .collect();
        Ok(())
    }

    fn stored(&self, msn: u64) -> Option<&StoredSegment> {
        let first = self.segments.front()?.msn;
        let seg = self
            .segments
            .get(usize::try_from(msn.checked_sub(first)?).ok()?)?;
        (seg.msn == msn).then_some(seg)
    }

    fn listed_segments(&self) -> impl Iterator<Item = &StoredSegment> {
        self.segments
            .iter()
            .filter(move |s| s.complete && s.msn >= self.window_start)
    }

    fn epoch_track(&self, epoch: u32) -> &Track {
        self.epoch_tracks
            .iter()
            .find(|(e, _)| *e == epoch)
            .map_or(&self.track, |(_, t)| t)
    }

    fn is_rung(&self) -> bool {
        self.follows.is_some()
    }

    /// The first segment number it has not listed or opened.
    fn unused_msn(&self) -> u64 {
        self.playlist.playlist().next_msn() + u64::from(self.open_ticks > 0)
    }

    fn is_listed(&self) -> bool {
        self.listed_segments().next().is_some()
    }

    fn average_bps(&self) -> u64 {
        crate::package::bit_rate(self.total_bytes, self.total_ticks, self.track.timescale)
    }

    fn frame_rate(&self) -> Option<crate::hls::FrameRate> {
        if self.track.kind() != MediaKind::Video || self.total_ticks == 0 {
            return None;
        }
        crate::package::rational(
            self.frames.saturating_mul(u64::from(self.track.timescale)),
            self.total_ticks,
        )
    }
}

/// Counters for the stream's status page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStats {
    pub samples: u64,
    /// Samples that could not be packaged: before the first keyframe or the
    /// stream start, or out of decode order.
    pub dropped: u64,
    pub bytes: u64,
}

/// Segments a live MPD announces after the last finished one: the one in
/// progress and the next.
const ANNOUNCED_AHEAD: u64 = 2;

/// How much media an epoch's first samples wait for every source track to
/// start, at most (a track that starts later than this may lose the samples
/// it decodes before the base).
const START_WAIT_MS: i64 = 1_000;

/// `ticks` of `timescale` in whole ms, rounded down (also below zero).
fn floor_ms(ticks: i64, timescale: i64) -> i64 {
    (i128::from(ticks) * 1000).div_euclid(i128::from(timescale.max(1))) as i64
}

/// The live packager of one stream; see the module documentation.
pub struct LivePackager {
    settings: LivePackaging,
    fragmenter: Fragmenter,
    renditions: Vec<Rendition>,
    by_track: HashMap<TrackId, usize>,
    start: UnixMillis,
    /// Decode time (ms) all tracks are rebased on: the stream's first sample
    /// (of this epoch).
    base_ms: Option<i64>,
    /// Where this epoch starts on the stream's timeline, in ms since `start`.
    offset_ms: i64,
    /// An epoch's first samples, held until every source track has sent
    /// one (or [`START_WAIT_MS`] of media has arrived), so that the base is
    /// the earliest decode time of any track: video with B-frames decodes
    /// ahead of its first picture, often before the first audio frame.
    early: Vec<Sample>,
    epoch: u32,
    /// Each epoch's start on the stream's timeline, in ms (its DASH
    /// `Period@start`); epoch 0 starts at 0.
    epoch_starts: Vec<(u32, u64)>,
    outputs: VecDeque<LiveOutput>,
    stats: LiveStats,
    ended: bool,
    /// The publisher left; the stream may resume.
    paused: bool,
    /// The discontinuity sequence number playlists start at (above 0 in a
    /// presentation continued from another node).
    first_discontinuity: u64,
    /// Continued from another node: the first number of its media (its
    /// init sections are named after it) and this node's first epoch.
    earlier: Option<(u64, u32)>,
}

impl LivePackager {
    /// `start` is the wall-clock time of media time zero: the arrival of the
    /// first sample.
    pub fn new(
        settings: LivePackaging,
        tracks: &[Track],
        start: UnixMillis,
    ) -> Result<Self, LiveError> {
        Self::start(settings, tracks, start, None)
    }

    /// Continues the presentation another node packaged until `handover`,
    /// with this publisher's tracks from `now` on. The first segment is
    /// numbered at least `handover.next_msn`.
    pub fn continuing(
        mut settings: LivePackaging,
        tracks: &[Track],
        now: UnixMillis,
        handover: Handover,
    ) -> Result<Self, LiveError> {
        settings.first_msn = settings.first_msn.max(handover.next_msn);
        Self::start(settings, tracks, now, Some(handover))
    }

    fn start(
        settings: LivePackaging,
        tracks: &[Track],
        now: UnixMillis,
        handover: Option<Handover>,
    ) -> Result<Self, LiveError> {
        let epoch = handover.as_ref().map_or(0, |h| h.epoch);
        let first_discontinuity = handover.as_ref().map_or(0, |h| h.discontinuity_sequence);
        let start = handover.as_ref().map_or(now, |h| h.start);
        // Where this publisher's media starts on the presentation's
        // timeline: at once in a new one, now in a continued one.
        let offset_ms = (now.0 - start.0).max(0);
        if tracks.is_empty() {
            return Err(LiveError::NoTracks);
        }
        let mut fragmenter = Fragmenter::new(FragmenterConfig {
            segment_duration: settings.segment,
            part_duration: Some(settings.part),
            first_segment_seq: settings.first_msn,
        });
        let mut renditions = Vec::with_capacity(tracks.len());
        let mut by_track = HashMap::new();
        let mut counts = [0usize; 2];
        for track in tracks {
            let init = init_segment(track).map_err(|source| LiveError::Cmaf {
                track: track.id,
                source,
            })?;
            let kind = track.kind();
            let slot = &mut counts[usize::from(kind == MediaKind::Audio)];
            *slot += 1;
            let name = match kind {
                MediaKind::Video => format!("v{slot}"),
                MediaKind::Audio => format!("a{slot}"),
            };
            // The segments the node handing over listed for this
            // rendition, on the same clock: listed again here first.
            let earlier = handover.as_ref().and_then(|h| {
                h.renditions.iter().find(|r| {
                    r.name == name && r.timescale == track.timescale && !r.segments.is_empty()
                })
            });
            let first_own_msn = earlier
                .and_then(EarlierRendition::next_msn)
                .unwrap_or(settings.first_msn);
            let (first_msn, discontinuity) = earlier
                .map_or((first_own_msn, first_discontinuity), |r| {
                    (r.segments[0].msn, r.discontinuity_sequence)
                });
            fragmenter
                .add_track_from(track, first_own_msn)
                .map_err(|source| LiveError::Cmaf {
                    track: track.id,
                    source,
                })?;
            let init_uri = init_name(settings.first_msn, epoch);
            let playlist = live_playlist(&settings, track, (first_msn, discontinuity), init_uri)?;
            by_track.insert(track.id, renditions.len());
            let mut r = Rendition {
                name,
                track: track.clone(),
                inits: vec![(epoch, init)],
                epoch_tracks: vec![(epoch, track.clone())],
                epoch,
                follows: None,
                first_own_msn,
                playlist,
                open_ticks: 0,
                segments: VecDeque::new(),
                window_start: first_msn,
                peak_bps: 0,
                total_bytes: 0,
                total_ticks: 0,
                frames: 0,
                open_frames: 0,
            };
            if let (Some(earlier), Some(h)) = (earlier, &handover) {
                r.inherit(earlier, h)?;
            }
            renditions.push(r);
        }
        let mut epoch_starts: Vec<(u32, u64)> = handover
            .as_ref()
            .map(|h| {
                h.epoch_starts
                    .iter()
                    .filter(|(e, _)| *e < epoch)
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        epoch_starts.push((epoch, u64::try_from(offset_ms).unwrap_or(0)));
        Ok(Self {
            settings,
            fragmenter,
            renditions,
            by_track,
            start,
            base_ms: None,
            offset_ms,
            early: Vec::new(),
            epoch,
            epoch_starts,
            outputs: VecDeque::new(),
            stats: LiveStats::default(),
            ended: false,
            paused: false,
            first_discontinuity,
            earlier: handover.map(|h| (h.first_msn, epoch)),
        })
    }

    /// The init section of epoch `epoch`: another node's for the epochs
    /// before it handed the presentation over.
    fn init_file(&self, epoch: u32) -> String {
        match self.earlier {
            Some((first_msn, own_epoch)) if epoch < own_epoch => init_name(first_msn, epoch),
            _ => init_name(self.settings.first_msn, epoch),
        }
    }

    /// Adds the next sample of a track. Samples no CMAF fragment can hold
    /// (before the first keyframe, before the stream start, out of decode
    /// order, unknown track) are dropped and counted; `Err` means the stream
    /// cannot go on.
    pub fn push(&mut self, sample: Sample) -> Result<(), LiveError> {
        if self.ended || self.paused {
            return Err(LiveError::Ended);
        }
        if self.base_ms.is_some() {
            return self.push_on_timeline(sample);
        }
        self.early.push(sample);
        if self.every_track_started() {
            self.start_timeline()?;
        }
        Ok(())
    }

    /// Whether the held first samples show where the epoch starts: every
    /// source track has sent one, or the wait is over.
    fn every_track_started(&self) -> bool {
        let ms = |s: &Sample| {
            let index = self.by_track.get(&s.track)?;
            Some(floor_ms(
                s.dts,
                i64::from(self.renditions[*index].track.timescale),
            ))
        };
        let times: Vec<i64> = self.early.iter().filter_map(ms).collect();
        let waited = times
            .iter()
            .max()
            .zip(times.iter().min())
            .is_some_and(|(hi, lo)| hi - lo >= START_WAIT_MS);
        waited
            || self
                .renditions
                .iter()
                .filter(|r| !r.is_rung())
                .all(|r| self.early.iter().any(|s| s.track == r.track.id))
    }

    /// Packages the held first samples, if any, on what they show.
    fn start_held(&mut self) -> Result<(), LiveError> {
        if self.early.is_empty() {
            return Ok(());
        }
        self.start_timeline()
    }

    /// Fixes the epoch's start from the held samples, then packages them
    /// in decode-time order.
    ///
    /// Presentation time 0 is the earliest first picture or sound of any
    /// track. Video with B-frames decodes its first keyframe one reorder
    /// delay before showing it, and a track's decode times cannot start
    /// below 0 (`tfdt` is unsigned; negative composition offsets make
    /// ffmpeg misplace the track), so each video track states that delay
    /// as its edit list (ISO/IEC 14496-12 §8.6.6) in a new init section of
    /// the epoch, and its decode times start that much earlier than the
    /// other tracks'. Video and audio then both start at 0, in sync.
    fn start_timeline(&mut self) -> Result<(), LiveError> {
        let mut early = std::mem::take(&mut self.early);
        let mut presentation_ms: Option<i64> = None;
        for index in 0..self.renditions.len() {
            let r = &self.renditions[index];
            if r.is_rung() {
                continue;
            }
            let id = r.track.id;
            let first = match r.track.kind() {
                // The first sample a fragment keeps: the first keyframe.
                MediaKind::Video => early.iter().find(|s| s.track == id && s.keyframe),
                MediaKind::Audio => early.iter().find(|s| s.track == id),
            };
            let Some(first) = first else { continue };
            let edit = match r.track.kind() {
                MediaKind::Video => u64::try_from(first.cts_offset).unwrap_or(0),
                MediaKind::Audio => 0,
            };
            let start = floor_ms(first.pts(), i64::from(r.track.timescale));
            presentation_ms = Some(presentation_ms.map_or(start, |p| p.min(start)));
            self.set_edit(index, edit)?;
        }
        let ms = |s: &Sample| {
            self.by_track
                .get(&s.track)
                .map(|&index| floor_ms(s.dts, i64::from(self.renditions[index].track.timescale)))
        };
        let Some(base_ms) = presentation_ms.or_else(|| early.iter().filter_map(ms).min()) else {
            // Only samples of unknown tracks: they are counted as dropped.
            for sample in early {
                self.push_on_timeline(sample)?;
            }
            return Ok(());
        };
        self.base_ms = Some(base_ms);
        early.sort_by_key(|s| ms(s).unwrap_or(i64::MAX));
        for sample in early {
            self.push_on_timeline(sample)?;
        }
        Ok(())
    }

    /// Packages a sample on the epoch's timeline (its base is known).
    fn push_on_timeline(&mut self, mut sample: Sample) -> Result<(), LiveError> {
        self.stats.samples += 1;
        let Some(&index) = self.by_track.get(&sample.track) else {
            self.stats.dropped += 1;
            return Ok(());
        };
        let timescale = i64::from(self.renditions[index].track.timescale);
        // One presentation base for every track keeps them in sync; a
        // video track's decode times start its edit earlier.
        let base_ms = *self.base_ms.get_or_insert(floor_ms(sample.dts, timescale));
        let edit = i64::try_from(self.renditions[index].track.presentation_offset).unwrap_or(0);
        sample.dts -= (i128::from(base_ms) * i128::from(timescale)).div_euclid(1000) as i64 - edit;
        if sample.dts >= 0 {
            sample.dts += self.offset_ms * timescale / 1000;
        }
        if sample.dts < 0 {
            self.stats.dropped += 1;
            return Ok(());
        }
        let size = sample.data.len() as u64;
        match self.fragmenter.push(sample) {
            Ok(()) => self.stats.bytes += size,
            Err(
                err @ (CmafError::NotKeyframe { .. }
                | CmafError::NonMonotonicDts { .. }
                | CmafError::ZeroDuration { .. }),
            ) => {
                self.stats.dropped += 1;
                if self.stats.dropped == 1 {
                    tracing::info!(%err, "live: a sample no CMAF fragment can hold was dropped (logged once per stream)");
                } else {
                    tracing::debug!(%err, "live: sample dropped");
                }
                return Ok(());
            }
            Err(source) => {
                return Err(LiveError::Cmaf {
                    track: self.renditions[index].track.id,
                    source,
                });
            }
        }
        // After the drain: a keyframe that closes a segment belongs to the next.
        self.drain()?;
        if self.renditions[index].track.kind() == MediaKind::Video {
            self.renditions[index].open_frames += 1;
        }
        Ok(())
    }

    /// Sets the edit list of source rendition `index` in the current epoch,
    /// writing the epoch's init section again if it changes. Nothing has
    /// read it yet: no segment of the epoch exists.
    fn set_edit(&mut self, index: usize, edit: u64) -> Result<(), LiveError> {
        let r = &mut self.renditions[index];
        if r.track.presentation_offset == edit {
            return Ok(());
        }
        r.track.presentation_offset = edit;
        let init = init_segment(&r.track).map_err(|source| LiveError::Cmaf {
            track: r.track.id,
            source,
        })?;
        let epoch = r.epoch;
        if let Some(slot) = r.inits.iter_mut().find(|(e, _)| *e == epoch) {
            slot.1 = init;
        }
        if let Some(slot) = r.epoch_tracks.iter_mut().find(|(e, _)| *e == epoch) {
            slot.1 = r.track.clone();
        }
        Ok(())
    }

    /// The publisher went away but may come back: the open segments are
    /// closed (as at an end) while the playlists stay open, so players wait
    /// for more instead of stopping. Then [`resume`](Self::resume) or
    /// [`end`](Self::end).
    pub fn pause(&mut self) -> Result<(), LiveError> {
        if self.ended || self.paused {
            return Ok(());
        }
        self.start_held()?;
        // Rungs lag their source by the encoder's delay: each closes its
        // own last segment when its input has run out (`finish_rung`).
        let sources: Vec<TrackId> = self
            .renditions
            .iter()
            .filter(|r| !r.is_rung())
            .map(|r| r.track.id)
            .collect();
        for track in sources {
            self.fragmenter
                .flush_track(track)
                .map_err(|source| LiveError::Cmaf { track, source })?;
        }
        self.drain()?;
        for r in &mut self.renditions {
            r.playlist.pause();
        }
        self.paused = true;
        Ok(())
    }

    /// A number above every segment this presentation listed or opened: a
    /// later presentation of the stream starts at or above it.
    pub fn next_msn(&self) -> u64 {
        self.renditions
            .iter()
            .map(|r| r.playlist.playlist().next_msn() + 1)
            .max()
            .unwrap_or(self.settings.first_msn)
    }

    /// Where another node continues this presentation (its publisher
    /// moved there): the next segment numbers, epoch and discontinuity
    /// sequence number, on the same timeline, with the segments each
    /// rendition made and lists now (those it inherited stay with the node
    /// it inherited them from and are not handed on).
    pub fn handover(&self) -> Handover {
        let discontinuity_sequence = self
            .renditions
            .iter()
            .map(|r| r.playlist.last_discontinuity_sequence())
            .max()
            .unwrap_or(self.first_discontinuity)
            + 1;
        let renditions = self
            .renditions
            .iter()
            .map(|r| {
                let playlist = r.playlist.playlist();
                let listed = playlist.segments.iter().zip(playlist.media_sequence..);
                // Each segment's discontinuity sequence number (§4.4.3.3).
                let mut cc = playlist.discontinuity_sequence;
                let mut first_cc = 0;
                let mut segments = Vec::new();
                for (segment, msn) in listed {
                    cc += u64::from(segment.discontinuity);
                    let Some(stored) = r.stored(msn).filter(|_| msn >= r.first_own_msn) else {
                        continue;
                    };
                    if segments.is_empty() {
                        // The first one handed on starts the sequence.
                        first_cc = cc;
                    }
                    segments.push(EarlierSegment {
                        msn,
                        epoch: stored.epoch,
                        start: stored.start,
                        duration: stored.duration,
                        discontinuity: segment.discontinuity && !segments.is_empty(),
                        program_date_time: segment.program_date_time,
                    });
                }
                EarlierRendition {
                    name: r.name.clone(),
                    timescale: r.track.timescale,
                    discontinuity_sequence: first_cc,
                    segments,
                }
            })
            .collect();
        Handover {
            start: self.start,
            first_msn: self.settings.first_msn,
            next_msn: self.unused_msn(),
            epoch: self.epoch + 1,
            discontinuity_sequence,
            epoch_starts: self.epoch_starts.clone(),
            renditions,
        }
    }

    /// The first segment number no rendition listed or opened.
    fn unused_msn(&self) -> u64 {
        self.renditions
            .iter()
            .map(Rendition::unused_msn)
            .max()
            .unwrap_or(self.settings.first_msn)
    }

    /// Whether media file `file` of `rendition` (an init section, segment
    /// or part name) is this presentation's, made here: named after its
    /// first segment, or numbered from the rendition's first segment made
    /// here below its first unused number. Its bytes never change, so this
    /// node serves it whoever owns the stream now.
    pub fn made(&self, rendition: &str, file: &str) -> bool {
        let Some(r) = self.renditions.iter().find(|r| r.name == rendition) else {
            return false;
        };
        match parse_media_name(file) {
            Some((msn, _)) => (r.first_own_msn..r.unused_msn()).contains(&msn),
            None => init_epoch(file, self.settings.first_msn).is_some(),
        }
    }

    /// Whether the stream waits for its publisher to come back.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Ends the stream: the open segments are closed with their last
    /// samples' stated durations and every playlist gets `EXT-X-ENDLIST`.
    pub fn end(&mut self) -> Result<(), LiveError> {
        if self.ended {
            return Ok(());
        }
        self.start_held()?;
        // After a pause only rungs still lagging have open segments.
        self.fragmenter
            .flush()
            .map_err(|source| LiveError::Cmaf { track: 0, source })?;
        self.drain()?;
        self.paused = false;
        for r in &mut self.renditions {
            // A segment whose parts were listed but never closed cannot
            // exist after a flush; `end` refuses otherwise.
            r.playlist.end()?;
        }
        self.ended = true;
        Ok(())
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The next part or segment listed since the last call.
    pub fn poll_output(&mut self) -> Option<LiveOutput> {
        self.outputs.pop_front()
    }

    pub fn stats(&self) -> LiveStats {
        self.stats
    }

    /// The tracks of the stream's renditions, ladder rungs included, in
    /// rendition order.
    pub fn tracks(&self) -> impl Iterator<Item = &Track> {
        self.renditions.iter().map(|r| &r.track)
    }

    /// Average bit rate of the published tracks so far (not the rungs made
    /// from them), bits per second.
    pub fn bit_rate(&self) -> u64 {
        self.renditions
            .iter()
            .filter(|r| !r.is_rung())
            .map(Rendition::average_bps)
            .sum()
    }

    /// Every published track has a complete segment: players may start.
    /// Ladder rungs are listed once they have one.
    pub fn is_playable(&self) -> bool {
        self.renditions
            .iter()
            .filter(|r| !r.is_rung())
            .all(Rendition::is_listed)
    }

    /// Every rendition: name, the rung's source (`None` for a published
    /// track), its track, average bit rate and whether it is listed yet.
    pub fn renditions(&self) -> impl Iterator<Item = RenditionInfo<'_>> {
        self.renditions.iter().map(|r| RenditionInfo {
            name: &r.name,
            source: r.follows.map(|i| self.renditions[i].name.as_str()),
            track: &r.track,
            bit_rate: r.average_bps(),
            listed: r.is_listed(),
        })
    }

    fn drain(&mut self) -> Result<(), LiveError> {
        let mut events = Vec::new();
        while let Some(event) = self.fragmenter.poll_event() {
            events.push(event);
        }
        let mut events = events.into_iter().peekable();
        while let Some(event) = events.next() {
            match event {
                Event::Part(part) => {
                    let Some(&index) = self.by_track.get(&part.track) else {
                        continue;
                    };
                    // The part after this one: the next segment's first when
                    // the fragmenter closes this segment right after it.
                    let closes = matches!(
                        events.peek(),
                        Some(Event::Segment(s)) if s.track == part.track
                    );
                    let next = if closes {
                        hint(part.segment_seq + 1, 0)
                    } else {
                        hint(part.segment_seq, part.part_index + 1)
                    };
                    let timescale = self.renditions[index].track.timescale;
                    let r = &mut self.renditions[index];
                    let epoch = r.epoch;
                    let opens = r.segments.back().is_none_or(|s| s.msn != part.segment_seq);
                    if opens && r.is_rung() && part.segment_seq != r.playlist.playlist().next_msn()
                    {
                        return Err(LiveError::RungGap {
                            name: r.name.clone(),
                            from: part.segment_seq,
                            expected: r.playlist.playlist().next_msn(),
                        });
                    }
                    let total = r.open_ticks + part.duration;
                    if let Some(total) = MediaDuration::new(total, timescale) {
                        let secs = u32::try_from(total.rounded_secs()).unwrap_or(u32::MAX);
                        r.playlist.raise_target_duration(secs);
                    }
                    r.playlist.push_part(
                        NewPart {
                            uri: part_uri(part.segment_seq, part.part_index),
                            duration: part.duration,
                            independent: part.independent,
                            byte_range: None,
                        },
                        next,
                    )?;
                    r.open_ticks = total;
                    if opens {
                        r.segments.push_back(StoredSegment {
                            msn: part.segment_seq,
                            parts: Vec::new(),
                            epoch,
                            complete: false,
                            start: part.start_dts,
                            duration: 0,
                        });
                    }
                    if let Some(seg) = r.segments.back_mut() {
                        // Viewers are served each part as one buffer: join its pieces
                        // once here, not per request.
                        seg.parts.push(part.data.to_bytes());
                        seg.duration += part.duration;
                    }
                    let end_ms = (part.start_dts + part.duration) * 1000 / u64::from(timescale);
                    self.outputs.push_back(LiveOutput::Part {
                        rendition: index,
                        msn: part.segment_seq,
                        part: part.part_index,
                        end_ms,
                    });
                }
                Event::Segment(segment) => {
                    let Some(&index) = self.by_track.get(&segment.track) else {
                        continue;
                    };
                    self.close_segment(index, &segment)?;
                    // The rungs made from this rendition cut their next
                    // segment where its next one starts.
                    let next_start = segment.start_dts + segment.duration;
                    let followers: Vec<TrackId> = self
                        .renditions
                        .iter()
                        .filter(|r| r.follows == Some(index))
                        .map(|r| r.track.id)
                        .collect();
                    for track in followers {
                        if self.fragmenter.has_track(track) {
                            self.fragmenter
                                .follow(track, segment.seq + 1, next_start)
                                .map_err(|source| LiveError::Cmaf { track, source })?;
                        }
                    }
                    self.outputs.push_back(LiveOutput::Segment {
                        rendition: index,
                        msn: segment.seq,
                    });
                }
            }
        }
        Ok(())
    }

    fn close_segment(&mut self, index: usize, segment: &CmafSegment) -> Result<(), LiveError> {
        let start = self.start;
        let retained = self.settings.retained_segments as u64;
        let r = &mut self.renditions[index];
        let timescale = r.track.timescale;
        if let Some(d) = MediaDuration::new(segment.duration, timescale) {
            r.playlist
                .raise_target_duration(u32::try_from(d.rounded_secs()).unwrap_or(u32::MAX));
        }
        let offset_ms = segment.start_dts * 1000 / u64::from(timescale);
        let closed = r.playlist.close_segment(NewSegment {
            uri: segment_uri(segment.seq),
            duration: segment.duration,
            byte_range: None,
            program_date_time: Some(
                start.saturating_add(std::time::Duration::from_millis(offset_ms)),
            ),
        })?;
        r.open_ticks = 0;
        if let Some(seg) = r.segments.back_mut()
            && seg.msn == segment.seq
        {
            seg.complete = true;
            seg.start = segment.start_dts;
            seg.duration = segment.duration;
        }
        let size = segment.data.len() as u64;
        r.total_bytes += size;
        r.total_ticks += segment.duration;
        r.frames += std::mem::take(&mut r.open_frames);
        r.peak_bps = r
            .peak_bps
            .max(crate::package::bit_rate(size, segment.duration, timescale));
        r.window_start = r.playlist.playlist().media_sequence;
        // Segments that left the window stay fetchable a while longer.
        let keep_from = closed.evicted.end.saturating_sub(retained);
        while r.segments.front().is_some_and(|s| s.msn < keep_from) {
            r.segments.pop_front();
        }
        Ok(())
    }

    /// Where epoch `epoch` begins on the stream's timeline, in ms: no
    /// sample of it is earlier (samples are rebased on it).
    fn epoch_start_ms(&self, epoch: u32) -> u64 {
        self.epoch_starts
            .iter()
            .rev()
            .find(|(e, _)| *e <= epoch)
            .map_or(0, |&(_, ms)| ms)
    }

    fn rendition(&self, name: &str) -> Option<&Rendition> {
        self.renditions.iter().find(|r| r.name == name)
    }

    /// A rendition's CMAF header.
    pub fn init(&self, rendition: &str) -> Option<Bytes> {
        self.rendition(rendition)
            .and_then(|r| r.inits.last().map(|(_, init)| init.clone()))
    }

    /// A rendition's CMAF header for epoch (publisher run) `epoch`.
    pub fn init_of(&self, rendition: &str, epoch: u32) -> Option<Bytes> {
        self.init_named(rendition, &init_name(self.settings.first_msn, epoch))
    }

    /// A rendition's CMAF header by file name (see [`init_name`]).
    pub fn init_named(&self, rendition: &str, file: &str) -> Option<Bytes> {
        let epoch = init_epoch(file, self.settings.first_msn)?;
        self.rendition(rendition).and_then(|r| {
            r.inits
                .iter()
                .find(|(e, _)| *e == epoch)
                .map(|(_, init)| init.clone())
        })
    }

    /// Continues an ended stream whose publisher came back with the same
    /// kinds of tracks: each playlist gets a discontinuity and a new init
    /// section (`init-N.mp4`), segment numbers go on, and the new media is
    /// placed on the stream's timeline at `now` (DASH: a new period), so
    /// viewers keep their playlist.
    pub fn resume(&mut self, tracks: &[Track], now: UnixMillis) -> Result<(), LiveError> {
        if !self.ended && !self.paused {
            return Err(LiveError::NotEnded);
        }
        let describe = || {
            tracks
                .iter()
                .map(|t| t.codec.codec_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        // Each playlist counts in its track's timescale: a publisher back
        // with another clock (RTMP's milliseconds, then RTSP's 90 kHz)
        // starts a new presentation.
        if !self.same_kinds(tracks) {
            return Err(LiveError::TracksDiffer(describe()));
        }
        let epoch = self.epoch + 1;
        // Rungs still behind close what they have; each continues in the
        // new epoch when its encoder starts again (`add_rung`).
        self.fragmenter
            .flush()
            .map_err(|source| LiveError::Cmaf { track: 0, source })?;
        self.drain()?;
        let mut fragmenter = Fragmenter::new(FragmenterConfig {
            segment_duration: self.settings.segment,
            part_duration: Some(self.settings.part),
            first_segment_seq: self.settings.first_msn,
        });
        let mut by_track = HashMap::new();
        let mut end_ms = 0i64;
        for (index, (track, r)) in tracks.iter().zip(&mut self.renditions).enumerate() {
            // The edit list goes on for a reconfiguration (same timeline);
            // a resumption sets its own at its first samples.
            let track = &Track {
                presentation_offset: r.track.presentation_offset,
                ..track.clone()
            };
            let next_msn = r.playlist.playlist().next_msn();
            fragmenter
                .add_track_from(track, next_msn)
                .map_err(|source| LiveError::Cmaf {
                    track: track.id,
                    source,
                })?;
            if let Some(last) = r.segments.back() {
                let end = (last.start + last.duration) * 1000 / u64::from(r.track.timescale);
                end_ms = end_ms.max(i64::try_from(end).unwrap_or(i64::MAX));
            }
            r.start_epoch(
                init_name(self.settings.first_msn, epoch),
                epoch,
                track,
                next_msn,
            )?;
            r.track = track.clone();
            r.open_ticks = 0;
            r.open_frames = 0;
            by_track.insert(track.id, index);
        }
        self.fragmenter = fragmenter;
        self.by_track = by_track;
        self.epoch = epoch;
        self.base_ms = None;
        // On the wall clock since the stream began (DASH availability), and
        // never before what was already published.
        self.offset_ms = (now.0 - self.start.0).max(end_ms + 1);
        self.epoch_starts
            .push((epoch, u64::try_from(self.offset_ms).unwrap_or(0)));
        self.ended = false;
        self.paused = false;
        Ok(())
    }

    /// Whether `tracks` are, one for one, of the kinds and timescales of
    /// the published renditions (each playlist counts in its track's
    /// timescale): what a resumption or a reconfiguration may keep going.
    fn same_kinds(&self, tracks: &[Track]) -> bool {
        let published = self.renditions.iter().filter(|r| !r.is_rung()).count();
        tracks.len() == published
            && tracks
                .iter()
                .zip(&self.renditions)
                .all(|(t, r)| t.kind() == r.track.kind() && t.timescale == r.track.timescale)
    }

    /// The publisher changed a codec configuration mid-stream (new
    /// parameter sets, another resolution): the open segments close, and
    /// the stream goes on in a new epoch with new init sections, a
    /// discontinuity in each playlist and a new DASH period, as after a
    /// reconnection; but on the publisher's own clock, with no gap.
    pub fn reconfigure(&mut self, tracks: &[Track], now: UnixMillis) -> Result<(), LiveError> {
        if self.ended || self.paused {
            return Err(LiveError::Ended);
        }
        if !self.same_kinds(tracks) {
            return Err(LiveError::TracksDiffer(
                tracks
                    .iter()
                    .map(|t| t.codec.codec_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ));
        }
        self.start_held()?;
        let (base_ms, offset_ms) = (self.base_ms, self.offset_ms);
        self.pause()?;
        // Where the new epoch may start: no track's next sample is earlier
        // than the end of what it published.
        let start_ms = self
            .renditions
            .iter()
            .filter(|r| !r.is_rung())
            .filter_map(|r| {
                let last = r.segments.back()?;
                Some((last.start + last.duration) * 1000 / u64::from(r.track.timescale))
            })
            .min()
            .unwrap_or(0);
        self.resume(tracks, now)?;
        self.base_ms = base_ms;
        self.offset_ms = offset_ms;
        if let Some(last) = self.epoch_starts.last_mut() {
            last.1 = start_ms;
        }
        Ok(())
    }
}

/// A rendition's live playlist, its first segment `first_msn`, with
/// discontinuity sequence number `discontinuity`.
fn live_playlist(
    settings: &LivePackaging,
    track: &Track,
    (first_msn, discontinuity): (u64, u64),
    init: String,
) -> Result<LivePlaylist, LiveError> {
    let target_secs = u32::try_from(settings.segment.num.div_ceil(settings.segment.den.max(1)))
        .unwrap_or(u32::MAX)
        .max(1);
    let window = match settings.window_segments {
        Some(segments) => Window::Sliding { segments },
        None => Window::Event,
    };
    let mut config = LivePlaylistConfig::new(window, target_secs, track.timescale)
        .with_parts(settings.part.ticks(track.timescale))
        .with_delta_updates();
    config.first_media_sequence = first_msn;
    config.first_discontinuity_sequence = discontinuity;
    Ok(LivePlaylist::new(
        config,
        Some(Map {
            uri: init,
            byte_range: None,
        }),
        Some(hint(first_msn, 0)),
    )?)
}

/// The init section of epoch `epoch` of the presentation whose first
/// segment is `first_msn`: `init-{first_msn}-{epoch}.mp4`. The name is the
/// presentation's own, as its segment numbers are: a cache never serves one
/// presentation's init section for another's.
fn init_name(first_msn: u64, epoch: u32) -> String {
    format!("init-{first_msn}-{epoch}.mp4")
}

/// The epoch of init section `file` of the presentation starting at
/// `first_msn`; `None` for any other name.
fn init_epoch(file: &str, first_msn: u64) -> Option<u32> {
    let rest = file.strip_prefix("init-")?.strip_suffix(".mp4")?;
    let (first, epoch) = rest.split_once('-')?;
    let digits = |n: &str| !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit());
    if !digits(first) || !digits(epoch) || first.parse::<u64>().ok()? != first_msn {
        return None;
    }
    epoch.parse().ok()
}

fn segment_uri(msn: u64) -> String {
    format!("{msn}.m4s")
}

fn part_uri(msn: u64, part: u32) -> String {
    format!("{msn}.{part}.m4s")
}

fn hint(msn: u64, part: u32) -> PreloadHint {
    PreloadHint {
        uri: part_uri(msn, part),
        byte_range_start: None,
    }
}

/// Parses a media file name of the layout: `{msn}.m4s` or `{msn}.{part}.m4s`.
pub fn parse_media_name(name: &str) -> Option<(u64, Option<u32>)> {
    let stem = name.strip_suffix(".m4s")?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    match stem.split_once('.') {
        None if digits(stem) => Some((stem.parse().ok()?, None)),
        Some((msn, part)) if digits(msn) && digits(part) && part.len() <= 9 => {
            Some((msn.parse().ok()?, Some(part.parse().ok()?)))
        }
        _ => None,
    }
}

mod follower;
mod handover;
mod manifests;

pub use handover::{EarlierRendition, EarlierSegment, Handover, HandoverError};
#[cfg(test)]
mod tests;
