//! The node registry: one row per node in the `nodes` table, upserted at
//! every [`HEARTBEAT`] with the node's load, stamped `stopped_at` on a
//! clean shutdown. A node whose heartbeat is older than
//! [`LOST_AFTER`] without a stop is lost (killed, or cut off).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::Row;

use crate::clock;
use crate::db::{Database, DbError};
use crate::supervision::{BranchKind, PeriodicTask, Supervision};

/// How often a node renews its row.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// A node that missed three heartbeats is lost.
pub const LOST_AFTER: Duration = Duration::from_secs(15);

/// What a node does.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Answers the API, tus uploads, `/vod/` and `/live/` requests.
    Api,
    /// Takes live ingest (RTMP, RTSP, camera pulls).
    Ingest,
    /// Claims processing jobs from the queue.
    Worker,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Api, Role::Ingest, Role::Worker];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Ingest => "ingest",
            Role::Worker => "worker",
        }
    }
}

/// Who this node is to the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    pub id: String,
    /// The URL other nodes reach this node's HTTP listener on.
    pub advertise: String,
    /// A token kept in the node's data directory: the same after a
    /// restart, another for another node given the same id.
    pub instance: String,
    pub roles: Vec<Role>,
    pub version: String,
    pub started_at_ms: i64,
}

impl NodeIdentity {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Where a node stands, from its row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Its heartbeat is recent.
    Up,
    /// It shut down cleanly.
    Stopped,
    /// It missed its heartbeats without shutting down.
    Lost,
}

/// A node as `GET /api/nodes` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct NodeRecord {
    pub id: String,
    pub advertise: String,
    pub roles: Vec<Role>,
    pub version: String,
    pub state: NodeState,
    pub started_at_ms: i64,
    pub heartbeat_at_ms: i64,
    pub stopped_at_ms: Option<i64>,
    /// Work actors per branch and child processes, at its last heartbeat.
    pub load: serde_json::Value,
}

/// Why a node may not join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "node id {id:?} is in use by another node, at {advertise} (its last heartbeat was {age_ms} ms ago); give this node another node.id"
    )]
    InUse {
        id: String,
        advertise: String,
        age_ms: i64,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Database {
    /// Registers `node`, refusing an id that another live node holds (a
    /// row with the same id, another instance and a recent heartbeat). The
    /// same node restarting after a crash takes its row back.
    pub async fn join(
        &self,
        node: &NodeIdentity,
        load: &serde_json::Value,
    ) -> Result<(), JoinError> {
        let now = clock::now_ms();
        let instance: Option<String> =
            sqlx::query_scalar("SELECT instance FROM nodes WHERE id = $1")
                .bind(&node.id)
                .fetch_optional(self.pool())
                .await
                .map_err(DbError::from)?;
        if let Some(held) = self.nodes().await?.into_iter().find(|n| n.id == node.id)
            && held.state == NodeState::Up
            && instance.as_deref() != Some(node.instance.as_str())
        {
            return Err(JoinError::InUse {
                id: held.id,
                advertise: held.advertise,
                age_ms: now - held.heartbeat_at_ms,
            });
        }
        self.heartbeat(node, load).await?;
        Ok(())
    }

    /// Renews `node`'s row with its current load.
    pub async fn heartbeat(
        &self,
        node: &NodeIdentity,
        load: &serde_json::Value,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO nodes (id, advertise, instance, version, started_at, heartbeat_at, stopped_at, load, roles)
             VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8)
             ON CONFLICT (id) DO UPDATE SET advertise = excluded.advertise, instance = excluded.instance,
                 roles = excluded.roles,
                 version = excluded.version, started_at = excluded.started_at,
                 heartbeat_at = excluded.heartbeat_at, stopped_at = NULL, load = excluded.load",
        )
        .bind(&node.id)
        .bind(&node.advertise)
        .bind(&node.instance)
        .bind(&node.version)
        .bind(node.started_at_ms)
        .bind(clock::now_ms())
        .bind(load.to_string())
        .bind(
            node.roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(","),
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records a clean stop of node `id`.
    pub async fn leave(&self, id: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE nodes SET stopped_at = $1 WHERE id = $2")
            .bind(clock::now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every node that ever joined, by id.
    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, DbError> {
        let now = clock::now_ms();
        let lost_after = i64::try_from(LOST_AFTER.as_millis()).unwrap_or(i64::MAX);
        let rows = sqlx::query("SELECT * FROM nodes ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                let heartbeat_at_ms: i64 = row.try_get("heartbeat_at")?;
                let stopped_at_ms: Option<i64> = row.try_get("stopped_at")?;
                let load: String = row.try_get("load")?;
                let roles: String = row.try_get("roles")?;
                Ok(NodeRecord {
                    id: row.try_get("id")?,
                    advertise: row.try_get("advertise")?,
                    roles: Role::ALL
                        .into_iter()
                        .filter(|r| roles.split(',').any(|n| n == r.as_str()))
                        .collect(),
                    version: row.try_get("version")?,
                    state: match stopped_at_ms {
                        Some(_) => NodeState::Stopped,
                        None if now - heartbeat_at_ms > lost_after => NodeState::Lost,
                        None => NodeState::Up,
                    },
                    started_at_ms: row.try_get("started_at")?,
                    heartbeat_at_ms,
                    stopped_at_ms,
                    load: serde_json::from_str(&load).unwrap_or_default(),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }
}

impl Database {
    /// The secret nodes present to read each other's uploads in progress:
    /// made by the first node that asks, the same for every node after.
    pub async fn internal_secret(&self) -> Result<String, DbError> {
        sqlx::query(
            "INSERT INTO cluster_settings (key, value) VALUES ('internal_secret', $1)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(uuid::Uuid::new_v4().simple().to_string())
        .execute(self.pool())
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM cluster_settings WHERE key = 'internal_secret'")
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// The URL of node `id`'s HTTP listener, while it is up.
    pub async fn node_advertise(&self, id: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .nodes()
            .await?
            .into_iter()
            .find(|n| n.id == id && n.state == NodeState::Up)
            .map(|n| n.advertise))
    }
}

/// This node's load: work actors per branch, and child processes.
pub fn load_of(supervision: &Supervision) -> serde_json::Value {
    let mut load = serde_json::Map::new();
    for kind in BranchKind::ALL {
        load.insert(
            kind.as_str().to_owned(),
            supervision.counts().get(kind).into(),
        );
    }
    load.insert(
        "child_processes".to_owned(),
        supervision.processes().len().into(),
    );
    serde_json::Value::Object(load)
}

/// The periodic task that renews this node's row every [`HEARTBEAT`].
pub fn heartbeat_task(db: Database, node: NodeIdentity, supervision: Supervision) -> PeriodicTask {
    let node = Arc::new(node);
    PeriodicTask {
        name: "node-heartbeat",
        every: HEARTBEAT,
        job: Arc::new(move || {
            let (db, node, supervision) = (db.clone(), node.clone(), supervision.clone());
            Box::pin(async move {
                if let Err(err) = db.heartbeat(&node, &load_of(&supervision)).await {
                    tracing::warn!(node = %node.id, %err, "heartbeat not recorded");
                }
            })
        }),
    }
}
