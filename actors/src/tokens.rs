//! API tokens: created once (the secret is shown to its creator and never
//! stored), kept as SHA-256 digests, checked on every authenticated request,
//! revocable.
//!
//! A token is 32 random bytes in hex prefixed `sf_`; being random and long,
//! a plain digest (no salt, no slow hash) is enough to make the stored
//! value useless to a thief.

use sha2::{Digest, Sha256};

use crate::clock;
use crate::db::{Database, DbError};

/// A stored token (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn secret() -> String {
    format!(
        "sf_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Database {
    /// Creates a token named `name`; returns its id and the secret, which
    /// cannot be recovered later.
    pub async fn create_token(&self, name: &str) -> Result<(String, String), DbError> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let token = secret();
        sqlx::query("INSERT INTO api_tokens (id, name, hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(name)
            .bind(digest(&token))
            .bind(clock::now_ms())
            .execute(self.pool())
            .await?;
        Ok((id, token))
    }

    /// Whether `token` is a live (not revoked) token.
    pub async fn token_is_valid(&self, token: &str) -> Result<bool, DbError> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL")
                .bind(digest(token))
                .fetch_optional(self.pool())
                .await?;
        Ok(found.is_some())
    }

    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, DbError> {
        let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, name, created_at, revoked_at FROM api_tokens ORDER BY created_at",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, created_at_ms, revoked_at_ms)| TokenInfo {
                id,
                name,
                created_at_ms,
                revoked_at_ms,
            })
            .collect())
    }

    /// Revokes token `id`; false when there is no such live token.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(clock::now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::db::Database;

    #[tokio::test]
    async fn tokens_verify_until_revoked_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let (id, token) = db.create_token("ci").await.unwrap();
        assert!(token.starts_with("sf_") && token.len() == 67);
        assert!(db.token_is_valid(&token).await.unwrap());
        assert!(!db.token_is_valid("sf_wrong").await.unwrap());
        let stored: String = sqlx::query_scalar("SELECT hash FROM api_tokens")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert!(!stored.contains(&token[3..]), "the secret is not stored");
        assert_eq!(db.tokens().await.unwrap()[0].name, "ci");
        assert!(db.revoke_token(&id).await.unwrap());
        assert!(!db.token_is_valid(&token).await.unwrap());
        assert!(!db.revoke_token(&id).await.unwrap());
    }
}
