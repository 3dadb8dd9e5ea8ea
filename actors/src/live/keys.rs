//! Stream keys: the secret an encoder must present to publish a stream.
//!
//! A key is created for a stream name (rotating any previous key), shown
//! once and stored as a SHA-256 digest, like API tokens. An encoder
//! presents it either as `{stream}?key={key}` in the stream-name field or as
//! the bare key (the form encoders with a single "stream key" box send).

use sha2::{Digest, Sha256};

use crate::clock;
use crate::db::{Database, DbError};

/// A stream that has a key (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StreamKeyInfo {
    pub stream: String,
    pub created_at_ms: i64,
}

fn digest(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Longest stream name: it becomes a URL path segment.
pub const MAX_STREAM_NAME: usize = 64;

/// Stream names are URL path segments: `[A-Za-z0-9_-]`, 1 to 64 bytes.
pub fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_STREAM_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Database {
    /// Creates (or rotates) the key of `stream`; returns the key, which
    /// cannot be recovered later.
    pub async fn create_stream_key(&self, stream: &str) -> Result<String, DbError> {
        let key = format!("sk_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(
            "INSERT INTO stream_keys (stream, hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (stream) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at",
        )
        .bind(stream)
        .bind(digest(&key))
        .bind(clock::now_ms())
        .execute(self.pool())
        .await?;
        Ok(key)
    }

    /// The stream `key` publishes, if it is a current key.
    pub async fn stream_for_key(&self, key: &str) -> Result<Option<String>, DbError> {
        Ok(
            sqlx::query_scalar("SELECT stream FROM stream_keys WHERE hash = $1")
                .bind(digest(key))
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Whether `stream` has a key at all.
    pub async fn stream_has_key(&self, stream: &str) -> Result<bool, DbError> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT stream FROM stream_keys WHERE stream = $1")
                .bind(stream)
                .fetch_optional(self.pool())
                .await?;
        Ok(found.is_some())
    }

    pub async fn stream_keys(&self) -> Result<Vec<StreamKeyInfo>, DbError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT stream, created_at FROM stream_keys ORDER BY stream")
                .fetch_all(self.pool())
                .await?;
        Ok(rows
            .into_iter()
            .map(|(stream, created_at_ms)| StreamKeyInfo {
                stream,
                created_at_ms,
            })
            .collect())
    }

    /// Revokes the key of `stream`; false when it had none.
    pub async fn revoke_stream_key(&self, stream: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM stream_keys WHERE stream = $1")
            .bind(stream)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::valid_stream_name;
    use crate::db::Database;

    #[tokio::test]
    async fn keys_rotate_revoke_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&format!("sqlite://{}", dir.path().join("k.db").display()))
            .await
            .unwrap();
        let first = db.create_stream_key("cam1").await.unwrap();
        assert_eq!(
            db.stream_for_key(&first).await.unwrap().as_deref(),
            Some("cam1")
        );
        let second = db.create_stream_key("cam1").await.unwrap();
        assert_eq!(
            db.stream_for_key(&first).await.unwrap(),
            None,
            "rotated out"
        );
        assert_eq!(
            db.stream_for_key(&second).await.unwrap().as_deref(),
            Some("cam1")
        );
        let stored: String = sqlx::query_scalar("SELECT hash FROM stream_keys")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert!(!stored.contains(&second[3..]));
        assert_eq!(db.stream_keys().await.unwrap().len(), 1);
        assert!(db.revoke_stream_key("cam1").await.unwrap());
        assert_eq!(db.stream_for_key(&second).await.unwrap(), None);
        assert!(!db.revoke_stream_key("cam1").await.unwrap());
    }

    #[test]
    fn stream_names() {
        assert!(valid_stream_name("cam-1_a"));
        for bad in ["", "a/b", "a b", "..", "é", &"x".repeat(65)] {
            assert!(!valid_stream_name(bad), "{bad}");
        }
    }
}
