//! The status event bus: upload progress, processing stages, renditions
//! ready, assets ready or failed. SSE and WebSocket endpoints subscribe.
//!
//! A `tokio::sync::broadcast` channel of bounded capacity: publishing never
//! waits, and a subscriber that falls behind loses the oldest events (it is
//! told how many) rather than slowing anyone down.
//!
//! With several nodes, the events this node publishes also go out to the
//! others ([`crate::cluster::relay`], through a bounded queue that drops
//! and counts rather than wait), and theirs come in with
//! [`EventBus::deliver`], so that a subscriber on any node sees them all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

/// Events kept for slow subscribers before the oldest are dropped.
const CAPACITY: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Bytes of an upload became durable.
    UploadProgress {
        upload_id: String,
        offset: u64,
        length: Option<u64>,
    },
    /// An asset entered a stage (`uploading`, `uploaded`, `probing`,
    /// `transcoding`, `previewing`, `ready`, or `failed` with the reason).
    Stage {
        asset_id: String,
        upload_id: Option<String>,
        stage: crate::assets::Stage,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// One rung of an asset's ladder is packaged.
    RenditionReady { asset_id: String, rung: String },
    /// A chunk of a rung cut for several workers (segment-parallel
    /// encoding) is encoded and stored, by the node named.
    ChunkDone {
        asset_id: String,
        rung: String,
        chunk: i64,
        node: String,
    },
    /// The asset's poster exists (seconds into an upload still arriving).
    PosterReady {
        asset_id: String,
        upload_id: Option<String>,
        poster_url: String,
    },
    /// A webhook endpoint was disabled: it failed for too long, or its
    /// receiver answered 410 Gone.
    WebhookDisabled { endpoint: String, reason: String },
}

impl Event {
    /// Whether the event concerns `id` (an asset or an upload).
    pub fn concerns(&self, id: &str) -> bool {
        match self {
            Event::UploadProgress { upload_id, .. } => upload_id == id,
            Event::Stage {
                asset_id,
                upload_id,
                ..
            } => asset_id == id || upload_id.as_deref() == Some(id),
            Event::RenditionReady { asset_id, .. } | Event::ChunkDone { asset_id, .. } => {
                asset_id == id
            }
            Event::PosterReady {
                asset_id,
                upload_id,
                ..
            } => asset_id == id || upload_id.as_deref() == Some(id),
            Event::WebhookDisabled { endpoint, .. } => endpoint == id,
        }
    }
}

#[derive(Clone, Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
    /// This node's events on their way to the other nodes, once a relay
    /// takes them.
    outbound: Arc<OnceLock<mpsc::Sender<Event>>>,
    /// Events the other nodes never got because the queue was full.
    unrelayed: Arc<AtomicU64>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            sender: broadcast::channel(CAPACITY).0,
            outbound: Arc::default(),
            unrelayed: Arc::default(),
        }
    }
}

impl EventBus {
    /// Publishes an event of this node: to its subscribers, and to the
    /// other nodes when a relay runs.
    pub fn publish(&self, event: Event) {
        if let Some(outbound) = self.outbound.get()
            && outbound.try_send(event.clone()).is_err()
            && self.unrelayed.fetch_add(1, Ordering::Relaxed) == 0
        {
            tracing::warn!("events: the relay to the other nodes is behind; events are left out");
        }
        // No subscriber is not an error: nobody is watching.
        let _ = self.sender.send(event);
    }

    /// Delivers an event another node published, to this node's
    /// subscribers only.
    pub fn deliver(&self, event: Event) {
        let _ = self.sender.send(event);
    }

    /// Takes this node's events for the other nodes, from now on; `None`
    /// when a relay took them already.
    pub fn relay(&self) -> Option<mpsc::Receiver<Event>> {
        let (tx, rx) = mpsc::channel(CAPACITY);
        self.outbound.set(tx).ok()?;
        Some(rx)
    }

    /// Events the other nodes missed because the relay fell behind.
    pub fn unrelayed(&self) -> u64 {
        self.unrelayed.load(Ordering::Relaxed)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slow_subscribers_lose_old_events_not_new_ones() {
        let bus = EventBus::default();
        let mut slow = bus.subscribe();
        for offset in 0..(CAPACITY as u64 + 10) {
            bus.publish(Event::UploadProgress {
                upload_id: "u".into(),
                offset,
                length: None,
            });
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(10))
        ));
        let next = slow.recv().await.unwrap();
        assert_eq!(
            next,
            Event::UploadProgress {
                upload_id: "u".into(),
                offset: 10,
                length: None
            }
        );
    }

    #[test]
    fn events_serialise_with_their_type() {
        let event = Event::Stage {
            asset_id: "a".into(),
            upload_id: Some("u".into()),
            stage: crate::assets::Stage::Ready,
            error: None,
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"type":"stage","asset_id":"a","upload_id":"u","stage":"ready"}"#
        );
        assert!(event.concerns("u") && event.concerns("a") && !event.concerns("x"));
    }
}
