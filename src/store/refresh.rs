//! Refresh tokens: rotating, stored as SHA-256, one family per grant. Each rotation links the old
//! token to its successor, so a retry of a lost answer can be told from a replay.

use async_trait::async_trait;

use super::{ClientId, GrantId, OrgId, PgStore, SqliteStore, StoreError};
use crate::clock::UnixTime;
use crate::scope::ScopeSet;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshRecord {
    pub token_hash: String,
    pub grant_id: GrantId,
    pub organization_id: OrgId,
    pub client_id: ClientId,
    #[sqlx(try_from = "String")]
    pub scope: ScopeSet,
    pub resource: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub rotated_at: Option<UnixTime>,
    /// The hash of the token that replaced this one.
    pub replaced_by: Option<String>,
    pub revoked_at: Option<UnixTime>,
    /// The JWK SHA-256 thumbprint of the DPoP key a public client's token is bound to: only a
    /// proof signed by that key may present it (RFC 9449 §5).
    pub jkt: Option<String>,
}

#[async_trait]
pub trait RefreshStore: Send + Sync {
    async fn insert_refresh(&self, token: &RefreshRecord) -> Result<(), StoreError>;
    async fn refresh(&self, token_hash: &str) -> Result<Option<RefreshRecord>, StoreError>;
    /// Marks `old` rotated and stores `successor`, atomically; `false` if `old` was not live.
    async fn rotate_refresh(
        &self,
        old: &str,
        successor: &RefreshRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// A retry of a rotation whose answer was lost: revokes the unused `previous` successor of
    /// `old` and stores `successor` instead; `false` when `previous` was already used.
    async fn retry_rotation(
        &self,
        old: &str,
        previous: &str,
        successor: &RefreshRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    async fn revoke_refresh(&self, token_hash: &str, now: UnixTime) -> Result<bool, StoreError>;
}

const INSERT: &str = "\
INSERT INTO refresh_tokens (token_hash, grant_id, organization_id, client_id, scope, resource,
    created_at, expires_at, rotated_at, replaced_by, revoked_at, jkt)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, NULL, $9)";

const GET: &str = "\
SELECT token_hash, grant_id, organization_id, client_id, scope, resource, created_at, expires_at,
    rotated_at, replaced_by, revoked_at, jkt
FROM refresh_tokens WHERE token_hash = $1";

const ROTATE: &str = "\
UPDATE refresh_tokens SET rotated_at = $1, replaced_by = $2
WHERE token_hash = $3 AND rotated_at IS NULL AND revoked_at IS NULL";

/// Swaps the old token's successor first: this locks the old row, so of two concurrent retries
/// only one sees `previous` still in place.
const SWAP_SUCCESSOR: &str = "\
UPDATE refresh_tokens SET replaced_by = $1 WHERE token_hash = $2 AND replaced_by = $3";

/// Revokes a token that was never used (neither rotated nor revoked); no row means it was used.
const REVOKE_UNUSED: &str = "\
UPDATE refresh_tokens SET revoked_at = $1
WHERE token_hash = $2 AND rotated_at IS NULL AND revoked_at IS NULL";

const REVOKE: &str = "\
UPDATE refresh_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL";

macro_rules! refresh_store {
    ($store:ty, $db:ty) => {
        impl $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.insert_refresh_with", otel.kind = "client", db.operation.name = "insert_refresh_with", db.system.name = Self::DB_SYSTEM))]
            async fn insert_refresh_with<'e, E>(ex: E, t: &RefreshRecord) -> Result<(), StoreError>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                sqlx::query(INSERT)
                    .bind(&t.token_hash)
                    .bind(t.grant_id.as_str())
                    .bind(t.organization_id.as_str())
                    .bind(t.client_id.as_str())
                    .bind(t.scope.to_string())
                    .bind(&t.resource)
                    .bind(t.created_at)
                    .bind(t.expires_at)
                    .bind(t.jkt.as_deref())
                    .execute(ex)
                    .await?;
                Ok(())
            }

            /// The end of a rotation: when `claimed` (the conditional update that took the old
            /// token) touched its one row, stores `successor` and commits; otherwise does
            /// nothing.
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.store_successor", otel.kind = "client", db.operation.name = "store_successor", db.system.name = Self::DB_SYSTEM))]
            async fn store_successor(
                mut tx: sqlx::Transaction<'_, $db>,
                claimed: u64,
                successor: &RefreshRecord,
            ) -> Result<bool, StoreError> {
                if claimed != 1 {
                    return Ok(false);
                }
                Self::insert_refresh_with(&mut *tx, successor).await?;
                tx.commit().await?;
                Ok(true)
            }
        }

        #[async_trait]
        impl RefreshStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.insert_refresh", otel.kind = "client", db.operation.name = "insert_refresh", db.system.name = Self::DB_SYSTEM))]
            async fn insert_refresh(&self, t: &RefreshRecord) -> Result<(), StoreError> {
                Self::insert_refresh_with(&self.pool, t).await
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.refresh", otel.kind = "client", db.operation.name = "refresh", db.system.name = Self::DB_SYSTEM))]
            async fn refresh(&self, token_hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
                Ok(sqlx::query_as(GET)
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.rotate_refresh", otel.kind = "client", db.operation.name = "rotate_refresh", db.system.name = Self::DB_SYSTEM))]
            async fn rotate_refresh(
                &self,
                old: &str,
                successor: &RefreshRecord,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(ROTATE)
                    .bind(now)
                    .bind(&successor.token_hash)
                    .bind(old)
                    .execute(&mut *tx)
                    .await?;
                Self::store_successor(tx, done.rows_affected(), successor).await
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.retry_rotation", otel.kind = "client", db.operation.name = "retry_rotation", db.system.name = Self::DB_SYSTEM))]
            async fn retry_rotation(
                &self,
                old: &str,
                previous: &str,
                successor: &RefreshRecord,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                let swapped = sqlx::query(SWAP_SUCCESSOR)
                    .bind(&successor.token_hash)
                    .bind(old)
                    .bind(previous)
                    .execute(&mut *tx)
                    .await?;
                if swapped.rows_affected() != 1 {
                    return Ok(false);
                }
                let done = sqlx::query(REVOKE_UNUSED)
                    .bind(now)
                    .bind(previous)
                    .execute(&mut *tx)
                    .await?;
                Self::store_successor(tx, done.rows_affected(), successor).await
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.revoke_refresh", otel.kind = "client", db.operation.name = "revoke_refresh", db.system.name = Self::DB_SYSTEM))]
            async fn revoke_refresh(
                &self,
                token_hash: &str,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(REVOKE)
                    .bind(now)
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

refresh_store!(SqliteStore, sqlx::Sqlite);
refresh_store!(PgStore, sqlx::Postgres);
