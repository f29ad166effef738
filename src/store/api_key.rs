//! API keys: one user in one organisation, scoped, optionally expiring, stored as SHA-256 only.
//! A key is live only while the user, the organisation and the membership are.

use async_trait::async_trait;

use super::{
    ApiKey, ApiKeyId, ApiKeyPrincipal, NewApiKey, OrgId, PgStore, SqliteStore, StoreError,
};
use crate::clock::UnixTime;

#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn create_api_key(&self, key: &NewApiKey) -> Result<(), StoreError>;
    async fn list_api_keys(&self, org: &OrgId) -> Result<Vec<ApiKey>, StoreError>;
    /// The organisation that owns an API key id (for operator commands given only the id).
    async fn api_key_org(&self, id: &ApiKeyId) -> Result<Option<OrgId>, StoreError>;
    /// Revokes a key; `Ok(false)` when it was already revoked.
    async fn revoke_api_key(
        &self,
        org: &OrgId,
        id: &ApiKeyId,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Resolves a presented key (by its SHA-256) to a live principal: key not revoked or expired,
    /// user and organisation enabled, user still a member. Records the use (at most once a minute).
    async fn authenticate_api_key(
        &self,
        key_hash: &str,
        now: UnixTime,
    ) -> Result<Option<ApiKeyPrincipal>, StoreError>;
}

/// How often `last_used_at` is rewritten for a busy key (and so how long a key is trusted from
/// memory before the store is asked again).
pub const LAST_USED_GRANULARITY: i64 = 60;

/// Inserts the key only for an existing membership of that user in that organisation.
const INSERT: &str = "\
INSERT INTO api_keys (id, organization_id, user_id, name, key_hash, key_hint,
    scopes, expires_at, last_used_at, revoked_at, created_at)
SELECT $1, m.organization_id, m.user_id, $4, $5, $6, $7, $8, NULL, NULL, $9
FROM memberships m WHERE m.organization_id = $2 AND m.user_id = $3";

const LIST: &str = "\
SELECT k.id, k.organization_id, k.user_id, u.email, k.name, k.key_hint, k.scopes,
    k.expires_at, k.last_used_at, k.revoked_at, k.created_at
FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.organization_id = $1 ORDER BY k.created_at, k.id";

const ORG_OF: &str = "SELECT organization_id FROM api_keys WHERE id = $1";

const REVOKE: &str = "\
UPDATE api_keys SET revoked_at = $1
WHERE organization_id = $2 AND id = $3 AND revoked_at IS NULL";

const EXISTS: &str = "SELECT id FROM api_keys WHERE organization_id = $1 AND id = $2";

const AUTHENTICATE: &str = "\
SELECT k.id, k.organization_id, k.user_id, k.scopes, k.last_used_at, k.expires_at
FROM api_keys k
JOIN memberships m ON m.user_id = k.user_id AND m.organization_id = k.organization_id
JOIN users u ON u.id = k.user_id
JOIN organizations o ON o.id = k.organization_id
WHERE k.key_hash = $1 AND k.revoked_at IS NULL
  AND (k.expires_at IS NULL OR k.expires_at > $2)
  AND u.disabled = FALSE AND o.disabled = FALSE AND m.disabled = FALSE";

const TOUCH: &str = "\
UPDATE api_keys SET last_used_at = $1 WHERE organization_id = $2 AND id = $3
  AND (last_used_at IS NULL OR last_used_at <= $4)";

macro_rules! api_key_store {
    ($store:ty) => {
        #[async_trait]
        impl ApiKeyStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_api_key", otel.kind = "client", db.operation.name = "create_api_key", db.system.name = Self::DB_SYSTEM))]
            async fn create_api_key(&self, key: &NewApiKey) -> Result<(), StoreError> {
                let done = sqlx::query(INSERT)
                    .bind(key.id.as_str())
                    .bind(key.organization_id.as_str())
                    .bind(key.user_id.as_str())
                    .bind(&key.name)
                    .bind(&key.key_hash)
                    .bind(&key.key_hint)
                    .bind(key.scopes.to_string())
                    .bind(key.expires_at)
                    .bind(key.created_at)
                    .execute(&self.pool)
                    .await?;
                StoreError::found(
                    done.rows_affected(),
                    "membership of that user in that organisation",
                )
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.list_api_keys", otel.kind = "client", db.operation.name = "list_api_keys", db.system.name = Self::DB_SYSTEM))]
            async fn list_api_keys(&self, org: &OrgId) -> Result<Vec<ApiKey>, StoreError> {
                Ok(sqlx::query_as(LIST)
                    .bind(org.as_str())
                    .fetch_all(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.api_key_org", otel.kind = "client", db.operation.name = "api_key_org", db.system.name = Self::DB_SYSTEM))]
            async fn api_key_org(&self, id: &ApiKeyId) -> Result<Option<OrgId>, StoreError> {
                let org: Option<(OrgId,)> = sqlx::query_as(ORG_OF)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(org.map(|(o,)| o))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.revoke_api_key", otel.kind = "client", db.operation.name = "revoke_api_key", db.system.name = Self::DB_SYSTEM))]
            async fn revoke_api_key(
                &self,
                org: &OrgId,
                id: &ApiKeyId,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let change = self.changes.pending(Some(org));
                let done = sqlx::query(REVOKE)
                    .bind(now)
                    .bind(org.as_str())
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 1 {
                    change.done().await;
                    return Ok(true);
                }
                let exists: Option<(String,)> = sqlx::query_as(EXISTS)
                    .bind(org.as_str())
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                match exists {
                    Some(_) => Ok(false),
                    None => Err(StoreError::NotFound("API key")),
                }
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.authenticate_api_key", otel.kind = "client", db.operation.name = "authenticate_api_key", db.system.name = Self::DB_SYSTEM))]
            async fn authenticate_api_key(
                &self,
                key_hash: &str,
                now: UnixTime,
            ) -> Result<Option<ApiKeyPrincipal>, StoreError> {
                let found: Option<ApiKeyPrincipal> = sqlx::query_as(AUTHENTICATE)
                    .bind(key_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(principal) = found else {
                    return Ok(None);
                };
                // A write only when the minute has turned: most calls of a busy key read only.
                if principal
                    .last_used_at
                    .is_some_and(|at| at > now - LAST_USED_GRANULARITY)
                {
                    return Ok(Some(principal));
                }
                sqlx::query(TOUCH)
                    .bind(now)
                    .bind(principal.organization_id.as_str())
                    .bind(principal.key_id.as_str())
                    .bind(now - LAST_USED_GRANULARITY)
                    .execute(&self.pool)
                    .await?;
                Ok(Some(principal))
            }
        }
    };
}

api_key_store!(SqliteStore);
api_key_store!(PgStore);
