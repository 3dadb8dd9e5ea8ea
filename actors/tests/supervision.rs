//! The supervision tree's policies, checked by failing and killing its actors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use streamforge_actors::process::{Processes, piped};
use streamforge_actors::supervision::{
    BranchKind, BranchMsg, MAX_RESTARTS, PeriodicTask, Supervision,
};

/// A work actor that fails when told to.
struct Worker;

impl Actor for Worker {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(&self, _: ActorRef<()>, _: (), _: &mut ()) -> Result<(), ActorProcessingErr> {
        Err("worker told to fail".into())
    }
}

async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..300 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn children(branch: &ActorRef<BranchMsg>) -> usize {
    ractor::call_t!(branch, BranchMsg::Children, 1000).unwrap()
}

#[tokio::test]
async fn a_failing_work_actor_touches_nothing_else() {
    let tree = Supervision::start(Processes::new()).await.unwrap();
    let uploads = tree.branch(BranchKind::Uploads).await.unwrap();

    let (a, _) = Actor::spawn_linked(None, Worker, (), uploads.get_cell())
        .await
        .unwrap();
    let (b, _) = Actor::spawn_linked(None, Worker, (), uploads.get_cell())
        .await
        .unwrap();
    assert!(eventually(async || children(&uploads).await == 2).await);
    assert_eq!(tree.counts().get(BranchKind::Uploads), 2);

    a.cast(()).unwrap();
    assert!(eventually(async || tree.counts().get(BranchKind::Uploads) == 1).await);
    assert_eq!(b.get_status(), ractor::ActorStatus::Running);
    let same = tree.branch(BranchKind::Uploads).await.unwrap();
    assert_eq!(
        same.get_id(),
        uploads.get_id(),
        "the branch must not restart"
    );
    assert!(tree.is_running());

    tree.shutdown(Duration::from_secs(5)).await;
    assert_eq!(b.get_status(), ractor::ActorStatus::Stopped);
    assert_eq!(tree.counts().get(BranchKind::Uploads), 0);
}

#[tokio::test]
async fn a_killed_branch_is_restarted() {
    let tree = Supervision::start(Processes::new()).await.unwrap();
    let live = tree.branch(BranchKind::Live).await.unwrap();
    let viewers = tree.branch(BranchKind::Viewers).await.unwrap();
    live.kill();
    assert!(
        eventually(async || match tree.branch(BranchKind::Live).await {
            Ok(now) => now.get_id() != live.get_id(),
            Err(_) => false,
        })
        .await,
        "the live branch was not restarted"
    );
    assert_eq!(
        tree.branch(BranchKind::Viewers).await.unwrap().get_id(),
        viewers.get_id()
    );
    assert!(tree.is_running());
    tree.shutdown(Duration::from_secs(5)).await;
    assert!(!tree.is_running());
}

/// A work actor that owns a child process for its whole life, as a rung does.
struct ProcessOwner;

impl Actor for ProcessOwner {
    type Msg = ();
    type State = streamforge_actors::process::ChildProcess;
    type Arguments = Processes;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        processes: Processes,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut command = piped("sleep");
        command.arg("1000");
        Ok(processes.spawn("sleep", command)?)
    }
}

#[tokio::test]
async fn shutdown_reaps_child_processes() {
    let processes = Processes::new();
    let tree = Supervision::start(processes.clone()).await.unwrap();
    let transcodes = tree.branch(BranchKind::Transcodes).await.unwrap();
    let (owner, _) =
        Actor::spawn_linked(None, ProcessOwner, processes.clone(), transcodes.get_cell())
            .await
            .unwrap();
    let live = processes.snapshot();
    assert_eq!(live.len(), 1);
    let pid = live[0].0;
    tree.shutdown(Duration::from_secs(5)).await;
    assert_eq!(owner.get_status(), ractor::ActorStatus::Stopped);
    assert!(processes.is_empty());
    assert!(
        eventually(async || !std::path::Path::new(&format!("/proc/{pid}")).exists()).await,
        "sleep {pid} survived shutdown (or was left a zombie)"
    );
}

#[tokio::test]
async fn the_root_gives_up_after_five_branch_restarts_within_a_minute() {
    let tree = Supervision::start(Processes::new()).await.unwrap();
    for restart in 1..=MAX_RESTARTS {
        let live = tree.branch(BranchKind::Live).await.unwrap();
        live.kill();
        assert!(
            eventually(async || match tree.branch(BranchKind::Live).await {
                Ok(now) => now.get_id() != live.get_id(),
                Err(_) => false,
            })
            .await,
            "restart {restart} did not happen"
        );
    }
    assert!(tree.is_running(), "five restarts are within the limit");
    // The sixth stop within the window is one too many: the root stops,
    // which the server treats as fatal.
    tree.branch(BranchKind::Live).await.unwrap().kill();
    tokio::time::timeout(Duration::from_secs(10), tree.stopped())
        .await
        .expect("the root stops");
    assert!(!tree.is_running());
    tree.shutdown(Duration::from_secs(5)).await;
}

fn counting_task(
    name: &'static str,
    runs: &Arc<AtomicU32>,
    fails: impl Fn(u32) -> bool + Send + Sync + 'static,
) -> PeriodicTask {
    let runs = runs.clone();
    PeriodicTask {
        name,
        every: Duration::from_millis(20),
        job: Arc::new(move || {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(!fails(run), "{name}: run {run} fails");
            Box::pin(std::future::ready(()))
        }),
    }
}

#[tokio::test]
async fn a_periodic_task_that_panics_is_restarted_and_runs_on() {
    let tree = Supervision::start(Processes::new()).await.unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    tree.every(counting_task("flaky", &runs, |run| run == 3))
        .await
        .unwrap();
    // A second task of the same name is the same task.
    tree.every(counting_task("flaky", &runs, |_| true))
        .await
        .unwrap();
    assert!(
        eventually(async || runs.load(Ordering::SeqCst) >= 10).await,
        "the task stopped after {} runs",
        runs.load(Ordering::SeqCst)
    );
    assert!(tree.is_running());
    tree.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_periodic_task_that_keeps_panicking_stops_the_root() {
    let tree = Supervision::start(Processes::new()).await.unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    tree.every(counting_task("broken", &runs, |_| true))
        .await
        .unwrap();
    // Backoffs of 0.1, 0.2, 0.4, 0.8 and 1.6 s, then the sixth failure.
    tokio::time::timeout(Duration::from_secs(10), tree.stopped())
        .await
        .expect("the root stops");
    assert_eq!(runs.load(Ordering::SeqCst), MAX_RESTARTS as u32 + 1);
    tree.shutdown(Duration::from_secs(5)).await;
}
