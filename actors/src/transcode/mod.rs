//! Processing of uploaded assets: one [`Job`] per asset under the
//! `transcodes` branch, probing the original with ffprobe and making its
//! ladder with supervised [`Rung`]s (each an ffmpeg child whose fragmented
//! MP4 output is packaged as CMAF as it is produced), then one multivariant
//! playlist and one MPD over every rung.
//!
//! Not built yet: the preview while an upload is still arriving (the
//! growing source), a ladder from the config file, storyboards.

mod job;
mod rung;

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
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder").finish_non_exhaustive()
    }
}

impl Transcoder {
    pub fn new(db: Database, storage: Storage, supervision: Supervision, events: EventBus) -> Self {
        let processes = supervision.processes().clone();
        Transcoder {
            db,
            events,
            storage,
            processes,
            supervision,
        }
    }

    /// Starts processing `asset`; its status moves to `processing`, then
    /// `ready` or `failed`.
    pub async fn start(&self, asset: &str) {
        let branch = match self.supervision.branch(BranchKind::Transcodes).await {
            Ok(branch) => branch,
            Err(err) => {
                tracing::error!(asset, %err, "cannot start processing");
                return;
            }
        };
        let args = job::JobArgs {
            asset: asset.to_owned(),
            transcoder: self.clone(),
        };
        if let Err(err) = Actor::spawn_linked(None, Job, args, branch.get_cell()).await {
            tracing::error!(asset, %err, "cannot start processing");
        }
    }

    /// Restarts processing of assets a previous run left unfinished.
    pub async fn resume_unfinished(&self) {
        match self.db.unfinished_assets().await {
            Ok(assets) => {
                for asset in assets {
                    tracing::info!(%asset, "resuming processing");
                    self.start(&asset).await;
                }
            }
            Err(err) => tracing::error!(%err, "cannot list unfinished assets"),
        }
    }
}
