//! The processing queue in the state database: one job per asset, claimed
//! by a worker node under a lease it renews while it works. On PostgreSQL
//! several nodes claim from one queue (`FOR UPDATE SKIP LOCKED`: two
//! claims never take the same job, and neither waits for the other); on
//! SQLite, whose writes are serialised, the same statement without it.
//! When a node dies its leases run out and another worker claims the job.

use std::time::Duration;

use crate::clock;
use crate::db::{Database, DbError, Dialect};

/// The PostgreSQL channel that tells workers work was queued.
pub const WORK_CHANNEL: &str = "streamforge_work";

/// How long a claim holds without renewal: a node that misses this many
/// milliseconds of renewals is taken for dead and its jobs are claimed
/// again.
pub const LEASE: Duration = Duration::from_secs(15);

/// How often a worker renews its leases and looks for work.
pub const CLAIM_EVERY: Duration = Duration::from_secs(2);

/// Claims of one job before it is left alone (it keeps killing its
/// nodes, or keeps being cut short).
pub const MAX_ATTEMPTS: i64 = 5;

fn lease_until() -> i64 {
    clock::now_ms() + i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX)
}

impl Database {
    /// Queues processing of `asset`, for node `pinned` only when given
    /// (its upload is still arriving there). Queuing a queued or running
    /// job again changes nothing; a done job is queued again.
    pub async fn enqueue_job(&self, asset: &str, pinned: Option<&str>) -> Result<(), DbError> {
        let now = clock::now_ms();
        sqlx::query(
            "INSERT INTO jobs (asset, state, pinned, created_at, updated_at)
             VALUES ($1, 'queued', $2, $3, $3)
             ON CONFLICT (asset) DO UPDATE SET state = 'queued', pinned = excluded.pinned,
                 owner = NULL, lease_until = NULL, updated_at = excluded.updated_at
             WHERE jobs.state = 'done'",
        )
        .bind(asset)
        .bind(pinned)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Tells every worker that work was queued or given back (PostgreSQL's
    /// `NOTIFY` on [`WORK_CHANNEL`]): they claim at once rather than at
    /// their next tick. On SQLite, one node's database, its own worker
    /// claims when it queues.
    pub async fn wake_workers(&self) {
        if self.dialect() != Dialect::Postgres {
            return;
        }
        let sent = sqlx::query("SELECT pg_notify($1, '')")
            .bind(WORK_CHANNEL)
            .execute(self.pool())
            .await;
        if let Err(err) = sent {
            tracing::debug!(%err, "cannot wake the workers; they claim at their next tick");
        }
    }

    /// Claims for `node` the jobs it may run: queued ones (pinned to it or
    /// to nobody) and running ones whose lease ran out, oldest first, at
    /// most `limit`. Returns their assets.
    pub async fn claim_jobs(&self, node: &str, limit: u32) -> Result<Vec<String>, DbError> {
        let now = clock::now_ms();
        let lock = self.dialect().skip_locked();
        let sql = format!(
            "UPDATE jobs SET state = 'running', owner = $1, lease_until = $2,
                 attempts = attempts + 1, updated_at = $3
             WHERE asset IN (
                 SELECT asset FROM jobs
                 WHERE (state = 'queued' OR (state = 'running' AND lease_until < $3))
                   AND (pinned IS NULL OR pinned = $1) AND attempts < {MAX_ATTEMPTS}
                 ORDER BY created_at LIMIT $4{lock})
             RETURNING asset"
        );
        let claimed = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(node)
            .bind(lease_until())
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        Ok(claimed)
    }

    /// Renews the leases of the jobs `node` runs.
    pub async fn renew_jobs(&self, node: &str) -> Result<u64, DbError> {
        let done =
            sqlx::query("UPDATE jobs SET lease_until = $1 WHERE owner = $2 AND state = 'running'")
                .bind(lease_until())
                .bind(node)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected())
    }

    /// Ends `node`'s claim on `asset`'s job: done, or back in the queue for
    /// any worker (its node stopped before the job ended).
    pub async fn release_job(&self, asset: &str, node: &str, done: bool) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE jobs SET state = $1, owner = NULL, lease_until = NULL, updated_at = $2
             WHERE asset = $3 AND owner = $4 AND state = 'running'",
        )
        .bind(if done { "done" } else { "queued" })
        .bind(clock::now_ms())
        .bind(asset)
        .bind(node)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The jobs and chunks `node` holds go back to the queue, for any worker: at its
    /// shutdown (the actor tree's stop kills the jobs without their
    /// `post_stop`), and at its start for what a previous run held.
    pub async fn release_jobs_of(&self, node: &str) -> Result<u64, DbError> {
        let chunks = self.release_chunk_tasks_of(node).await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', owner = NULL, lease_until = NULL, updated_at = $1
             WHERE owner = $2 AND state = 'running'",
        )
        .bind(clock::now_ms())
        .bind(node)
        .execute(self.pool())
        .await?;
        let released = done.rows_affected() + chunks;
        if released > 0 {
            self.wake_workers().await;
        }
        Ok(released)
    }

    /// At start-up: the jobs a previous run of `node` held go back to the
    /// queue, and assets left unfinished without a job (a database from
    /// before the queue) get one.
    pub async fn recover_jobs(&self, node: &str) -> Result<(), DbError> {
        let now = clock::now_ms();
        self.release_jobs_of(node).await?;
        sqlx::query(
            "INSERT INTO jobs (asset, state, pinned, created_at, updated_at)
             SELECT id, 'queued', NULL, created_at, $1 FROM assets
             WHERE status IN ('uploaded', 'processing')
               AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.asset = assets.id)",
        )
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The node running `asset`'s job, if it runs.
    pub async fn job_owner(&self, asset: &str) -> Result<Option<String>, DbError> {
        let owner: Option<Option<String>> =
            sqlx::query_scalar("SELECT owner FROM jobs WHERE asset = $1 AND state = 'running'")
                .bind(asset)
                .fetch_optional(self.pool())
                .await?;
        Ok(owner.flatten())
    }
}
