//! Segment-parallel encoding: a video rung of a long source that is
//! already complete is cut into chunks of whole segments, each a task in
//! the state database that any worker claims (`FOR UPDATE SKIP LOCKED`
//! under a lease, as jobs are). A chunk's ffmpeg seeks to the chunk's start
//! (a rung keyframe: they fall every 2 s from 0, and a chunk is whole
//! segments) and stops at its end; its packager numbers segments and
//! shifts decode times to the chunk's place in the rung
//! ([`Packager::starting_at`]), stores the segments, and leaves its
//! checkpoint in the task. The rung's own actor waits for its chunks,
//! checks that every chunk made the same header, joins their checkpoints
//! ([`Checkpoint::concat`]) and writes the rung's playlists over all of
//! them: players see one rung, one `init.mp4`, continuous timestamps.
//!
//! The thumbnails rung of such a source is cut the same way: a span's
//! decode also makes that span's storyboard tiles (raw pictures stored
//! apart until the rung lays them out on the sprite) and, in the span it
//! falls in, the poster. The audio rung is never cut (cheap; an AAC
//! encoder restarted mid-way would begin with priming samples at each
//! seam): it is one task of the whole source, claimed after every span,
//! by the worker free first.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sha2::{Digest, Sha256};
use streamforge_protocols::media::{MediaKind, Track};
use streamforge_protocols::mp4::ReaderEvent;
use streamforge_protocols::package::{Checkpoint, FinishedRendition, INIT, Packager};
use tokio::sync::broadcast::{self, error::RecvError};

use super::Transcoder;
use super::rung::{
    Encoder, RungArgs, RungErrorKind, RungSpec, own_poster, rung_packaging, store_media,
    store_outputs, store_storyboard, storyboard_from_tiles, tile_bytes, tile_slots,
};
use super::shared::SharedStream;
use crate::assets::keys;
use crate::clock;
use crate::db::{Database, DbError};
use crate::events::Event;
use crate::ffmpeg::Fmp4Child;
use crate::supervision::BranchKind;

/// Claims of one chunk before it is given up (and its rung with it).
const MAX_CHUNK_ATTEMPTS: i64 = 3;
/// How often a rung looks at its chunks when no chunk of it was
/// announced done (a failed chunk, an event the bus dropped).
const POLL: Duration = Duration::from_secs(1);

/// One chunk's span of the source: its start and (but for the last) end,
/// in milliseconds.
pub type Cut = (u64, Option<u64>);

/// A claimed chunk's row: asset, rung, chunk, spec, start, end.
type ClaimedRow = (String, String, i64, String, i64, Option<i64>);
/// A chunk's progress row: chunk, state, result, digest, error, done by.
type StateRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// How a rung is cut for `workers`: in spans of whole `segment_ms`
/// segments, about `chunk_ms` long, as many as a multiple of the workers
/// (so that none is left alone with the last span while the others wait),
/// the longer ones first, the last to the end. `None`: the source is too
/// short to gain from it.
pub fn plan(duration_ms: u64, chunk_ms: u64, segment_ms: u64, workers: usize) -> Option<Vec<Cut>> {
    let by_length = duration_ms.checked_div(chunk_ms)?;
    let segments = duration_ms.checked_div(segment_ms)?;
    if by_length < 2 {
        return None;
    }
    let workers = u64::try_from(workers.max(1)).unwrap_or(u64::MAX);
    let spans = by_length
        .div_ceil(workers)
        .saturating_mul(workers)
        .min(segments);
    if spans < 2 {
        return None;
    }
    let (each, longer) = (segments / spans, segments % spans);
    let mut start = 0;
    Some(
        (0..spans)
            .map(|i| {
                let length = (each + u64::from(i < longer)) * segment_ms;
                let cut = (start, (i + 1 < spans).then_some(start + length));
                start += length;
                cut
            })
            .collect(),
    )
}

/// One chunk of one rung, as the queue holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkTask {
    pub asset: String,
    pub rung: String,
    pub chunk: i64,
    /// The rung: a video chunk's, or the thumbnails.
    pub spec: RungSpec,
    pub start_ms: u64,
    pub end_ms: Option<u64>,
}

/// Where a rung's chunk stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkState {
    pub chunk: i64,
    pub state: String,
    pub result: Option<String>,
    pub init_digest: Option<String>,
    pub error: Option<String>,
    pub done_by: Option<String>,
}

/// A claimed row as a task.
fn claimed_task((asset, rung, chunk, spec, start, end): ClaimedRow) -> Result<ChunkTask, DbError> {
    let spec = serde_json::from_str(&spec).map_err(|e| {
        DbError::Query(sqlx::Error::Decode(
            format!("chunk task spec {spec:?}: {e}").into(),
        ))
    })?;
    Ok(ChunkTask {
        asset,
        rung,
        chunk,
        spec,
        start_ms: crate::db::to_u64(start),
        end_ms: end.map(crate::db::to_u64),
    })
}

/// The SQL condition that a chunk of table (or alias) `of` is free to
/// claim: queued, or its worker's lease ran out (`$3` is now).
fn free(of: &str) -> String {
    format!("({of}.state = 'queued' OR ({of}.state = 'running' AND {of}.lease_until < $3))")
}

fn lease_until() -> i64 {
    clock::now_ms() + i64::try_from(super::queue::LEASE.as_millis()).unwrap_or(i64::MAX)
}

impl Database {
    /// Queues the chunks of rung `spec` (cut as `plan` says); chunks
    /// queued, running or done before with the same cut and rung are kept
    /// (a rung run again goes on with them); failed, joined or differently
    /// cut ones are queued again. Answers how many it queued (new or again).
    pub async fn add_chunk_tasks(
        &self,
        asset: &str,
        spec: &RungSpec,
        plan: &[Cut],
    ) -> Result<u64, DbError> {
        let now = clock::now_ms();
        let rung = spec.name();
        let encoded = serde_json::to_string(spec).unwrap_or_default();
        // Heaviest first: the tallest video rung's chunks, the others
        // after; the storyboard's tiles (they come with a span's decode,
        // claimed beside its video chunks), then the audio, whole: the
        // worker free first takes it, which evens out spans of whole
        // segments that two workers cannot split equally.
        let weight = match spec {
            RungSpec::Video { height, .. } => i64::from(*height),
            RungSpec::Thumbnails { .. } => 1,
            RungSpec::Audio { .. } => 0,
        };
        // Chunks of another cut (the configuration changed) go.
        sqlx::query("DELETE FROM chunk_tasks WHERE asset = $1 AND rung = $2 AND chunk >= $3")
            .bind(asset)
            .bind(&rung)
            .bind(i64::try_from(plan.len()).unwrap_or(i64::MAX))
            .execute(self.pool())
            .await?;
        // Two statements rather than an upsert: `ON CONFLICT DO UPDATE`
        // locks the row even when its `WHERE` leaves it alone, and a
        // worker claiming a span's chunks at that moment (`SKIP LOCKED`)
        // would then leave this rung's chunk of the span to a decode of
        // its own.
        const REQUEUE: &str = "UPDATE chunk_tasks SET state = 'queued', attempts = 0, owner = NULL,
                 lease_until = NULL, error = NULL, result = NULL, spec = $4, weight = $5,
                 start_ms = $6, end_ms = $7, updated_at = $8
             WHERE asset = $1 AND rung = $2 AND chunk = $3
               AND (state IN ('failed', 'joined') OR spec <> $4 OR start_ms <> $6
                    OR COALESCE(end_ms, -1) <> COALESCE(CAST($7 AS BIGINT), -1))";
        const QUEUE: &str = "INSERT INTO chunk_tasks (asset, rung, chunk, spec, weight, start_ms, end_ms, state, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8)
             ON CONFLICT (asset, rung, chunk) DO NOTHING";
        let mut queued = 0;
        for (chunk, (start, end)) in plan.iter().enumerate() {
            let chunk = i64::try_from(chunk).unwrap_or(i64::MAX);
            let (start, end) = (crate::db::to_i64(*start), end.map(crate::db::to_i64));
            for sql in [REQUEUE, QUEUE] {
                let done = sqlx::query(sql)
                    .bind(asset)
                    .bind(&rung)
                    .bind(chunk)
                    .bind(&encoded)
                    .bind(weight)
                    .bind(start)
                    .bind(end)
                    .bind(now)
                    .execute(self.pool())
                    .await?;
                queued += done.rows_affected();
            }
        }
        Ok(queued)
    }

    /// The cut of `asset`'s chunks that are queued, running or done (an
    /// earlier run of its job queued them), if they make one: spans from 0,
    /// each starting where the one before ends, the last to the end (a
    /// task of the whole source, the audio's, is no span of it).
    pub async fn chunk_cut(&self, asset: &str) -> Result<Option<Vec<Cut>>, DbError> {
        let rows: Vec<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT DISTINCT start_ms, end_ms FROM chunk_tasks
             WHERE asset = $1 AND state IN ('queued', 'running', 'done')
               AND NOT (start_ms = 0 AND end_ms IS NULL)
             ORDER BY start_ms",
        )
        .bind(asset)
        .fetch_all(self.pool())
        .await?;
        let cut: Vec<Cut> = rows
            .into_iter()
            .map(|(start, end)| (crate::db::to_u64(start), end.map(crate::db::to_u64)))
            .collect();
        let whole = cut.len() >= 2
            && cut.first().is_some_and(|(start, _)| *start == 0)
            && cut.last().is_some_and(|(_, end)| end.is_none())
            && cut.windows(2).all(|w| w[0].1 == Some(w[1].0));
        Ok(whole.then_some(cut))
    }

    /// Claims at most `limit` chunks for `node`: queued ones and running
    /// ones whose lease ran out; the asset waiting longest first (its
    /// oldest such chunk decides), within it the tallest rung's first (the
    /// longest chunks first, so that no worker is left alone with a long
    /// one at the end) and its audio last, then the oldest.
    pub async fn claim_chunk_tasks(
        &self,
        node: &str,
        limit: usize,
    ) -> Result<Vec<ChunkTask>, DbError> {
        let lock = self.dialect().skip_locked();
        // A chunk whose workers keep going silent (killed by it, say)
        // fails, and its rung with it, rather than being claimed forever.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE chunk_tasks SET state = 'failed', owner = NULL, lease_until = NULL,
                 error = 'its workers stopped answering {MAX_CHUNK_ATTEMPTS} times'
             WHERE state = 'running' AND lease_until < $1 AND attempts >= {MAX_CHUNK_ATTEMPTS}"
        )))
        .bind(clock::now_ms())
        .execute(self.pool())
        .await?;
        let (free, free_o) = (free("c"), free("o"));
        let sql = format!(
            "UPDATE chunk_tasks SET state = 'running', owner = $1, lease_until = $2,
                 attempts = attempts + 1, updated_at = $3
             WHERE (asset, rung, chunk) IN (
                 SELECT asset, rung, chunk FROM chunk_tasks c
                 WHERE {free}
                 ORDER BY (SELECT MIN(o.updated_at) FROM chunk_tasks o
                           WHERE o.asset = c.asset AND {free_o}),
                     weight DESC, updated_at, chunk LIMIT $4{lock})
             RETURNING asset, rung, chunk, spec, start_ms, end_ms"
        );
        let rows: Vec<ClaimedRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(node)
            .bind(lease_until())
            .bind(clock::now_ms())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(claimed_task).collect()
    }

    /// Claims for `node` the other rungs' chunks of `first`'s span that
    /// are free (queued, or their lease ran out): one decode of that span
    /// then feeds them all (the video rungs and the storyboard's tiles).
    pub async fn claim_chunk_siblings(
        &self,
        node: &str,
        first: &ChunkTask,
    ) -> Result<Vec<ChunkTask>, DbError> {
        let lock = self.dialect().skip_locked();
        let free = free("chunk_tasks");
        let sql = format!(
            "UPDATE chunk_tasks SET state = 'running', owner = $1, lease_until = $2,
                 attempts = attempts + 1, updated_at = $3
             WHERE (asset, rung, chunk) IN (
                 SELECT asset, rung, chunk FROM chunk_tasks
                 WHERE asset = $4 AND rung <> $5 AND start_ms = $6
                   AND COALESCE(end_ms, -1) = COALESCE(CAST($7 AS BIGINT), -1)
                   AND attempts < {MAX_CHUNK_ATTEMPTS}
                   AND {free}{lock})
             RETURNING asset, rung, chunk, spec, start_ms, end_ms"
        );
        let rows: Vec<ClaimedRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(node)
            .bind(lease_until())
            .bind(clock::now_ms())
            .bind(&first.asset)
            .bind(&first.rung)
            .bind(crate::db::to_i64(first.start_ms))
            .bind(first.end_ms.map(crate::db::to_i64))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(claimed_task).collect()
    }

    /// Renews the leases of the chunks `node` encodes (`held`).
    pub async fn renew_chunk_tasks(&self, node: &str, held: &[TaskKey]) -> Result<u64, DbError> {
        let mut renewed = 0;
        for (asset, rung, chunk) in held {
            renewed += sqlx::query(
                "UPDATE chunk_tasks SET lease_until = $1
                 WHERE asset = $2 AND rung = $3 AND chunk = $4 AND owner = $5 AND state = 'running'",
            )
            .bind(lease_until())
            .bind(asset)
            .bind(rung)
            .bind(chunk)
            .bind(node)
            .execute(self.pool())
            .await?
            .rows_affected();
        }
        Ok(renewed)
    }

    /// Records a chunk `node` encoded: its checkpoint and header digest.
    pub async fn finish_chunk_task(
        &self,
        task: &ChunkTask,
        node: &str,
        result: &str,
        init_digest: &str,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE chunk_tasks SET state = 'done', result = $1, init_digest = $2, done_by = $3,
                 owner = NULL, lease_until = NULL, updated_at = $4
             WHERE asset = $5 AND rung = $6 AND chunk = $7 AND owner = $3 AND state = 'running'",
        )
        .bind(result)
        .bind(init_digest)
        .bind(node)
        .bind(clock::now_ms())
        .bind(&task.asset)
        .bind(&task.rung)
        .bind(task.chunk)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A chunk `node` could not encode goes back to the queue, or fails
    /// after its last attempt.
    pub async fn fail_chunk_task(
        &self,
        task: &ChunkTask,
        node: &str,
        error: &str,
    ) -> Result<(), DbError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE chunk_tasks SET state = CASE WHEN attempts >= {MAX_CHUNK_ATTEMPTS} THEN 'failed' ELSE 'queued' END,
                 error = $1, owner = NULL, lease_until = NULL, updated_at = $2
             WHERE asset = $3 AND rung = $4 AND chunk = $5 AND owner = $6 AND state = 'running'"
        )))
        .bind(error)
        .bind(clock::now_ms())
        .bind(&task.asset)
        .bind(&task.rung)
        .bind(task.chunk)
        .bind(node)
        .execute(self.pool())
        .await?;
        // Queued again: another worker may take it now.
        self.wake_workers().await;
        Ok(())
    }

    /// The chunks of `rung`, in order.
    pub async fn chunk_tasks_of(
        &self,
        asset: &str,
        rung: &str,
    ) -> Result<Vec<ChunkState>, DbError> {
        let rows: Vec<StateRow> = sqlx::query_as(
            "SELECT chunk, state, result, init_digest, error, done_by FROM chunk_tasks
                 WHERE asset = $1 AND rung = $2 ORDER BY chunk",
        )
        .bind(asset)
        .bind(rung)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(chunk, state, result, init_digest, error, done_by)| ChunkState {
                    chunk,
                    state,
                    result,
                    init_digest,
                    error,
                    done_by,
                },
            )
            .collect())
    }

    /// A rung's chunks could not be joined: their tasks go, and the rung
    /// run again encodes them all again.
    pub async fn delete_chunk_tasks(&self, asset: &str, rung: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM chunk_tasks WHERE asset = $1 AND rung = $2")
            .bind(asset)
            .bind(rung)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A rung's chunks are joined: their rows stay as a record of which
    /// worker made what (they go with the asset); a rung run again
    /// encodes them again.
    pub async fn joined_chunk_tasks(&self, asset: &str, rung: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE chunk_tasks SET state = 'joined', result = NULL, updated_at = $1
             WHERE asset = $2 AND rung = $3",
        )
        .bind(clock::now_ms())
        .bind(asset)
        .bind(rung)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The chunks `node` encodes go back to the queue (it shuts down).
    pub async fn release_chunk_tasks_of(&self, node: &str) -> Result<u64, DbError> {
        let done = sqlx::query(
            "UPDATE chunk_tasks SET state = 'queued', owner = NULL, lease_until = NULL, updated_at = $1
             WHERE owner = $2 AND state = 'running'",
        )
        .bind(clock::now_ms())
        .bind(node)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

/// A chunk task's key: asset, rung, chunk.
pub type TaskKey = (String, String, i64);

/// Chunks running on this node: how many, and which (only their leases
/// are renewed, so a chunk whose run ended without a word is claimed again
/// once its lease runs out).
#[derive(Clone, Debug, Default)]
pub(super) struct Running {
    count: Arc<AtomicUsize>,
    held: Arc<std::sync::Mutex<std::collections::HashSet<TaskKey>>>,
}

/// One running chunk's (or group of one span's chunks') place in
/// [`Running`], given back when dropped.
pub struct Slot {
    running: Running,
    keys: Vec<TaskKey>,
}

impl Running {
    /// A slot, if fewer than `cap` are taken: taken before claiming, so
    /// that two claims at once never take more than `cap` between them.
    fn try_take(&self, cap: usize) -> Option<Slot> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot {
                running: self.clone(),
                keys: Vec::new(),
            })
    }

    pub(super) fn held(&self) -> Vec<TaskKey> {
        self.held
            .lock()
            .map(|held| held.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl Slot {
    fn hold(&mut self, task: &ChunkTask) {
        let key = (task.asset.clone(), task.rung.clone(), task.chunk);
        if let Ok(mut held) = self.running.held.lock() {
            held.insert(key.clone());
        }
        self.keys.push(key);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.running.count.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut held) = self.running.held.lock() {
            for key in self.keys.drain(..) {
                held.remove(&key);
            }
        }
    }
}

impl Transcoder {
    /// Claims chunks for this node's free slots and runs each in a `Chunk`
    /// actor under the transcodes branch: with a chunk, the other rungs'
    /// chunks of its span, all from one decode in one slot.
    pub(super) async fn claim_chunks(&self) {
        while let Some(mut slot) = self.chunks_running.try_take(self.chunk_slots) {
            let first = match self.db.claim_chunk_tasks(&self.node, 1).await {
                Ok(mut claimed) => claimed.pop(),
                Err(err) => {
                    tracing::warn!(%err, "cannot claim chunks");
                    None
                }
            };
            let Some(first) = first else { return };
            let mut tasks = vec![first];
            match self.db.claim_chunk_siblings(&self.node, &tasks[0]).await {
                Ok(siblings) => tasks.extend(siblings),
                Err(err) => tracing::warn!(%err, "cannot claim a chunk's siblings"),
            }
            for task in &tasks {
                tracing::info!(asset = %task.asset, rung = %task.rung, chunk = task.chunk, "chunk claimed");
                slot.hold(task);
            }
            let started = match self.supervision.branch(BranchKind::Transcodes).await {
                Ok(branch) => Actor::spawn_linked(
                    None,
                    Chunk,
                    ChunkArgs {
                        tasks: tasks.clone(),
                        transcoder: self.clone(),
                        slot,
                    },
                    branch.get_cell(),
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
                Err(err) => Err(err.to_string()),
            };
            if let Err(err) = started {
                for task in &tasks {
                    let _ = self.db.fail_chunk_task(task, &self.node, &err).await;
                }
            }
        }
    }
}

/// Encodes claimed chunks of one span; records each one's result (or
/// failure) in the queue.
pub struct Chunk;

pub struct ChunkArgs {
    tasks: Vec<ChunkTask>,
    transcoder: Transcoder,
    /// Held while the chunk runs.
    slot: Slot,
}

pub struct ChunkRunState {
    work: tokio::task::JoinHandle<()>,
}

impl Actor for Chunk {
    type Msg = ();
    type State = ChunkRunState;
    type Arguments = ChunkArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: ChunkArgs,
    ) -> Result<ChunkRunState, ActorProcessingErr> {
        let work = tokio::spawn(async move {
            let ChunkArgs {
                tasks,
                transcoder,
                slot,
            } = args;
            let node = transcoder.node.clone();
            let results = encode_span(&transcoder, &tasks).await;
            for (task, result) in tasks.iter().zip(results) {
                let recorded = match result {
                    Ok((result, digest)) => {
                        let finished = transcoder
                            .db
                            .finish_chunk_task(task, &node, &result, &digest)
                            .await;
                        if let Ok(true) = finished {
                            // Its rung, on whichever node, joins at once.
                            transcoder.events.publish(Event::ChunkDone {
                                asset_id: task.asset.clone(),
                                rung: task.rung.clone(),
                                chunk: task.chunk,
                                node: node.to_string(),
                            });
                        }
                        finished.map(|_| ())
                    }
                    Err(err) => {
                        tracing::warn!(asset = %task.asset, rung = %task.rung, chunk = task.chunk, %err, "chunk failed");
                        let reason = super::job::public_reason(&err.to_string());
                        transcoder.db.fail_chunk_task(task, &node, &reason).await
                    }
                };
                if let Err(err) = recorded {
                    tracing::warn!(asset = %task.asset, %err, "cannot record a chunk; its lease will run out");
                }
            }
            // The slot is free: the next chunk now, not at the next tick.
            drop(slot);
            if transcoder.worker {
                tokio::spawn(async move { transcoder.claim_chunks().await });
            }
            myself.stop(Some("chunk done".into()));
        });
        Ok(ChunkRunState { work })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut ChunkRunState,
    ) -> Result<(), ActorProcessingErr> {
        state.work.abort();
        Ok(())
    }
}

/// What a chunk's ffmpeg reads: the stored original.
fn chunk_source(transcoder: &Transcoder, asset: &str) -> Result<String, RungErrorKind> {
    let key = keys::original(asset).map_err(RungErrorKind::Key)?;
    match transcoder.storage.local_path(&key) {
        Some(path) => Ok(path.display().to_string()),
        None => transcoder
            .original_url(asset)
            .ok_or(RungErrorKind::NoSource),
    }
}

/// A chunk's span of the source, for its ffmpeg.
fn window(task: &ChunkTask) -> super::shared::Window {
    super::shared::Window {
        start_ms: task.start_ms,
        end_ms: task.end_ms,
        chunk: true,
    }
}

/// The key of the storyboard tiles chunk `chunk` made.
fn tiles_key(asset: &str, chunk: i64) -> Result<crate::storage::ObjectKey, RungErrorKind> {
    keys::work(asset, &format!("tiles-{chunk:05}")).map_err(RungErrorKind::Key)
}

type ChunkResult = Result<(String, String), RungErrorKind>;

/// Encodes and stores `tasks` (chunks of one span, from one decode: video
/// rungs' segments, the storyboard's tiles); answers each video chunk's
/// checkpoint and the SHA-256 of the header it made (a thumbnails chunk's:
/// how many tiles it stored).
async fn encode_span(transcoder: &Transcoder, tasks: &[ChunkTask]) -> Vec<ChunkResult> {
    let failed = |err: RungErrorKind| {
        let reason = err.to_string();
        tasks
            .iter()
            .map(|_| Err(RungErrorKind::Span(reason.clone())))
            .collect()
    };
    let [first, ..] = tasks else {
        return Vec::new();
    };
    let source = match chunk_source(transcoder, &first.asset) {
        Ok(source) => source,
        Err(err) => return failed(err),
    };
    if let [
        task @ ChunkTask {
            spec: RungSpec::Video { .. },
            ..
        },
    ] = tasks
    {
        return vec![encode(transcoder, task, &source).await];
    }
    let specs: Vec<RungSpec> = tasks.iter().map(|t| t.spec.clone()).collect();
    let started = super::shared::start(
        &transcoder.processes,
        &format!(
            "ffmpeg {} chunk {} of {} rungs",
            first.asset,
            first.chunk,
            tasks.len()
        ),
        &source,
        false,
        window(first),
        &specs,
    );
    let (_ladder, mut streams) = match started {
        Ok(started) => started,
        Err(err) => return failed(err.into()),
    };
    let source = &source;
    let work = tasks.iter().map(|task| {
        let stream = streams.remove(&task.rung);
        let poster = match task.spec {
            RungSpec::Thumbnails { .. } => streams.remove(super::shared::POSTER),
            _ => None,
        };
        async move {
            if let RungSpec::Thumbnails { .. } = task.spec {
                return tiles(transcoder, task, source, stream, poster).await;
            }
            let stream = stream.ok_or_else(|| {
                RungErrorKind::Span(format!("the shared ffmpeg has no output for {}", task.rung))
            })?;
            package(transcoder, task, Encoder::Shared(stream)).await
        }
    });
    futures::future::join_all(work).await
}

/// Encodes one video chunk with an ffmpeg of its own.
async fn encode(transcoder: &Transcoder, task: &ChunkTask, source: &str) -> ChunkResult {
    let seek = Some(task.start_ms as f64 / 1000.0).filter(|s| *s > 0.0);
    let length = task
        .end_ms
        .map(|end| end.saturating_sub(task.start_ms) as f64 / 1000.0);
    let args = super::rung::ffmpeg_args(&task.spec, source, false, seek, length);
    let ffmpeg = Fmp4Child::spawn(
        &transcoder.processes,
        &format!("ffmpeg {} {} chunk {}", task.asset, task.rung, task.chunk),
        args,
        false,
    )?;
    package(transcoder, task, Encoder::Own(Box::new(ffmpeg))).await
}

/// Stores a thumbnails chunk's part: the raw storyboard tiles of its span
/// (for the rung to lay out), and the poster if it falls in the span (an
/// ffmpeg of its own makes it if the span's did not). Answers how many
/// tiles it stored.
async fn tiles(
    transcoder: &Transcoder,
    task: &ChunkTask,
    source: &str,
    tiles: Option<SharedStream>,
    poster: Option<SharedStream>,
) -> ChunkResult {
    let poster_stage = async {
        let Some(poster) = poster else {
            return Ok(());
        };
        let picture = match poster.first_picture().await {
            Ok(picture) => picture,
            Err(err) => {
                tracing::debug!(asset = %task.asset, %err, "no poster from the span's ffmpeg; making it apart");
                let duration_ms = match task.spec {
                    RungSpec::Thumbnails { duration_ms, .. } => duration_ms,
                    _ => 0,
                };
                own_poster(&transcoder.processes, &task.asset, source, &[], duration_ms).await?
            }
        };
        store_media(&transcoder.storage, &task.asset, "poster.webp", picture).await?;
        poster_ready(transcoder, &task.asset);
        Ok::<(), RungErrorKind>(())
    };
    let tiles_stage = async {
        let Some(mut stream) = tiles else {
            return Ok(0);
        };
        // The span's tiles: a few small pictures. Kept to their number
        // (the last span's decode runs to the source's end, which may be
        // later than its probed duration); the rest is read and dropped.
        let tile = tile_bytes(&task.spec).max(1);
        let wanted = tile_slots(&task.spec, task.start_ms, task.end_ms).count();
        let limit = wanted.saturating_mul(tile);
        let (mut pieces, mut size) = (Vec::new(), 0);
        while let Some(mut bytes) = stream.next_bytes().await? {
            bytes.truncate(limit.saturating_sub(size));
            if !bytes.is_empty() {
                size += bytes.len();
                pieces.push(bytes);
            }
        }
        let key = tiles_key(&task.asset, task.chunk)?;
        transcoder
            .storage
            .put_chunks(&key, pieces)
            .await
            .map_err(|source| RungErrorKind::Store {
                key: key.as_str().to_owned(),
                source,
            })?;
        Ok::<usize, RungErrorKind>(size / tile)
    };
    let ((), count) = tokio::try_join!(poster_stage, tiles_stage)?;
    Ok((count.to_string(), String::new()))
}

/// Packages and stores one chunk's encode as it comes.
async fn package(transcoder: &Transcoder, task: &ChunkTask, mut ffmpeg: Encoder) -> ChunkResult {
    let config = rung_packaging(&task.asset, &task.spec);
    let first_segment = task.start_ms / config.segment_duration.ticks(1000) + 1;
    let mut tracks: Option<Vec<Track>> = None;
    let mut packaging: Option<(Packager, i64, String)> = None;
    while let Some(event) = ffmpeg.next().await? {
        match event {
            ReaderEvent::Tracks(found) => tracks = Some(found),
            ReaderEvent::Sample(mut sample) => {
                if packaging.is_none() {
                    let mut tracks = tracks.take().ok_or(RungErrorKind::SamplesBeforeTracks)?;
                    for track in &mut tracks {
                        track.presentation_offset = super::rung::encoder_delay(track, &sample);
                    }
                    let timescale = tracks.first().map_or(1, |t| u64::from(t.timescale));
                    // The first frame at or after the chunk's start, in
                    // whole frames as the one-run encode counts them.
                    let frame = u64::from(sample.duration.max(1));
                    let shift = (task.start_ms * timescale).div_ceil(1000).div_ceil(frame) * frame;
                    let mut packager =
                        Packager::starting_at(config.clone(), &tracks, first_segment)?;
                    let header = packager.poll_output().ok_or(RungErrorKind::NoHeader)?;
                    let digest = hex(&Sha256::digest(header.data.to_bytes()));
                    if task.chunk == 0 {
                        store_media(&transcoder.storage, &task.asset, &header.path, header.data)
                            .await?;
                    }
                    packaging = Some((packager, i64::try_from(shift).unwrap_or(i64::MAX), digest));
                }
                if let Some((packager, shift, _)) = packaging.as_mut() {
                    sample.dts += *shift;
                    packager.push(sample)?;
                    store_segments(transcoder, task, packager).await?;
                }
            }
        }
    }
    let stderr = ffmpeg.finish().await?;
    let (mut packager, _, digest) = packaging.ok_or(RungErrorKind::NoMedia { stderr })?;
    packager.finish(clock::now())?;
    store_segments(transcoder, task, &mut packager).await?;
    Ok((packager.checkpoint().render(), digest))
}

/// Stores the chunk's segments as they come; its playlists and manifests
/// (of this chunk alone) are not stored: the rung writes them over all.
async fn store_segments(
    transcoder: &Transcoder,
    task: &ChunkTask,
    packager: &mut Packager,
) -> Result<(), RungErrorKind> {
    while let Some(output) = packager.poll_output() {
        if output.path.ends_with(".m4s") {
            store_media(&transcoder.storage, &task.asset, &output.path, output.data).await?;
        }
    }
    Ok(())
}

/// The poster of `asset` is stored (by a worker that may not run its
/// job): the asset shows it, and watchers on every node hear of it.
fn poster_ready(transcoder: &Transcoder, asset: &str) {
    let (db, events, asset) = (
        transcoder.db.clone(),
        transcoder.events.clone(),
        asset.to_owned(),
    );
    tokio::spawn(async move {
        if let Err(err) = db.set_asset_poster(&asset).await {
            tracing::warn!(%asset, %err, "cannot record the poster");
            return;
        }
        let upload_id = db
            .asset(&asset)
            .await
            .ok()
            .flatten()
            .and_then(|a| a.upload_id);
        events.publish(Event::PosterReady {
            poster_url: format!("/vod/{asset}/poster.webp"),
            asset_id: asset,
            upload_id,
        });
    });
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The rung's side: queues its chunks, waits for them, and joins them into
/// the rung's renditions.
pub(super) async fn run_chunked(
    args: &RungArgs,
    transcoder: &Transcoder,
    plan: &[Cut],
) -> Result<Vec<FinishedRendition>, RungErrorKind> {
    let rung = args.spec.name();
    let db = &transcoder.db;
    // Queued by the job already, unless the rung runs again: then the
    // workers hear of the chunks queued again.
    if db.add_chunk_tasks(&args.asset, &args.spec, plan).await? > 0 {
        db.wake_workers().await;
    }
    tracing::info!(asset = %args.asset, %rung, chunks = plan.len(), "work queued for any worker");
    let mut news = transcoder.events.subscribe();
    if transcoder.worker {
        transcoder.claim_chunks().await;
    }
    let chunks = loop {
        let chunks = db.chunk_tasks_of(&args.asset, &rung).await?;
        if let Some(failed) = chunks.iter().find(|c| c.state == "failed") {
            return Err(RungErrorKind::Chunk {
                chunk: failed.chunk,
                error: failed.error.clone().unwrap_or_default(),
            });
        }
        if chunks.len() == plan.len() && chunks.iter().all(|c| c.state == "done") {
            break chunks;
        }
        chunk_done(&mut news, &args.asset, &rung).await;
    };
    if let RungSpec::Thumbnails { .. } = args.spec {
        storyboard(args, transcoder, plan).await?;
        db.joined_chunk_tasks(&args.asset, &rung).await?;
        // Only now: a rung run again before its chunks were joined still
        // finds their tiles.
        for chunk in 0..plan.len() {
            let key = tiles_key(&args.asset, i64::try_from(chunk).unwrap_or(i64::MAX))?;
            if let Err(err) = transcoder.storage.delete(&key).await {
                tracing::debug!(asset = %args.asset, %err, "cannot delete storyboard tiles");
            }
        }
        return Ok(Vec::new());
    }
    let digests: Vec<_> = chunks.iter().map(|c| c.init_digest.as_deref()).collect();
    if digests.windows(2).any(|w| w[0] != w[1]) {
        db.delete_chunk_tasks(&args.asset, &rung).await?;
        return Err(RungErrorKind::ChunksDiffer);
    }
    let checkpoints = chunks
        .iter()
        .map(|c| Checkpoint::parse(c.result.as_deref().unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(RungErrorKind::Checkpoint)?;
    let joined = Checkpoint::concat(&checkpoints).map_err(RungErrorKind::Checkpoint)?;
    let config = rung_packaging(&args.asset, &args.spec);
    let kind = match args.spec {
        RungSpec::Audio { .. } => MediaKind::Audio,
        _ => MediaKind::Video,
    };
    let rendition = config.naming.rendition(kind, 1);
    let header = args
        .storage
        .read_all(
            &keys::media(&args.asset, &format!("{rendition}/{INIT}"))
                .map_err(RungErrorKind::Key)?,
        )
        .await
        .map_err(|source| RungErrorKind::Store {
            key: format!("{rendition}/{INIT}"),
            source,
        })?;
    let tracks = super::rung::tracks_of(&header)?;
    let mut packager = Packager::resume(config.clone(), &tracks, &joined)?;
    packager.finish(clock::now())?;
    store_outputs(&args.storage, &args.asset, &mut packager).await?;
    super::rung::Resumable::store_finished(args, &config, &packager).await?;
    db.joined_chunk_tasks(&args.asset, &rung).await?;
    let workers: std::collections::BTreeSet<_> =
        chunks.iter().filter_map(|c| c.done_by.as_deref()).collect();
    tracing::info!(asset = %args.asset, %rung, chunks = chunks.len(), ?workers, "chunks joined");
    Ok(packager.into_renditions())
}

/// Waits until a chunk of `rung` of `asset` is announced done (by any
/// node: the bus brings the others' events), or [`POLL`] at most.
async fn chunk_done(news: &mut broadcast::Receiver<Event>, asset: &str, rung: &str) {
    let announced = async {
        loop {
            match news.recv().await {
                Ok(Event::ChunkDone {
                    asset_id, rung: of, ..
                }) if asset_id == asset && of == rung => return,
                Ok(_) => {}
                // Events were dropped: one of them may have been it.
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    let _ = tokio::time::timeout(POLL, announced).await;
}

/// Lays the storyboard out from the tiles each span stored, and stores it
/// with its WebVTT track. A span that stored fewer tiles
/// than its time holds (its source ended early) repeats its last one, so
/// that every later tile stays where the track says it is.
async fn storyboard(
    args: &RungArgs,
    transcoder: &Transcoder,
    plan: &[Cut],
) -> Result<(), RungErrorKind> {
    let RungSpec::Thumbnails { .. } = args.spec else {
        return Ok(());
    };
    let size = tile_bytes(&args.spec).max(1);
    let mut tiles = Vec::new();
    let mut last = None;
    for (chunk, (start, end)) in plan.iter().enumerate() {
        let wanted = tile_slots(&args.spec, *start, *end).count();
        if wanted == 0 {
            continue;
        }
        let key = tiles_key(&args.asset, i64::try_from(chunk).unwrap_or(i64::MAX))?;
        let stored =
            transcoder
                .storage
                .read_all(&key)
                .await
                .map_err(|source| RungErrorKind::Store {
                    key: key.as_str().to_owned(),
                    source,
                })?;
        let have = (stored.len() / size).min(wanted);
        if have < wanted {
            tracing::debug!(asset = %args.asset, chunk, have, wanted, "a span made fewer storyboard tiles than its time holds");
        }
        for i in 0..have {
            tiles.push(stored.slice(i * size..(i + 1) * size));
        }
        last = tiles.last().cloned().or(last);
        let filler = last.clone().unwrap_or_else(|| black_tile(size));
        tiles.extend(std::iter::repeat_n(filler, wanted - have));
    }
    let sprite =
        storyboard_from_tiles(&transcoder.processes, &args.asset, &args.spec, tiles).await?;
    store_storyboard(&transcoder.storage, &args.asset, &args.spec, sprite).await
}

/// A black `yuv420p` tile of `size` bytes (two thirds luma).
fn black_tile(size: usize) -> bytes::Bytes {
    let luma = size / 3 * 2;
    let mut tile = vec![16u8; luma];
    tile.resize(size, 128);
    bytes::Bytes::from(tile)
}

#[cfg(test)]
mod tests {
    use super::plan;

    #[test]
    fn a_rung_is_cut_in_whole_chunks_the_last_to_the_end() {
        assert_eq!(
            plan(60_000, 20_000, 4_000, 1).unwrap(),
            [(0, Some(20_000)), (20_000, Some(40_000)), (40_000, None)]
        );
        assert_eq!(
            plan(45_500, 20_000, 4_000, 1).unwrap(),
            [(0, Some(24_000)), (24_000, None)],
            "11 whole segments: 6 and 5 (and the half one)"
        );
        assert!(
            plan(39_999, 20_000, 4_000, 1).is_none(),
            "one chunk gains nothing"
        );
        assert!(plan(60_000, 0, 4_000, 1).is_none(), "off");
    }

    #[test]
    fn spans_come_in_a_multiple_of_the_workers() {
        // Three 20 s spans would leave one of two workers with two.
        assert_eq!(
            plan(60_000, 20_000, 4_000, 2).unwrap(),
            [
                (0, Some(16_000)),
                (16_000, Some(32_000)),
                (32_000, Some(48_000)),
                (48_000, None)
            ]
        );
        let cuts = plan(60_000, 12_000, 4_000, 2).unwrap();
        let lengths: Vec<_> = cuts.iter().map(|(s, e)| e.unwrap_or(60_000) - s).collect();
        assert_eq!(lengths, [12_000, 12_000, 12_000, 8_000, 8_000, 8_000]);
        // Never shorter than a segment.
        assert_eq!(plan(12_000, 4_000, 4_000, 8).unwrap().len(), 3);
    }
}
