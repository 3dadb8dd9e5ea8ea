//! Rows of the `uploads` and `assets` tables, and the queries on them.

use sqlx::Row;

use crate::db::{Database, DbError, unix_millis};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: String,
    pub length: Option<u64>,
    /// Durable offset: every byte before it is fsynced in the append file.
    pub offset: u64,
    /// `Upload-Metadata` as the client sent it.
    pub metadata: String,
    /// The file's name and media type, from the metadata.
    pub filename: String,
    pub filetype: String,
    pub concat: Option<ConcatKind>,
    /// For a final concatenation: the partial uploads, in order.
    pub parts: Vec<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub completed_at_ms: Option<i64>,
    pub asset_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConcatKind {
    Partial,
    Final,
}

impl ConcatKind {
    fn as_str(self) -> &'static str {
        match self {
            ConcatKind::Partial => "partial",
            ConcatKind::Final => "final",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "partial" => Some(ConcatKind::Partial),
            "final" => Some(ConcatKind::Final),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AssetRecord {
    pub id: String,
    pub upload_id: Option<String>,
    pub filename: String,
    pub filetype: String,
    pub size: u64,
    pub status: String,
    pub error: Option<String>,
    pub created_at_ms: i64,
    /// What ffprobe found in the original, once probed.
    pub probe: Option<serde_json::Value>,
    /// A preview is playable while processing goes on.
    pub preview: bool,
    /// The poster is stored.
    pub poster: bool,
    /// The processing stage, once processing started.
    pub stage: Option<String>,
    /// Each rung's state while and after processing.
    pub rungs: Option<serde_json::Value>,
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn upload_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<UploadRecord, sqlx::Error> {
    let parts: Option<String> = row.try_get("parts")?;
    let concat: Option<String> = row.try_get("concat")?;
    Ok(UploadRecord {
        id: row.try_get("id")?,
        length: row.try_get::<Option<i64>, _>("length")?.map(to_u64),
        offset: to_u64(row.try_get("upload_offset")?),
        metadata: row.try_get("metadata")?,
        filename: row.try_get("filename")?,
        filetype: row.try_get("filetype")?,
        concat: concat.as_deref().and_then(ConcatKind::parse),
        parts: parts
            .map(|p| {
                p.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        created_at_ms: row.try_get("created_at")?,
        expires_at_ms: row.try_get("expires_at")?,
        completed_at_ms: row.try_get("completed_at")?,
        asset_id: row.try_get("asset_id")?,
    })
}

fn asset_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<AssetRecord, sqlx::Error> {
    Ok(AssetRecord {
        id: row.try_get("id")?,
        upload_id: row.try_get("upload_id")?,
        filename: row.try_get("filename")?,
        filetype: row.try_get("filetype")?,
        size: to_u64(row.try_get("size")?),
        status: row.try_get("status")?,
        error: row.try_get("error")?,
        created_at_ms: row.try_get("created_at")?,
        probe: row
            .try_get::<Option<String>, _>("probe")?
            .and_then(|json| serde_json::from_str(&json).ok()),
        preview: row.try_get::<i64, _>("preview")? != 0,
        poster: row.try_get::<i64, _>("poster")? != 0,
        stage: row.try_get("stage")?,
        rungs: row
            .try_get::<Option<String>, _>("rungs")?
            .and_then(|json| serde_json::from_str(&json).ok()),
    })
}

impl Database {
    pub async fn insert_upload(&self, upload: &UploadRecord) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO uploads (id, length, upload_offset, metadata, filename, filetype, concat, parts, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&upload.id)
        .bind(upload.length.map(to_i64))
        .bind(to_i64(upload.offset))
        .bind(&upload.metadata)
        .bind(&upload.filename)
        .bind(&upload.filetype)
        .bind(upload.concat.map(ConcatKind::as_str))
        .bind((!upload.parts.is_empty()).then(|| upload.parts.join(" ")))
        .bind(upload.created_at_ms)
        .bind(upload.expires_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn upload(&self, id: &str) -> Result<Option<UploadRecord>, DbError> {
        let row = sqlx::query("SELECT * FROM uploads WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(upload_from_row).transpose()?)
    }

    /// Records a new durable offset, and the length when the client has just declared it.
    pub async fn set_upload_progress(
        &self,
        id: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE uploads SET upload_offset = ?, length = COALESCE(?, length) WHERE id = ?",
        )
        .bind(to_i64(offset))
        .bind(length.map(to_i64))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn complete_upload(&self, id: &str, asset_id: Option<&str>) -> Result<(), DbError> {
        sqlx::query("UPDATE uploads SET completed_at = ?, asset_id = ? WHERE id = ?")
            .bind(unix_millis())
            .bind(asset_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn delete_upload(&self, id: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM uploads WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Unfinished final concatenations that name `part`.
    pub async fn unfinished_finals_with(&self, part: &str) -> Result<Vec<String>, DbError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, parts FROM uploads WHERE concat = 'final' AND completed_at IS NULL AND parts IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter(|(_, parts)| parts.split(' ').any(|p| p == part))
            .map(|(id, _)| id)
            .collect())
    }

    /// Unfinished uploads whose expiry has passed.
    pub async fn expired_uploads(&self, now_ms: i64) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM uploads WHERE completed_at IS NULL AND expires_at < ?",
        )
        .bind(now_ms)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn insert_asset(&self, asset: &AssetRecord) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO assets (id, upload_id, filename, filetype, size, status, error, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&asset.id)
        .bind(&asset.upload_id)
        .bind(&asset.filename)
        .bind(&asset.filetype)
        .bind(to_i64(asset.size))
        .bind(&asset.status)
        .bind(&asset.error)
        .bind(asset.created_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn asset(&self, id: &str) -> Result<Option<AssetRecord>, DbError> {
        let row = sqlx::query("SELECT * FROM assets WHERE id = ?")
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
        status: Option<&str>,
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
             WHERE (?1 IS NULL OR filename LIKE ?1 ESCAPE '\\') AND (?2 IS NULL OR status = ?2)
             ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?4",
        )
        .bind(&pattern)
        .bind(status)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(self.pool())
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM assets
             WHERE (?1 IS NULL OR filename LIKE ?1 ESCAPE '\\') AND (?2 IS NULL OR status = ?2)",
        )
        .bind(&pattern)
        .bind(status)
        .fetch_one(self.pool())
        .await?;
        let assets = rows.iter().map(asset_from_row).collect::<Result<_, _>>()?;
        Ok((assets, to_u64(total)))
    }

    /// Moves an asset to `status`, with the failure reason when it failed.
    pub async fn set_asset_status(
        &self,
        id: &str,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE assets SET status = ?, error = ?, updated_at = ? WHERE id = ?")
            .bind(status)
            .bind(error)
            .bind(unix_millis())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn set_asset_probe(
        &self,
        id: &str,
        probe: &serde_json::Value,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE assets SET probe = ?, updated_at = ? WHERE id = ?")
            .bind(probe.to_string())
            .bind(unix_millis())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks that the asset's preview is playable.
    pub async fn set_asset_preview(&self, id: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE assets SET preview = 1, updated_at = ? WHERE id = ?")
            .bind(unix_millis())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records the asset's processing stage.
    pub async fn set_asset_stage(&self, id: &str, stage: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE assets SET stage = ?, updated_at = ? WHERE id = ?")
            .bind(stage)
            .bind(unix_millis())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records the state of one rung of the asset's ladder.
    pub async fn set_asset_rung(&self, id: &str, rung: &str, state: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE assets SET rungs = json_set(COALESCE(rungs, '{}'), '$.\"' || ? || '\"', ?), updated_at = ? WHERE id = ?",
        )
        .bind(rung)
        .bind(state)
        .bind(unix_millis())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks that the asset's poster is stored.
    pub async fn set_asset_poster(&self, id: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE assets SET poster = 1, updated_at = ? WHERE id = ?")
            .bind(unix_millis())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Links an upload still in progress to the asset made from it.
    pub async fn set_upload_asset(&self, upload: &str, asset: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE uploads SET asset_id = ? WHERE id = ?")
            .bind(asset)
            .bind(upload)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Recordings a previous run left unfinished: their media ends where
    /// the server stopped and no manifest was written; they are failed.
    pub async fn fail_stale_recordings(&self) -> Result<u64, DbError> {
        let done = sqlx::query(
            "UPDATE assets SET status = 'failed', error = 'the server stopped during the recording', updated_at = ? WHERE status = 'recording'",
        )
        .bind(unix_millis())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Assets whose processing did not finish (the server stopped during it).
    pub async fn unfinished_assets(&self) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM assets WHERE status IN ('uploaded', 'processing') ORDER BY created_at",
        )
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn delete_asset(&self, id: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM assets WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
