//! The root supervisor.
//!
//! Policy: the root starts one [`Branch`] per [`BranchKind`] in `pre_start`,
//! and the [`Periodic`] tasks it is given later. A branch or task that stops
//! without the root asking for it (it failed, or was killed) is restarted
//! after a backoff of 100 ms, doubling per restart, at most
//! [`MAX_RESTARTS`] times within [`RESTART_WINDOW`]; past that the root
//! stops with an error, which the server treats as fatal. Stopping the root
//! stops its children first, then kills and reaps any child process left.

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::backoff::Backoff;
use super::branch::{Branch, BranchArgs, BranchMsg};
use super::periodic::{Periodic, PeriodicMsg, PeriodicTask};
use super::{ActorCounts, BranchKind};
use crate::process::Processes;

pub const MAX_RESTARTS: usize = 5;
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Root;

pub struct RootArgs {
    pub counts: ActorCounts,
    pub processes: Processes,
}

pub struct RootState {
    counts: ActorCounts,
    processes: Processes,
    branches: HashMap<BranchKind, ActorRef<BranchMsg>>,
    tasks: HashMap<&'static str, (ActorRef<PeriodicMsg>, PeriodicTask)>,
    /// Each child's restarts, for the backoff and the limit.
    restarts: HashMap<Child, Backoff>,
}

/// A child of the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Child {
    Branch(BranchKind),
    Task(&'static str),
}

impl std::fmt::Display for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Child::Branch(kind) => write!(f, "branch {kind}"),
            Child::Task(name) => write!(f, "periodic task {name}"),
        }
    }
}

pub enum RootMsg {
    /// The current branch of a kind.
    Branch(BranchKind, RpcReplyPort<ActorRef<BranchMsg>>),
    /// Start a periodic task (one per name: a second replaces nothing).
    Every(PeriodicTask, RpcReplyPort<()>),
    /// Restart a child after its backoff.
    Restart(Child),
}

impl Root {
    async fn spawn_branch(
        myself: &ActorRef<RootMsg>,
        state: &mut RootState,
        kind: BranchKind,
    ) -> Result<(), ActorProcessingErr> {
        let (branch, _join) = Actor::spawn_linked(
            None,
            Branch,
            BranchArgs {
                kind,
                counts: state.counts.clone(),
            },
            myself.get_cell(),
        )
        .await?;
        state.branches.insert(kind, branch);
        Ok(())
    }

    async fn spawn_task(
        myself: &ActorRef<RootMsg>,
        state: &mut RootState,
        task: PeriodicTask,
    ) -> Result<(), ActorProcessingErr> {
        let (actor, _join) =
            Actor::spawn_linked(None, Periodic, task.clone(), myself.get_cell()).await?;
        state.tasks.insert(task.name, (actor, task));
        Ok(())
    }

    async fn spawn(
        myself: &ActorRef<RootMsg>,
        state: &mut RootState,
        child: Child,
    ) -> Result<(), ActorProcessingErr> {
        match child {
            Child::Branch(kind) => Root::spawn_branch(myself, state, kind).await,
            Child::Task(name) => match state.tasks.get(name) {
                Some((_, task)) => Root::spawn_task(myself, state, task.clone()).await,
                None => Ok(()),
            },
        }
    }

    fn child_of(state: &RootState, cell: &ractor::ActorCell) -> Option<Child> {
        let id = cell.get_id();
        let branch = state
            .branches
            .iter()
            .find(|(_, branch)| branch.get_id() == id)
            .map(|(kind, _)| Child::Branch(*kind));
        branch.or_else(|| {
            state
                .tasks
                .iter()
                .find(|(_, (actor, _))| actor.get_id() == id)
                .map(|(name, _)| Child::Task(name))
        })
    }
}

impl Actor for Root {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RootMsg>,
        args: RootArgs,
    ) -> Result<RootState, ActorProcessingErr> {
        let mut state = RootState {
            counts: args.counts,
            processes: args.processes,
            branches: HashMap::new(),
            tasks: HashMap::new(),
            restarts: HashMap::new(),
        };
        for kind in BranchKind::ALL {
            Root::spawn_branch(&myself, &mut state, kind).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<RootMsg>,
        message: RootMsg,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RootMsg::Branch(kind, reply) => {
                if let Some(branch) = state.branches.get(&kind) {
                    // The caller may have timed out; nothing to do then.
                    let _ = reply.send(branch.clone());
                }
            }
            RootMsg::Every(task, reply) => {
                if !state.tasks.contains_key(task.name) {
                    Root::spawn_task(&myself, state, task).await?;
                }
                let _ = reply.send(());
            }
            RootMsg::Restart(child) => {
                tracing::info!(%child, "restarting");
                Root::spawn(&myself, state, child).await?;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RootMsg>,
        event: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match &event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.clone().unwrap_or_else(|| "stopped".into()))
            }
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            _ => return Ok(()),
        };
        let Some(child) = Root::child_of(state, cell) else {
            return Ok(());
        };
        if let Child::Branch(kind) = child {
            state.branches.remove(&kind);
        }
        tracing::error!(%child, %reason, "stopped unexpectedly");

        let backoff = state.restarts.entry(child).or_insert_with(|| {
            Backoff::new(FIRST_BACKOFF, MAX_BACKOFF).with_limit(MAX_RESTARTS, RESTART_WINDOW)
        });
        let Some(backoff) = backoff.next_delay() else {
            return Err(format!(
                "{child} stopped {} times within {RESTART_WINDOW:?}; giving up",
                MAX_RESTARTS + 1
            )
            .into());
        };
        myself.send_after(backoff, move || RootMsg::Restart(child));
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<RootMsg>,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        myself
            .stop_children_and_wait(Some("shutdown".into()), Some(STOP_TIMEOUT))
            .await;
        let left = state.processes.kill_all_and_wait(STOP_TIMEOUT).await;
        if left > 0 {
            tracing::warn!(left, "child processes still alive after the tree stopped");
        }
        Ok(())
    }
}
