//! One live stream: its packager, its publisher slot and its viewers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use streamforge_protocols::cmaf::TargetDuration;
use streamforge_protocols::codec::CodecConfig;
use streamforge_protocols::hls::UnixMillis;
use streamforge_protocols::live::{Handover, LiveError, LiveOutput, LivePackager, LivePackaging};
use streamforge_protocols::media::{Sample, Track};
use streamforge_protocols::rtmp::PublishRejection;
use tokio::sync::watch;

use super::ladder::{Ladder, LadderArgs, LiveLadderRung, rung_names};
use super::lifecycle::LiveStreamMsg;
use super::owners::{OwnerRecord, Takeover};
use super::{IngestProtocol, PublishError};
use crate::supervision::Supervision;
use ractor::ActorRef;

struct PublisherSlot {
    generation: u64,
    protocol: IngestProtocol,
    remote: String,
    since: Instant,
    since_wall: UnixMillis,
}

struct State {
    packager: Option<LivePackager>,
    tracks: Vec<Track>,
    publisher: Option<PublisherSlot>,
    generation: u64,
    last_protocol: Option<IngestProtocol>,
    /// Why the last publish ended, for the API.
    last_error: Option<String>,
    /// Arrival of each track's newest sample: a part is complete when the
    /// sample after it arrives, so its latency is measured from here.
    arrivals: HashMap<u32, Instant>,
    /// When the last publish ended.
    ended_at: Option<Instant>,
    /// The current publish continues the ended presentation.
    resuming: bool,
    /// Counts the packagers made: a ladder works for one presentation.
    presentation: u64,
    /// Above every segment number an earlier presentation used.
    msn_floor: u64,
    /// The presentation the next packager continues, taken over from
    /// another node.
    takeover: Option<Takeover>,
    /// The node the current presentation was taken over from, which has
    /// its media until then.
    earlier_owner: Option<(String, Handover)>,
}

impl State {
    /// Drops the presentation; the next one numbers its segments above it.
    fn forget_presentation(&mut self) {
        if let Some(packager) = self.packager.take() {
            self.msn_floor = self.msn_floor.max(packager.next_msn());
        }
        self.earlier_owner = None;
    }

    /// The first segment number of a new presentation: the time since
    /// [`MSN_EPOCH_MS`] counted in the shortest a segment can last (the
    /// segment target, at most a second), so a presentation started after a
    /// restart of the server numbers above the one before; and above
    /// whatever this process numbered already. Segment and init section
    /// URLs are then never reused, and a shared cache keeps them as
    /// immutable.
    fn first_msn(&self, segment: TargetDuration) -> u64 {
        first_msn(crate::clock::now().0, segment, self.msn_floor)
    }
}

impl State {
    /// The packager of a new presentation, or of the one taken over. A
    /// presentation its old owner recorded when its publisher left goes on
    /// at the next segment number; one whose owner died may have gone on a
    /// little after its last record: it goes on at the wall clock's number
    /// (see [`first_msn`]), which is above.
    fn new_packager(&mut self, settings: &LivePackaging) -> Result<LivePackager, LiveError> {
        let now = crate::clock::now();
        let Some(takeover) = self.takeover.take() else {
            let first_msn = self.first_msn(settings.segment);
            return LivePackager::new(
                LivePackaging {
                    first_msn,
                    ..settings.clone()
                },
                &self.tracks,
                now,
            );
        };
        let Takeover {
            from,
            mut handover,
            exact,
        } = takeover;
        let first_msn = if exact {
            self.msn_floor
        } else {
            // Segments it made after its last record are gone with it,
            // and those before could be listed above numbers it went on
            // to use: none is listed again.
            handover.renditions.clear();
            self.first_msn(settings.segment)
        };
        let packager = LivePackager::continuing(
            LivePackaging {
                first_msn,
                ..settings.clone()
            },
            &self.tracks,
            now,
            handover.clone(),
        )?;
        self.earlier_owner = Some((from, handover));
        Ok(packager)
    }
}

/// [`State::first_msn`] at `now_ms` after a presentation that reached
/// `floor`.
fn first_msn(now_ms: i64, segment: TargetDuration, floor: u64) -> u64 {
    let segment_ms = segment.ticks(1000).clamp(1, 1000);
    let since = u64::try_from(now_ms - MSN_EPOCH_MS).unwrap_or(0);
    (since / segment_ms).max(floor).max(1)
}

/// 2025-01-01T00:00:00Z: presentations number their segments from the
/// time since then (a 32-bit `startNumber` in DASH lasts past 2150 at
/// one segment a second).
const MSN_EPOCH_MS: i64 = 1_735_689_600_000;

/// What the API shows of how a presentation goes, kept apart from the
/// packager's lock: reading it never holds up packaging. Taken after
/// [`State`]'s lock when both are needed, never before.
#[derive(Default)]
struct Telemetry {
    latency: PartLatency,
    first_playable: Option<Duration>,
    /// Why the live ladder lost a rung.
    ladder_error: Option<String>,
    /// Samples the recording of the current (or last) publish lost to a
    /// store that fell behind.
    recording_lost: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl Telemetry {
    /// A new presentation starts measuring afresh.
    fn new_presentation(&mut self) {
        self.latency = PartLatency::default();
        self.first_playable = None;
    }
}

/// How long after its last sample arrived each part became fetchable.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct PartLatency {
    pub parts: u64,
    pub avg_ms: f64,
    pub max_ms: f64,
    pub last_ms: f64,
}

impl PartLatency {
    fn record(&mut self, ms: f64) {
        self.avg_ms = (self.avg_ms * self.parts as f64 + ms) / (self.parts + 1) as f64;
        self.parts += 1;
        self.max_ms = self.max_ms.max(ms);
        self.last_ms = ms;
    }
}

/// A live stream; see the module documentation of [`super`].
pub struct LiveStream {
    name: String,
    settings: LivePackaging,
    state: Mutex<State>,
    telemetry: Mutex<Telemetry>,
    version: watch::Sender<u64>,
    /// Rungs re-encoded from the published video, and where their
    /// supervisors and ffmpeg children go.
    ladder: Vec<LiveLadderRung>,
    ladder_home: Option<Supervision>,
}

/// What `GET /api/live` shows of a stream.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StreamSummary {
    pub name: String,
    pub live: bool,
    pub protocol: Option<IngestProtocol>,
    pub remote: Option<String>,
    /// RFC 6381 codec strings of the tracks.
    pub codecs: Vec<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Average bit rate of the packaged media, bits per second.
    pub bitrate: u64,
    /// Viewer sessions now (see [`super::viewers`]).
    pub viewers: usize,
    pub uptime_secs: Option<u64>,
    pub started_at_ms: Option<i64>,
    pub samples: u64,
    pub dropped_samples: u64,
    pub playable: bool,
    pub last_error: Option<String>,
    /// The renditions packaged: the published tracks, then the ladder's
    /// rungs.
    pub renditions: Vec<LiveRenditionSummary>,
    /// Why the ladder gave a rung up.
    pub ladder_error: Option<String>,
    /// Delay from a part's last sample arriving to the part being listed.
    pub part_latency: PartLatency,
    /// Delay from the publish starting to the first complete segment.
    pub first_playable_ms: Option<u64>,
    /// With recording on: the samples of this publish left out of its
    /// recording because the store fell behind (the live stream has them).
    pub recording_lost_samples: Option<u64>,
    pub hls: String,
    pub dash: String,
}

impl StreamSummary {
    pub(super) fn idle(name: String) -> Self {
        Self {
            hls: format!("/live/{name}/master.m3u8"),
            dash: format!("/live/{name}/manifest.mpd"),
            name,
            live: false,
            protocol: None,
            remote: None,
            codecs: Vec::new(),
            width: None,
            height: None,
            bitrate: 0,
            viewers: 0,
            uptime_secs: None,
            started_at_ms: None,
            samples: 0,
            dropped_samples: 0,
            playable: false,
            last_error: None,
            renditions: Vec::new(),
            ladder_error: None,
            part_latency: PartLatency::default(),
            first_playable_ms: None,
            recording_lost_samples: None,
        }
    }
}

/// One rendition of a live stream.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LiveRenditionSummary {
    pub name: String,
    /// The rendition a ladder rung is made from.
    pub source: Option<String>,
    pub codec: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub bitrate: u64,
    /// In the multivariant playlist and MPD (has a complete segment).
    pub listed: bool,
}

impl LiveStream {
    pub(super) fn new(
        name: String,
        settings: LivePackaging,
        ladder: Vec<LiveLadderRung>,
        ladder_home: Option<Supervision>,
    ) -> Self {
        Self {
            name,
            settings,
            ladder,
            ladder_home,
            state: Mutex::new(State {
                packager: None,
                tracks: Vec::new(),
                publisher: None,
                generation: 0,
                last_protocol: None,
                last_error: None,
                arrivals: HashMap::new(),
                ended_at: None,
                resuming: false,
                presentation: 0,
                msn_floor: 0,
                takeover: None,
                earlier_owner: None,
            }),
            telemetry: Mutex::default(),
            version: watch::channel(0).0,
        }
    }

    /// The segment target duration the stream is cut at.
    pub fn segment_target(&self) -> Duration {
        Duration::from_millis(self.settings.segment.ticks(1000))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn telemetry(&self) -> std::sync::MutexGuard<'_, Telemetry> {
        self.telemetry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Reads the packager; `None` before the first sample of the stream.
    pub fn with_packager<T>(&self, f: impl FnOnce(&LivePackager) -> T) -> Option<T> {
        self.lock().packager.as_ref().map(f)
    }

    /// Reads the packager of presentation `presentation`; `None` once
    /// another presentation replaced it.
    pub fn with_presentation<T>(
        &self,
        presentation: u64,
        f: impl FnOnce(&LivePackager) -> T,
    ) -> Option<T> {
        let state = self.lock();
        if state.presentation != presentation {
            return None;
        }
        state.packager.as_ref().map(f)
    }

    /// Changes the packager of presentation `presentation` (a ladder rung
    /// adding its media) and wakes the viewers when that listed something.
    pub fn with_packager_mut<T>(
        &self,
        presentation: u64,
        f: impl FnOnce(&mut LivePackager) -> T,
    ) -> Option<T> {
        let mut state = self.lock();
        if state.presentation != presentation {
            return None;
        }
        let packager = state.packager.as_mut()?;
        let out = f(packager);
        // Wake the viewers only when a rung part or segment was listed.
        let mut produced = false;
        while packager.poll_output().is_some() {
            produced = true;
        }
        drop(state);
        if produced {
            self.bump();
        }
        Some(out)
    }

    /// Whether `presentation` is still the stream's current one.
    pub fn presentation_is(&self, presentation: u64) -> bool {
        let state = self.lock();
        state.presentation == presentation && state.packager.is_some()
    }

    pub(super) fn set_ladder_error(&self, error: String) {
        self.telemetry().ladder_error = Some(error);
    }

    /// A receiver that changes after every new part, segment or end.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// The address publishing now, if any.
    pub fn publisher_remote(&self) -> Option<String> {
        self.lock().publisher.as_ref().map(|p| p.remote.clone())
    }

    /// Whether someone is publishing now.
    pub fn is_live(&self) -> bool {
        self.lock().publisher.is_some()
    }

    /// What the owner records of the stream (`live_owners`): where
    /// another node would continue its presentation, and whether it waits
    /// for its publisher.
    pub fn owner_record(&self) -> OwnerRecord {
        let state = self.lock();
        let packager = state.packager.as_ref();
        OwnerRecord {
            handover: packager
                .filter(|p| !p.is_ended())
                .map(LivePackager::handover),
            awaiting: state.publisher.is_none() && packager.is_some_and(LivePackager::is_paused),
        }
    }

    /// Whether media file `file` is of this node's presentation (see
    /// [`LivePackager::made`]): served here whoever owns the stream now.
    pub fn made(&self, rendition: &str, file: &str) -> bool {
        let state = self.lock();
        state
            .packager
            .as_ref()
            .is_some_and(|p| p.made(rendition, file))
    }

    /// The node that has media file `file` of `rendition`, when this
    /// node's presentation was taken over from it and `file` is of its
    /// part.
    pub fn earlier_owner(&self, rendition: &str, file: &str) -> Option<String> {
        let state = self.lock();
        let (node, handover) = state.earlier_owner.as_ref()?;
        handover.made(rendition, file).then(|| node.clone())
    }

    /// Live, or waiting for its publisher to come back.
    pub fn is_on_air(&self) -> bool {
        let state = self.lock();
        state.publisher.is_some() || state.packager.as_ref().is_some_and(LivePackager::is_paused)
    }

    pub fn summary(&self) -> StreamSummary {
        let mut s = StreamSummary::idle(self.name.clone());
        {
            let telemetry = self.telemetry();
            s.part_latency = telemetry.latency;
            s.first_playable_ms = telemetry
                .first_playable
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            s.ladder_error.clone_from(&telemetry.ladder_error);
            s.recording_lost_samples = telemetry
                .recording_lost
                .as_ref()
                .map(|lost| lost.load(std::sync::atomic::Ordering::Relaxed));
        }
        let state = self.lock();
        s.live = state.publisher.is_some();
        s.last_error.clone_from(&state.last_error);
        s.protocol = state
            .publisher
            .as_ref()
            .map(|p| p.protocol)
            .or(state.last_protocol);
        if let Some(p) = &state.publisher {
            s.remote = Some(p.remote.clone());
            s.uptime_secs = Some(p.since.elapsed().as_secs());
            s.started_at_ms = Some(p.since_wall.0);
        }
        s.codecs = state
            .tracks
            .iter()
            .map(|t| t.codec.codec_string())
            .collect();
        if let Some(video) = state.tracks.iter().find(|t| t.width().is_some()) {
            s.width = video.width();
            s.height = video.height();
        }
        if let Some(p) = &state.packager {
            s.renditions = p
                .renditions()
                .map(|r| LiveRenditionSummary {
                    name: r.name.to_owned(),
                    source: r.source.map(str::to_owned),
                    codec: r.track.codec.codec_string(),
                    width: r.track.width(),
                    height: r.track.height(),
                    bitrate: r.bit_rate,
                    listed: r.listed,
                })
                .collect();
            s.bitrate = p.bit_rate();
            s.samples = p.stats().samples;
            s.dropped_samples = p.stats().dropped;
            s.playable = p.is_playable();
        }
        s
    }

    /// Starts a publish (the stream's actor decides it).
    pub(super) fn begin(
        self: &std::sync::Arc<Self>,
        actor: &ActorRef<LiveStreamMsg>,
        protocol: IngestProtocol,
        remote: String,
        replace: bool,
        takeover: Option<Takeover>,
    ) -> Result<Publisher, PublishError> {
        let mut state = self.lock();
        if let Some(current) = &state.publisher {
            if !replace {
                return Err(PublishError::Rejected(
                    format!(
                        "stream {:?} is already being published from {}",
                        self.name, current.remote
                    ),
                    PublishRejection::Denied,
                ));
            }
            tracing::info!(stream = %self.name, old = %current.remote, new = %remote, "publisher replaced");
            end_packager(&mut state, &self.name);
        }
        let replaced = state.publisher.is_some();
        state.generation += 1;
        let generation = state.generation;
        state.publisher = Some(PublisherSlot {
            generation,
            protocol,
            remote: remote.clone(),
            since: Instant::now(),
            since_wall: crate::clock::now(),
        });
        state.last_protocol = Some(protocol);
        state.last_error = None;
        // Back within the grace period: the presentation goes on (a
        // discontinuity) once the new tracks are known. Otherwise a new
        // presentation, or the one another node handed over: this node's
        // earlier one gives way.
        state.resuming =
            takeover.is_none() && state.packager.as_ref().is_some_and(LivePackager::is_paused);
        let starts = !state.resuming && takeover.is_none();
        if !state.resuming {
            state.forget_presentation();
            state.takeover = takeover;
            self.telemetry().new_presentation();
        }
        state.tracks.clear();
        state.arrivals.clear();
        drop(state);
        self.bump();
        tracing::info!(stream = %self.name, %remote, ?protocol, "publish started");
        Ok(Publisher {
            stream: self.clone(),
            actor: actor.clone(),
            generation,
            recorder: None,
            replaced,
            starts,
        })
    }

    /// Publisher `generation` left: the open segments close and the
    /// playlists stay open for it to come back. `true` when the stream
    /// waits for it (the actor ends it after the grace); a stream that
    /// cannot pause ends now.
    pub(super) fn unpublish(&self, generation: u64) -> bool {
        let mut state = self.lock();
        let mut waits = false;
        if state
            .publisher
            .as_ref()
            .is_some_and(|p| p.generation == generation)
        {
            state.publisher = None;
            state.ended_at = Some(Instant::now());
            match state.packager.as_mut().map(LivePackager::pause) {
                Some(Ok(())) => {
                    tracing::info!(stream = %self.name, "publisher gone; waiting for it to come back");
                    waits = true;
                }
                Some(Err(err)) => {
                    tracing::warn!(stream = %self.name, %err, "cannot pause the stream; ending it");
                    end_packager(&mut state, &self.name);
                }
                None => {}
            }
        }
        drop(state);
        self.bump();
        waits
    }

    /// Ends the playlists of a stream nobody published again since
    /// `generation` left; `true` when it ended it.
    pub(super) fn end_unless_republished(&self, generation: u64) -> bool {
        let mut state = self.lock();
        let ends = state.generation == generation && state.publisher.is_none();
        if ends {
            end_packager(&mut state, &self.name);
            tracing::info!(stream = %self.name, "publish ended");
        }
        drop(state);
        self.bump();
        ends
    }

    /// Ends the current publish (a revoked key); `true` when there was one.
    pub(super) fn kick(&self) -> bool {
        let mut state = self.lock();
        let kicked = state.publisher.take().is_some();
        if kicked {
            state.generation += 1;
            state.last_error = Some("the stream key was revoked".to_owned());
            end_packager(&mut state, &self.name);
        }
        drop(state);
        self.bump();
        kicked
    }
}

impl LiveStream {
    /// Starts the ladder of presentation `presentation`, if it is still
    /// the current one: the rungs below the published video's height.
    pub(super) async fn start_ladder(self: &std::sync::Arc<Self>, presentation: u64) {
        let Some(home) = self.ladder_home.clone() else {
            return;
        };
        let height = {
            let state = self.lock();
            if state.presentation != presentation {
                return;
            }
            state
                .tracks
                .iter()
                .find(|t| t.kind() == streamforge_protocols::media::MediaKind::Video)
                .and_then(Track::height)
        };
        let Some(height) = height else {
            tracing::info!(stream = %self.name, "no video to make a ladder from");
            return;
        };
        let rungs = rung_names(&self.ladder, height);
        if rungs.is_empty() {
            tracing::info!(stream = %self.name, height, "every ladder rung is as tall as the source; none made");
            return;
        }
        let args = LadderArgs {
            stream: self.clone(),
            presentation,
            rungs,
            processes: home.processes().clone(),
        };
        let branch = match home.branch(crate::supervision::BranchKind::Live).await {
            Ok(branch) => branch,
            Err(err) => {
                tracing::error!(stream = %self.name, %err, "no live branch for the ladder");
                return;
            }
        };
        if let Err(err) = ractor::Actor::spawn_linked(None, Ladder, args, branch.get_cell()).await {
            tracing::error!(stream = %self.name, %err, "cannot start the live ladder");
        }
    }
}

fn end_packager(state: &mut State, name: &str) {
    state.ended_at = Some(Instant::now());
    state.resuming = false;
    if let Some(p) = state.packager.as_mut()
        && let Err(err) = p.end()
    {
        tracing::warn!(stream = %name, %err, "could not end the stream's playlists");
    }
}

/// Why a publisher may not go on.
#[derive(Debug, thiserror::Error)]
pub enum PublishEnded {
    #[error("another publisher took over the stream, or its key was revoked")]
    Superseded,
    #[error("the stream cannot be packaged: {0}")]
    Packaging(#[from] LiveError),
    #[error("the tracks changed mid-stream ({0}); publish again to start a new presentation")]
    TracksChanged(String),
}

/// The right to publish one stream, held by an ingest actor. Dropping it
/// tells the stream's actor that the publisher left.
pub struct Publisher {
    stream: std::sync::Arc<LiveStream>,
    /// The stream's actor, told when this publisher leaves.
    actor: ActorRef<LiveStreamMsg>,
    generation: u64,
    /// The recording of this publish, when recording is on.
    recorder: Option<super::record::RecorderFeed>,
    /// It replaced a publisher that was live: that publish ended.
    replaced: bool,
    /// It starts the stream (not a publisher back within the grace, nor
    /// one that moved here from another node).
    starts: bool,
}

impl Publisher {
    pub(super) fn set_recorder(&mut self, recorder: super::record::RecorderFeed) {
        self.stream.telemetry().recording_lost = Some(recorder.lost());
        self.recorder = Some(recorder);
    }

    /// Whether this publish replaced a live one, and whether it starts the
    /// stream (see [`Publisher`]'s fields).
    pub(super) fn began(&self) -> (bool, bool) {
        (self.replaced, self.starts)
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// [`set_tracks`](Self::set_tracks), then hands them to the recording.
    pub fn take_tracks(&self, tracks: Vec<Track>) -> Result<(), PublishEnded> {
        self.set_tracks(tracks.clone())?;
        if let Some(recorder) = &self.recorder {
            recorder.tracks(tracks);
        }
        Ok(())
    }

    /// [`push`](Self::push), then hands the sample to the recording, which
    /// never makes the publisher wait (it drops and counts what its store
    /// cannot keep up with).
    pub fn take_sample(&self, sample: Sample) -> Result<(), PublishEnded> {
        match &self.recorder {
            Some(recorder) => {
                self.push(sample.clone())?;
                recorder.sample(sample);
            }
            None => self.push(sample)?,
        }
        Ok(())
    }

    pub fn stream(&self) -> &LiveStream {
        &self.stream
    }

    /// Sets the tracks; the packager starts at the first sample after them.
    /// A new codec configuration once packaging has started (an encoder's
    /// new parameter sets or resolution) continues the stream in a new
    /// epoch (new init sections after a discontinuity); other tracks than
    /// before end the publish.
    pub fn set_tracks(&self, tracks: Vec<Track>) -> Result<(), PublishEnded> {
        let mut state = self.stream.lock();
        self.current(&state)?;
        if state.packager.is_some() && !state.resuming {
            let same = |a: &[Track], b: &[Track]| {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(x, y)| x.id == y.id && x.codec == y.codec)
            };
            if same(&state.tracks, &tracks) {
                return Ok(());
            }
            let what = tracks
                .iter()
                .map(|t| t.codec.codec_string())
                .collect::<Vec<_>>()
                .join(",");
            // Only new video parameter sets (same codec, same clock) go on
            // in a new epoch: a recording keeps its sample descriptions and
            // can carry those in band, but not another audio format.
            let video_sets_only = state.tracks.len() == tracks.len()
                && state.tracks.iter().zip(&tracks).all(|(a, b)| {
                    a.id == b.id
                        && a.timescale == b.timescale
                        && (a.codec == b.codec
                            || matches!(
                                (&a.codec, &b.codec),
                                (CodecConfig::H264(_), CodecConfig::H264(_))
                                    | (CodecConfig::H265(_), CodecConfig::H265(_))
                            ))
                });
            if !video_sets_only {
                return Err(PublishEnded::TracksChanged(what));
            }
            let playable = state
                .packager
                .as_ref()
                .is_some_and(LivePackager::is_playable);
            if playable {
                let reconfigured = state
                    .packager
                    .as_mut()
                    .is_some_and(|p| p.reconfigure(&tracks, crate::clock::now()).is_ok());
                if !reconfigured {
                    return Err(PublishEnded::TracksChanged(what));
                }
                tracing::info!(stream = %self.stream.name, codecs = %what, "the publisher changed its codec configuration: the stream continues after a discontinuity");
            } else {
                // Nothing listed yet (a camera whose SDP parameter sets are
                // not the ones it sends): start over with the new tracks.
                tracing::debug!(stream = %self.stream.name, codecs = %what, "codec configuration replaced before the stream was playable");
                state.forget_presentation();
                self.stream.telemetry().new_presentation();
            }
        }
        state.tracks = tracks;
        Ok(())
    }

    /// Packages one sample; wakes the waiting viewers when a part is done.
    pub fn push(&self, sample: Sample) -> Result<(), PublishEnded> {
        let mut state = self.stream.lock();
        self.current(&state)?;
        if state.resuming {
            if state.tracks.is_empty() {
                return Ok(());
            }
            state.resuming = false;
            let tracks = state.tracks.clone();
            if let Some(packager) = state.packager.as_mut() {
                match packager.resume(&tracks, crate::clock::now()) {
                    Ok(()) => {
                        tracing::info!(stream = %self.stream.name, "publisher back: the stream continues after a discontinuity");
                    }
                    Err(err) => {
                        tracing::info!(stream = %self.stream.name, %err, "publisher back with other tracks: a new presentation");
                        state.forget_presentation();
                        self.stream.telemetry().new_presentation();
                    }
                }
            }
        }
        if state.packager.is_none() {
            if state.tracks.is_empty() {
                // Media before any sequence header cannot be described.
                return Ok(());
            }
            let packager = state.new_packager(&self.stream.settings)?;
            state.packager = Some(packager);
            state.presentation += 1;
            self.stream.telemetry().ladder_error = None;
            let _ = self.actor.cast(LiveStreamMsg::StartLadder {
                presentation: state.presentation,
            });
        }
        let track = sample.track;
        let mut guard = state;
        let state = &mut *guard;
        let Some(packager) = state.packager.as_mut() else {
            return Ok(());
        };
        packager.push(sample)?;
        let now = Instant::now();
        let mut produced = false;
        // Part latencies, recorded once the packager's lock is released.
        let mut latencies = Vec::new();
        while let Some(output) = packager.poll_output() {
            produced = true;
            match output {
                LiveOutput::Part { rendition, .. } => {
                    // The part just listed ended with the previous sample of
                    // its track (this one told its duration).
                    let part_track = packager.tracks().nth(rendition).map(|t| t.id);
                    if let Some(arrived) = part_track.and_then(|t| state.arrivals.get(&t)) {
                        latencies.push((now - *arrived).as_secs_f64() * 1000.0);
                    }
                }
                LiveOutput::Segment { rendition, msn } => {
                    tracing::trace!(stream = %self.stream.name, rendition, msn, "segment");
                }
            }
        }
        let since = state.publisher.as_ref().map(|p| p.since);
        let playable = packager.is_playable();
        state.arrivals.insert(track, now);
        drop(guard);
        if produced {
            let mut telemetry = self.stream.telemetry();
            for ms in latencies {
                telemetry.latency.record(ms);
            }
            if telemetry.first_playable.is_none()
                && playable
                && let Some(since) = since
            {
                telemetry.first_playable = Some(since.elapsed());
            }
            drop(telemetry);
            self.stream.bump();
        }
        Ok(())
    }

    fn current(&self, state: &State) -> Result<(), PublishEnded> {
        match &state.publisher {
            Some(p) if p.generation == self.generation => Ok(()),
            _ => Err(PublishEnded::Superseded),
        }
    }

    /// Ends the publish, recording why when it was not a clean stop.
    pub fn finish(self, error: Option<String>) {
        let mut state = self.stream.lock();
        if state
            .publisher
            .as_ref()
            .is_some_and(|p| p.generation == self.generation)
        {
            state.last_error = error;
        }
        drop(state);
        // Dropping tells the stream's actor.
    }
}

impl Drop for Publisher {
    /// Tells the stream's actor that this publisher left; the actor does
    /// the rest (pause, reconnect grace, end).
    fn drop(&mut self) {
        let _ = self.actor.cast(LiveStreamMsg::Unpublished {
            generation: self.generation,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presentations_never_reuse_segment_numbers() {
        let two = TargetDuration::from_secs(2);
        let at = MSN_EPOCH_MS + 1_000_000_000;
        // From the wall clock, in seconds (a segment lasts at least one).
        assert_eq!(first_msn(at, two, 0), 1_000_000);
        // 500 ms segments count half seconds: a presentation of them
        // cannot outrun the clock either.
        let half = TargetDuration::from_millis(500);
        assert_eq!(first_msn(at, half, 0), 2_000_000);
        // Restarted within the same second: above the last one's numbers.
        assert_eq!(first_msn(at, two, 1_000_007), 1_000_007);
        // A clock before the epoch still numbers from 1.
        assert_eq!(first_msn(0, two, 0), 1);
        // A DASH startNumber is 32 bits: 1 s numbers last past 2150.
        let year_2150 = 5_681_692_800_000;
        assert!(first_msn(year_2150, two, 0) < u64::from(u32::MAX));
    }
}
