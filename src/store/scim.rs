//! SCIM provisioning: the organisation's tokens and the Users its identity provider manages, and
//! the one-transaction deprovisioning of a member.

use async_trait::async_trait;

use super::{OrgId, PgStore, SqliteStore, StoreError, UserId};
use crate::clock::UnixTime;

/// SCIM Users one organisation may hold: the identity provider is trusted, but not unbounded.
pub const MAX_SCIM_USERS: i64 = 100_000;
/// Live SCIM tokens per organisation.
pub const MAX_SCIM_TOKENS: i64 = 20;

/// A SCIM token as its organisation's admins see it (never the token).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct ScimToken {
    pub id: String,
    pub organization_id: OrgId,
    pub name: String,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
}

/// A User as stored: the kept attributes as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScimUserRow {
    pub id: String,
    pub organization_id: OrgId,
    pub resource: String,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// Which Users a listing returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScimFilter {
    All,
    /// Lower-cased: userName compares without regard to case.
    UserNameKey(String),
    ExternalId(String),
    Id(String),
}

/// A User to write.
pub struct ScimUserWrite<'a> {
    pub org: &'a OrgId,
    pub id: &'a str,
    pub user_name_key: &'a str,
    pub external_id: Option<&'a str>,
    pub resource: &'a str,
    pub now: UnixTime,
}

#[async_trait]
pub trait ScimStore: Send + Sync {
    async fn create_scim_token(
        &self,
        org: &OrgId,
        name: &str,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<ScimToken, StoreError>;
    async fn scim_tokens(&self, org: &OrgId) -> Result<Vec<ScimToken>, StoreError>;
    async fn revoke_scim_token(
        &self,
        org: &OrgId,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// The live token with this hash (and notes its use, at most once a minute).
    async fn scim_token_by_hash(
        &self,
        token_hash: &str,
        now: UnixTime,
    ) -> Result<Option<ScimToken>, StoreError>;

    async fn create_scim_user(&self, user: ScimUserWrite<'_>) -> Result<ScimUserRow, StoreError>;
    async fn scim_user(&self, org: &OrgId, id: &str) -> Result<Option<ScimUserRow>, StoreError>;
    /// One page (1-based `start`) and the total that matched.
    async fn scim_users(
        &self,
        org: &OrgId,
        filter: &ScimFilter,
        start: i64,
        count: i64,
    ) -> Result<(i64, Vec<ScimUserRow>), StoreError>;
    /// `false` when there is no such User.
    async fn replace_scim_user(&self, user: ScimUserWrite<'_>) -> Result<bool, StoreError>;
    async fn delete_scim_user(&self, org: &OrgId, id: &str) -> Result<bool, StoreError>;

    /// Whether the member's suspension is the identity provider's own (a SCIM reactivation may
    /// lift only those; an admin's suspension stays).
    async fn suspended_by_scim(&self, org: &OrgId, user: &UserId) -> Result<bool, StoreError>;
    /// Suspends a member and revokes every grant, refresh token and API key they hold in the
    /// organisation, in one transaction; `false` when they are not a member.
    async fn deprovision_member(
        &self,
        org: &OrgId,
        user: &UserId,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
}

const TOKEN_COLUMNS_INSERT: &str = "\
INSERT INTO scim_tokens (id, organization_id, name, token_hash, created_at)
SELECT $1, $2, $3, $4, $5
WHERE (SELECT COUNT(*) FROM scim_tokens WHERE organization_id = $2 AND revoked_at IS NULL) < $6
RETURNING id, organization_id, name, created_at, last_used_at";

const TOKENS: &str = "\
SELECT id, organization_id, name, created_at, last_used_at FROM scim_tokens
WHERE organization_id = $1 AND revoked_at IS NULL ORDER BY created_at, id";

const REVOKE_TOKEN: &str = "\
UPDATE scim_tokens SET revoked_at = $3
WHERE organization_id = $1 AND id = $2 AND revoked_at IS NULL";

const TOKEN_BY_HASH: &str = "\
SELECT t.id, t.organization_id, t.name, t.created_at, t.last_used_at
FROM scim_tokens t JOIN organizations o ON o.id = t.organization_id
WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND NOT o.disabled";

const TOKEN_USED: &str = "\
UPDATE scim_tokens SET last_used_at = $2 WHERE organization_id = $3 AND id = $1";

const COUNT_USERS: &str = "SELECT COUNT(*) FROM scim_users WHERE organization_id = $1";

const INSERT_USER: &str = "\
INSERT INTO scim_users
    (id, organization_id, user_name_key, external_id, resource, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $6)
RETURNING id, organization_id, resource, created_at, updated_at";

const USER: &str = "\
SELECT id, organization_id, resource, created_at, updated_at FROM scim_users
WHERE organization_id = $1 AND id = $2";

/// `$2` selects the filter: 0 all, 1 userName, 2 externalId, 3 id; `$3` is its value.
const COUNT_MATCHING: &str = "\
SELECT COUNT(*) FROM scim_users WHERE organization_id = $1 AND ($2 = 0 OR ($2 = 1 AND user_name_key = $3)
    OR ($2 = 2 AND external_id = $3) OR ($2 = 3 AND id = $3))";

const PAGE: &str = "\
SELECT id, organization_id, resource, created_at, updated_at FROM scim_users
WHERE organization_id = $1 AND ($2 = 0 OR ($2 = 1 AND user_name_key = $3)
    OR ($2 = 2 AND external_id = $3) OR ($2 = 3 AND id = $3))
ORDER BY created_at, id LIMIT $4 OFFSET $5";

const REPLACE_USER: &str = "\
UPDATE scim_users SET user_name_key = $3, external_id = $4, resource = $5, updated_at = $6
WHERE organization_id = $1 AND id = $2";

const DELETE_USER: &str = "DELETE FROM scim_users WHERE organization_id = $1 AND id = $2";

const SUSPEND: &str = "\
UPDATE memberships SET disabled = TRUE, suspended_by = COALESCE(suspended_by, 'scim')
WHERE organization_id = $1 AND user_id = $2";

const SUSPENDED_BY_SCIM: &str = "\
SELECT 1 FROM memberships
WHERE organization_id = $1 AND user_id = $2 AND disabled AND suspended_by = 'scim'";

fn filter_args(filter: &ScimFilter) -> (i32, &str) {
    match filter {
        ScimFilter::All => (0, ""),
        ScimFilter::UserNameKey(v) => (1, v),
        ScimFilter::ExternalId(v) => (2, v),
        ScimFilter::Id(v) => (3, v),
    }
}

fn taken(e: sqlx::Error) -> StoreError {
    StoreError::conflict_or(e, || {
        "a User with that userName already exists in this organisation".to_owned()
    })
}

macro_rules! scim_store {
    ($store:ty) => {
        #[async_trait]
        impl ScimStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_scim_token", otel.kind = "client", db.operation.name = "create_scim_token", db.system.name = Self::DB_SYSTEM))]
            async fn create_scim_token(
                &self,
                org: &OrgId,
                name: &str,
                token_hash: &str,
                now: UnixTime,
            ) -> Result<ScimToken, StoreError> {
                let created: Option<ScimToken> = sqlx::query_as(TOKEN_COLUMNS_INSERT)
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(org.as_str())
                    .bind(name)
                    .bind(token_hash)
                    .bind(now)
                    .bind(MAX_SCIM_TOKENS)
                    .fetch_optional(&self.pool)
                    .await?;
                created.ok_or_else(|| {
                    StoreError::Conflict(format!(
                        "the organisation already has {MAX_SCIM_TOKENS} SCIM tokens: revoke one first"
                    ))
                })
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.scim_tokens", otel.kind = "client", db.operation.name = "scim_tokens", db.system.name = Self::DB_SYSTEM))]
            async fn scim_tokens(&self, org: &OrgId) -> Result<Vec<ScimToken>, StoreError> {
                Ok(sqlx::query_as(TOKENS)
                    .bind(org.as_str())
                    .fetch_all(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.revoke_scim_token", otel.kind = "client", db.operation.name = "revoke_scim_token", db.system.name = Self::DB_SYSTEM))]
            async fn revoke_scim_token(
                &self,
                org: &OrgId,
                id: &str,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(REVOKE_TOKEN)
                    .bind(org.as_str())
                    .bind(id)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.scim_token_by_hash", otel.kind = "client", db.operation.name = "scim_token_by_hash", db.system.name = Self::DB_SYSTEM))]
            async fn scim_token_by_hash(
                &self,
                token_hash: &str,
                now: UnixTime,
            ) -> Result<Option<ScimToken>, StoreError> {
                let token: Option<ScimToken> = sqlx::query_as(TOKEN_BY_HASH)
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                if let Some(t) = &token
                    && t.last_used_at.is_none_or(|at| now - at >= 60)
                {
                    sqlx::query(TOKEN_USED)
                        .bind(&t.id)
                        .bind(now)
                        .bind(t.organization_id.as_str())
                        .execute(&self.pool)
                        .await?;
                }
                Ok(token)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_scim_user", otel.kind = "client", db.operation.name = "create_scim_user", db.system.name = Self::DB_SYSTEM))]
            async fn create_scim_user(
                &self,
                user: ScimUserWrite<'_>,
            ) -> Result<ScimUserRow, StoreError> {
                let (count,): (i64,) = sqlx::query_as(COUNT_USERS)
                    .bind(user.org.as_str())
                    .fetch_one(&self.pool)
                    .await?;
                if count >= MAX_SCIM_USERS {
                    return Err(StoreError::Conflict(format!(
                        "the organisation already has {MAX_SCIM_USERS} SCIM Users"
                    )));
                }
                sqlx::query_as(INSERT_USER)
                    .bind(user.id)
                    .bind(user.org.as_str())
                    .bind(user.user_name_key)
                    .bind(user.external_id)
                    .bind(user.resource)
                    .bind(user.now)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(taken)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.scim_user", otel.kind = "client", db.operation.name = "scim_user", db.system.name = Self::DB_SYSTEM))]
            async fn scim_user(
                &self,
                org: &OrgId,
                id: &str,
            ) -> Result<Option<ScimUserRow>, StoreError> {
                Ok(sqlx::query_as(USER)
                    .bind(org.as_str())
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.scim_users", otel.kind = "client", db.operation.name = "scim_users", db.system.name = Self::DB_SYSTEM))]
            async fn scim_users(
                &self,
                org: &OrgId,
                filter: &ScimFilter,
                start: i64,
                count: i64,
            ) -> Result<(i64, Vec<ScimUserRow>), StoreError> {
                let (kind, value) = filter_args(filter);
                let (total,): (i64,) = sqlx::query_as(COUNT_MATCHING)
                    .bind(org.as_str())
                    .bind(kind)
                    .bind(value)
                    .fetch_one(&self.pool)
                    .await?;
                let rows = sqlx::query_as(PAGE)
                    .bind(org.as_str())
                    .bind(kind)
                    .bind(value)
                    .bind(count)
                    .bind((start - 1).max(0))
                    .fetch_all(&self.pool)
                    .await?;
                Ok((total, rows))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.replace_scim_user", otel.kind = "client", db.operation.name = "replace_scim_user", db.system.name = Self::DB_SYSTEM))]
            async fn replace_scim_user(
                &self,
                user: ScimUserWrite<'_>,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(REPLACE_USER)
                    .bind(user.org.as_str())
                    .bind(user.id)
                    .bind(user.user_name_key)
                    .bind(user.external_id)
                    .bind(user.resource)
                    .bind(user.now)
                    .execute(&self.pool)
                    .await
                    .map_err(taken)?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.delete_scim_user", otel.kind = "client", db.operation.name = "delete_scim_user", db.system.name = Self::DB_SYSTEM))]
            async fn delete_scim_user(&self, org: &OrgId, id: &str) -> Result<bool, StoreError> {
                let done = sqlx::query(DELETE_USER)
                    .bind(org.as_str())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.suspended_by_scim", otel.kind = "client", db.operation.name = "suspended_by_scim", db.system.name = Self::DB_SYSTEM))]
            async fn suspended_by_scim(
                &self,
                org: &OrgId,
                user: &UserId,
            ) -> Result<bool, StoreError> {
                let row: Option<(i32,)> = sqlx::query_as(SUSPENDED_BY_SCIM)
                    .bind(org.as_str())
                    .bind(user.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.deprovision_member", otel.kind = "client", db.operation.name = "deprovision_member", db.system.name = Self::DB_SYSTEM))]
            async fn deprovision_member(
                &self,
                org: &OrgId,
                user: &UserId,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let change = self.changes.pending(Some(org));
                let mut tx = self.pool.begin().await?;
                let suspended = sqlx::query(SUSPEND)
                    .bind(org.as_str())
                    .bind(user.as_str())
                    .execute(&mut *tx)
                    .await?;
                if suspended.rows_affected() == 0 {
                    return Ok(false);
                }
                for sql in [
                    super::user::REVOKE_MEMBER_REFRESH,
                    super::user::REVOKE_MEMBER_GRANTS,
                    super::user::REVOKE_MEMBER_KEYS,
                ] {
                    sqlx::query(sql)
                        .bind(org.as_str())
                        .bind(user.as_str())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                change.done().await;
                Ok(true)
            }
        }
    };
}

scim_store!(SqliteStore);
scim_store!(PgStore);
