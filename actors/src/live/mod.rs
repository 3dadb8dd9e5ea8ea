//! Live streams: who may publish, the stream registry viewers read from,
//! and the ingest actors that feed it.
//!
//! ```text
//! live branch
//! ├── RtmpIngest / RtspIngest{connection}, RtspPull{camera}
//! │     ServerSession (sans-IO) → IngestPublish → Publisher ─┐ samples
//! ├── LiveStreamActor{name}  publish, unpublish, grace, kick,│ (under the lock)
//! │     recording, ladder (lifecycle.rs)                     ▼
//! │                     Live ── LiveStream{name}: LivePackager (parts, segments, playlists)
//! └── Ladder{name} → LiveRung per rung                        ↑ requests (HTTP, no mailbox)
//! ```
//!
//! A [`LiveStream`] outlives its publishers: when one stops, the playlists
//! end (`EXT-X-ENDLIST`, static MPD) and stay readable until the next
//! publish of the same name starts a new presentation. Viewers share the
//! packager's [`bytes::Bytes`]; a blocking request waits on the stream's
//! [`tokio::sync::watch`] version, bumped after every part.

mod ingest;
mod keys;
pub mod ladder;
mod lifecycle;
pub mod owners;
pub mod record;
pub mod rtmp;
pub mod rtsp;
pub mod rtsp_pull;
pub mod srt;
mod stream;
pub mod viewers;
pub mod whip;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamforge_protocols::live::LivePackaging;
use streamforge_protocols::rtmp::PublishRejection;

pub use keys::{MAX_STREAM_NAME, StreamKeyInfo, valid_stream_name};
pub use stream::{LiveRenditionSummary, LiveStream, PartLatency, Publisher, StreamSummary};

use crate::db::{Database, DbError};
use crate::supervision::{BranchKind, PeriodicTask, Supervision};
use lifecycle::LiveStreamMsg;
use ractor::ActorRef;

/// How long a publish waits for its stream's actor to decide.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// How live streams are accepted and packaged.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub packaging: LivePackaging,
    /// Any stream name may publish without a key (a lab setting; keys are
    /// checked whenever the stream has one).
    pub open_publish: bool,
    /// A second publisher of a live stream replaces the first instead of
    /// being refused.
    pub replace_publisher: bool,
    /// An ingest connection with no bytes for this long is closed.
    pub idle_timeout: Duration,
    /// Most concurrent ingest connections.
    pub max_connections: usize,
    /// Streams one address may publish at once; 0 turns the limit off.
    pub streams_per_client: usize,
    /// How long a stream whose publisher left waits for it to come back
    /// (continuing after a discontinuity) before its playlists end.
    pub reconnect_grace: Duration,
    /// Each publish is also recorded as a VOD asset.
    pub record: bool,
    /// Live ladders by stream name.
    pub ladders: HashMap<String, Vec<ladder::LiveLadderRung>>,
    /// This node's id: the owner of the streams it takes publishes of
    /// (`live_owners`).
    pub node: String,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            packaging: LivePackaging::default(),
            open_publish: false,
            replace_publisher: false,
            idle_timeout: Duration::from_secs(10),
            max_connections: 64,
            streams_per_client: 4,
            reconnect_grace: Duration::from_secs(10),
            record: false,
            ladders: HashMap::new(),
            node: "local".to_owned(),
        }
    }
}

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0}")]
    Rejected(String, PublishRejection),
    #[error("state database: {0}")]
    Db(#[from] DbError),
    /// The stream's actor could not take the publish.
    #[error("the stream cannot take a publish now: {0}")]
    Unavailable(String),
}

/// The ingest protocols a stream can arrive by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IngestProtocol {
    Rtmp,
    /// Pushed over RTSP (ANNOUNCE/RECORD).
    #[serde(rename = "rtsp")]
    RtspPush,
    /// Pulled from an RTSP server (a camera) configured in `[[live.pull]]`.
    #[serde(rename = "rtsp-pull")]
    RtspPull,
    /// MPEG-TS pushed over SRT.
    Srt,
    /// WebRTC published over WHIP.
    Whip,
}

/// Handle to every live stream; cheap to clone.
#[derive(Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("streams", &self.lock().len())
            .finish_non_exhaustive()
    }
}

/// A stream and its actor (started on its first publish, and again if it
/// ever stopped).
struct StreamEntry {
    stream: Arc<LiveStream>,
    actor: Option<ActorRef<lifecycle::LiveStreamMsg>>,
}

struct Inner {
    db: Database,
    options: LiveOptions,
    supervision: Supervision,
    streams: Mutex<HashMap<String, StreamEntry>>,
    recording: Option<record::Recording>,
    viewers: viewers::Viewers,
    /// One stream actor started at a time.
    spawning: tokio::sync::Mutex<()>,
}

impl Live {
    /// `recording` is used when `options.record` is on.
    pub fn new(
        db: Database,
        supervision: Supervision,
        options: LiveOptions,
        recording: Option<record::Recording>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                recording: recording.filter(|_| options.record),
                options,
                viewers: viewers::Viewers::new(supervision.clone()),
                supervision,
                streams: Mutex::new(HashMap::new()),
                spawning: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn options(&self) -> &LiveOptions {
        &self.inner.options
    }

    /// The viewer sessions of every stream.
    pub fn viewers(&self) -> &viewers::Viewers {
        &self.inner.viewers
    }

    pub fn supervision(&self) -> &Supervision {
        &self.inner.supervision
    }

    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// Samples left out of recordings since start-up because the store
    /// fell behind.
    pub fn recording_samples_lost(&self) -> u64 {
        self.inner
            .recording
            .as_ref()
            .map_or(0, record::Recording::samples_lost)
    }

    /// The stream `name`, if it was ever published since start-up.
    pub fn stream(&self, name: &str) -> Option<Arc<LiveStream>> {
        self.lock().get(name).map(|e| e.stream.clone())
    }

    /// Every stream with a key or published since start-up.
    pub async fn list(&self) -> Result<Vec<StreamSummary>, DbError> {
        let keyed = self.inner.db.stream_keys().await?;
        let streams: Vec<Arc<LiveStream>> =
            self.lock().values().map(|e| e.stream.clone()).collect();
        let mut out: Vec<StreamSummary> = streams.iter().map(|s| self.summary_of(s)).collect();
        for key in keyed {
            if !out.iter().any(|s| s.name == key.stream) {
                out.push(StreamSummary::idle(key.stream));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One stream: published since start-up, or with a key (idle).
    pub async fn summary(&self, name: &str) -> Result<Option<StreamSummary>, DbError> {
        if let Some(stream) = self.stream(name) {
            return Ok(Some(self.summary_of(&stream)));
        }
        let keyed = self.inner.db.stream_has_key(name).await?;
        Ok(keyed.then(|| StreamSummary::idle(name.to_owned())))
    }

    fn summary_of(&self, stream: &LiveStream) -> StreamSummary {
        let mut summary = stream.summary();
        summary.viewers = self.inner.viewers.count(stream.name());
        summary
    }

    /// Decides which stream a publish request is for. `name` is the stream
    /// name as the encoder sent it (`{stream}?key={key}` or a bare key).
    pub async fn authorize(&self, app: &str, name: &str) -> Result<String, PublishError> {
        if app != "live" {
            return Err(PublishError::Rejected(
                format!("unknown application {app:?}: publish to live/{{stream}}"),
                PublishRejection::BadName,
            ));
        }
        let (stream, key) = match name.split_once('?') {
            Some((stream, query)) => (
                stream,
                query.split('&').find_map(|pair| pair.strip_prefix("key=")),
            ),
            None => (name, None),
        };
        if let Some(key) = key {
            return match self.inner.db.stream_for_key(key).await? {
                Some(owner) if owner == stream => Ok(owner),
                _ => Err(PublishError::Rejected(
                    format!("wrong key for stream {stream:?}"),
                    PublishRejection::BadName,
                )),
            };
        }
        // A bare stream key.
        if let Some(owner) = self.inner.db.stream_for_key(stream).await? {
            return Ok(owner);
        }
        if !valid_stream_name(stream) {
            return Err(PublishError::Rejected(
                format!(
                    "invalid stream name {stream:?}: use [A-Za-z0-9_-], at most {MAX_STREAM_NAME} bytes"
                ),
                PublishRejection::BadName,
            ));
        }
        if self.inner.options.open_publish && !self.inner.db.stream_has_key(stream).await? {
            return Ok(stream.to_owned());
        }
        Err(PublishError::Rejected(
            format!("stream {stream:?} needs its key: publish to {stream}?key=…"),
            PublishRejection::BadName,
        ))
    }

    /// Starts publishing `stream`: its actor decides (refused while
    /// another publisher is live, unless `replace_publisher` is set) and,
    /// with recording on, starts the publish's recording.
    pub async fn start_publish(
        &self,
        stream: &str,
        protocol: IngestProtocol,
        remote: String,
    ) -> Result<Publisher, PublishError> {
        self.check_client_limit(stream, protocol, &remote)?;
        // One node owns a stream: another one's publish of it is refused
        // while that node's lease lasts.
        let node = &self.inner.options.node;
        let grace = self.inner.options.reconnect_grace;
        let takeover = match self.inner.db.claim_live_stream(stream, node, grace).await? {
            owners::Claim::Owned(takeover) => takeover,
            owners::Claim::Refused(owner) => {
                return Err(PublishError::Rejected(
                    format!("stream {stream:?} is live on node {owner:?}"),
                    PublishRejection::Denied,
                ));
            }
        };
        if let Some(takeover) = &takeover {
            tracing::info!(%stream, from = %takeover.from, next_msn = takeover.handover.next_msn, exact = takeover.exact, "publisher moved here: the stream's presentation continues on this node");
        }
        let actor = self.stream_actor(stream).await?;
        let replace = self.inner.options.replace_publisher;
        match actor
            .call(
                |reply| LiveStreamMsg::Publish {
                    protocol,
                    remote,
                    replace,
                    takeover,
                    reply,
                },
                Some(PUBLISH_TIMEOUT),
            )
            .await
        {
            Ok(ractor::rpc::CallResult::Success(answer)) => answer,
            Ok(_) => Err(PublishError::Unavailable("no answer in time".to_owned())),
            Err(err) => Err(PublishError::Unavailable(err.to_string())),
        }
    }

    /// The periodic task that renews this node's lease on each stream it
    /// has on air (live, or waiting for its publisher), and gives up the
    /// others; a stream whose publish ended stays readable here while its
    /// lease runs out, so edges relay its end.
    pub fn owners_task(&self) -> PeriodicTask {
        let live = self.clone();
        PeriodicTask {
            name: "live-owners",
            every: owners::RENEW_EVERY,
            job: Arc::new(move || {
                let live = live.clone();
                Box::pin(async move {
                    let on_air: Vec<Arc<LiveStream>> = live
                        .lock()
                        .values()
                        .filter(|e| e.stream.is_on_air())
                        .map(|e| e.stream.clone())
                        .collect();
                    let node = &live.inner.options.node;
                    for stream in on_air {
                        let name = stream.name();
                        let record = stream.owner_record();
                        match live.inner.db.renew_live_stream(name, node, record).await {
                            Ok(true) => {}
                            // Its publisher moved to the node that took it.
                            Ok(false) => tracing::debug!(stream = %name, "owned by another node"),
                            Err(err) => {
                                tracing::warn!(stream = %name, %err, "stream ownership not renewed");
                            }
                        }
                    }
                })
            }),
        }
    }

    /// Refuses a publisher's address past `limits.streams_per_client`.
    fn check_client_limit(
        &self,
        stream: &str,
        protocol: IngestProtocol,
        remote: &str,
    ) -> Result<(), PublishError> {
        let limit = self.inner.options.streams_per_client;
        if limit == 0 || protocol == IngestProtocol::RtspPull {
            return Ok(());
        }
        let host = |remote: &str| {
            remote
                .rsplit_once(':')
                .map_or(remote, |(h, _)| h)
                .to_owned()
        };
        let from = host(remote);
        let streams: Vec<Arc<LiveStream>> =
            self.lock().values().map(|e| e.stream.clone()).collect();
        let publishing = streams
            .iter()
            .filter(|s| s.name() != stream)
            .filter(|s| s.publisher_remote().is_some_and(|r| host(&r) == from))
            .count();
        if publishing >= limit {
            return Err(PublishError::Rejected(
                format!("{from} already publishes {publishing} streams, the most one address may"),
                PublishRejection::Denied,
            ));
        }
        Ok(())
    }

    /// The actor of stream `name`, made (with the stream) on its first
    /// publish, and again if it ever stopped.
    async fn stream_actor(&self, name: &str) -> Result<ActorRef<LiveStreamMsg>, PublishError> {
        let stream = {
            let mut streams = self.lock();
            let entry = streams.entry(name.to_owned()).or_insert_with(|| {
                let ladder = self
                    .inner
                    .options
                    .ladders
                    .get(name)
                    .cloned()
                    .unwrap_or_default();
                let home = (!ladder.is_empty()).then(|| self.inner.supervision.clone());
                StreamEntry {
                    stream: Arc::new(LiveStream::new(
                        name.to_owned(),
                        self.inner.options.packaging.clone(),
                        ladder,
                        home,
                    )),
                    actor: None,
                }
            });
            if let Some(actor) = entry
                .actor
                .as_ref()
                .filter(|a| ractor::ACTIVE_STATES.contains(&a.get_status()))
            {
                return Ok(actor.clone());
            }
            entry.stream.clone()
        };
        let _one = self.inner.spawning.lock().await;
        // Another publish may have started it meanwhile.
        if let Some(actor) = self
            .lock()
            .get(name)
            .and_then(|e| e.actor.clone())
            .filter(|a| ractor::ACTIVE_STATES.contains(&a.get_status()))
        {
            return Ok(actor);
        }
        let unavailable = |e: &dyn std::fmt::Display| PublishError::Unavailable(e.to_string());
        let branch = self
            .inner
            .supervision
            .branch(BranchKind::Live)
            .await
            .map_err(|e| unavailable(&e))?;
        let (actor, _) = ractor::Actor::spawn_linked(
            None,
            lifecycle::LiveStreamActor,
            lifecycle::LiveStreamArgs {
                stream,
                recording: self.inner.recording.clone(),
                reconnect_grace: self.inner.options.reconnect_grace,
                db: self.inner.db.clone(),
                node: self.inner.options.node.clone(),
            },
            branch.get_cell(),
        )
        .await
        .map_err(|e| unavailable(&e))?;
        if let Some(entry) = self.lock().get_mut(name) {
            entry.actor = Some(actor.clone());
        }
        Ok(actor)
    }

    /// Ends the live stream of a revoked key at once.
    pub fn kick(&self, stream: &str) {
        let actor = self.lock().get(stream).and_then(|e| e.actor.clone());
        if let Some(actor) = actor {
            let _ = actor.cast(LiveStreamMsg::Kick);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, StreamEntry>> {
        self.inner
            .streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
