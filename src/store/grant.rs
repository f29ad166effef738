//! Grants: one per (user, organisation, client) consent. Revoking one kills every code and token
//! derived from it, which is what makes a JWT access token revocable on the next request.

use async_trait::async_trait;

use super::{ClientId, GrantId, OrgId, PgStore, SqliteStore, StoreError, UserId};
use crate::clock::UnixTime;
use crate::scope::ScopeSet;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Grant {
    pub id: GrantId,
    pub organization_id: OrgId,
    pub user_id: UserId,
    pub client_id: ClientId,
    #[sqlx(try_from = "String")]
    pub scope: ScopeSet,
    pub resource: String,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
    /// Whether `prompt=none` (and a repeat visit) may reuse this consent; false after the client's
    /// redirect URIs changed, until the user approves again.
    pub consent_remembered: bool,
    /// Whether the organisation requires DPoP-bound tokens (read with the live chain only).
    #[sqlx(default)]
    pub org_requires_dpop: bool,
}

/// A grant with the names a person recognises, for the account and admin pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantView {
    pub grant: Grant,
    pub client_name: String,
    /// The host of the client's first redirect URI: where codes go.
    pub redirect_host: String,
    pub organization_name: String,
    pub user_email: String,
    /// When a token was last issued on this grant (code exchange or refresh).
    pub last_used_at: Option<UnixTime>,
}

#[derive(sqlx::FromRow)]
struct GrantViewRow {
    #[sqlx(flatten)]
    grant: Grant,
    metadata: String,
    organization_name: String,
    user_email: String,
    last_used_at: Option<UnixTime>,
}

impl From<GrantViewRow> for GrantView {
    fn from(r: GrantViewRow) -> Self {
        let meta: serde_json::Value = serde_json::from_str(&r.metadata).unwrap_or_default();
        let client_name = meta["client_name"]
            .as_str()
            .unwrap_or(r.grant.client_id.as_str())
            .to_owned();
        let redirect_host = meta["redirect_uris"][0]
            .as_str()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        GrantView {
            client_name,
            redirect_host,
            organization_name: r.organization_name,
            user_email: r.user_email,
            last_used_at: r.last_used_at,
            grant: r.grant,
        }
    }
}

#[async_trait]
pub trait GrantStore: Send + Sync {
    /// The live grant of (user, org, client), updated to `scope` and `resource`, or a new one.
    /// `consented`: the person approved it on the consent page (remembered for a repeat visit
    /// and `prompt=none`); false for a grant an identity provider's assertion made, which a
    /// later browser visit must not treat as consent.
    #[allow(clippy::too_many_arguments)]
    async fn upsert_grant(
        &self,
        org: &OrgId,
        user: &UserId,
        client_id: &ClientId,
        scope: &ScopeSet,
        resource: &str,
        consented: bool,
        now: UnixTime,
    ) -> Result<Grant, StoreError>;
    /// Makes every live grant of the client ask for consent again (its redirect URIs changed),
    /// in every organisation. Not tenant-scoped on purpose: a client is not an organisation's
    /// (one registration or metadata document serves them all), so when its redirect URIs change,
    /// the consent each organisation's people gave for the old ones is void in all of them.
    /// Nothing is read, and the only write is a flag that makes the next visit ask again.
    async fn forget_consent_everywhere(&self, client_id: &ClientId) -> Result<u64, StoreError>;
    async fn live_grant_for(
        &self,
        org: &OrgId,
        user: &UserId,
        client_id: &ClientId,
    ) -> Result<Option<Grant>, StoreError>;
    /// The grant if it, its user, organisation, membership and client are all still live.
    async fn live_grant(&self, org: &OrgId, grant: &GrantId) -> Result<Option<Grant>, StoreError>;
    /// Revokes a grant and every refresh token derived from it.
    async fn revoke_grant(
        &self,
        org: &OrgId,
        grant: &GrantId,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// A person's live grants in one organisation, newest first.
    async fn grants_of_user(
        &self,
        org: &OrgId,
        user: &UserId,
    ) -> Result<Vec<GrantView>, StoreError>;
    /// Every live grant in an organisation, newest first.
    async fn grants_of_org(&self, org: &OrgId) -> Result<Vec<GrantView>, StoreError>;
    /// Notes that a token was issued on the grant.
    async fn touch_grant(
        &self,
        org: &OrgId,
        grant: &GrantId,
        now: UnixTime,
    ) -> Result<(), StoreError>;
}

const RENEW: &str = "\
UPDATE grants SET scope = $1, resource = $2, updated_at = $3, consent_remembered = $7
WHERE organization_id = $4 AND user_id = $5 AND client_id = $6 AND revoked_at IS NULL
RETURNING id, organization_id, user_id, client_id, scope, resource,
    created_at, updated_at, revoked_at, consent_remembered";

const INSERT: &str = "\
INSERT INTO grants
    (id, organization_id, user_id, client_id, scope, resource, created_at, updated_at, revoked_at,
     consent_remembered)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7, NULL, $8)
RETURNING id, organization_id, user_id, client_id, scope, resource,
    created_at, updated_at, revoked_at, consent_remembered";

/// Across organisations: see [`GrantStore::forget_consent_everywhere`].
const FORGET_CONSENT_EVERYWHERE: &str = "\
UPDATE grants SET consent_remembered = FALSE WHERE client_id = $1 AND revoked_at IS NULL";

const LIVE_FOR: &str = "\
SELECT id, organization_id, user_id, client_id, scope, resource,
    created_at, updated_at, revoked_at, consent_remembered
FROM grants
WHERE organization_id = $1 AND user_id = $2 AND client_id = $3 AND revoked_at IS NULL";

/// Live means the whole chain: grant, user, organisation, membership and client.
const LIVE: &str = "\
SELECT g.id, g.organization_id, g.user_id, g.client_id, g.scope, g.resource,
    g.created_at, g.updated_at, g.revoked_at, g.consent_remembered,
    o.require_dpop AS org_requires_dpop
FROM grants g
JOIN users u ON u.id = g.user_id
JOIN organizations o ON o.id = g.organization_id
JOIN memberships m ON m.user_id = g.user_id AND m.organization_id = g.organization_id
JOIN oauth_clients c ON c.id = g.client_id
WHERE g.organization_id = $1 AND g.id = $2 AND g.revoked_at IS NULL
  AND u.disabled = FALSE AND o.disabled = FALSE AND c.disabled = FALSE AND m.disabled = FALSE";

const REVOKE: &str = "\
UPDATE grants SET revoked_at = $1
WHERE organization_id = $2 AND id = $3 AND revoked_at IS NULL";

const REVOKE_REFRESH_TOKENS: &str = "\
UPDATE refresh_tokens SET revoked_at = $1
WHERE organization_id = $2 AND grant_id = $3 AND revoked_at IS NULL";

const OF_USER: &str = "\
SELECT g.id, g.organization_id, g.user_id, g.client_id, g.scope, g.resource,
    g.created_at, g.updated_at, g.revoked_at, g.consent_remembered, g.last_used_at,
    c.metadata, o.name AS organization_name, u.email AS user_email
FROM grants g
JOIN oauth_clients c ON c.id = g.client_id
JOIN organizations o ON o.id = g.organization_id
JOIN users u ON u.id = g.user_id
WHERE g.organization_id = $1 AND g.user_id = $2 AND g.revoked_at IS NULL
ORDER BY g.updated_at DESC, g.id";

const OF_ORG: &str = "\
SELECT g.id, g.organization_id, g.user_id, g.client_id, g.scope, g.resource,
    g.created_at, g.updated_at, g.revoked_at, g.consent_remembered, g.last_used_at,
    c.metadata, o.name AS organization_name, u.email AS user_email
FROM grants g
JOIN oauth_clients c ON c.id = g.client_id
JOIN organizations o ON o.id = g.organization_id
JOIN users u ON u.id = g.user_id
WHERE g.organization_id = $1 AND g.revoked_at IS NULL ORDER BY g.updated_at DESC, g.id";

const TOUCH: &str = "UPDATE grants SET last_used_at = $1 WHERE organization_id = $2 AND id = $3";

macro_rules! grant_store {
    ($store:ty) => {
        #[async_trait]
        impl GrantStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.upsert_grant", otel.kind = "client", db.operation.name = "upsert_grant", db.system.name = Self::DB_SYSTEM))]
            async fn upsert_grant(
                &self,
                org: &OrgId,
                user: &UserId,
                client_id: &ClientId,
                scope: &ScopeSet,
                resource: &str,
                consented: bool,
                now: UnixTime,
            ) -> Result<Grant, StoreError> {
                let change = self.changes.pending(Some(org));
                let mut tx = self.pool.begin().await?;
                let renewed: Option<Grant> = sqlx::query_as(RENEW)
                    .bind(scope.to_string())
                    .bind(resource)
                    .bind(now)
                    .bind(org.as_str())
                    .bind(user.as_str())
                    .bind(client_id.as_str())
                    .bind(consented)
                    .fetch_optional(&mut *tx)
                    .await?;
                let grant = match renewed {
                    Some(g) => g,
                    None => {
                        sqlx::query_as(INSERT)
                            .bind(GrantId::new_random().as_str())
                            .bind(org.as_str())
                            .bind(user.as_str())
                            .bind(client_id.as_str())
                            .bind(scope.to_string())
                            .bind(resource)
                            .bind(now)
                            .bind(consented)
                            .fetch_one(&mut *tx)
                            .await?
                    }
                };
                tx.commit().await?;
                change.done().await;
                Ok(grant)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.forget_consent_everywhere", otel.kind = "client", db.operation.name = "forget_consent_everywhere", db.system.name = Self::DB_SYSTEM))]
            async fn forget_consent_everywhere(
                &self,
                client_id: &ClientId,
            ) -> Result<u64, StoreError> {
                let done = sqlx::query(FORGET_CONSENT_EVERYWHERE)
                    .bind(client_id.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.live_grant_for", otel.kind = "client", db.operation.name = "live_grant_for", db.system.name = Self::DB_SYSTEM))]
            async fn live_grant_for(
                &self,
                org: &OrgId,
                user: &UserId,
                client_id: &ClientId,
            ) -> Result<Option<Grant>, StoreError> {
                Ok(sqlx::query_as(LIVE_FOR)
                    .bind(org.as_str())
                    .bind(user.as_str())
                    .bind(client_id.as_str())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.live_grant", otel.kind = "client", db.operation.name = "live_grant", db.system.name = Self::DB_SYSTEM))]
            async fn live_grant(
                &self,
                org: &OrgId,
                grant: &GrantId,
            ) -> Result<Option<Grant>, StoreError> {
                Ok(sqlx::query_as(LIVE)
                    .bind(org.as_str())
                    .bind(grant.as_str())
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.revoke_grant", otel.kind = "client", db.operation.name = "revoke_grant", db.system.name = Self::DB_SYSTEM))]
            async fn revoke_grant(
                &self,
                org: &OrgId,
                grant: &GrantId,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let change = self.changes.pending(Some(org));
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(REVOKE)
                    .bind(now)
                    .bind(org.as_str())
                    .bind(grant.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(REVOKE_REFRESH_TOKENS)
                    .bind(now)
                    .bind(org.as_str())
                    .bind(grant.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                change.done().await;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.grants_of_user", otel.kind = "client", db.operation.name = "grants_of_user", db.system.name = Self::DB_SYSTEM))]
            async fn grants_of_user(
                &self,
                org: &OrgId,
                user: &UserId,
            ) -> Result<Vec<GrantView>, StoreError> {
                let rows: Vec<GrantViewRow> = sqlx::query_as(OF_USER)
                    .bind(org.as_str())
                    .bind(user.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.grants_of_org", otel.kind = "client", db.operation.name = "grants_of_org", db.system.name = Self::DB_SYSTEM))]
            async fn grants_of_org(&self, org: &OrgId) -> Result<Vec<GrantView>, StoreError> {
                let rows: Vec<GrantViewRow> = sqlx::query_as(OF_ORG)
                    .bind(org.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.touch_grant", otel.kind = "client", db.operation.name = "touch_grant", db.system.name = Self::DB_SYSTEM))]
            async fn touch_grant(
                &self,
                org: &OrgId,
                grant: &GrantId,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(TOUCH)
                    .bind(now)
                    .bind(org.as_str())
                    .bind(grant.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}

grant_store!(SqliteStore);
grant_store!(PgStore);
