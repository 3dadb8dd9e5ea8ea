//! The life of a live stream, in one actor per stream (`LiveStreamActor`,
//! under the live branch): publish, unpublish, the reconnect grace, a
//! kick, and what a publish brings along (its recording, a new
//! presentation's ladder).
//!
//! ```text
//! ingest ──Publish──▶ LiveStreamActor ──▶ LiveStream { Mutex<State> }  ◀── viewers read
//!   │                    │  Publish     → a Recorder (linked child) when recording
//!   │                    │  Unpublished → end its recording; pause (recorded in
//!   │                    │                live_owners: another node may take the
//!   │ samples            │                stream over), GraceOver after
//!   │                    │                live.reconnect_grace
//!   ├────────────────────┼─▶ Publisher::push (packager, under the lock)
//!   └─▶ RecorderFeed ────┼─▶ Recorder (bounded by the feed: drops and counts)
//!                        │  GraceOver   → end (unless published again)
//!                        │  Kick        → end now (a revoked key)
//!                        └  StartLadder → a Ladder for the new presentation
//! ```
//!
//! The data path stays off the mailbox: a publisher packages its samples
//! under the stream's lock and viewers read the packager's shared `Bytes`.
//! The actor owns every transition and every timer (a `send_after` dies
//! with it); a [`Publisher`] only tells it that it left.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::owners::Takeover;
use super::record::{RecorderMsg, Recording};
use super::stream::{LiveStream, Publisher};
use super::{IngestProtocol, PublishError};
use crate::db::Database;
use crate::webhooks::{EventType, WebhookEvent};

/// What a stream's actor is told.
pub enum LiveStreamMsg {
    /// A publisher asks to publish; answered with its [`Publisher`].
    Publish {
        protocol: IngestProtocol,
        remote: String,
        /// Replace a live publisher instead of refusing.
        replace: bool,
        /// The presentation this publish continues, taken over from
        /// another node.
        takeover: Option<Takeover>,
        reply: RpcReplyPort<Result<Publisher, PublishError>>,
    },
    /// Publisher `generation` left (it finished, or was dropped).
    Unpublished { generation: u64 },
    /// The reconnect grace of publisher `generation` is over.
    GraceOver { generation: u64 },
    /// End the publish now (its key was revoked).
    Kick,
    /// Presentation `presentation` began: start its ladder, if any.
    StartLadder { presentation: u64 },
}

pub struct LiveStreamActor;

pub struct LiveStreamArgs {
    pub stream: Arc<LiveStream>,
    pub recording: Option<Recording>,
    pub reconnect_grace: Duration,
    /// Where this node records the streams it owns (`live_owners`).
    pub db: Database,
    pub node: String,
}

pub struct LiveStreamState {
    args: LiveStreamArgs,
    /// The recorder of each publish being recorded, by its generation.
    recorders: HashMap<u64, ActorRef<RecorderMsg>>,
}

impl LiveStreamState {
    /// Reports a publish that starts the stream (`live.started`), after
    /// the end of the one it replaced, to webhooks.
    async fn report_begin(&self, publisher: &Publisher, protocol: IngestProtocol) {
        let (replaced, starts) = publisher.began();
        if replaced {
            self.report_end("replaced").await;
        }
        if !starts {
            return;
        }
        let (db, node) = (&self.args.db, &self.args.node);
        let stream = self.args.stream.name();
        let event = WebhookEvent::new(
            EventType::LiveStarted,
            serde_json::json!({ "stream": stream, "node": node, "protocol": protocol }),
        );
        if let Err(err) = db.report(&event).await {
            tracing::warn!(%stream, %err, "live.started not reported to webhooks");
        }
    }

    /// Reports the end of the stream (`live.ended`) to webhooks, unless
    /// another node owns it now.
    async fn report_end(&self, reason: &str) {
        let (db, node) = (&self.args.db, &self.args.node);
        let stream = self.args.stream.name();
        if let Err(err) = db.report_live_ended(stream, node, reason).await {
            tracing::warn!(%stream, %err, "live.ended not reported to webhooks");
        }
    }
}

impl Actor for LiveStreamActor {
    type Msg = LiveStreamMsg;
    type State = LiveStreamState;
    type Arguments = LiveStreamArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<LiveStreamMsg>,
        args: LiveStreamArgs,
    ) -> Result<LiveStreamState, ActorProcessingErr> {
        Ok(LiveStreamState {
            args,
            recorders: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<LiveStreamMsg>,
        message: LiveStreamMsg,
        state: &mut LiveStreamState,
    ) -> Result<(), ActorProcessingErr> {
        let stream = &state.args.stream;
        match message {
            LiveStreamMsg::Publish {
                protocol,
                remote,
                replace,
                takeover,
                reply,
            } => {
                let begun = stream.begin(&myself, protocol, remote, replace, takeover);
                if let Ok(publisher) = &begun {
                    state.report_begin(publisher, protocol).await;
                }
                let answer = match (begun, &state.args.recording) {
                    (Ok(mut publisher), Some(recording)) => {
                        let started = recording.start(stream.name(), myself.get_cell()).await;
                        if let Some((feed, recorder)) = started {
                            state.recorders.insert(publisher.generation(), recorder);
                            publisher.set_recorder(feed);
                        }
                        Ok(publisher)
                    }
                    (begun, _) => begun,
                };
                // A publisher nobody waits for any more is dropped, which
                // tells this actor it left.
                let _ = reply.send(answer);
            }
            LiveStreamMsg::Unpublished { generation } => {
                // The publisher's samples were all sent before it left.
                if let Some(recorder) = state.recorders.remove(&generation) {
                    let _ = recorder.cast(RecorderMsg::End);
                }
                if stream.unpublish(generation) {
                    // Another node may take the stream over from now on,
                    // should the publisher reconnect there.
                    let (db, node) = (&state.args.db, &state.args.node);
                    let name = stream.name();
                    match db
                        .renew_live_stream(name, node, stream.owner_record())
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::info!(stream = %name, "another node owns the stream now")
                        }
                        Err(err) => {
                            tracing::warn!(stream = %name, %err, "stream ownership not recorded")
                        }
                    }
                    myself.send_after(state.args.reconnect_grace, move || {
                        LiveStreamMsg::GraceOver { generation }
                    });
                }
            }
            LiveStreamMsg::GraceOver { generation } => {
                if stream.end_unless_republished(generation) {
                    state.report_end("publisher_left").await;
                }
            }
            LiveStreamMsg::Kick => {
                if stream.kick() {
                    state.report_end("key_revoked").await;
                }
            }
            LiveStreamMsg::StartLadder { presentation } => {
                stream.start_ladder(presentation).await;
            }
        }
        Ok(())
    }

    /// Its children are the recorders; one stopping leaves the stream be.
    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<LiveStreamMsg>,
        event: SupervisionEvent,
        state: &mut LiveStreamState,
    ) -> Result<(), ActorProcessingErr> {
        let stream = state.args.stream.name();
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.recorders.retain(|_, r| r.get_id() != cell.get_id());
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                state.recorders.retain(|_, r| r.get_id() != cell.get_id());
                tracing::error!(%stream, %err, "recorder failed");
            }
            _ => {}
        }
        Ok(())
    }
}
