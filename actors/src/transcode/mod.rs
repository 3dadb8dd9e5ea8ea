//! Processing of uploaded assets: one [`Job`] per asset under the
//! `transcodes` branch, probing the original with ffprobe and making its
//! ladder with supervised [`Rung`]s (each an ffmpeg child, an
//! [`Fmp4Child`](crate::ffmpeg::Fmp4Child), whose fragmented MP4 output is
//! packaged as CMAF as it is produced), then one multivariant playlist and
//! one MPD over every rung.
//!
//! An upload still arriving is processed from the growing source
//! ([`GrowingSource`]: ffmpeg reads it over loopback HTTP while the bytes
//! arrive), and the first packaged rung is published as a preview before
//! the ladder is done. Still images get WebP and AVIF renditions
//! ([`image`]) instead of a ladder. A rung that fails is restarted after 1,
//! 2 and 4 s; its fourth failure fails the asset ([`MAX_RUNG_RESTARTS`]).

pub mod chunks;
pub mod image;
mod job;
pub mod queue;
mod rung;
mod shared;

use std::sync::Arc;
use std::time::Duration;

use ractor::Actor;

pub use job::{Job, JobMsg, MAX_RUNG_RESTARTS};
pub use rung::{Rung, RungSpec};

use crate::db::Database;
use crate::events::EventBus;
use crate::process::Processes;
use crate::storage::Storage;
use crate::supervision::{BranchKind, Supervision};

#[derive(Clone)]
pub struct Transcoder {
    db: Database,
    events: EventBus,
    storage: Storage,
    processes: Processes,
    supervision: Supervision,
    ladder: Arc<[LadderRung]>,
    growing: Option<GrowingSource>,
    /// Processing starts while uploads arrive.
    early: bool,
    /// This node's id: its claims on the queue carry it.
    node: Arc<str>,
    /// This node claims jobs (the `worker` role).
    worker: bool,
    /// The nodes' shared secret, read once when first needed.
    internal_secret: Arc<tokio::sync::OnceCell<String>>,
    /// Video rungs of complete sources at least twice this long are
    /// encoded in chunks of it (whole segments); 0: never.
    chunk_ms: u64,
    /// Chunks this node encodes at once.
    chunk_slots: usize,
    chunks_running: chunks::Running,
    /// How often this worker renews its leases and looks for work.
    claim_every: Duration,
}

/// Where ffmpeg reads an upload that is still arriving: an HTTP resource on
/// loopback that serves the upload's bytes with ranges and holds a read
/// until the bytes asked for are durable (see `src/http/source.rs`).
#[derive(Clone, Debug)]
pub struct GrowingSource {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// Required in every request, so other local users cannot read uploads.
    pub secret: String,
}

/// One rung of the ladder: a video height and its bit rates.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct LadderRung {
    /// Output height in pixels; the width follows the source's aspect.
    pub height: u32,
    /// Video bit rate, kbit/s.
    pub video_kbps: u32,
    /// Audio bit rate when this is the tallest rung made.
    pub audio_kbps: u32,
}

/// The default ladder: H.264 + AAC-LC rates for 2 s GOPs.
pub const DEFAULT_LADDER: [LadderRung; 5] = [
    LadderRung {
        height: 360,
        video_kbps: 800,
        audio_kbps: 96,
    },
    LadderRung {
        height: 720,
        video_kbps: 2500,
        audio_kbps: 128,
    },
    LadderRung {
        height: 1080,
        video_kbps: 5000,
        audio_kbps: 192,
    },
    LadderRung {
        height: 1440,
        video_kbps: 8000,
        audio_kbps: 192,
    },
    LadderRung {
        height: 2160,
        video_kbps: 14000,
        audio_kbps: 192,
    },
];

/// Why a configured ladder (VOD or live) is unusable; rungs count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LadderError {
    #[error("needs at least one rung")]
    Empty,
    #[error("at most {max} rungs")]
    TooMany { max: usize },
    #[error("rung {rung}: height {height} must be even, between {min} and {max}")]
    Height {
        rung: usize,
        height: u32,
        min: u32,
        max: u32,
    },
    #[error("rung {rung}: {what} {value} must be between {min} and {max}")]
    Rate {
        rung: usize,
        what: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    #[error("rung {rung}: heights must increase")]
    NotIncreasing { rung: usize },
    #[error("two rungs of height {height}")]
    SameHeight { height: u32 },
}

/// Checks a rung's height and one of its rates against their ranges.
pub(crate) fn check_rung(
    rung: usize,
    height: u32,
    (min_height, max_height): (u32, u32),
    rates: &[(&'static str, u32, u32, u32)],
) -> Result<(), LadderError> {
    if !(min_height..=max_height).contains(&height) || !height.is_multiple_of(2) {
        return Err(LadderError::Height {
            rung,
            height,
            min: min_height,
            max: max_height,
        });
    }
    for &(what, value, min, max) in rates {
        if !(min..=max).contains(&value) {
            return Err(LadderError::Rate {
                rung,
                what,
                value,
                min,
                max,
            });
        }
    }
    Ok(())
}

/// Checks the VOD ladder as configured: at least one rung, even heights
/// from 2 to 4320 in increasing order, sane bit rates.
pub fn check_vod_ladder(ladder: &[LadderRung]) -> Result<(), LadderError> {
    if ladder.is_empty() {
        return Err(LadderError::Empty);
    }
    for (i, rung) in ladder.iter().enumerate() {
        check_rung(
            i + 1,
            rung.height,
            (2, 4320),
            &[
                ("video_kbps", rung.video_kbps, 16, 200_000),
                ("audio_kbps", rung.audio_kbps, 16, 1024),
            ],
        )?;
        if i > 0 && ladder[i - 1].height >= rung.height {
            return Err(LadderError::NotIncreasing { rung: i + 1 });
        }
    }
    Ok(())
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder").finish_non_exhaustive()
    }
}

impl Transcoder {
    /// `ladder` must pass [`check_vod_ladder`]. Jobs go through the queue
    /// in `db`; node `node` claims them when it is a `worker`.
    pub fn new(
        db: Database,
        storage: Storage,
        supervision: Supervision,
        events: EventBus,
        ladder: &[LadderRung],
        node: &str,
        worker: bool,
    ) -> Self {
        let processes = supervision.processes().clone();
        Transcoder {
            db,
            events,
            ladder: ladder.into(),
            storage,
            processes,
            supervision,
            growing: None,
            early: false,
            node: node.into(),
            worker,
            internal_secret: Arc::default(),
            chunk_ms: 0,
            chunk_slots: 1,
            chunks_running: chunks::Running::default(),
            claim_every: queue::CLAIM_EVERY,
        }
    }

    /// Renews leases and looks for work every `every` (at most half a
    /// [`queue::LEASE`]; [`queue::CLAIM_EVERY`] unless told).
    pub fn with_claims_every(mut self, every: Duration) -> Self {
        self.claim_every = every.min(queue::LEASE / 2);
        self
    }

    /// Encodes video rungs of complete sources in chunks of `chunk_ms`
    /// (a whole number of segments) that any worker claims; this node
    /// encodes `slots` at once (0: one per core it may use: `taskset` or a
    /// container's CPU set narrow it).
    pub fn with_chunks(mut self, chunk_ms: u64, slots: usize) -> Self {
        self.chunk_ms = chunk_ms;
        self.chunk_slots = match slots {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        self
    }

    /// How a rung of a complete source `duration_ms` long is cut for
    /// `workers`.
    pub(crate) fn chunk_plan(&self, duration_ms: u64, workers: usize) -> Option<Vec<chunks::Cut>> {
        let segment_ms = streamforge_protocols::package::PackagerConfig::default()
            .segment_duration
            .ticks(1000);
        chunks::plan(duration_ms, self.chunk_ms, segment_ms, workers)
    }

    /// The source server ffmpeg reads originals in a bucket from, and, when
    /// `early`, uploads still arriving: processing starts with their first
    /// bytes.
    pub fn with_growing_source(mut self, growing: GrowingSource, early: bool) -> Self {
        self.growing = Some(growing);
        self.early = early;
        self
    }

    /// Whether processing can start before an upload is complete (any
    /// worker reads it where it arrives).
    pub fn reads_growing_sources(&self) -> bool {
        self.growing.is_some() && self.early
    }

    /// The stored original of `asset` on the source server, for programs
    /// that read by URL when the store is remote.
    pub fn original_url(&self, asset: &str) -> Option<String> {
        self.growing
            .as_ref()
            .map(|g| format!("{}/originals/{asset}?secret={}", g.base_url, g.secret))
    }

    /// This node's id.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// The growing source of `upload` held by node `node`: its public
    /// listener's `/internal/uploads/…`, behind the secret every node
    /// shares; `None` while that node is not up.
    pub(crate) async fn remote_growing_url(
        &self,
        node: &str,
        upload: &str,
    ) -> Result<Option<String>, crate::db::DbError> {
        let Some(advertise) = self.db.node_advertise(node).await? else {
            return Ok(None);
        };
        let secret = self
            .internal_secret
            .get_or_try_init(|| self.db.internal_secret())
            .await?;
        Ok(Some(format!(
            "{}/internal/uploads/{upload}?secret={secret}",
            advertise.trim_end_matches('/')
        )))
    }

    /// The growing source of `upload`, for ffmpeg.
    pub fn growing_url(&self, upload: &str) -> Option<String> {
        self.growing
            .as_ref()
            .map(|g| format!("{}/uploads/{upload}?secret={}", g.base_url, g.secret))
    }

    /// Queues processing of `asset`; its status moves to `processing`,
    /// then `ready` or `failed`. This node, if a worker, claims it first
    /// (the bytes are here); otherwise, or if it did not take it, the other
    /// workers are woken: while the upload still arrives, a worker
    /// elsewhere reads it from this node. With storage of its own (a local
    /// directory) a worker keeps the job: no other node could read the
    /// stored original.
    pub async fn start(&self, asset: &str) {
        let pinned = (self.worker && self.storage.is_local()).then_some(&*self.node);
        if let Err(err) = self.db.enqueue_job(asset, pinned).await {
            tracing::error!(asset, %err, "cannot queue processing");
            return;
        }
        let taken = self.worker && self.claim().await.iter().any(|claimed| claimed == asset);
        if !taken && pinned.is_none() {
            self.db.wake_workers().await;
        }
    }

    /// Claims the jobs this node may run and starts them; answers their assets.
    pub async fn claim(&self) -> Vec<String> {
        let claimed = match self.db.claim_jobs(&self.node, 64).await {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(%err, "cannot claim processing jobs");
                return Vec::new();
            }
        };
        for asset in &claimed {
            tracing::info!(%asset, node = %self.node, "processing claimed");
            self.run(asset).await;
        }
        claimed
    }

    /// Runs `asset`'s claimed job in a `Job` actor.
    async fn run(&self, asset: &str) {
        let branch = match self.supervision.branch(BranchKind::Transcodes).await {
            Ok(branch) => branch,
            Err(err) => {
                tracing::error!(asset, %err, "cannot start processing");
                return self.release(asset, false).await;
            }
        };
        let args = job::JobArgs {
            asset: asset.to_owned(),
            transcoder: self.clone(),
        };
        if let Err(err) = Actor::spawn_linked(None, Job, args, branch.get_cell()).await {
            tracing::error!(asset, %err, "cannot start processing");
            self.release(asset, false).await;
        }
    }

    /// Ends this node's claim on `asset`: done, or back in the queue.
    pub(crate) async fn release(&self, asset: &str, done: bool) {
        if let Err(err) = self.db.release_job(asset, &self.node, done).await {
            tracing::warn!(asset, %err, "cannot release a processing job; its lease will run out");
        }
    }

    /// At start-up: the jobs a previous run of this node held go back to
    /// the queue, then a worker claims what it may run.
    pub async fn resume_unfinished(&self) {
        if let Err(err) = self.db.recover_jobs(&self.node).await {
            tracing::error!(%err, "cannot recover unfinished processing");
        }
        if self.worker {
            self.claim().await;
            self.claim_chunks().await;
        }
    }

    /// A worker's wake-ups on a PostgreSQL state database at `url`: it
    /// listens on [`queue::WORK_CHANNEL`] and claims jobs and chunks as
    /// soon as another node queues or gives back work (a second worker
    /// takes its share of a cut ladder at once, not at its next tick of
    /// [`claims_task`](Self::claims_task), which stays for leases that run
    /// out). Each run waits at most [`WAKE_RUN`], so shutdown never waits
    /// on it; a dropped connection is opened again at the next run.
    pub async fn wake_task(
        &self,
        url: &str,
    ) -> Result<crate::supervision::PeriodicTask, crate::db::DbError> {
        let listener = Arc::new(tokio::sync::Mutex::new(Some(work_listener(url).await?)));
        let (transcoder, url) = (self.clone(), url.to_owned());
        Ok(crate::supervision::PeriodicTask {
            name: "work-wake",
            every: Duration::ZERO,
            job: Arc::new(move || {
                let (transcoder, listener, url) =
                    (transcoder.clone(), listener.clone(), url.clone());
                Box::pin(async move {
                    let mut held = listener.lock().await;
                    if held.is_none() {
                        *held = work_listener(&url).await.ok();
                    }
                    let Some(open) = held.as_mut() else {
                        tokio::time::sleep(WAKE_RUN).await;
                        return;
                    };
                    match tokio::time::timeout(WAKE_RUN, open.try_recv()).await {
                        Err(_) => {}
                        Ok(Ok(Some(_))) => {
                            transcoder.claim().await;
                            transcoder.claim_chunks().await;
                        }
                        // Reconnected by itself: what was sent meanwhile
                        // waits for the next tick.
                        Ok(Ok(None)) => {}
                        Ok(Err(err)) => {
                            tracing::debug!(%err, "work wake-ups: listening again at the next run");
                            *held = None;
                        }
                    }
                })
            }),
        })
    }

    /// The periodic task of a worker: renew the leases of its jobs, and
    /// claim queued jobs (another node's upload completed, or a node died).
    pub fn claims_task(&self) -> crate::supervision::PeriodicTask {
        let transcoder = self.clone();
        crate::supervision::PeriodicTask {
            name: "job-claims",
            every: self.claim_every,
            job: Arc::new(move || {
                let transcoder = transcoder.clone();
                Box::pin(async move {
                    if let Err(err) = transcoder.db.renew_jobs(&transcoder.node).await {
                        tracing::warn!(%err, "cannot renew processing leases");
                    }
                    let held = transcoder.chunks_running.held();
                    if let Err(err) = transcoder
                        .db
                        .renew_chunk_tasks(&transcoder.node, &held)
                        .await
                    {
                        tracing::warn!(%err, "cannot renew chunk leases");
                    }
                    transcoder.claim().await;
                    transcoder.claim_chunks().await;
                })
            }),
        }
    }
}

/// How long one run of [`Transcoder::wake_task`] waits for a wake-up.
const WAKE_RUN: Duration = Duration::from_secs(1);

/// A `LISTEN` on [`queue::WORK_CHANNEL`].
async fn work_listener(url: &str) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(queue::WORK_CHANNEL).await?;
    Ok(listener)
}
