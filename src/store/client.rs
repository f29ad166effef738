//! OAuth clients: registered through RFC 7591, or described by a Client ID Metadata Document.

use async_trait::async_trait;

use super::{ClientId, LAST_USED_GRANULARITY, PgStore, SqliteStore, StoreError};
use crate::clock::UnixTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Registered through RFC 7591 dynamic registration.
    Dcr,
    /// Described by a Client ID Metadata Document fetched from its URL.
    Cimd,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Dcr => "dcr",
            ClientKind::Cimd => "cimd",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientRecord {
    pub id: ClientId,
    pub kind: ClientKind,
    /// The client's metadata as JSON (RFC 7591 field names).
    pub metadata: serde_json::Value,
    pub secret_hash: Option<String>,
    pub registration_token_hash: Option<String>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
    pub expires_at: Option<UnixTime>,
    pub disabled: bool,
}

/// The stored row. Unlike the other records, a client is not decoded directly: its metadata is
/// JSON kept in a TEXT column, which PostgreSQL's JSON decoder does not accept.
#[derive(sqlx::FromRow)]
struct ClientRow {
    id: ClientId,
    kind: String,
    metadata: String,
    secret_hash: Option<String>,
    registration_token_hash: Option<String>,
    created_at: UnixTime,
    updated_at: UnixTime,
    last_used_at: Option<UnixTime>,
    expires_at: Option<UnixTime>,
    disabled: bool,
}

impl From<ClientRow> for ClientRecord {
    fn from(r: ClientRow) -> Self {
        ClientRecord {
            id: r.id,
            // The column has a CHECK constraint: 'dcr' or 'cimd'.
            kind: if r.kind == "cimd" {
                ClientKind::Cimd
            } else {
                ClientKind::Dcr
            },
            metadata: serde_json::from_str(&r.metadata).unwrap_or(serde_json::Value::Null),
            secret_hash: r.secret_hash,
            registration_token_hash: r.registration_token_hash,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            disabled: r.disabled,
        }
    }
}

#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn create_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    async fn client(&self, id: &ClientId) -> Result<Option<ClientRecord>, StoreError>;
    /// Replaces a client's metadata (RFC 7592 update); `false` when no enabled client has that id.
    async fn update_client_metadata(
        &self,
        id: &ClientId,
        metadata: &serde_json::Value,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Disables a client and revokes every grant made to it.
    async fn disable_client(&self, id: &ClientId, now: UnixTime) -> Result<bool, StoreError>;
    /// Records use and pushes back the expiry of unused clients, at most once a minute.
    async fn touch_client(
        &self,
        id: &ClientId,
        now: UnixTime,
        expires_at: Option<UnixTime>,
    ) -> Result<(), StoreError>;
    /// Inserts or refreshes a metadata-document client.
    async fn upsert_cimd_client(
        &self,
        id: &ClientId,
        metadata: &serde_json::Value,
        now: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError>;
    /// Deletes clients past their expiry that hold no live grant: unused dynamically registered
    /// ones, and metadata-document ones whose cached copy went stale (fetched again on use).
    async fn purge_unused_clients(&self, now: UnixTime) -> Result<u64, StoreError>;
}

const INSERT: &str = "\
INSERT INTO oauth_clients (id, kind, metadata, secret_hash, registration_token_hash,
    created_at, updated_at, last_used_at, expires_at, disabled)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

const GET: &str = "\
SELECT id, kind, metadata, secret_hash, registration_token_hash,
    created_at, updated_at, last_used_at, expires_at, disabled
FROM oauth_clients WHERE id = $1";

const UPDATE_METADATA: &str = "\
UPDATE oauth_clients SET metadata = $1, updated_at = $2 WHERE id = $3 AND disabled = FALSE";

const DISABLE: &str = "\
UPDATE oauth_clients SET disabled = TRUE, updated_at = $1 WHERE id = $2 AND disabled = FALSE";

const REVOKE_GRANTS: &str = "\
UPDATE grants SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL";

const REVOKE_REFRESH_TOKENS: &str = "\
UPDATE refresh_tokens SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL";

/// Only dynamically registered clients expire when unused; a metadata document's expiry is its
/// cache lifetime. Written at most once a [`LAST_USED_GRANULARITY`] per client: a popular
/// agent's row is shared by every organisation's tokens, and a write per token made it the
/// hottest row of the database (the scale model: 21,348 updates an hour on 3 rows). On
/// PostgreSQL a row that does not match takes no row lock and leaves no dead version.
const TOUCH: &str = "\
UPDATE oauth_clients SET last_used_at = $1,
    expires_at = CASE WHEN kind = 'dcr' THEN $2 ELSE expires_at END
WHERE id = $3 AND (last_used_at IS NULL OR last_used_at <= $4)";

/// Never turns a registered client into a metadata-document one.
const UPSERT_CIMD: &str = "\
INSERT INTO oauth_clients (id, kind, metadata, secret_hash, registration_token_hash,
    created_at, updated_at, last_used_at, expires_at, disabled)
VALUES ($1, 'cimd', $2, NULL, NULL, $3, $3, NULL, $4, FALSE)
ON CONFLICT (id) DO UPDATE SET metadata = excluded.metadata,
    updated_at = excluded.updated_at, expires_at = excluded.expires_at
WHERE oauth_clients.kind = 'cimd'";

const PURGE_UNUSED: &str = "\
DELETE FROM oauth_clients WHERE expires_at IS NOT NULL AND expires_at < $1
AND NOT EXISTS (
    SELECT 1 FROM grants g WHERE g.client_id = oauth_clients.id AND g.revoked_at IS NULL
)";

macro_rules! client_store {
    ($store:ty) => {
        #[async_trait]
        impl ClientStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_client", otel.kind = "client", db.operation.name = "create_client", db.system.name = Self::DB_SYSTEM))]
            async fn create_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
                sqlx::query(INSERT)
                    .bind(c.id.as_str())
                    .bind(c.kind.as_str())
                    .bind(c.metadata.to_string())
                    .bind(&c.secret_hash)
                    .bind(&c.registration_token_hash)
                    .bind(c.created_at)
                    .bind(c.updated_at)
                    .bind(c.last_used_at)
                    .bind(c.expires_at)
                    .bind(c.disabled)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        StoreError::conflict_or(e, || {
                            "a client with that id already exists".to_owned()
                        })
                    })?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.client", otel.kind = "client", db.operation.name = "client", db.system.name = Self::DB_SYSTEM))]
            async fn client(&self, id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
                let row: Option<ClientRow> = sqlx::query_as(GET)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(Into::into))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.update_client_metadata", otel.kind = "client", db.operation.name = "update_client_metadata", db.system.name = Self::DB_SYSTEM))]
            async fn update_client_metadata(
                &self,
                id: &ClientId,
                metadata: &serde_json::Value,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(UPDATE_METADATA)
                    .bind(metadata.to_string())
                    .bind(now)
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.disable_client", otel.kind = "client", db.operation.name = "disable_client", db.system.name = Self::DB_SYSTEM))]
            async fn disable_client(
                &self,
                id: &ClientId,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let change = self.changes.pending(None);
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(DISABLE)
                    .bind(now)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                for revoke in [REVOKE_GRANTS, REVOKE_REFRESH_TOKENS] {
                    sqlx::query(revoke)
                        .bind(now)
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                change.done().await;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.touch_client", otel.kind = "client", db.operation.name = "touch_client", db.system.name = Self::DB_SYSTEM))]
            async fn touch_client(
                &self,
                id: &ClientId,
                now: UnixTime,
                expires_at: Option<UnixTime>,
            ) -> Result<(), StoreError> {
                sqlx::query(TOUCH)
                    .bind(now)
                    .bind(expires_at)
                    .bind(id.as_str())
                    .bind(now - LAST_USED_GRANULARITY)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.upsert_cimd_client", otel.kind = "client", db.operation.name = "upsert_cimd_client", db.system.name = Self::DB_SYSTEM))]
            async fn upsert_cimd_client(
                &self,
                id: &ClientId,
                metadata: &serde_json::Value,
                now: UnixTime,
                expires_at: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(UPSERT_CIMD)
                    .bind(id.as_str())
                    .bind(metadata.to_string())
                    .bind(now)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.purge_unused_clients", otel.kind = "client", db.operation.name = "purge_unused_clients", db.system.name = Self::DB_SYSTEM))]
            async fn purge_unused_clients(&self, now: UnixTime) -> Result<u64, StoreError> {
                let done = sqlx::query(PURGE_UNUSED)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

client_store!(SqliteStore);
client_store!(PgStore);
