//! Sends the outbox's deliveries: on every node, a periodic pass claims
//! the endpoints whose oldest pending delivery is due and drains each in
//! its own task, one delivery at a time, in order.
//!
//! An endpoint is claimed with a lease in the database, so that one node
//! at a time sends to it (order holds across nodes); a node that dies
//! mid-delivery leaves the claim to run out and another node sends the
//! delivery again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use sqlx::Row;
use tokio::task::JoinSet;

use super::{EventType, WebhookEvent, enqueue};
use crate::clock;
use crate::db::{Database, DbError, to_i64};
use crate::events::{Event, EventBus};
use crate::imports::guard::{Guard, GuardedResolver};
use crate::imports::{describe, lock};
use crate::supervision::PeriodicTask;

/// How often a node looks for due deliveries.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// How long a node's claim on an endpoint lasts without renewal; renewed
/// before each delivery, longer than any one attempt.
const CLAIM_LEASE: Duration = Duration::from_secs(90);
/// Endpoints one node sends to at once.
const MAX_CONCURRENT_ENDPOINTS: usize = 32;
/// The start of a receiver's answer kept in the attempt log.
const MAX_RESPONSE_LOGGED: usize = 1024;
/// Finished deliveries are forgotten after this long.
const KEEP_FINISHED: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often old deliveries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How deliveries are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliverySettings {
    /// How long a receiver has to answer.
    pub timeout: Duration,
    /// The wait before the first retry; each further wait is five times
    /// the one before, up to `max_retry_interval`, with ±20 % jitter.
    pub first_retry: Duration,
    pub max_retry_interval: Duration,
    /// A delivery failing for this long is given up, and its endpoint
    /// disabled.
    pub give_up_after: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            timeout: Duration::from_secs(15),
            first_retry: Duration::from_secs(5),
            max_retry_interval: Duration::from_secs(6 * 3600),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// The wait before retry number `failures` (1 for the first retry);
/// `jitter` in `[0, 1)` spreads it by ±20 %.
pub fn retry_delay(settings: &DeliverySettings, failures: u32, jitter: f64) -> Duration {
    let growth = 5f64.powi(i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX));
    let base = (settings.first_retry.as_secs_f64() * growth)
        .min(settings.max_retry_interval.as_secs_f64());
    Duration::from_secs_f64(base * (0.8 + 0.4 * jitter.clamp(0.0, 1.0)))
}

/// A random number in `[0, 1)`.
fn jitter() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() >> 75;
    bits as f64 / (1u64 << 53) as f64
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub response: Option<String>,
    pub duration: Duration,
    /// How long the receiver asked to be left alone (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl Outcome {
    fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// 410 Gone: the receiver wants no more (the specification's signal to
    /// disable the endpoint).
    fn gone(&self) -> bool {
        self.status == Some(410)
    }
}

/// The head delivery of an endpoint, with what sending it needs.
struct Head {
    seq: i64,
    event_id: String,
    payload: String,
    next_attempt_at: i64,
    first_failure_at: Option<i64>,
    url: String,
    secret: String,
    /// Defined in the configuration file: trusted with any address.
    from_config: bool,
}

/// Sends webhooks from this node.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    node: String,
    events: EventBus,
    /// For endpoints of the configuration file.
    client: reqwest::Client,
    /// For endpoints made through the API: held to the address guard.
    guarded: reqwest::Client,
    guard: Arc<Guard>,
    settings: DeliverySettings,
    /// Endpoints this node is draining now.
    draining: Mutex<HashSet<String>>,
    /// The drains; aborted when the sender goes.
    tasks: Mutex<JoinSet<()>>,
    last_prune: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("node", &self.inner.node)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot make the webhook HTTP client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

impl Sender {
    pub fn new(
        db: Database,
        node: &str,
        events: EventBus,
        settings: DeliverySettings,
        guard: Guard,
    ) -> Result<Self, ClientError> {
        let builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("StreamForge-Webhooks/", env!("CARGO_PKG_VERSION")))
                // The specification: a redirect is a failure; the
                // endpoint's URL is to be updated instead.
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
                .timeout(settings.timeout)
                .pool_idle_timeout(Duration::from_secs(30))
        };
        let guard = Arc::new(guard);
        let client = builder().build()?;
        let guarded = builder()
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            .build()?;
        Ok(Sender {
            inner: Arc::new(Inner {
                db,
                node: node.to_owned(),
                events,
                client,
                guarded,
                guard,
                settings,
                draining: Mutex::default(),
                tasks: Mutex::new(JoinSet::new()),
                last_prune: Mutex::default(),
            }),
        })
    }

    /// The periodic task that sends this node's share of deliveries.
    pub fn task(&self) -> PeriodicTask {
        let sender = self.clone();
        PeriodicTask {
            name: "webhooks",
            every: POLL_EVERY,
            job: Arc::new(move || {
                let sender = sender.clone();
                Box::pin(async move { sender.pass().await })
            }),
        }
    }

    /// One look for due deliveries: starts a drain for each endpoint
    /// that has one and no drain here.
    async fn pass(&self) {
        self.reap();
        self.prune().await;
        let due = match self
            .inner
            .db
            .due_webhook_endpoints(&self.inner.node, MAX_CONCURRENT_ENDPOINTS)
            .await
        {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(%err, "webhooks: cannot look for due deliveries");
                return;
            }
        };
        for endpoint in due {
            let mut draining = lock(&self.inner.draining);
            if draining.len() >= MAX_CONCURRENT_ENDPOINTS || !draining.insert(endpoint.clone()) {
                continue;
            }
            drop(draining);
            lock(&self.inner.tasks).spawn(drain(Arc::downgrade(&self.inner), endpoint));
        }
    }

    fn reap(&self) {
        let mut tasks = lock(&self.inner.tasks);
        while let Some(done) = tasks.try_join_next() {
            if let Err(err) = done
                && err.is_panic()
            {
                tracing::error!(%err, "webhooks: a delivery task panicked");
            }
        }
    }

    async fn prune(&self) {
        {
            let mut last = lock(&self.inner.last_prune);
            if last.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let before = clock::now_ms() - to_i64(KEEP_FINISHED.as_millis() as u64);
        match self.inner.db.prune_webhook_deliveries(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deliveries = n, "webhooks: old deliveries forgotten"),
            Err(err) => tracing::warn!(%err, "webhooks: cannot prune old deliveries"),
        }
    }

    /// Sends an endpoint's next due delivery if this node holds (or takes)
    /// its claim; `false` when there is nothing more to do now.
    async fn step(&self, endpoint: &str) -> bool {
        let db = &self.inner.db;
        match db.claim_webhook_endpoint(endpoint, &self.inner.node).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(err) => {
                tracing::warn!(%endpoint, %err, "webhooks: cannot claim the endpoint");
                return false;
            }
        }
        let head = match db.webhook_head(endpoint).await {
            Ok(Some(head)) if head.next_attempt_at <= clock::now_ms() => head,
            Ok(_) => return false,
            Err(err) => {
                tracing::warn!(%endpoint, %err, "webhooks: cannot read the next delivery");
                return false;
            }
        };
        let outcome = self.send(&head).await;
        match self.record(endpoint, &head, &outcome).await {
            Ok(more) => more,
            Err(err) => {
                tracing::warn!(%endpoint, %err, "webhooks: cannot record an attempt");
                false
            }
        }
    }

    /// One attempt: the signed POST.
    async fn send(&self, head: &Head) -> Outcome {
        let started = Instant::now();
        let timestamp = clock::now_ms() / 1000;
        let signature = standardwebhooks::Webhook::new(&head.secret)
            .and_then(|w| w.sign(&head.event_id, timestamp, head.payload.as_bytes()));
        let signature = match signature {
            Ok(signature) => signature,
            Err(err) => {
                return Outcome {
                    status: None,
                    error: Some(format!("cannot sign: {err}")),
                    response: None,
                    duration: started.elapsed(),
                    retry_after: None,
                };
            }
        };
        let client = if head.from_config {
            &self.inner.client
        } else {
            if let Some(refusal) = url::Url::parse(&head.url)
                .ok()
                .and_then(|url| self.inner.guard.check_url(&url).err())
            {
                return Outcome {
                    status: None,
                    error: Some(refusal.to_string()),
                    response: None,
                    duration: started.elapsed(),
                    retry_after: None,
                };
            }
            &self.inner.guarded
        };
        let request = client
            .post(&head.url)
            .header(CONTENT_TYPE, "application/json")
            .header(standardwebhooks::HEADER_WEBHOOK_ID, &head.event_id)
            .header(standardwebhooks::HEADER_WEBHOOK_TIMESTAMP, timestamp)
            .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
            .body(head.payload.clone());
        match request.send().await {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(retry_after_seconds);
                let mut body = Vec::new();
                let mut error = None;
                while body.len() < MAX_RESPONSE_LOGGED {
                    match response.chunk().await {
                        Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                        Ok(None) => break,
                        Err(err) => {
                            error = Some(format!("reading the answer: {err}"));
                            break;
                        }
                    }
                }
                body.truncate(MAX_RESPONSE_LOGGED);
                let answered = (200..300).contains(&status);
                Outcome {
                    status: Some(status),
                    error: error
                        .or_else(|| (!answered).then(|| format!("the receiver answered {status}"))),
                    response: (!body.is_empty())
                        .then(|| String::from_utf8_lossy(&body).into_owned()),
                    duration: started.elapsed(),
                    retry_after,
                }
            }
            Err(err) => Outcome {
                status: None,
                error: Some(describe(&err)),
                response: None,
                duration: started.elapsed(),
                retry_after: None,
            },
        }
    }

    /// Logs an attempt and moves its delivery on; `false` when the
    /// endpoint may not be sent to any more (disabled).
    async fn record(
        &self,
        endpoint: &str,
        head: &Head,
        outcome: &Outcome,
    ) -> Result<bool, DbError> {
        let now = clock::now_ms();
        let settings = &self.inner.settings;
        let verdict = if outcome.delivered() {
            Verdict::Delivered
        } else if outcome.gone() {
            Verdict::Disable("the receiver answered 410 Gone".to_owned())
        } else {
            let since = head.first_failure_at.unwrap_or(now);
            let give_up = to_i64(settings.give_up_after.as_millis() as u64);
            if now - since >= give_up {
                Verdict::GiveUp(format!(
                    "deliveries failed for {}: {}",
                    humanize(settings.give_up_after),
                    outcome.error.as_deref().unwrap_or("no answer")
                ))
            } else {
                let failures = self.inner.db.webhook_failures(head.seq).await? + 1;
                let wait = retry_delay(settings, failures, jitter()).max(
                    outcome
                        .retry_after
                        .unwrap_or_default()
                        .min(settings.max_retry_interval),
                );
                Verdict::Retry(now + to_i64(wait.as_millis() as u64))
            }
        };
        let Some(disabled) = self
            .inner
            .db
            .record_webhook_attempt(&self.inner.node, endpoint, head, outcome, &verdict)
            .await?
        else {
            tracing::info!(%endpoint, event = %head.event_id, "webhooks: another node holds the endpoint now");
            return Ok(false);
        };
        match verdict {
            Verdict::Delivered => {
                tracing::debug!(%endpoint, event = %head.event_id, "webhook delivered");
                Ok(true)
            }
            Verdict::Retry(at) => {
                tracing::info!(%endpoint, event = %head.event_id, error = outcome.error.as_deref().unwrap_or(""), in_ms = at - now, "webhook delivery failed; retrying");
                Ok(true)
            }
            Verdict::Disable(reason) | Verdict::GiveUp(reason) => {
                if disabled {
                    tracing::warn!(%endpoint, %reason, "webhook endpoint disabled");
                    self.inner.events.publish(Event::WebhookDisabled {
                        endpoint: endpoint.to_owned(),
                        reason,
                    });
                }
                Ok(false)
            }
        }
    }
}

/// Drains an endpoint's due deliveries, in order, while this node holds
/// its claim and the sender exists: the sender is held only during a
/// step, so that it (and the `JoinSet` that aborts this task) goes when
/// the server stops.
async fn drain(inner: Weak<Inner>, endpoint: String) {
    loop {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let sender = Sender { inner };
        if !sender.step(&endpoint).await {
            let (db, node) = (&sender.inner.db, &sender.inner.node);
            if let Err(err) = db.release_webhook_endpoint(&endpoint, node).await {
                tracing::debug!(%endpoint, %err, "webhooks: claim not released; it runs out");
            }
            lock(&sender.inner.draining).remove(&endpoint);
            return;
        }
    }
}

/// What becomes of a delivery after an attempt.
enum Verdict {
    Delivered,
    /// Again at this time (unix ms).
    Retry(i64),
    /// The endpoint is disabled; the delivery waits for it to be enabled.
    Disable(String),
    /// The delivery failed for good, and its endpoint is disabled.
    GiveUp(String),
}

/// `Retry-After` in seconds (the HTTP-date form is not taken).
fn retry_after_seconds(value: &HeaderValue) -> Option<Duration> {
    value
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn humanize(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

impl Database {
    /// Endpoints whose oldest pending delivery is due and that no other
    /// node holds.
    async fn due_webhook_endpoints(
        &self,
        node: &str,
        limit: usize,
    ) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT d.endpoint_id FROM webhook_deliveries d
             JOIN webhook_endpoints e ON e.id = d.endpoint_id
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND e.disabled_at IS NULL
               AND (e.claimed_by IS NULL OR e.claimed_by = $2 OR e.claimed_until < $1)
               AND d.seq = (SELECT MIN(p.seq) FROM webhook_deliveries p
                            WHERE p.endpoint_id = d.endpoint_id AND p.state = 'pending')
             ORDER BY d.seq LIMIT $3",
        )
        .bind(clock::now_ms())
        .bind(node)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await?)
    }

    /// Takes (or renews) `node`'s claim on an enabled endpoint; `false`
    /// when another node holds it or it is disabled.
    async fn claim_webhook_endpoint(&self, endpoint: &str, node: &str) -> Result<bool, DbError> {
        let now = clock::now_ms();
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET claimed_by = $1, claimed_until = $2
             WHERE id = $3 AND disabled_at IS NULL
               AND (claimed_by IS NULL OR claimed_by = $1 OR claimed_until < $4)",
        )
        .bind(node)
        .bind(now + to_i64(CLAIM_LEASE.as_millis() as u64))
        .bind(endpoint)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_webhook_endpoint(&self, endpoint: &str, node: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE webhook_endpoints SET claimed_by = NULL, claimed_until = 0
             WHERE id = $1 AND claimed_by = $2",
        )
        .bind(endpoint)
        .bind(node)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The oldest pending delivery of an enabled endpoint.
    async fn webhook_head(&self, endpoint: &str) -> Result<Option<Head>, DbError> {
        let row = sqlx::query(
            "SELECT d.seq, d.event_id, d.next_attempt_at, d.first_failure_at, ev.payload,
                    e.url, e.secret, e.from_config
             FROM webhook_deliveries d
             JOIN webhook_events ev ON ev.id = d.event_id
             JOIN webhook_endpoints e ON e.id = d.endpoint_id
             WHERE d.endpoint_id = $1 AND d.state = 'pending' AND e.disabled_at IS NULL
             ORDER BY d.seq LIMIT 1",
        )
        .bind(endpoint)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Head {
            seq: row.try_get("seq")?,
            event_id: row.try_get("event_id")?,
            payload: row.try_get("payload")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            first_failure_at: row.try_get("first_failure_at")?,
            url: row.try_get("url")?,
            secret: row.try_get("secret")?,
            from_config: row.try_get::<i64, _>("from_config")? != 0,
        }))
    }

    /// Failed attempts of a delivery since it last started over.
    async fn webhook_failures(&self, seq: i64) -> Result<u32, DbError> {
        let attempts: i64 =
            sqlx::query_scalar("SELECT attempts FROM webhook_deliveries WHERE seq = $1")
                .bind(seq)
                .fetch_one(self.pool())
                .await?;
        Ok(u32::try_from(attempts).unwrap_or(u32::MAX))
    }

    /// Logs an attempt and applies its verdict, in one transaction:
    /// `Some(true)` when it disabled the endpoint (this call, not an
    /// earlier one); `None` when the delivery is not this node's to move
    /// on any more (another node took the endpoint after this node's
    /// claim ran out, and may have delivered it): only the attempt is
    /// logged.
    async fn record_webhook_attempt(
        &self,
        node: &str,
        endpoint: &str,
        head: &Head,
        outcome: &Outcome,
        verdict: &Verdict,
    ) -> Result<Option<bool>, DbError> {
        let now = clock::now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_seq, node, attempted_at, duration_ms, status, error, response)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(head.seq)
        .bind(node)
        .bind(now)
        .bind(to_i64(outcome.duration.as_millis() as u64))
        .bind(outcome.status.map(i64::from))
        .bind(outcome.error.as_deref())
        .bind(outcome.response.as_deref())
        .execute(&mut *tx)
        .await?;
        let (state, next, finished) = match verdict {
            Verdict::Delivered => ("delivered", head.next_attempt_at, Some(now)),
            Verdict::Retry(at) => ("pending", *at, None),
            Verdict::Disable(_) => ("pending", now, None),
            Verdict::GiveUp(_) => ("failed", head.next_attempt_at, Some(now)),
        };
        let failed = !matches!(verdict, Verdict::Delivered);
        let moved = sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1,
                 next_attempt_at = $2, finished_at = $3,
                 first_failure_at = CASE WHEN $4 = 1 THEN COALESCE(first_failure_at, $5) ELSE first_failure_at END
             WHERE seq = $6 AND state = 'pending'
               AND EXISTS (SELECT 1 FROM webhook_endpoints e
                           WHERE e.id = webhook_deliveries.endpoint_id AND e.claimed_by = $7)",
        )
        .bind(state)
        .bind(next)
        .bind(finished)
        .bind(i64::from(failed))
        .bind(now)
        .bind(head.seq)
        .bind(node)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            tx.commit().await?;
            return Ok(None);
        }
        let mut disabled = false;
        if let Verdict::Disable(reason) | Verdict::GiveUp(reason) = verdict {
            // The rows `enqueue` will lock, and this endpoint's, locked
            // together in id order first: taking this one alone before
            // them could deadlock with another transaction's enqueue.
            if self.dialect() == crate::db::Dialect::Postgres {
                sqlx::query(
                    "SELECT id FROM webhook_endpoints
                     WHERE id = $1 OR (disabled_at IS NULL AND (events = '*' OR events LIKE $2))
                     ORDER BY id FOR UPDATE",
                )
                .bind(endpoint)
                .bind(format!("%,{},%", EventType::WebhookDisabled))
                .fetch_all(&mut *tx)
                .await?;
            }
            let done = sqlx::query(
                "UPDATE webhook_endpoints SET disabled_at = $1, disabled_reason = $2,
                     claimed_by = NULL, claimed_until = 0
                 WHERE id = $3 AND disabled_at IS NULL",
            )
            .bind(now)
            .bind(reason)
            .bind(endpoint)
            .execute(&mut *tx)
            .await?;
            disabled = done.rows_affected() == 1;
            if disabled {
                // Not its URL: hook URLs often carry their secret (Slack,
                // Discord), and this goes to the other endpoints.
                let event = WebhookEvent::new(
                    EventType::WebhookDisabled,
                    serde_json::json!({ "endpoint_id": endpoint, "reason": reason }),
                );
                enqueue(&mut tx, &event).await?;
            }
        }
        tx.commit().await?;
        Ok(Some(disabled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_five_fold_up_to_the_cap_with_jitter() {
        let settings = DeliverySettings::default();
        let waits: Vec<u64> = (1..=8)
            .map(|n| retry_delay(&settings, n, 0.5).as_secs())
            .collect();
        assert_eq!(waits, [5, 25, 125, 625, 3125, 15625, 21600, 21600]);
        assert_eq!(retry_delay(&settings, 1, 0.0), Duration::from_secs(4));
        assert_eq!(retry_delay(&settings, 1, 1.0), Duration::from_secs(6));
        // The default schedule makes eleven attempts in the day before
        // it gives up.
        let waited = |retries: u32| -> Duration {
            (1..=retries).map(|n| retry_delay(&settings, n, 0.5)).sum()
        };
        assert!(waited(9) < settings.give_up_after);
        assert!(waited(10) > settings.give_up_after);
    }

    #[test]
    fn jitter_stays_in_the_unit_interval() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn retry_after_takes_seconds() {
        assert_eq!(
            retry_after_seconds(&HeaderValue::from_static("120")),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after_seconds(&HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
    }
}
