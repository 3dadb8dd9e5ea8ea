//! Server state in an embedded SQLite database (sqlx), migrated at start-up.
//!
//! Migrations live in `actors/migrations/` and are compiled into the binary;
//! each runs once, in order, and sqlx records which have run. Queries stay in
//! portable SQL so that a PostgreSQL pool can take SQLite's place when several
//! nodes share state.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot open database {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// A run of the server that ended without a clean shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UncleanRun {
    pub id: i64,
    pub version: String,
    pub started_at_ms: i64,
}

#[derive(Clone, Debug)]
pub struct Database {
    pool: SqlitePool,
}

impl Database {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    ///
    /// Only `sqlite:` URLs are built in today.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        if !url.starts_with("sqlite:") {
            return Err(DbError::InvalidUrl {
                url: url.to_owned(),
                reason: "only sqlite: URLs are supported by this build".into(),
            });
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| DbError::InvalidUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            })?
            .create_if_missing(true)
            // WAL lets readers (API requests) proceed while a writer commits;
            // NORMAL sync under WAL is durable across process crashes, which is
            // the failure the upload offsets must survive.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|source| DbError::Open {
                url: url.to_owned(),
                source,
            })?;
        MIGRATOR.run(&pool).await?;
        Ok(Database { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Records the start of a run and returns its id, with the earlier runs
    /// that never recorded a clean stop (now marked as seen).
    pub async fn begin_run(&self, version: &str) -> Result<(i64, Vec<UncleanRun>), DbError> {
        let mut tx = self.pool.begin().await?;
        let unclean: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT id, version, started_at FROM server_runs WHERE stopped_at IS NULL ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        // A crashed run has no stop time; -1 marks it as accounted for so the
        // next start does not report it again.
        sqlx::query("UPDATE server_runs SET stopped_at = -1 WHERE stopped_at IS NULL")
            .execute(&mut *tx)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO server_runs (version, started_at) VALUES (?, ?) RETURNING id",
        )
        .bind(version)
        .bind(crate::clock::now_ms())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let unclean = unclean
            .into_iter()
            .map(|(id, version, started_at_ms)| UncleanRun {
                id,
                version,
                started_at_ms,
            })
            .collect();
        Ok((id, unclean))
    }

    /// Records a clean stop of run `id`.
    pub async fn end_run(&self, id: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE server_runs SET stopped_at = ? WHERE id = ?")
            .bind(crate::clock::now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Checks that a connection answers a trivial query.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; SQLite checkpoints the WAL as the last one closes.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_without_a_clean_stop_are_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("state.db").display());

        let db = Database::open(&url).await.unwrap();
        let (first, unclean) = db.begin_run("0.1.0").await.unwrap();
        assert!(unclean.is_empty());
        db.close().await;

        // The first run "crashed": reopen without end_run.
        let db = Database::open(&url).await.unwrap();
        let (second, unclean) = db.begin_run("0.1.0").await.unwrap();
        assert_eq!(unclean.len(), 1);
        assert_eq!(unclean[0].id, first);
        db.end_run(second).await.unwrap();
        db.close().await;

        let db = Database::open(&url).await.unwrap();
        let (_, unclean) = db.begin_run("0.1.0").await.unwrap();
        assert!(
            unclean.is_empty(),
            "a clean stop and an accounted crash are not reported"
        );
        db.ping().await.unwrap();
        db.close().await;
    }

    #[tokio::test]
    async fn other_databases_are_refused_with_a_reason() {
        let err = Database::open("postgres://localhost/x").await.unwrap_err();
        assert!(err.to_string().contains("only sqlite"), "{err}");
    }
}
