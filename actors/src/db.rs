//! Server state in SQL (sqlx), migrated at start-up: an embedded SQLite
//! file by default, or a PostgreSQL server that several nodes share.
//!
//! Migrations live in `actors/migrations/{sqlite,postgres}/` and are
//! compiled into the binary: one numbered file per change in each dialect,
//! the same schema in both (PostgreSQL's integers are `BIGINT`, SQLite's
//! `INTEGER` is 64-bit already). Each runs once, in order, and sqlx records
//! which have run. Queries go through sqlx's `Any` driver and are written
//! once, in SQL both dialects take (`$1` parameters, `CAST(… AS TEXT)` for
//! a parameter PostgreSQL could not type); the few that differ branch on
//! [`Dialect`].

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

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
    /// Rows other nodes kept changing under an optimistic update.
    #[error("{0}")]
    Conflict(String),
}

/// A run of the server that ended without a clean shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UncleanRun {
    pub id: i64,
    pub version: String,
    pub started_at_ms: i64,
}

/// Which SQL engine a [`Database`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The dialect of a database URL: `sqlite:` or `postgres://`
    /// (`postgresql://`).
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }

    /// The locking clause of a claim's inner `SELECT`: PostgreSQL skips
    /// rows another claim holds; SQLite has one writer at a time anyway.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Self::Postgres => " FOR UPDATE SKIP LOCKED",
            Self::Sqlite => "",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Database {
    pool: AnyPool,
    dialect: Dialect,
}

impl Database {
    /// Opens the database at `url` (creating an SQLite file if needed) and
    /// applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        let invalid = |reason: &str| DbError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let dialect = Dialect::of_url(url)
            .ok_or_else(|| invalid("a database URL starts with sqlite: or postgres://"))?;
        sqlx::any::install_default_drivers();
        let mut options = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5));
        let connect_url = match dialect {
            Dialect::Sqlite => {
                // Check the URL with SQLite's own parser, for its message.
                url.parse::<sqlx::sqlite::SqliteConnectOptions>()
                    .map_err(|e| invalid(&e.to_string()))?;
                options = options.after_connect(|conn, _| {
                    Box::pin(async move {
                        // WAL lets readers (API requests) proceed while a
                        // writer commits; NORMAL sync under WAL is durable
                        // across process crashes, which is the failure the
                        // upload offsets must survive.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                        )
                        .await?;
                        Ok(())
                    })
                });
                sqlite_creating(url)
            }
            Dialect::Postgres => url.to_owned(),
        };
        let pool = options
            .connect(&connect_url)
            .await
            .map_err(|source| DbError::Open {
                url: url.to_owned(),
                source,
            })?;
        match dialect {
            Dialect::Sqlite => SQLITE.run(&pool).await?,
            Dialect::Postgres => POSTGRES.run(&pool).await?,
        }
        Ok(Database { pool, dialect })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn pool(&self) -> &AnyPool {
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
            "INSERT INTO server_runs (version, started_at) VALUES ($1, $2) RETURNING id",
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
        sqlx::query("UPDATE server_runs SET stopped_at = $1 WHERE id = $2")
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

    /// Closes every connection; SQLite checkpoints the WAL as the last one
    /// closes.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// An SQLite URL that creates its file when missing (`mode=rwc`), unless
/// it names a mode of its own.
fn sqlite_creating(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}mode=rwc")
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
        let err = Database::open("mysql://localhost/x").await.unwrap_err();
        assert!(err.to_string().contains("sqlite: or postgres://"), "{err}");
    }

    #[test]
    fn sqlite_urls_create_their_file_unless_told_otherwise() {
        assert_eq!(
            sqlite_creating("sqlite:///d/s.db"),
            "sqlite:///d/s.db?mode=rwc"
        );
        assert_eq!(
            sqlite_creating("sqlite:///d/s.db?cache=shared"),
            "sqlite:///d/s.db?cache=shared&mode=rwc"
        );
        assert_eq!(
            sqlite_creating("sqlite:///d/s.db?mode=ro"),
            "sqlite:///d/s.db?mode=ro"
        );
    }
}
