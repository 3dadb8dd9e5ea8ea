//! The supervision tree: a [`Root`] with one [`Branch`] per kind of work,
//! and the server's [`Periodic`] tasks.
//!
//! ```text
//! Root
//! ├── uploads     UploadSession, one per tus upload
//! ├── transcodes  Job{asset} → Rung, one per ladder rung (ffmpeg)
//! ├── live        RtmpIngest / RtspIngest per connection, RtspPull per
//! │               camera, LiveStreamActor per stream, Ladder per live
//! │               stream → LiveRung per rung
//! ├── viewers     ViewerSessionActor, one per viewer session
//! └── Periodic    upload expiry, rate-limit pruning (Supervision::every)
//! ```
//!
//! Work actors are spawned linked to their branch
//! (`Actor::spawn_linked(…, branch.get_cell())`, branch from
//! [`Supervision::branch`]); the branch counts them for `/metrics` and keeps
//! one failure from touching any other. [`Supervision::shutdown`] stops the
//! tree from the leaves up and then kills whatever child processes remain;
//! [`Supervision::stopped`] resolves when the root has stopped.

mod backoff;
mod branch;
mod periodic;
mod root;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorRef};

pub use backoff::Backoff;
pub use branch::{Branch, BranchMsg};
pub use periodic::{Periodic, PeriodicJob, PeriodicMsg, PeriodicTask};
pub use root::{Child, MAX_RESTARTS, RESTART_WINDOW, Root, RootArgs, RootMsg};

use crate::process::Processes;

/// The kinds of work, one branch of the tree each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BranchKind {
    Uploads,
    Transcodes,
    Live,
    Viewers,
}

impl BranchKind {
    pub const ALL: [BranchKind; 4] = [
        BranchKind::Uploads,
        BranchKind::Transcodes,
        BranchKind::Live,
        BranchKind::Viewers,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BranchKind::Uploads => "uploads",
            BranchKind::Transcodes => "transcodes",
            BranchKind::Live => "live",
            BranchKind::Viewers => "viewers",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for BranchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Live actors under each branch, shared with the metrics endpoint.
#[derive(Clone, Debug, Default)]
pub struct ActorCounts {
    counts: Arc<[AtomicI64; 4]>,
}

impl ActorCounts {
    pub fn get(&self, kind: BranchKind) -> i64 {
        self.counts[kind.index()].load(Ordering::Relaxed)
    }

    fn add(&self, kind: BranchKind, delta: i64) {
        self.counts[kind.index()].fetch_add(delta, Ordering::Relaxed);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisionError {
    #[error("cannot start the supervision tree: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    #[error("the supervision tree did not answer: {0}")]
    Unreachable(String),
}

/// Handle to a running supervision tree.
#[derive(Clone, Debug)]
pub struct Supervision {
    root: ActorRef<RootMsg>,
    counts: ActorCounts,
    processes: Processes,
    /// Cancelled when the root has stopped, for whatever reason.
    stopped: tokio_util::sync::CancellationToken,
}

/// How long a caller waits for the root to answer a query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

impl Supervision {
    /// Starts the root and its branches. `processes` is the registry every
    /// child process of the tree is spawned through.
    pub async fn start(processes: Processes) -> Result<Self, SupervisionError> {
        let counts = ActorCounts::default();
        let (root, join) = Actor::spawn(
            None,
            Root,
            RootArgs {
                counts: counts.clone(),
                processes: processes.clone(),
            },
        )
        .await?;
        let stopped = tokio_util::sync::CancellationToken::new();
        let on_stop = stopped.clone();
        tokio::spawn(async move {
            let _ = join.await;
            on_stop.cancel();
        });
        Ok(Supervision {
            root,
            counts,
            processes,
            stopped,
        })
    }

    /// Runs `task` now and then every `task.every`, supervised by the root
    /// (restarted if it panics). A task of the same name runs only once.
    pub async fn every(&self, task: PeriodicTask) -> Result<(), SupervisionError> {
        ractor::call_t!(
            self.root,
            RootMsg::Every,
            QUERY_TIMEOUT.as_millis() as u64,
            task
        )
        .map_err(|e| SupervisionError::Unreachable(e.to_string()))
    }

    /// Resolves once the root has stopped: at shutdown, or when a child
    /// kept failing past its restart limit.
    pub async fn stopped(&self) {
        self.stopped.cancelled().await;
    }

    /// The branch that supervises `kind` work, to spawn work actors under.
    pub async fn branch(&self, kind: BranchKind) -> Result<ActorRef<BranchMsg>, SupervisionError> {
        ractor::call_t!(
            self.root,
            RootMsg::Branch,
            QUERY_TIMEOUT.as_millis() as u64,
            kind
        )
        .map_err(|e| SupervisionError::Unreachable(e.to_string()))
    }

    pub fn counts(&self) -> &ActorCounts {
        &self.counts
    }

    pub fn processes(&self) -> &Processes {
        &self.processes
    }

    /// Whether the root is running (it stops only at shutdown or when a branch
    /// keeps failing past its restart limit).
    pub fn is_running(&self) -> bool {
        ractor::ACTIVE_STATES.contains(&self.root.get_status())
    }

    /// Stops every actor, leaves first, then kills and reaps every child
    /// process still alive. Waits at most `timeout` for each of the two steps.
    pub async fn shutdown(&self, timeout: Duration) {
        if let Err(err) = self
            .root
            .stop_and_wait(Some("shutdown".into()), Some(timeout))
            .await
        {
            tracing::warn!(%err, "supervision tree did not stop in time");
        }
        let left = self.processes.kill_all_and_wait(timeout).await;
        if left > 0 {
            tracing::warn!(left, "child processes not reaped at shutdown");
        }
    }
}
