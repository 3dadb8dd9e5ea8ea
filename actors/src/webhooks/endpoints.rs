//! Webhook endpoints (from the configuration file or the API) and the
//! log of their deliveries.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use sqlx::Row;

use super::EventType;
use crate::clock;
use crate::db::{Database, DbError, to_u64};

/// Shortest signing key the specification allows (bytes).
const MIN_SECRET_BYTES: usize = 24;
/// Longest signing key the specification allows (bytes).
const MAX_SECRET_BYTES: usize = 64;
/// The prefix of a symmetric signing secret.
const SECRET_PREFIX: &str = "whsec_";
/// Longest endpoint URL accepted.
const MAX_URL_BYTES: usize = 2048;
/// Most deliveries one listing returns.
pub const MAX_DELIVERIES_LISTED: u32 = 100;

/// `[[webhooks]]` in the configuration file: an endpoint that exists as
/// long as the file names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Where events are POSTed (`http://` or `https://`).
    pub url: String,
    /// The event types sent there (`asset.ready`, `live.started`, …), or
    /// `["*"]` for every type.
    pub events: Vec<String>,
    /// The signing secret: `whsec_` and 24 to 64 bytes in base64, as the
    /// Standard Webhooks specification has it.
    pub secret: String,
    /// What the endpoint is for.
    #[serde(default)]
    pub description: Option<String>,
    /// A name that keeps the endpoint (its id, its deliveries waiting, its
    /// disabled state) when its URL changes; without one, an endpoint is
    /// known by its URL, and a new URL is a new endpoint.
    #[serde(default)]
    pub name: Option<String>,
}

/// An endpoint to create through the API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<String>,
    /// A secret of the caller's; one is made when absent.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// An endpoint as the API shows it (without its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    /// Its event types, or `["*"]`.
    pub events: Vec<String>,
    pub description: Option<String>,
    /// Defined in the configuration file (not deletable through the API).
    pub from_config: bool,
    pub created_at_ms: i64,
    /// When it was disabled, and why; `null` while it receives events.
    pub disabled_at_ms: Option<i64>,
    pub disabled_reason: Option<String>,
    /// Deliveries waiting to be sent (or sent again).
    pub pending: u64,
}

/// Why an endpoint's URL, event types or secret are refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEndpoint {
    #[error("a webhook secret starts with {SECRET_PREFIX}")]
    SecretPrefix,
    #[error("a webhook secret is {SECRET_PREFIX} and base64: {0}")]
    SecretEncoding(String),
    #[error("a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {0}")]
    SecretLength(usize),
    #[error("a webhook URL is at most {MAX_URL_BYTES} bytes")]
    UrlTooLong,
    #[error("invalid webhook URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("a webhook URL is http:// or https:// with a host, not {0:?}")]
    UrlScheme(String),
    #[error("an endpoint lists the event types it wants, or [\"*\"]")]
    NoEvents,
    #[error("unknown event type {unknown}; the types are {known}")]
    UnknownEvents { unknown: String, known: String },
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Invalid(#[from] InvalidEndpoint),
    #[error("no webhook endpoint {0}")]
    NotFound(String),
    #[error("webhook endpoint {0} is defined in the configuration file; remove it there")]
    FromConfig(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for EndpointError {
    fn from(err: sqlx::Error) -> Self {
        EndpointError::Db(err.into())
    }
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not sent yet, or to be sent again.
    Pending,
    Delivered,
    /// Given up on after failing for the configured time.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == value)
    }
}

/// One event's delivery to one endpoint, with its attempts.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// The event's id: the `webhook-id` header of every attempt.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: DeliveryState,
    pub created_at_ms: i64,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// The body sent, as JSON.
    pub payload: serde_json::Value,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
}

/// One attempt at a delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub at_ms: i64,
    pub node: String,
    pub duration_ms: u64,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why the attempt failed, when it did.
    pub error: Option<String>,
    /// The start of the receiver's answer.
    pub response: Option<String>,
}

/// A new signing secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// Checks a signing secret's form.
pub fn check_secret(secret: &str) -> Result<(), InvalidEndpoint> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or(InvalidEndpoint::SecretPrefix)?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| InvalidEndpoint::SecretEncoding(e.to_string()))?;
    if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
        return Err(InvalidEndpoint::SecretLength(key.len()));
    }
    Ok(())
}

/// Checks an endpoint URL: absolute `http` or `https` with a host.
pub fn check_url(url: &str) -> Result<(), InvalidEndpoint> {
    if url.len() > MAX_URL_BYTES {
        return Err(InvalidEndpoint::UrlTooLong);
    }
    let parsed = url::Url::parse(url).map_err(|e| InvalidEndpoint::Url {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(InvalidEndpoint::UrlScheme(url.to_owned()));
    }
    Ok(())
}

/// The `events` column for a list of types: `*`, or each type between
/// commas.
fn events_column(events: &[String]) -> Result<String, InvalidEndpoint> {
    if events.is_empty() {
        return Err(InvalidEndpoint::NoEvents);
    }
    if events.iter().any(|e| e == "*") {
        return Ok("*".to_owned());
    }
    let unknown: Vec<&str> = events
        .iter()
        .filter(|e| EventType::parse(e).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        return Err(InvalidEndpoint::UnknownEvents {
            unknown: unknown.join(", "),
            known: known.join(", "),
        });
    }
    Ok(format!(",{},", events.join(",")))
}

fn events_list(column: &str) -> Vec<String> {
    column
        .split(',')
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

impl EndpointSpec {
    /// Checks what the types alone cannot.
    pub fn check(&self) -> Result<(), InvalidEndpoint> {
        check_url(&self.url)?;
        events_column(&self.events)?;
        check_secret(&self.secret)
    }

    /// The stable id of a configured endpoint: from its name, else its URL.
    fn id(&self) -> String {
        let key = match &self.name {
            Some(name) => format!("name:{name}"),
            None => self.url.clone(),
        };
        let digest = sha2::Sha256::digest(key.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("cfg_{hex}")
    }
}

fn endpoint_from_row(row: &sqlx::any::AnyRow) -> Result<Endpoint, sqlx::Error> {
    Ok(Endpoint {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        events: events_list(&row.try_get::<String, _>("events")?),
        description: row.try_get("description")?,
        from_config: row.try_get::<i64, _>("from_config")? != 0,
        created_at_ms: row.try_get("created_at")?,
        disabled_at_ms: row.try_get("disabled_at")?,
        disabled_reason: row.try_get("disabled_reason")?,
        pending: to_u64(row.try_get("pending")?),
    })
}

const ENDPOINT_COLUMNS: &str = "e.id, e.url, e.events, e.description, e.from_config, e.created_at,
     e.disabled_at, e.disabled_reason,
     (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'pending') AS pending";

impl Database {
    /// Makes the configured endpoints those of `specs`: adds and updates
    /// them (a disabled one stays disabled), removes those no longer
    /// there.
    pub async fn sync_config_endpoints(&self, specs: &[EndpointSpec]) -> Result<(), EndpointError> {
        let configured: Vec<String> =
            sqlx::query_scalar("SELECT id FROM webhook_endpoints WHERE from_config = 1")
                .fetch_all(self.pool())
                .await?;
        let mut tx = self.pool().begin().await?;
        let mut ids = Vec::new();
        // In id order, as every transaction that locks several endpoints.
        let mut specs: Vec<&EndpointSpec> = specs.iter().collect();
        specs.sort_by_key(|spec| spec.id());
        for spec in specs {
            spec.check()?;
            let id = spec.id();
            sqlx::query(
                "INSERT INTO webhook_endpoints (id, url, events, secret, description, from_config, created_at)
                 VALUES ($1, $2, $3, $4, $5, 1, $6)
                 ON CONFLICT (id) DO UPDATE SET url = excluded.url, events = excluded.events,
                     secret = excluded.secret, description = excluded.description, from_config = 1",
            )
            .bind(&id)
            .bind(&spec.url)
            .bind(events_column(&spec.events)?)
            .bind(&spec.secret)
            .bind(&spec.description)
            .bind(clock::now_ms())
            .execute(&mut *tx)
            .await?;
            ids.push(id);
        }
        for gone in configured.iter().filter(|id| !ids.contains(id)) {
            sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
                .bind(gone)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Creates an endpoint; returns it and its secret.
    pub async fn create_webhook_endpoint(
        &self,
        new: NewEndpoint,
    ) -> Result<(Endpoint, String), EndpointError> {
        check_url(&new.url)?;
        let events = events_column(&new.events)?;
        let secret = match new.secret {
            Some(secret) => {
                check_secret(&secret)?;
                secret
            }
            None => new_secret(),
        };
        let id = format!("ep_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, url, events, secret, description, from_config, created_at)
             VALUES ($1, $2, $3, $4, $5, 0, $6)",
        )
        .bind(&id)
        .bind(&new.url)
        .bind(events)
        .bind(&secret)
        .bind(&new.description)
        .bind(clock::now_ms())
        .execute(self.pool())
        .await?;
        let endpoint = self
            .webhook_endpoint(&id)
            .await?
            .ok_or_else(|| EndpointError::NotFound(id.clone()))?;
        Ok((endpoint, secret))
    }

    pub async fn webhook_endpoints(&self) -> Result<Vec<Endpoint>, DbError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e ORDER BY e.created_at, e.id"
        )))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(endpoint_from_row)
            .collect::<Result<_, _>>()?)
    }

    pub async fn webhook_endpoint(&self, id: &str) -> Result<Option<Endpoint>, DbError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE e.id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(endpoint_from_row).transpose()?)
    }

    /// Deletes an endpoint made through the API, with its deliveries.
    pub async fn delete_webhook_endpoint(&self, id: &str) -> Result<(), EndpointError> {
        let endpoint = self
            .webhook_endpoint(id)
            .await?
            .ok_or_else(|| EndpointError::NotFound(id.to_owned()))?;
        if endpoint.from_config {
            return Err(EndpointError::FromConfig(id.to_owned()));
        }
        sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND from_config = 0")
            .bind(id)
            .execute(self.pool())
            .await?;
        self.forget_undelivered_events().await?;
        Ok(())
    }

    /// Enables a disabled endpoint again: its pending deliveries go out,
    /// starting now.
    pub async fn enable_webhook_endpoint(&self, id: &str) -> Result<Endpoint, EndpointError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL
             WHERE id = $1 AND disabled_at IS NOT NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // Enabled already (nothing changes), or none such.
            tx.rollback().await?;
            return self
                .webhook_endpoint(id)
                .await?
                .ok_or_else(|| EndpointError::NotFound(id.to_owned()));
        }
        // Its deliveries start over: due now, a fresh retry schedule.
        sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $1, first_failure_at = NULL, attempts = 0
             WHERE endpoint_id = $2 AND state = 'pending'",
        )
        .bind(clock::now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.webhook_endpoint(id)
            .await?
            .ok_or_else(|| EndpointError::NotFound(id.to_owned()))
    }

    /// The newest deliveries of an endpoint (at most `limit`, optionally
    /// in one state), newest first, each with its attempts.
    pub async fn webhook_deliveries(
        &self,
        endpoint: &str,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<Delivery>, EndpointError> {
        if self.webhook_endpoint(endpoint).await?.is_none() {
            return Err(EndpointError::NotFound(endpoint.to_owned()));
        }
        let rows = sqlx::query(
            "SELECT d.seq, d.event_id, ev.type, d.state, ev.created_at, d.next_attempt_at,
                    d.finished_at, ev.payload
             FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
             WHERE d.endpoint_id = $1 AND (CAST($2 AS TEXT) IS NULL OR d.state = $2)
             ORDER BY d.seq DESC LIMIT $3",
        )
        .bind(endpoint)
        .bind(state.map(DeliveryState::as_str))
        .bind(i64::from(limit.min(MAX_DELIVERIES_LISTED)))
        .fetch_all(self.pool())
        .await?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in &rows {
            let seq: i64 = row.try_get("seq")?;
            let state_text: String = row.try_get("state")?;
            let state = DeliveryState::parse(&state_text).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown delivery state {state_text:?}").into())
            })?;
            let payload: String = row.try_get("payload")?;
            deliveries.push(Delivery {
                id: row.try_get("event_id")?,
                kind: row.try_get("type")?,
                state,
                created_at_ms: row.try_get("created_at")?,
                next_attempt_at_ms: (state == DeliveryState::Pending)
                    .then(|| row.try_get("next_attempt_at"))
                    .transpose()?,
                finished_at_ms: row.try_get("finished_at")?,
                payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
                attempts: self.webhook_attempts(seq).await?,
            });
        }
        Ok(deliveries)
    }

    async fn webhook_attempts(&self, delivery: i64) -> Result<Vec<Attempt>, DbError> {
        let rows = sqlx::query(
            "SELECT node, attempted_at, duration_ms, status, error, response
             FROM webhook_attempts WHERE delivery_seq = $1 ORDER BY seq",
        )
        .bind(delivery)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Attempt {
                    at_ms: row.try_get("attempted_at")?,
                    node: row.try_get("node")?,
                    duration_ms: to_u64(row.try_get("duration_ms")?),
                    status: row
                        .try_get::<Option<i64>, _>("status")?
                        .and_then(|s| u16::try_from(s).ok()),
                    error: row.try_get("error")?,
                    response: row.try_get("response")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Removes events no delivery refers to any more.
    pub(crate) async fn forget_undelivered_events(&self) -> Result<u64, DbError> {
        let done = sqlx::query(
            "DELETE FROM webhook_events
             WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id)",
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Forgets finished deliveries (and their attempts) older than
    /// `before_ms`, and the events left without deliveries.
    pub async fn prune_webhook_deliveries(&self, before_ms: i64) -> Result<u64, DbError> {
        let done = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND finished_at < $1",
        )
        .bind(before_ms)
        .execute(self.pool())
        .await?;
        self.forget_undelivered_events().await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_whsec_and_24_to_64_bytes() {
        let made = new_secret();
        check_secret(&made).unwrap();
        assert!(made.starts_with("whsec_"));
        assert!(check_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        let short = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 16])
        );
        assert_eq!(check_secret(&short), Err(InvalidEndpoint::SecretLength(16)));
        assert!(check_secret("whsec_!!!").is_err());
    }

    #[test]
    fn event_lists_are_known_types_or_everything() {
        assert_eq!(
            events_column(&["asset.ready".into(), "live.started".into()]).unwrap(),
            ",asset.ready,live.started,"
        );
        assert_eq!(
            events_list(",asset.ready,live.started,"),
            ["asset.ready", "live.started"]
        );
        assert_eq!(events_column(&["*".into()]).unwrap(), "*");
        assert_eq!(events_list("*"), ["*"]);
        let err = events_column(&["asset.done".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("asset.done") && err.contains("asset.ready"),
            "{err}"
        );
        assert!(events_column(&[]).is_err());
    }

    #[test]
    fn urls_are_http_or_https_with_a_host() {
        check_url("https://hooks.example.com/in").unwrap();
        check_url("http://127.0.0.1:9000/").unwrap();
        assert!(check_url("ftp://example.com/").is_err());
        assert!(check_url("/relative").is_err());
        assert!(check_url("file:///etc/passwd").is_err());
    }
}
