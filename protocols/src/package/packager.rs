//! The [`Packager`] state machine: samples → [`Fragmenter`] → segment files
//! and per-segment metadata → manifests at `finish`. See the module docs of
//! [`package`](super) for the call order.

use std::collections::{HashMap, VecDeque};

use crate::cmaf::{Event, Fragmenter, FragmenterConfig, PartInfo, Segment, init_segment};
use crate::hls::{ByteRange, UnixMillis};
use crate::media::{MediaKind, Sample, Track, TrackId};
use crate::rope::Rope;

use super::bandwidth::DurationStats;
use super::checkpoint::{Checkpoint, RenditionCheckpoint};
use super::manifest;
use super::{INIT, Output, PackageError, PackagerConfig, RenditionSummary, Summary};

/// Fragment numbers a chunk packaged apart leaves to each segment before
/// it ([`Packager::starting_at`]): more than a segment ever has (a
/// fragment per part or keyframe), so numbers keep increasing.
pub const FRAGMENT_STRIDE: u64 = 1000;

/// A sample pushed whose segment is not finished yet.
#[derive(Clone, Copy, Debug)]
struct OpenSample {
    dts: i64,
    pts: i64,
    size: u32,
}

/// What the manifests need of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SegmentMeta {
    pub number: u64,
    pub start_dts: u64,
    pub duration: u64,
    pub size: u64,
    /// Earliest presentation time of any sample in the segment.
    pub earliest_pts: i64,
}

/// One keyframe's place for the I-frame playlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct KeyframeMeta {
    pub number: u64,
    /// The keyframe's `moof` through the end of its sample data.
    pub range: ByteRange,
    pub pts: i64,
}

/// One track being packaged as one rendition.
#[derive(Clone, Debug)]
pub(super) struct Rendition {
    pub track: Track,
    pub name: String,
    pub segments: Vec<SegmentMeta>,
    pub keyframes: Vec<KeyframeMeta>,
    /// Samples whose segment is still open, in decode order; bounded by one
    /// segment plus the sample that closes it.
    open: VecDeque<OpenSample>,
    started: bool,
    pub dropped_leading: u64,
    previous_duration: Option<u32>,
    /// Durations of every sample but the last (video frame rate).
    pub durations: DurationStats,
    /// Latest `pts + duration` of any sample.
    pub end_pts: i64,
    /// Earliest `pts` of any sample.
    pub start_pts: i64,
    /// Fragments (`moof`s) in its segments so far.
    pub fragments: u32,
}

impl Rendition {
    pub fn kind(&self) -> MediaKind {
        self.track.kind()
    }
}

/// What the manifests need of one packaged rendition: its track, segments
/// and keyframes, never its bytes. Renditions from several packagers (the
/// rungs of a transcode ladder, each packaged by its own process) combine
/// into one multivariant playlist and MPD with [`combined_manifests`](super::combined_manifests).
#[derive(Clone, Debug)]
pub struct FinishedRendition(pub(super) Rendition);

impl FinishedRendition {
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn kind(&self) -> MediaKind {
        self.0.kind()
    }
}

/// Packages one presentation; see the [module docs](super).
pub struct Packager {
    config: PackagerConfig,
    fragmenter: Fragmenter,
    renditions: Vec<Rendition>,
    by_track: HashMap<TrackId, usize>,
    outputs: VecDeque<Output>,
    finished: bool,
}

impl Packager {
    /// Starts a presentation of `tracks`; their headers are the first outputs.
    pub fn new(config: PackagerConfig, tracks: &[Track]) -> Result<Self, PackageError> {
        Self::start(config, tracks, None, 1)
    }

    /// Packages one chunk of a presentation whose earlier chunks another
    /// packager makes (segment-parallel encoding): its segments are
    /// numbered from `first_segment`, and its fragments (`mfhd`) from
    /// [`FRAGMENT_STRIDE`] per earlier segment, so that they increase
    /// across chunks whatever each chunk made; the caller shifts decode
    /// times to the chunk's place. Its [`checkpoint`](Self::checkpoint)
    /// joins the others' with [`Checkpoint::concat`].
    pub fn starting_at(
        config: PackagerConfig,
        tracks: &[Track],
        first_segment: u64,
    ) -> Result<Self, PackageError> {
        Self::start(config, tracks, None, first_segment.max(1))
    }

    /// Goes on with a presentation after the segments `checkpoint` lists
    /// (stored by an earlier run that was interrupted): segments are
    /// numbered after them, the manifests at `finish` list them all, and
    /// the headers are not output again (the caller checks that the ones
    /// `tracks` would make are the stored ones, see [`Packager::headers`]).
    /// The caller shifts the samples' decode times to go on from
    /// [`Checkpoint::end_dts`].
    pub fn resume(
        config: PackagerConfig,
        tracks: &[Track],
        checkpoint: &Checkpoint,
    ) -> Result<Self, PackageError> {
        Self::start(config, tracks, Some(checkpoint), 1)
    }

    /// The header (`init.mp4`) of each rendition `tracks` make under
    /// `config`: its path and bytes.
    pub fn headers(config: &PackagerConfig, tracks: &[Track]) -> Result<Vec<Output>, PackageError> {
        Ok(Self::new(config.clone(), tracks)?
            .outputs
            .into_iter()
            .collect())
    }

    /// What this packager made so far, to resume from; see [`Checkpoint`].
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            renditions: self
                .renditions
                .iter()
                .map(|r| RenditionCheckpoint {
                    name: r.name.clone(),
                    timescale: r.track.timescale,
                    durations: r.durations,
                    start_pts: r.start_pts,
                    end_pts: r.end_pts,
                    dropped_leading: r.dropped_leading,
                    fragments: r.fragments,
                    segments: r.segments.clone(),
                    keyframes: r.keyframes.clone(),
                })
                .collect(),
            complete: false,
        }
    }

    fn start(
        config: PackagerConfig,
        tracks: &[Track],
        resumed: Option<&Checkpoint>,
        first_segment: u64,
    ) -> Result<Self, PackageError> {
        config.naming.validate()?;
        if tracks.is_empty() {
            return Err(PackageError::NoTracks);
        }
        let mut fragmenter = Fragmenter::new(FragmenterConfig {
            segment_duration: config.segment_duration,
            part_duration: config.part_duration,
            first_segment_seq: 1,
        })
        .split_at_keyframes();
        let mut renditions = Vec::with_capacity(tracks.len());
        let mut by_track = HashMap::with_capacity(tracks.len());
        let mut outputs = VecDeque::new();
        let (mut videos, mut audios) = (0, 0);
        for track in tracks {
            let index = match track.kind() {
                MediaKind::Video => {
                    videos += 1;
                    videos
                }
                MediaKind::Audio => {
                    audios += 1;
                    audios
                }
            };
            let name = config.naming.rendition(track.kind(), index);
            let mut rendition = Rendition {
                track: track.clone(),
                name,
                segments: Vec::new(),
                keyframes: Vec::new(),
                open: VecDeque::new(),
                started: false,
                dropped_leading: 0,
                previous_duration: None,
                durations: DurationStats::default(),
                end_pts: i64::MIN,
                start_pts: i64::MAX,
                fragments: 0,
            };
            match resumed {
                None => {
                    let first_fragment = (first_segment - 1)
                        .checked_mul(FRAGMENT_STRIDE)
                        .and_then(|n| u32::try_from(n + 1).ok())
                        .unwrap_or(u32::MAX);
                    fragmenter.add_track_resumed(track, first_segment, first_fragment)?;
                    rendition.fragments = first_fragment - 1;
                    outputs.push_back(Output {
                        path: format!("{}/{INIT}", rendition.name),
                        data: init_segment(track)?.into(),
                    });
                }
                Some(checkpoint) => {
                    let done = checkpoint
                        .renditions
                        .iter()
                        .find(|r| r.name == rendition.name && r.timescale == track.timescale)
                        .ok_or(PackageError::NotResumable {
                            rendition: rendition.name.clone(),
                        })?;
                    let next = done.segments.last().map_or(1, |s| s.number + 1);
                    fragmenter.add_track_resumed(
                        track,
                        next,
                        done.fragments.wrapping_add(1).max(1),
                    )?;
                    rendition.segments = done.segments.clone();
                    rendition.keyframes = done.keyframes.clone();
                    rendition.durations = done.durations;
                    rendition.start_pts = done.start_pts;
                    rendition.end_pts = done.end_pts;
                    rendition.dropped_leading = done.dropped_leading;
                    rendition.fragments = done.fragments;
                    rendition.started = true;
                }
            }
            by_track.insert(track.id, renditions.len());
            renditions.push(rendition);
        }
        Ok(Self {
            config,
            fragmenter,
            renditions,
            by_track,
            outputs,
            finished: false,
        })
    }

    /// Adds the next sample of its track.
    ///
    /// Two tolerated input defects, by policy rather than by accident:
    /// samples before a track's first sync sample are dropped (ISO/IEC
    /// 23000-19 §7.3.2.2: a CMAF fragment starts with a SAP; e.g. a cut made
    /// without re-encoding), counted in [`RenditionSummary::dropped_leading`]
    /// and logged once per track; and a zero stated duration (some muxers
    /// write one for the last sample) takes the previous sample's duration.
    pub fn push(&mut self, mut sample: Sample) -> Result<(), PackageError> {
        if self.finished {
            return Err(PackageError::Finished);
        }
        let track = sample.track;
        let rendition = self
            .by_track
            .get(&track)
            .and_then(|&i| self.renditions.get_mut(i))
            .ok_or(crate::cmaf::CmafError::UnknownTrack { track })?;
        let keyframe = sample.keyframe || rendition.kind() == MediaKind::Audio;
        if !rendition.started && !keyframe {
            rendition.dropped_leading += 1;
            if rendition.dropped_leading == 1 {
                tracing::warn!(
                    track,
                    dts = sample.dts,
                    "dropping samples before the track's first sync sample"
                );
            }
            return Ok(());
        }
        if sample.duration == 0 {
            sample.duration = rendition.previous_duration.unwrap_or(1);
        }
        let open = OpenSample {
            dts: sample.dts,
            pts: sample.pts(),
            size: u32::try_from(sample.data.len()).unwrap_or(u32::MAX),
        };
        let duration = sample.duration;
        self.fragmenter.push(sample)?;

        rendition.started = true;
        if let Some(previous) = rendition.previous_duration.replace(duration) {
            rendition.durations.add(previous);
        }
        rendition.start_pts = rendition.start_pts.min(open.pts);
        rendition.end_pts = rendition
            .end_pts
            .max(open.pts.saturating_add(i64::from(duration)));
        rendition.open.push_back(open);
        self.drain()
    }

    /// Ends the presentation: cuts the last segments and renders every
    /// manifest. `publish_time` is the caller's clock, for `MPD@publishTime`.
    pub fn finish(&mut self, publish_time: UnixMillis) -> Result<Summary, PackageError> {
        if self.finished {
            return Err(PackageError::Finished);
        }
        self.finished = true;
        self.fragmenter.flush()?;
        self.drain()?;
        if let Some(empty) = self.renditions.iter().find(|r| r.segments.is_empty()) {
            return Err(PackageError::EmptyTrack {
                track: empty.track.id,
            });
        }
        let renditions: Vec<&Rendition> = self.renditions.iter().collect();
        let built = manifest::build(&self.config, &renditions, publish_time)?;
        self.outputs.extend(built.outputs);
        Ok(Summary {
            renditions: self
                .renditions
                .iter()
                .zip(built.durations)
                .map(|(r, duration)| RenditionSummary {
                    name: r.name.clone(),
                    track: r.track.id,
                    kind: r.kind(),
                    codecs: r.track.codec.codec_string(),
                    segments: r.segments.len(),
                    keyframes: r.keyframes.len(),
                    bytes: r.segments.iter().map(|s| s.size).sum(),
                    duration,
                    dropped_leading: r.dropped_leading,
                })
                .collect(),
            duration: built.presentation_duration,
        })
    }

    /// While packaging, each rendition's media playlist so far, as an
    /// `EVENT` playlist (RFC 8216bis §4.4.3.5: segments are only appended;
    /// no `EXT-X-ENDLIST` yet), so that viewers can start before the end.
    /// [`finish`](Self::finish) later writes the VOD playlists over them.
    /// Renditions without a complete segment are left out.
    pub fn progress_playlists(&self) -> Result<Vec<Output>, PackageError> {
        self.renditions
            .iter()
            .filter(|r| !r.segments.is_empty())
            .map(|r| {
                let playlist = manifest::event_playlist(&self.config, r)?;
                Ok(Output {
                    path: format!("{}/{}", r.name, super::MEDIA_PLAYLIST),
                    data: Rope::from(crate::hls::render_media(
                        &playlist,
                        &crate::hls::RenderOptions::default(),
                    )),
                })
            })
            .collect()
    }

    /// The metadata of the renditions with at least one complete segment,
    /// for an interim multivariant playlist while packaging goes on.
    pub fn progress_renditions(&self) -> Vec<FinishedRendition> {
        self.renditions
            .iter()
            .filter(|r| !r.segments.is_empty())
            .cloned()
            .map(FinishedRendition)
            .collect()
    }

    /// How many renditions (tracks) this packager makes.
    pub fn tracks_len(&self) -> usize {
        self.renditions.len()
    }

    /// Complete segments so far, over all renditions.
    pub fn segments_done(&self) -> usize {
        self.renditions.iter().map(|r| r.segments.len()).sum()
    }

    /// The finished renditions' metadata (after [`finish`](Self::finish)),
    /// for manifests that combine several packagers' renditions.
    pub fn into_renditions(self) -> Vec<FinishedRendition> {
        self.renditions.into_iter().map(FinishedRendition).collect()
    }

    /// The next file to write: headers first, then each segment once cut,
    /// then (after [`finish`](Self::finish)) the manifests. Call after `new`,
    /// every `push` and `finish` until it returns `None`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn drain(&mut self) -> Result<(), PackageError> {
        while let Some(event) = self.fragmenter.poll_event() {
            if let Event::Segment(segment) = event {
                self.segment_done(segment)?;
            }
        }
        Ok(())
    }

    fn segment_done(&mut self, segment: Segment) -> Result<(), PackageError> {
        let Some(r) = self
            .by_track
            .get(&segment.track)
            .and_then(|&i| self.renditions.get_mut(i))
        else {
            return Ok(());
        };
        let end = segment.start_dts.saturating_add(segment.duration);
        let mut keyframes = segment.keyframe_dts.iter().copied().peekable();
        let mut earliest_pts = i64::MAX;
        while let Some(sample) = r.open.front().copied() {
            let Ok(dts) = u64::try_from(sample.dts) else {
                r.open.pop_front();
                continue;
            };
            if dts >= end {
                break;
            }
            r.open.pop_front();
            earliest_pts = earliest_pts.min(sample.pts);
            while keyframes.next_if(|&k| k < dts).is_some() {}
            if r.kind() == MediaKind::Video && keyframes.next_if_eq(&dts).is_some() {
                let range = keyframe_range(&segment.parts, dts, sample.size).ok_or(
                    PackageError::KeyframeNotAddressable {
                        track: segment.track,
                        number: segment.seq,
                        dts,
                    },
                )?;
                r.keyframes.push(KeyframeMeta {
                    number: segment.seq,
                    range,
                    pts: sample.pts,
                });
            }
        }
        r.fragments = r
            .fragments
            .wrapping_add(u32::try_from(segment.parts.len()).unwrap_or(u32::MAX));
        r.segments.push(SegmentMeta {
            number: segment.seq,
            start_dts: segment.start_dts,
            duration: segment.duration,
            size: segment.data.len() as u64,
            earliest_pts: if earliest_pts == i64::MAX {
                i64::try_from(segment.start_dts).unwrap_or(i64::MAX)
            } else {
                earliest_pts
            },
        });
        self.outputs.push_back(Output {
            path: format!("{}/{}", r.name, self.config.naming.segment(segment.seq)),
            data: segment.data,
        });
        Ok(())
    }
}

/// The bytes an I-frame playlist entry needs for the keyframe decoded at
/// `dts`: from the `moof` of the part it starts through the end of its own
/// sample data, which is the first in that part's `mdat`.
fn keyframe_range(parts: &[PartInfo], dts: u64, sample_size: u32) -> Option<ByteRange> {
    let part = parts.iter().find(|p| p.start_dts == dts)?;
    let end = part.data_offset.checked_add(sample_size as usize)?;
    (end <= part.range.end).then_some(ByteRange {
        length: (end - part.moof_offset) as u64,
        offset: part.moof_offset as u64,
    })
}
