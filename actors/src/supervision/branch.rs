//! A branch supervisor: the parent of every work actor of one kind.
//!
//! Policy: a branch never restarts its children and never stops because of
//! them. Work actors are sessions (an upload, a stream, a viewer) whose
//! retries belong to themselves or to their own parent (a transcode job
//! restarts its rungs); a session that ends or fails is logged, uncounted,
//! and touches nothing else.

use std::collections::HashSet;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::{ActorCounts, BranchKind};

pub struct Branch;

pub struct BranchArgs {
    pub kind: BranchKind,
    pub counts: ActorCounts,
}

pub struct BranchState {
    kind: BranchKind,
    counts: ActorCounts,
    children: HashSet<ActorId>,
}

impl BranchState {
    fn forget(&mut self, cell: &ractor::ActorCell) {
        if self.children.remove(&cell.get_id()) {
            self.counts.add(self.kind, -1);
        }
    }
}

pub enum BranchMsg {
    /// How many work actors this branch supervises now.
    Children(RpcReplyPort<usize>),
}

impl Actor for Branch {
    type Msg = BranchMsg;
    type State = BranchState;
    type Arguments = BranchArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<BranchMsg>,
        args: BranchArgs,
    ) -> Result<BranchState, ActorProcessingErr> {
        Ok(BranchState {
            kind: args.kind,
            counts: args.counts,
            children: HashSet::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<BranchMsg>,
        message: BranchMsg,
        state: &mut BranchState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BranchMsg::Children(reply) => {
                let _ = reply.send(state.children.len());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<BranchMsg>,
        event: SupervisionEvent,
        state: &mut BranchState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorStarted(cell) if state.children.insert(cell.get_id()) => {
                state.counts.add(state.kind, 1);
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                state.forget(&cell);
                tracing::debug!(branch = %state.kind, actor = ?cell.get_name(), ?reason, "work actor stopped");
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                state.forget(&cell);
                tracing::warn!(branch = %state.kind, actor = ?cell.get_name(), %err, "work actor failed");
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<BranchMsg>,
        state: &mut BranchState,
    ) -> Result<(), ActorProcessingErr> {
        state.counts.add(state.kind, -(state.children.len() as i64));
        state.children.clear();
        Ok(())
    }
}
