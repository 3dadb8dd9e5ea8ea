//! Webhooks: signed HTTP callbacks to other systems when something
//! happens here, per the Standard Webhooks specification
//! (<https://www.standardwebhooks.com>).
//!
//! ```text
//! state change ─┬─ one transaction ─▶ webhook_events (+ one delivery per
//!               │                     subscribed endpoint, in order)
//!               ▼
//!   Sender (periodic, every node): claims an endpoint with a due head
//!   delivery, sends its deliveries one at a time in order, logs each
//!   attempt, schedules retries with exponential backoff, gives up and
//!   disables the endpoint after `give_up_after` of failures.
//! ```
//!
//! An event is written by the database call that makes the change it
//! reports ([`enqueue`] inside its transaction): a committed change has
//! its event, and a crash loses neither. Delivery is at least once: a
//! node that dies after a receiver answered but before the answer was
//! recorded leaves the delivery to be sent again, under the same
//! `webhook-id` (the receiver's idempotency key).

pub mod endpoints;
pub mod sender;

pub use endpoints::{
    Attempt, Delivery, DeliveryState, Endpoint, EndpointError, EndpointSpec, InvalidEndpoint,
    NewEndpoint,
};
pub use sender::{DeliverySettings, Sender};

use serde::{Deserialize, Serialize};
use streamforge_protocols::hls::UnixMillis;

use crate::clock;
use crate::db::{Database, DbError};

/// What a webhook reports: the `type` of its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum EventType {
    /// A resumable or one-shot upload was created.
    #[serde(rename = "upload.created")]
    UploadCreated,
    /// Every byte of an upload arrived and is stored.
    #[serde(rename = "upload.completed")]
    UploadCompleted,
    /// An asset's preview plays (while its processing, or its upload, goes on).
    #[serde(rename = "asset.preview_ready")]
    AssetPreviewReady,
    /// Every rung of an asset is packaged.
    #[serde(rename = "asset.ready")]
    AssetReady,
    /// An asset's processing, or a recording, failed.
    #[serde(rename = "asset.failed")]
    AssetFailed,
    #[serde(rename = "asset.deleted")]
    AssetDeleted,
    /// A publish began a live stream (not a publisher coming back within
    /// the reconnect grace, nor one moving to another node).
    #[serde(rename = "live.started")]
    LiveStarted,
    /// A live stream ended: its publisher did not come back, or its key
    /// was revoked.
    #[serde(rename = "live.ended")]
    LiveEnded,
    /// The recording of a live stream is an asset ready to play.
    #[serde(rename = "recording.ready")]
    RecordingReady,
    /// An endpoint failed for too long, or answered 410 Gone, and was
    /// disabled.
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::UploadCreated,
        EventType::UploadCompleted,
        EventType::AssetPreviewReady,
        EventType::AssetReady,
        EventType::AssetFailed,
        EventType::AssetDeleted,
        EventType::LiveStarted,
        EventType::LiveEnded,
        EventType::RecordingReady,
        EventType::WebhookDisabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UploadCreated => "upload.created",
            EventType::UploadCompleted => "upload.completed",
            EventType::AssetPreviewReady => "asset.preview_ready",
            EventType::AssetReady => "asset.ready",
            EventType::AssetFailed => "asset.failed",
            EventType::AssetDeleted => "asset.deleted",
            EventType::LiveStarted => "live.started",
            EventType::LiveEnded => "live.ended",
            EventType::RecordingReady => "recording.ready",
            EventType::WebhookDisabled => "webhook.disabled",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event to report: its type and the `data` of its payload.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEvent {
    pub kind: EventType,
    pub data: serde_json::Value,
}

impl WebhookEvent {
    pub fn new(kind: EventType, data: serde_json::Value) -> Self {
        WebhookEvent { kind, data }
    }
}

/// The `LIKE` pattern matching an endpoint's `events` column for `kind`.
fn subscribed_pattern(kind: EventType) -> String {
    format!("%,{kind},%")
}

/// Endpoints subscribed to the type bound at `$n`: enabled, and listing it
/// or every type.
fn subscribed(n: u8) -> String {
    format!("disabled_at IS NULL AND (events = '*' OR events LIKE ${n})")
}

/// Writes `event` into the outbox, with a delivery for each endpoint
/// subscribed to its type, on `conn` (the transaction of the change it
/// reports). Nothing is written when no endpoint wants it. `only_if` is a
/// condition (SQL over bound parameters `$6` and `$7`) the event is
/// written under, in the same statement.
pub(crate) async fn enqueue_if(
    conn: &mut sqlx::AnyConnection,
    event: &WebhookEvent,
    only_if: Option<(&str, &str, &str)>,
) -> Result<bool, sqlx::Error> {
    let now = clock::now_ms();
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let payload = serde_json::json!({
        "type": event.kind.as_str(),
        "timestamp": UnixMillis(now).iso8601().to_string(),
        "data": event.data,
    })
    .to_string();
    let (condition, first, second) =
        only_if.unwrap_or(("CAST($6 AS TEXT) = CAST($7 AS TEXT)", "", ""));
    let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhook_events (id, type, payload, created_at)
         SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS BIGINT)
         WHERE EXISTS (SELECT 1 FROM webhook_endpoints WHERE {})
           AND ({condition})",
        subscribed(5)
    )))
    .bind(&id)
    .bind(event.kind.as_str())
    .bind(&payload)
    .bind(now)
    .bind(subscribed_pattern(event.kind))
    .bind(first)
    .bind(second)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    // On PostgreSQL, concurrent transactions take delivery numbers (seq)
    // before they commit: holding the subscribed endpoints' rows until
    // this one commits makes seq order the commit order, which is the
    // order the sender goes by. (SQLite has one writer at a time.)
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM webhook_endpoints WHERE {} ORDER BY id FOR UPDATE",
            subscribed(1)
        )))
        .bind(subscribed_pattern(event.kind))
        .fetch_all(&mut *conn)
        .await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, state, attempts, next_attempt_at)
         SELECT id, CAST($1 AS TEXT), 'pending', 0, CAST($2 AS BIGINT)
         FROM webhook_endpoints WHERE {} ORDER BY id",
        subscribed(3)
    )))
    .bind(&id)
    .bind(now)
    .bind(subscribed_pattern(event.kind))
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// [`enqueue_if`] with no condition.
pub(crate) async fn enqueue(
    conn: &mut sqlx::AnyConnection,
    event: &WebhookEvent,
) -> Result<bool, sqlx::Error> {
    enqueue_if(conn, event, None).await
}

impl Database {
    /// Reports an event no other write goes with (a live stream began).
    pub async fn report(&self, event: &WebhookEvent) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await?;
        enqueue(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Reports that `node`'s live stream `stream` ended, unless another
    /// node owns it now (its publisher moved there: it goes on).
    pub async fn report_live_ended(
        &self,
        stream: &str,
        node: &str,
        reason: &str,
    ) -> Result<bool, DbError> {
        let mut tx = self.pool().begin().await?;
        let event = WebhookEvent::new(
            EventType::LiveEnded,
            serde_json::json!({ "stream": stream, "node": node, "reason": reason }),
        );
        let owned = "EXISTS (SELECT 1 FROM live_owners WHERE stream = $6 AND node = $7)";
        let written = enqueue_if(&mut tx, &event, Some((owned, stream, node))).await?;
        tx.commit().await?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_read_back_and_serialize_as_their_names() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(kind.as_str())
            );
            // Standard Webhooks: full-stop delimited, [a-zA-Z0-9_] between.
            assert!(
                kind.as_str().split('.').all(|part| !part.is_empty()
                    && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')),
                "{kind}"
            );
        }
        assert_eq!(EventType::parse("asset.done"), None);
    }
}
