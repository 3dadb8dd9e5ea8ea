//! A periodic task: an actor that runs one job at start and then every
//! interval, under the [`Root`](super::Root).
//!
//! The job reports its own errors (logs them) and goes on at the next
//! tick; a job that panics fails the actor, and the root restarts it with
//! the backoff and limit it applies to branches. The next run is scheduled
//! when one ends, so a slow run never piles ticks up.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef};

/// One run of a periodic task.
pub type PeriodicJob = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// What a periodic task does, and how often.
#[derive(Clone)]
pub struct PeriodicTask {
    /// Names the task in logs and errors.
    pub name: &'static str,
    pub every: Duration,
    pub job: PeriodicJob,
}

impl std::fmt::Debug for PeriodicTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeriodicTask")
            .field("name", &self.name)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

pub struct Periodic;

pub enum PeriodicMsg {
    Run,
}

impl Actor for Periodic {
    type Msg = PeriodicMsg;
    type State = PeriodicTask;
    type Arguments = PeriodicTask;

    async fn pre_start(
        &self,
        myself: ActorRef<PeriodicMsg>,
        task: PeriodicTask,
    ) -> Result<PeriodicTask, ActorProcessingErr> {
        myself.send_message(PeriodicMsg::Run)?;
        Ok(task)
    }

    async fn handle(
        &self,
        myself: ActorRef<PeriodicMsg>,
        PeriodicMsg::Run: PeriodicMsg,
        task: &mut PeriodicTask,
    ) -> Result<(), ActorProcessingErr> {
        (task.job)().await;
        myself.send_after(task.every, || PeriodicMsg::Run);
        Ok(())
    }
}
