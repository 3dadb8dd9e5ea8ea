//! Recording (`live.record = true`): each publish of a stream becomes a VOD
//! asset. A [`Recorder`] actor per publish, linked to the stream's actor,
//! owns a VOD [`Packager`]; the publisher hands it every sample through
//! its mailbox, bounded by the [`RecorderFeed`], without ever waiting:
//! when the store falls behind and the mailbox is full, samples are
//! dropped from the recording (video goes on at its next keyframe) and
//! counted, so a slow store never stalls the encoder or the live viewers.
//! Segments are stored as they are cut under `assets/{asset}/media/`, and
//! when the publish ends the VOD playlists, `master.m3u8` and
//! `manifest.mpd` are written and the asset is `ready`, playable at
//! `/vod/{asset}/…` like an upload.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use streamforge_protocols::hls::UnixMillis;
use streamforge_protocols::media::{Sample, Track};
use streamforge_protocols::package::{Packager, PackagerConfig};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use streamforge_protocols::media::MediaKind;

use crate::assets::keys;
use crate::assets::{AssetRecord, AssetStatus, Stage};
use crate::db::Database;
use crate::events::{Event, EventBus};
use crate::storage::Storage;

/// Samples queued for a recorder; past this, samples are dropped from the
/// recording (and counted) rather than the publisher waiting.
const QUEUE: usize = 256;

/// Why a recording failed (its asset's `error`).
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error("the stream ended before any media")]
    NoMedia,
    #[error("packaging: {0}")]
    Packaging(#[from] streamforge_protocols::package::PackageError),
    #[error("a recording output has no storage key: {0}")]
    Key(#[from] crate::storage::StorageError),
    #[error("the recorder could not start: {0}")]
    Start(#[from] ractor::SpawnErr),
    #[error("the recorder stopped before the publish ended")]
    Stopped,
    #[error("storing {key}: {source}")]
    Store {
        key: String,
        #[source]
        source: crate::storage::StorageError,
    },
}

/// What a recording needs from the server.
#[derive(Clone)]
pub struct Recording {
    db: Database,
    storage: Storage,
    events: EventBus,
    /// Samples every recording lost to a store that fell behind.
    lost: Arc<AtomicU64>,
    /// The node recording: its restart fails its own unfinished
    /// recordings only.
    node: Option<String>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording").finish_non_exhaustive()
    }
}

impl Recording {
    pub fn new(db: Database, storage: Storage, events: EventBus) -> Self {
        Self {
            db,
            storage,
            events,
            lost: Arc::default(),
            node: None,
        }
    }

    /// Recordings are made by node `node` (this one).
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = Some(node.to_owned());
        self
    }

    /// Samples every recording since start-up lost to a store that fell
    /// behind.
    pub fn samples_lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Creates the asset of a publish of `stream` and starts its
    /// [`Recorder`] linked to `supervisor` (the stream's actor); the feed
    /// hands it the publish, and [`RecorderMsg::End`] finishes it.
    pub(super) async fn start(
        &self,
        stream: &str,
        supervisor: ractor::ActorCell,
    ) -> Option<(RecorderFeed, ActorRef<RecorderMsg>)> {
        let asset = uuid::Uuid::new_v4().simple().to_string();
        let record = AssetRecord {
            id: asset.clone(),
            upload_id: None,
            filename: format!("live-{stream}-{}.mp4", crate::clock::now_ms() / 1000),
            filetype: "video/mp4".to_owned(),
            size: 0,
            status: AssetStatus::Recording,
            error: None,
            created_at_ms: crate::clock::now_ms(),
            probe: None,
            preview: false,
            poster: false,
            stage: None,
            rungs: None,
            node: self.node.clone(),
        };
        if let Err(err) = self.db.insert_asset(&record).await {
            tracing::error!(%stream, %err, "cannot record the stream: no asset");
            return None;
        }
        let lost = Arc::new(AtomicU64::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        let args = RecorderArgs {
            recording: self.clone(),
            asset: asset.clone(),
            lost: lost.clone(),
            queued: queued.clone(),
        };
        let actor = match Actor::spawn_linked(None, Recorder, args, supervisor).await {
            Ok((actor, _)) => actor,
            Err(err) => {
                tracing::error!(%stream, %asset, %err, "cannot start the recorder");
                let err: RecordError = err.into();
                self.finish(&asset, Err(err), 0).await;
                return None;
            }
        };
        tracing::info!(%stream, %asset, "recording");
        let feed = RecorderFeed {
            actor: actor.clone(),
            queued,
            asset,
            state: std::sync::Mutex::default(),
            lost,
            lost_total: self.lost.clone(),
        };
        Some((feed, actor))
    }

    /// Records how a recording ended: its asset's status and the event.
    async fn finish(&self, asset: &str, outcome: Result<(), RecordError>, lost: u64) {
        let reason = outcome.as_ref().err().map(RecordError::to_string);
        let (status, error) = match &reason {
            None => (AssetStatus::Ready, None),
            Some(reason) => (AssetStatus::Failed, Some(reason.as_str())),
        };
        if let Err(err) = self.db.set_asset_status(asset, status, error).await {
            tracing::error!(%asset, %err, "cannot record the recording's end");
        }
        match &outcome {
            Ok(()) if lost > 0 => {
                tracing::warn!(%asset, lost, "recording ready, without the samples the store was too slow for");
            }
            Ok(()) => tracing::info!(%asset, "recording ready"),
            Err(reason) => tracing::warn!(%asset, %reason, "recording failed"),
        }
        self.events.publish(Event::Stage {
            asset_id: asset.to_owned(),
            upload_id: None,
            stage: match status {
                AssetStatus::Ready => Stage::Ready,
                _ => Stage::Failed,
            },
            error: error.map(str::to_owned),
        });
    }

    async fn store(&self, asset: &str, packager: &mut Packager) -> Result<(), RecordError> {
        while let Some(output) = packager.poll_output() {
            let key = keys::media(asset, &output.path)?;
            self.storage
                .put_rope(&key, output.data)
                .await
                .map_err(|source| RecordError::Store {
                    key: key.to_string(),
                    source,
                })?;
        }
        Ok(())
    }
}

/// What a [`Recorder`] is told.
pub(super) enum RecorderMsg {
    Tracks(Vec<Track>),
    Sample(Sample),
    /// The publish ended: write the VOD playlists and stop.
    End,
}

/// The recording of one publish: owns its VOD [`Packager`] and stores its
/// segments as they are cut. Linked to the stream's actor; a recorder
/// stopped before [`RecorderMsg::End`] (the server shutting down) marks
/// its asset failed rather than leaving it `recording`.
pub(super) struct Recorder;

pub(super) struct RecorderArgs {
    recording: Recording,
    asset: String,
    lost: Arc<AtomicU64>,
    /// Messages sent and not handled yet, shared with the feed.
    queued: Arc<AtomicUsize>,
}

pub(super) struct RecorderState {
    args: RecorderArgs,
    packager: Option<Packager>,
    /// The tracks the recording was started with.
    recorded: Vec<Track>,
    in_band: InBandSets,
    failure: Option<RecordError>,
    finished: bool,
}

impl Actor for Recorder {
    type Msg = RecorderMsg;
    type State = RecorderState;
    type Arguments = RecorderArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<RecorderMsg>,
        args: RecorderArgs,
    ) -> Result<RecorderState, ActorProcessingErr> {
        Ok(RecorderState {
            args,
            packager: None,
            recorded: Vec::new(),
            in_band: InBandSets::default(),
            failure: None,
            finished: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RecorderMsg>,
        message: RecorderMsg,
        state: &mut RecorderState,
    ) -> Result<(), ActorProcessingErr> {
        if matches!(message, RecorderMsg::End) {
            let outcome = state.end().await;
            let args = &state.args;
            let lost = args.lost.load(Ordering::Relaxed);
            args.recording.finish(&args.asset, outcome, lost).await;
            state.finished = true;
            myself.stop(None);
            return Ok(());
        }
        state.args.queued.fetch_sub(1, Ordering::Relaxed);
        if state.failure.is_none()
            && let Err(err) = state.take(message).await
        {
            state.failure = Some(err);
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RecorderMsg>,
        state: &mut RecorderState,
    ) -> Result<(), ActorProcessingErr> {
        if !state.finished {
            let args = &state.args;
            let lost = args.lost.load(Ordering::Relaxed);
            let stopped = Err(RecordError::Stopped);
            args.recording.finish(&args.asset, stopped, lost).await;
        }
        Ok(())
    }
}

impl RecorderState {
    /// Packages one message of the publish and stores what it completed.
    async fn take(&mut self, message: RecorderMsg) -> Result<(), RecordError> {
        match message {
            RecorderMsg::Tracks(tracks) if self.packager.is_none() => {
                let config = PackagerConfig {
                    presentation_id: self.args.asset.clone(),
                    ..PackagerConfig::default()
                };
                self.packager = Some(Packager::new(config, &tracks)?);
                self.recorded = tracks;
            }
            // A new codec configuration mid-stream (the live stream
            // continues in a new epoch): the recording keeps its sample
            // descriptions and carries the new parameter sets in band.
            RecorderMsg::Tracks(tracks) => self.in_band.update(&self.recorded, &tracks),
            // Samples the VOD packager refuses (before a keyframe, out of
            // order) are skipped, as the live packager does.
            RecorderMsg::Sample(sample) => {
                if let Some(p) = self.packager.as_mut() {
                    let _ = p.push(self.in_band.apply(sample));
                }
            }
            RecorderMsg::End => {}
        }
        match self.packager.as_mut() {
            Some(p) => self.args.recording.store(&self.args.asset, p).await,
            None => Ok(()),
        }
    }

    /// The publish ended: finishes the presentation.
    async fn end(&mut self) -> Result<(), RecordError> {
        if let Some(err) = self.failure.take() {
            return Err(err);
        }
        let Some(p) = self.packager.as_mut() else {
            return Err(RecordError::NoMedia);
        };
        p.finish(UnixMillis(crate::clock::now_ms()))?;
        self.args.recording.store(&self.args.asset, p).await
    }
}

/// The publisher's end of a recording: hands it the tracks and samples
/// without waiting. The stream's actor ends the recording when the
/// publisher leaves.
pub(super) struct RecorderFeed {
    actor: ActorRef<RecorderMsg>,
    /// Messages sent to the recorder and not handled yet: its mailbox is
    /// unbounded, so the feed bounds it.
    queued: Arc<AtomicUsize>,
    asset: String,
    state: std::sync::Mutex<FeedState>,
    /// Samples this recording lost, and every recording.
    lost: Arc<AtomicU64>,
    lost_total: Arc<AtomicU64>,
}

/// Why the feed could not hand a message over.
enum Full {
    /// [`QUEUE`] messages wait: the message comes back.
    Yes(RecorderMsg),
    Stopped,
}

#[derive(Default)]
struct FeedState {
    /// Tracks not queued yet (the queue was full): samples are lost until
    /// they are, as they would be described by the tracks before.
    pending_tracks: Option<Vec<Track>>,
    video: HashSet<u32>,
    /// Video tracks that lost a sample: the frames after it refer to it,
    /// so they are lost too, until the next keyframe.
    broken: HashSet<u32>,
}

impl RecorderFeed {
    /// This recording's lost samples, shared with the stream's summary.
    pub(super) fn lost(&self) -> Arc<AtomicU64> {
        self.lost.clone()
    }

    pub(super) fn tracks(&self, tracks: Vec<Track>) {
        let mut state = self.lock();
        state.video = tracks
            .iter()
            .filter(|t| t.kind() == MediaKind::Video)
            .map(|t| t.id)
            .collect();
        state.pending_tracks = Some(tracks);
        self.queue_tracks(&mut state);
    }

    pub(super) fn sample(&self, sample: Sample) {
        let mut state = self.lock();
        let track = sample.track;
        if !self.queue_tracks(&mut state) || (state.broken.contains(&track) && !sample.keyframe) {
            self.lose(&mut state, track);
            return;
        }
        match self.send(RecorderMsg::Sample(sample)) {
            Ok(()) => {
                state.broken.remove(&track);
            }
            Err(Full::Yes(_)) => self.lose(&mut state, track),
            // The recorder stopped; it recorded why.
            Err(Full::Stopped) => {}
        }
    }

    /// Queues the pending tracks, if any; `false` while they wait.
    fn queue_tracks(&self, state: &mut FeedState) -> bool {
        let Some(tracks) = state.pending_tracks.take() else {
            return true;
        };
        match self.send(RecorderMsg::Tracks(tracks)) {
            Ok(()) | Err(Full::Stopped) => true,
            Err(Full::Yes(RecorderMsg::Tracks(tracks))) => {
                state.pending_tracks = Some(tracks);
                false
            }
            Err(Full::Yes(_)) => false,
        }
    }

    /// Sends unless [`QUEUE`] messages wait already.
    fn send(&self, message: RecorderMsg) -> Result<(), Full> {
        if self.queued.load(Ordering::Relaxed) >= QUEUE {
            return Err(Full::Yes(message));
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.actor.cast(message).map_err(|_| Full::Stopped)
    }

    fn lose(&self, state: &mut FeedState, track: u32) {
        if state.video.contains(&track) {
            state.broken.insert(track);
        }
        self.lost_total.fetch_add(1, Ordering::Relaxed);
        if self.lost.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(asset = %self.asset, "recording: the store is behind; samples are left out of the recording (the live stream is unaffected)");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Parameter sets a recording's video samples carry in band after the
/// publisher changed them: each track's new sets go before every keyframe
/// that does not bring its own.
#[derive(Default)]
struct InBandSets {
    by_track: std::collections::HashMap<u32, bytes::Bytes>,
}

impl InBandSets {
    fn update(&mut self, recorded: &[Track], tracks: &[Track]) {
        for track in tracks {
            let first = recorded.iter().find(|t| t.id == track.id);
            if first.is_some_and(|t| t.codec == track.codec) {
                self.by_track.remove(&track.id);
                continue;
            }
            let sets = track.codec.parameter_sets_in_band();
            if !sets.is_empty() {
                self.by_track.insert(track.id, bytes::Bytes::from(sets));
            }
        }
    }

    fn apply(&self, mut sample: Sample) -> Sample {
        let Some(sets) = self.by_track.get(&sample.track) else {
            return sample;
        };
        if sample.keyframe && !sample.data.starts_with(sets) {
            let mut data = Vec::with_capacity(sets.len() + sample.data.len());
            data.extend_from_slice(sets);
            data.extend_from_slice(&sample.data);
            sample.data = bytes::Bytes::from(data);
        }
        sample
    }
}
