//! Rows of the `uploads` table, and the queries on them.

use sqlx::Row;

use super::pieces::Pieces;
use crate::clock;
use crate::db::{Database, DbError, to_i64, to_u64};
use crate::webhooks::{self, EventType, WebhookEvent};

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
    /// The node that writes the bytes while they arrive (the only one);
    /// `None`: this node (an upload from before several nodes).
    pub node: Option<String>,
    /// Bytes arriving into a remote store: its pieces there. `None`: an
    /// append file on the holder's disk.
    pub pieces: Option<Pieces>,
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

fn upload_from_row(row: &sqlx::any::AnyRow) -> Result<UploadRecord, sqlx::Error> {
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
        node: row.try_get("node")?,
        pieces: match row.try_get::<Option<String>, _>("pieces")? {
            None => None,
            Some(text) => Some(Pieces::parse(&text).ok_or_else(|| {
                sqlx::Error::Decode(format!("malformed pieces of upload: {text:?}").into())
            })?),
        },
    })
}

impl Database {
    /// Records a new upload (reported to webhooks as `upload.created`).
    pub async fn insert_upload(&self, upload: &UploadRecord) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO uploads (id, length, upload_offset, metadata, filename, filetype, concat, parts, created_at, expires_at, node, pieces)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        .bind(upload.node.as_deref())
        .bind(upload.pieces.as_ref().map(Pieces::to_string))
        .execute(&mut *tx)
        .await?;
        let data = serde_json::json!({
            "upload_id": upload.id,
            "length": upload.length,
            "filename": upload.filename,
            "filetype": upload.filetype,
            "concat": upload.concat.map(ConcatKind::as_str),
        });
        webhooks::enqueue(&mut tx, &WebhookEvent::new(EventType::UploadCreated, data)).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn upload(&self, id: &str) -> Result<Option<UploadRecord>, DbError> {
        let row = sqlx::query("SELECT * FROM uploads WHERE id = $1")
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
            "UPDATE uploads SET upload_offset = $1, length = COALESCE($2, length) WHERE id = $3",
        )
        .bind(to_i64(offset))
        .bind(length.map(to_i64))
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Makes a session's commit durable: the offset moves from `from` to
    /// `to` (with the pieces that now hold the bytes, and the length when
    /// the client has just declared it), only if the upload is still at
    /// `from` and still written by `holder`. `false`: it is not, another
    /// node took it over, and the commit is refused.
    pub async fn commit_upload(
        &self,
        id: &str,
        holder: Option<&str>,
        from: u64,
        to: u64,
        length: Option<u64>,
        pieces: Option<&Pieces>,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE uploads SET upload_offset = $1, length = COALESCE($2, length),
                    pieces = COALESCE($3, pieces)
              WHERE id = $4 AND upload_offset = $5 AND COALESCE(node, '') = $6
                AND completed_at IS NULL",
        )
        .bind(to_i64(to))
        .bind(length.map(to_i64))
        .bind(pieces.map(Pieces::to_string))
        .bind(id)
        .bind(to_i64(from))
        .bind(holder.unwrap_or_default())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves an unfinished upload from holder `from` to `to`, if `from`
    /// still holds it; `false` if another node was quicker.
    pub async fn take_upload(
        &self,
        id: &str,
        from: Option<&str>,
        to: &str,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE uploads SET node = $1
              WHERE id = $2 AND COALESCE(node, '') = $3 AND completed_at IS NULL",
        )
        .bind(to)
        .bind(id)
        .bind(from.unwrap_or_default())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks an upload complete (reported to webhooks as
    /// `upload.completed`, once).
    pub async fn complete_upload(&self, id: &str, asset_id: Option<&str>) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await?;
        let first = sqlx::query(
            "UPDATE uploads SET completed_at = $1, asset_id = $2 WHERE id = $3 AND completed_at IS NULL",
        )
        .bind(clock::now_ms())
        .bind(asset_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if first {
            let length: Option<i64> =
                sqlx::query_scalar("SELECT length FROM uploads WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            let data =
                serde_json::json!({ "upload_id": id, "asset_id": asset_id, "length": length });
            let event = WebhookEvent::new(EventType::UploadCompleted, data);
            webhooks::enqueue(&mut tx, &event).await?;
        } else {
            sqlx::query("UPDATE uploads SET asset_id = COALESCE($1, asset_id) WHERE id = $2")
                .bind(asset_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_upload(&self, id: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM uploads WHERE id = $1")
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

    /// Unfinished uploads past their expiry whose bytes are on `node`
    /// (or on no node in particular, or in the object store, which any
    /// node may clear).
    pub async fn expired_uploads(&self, now_ms: i64, node: &str) -> Result<Vec<String>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM uploads WHERE completed_at IS NULL AND expires_at < $1
               AND (node IS NULL OR node = $2 OR pieces IS NOT NULL)",
        )
        .bind(now_ms)
        .bind(node)
        .fetch_all(self.pool())
        .await?)
    }

    /// Links an upload still in progress to the asset made from it.
    pub async fn set_upload_asset(&self, upload: &str, asset: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE uploads SET asset_id = $1 WHERE id = $2")
            .bind(asset)
            .bind(upload)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
