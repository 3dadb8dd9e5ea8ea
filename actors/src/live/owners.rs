//! Ownership of live streams across nodes (`live_owners`): the node that
//! takes a publish owns the stream under a lease ([`OWNER_LEASE`]),
//! renewed every [`RENEW_EVERY`] while the stream is live or waits for its
//! publisher; other nodes find the owner here and relay from it. A
//! publisher that moves to another node (its owner waits for it, or died)
//! takes the stream there: the new owner continues the presentation from
//! what the old one recorded ([`Handover`]).

use std::time::Duration;

use sqlx::Row;

use streamforge_protocols::live::Handover;

use crate::clock;
use crate::db::{Database, DbError};

/// How long an ownership lasts without renewal: a node that dies leaves
/// its streams to others this long after its last renewal, well within
/// the default `live.reconnect_grace` (10 s) of an encoder that reconnects
/// elsewhere.
pub const OWNER_LEASE: Duration = Duration::from_secs(6);
/// How often a node renews the streams it owns (three times a lease: two
/// renewals may fail before the stream is lost).
pub const RENEW_EVERY: Duration = Duration::from_secs(2);

fn lease_until() -> i64 {
    clock::now_ms() + i64::try_from(OWNER_LEASE.as_millis()).unwrap_or(i64::MAX)
}

/// The owner of a stream, as another node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamOwner {
    pub node: String,
    /// The owner's HTTP URL (`node.advertise`).
    pub advertise: String,
}

/// What a publish's claim on a stream found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This node owns the stream now; it continues the presentation of the
    /// node it took the stream from, if any.
    Owned(Option<Takeover>),
    /// Another node owns it, under its lease.
    Refused(String),
}

/// A presentation taken over from another node, whose publisher left it
/// (its numbers are final: `exact`) or which stopped renewing its lease
/// (it may have gone on a few seconds after it recorded them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Takeover {
    /// The node that owned the stream: it has the presentation's media so
    /// far (see [`Handover::made`]).
    pub from: String,
    pub handover: Handover,
    pub exact: bool,
}

/// What the owner records of its stream at each renewal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerRecord {
    /// Where another node would continue the presentation.
    pub handover: Option<Handover>,
    /// The stream waits for its publisher: another node may take it.
    pub awaiting: bool,
}

struct OwnerRow {
    node: String,
    lease_until: i64,
    awaiting: bool,
    handover: Option<Handover>,
}

impl Database {
    /// Takes `stream` for `node`, unless another node holds a lease on it
    /// while its publisher is there. A stream whose owner waits for its
    /// publisher, or whose lease ran out less than `grace` ago, is taken
    /// over: its presentation goes on here.
    pub async fn claim_live_stream(
        &self,
        stream: &str,
        node: &str,
        grace: Duration,
    ) -> Result<Claim, DbError> {
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        // Optimistic: a row that changed between the read and the write
        // (another node's claim) is read again.
        for _ in 0..5 {
            let now = clock::now_ms();
            let Some(row) = self.live_owner_row(stream).await? else {
                let inserted = sqlx::query(
                    "INSERT INTO live_owners (stream, node, lease_until) VALUES ($1, $2, $3)
                     ON CONFLICT (stream) DO NOTHING",
                )
                .bind(stream)
                .bind(node)
                .bind(lease_until())
                .execute(self.pool())
                .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(Claim::Owned(None));
                }
                continue;
            };
            let own = row.node == node;
            let lapsed = row.lease_until < now;
            if !own && !lapsed && !row.awaiting {
                return Ok(Claim::Refused(row.node));
            }
            let taken = sqlx::query(
                "UPDATE live_owners SET node = $1, lease_until = $2, awaiting = 0
                 WHERE stream = $3 AND node = $4 AND lease_until = $5 AND awaiting = $6",
            )
            .bind(node)
            .bind(lease_until())
            .bind(stream)
            .bind(&row.node)
            .bind(row.lease_until)
            .bind(i64::from(row.awaiting))
            .execute(self.pool())
            .await?;
            if taken.rows_affected() != 1 {
                continue;
            }
            let recent = row.awaiting || now - row.lease_until <= grace_ms;
            let exact = row.awaiting && !lapsed;
            let takeover = row
                .handover
                .filter(|_| !own && recent)
                .map(|handover| Takeover {
                    from: row.node,
                    handover,
                    exact,
                });
            return Ok(Claim::Owned(takeover));
        }
        Err(DbError::Conflict(format!(
            "live stream {stream:?}: its ownership kept changing while claimed"
        )))
    }

    async fn live_owner_row(&self, stream: &str) -> Result<Option<OwnerRow>, DbError> {
        let row = sqlx::query(
            "SELECT node, lease_until, awaiting, handover FROM live_owners WHERE stream = $1",
        )
        .bind(stream)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let node: String = row.try_get("node")?;
        let text: Option<String> = row.try_get("handover")?;
        // A record this version cannot read is a presentation it cannot
        // continue: the stream starts a new one.
        let handover = text.and_then(|text| {
            Handover::parse(&text)
                .inspect_err(|err| tracing::warn!(%stream, %node, %err, "unreadable live handover"))
                .ok()
        });
        Ok(Some(OwnerRow {
            node,
            lease_until: row.try_get("lease_until")?,
            awaiting: row.try_get::<i64, _>("awaiting")? != 0,
            handover,
        }))
    }

    /// Extends `node`'s lease on `stream` with what it records of it;
    /// `false` when `node` no longer owns the stream (another node took
    /// it over).
    pub async fn renew_live_stream(
        &self,
        stream: &str,
        node: &str,
        record: OwnerRecord,
    ) -> Result<bool, DbError> {
        let renewed = sqlx::query(
            "UPDATE live_owners SET lease_until = $1, awaiting = $2, handover = $3
             WHERE stream = $4 AND node = $5",
        )
        .bind(lease_until())
        .bind(i64::from(record.awaiting))
        .bind(record.handover.as_ref().map(Handover::to_text))
        .bind(stream)
        .bind(node)
        .execute(self.pool())
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// The node holding a lease on `stream` now, if any.
    pub async fn live_owner(&self, stream: &str) -> Result<Option<StreamOwner>, DbError> {
        let row = sqlx::query(
            "SELECT o.node, n.advertise FROM live_owners o JOIN nodes n ON n.id = o.node
             WHERE o.stream = $1 AND o.lease_until >= $2 AND n.stopped_at IS NULL",
        )
        .bind(stream)
        .bind(clock::now_ms())
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(StreamOwner {
                node: row.try_get("node")?,
                advertise: row.try_get("advertise")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| DbError::from(e))
    }
}
