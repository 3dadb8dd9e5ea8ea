//! Start-up and shutdown of the whole server.
//!
//! Start: data directory → database (migrations) → storage → supervision tree
//! → HTTP listener. Shutdown (a signal, or [`Running::shutdown`]): readiness
//! turns 503, the listener closes, in-flight requests get the grace period,
//! the actor tree stops and child processes are killed and reaped, and the
//! run is recorded as cleanly stopped before the database closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use streamforge_actors::db::{Database, DbError};
use streamforge_actors::process::Processes;
use streamforge_actors::storage::{Storage, StorageError};
use streamforge_actors::supervision::{Supervision, SupervisionError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, StorageLocation};
use crate::http::{self, AppState};
use crate::metrics::Metrics;

/// Time the actor tree gets to stop before its stragglers are abandoned.
const ACTOR_STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Supervision(#[from] SupervisionError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A started server.
pub struct Running {
    http_addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// The address HTTP is served on (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// A token that starts shutdown when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Starts shutdown and waits until it is complete.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the server has stopped (after a shutdown began).
    pub async fn wait(self) {
        if let Err(err) = self.task.await {
            tracing::error!(%err, "server task failed");
        }
    }
}

/// Starts every part of the server and returns once HTTP is accepting.
pub async fn start(config: Config) -> Result<Running, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;

    let db = Database::open(&config.database_url()).await?;
    let (run_id, unclean) = db.begin_run(env!("CARGO_PKG_VERSION")).await?;
    for run in &unclean {
        tracing::warn!(
            run = run.id,
            version = %run.version,
            started_at_ms = run.started_at_ms,
            "an earlier run did not shut down cleanly"
        );
    }

    let storage = match config.storage_location() {
        StorageLocation::Local(path) => Storage::local(&path)?,
        StorageLocation::Url(url) => Storage::from_url(&url)?,
    };
    let supervision = Supervision::start(Processes::new()).await?;
    let metrics = Metrics::new();
    let draining = Arc::new(AtomicBool::new(false));

    let listener = TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.http.listen,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.http.listen,
        source,
    })?;

    let state = AppState {
        db: db.clone(),
        storage: storage.clone(),
        supervision: supervision.clone(),
        metrics: metrics.clone(),
        cache: http::cache::ObjectCache::new(
            config.http.cache_bytes,
            config.http.cache_max_object_bytes,
        ),
        started: Instant::now(),
        draining: draining.clone(),
    };
    let app = http::router(state, &config.http);
    let shutdown = CancellationToken::new();
    tracing::info!(
        http = %http_addr,
        data_dir = %config.data_dir.display(),
        storage = %storage.backend(),
        run = run_id,
        "streamforge listening"
    );

    let token = shutdown.clone();
    let http_config = config.http.clone();
    let task = tokio::spawn(async move {
        // A root that stops by itself (a branch past its restart limit) is fatal.
        let watch_tree = supervision.clone();
        let tree_token = token.clone();
        let watcher = tokio::spawn(async move {
            while watch_tree.is_running() {
                tokio::select! {
                    () = tree_token.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            tracing::error!("actor tree stopped unexpectedly; shutting down");
            tree_token.cancel();
        });

        let serving = http::serve(listener, app, http_config, metrics, token.clone());
        tokio::pin!(serving);
        tokio::select! {
            () = &mut serving => {}
            () = token.cancelled() => {
                draining.store(true, Ordering::Relaxed);
                serving.await;
            }
        }
        watcher.abort();
        supervision.shutdown(ACTOR_STOP_TIMEOUT).await;
        if let Err(err) = db.end_run(run_id).await {
            tracing::error!(%err, "cannot record the clean stop");
        }
        db.close().await;
        tracing::info!("streamforge stopped");
    });

    Ok(Running {
        http_addr,
        shutdown,
        task,
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn termination_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(err) => {
                    tracing::error!(%err, "cannot watch SIGTERM; only SIGINT stops the server");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => tracing::info!("SIGINT received; shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
