//! Ownership of live streams across nodes (`live_owners`): the node that
//! takes a publish owns the stream under a lease ([`OWNER_LEASE`]),
//! renewed every [`RENEW_EVERY`] while the stream is live or waits for its
//! publisher; other nodes find the owner here and relay from it.

use std::time::Duration;

use sqlx::Row;

use crate::clock;
use crate::db::{Database, DbError};

/// How long an ownership lasts without renewal: a node that dies leaves
/// its streams to others this long after its last renewal.
pub const OWNER_LEASE: Duration = Duration::from_secs(15);
/// How often a node renews the streams it owns.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);

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

impl Database {
    /// Takes `stream` for `node` unless another node holds a lease on it:
    /// `None` when `node` owns it now, else the node that does.
    pub async fn claim_live_stream(
        &self,
        stream: &str,
        node: &str,
    ) -> Result<Option<String>, DbError> {
        sqlx::query(
            "INSERT INTO live_owners (stream, node, lease_until) VALUES ($1, $2, $3)
             ON CONFLICT (stream) DO UPDATE SET node = excluded.node,
                 lease_until = excluded.lease_until
             WHERE live_owners.node = excluded.node OR live_owners.lease_until < $4",
        )
        .bind(stream)
        .bind(node)
        .bind(lease_until())
        .bind(clock::now_ms())
        .execute(self.pool())
        .await?;
        let owner: String = sqlx::query_scalar("SELECT node FROM live_owners WHERE stream = $1")
            .bind(stream)
            .fetch_one(self.pool())
            .await?;
        Ok((owner != node).then_some(owner))
    }

    /// Extends `node`'s lease on `stream`.
    pub async fn renew_live_stream(&self, stream: &str, node: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE live_owners SET lease_until = $1 WHERE stream = $2 AND node = $3")
            .bind(lease_until())
            .bind(stream)
            .bind(node)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Gives `stream` up, if `node` holds it.
    pub async fn release_live_stream(&self, stream: &str, node: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM live_owners WHERE stream = $1 AND node = $2")
            .bind(stream)
            .bind(node)
            .execute(self.pool())
            .await?;
        Ok(())
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
