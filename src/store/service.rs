//! Machine clients (the client credentials grant): each is a service identity of one
//! organisation with fixed scopes, authenticated by a secret (stored as SHA-256) or by a private
//! key whose public half is registered. A client is live while it is not revoked and its
//! organisation is enabled. Also the one-time JWT ids (`jti`) of assertions and DPoP proofs,
//! kept until the JWT expires so a second sight on any replica is a replay.

use async_trait::async_trait;

use super::{ClientId, OrgId, PgStore, SqliteStore, StoreError};
use crate::clock::UnixTime;
use crate::scope::ScopeSet;

/// At most this many live machine clients per organisation (revoked ones are purged by
/// housekeeping with revoked grants).
pub const MAX_SERVICE_CLIENTS: i64 = 50;

/// How a machine client proves who it is at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceAuth {
    /// `client_secret_basic` (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9).
    PrivateKeyJwt,
}

impl ServiceAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "private_key_jwt" => Some(Self::PrivateKeyJwt),
            _ => None,
        }
    }
}

impl TryFrom<String> for ServiceAuth {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("unknown auth method {s}"))
    }
}

/// A machine client as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ServiceClient {
    pub id: ClientId,
    pub organization_id: OrgId,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub scopes: ScopeSet,
    #[sqlx(try_from = "String")]
    pub auth_method: ServiceAuth,
    pub secret_hash: Option<String>,
    /// The registered public keys (a JWKS document), for `private_key_jwt`.
    pub jwks: Option<String>,
    /// Where the public keys are published, for `private_key_jwt`.
    pub jwks_uri: Option<String>,
    pub created_by: Option<String>,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
    /// Whether the organisation requires DPoP-bound tokens (read with the live client only).
    #[sqlx(default)]
    pub org_requires_dpop: bool,
}

#[async_trait]
pub trait ServiceClientStore: Send + Sync {
    /// Stores a new machine client; refused past [`MAX_SERVICE_CLIENTS`] in its organisation.
    async fn insert_service_client(&self, c: &ServiceClient) -> Result<(), StoreError>;
    /// A machine client by id, live or not (the token endpoint knows only the id it is given).
    async fn service_client(&self, id: &ClientId) -> Result<Option<ServiceClient>, StoreError>;
    /// The client if it is not revoked and its organisation is enabled.
    async fn live_service_client(
        &self,
        org: &OrgId,
        id: &ClientId,
    ) -> Result<Option<ServiceClient>, StoreError>;
    /// Every machine client of the organisation, oldest first.
    async fn service_clients(&self, org: &OrgId) -> Result<Vec<ServiceClient>, StoreError>;
    /// Revokes a machine client (its tokens stop on the next call); `false` if it already was.
    async fn revoke_service_client(
        &self,
        org: &OrgId,
        id: &ClientId,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Notes that a token was issued to the client.
    async fn touch_service_client(
        &self,
        org: &OrgId,
        id: &ClientId,
        now: UnixTime,
    ) -> Result<(), StoreError>;
    /// Records a JWT id until `expires_at`; `false` when it was already recorded (a replay).
    async fn remember_jti(&self, digest: &str, expires_at: UnixTime) -> Result<bool, StoreError>;
    /// Whether the organisation requires DPoP-bound tokens for all its clients.
    async fn org_requires_dpop(&self, org: &OrgId) -> Result<bool, StoreError>;
    async fn set_org_requires_dpop(&self, org: &OrgId, required: bool) -> Result<(), StoreError>;
}

/// Inserted only while the organisation is under its limit of live machine clients: one
/// statement, so no transaction has to upgrade a read lock (SQLite) and no two inserts race past
/// the limit unseen for long.
const INSERT: &str = "\
INSERT INTO service_clients (id, organization_id, name, scopes, auth_method, secret_hash, jwks,
    jwks_uri, created_by, created_at, last_used_at, revoked_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, NULL
WHERE (SELECT COUNT(*) FROM service_clients
       WHERE organization_id = $2 AND revoked_at IS NULL) < $11";

const BY_ID: &str = "\
SELECT id, organization_id, name, scopes, auth_method, secret_hash, jwks, jwks_uri,
    created_by, created_at, last_used_at, revoked_at
FROM service_clients WHERE id = $1";

const LIVE: &str = "\
SELECT s.id, s.organization_id, s.name, s.scopes, s.auth_method, s.secret_hash, s.jwks,
    s.jwks_uri, s.created_by, s.created_at, s.last_used_at, s.revoked_at,
    o.require_dpop AS org_requires_dpop
FROM service_clients s JOIN organizations o ON o.id = s.organization_id
WHERE s.organization_id = $1 AND s.id = $2 AND s.revoked_at IS NULL AND o.disabled = FALSE";

const OF_ORG: &str = "\
SELECT id, organization_id, name, scopes, auth_method, secret_hash, jwks, jwks_uri,
    created_by, created_at, last_used_at, revoked_at
FROM service_clients WHERE organization_id = $1 ORDER BY created_at, id";

const REVOKE: &str = "\
UPDATE service_clients SET revoked_at = $1
WHERE organization_id = $2 AND id = $3 AND revoked_at IS NULL";

const TOUCH: &str =
    "UPDATE service_clients SET last_used_at = $1 WHERE organization_id = $2 AND id = $3";

const REMEMBER_JTI: &str = "\
INSERT INTO seen_jtis (digest, expires_at) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING";

const REQUIRES_DPOP: &str = "SELECT require_dpop FROM organizations WHERE id = $1";

const SET_REQUIRES_DPOP: &str = "UPDATE organizations SET require_dpop = $1 WHERE id = $2";

macro_rules! service_client_store {
    ($store:ty) => {
        #[async_trait]
        impl ServiceClientStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.insert_service_client", otel.kind = "client", db.operation.name = "insert_service_client", db.system.name = Self::DB_SYSTEM))]
            async fn insert_service_client(&self, c: &ServiceClient) -> Result<(), StoreError> {
                let done = sqlx::query(INSERT)
                    .bind(c.id.as_str())
                    .bind(c.organization_id.as_str())
                    .bind(&c.name)
                    .bind(c.scopes.to_string())
                    .bind(c.auth_method.as_str())
                    .bind(c.secret_hash.as_deref())
                    .bind(c.jwks.as_deref())
                    .bind(c.jwks_uri.as_deref())
                    .bind(c.created_by.as_deref())
                    .bind(c.created_at)
                    .bind(MAX_SERVICE_CLIENTS)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!(
                        "an organisation has at most {MAX_SERVICE_CLIENTS} machine clients; revoke one first"
                    )));
                }
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.service_client", otel.kind = "client", db.operation.name = "service_client", db.system.name = Self::DB_SYSTEM))]
            async fn service_client(
                &self,
                id: &ClientId,
            ) -> Result<Option<ServiceClient>, StoreError> {
                Ok(sqlx::query_as(BY_ID)
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.live_service_client", otel.kind = "client", db.operation.name = "live_service_client", db.system.name = Self::DB_SYSTEM))]
            async fn live_service_client(
                &self,
                org: &OrgId,
                id: &ClientId,
            ) -> Result<Option<ServiceClient>, StoreError> {
                Ok(sqlx::query_as(LIVE)
                    .bind(org.as_str())
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.service_clients", otel.kind = "client", db.operation.name = "service_clients", db.system.name = Self::DB_SYSTEM))]
            async fn service_clients(&self, org: &OrgId) -> Result<Vec<ServiceClient>, StoreError> {
                Ok(sqlx::query_as(OF_ORG)
                    .bind(org.as_str())
                    .fetch_all(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.revoke_service_client", otel.kind = "client", db.operation.name = "revoke_service_client", db.system.name = Self::DB_SYSTEM))]
            async fn revoke_service_client(
                &self,
                org: &OrgId,
                id: &ClientId,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let change = self.changes.pending(Some(org));
                let done = sqlx::query(REVOKE)
                    .bind(now)
                    .bind(org.as_str())
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                change.done().await;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.touch_service_client", otel.kind = "client", db.operation.name = "touch_service_client", db.system.name = Self::DB_SYSTEM))]
            async fn touch_service_client(
                &self,
                org: &OrgId,
                id: &ClientId,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(TOUCH)
                    .bind(now)
                    .bind(org.as_str())
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.remember_jti", otel.kind = "client", db.operation.name = "remember_jti", db.system.name = Self::DB_SYSTEM))]
            async fn remember_jti(
                &self,
                digest: &str,
                expires_at: UnixTime,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(REMEMBER_JTI)
                    .bind(digest)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.org_requires_dpop", otel.kind = "client", db.operation.name = "org_requires_dpop", db.system.name = Self::DB_SYSTEM))]
            async fn org_requires_dpop(&self, org: &OrgId) -> Result<bool, StoreError> {
                let row: Option<(bool,)> = sqlx::query_as(REQUIRES_DPOP)
                    .bind(org.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some_and(|(r,)| r))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.set_org_requires_dpop", otel.kind = "client", db.operation.name = "set_org_requires_dpop", db.system.name = Self::DB_SYSTEM))]
            async fn set_org_requires_dpop(
                &self,
                org: &OrgId,
                required: bool,
            ) -> Result<(), StoreError> {
                let change = self.changes.pending(Some(org));
                let done = sqlx::query(SET_REQUIRES_DPOP)
                    .bind(required)
                    .bind(org.as_str())
                    .execute(&self.pool)
                    .await?;
                change.done().await;
                StoreError::found(done.rows_affected(), "organization")
            }
        }
    };
}

service_client_store!(SqliteStore);
service_client_store!(PgStore);
