//! Authorization codes: single use, stored as SHA-256, consumed by one conditional update.

use async_trait::async_trait;

use super::{ClientId, GrantId, OrgId, PgStore, SqliteStore, StoreError, UserId};
use crate::clock::UnixTime;
use crate::scope::ScopeSet;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CodeRecord {
    pub code_hash: String,
    pub grant_id: GrantId,
    pub organization_id: OrgId,
    pub client_id: ClientId,
    pub user_id: UserId,
    pub redirect_uri: String,
    pub code_challenge: String,
    #[sqlx(try_from = "String")]
    pub scope: ScopeSet,
    pub resource: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub consumed_at: Option<UnixTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// This call consumed the code.
    Redeemed(CodeRecord),
    /// The code had been consumed before: a replay.
    Replayed(CodeRecord),
    Unknown,
}

#[async_trait]
pub trait CodeStore: Send + Sync {
    async fn insert_code(&self, code: &CodeRecord) -> Result<(), StoreError>;
    /// Reads a code without consuming it.
    async fn find_code(&self, code_hash: &str) -> Result<Option<CodeRecord>, StoreError>;
    /// Consumes a code in one conditional update; a second redemption reports a replay.
    async fn redeem_code(
        &self,
        code_hash: &str,
        now: UnixTime,
    ) -> Result<CodeRedemption, StoreError>;
}

const INSERT: &str = "\
INSERT INTO authorization_codes (code_hash, grant_id, organization_id, client_id, user_id,
    redirect_uri, code_challenge, scope, resource, created_at, expires_at, consumed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)";

const FIND: &str = "\
SELECT code_hash, grant_id, organization_id, client_id, user_id, redirect_uri, code_challenge,
    scope, resource, created_at, expires_at, consumed_at
FROM authorization_codes WHERE code_hash = $1";

/// Exactly one of any number of concurrent redemptions gets the row back.
const REDEEM: &str = "\
UPDATE authorization_codes SET consumed_at = $1 WHERE code_hash = $2 AND consumed_at IS NULL
RETURNING code_hash, grant_id, organization_id, client_id, user_id, redirect_uri,
    code_challenge, scope, resource, created_at, expires_at, consumed_at";

macro_rules! code_store {
    ($store:ty) => {
        #[async_trait]
        impl CodeStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.insert_code", otel.kind = "client", db.operation.name = "insert_code", db.system.name = Self::DB_SYSTEM))]
            async fn insert_code(&self, c: &CodeRecord) -> Result<(), StoreError> {
                sqlx::query(INSERT)
                    .bind(&c.code_hash)
                    .bind(c.grant_id.as_str())
                    .bind(c.organization_id.as_str())
                    .bind(c.client_id.as_str())
                    .bind(c.user_id.as_str())
                    .bind(&c.redirect_uri)
                    .bind(&c.code_challenge)
                    .bind(c.scope.to_string())
                    .bind(&c.resource)
                    .bind(c.created_at)
                    .bind(c.expires_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.find_code", otel.kind = "client", db.operation.name = "find_code", db.system.name = Self::DB_SYSTEM))]
            async fn find_code(&self, code_hash: &str) -> Result<Option<CodeRecord>, StoreError> {
                Ok(sqlx::query_as(FIND)
                    .bind(code_hash)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.redeem_code", otel.kind = "client", db.operation.name = "redeem_code", db.system.name = Self::DB_SYSTEM))]
            async fn redeem_code(
                &self,
                code_hash: &str,
                now: UnixTime,
            ) -> Result<CodeRedemption, StoreError> {
                let redeemed: Option<CodeRecord> = sqlx::query_as(REDEEM)
                    .bind(now)
                    .bind(code_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                if let Some(code) = redeemed {
                    return Ok(CodeRedemption::Redeemed(code));
                }
                Ok(match self.find_code(code_hash).await? {
                    Some(code) => CodeRedemption::Replayed(code),
                    None => CodeRedemption::Unknown,
                })
            }
        }
    };
}

code_store!(SqliteStore);
code_store!(PgStore);
