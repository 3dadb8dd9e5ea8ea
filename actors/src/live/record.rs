//! Recording (`live.record = true`): each publish of a stream becomes a VOD
//! asset. A recorder task per publish owns a VOD [`Packager`]; the
//! publisher hands it every sample through a bounded queue without ever
//! waiting: when the store falls behind and the queue is full, samples are
//! dropped from the recording (video goes on at its next keyframe) and
//! counted, so a slow store never stalls the encoder or the live viewers.
//! Segments are stored as they are cut under `assets/{asset}/media/`, and
//! when the publish ends the VOD playlists, `master.m3u8` and
//! `manifest.mpd` are written and the asset is `ready`, playable at
//! `/vod/{asset}/…` like an upload.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use streamforge_protocols::hls::UnixMillis;
use streamforge_protocols::media::{Sample, Track};
use streamforge_protocols::package::{Packager, PackagerConfig};

use streamforge_protocols::media::MediaKind;
use tokio::sync::mpsc;

use crate::assets::keys;
use crate::assets::{AssetRecord, AssetStatus, Stage};
use crate::db::Database;
use crate::events::{Event, EventBus};
use crate::storage::Storage;

/// Samples queued for a recorder; past this, samples are dropped from the
/// recording (and counted) rather than the publisher waiting.
const QUEUE: usize = 256;

enum RecorderMsg {
    Tracks(Vec<Track>),
    Sample(Sample),
}

/// Why a recording failed (its asset's `error`).
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error("the stream ended before any media")]
    NoMedia,
    #[error("packaging: {0}")]
    Packaging(#[from] streamforge_protocols::package::PackageError),
    #[error("a recording output has no storage key: {0}")]
    Key(#[from] crate::storage::StorageError),
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
        }
    }

    /// Samples every recording since start-up lost to a store that fell
    /// behind.
    pub fn samples_lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Creates the asset of a publish of `stream` and starts its recorder;
    /// the feed hands it the publish, and dropping the feed ends the
    /// recording.
    pub(super) async fn start(&self, stream: &str) -> Option<RecorderFeed> {
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
        };
        if let Err(err) = self.db.insert_asset(&record).await {
            tracing::error!(%stream, %err, "cannot record the stream: no asset");
            return None;
        }
        tracing::info!(%stream, %asset, "recording");
        let (tx, rx) = mpsc::channel(QUEUE);
        let feed = RecorderFeed {
            tx,
            asset: asset.clone(),
            state: std::sync::Mutex::default(),
            lost: Arc::default(),
            lost_total: self.lost.clone(),
        };
        let lost = feed.lost.clone();
        let recording = self.clone();
        tokio::spawn(async move { recording.run(asset, rx, lost).await });
        Some(feed)
    }

    async fn run(self, asset: String, mut rx: mpsc::Receiver<RecorderMsg>, lost: Arc<AtomicU64>) {
        let config = PackagerConfig {
            presentation_id: asset.clone(),
            ..PackagerConfig::default()
        };
        let mut packager: Option<Packager> = None;
        let mut recorded: Vec<Track> = Vec::new();
        let mut in_band = InBandSets::default();
        let mut failure: Option<RecordError> = None;
        while let Some(msg) = rx.recv().await {
            if failure.is_some() {
                continue;
            }
            let result = match msg {
                RecorderMsg::Tracks(tracks) if packager.is_none() => {
                    recorded.clone_from(&tracks);
                    Packager::new(config.clone(), &tracks)
                        .map(|p| packager = Some(p))
                        .map_err(RecordError::from)
                }
                // A new codec configuration mid-stream (the live stream
                // continues in a new epoch): the recording keeps its sample
                // descriptions and carries the new parameter sets in band.
                RecorderMsg::Tracks(tracks) => {
                    in_band.update(&recorded, &tracks);
                    Ok(())
                }
                RecorderMsg::Sample(sample) => match packager.as_mut() {
                    // Samples the VOD packager refuses (before a keyframe,
                    // out of order) are skipped, as the live packager does.
                    Some(p) => {
                        let _ = p.push(in_band.apply(sample));
                        Ok(())
                    }
                    None => Ok(()),
                },
            };
            if let Err(err) = result {
                failure = Some(err);
                continue;
            }
            if let Some(p) = packager.as_mut()
                && let Err(err) = self.store(&asset, p).await
            {
                failure = Some(err);
            }
        }
        // The publish ended: finish the presentation.
        let outcome = match (packager, failure) {
            (_, Some(err)) => Err(err),
            (None, None) => Err(RecordError::NoMedia),
            (Some(mut p), None) => match p.finish(UnixMillis(crate::clock::now_ms())) {
                Ok(_) => self.store(&asset, &mut p).await,
                Err(err) => Err(err.into()),
            },
        };
        let reason = outcome.as_ref().err().map(RecordError::to_string);
        let (status, error) = match &reason {
            None => (AssetStatus::Ready, None),
            Some(reason) => (AssetStatus::Failed, Some(reason.as_str())),
        };
        if let Err(err) = self.db.set_asset_status(&asset, status, error).await {
            tracing::error!(%asset, %err, "cannot record the recording's end");
        }
        let lost = lost.load(Ordering::Relaxed);
        match &outcome {
            Ok(()) if lost > 0 => {
                tracing::warn!(%asset, lost, "recording ready, without the samples the store was too slow for");
            }
            Ok(()) => tracing::info!(%asset, "recording ready"),
            Err(reason) => tracing::warn!(%asset, %reason, "recording failed"),
        }
        self.events.publish(Event::Stage {
            asset_id: asset,
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

/// The publisher's end of a recording: hands it the tracks and samples
/// without waiting. Dropping it ends the recording.
pub(super) struct RecorderFeed {
    tx: mpsc::Sender<RecorderMsg>,
    asset: String,
    state: std::sync::Mutex<FeedState>,
    /// Samples this recording lost, and every recording.
    lost: Arc<AtomicU64>,
    lost_total: Arc<AtomicU64>,
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
        match self.tx.try_send(RecorderMsg::Sample(sample)) {
            Ok(()) => {
                state.broken.remove(&track);
            }
            Err(mpsc::error::TrySendError::Full(_)) => self.lose(&mut state, track),
            // The recorder stopped on an error it reported.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Queues the pending tracks, if any; `false` while they wait.
    fn queue_tracks(&self, state: &mut FeedState) -> bool {
        let Some(tracks) = state.pending_tracks.take() else {
            return true;
        };
        match self.tx.try_send(RecorderMsg::Tracks(tracks)) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => true,
            Err(mpsc::error::TrySendError::Full(RecorderMsg::Tracks(tracks))) => {
                state.pending_tracks = Some(tracks);
                false
            }
            Err(mpsc::error::TrySendError::Full(RecorderMsg::Sample(_))) => false,
        }
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
