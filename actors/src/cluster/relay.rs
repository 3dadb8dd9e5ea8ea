//! Events across nodes: each node sends the events it publishes to the
//! PostgreSQL channel [`CHANNEL`] (`pg_notify`, delivered to every
//! listening session in commit order) and delivers the ones other nodes
//! sent to its own subscribers, so an SSE or WebSocket client on any node
//! sees every upload and asset event, whichever node produced it.
//!
//! The relay runs as a periodic task of the supervision tree whose every
//! run relays for [`RUN`] and returns, so shutdown never waits on it and a
//! panic restarts it under the root's policy; its connections live across
//! runs. `LISTEN` reconnects by itself when its connection drops;
//! notifications sent meanwhile are lost (PostgreSQL keeps none for a
//! session that is gone), which is logged.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::{Mutex, mpsc};

use crate::events::{Event, EventBus};
use crate::supervision::PeriodicTask;

/// The notification channel of every node's events.
pub const CHANNEL: &str = "streamforge_events";

/// How long one run of the relay lasts.
const RUN: Duration = Duration::from_secs(1);

/// PostgreSQL refuses a `NOTIFY` payload of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7999;

/// What goes through the channel: the event and the node it came from.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    node: String,
    event: Event,
}

/// Why the relay cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the events of this node are relayed already")]
    Taken,
    #[error("the event relay cannot reach PostgreSQL: {0}")]
    Connect(#[from] sqlx::Error),
}

struct Relay {
    node: String,
    events: EventBus,
    outbound: mpsc::Receiver<Event>,
    pool: PgPool,
    listener: Option<PgListener>,
}

/// The periodic task that relays `events` between this node (`node`) and
/// the others through the PostgreSQL database at `url`.
pub async fn relay_task(
    url: &str,
    node: &str,
    events: &EventBus,
) -> Result<PeriodicTask, RelayError> {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    let outbound = events.relay().ok_or(RelayError::Taken)?;
    let relay = Arc::new(Mutex::new(Relay {
        node: node.to_owned(),
        events: events.clone(),
        outbound,
        pool,
        listener: Some(listener),
    }));
    Ok(PeriodicTask {
        name: "event-relay",
        every: Duration::ZERO,
        job: Arc::new(move || {
            let relay = relay.clone();
            Box::pin(async move { relay.lock().await.run(RUN).await })
        }),
    })
}

impl Relay {
    /// Sends this node's events and delivers the others' for `run`.
    async fn run(&mut self, run: Duration) {
        let deadline = tokio::time::Instant::now() + run;
        if self.listener.is_none() {
            self.listener = self.listen().await;
        }
        loop {
            let Some(listener) = self.listener.as_mut() else {
                // PostgreSQL is unreachable: send what can be sent and try
                // listening again at the next run.
                tokio::time::sleep_until(deadline).await;
                return;
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                event = self.outbound.recv() => match event {
                    Some(event) => self.send(event).await,
                    None => return,
                },
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => self.deliver(notification.payload()),
                    Ok(None) => tracing::warn!(
                        "event relay: the LISTEN connection dropped; events other nodes sent meanwhile are lost"
                    ),
                    Err(err) => {
                        tracing::warn!(%err, "event relay: cannot receive; listening again at the next run");
                        self.listener = None;
                    }
                },
            }
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        listener.listen(CHANNEL).await.ok()?;
        Some(listener)
    }

    async fn send(&self, event: Event) {
        let envelope = Envelope {
            node: self.node.clone(),
            event,
        };
        let Ok(payload) = serde_json::to_string(&envelope) else {
            return;
        };
        if payload.len() > MAX_PAYLOAD {
            tracing::warn!(
                bytes = payload.len(),
                "event relay: an event too large for NOTIFY stays on this node"
            );
            return;
        }
        if let Err(err) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(&payload)
            .execute(&self.pool)
            .await
        {
            tracing::warn!(%err, "event relay: an event did not reach the other nodes");
        }
    }

    fn deliver(&self, payload: &str) {
        match serde_json::from_str::<Envelope>(payload) {
            // Its own events reached this node's subscribers already.
            Ok(envelope) if envelope.node == self.node => {}
            Ok(envelope) => self.events.deliver(envelope.event),
            Err(err) => tracing::warn!(%err, "event relay: a notification that is not an event"),
        }
    }
}
