//! Assets: the records of what the server holds (an upload's original and
//! what processing made from it, or a live recording), their states, and
//! where their bytes are stored ([`keys`]).

pub mod keys;

use sqlx::Row;

use crate::clock;
use crate::db::{Database, DbError, Dialect, to_i64, to_u64};
use crate::webhooks::{self, EventType, WebhookEvent};

/// Where an asset is in its life; stored and answered as the lower-case name.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AssetStatus {
    /// The original is stored; processing has not started.
    Uploaded,
    /// Probing and the ladder are running (possibly while the upload still
    /// arrives).
    Processing,
    /// A live stream is being recorded into it.
    Recording,
    Ready,
    Failed,
}

impl AssetStatus {
    pub const ALL: [AssetStatus; 5] = [
        AssetStatus::Uploaded,
        AssetStatus::Processing,
        AssetStatus::Recording,
        AssetStatus::Ready,
        AssetStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AssetStatus::Uploaded => "uploaded",
            AssetStatus::Processing => "processing",
            AssetStatus::Recording => "recording",
            AssetStatus::Ready => "ready",
            AssetStatus::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

impl std::fmt::Display for AssetStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an asset's processing stands: the `stage` column, the API's
/// `stage` field and the `stage` event.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Processing started while the upload still arrives.
    Uploading,
    /// The upload is complete and stored as the original.
    Uploaded,
    Probing,
    Transcoding,
    /// A preview (the first packaged rung) is playable.
    Previewing,
    Ready,
    Failed,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Uploading,
        Stage::Uploaded,
        Stage::Probing,
        Stage::Transcoding,
        Stage::Previewing,
        Stage::Ready,
        Stage::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Uploading => "uploading",
            Stage::Uploaded => "uploaded",
            Stage::Probing => "probing",
            Stage::Transcoding => "transcoding",
            Stage::Previewing => "previewing",
            Stage::Ready => "ready",
            Stage::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one rung of an asset's ladder stands (the `rungs` column, a JSON
/// object of rung name to state).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RungState {
    Encoding,
    /// Its first segments are packaged: the preview may list it.
    Previewable,
    Done,
    /// Its ffmpeg failed; it starts again after a backoff.
    Restarting,
    Failed,
}

impl RungState {
    pub fn as_str(self) -> &'static str {
        match self {
            RungState::Encoding => "encoding",
            RungState::Previewable => "previewable",
            RungState::Done => "done",
            RungState::Restarting => "restarting",
            RungState::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AssetRecord {
    pub id: String,
    pub upload_id: Option<String>,
    pub filename: String,
    pub filetype: String,
    pub size: u64,
    pub status: AssetStatus,
    pub error: Option<String>,
    pub created_at_ms: i64,
    /// What ffprobe found in the original, once probed.
    pub probe: Option<serde_json::Value>,
    /// A preview is playable while processing goes on.
    pub preview: bool,
    /// The poster is stored.
    pub poster: bool,
    /// The processing stage, once processing started.
    pub stage: Option<Stage>,
    /// Each rung's state while and after processing.
    pub rungs: Option<serde_json::Value>,
    /// The node recording it (a live recording); `None` for uploads.
    #[serde(skip)]
    pub node: Option<String>,
}

fn asset_from_row(row: &sqlx::any::AnyRow) -> Result<AssetRecord, sqlx::Error> {
    Ok(AssetRecord {
        id: row.try_get("id")?,
        upload_id: row.try_get("upload_id")?,
        filename: row.try_get("filename")?,
        filetype: row.try_get("filetype")?,
        size: to_u64(row.try_get("size")?),
        status: {
            let status: String = row.try_get("status")?;
            AssetStatus::parse(&status).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown asset status {status:?}").into())
            })?
        },
        error: row.try_get("error")?,
        created_at_ms: row.try_get("created_at")?,
        probe: row
            .try_get::<Option<String>, _>("probe")?
            .and_then(|json| serde_json::from_str(&json).ok()),
        preview: row.try_get::<i64, _>("preview")? != 0,
        poster: row.try_get::<i64, _>("poster")? != 0,
        stage: match row.try_get::<Option<String>, _>("stage")? {
            Some(stage) => Some(Stage::parse(&stage).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown processing stage {stage:?}").into())
            })?),
            None => None,
        },
        rungs: row
            .try_get::<Option<String>, _>("rungs")?
            .and_then(|json| serde_json::from_str(&json).ok()),
        node: row.try_get("node")?,
    })
}

impl Database {
    pub async fn insert_asset(&self, asset: &AssetRecord) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO assets (id, upload_id, filename, filetype, size, status, error, created_at, node)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&asset.id)
        .bind(&asset.upload_id)
        .bind(&asset.filename)
        .bind(&asset.filetype)
        .bind(to_i64(asset.size))
        .bind(asset.status.as_str())
        .bind(&asset.error)
        .bind(asset.created_at_ms)
        .bind(asset.node.as_deref())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn asset(&self, id: &str) -> Result<Option<AssetRecord>, DbError> {
        let row = sqlx::query("SELECT * FROM assets WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(asset_from_row).transpose()?)
    }

    /// A page of assets, newest first, optionally only those whose filename
    /// contains `search` (case-insensitive) or with a given status.
    pub async fn assets(
        &self,
        search: Option<&str>,
        status: Option<AssetStatus>,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<AssetRecord>, u64), DbError> {
        let pattern = search.map(|s| {
            let escaped = s
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let rows = sqlx::query(
            "SELECT * FROM assets
             WHERE (CAST($1 AS TEXT) IS NULL OR LOWER(filename) LIKE LOWER($1) ESCAPE '\\')
               AND (CAST($2 AS TEXT) IS NULL OR status = $2)
             ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4",
        )
        .bind(&pattern)
        .bind(status.map(AssetStatus::as_str))
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(self.pool())
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM assets
             WHERE (CAST($1 AS TEXT) IS NULL OR LOWER(filename) LIKE LOWER($1) ESCAPE '\\')
               AND (CAST($2 AS TEXT) IS NULL OR status = $2)",
        )
        .bind(&pattern)
        .bind(status.map(AssetStatus::as_str))
        .fetch_one(self.pool())
        .await?;
        let assets = rows.iter().map(asset_from_row).collect::<Result<_, _>>()?;
        Ok((assets, to_u64(total)))
    }

    /// Moves an asset to `status`, with the failure reason when it failed.
    /// Becoming ready or failed is reported to webhooks (`asset.ready`,
    /// `recording.ready`, `asset.failed`) in the same transaction.
    pub async fn set_asset_status(
        &self,
        id: &str,
        status: AssetStatus,
        error: Option<&str>,
    ) -> Result<(), DbError> {
        // A ready or failed asset's stage says so in the same write, so no
        // reader sees `ready` with a stage still in progress.
        let stage = match status {
            AssetStatus::Ready => Some(Stage::Ready),
            AssetStatus::Failed => Some(Stage::Failed),
            _ => None,
        };
        // The write comes first: an SQLite transaction that reads before
        // it writes fails at once (SQLITE_BUSY_SNAPSHOT) when another
        // connection wrote in between, where a first write waits its turn.
        let mut tx = self.pool().begin().await?;
        // Only the write that changes the status reports it (the row is
        // locked by the update; a concurrent one finds it changed).
        let changed = sqlx::query(
            "UPDATE assets SET status = $1, error = $2, stage = COALESCE($3, stage), updated_at = $4
             WHERE id = $5 AND status <> $1",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(stage.map(Stage::as_str))
        .bind(clock::now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !changed {
            sqlx::query("UPDATE assets SET error = $1, updated_at = $2 WHERE id = $3")
                .bind(error)
                .bind(clock::now_ms())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let kind = match status {
            AssetStatus::Ready => Some(EventType::AssetReady),
            AssetStatus::Failed => Some(EventType::AssetFailed),
            _ => None,
        };
        if let (true, Some(kind)) = (changed, kind) {
            let upload: Option<String> =
                sqlx::query_scalar("SELECT upload_id FROM assets WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            // A live recording is the one asset without an upload.
            let kind = match (kind, &upload) {
                (EventType::AssetReady, None) => EventType::RecordingReady,
                (kind, _) => kind,
            };
            let data = serde_json::json!({
                "asset_id": id,
                "upload_id": upload,
                "status": status.as_str(),
                "error": error,
            });
            webhooks::enqueue(&mut tx, &WebhookEvent::new(kind, data)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_asset_probe(
        &self,
        id: &str,
        probe: &serde_json::Value,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE assets SET probe = $1, updated_at = $2 WHERE id = $3")
            .bind(probe.to_string())
            .bind(clock::now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks that the asset's preview is playable (reported to webhooks
    /// as `asset.preview_ready` the first time).
    pub async fn set_asset_preview(&self, id: &str) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await?;
        let first = sqlx::query(
            "UPDATE assets SET preview = 1, updated_at = $1 WHERE id = $2 AND preview = 0",
        )
        .bind(clock::now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if first {
            let upload: Option<String> =
                sqlx::query_scalar("SELECT upload_id FROM assets WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            let data = serde_json::json!({ "asset_id": id, "upload_id": upload });
            let event = WebhookEvent::new(EventType::AssetPreviewReady, data);
            webhooks::enqueue(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the asset's processing stage.
    pub async fn set_asset_stage(&self, id: &str, stage: Stage) -> Result<(), DbError> {
        sqlx::query("UPDATE assets SET stage = $1, updated_at = $2 WHERE id = $3")
            .bind(stage.as_str())
            .bind(clock::now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records the state of one rung of the asset's ladder.
    pub async fn set_asset_rung(
        &self,
        id: &str,
        rung: &str,
        state: RungState,
    ) -> Result<(), DbError> {
        // One key of the JSON object set in place: concurrent rungs of one
        // asset never overwrite each other's state.
        let sql = match self.dialect() {
            Dialect::Sqlite => {
                "UPDATE assets SET rungs = json_set(COALESCE(rungs, '{}'), '$.\"' || $1 || '\"', $2), \
                 updated_at = $3 WHERE id = $4"
            }
            Dialect::Postgres => {
                "UPDATE assets SET rungs = (COALESCE(rungs, '{}')::jsonb || jsonb_build_object(CAST($1 AS TEXT), CAST($2 AS TEXT)))::text, \
                 updated_at = $3 WHERE id = $4"
            }
        };
        sqlx::query(sql)
            .bind(rung)
            .bind(state.as_str())
            .bind(clock::now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks that the asset's poster is stored.
    pub async fn set_asset_poster(&self, id: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE assets SET poster = 1, updated_at = $1 WHERE id = $2")
            .bind(clock::now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Recordings a previous run of `node` left unfinished: their media
    /// ends where the server stopped and no manifest was written; they are
    /// failed. Other nodes' recordings go on.
    pub async fn fail_stale_recordings(&self, node: &str) -> Result<u64, DbError> {
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM assets WHERE status = 'recording' AND (node IS NULL OR node = $1)",
        )
        .bind(node)
        .fetch_all(self.pool())
        .await?;
        // One at a time, so that each failure is reported to webhooks.
        for id in &stale {
            self.set_asset_status(
                id,
                AssetStatus::Failed,
                Some("the server stopped during the recording"),
            )
            .await?;
        }
        Ok(stale.len() as u64)
    }

    /// Assets whose processing did not finish (the server stopped during it).
    pub async fn unfinished_assets(&self) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM assets WHERE status IN ('uploaded', 'processing') ORDER BY created_at",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Deletes an asset's record (reported to webhooks as
    /// `asset.deleted`).
    pub async fn delete_asset(&self, id: &str) -> Result<bool, DbError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM chunk_tasks WHERE asset = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM assets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if deleted {
            let data = serde_json::json!({ "asset_id": id });
            webhooks::enqueue(&mut tx, &WebhookEvent::new(EventType::AssetDeleted, data)).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_as_written_and_serialize_as_their_names() {
        for status in AssetStatus::ALL {
            assert_eq!(AssetStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::from(status.as_str())
            );
        }
        assert_eq!(AssetStatus::parse("done"), None);
    }
}
