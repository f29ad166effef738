//! Organisations: the tenants every other row belongs to.

use async_trait::async_trait;

use super::{OrgId, Organization, PgStore, SqliteStore, StoreError};
use crate::clock::UnixTime;

#[async_trait]
pub trait OrgStore: Send + Sync {
    async fn create_org(&self, name: &str, now: UnixTime) -> Result<Organization, StoreError>;
    async fn list_orgs(&self) -> Result<Vec<Organization>, StoreError>;
    /// Finds an organisation by id or, failing that, by exact name.
    async fn find_org(&self, id_or_name: &str) -> Result<Option<Organization>, StoreError>;
    async fn set_org_disabled(&self, org: &OrgId, disabled: bool) -> Result<(), StoreError>;
    /// The kill switch, in one transaction: disables the organisation and revokes every grant,
    /// refresh token and API key it has. Enabling it later resurrects none of them.
    async fn kill_org(&self, org: &OrgId, now: UnixTime) -> Result<Killed, StoreError>;
    /// Per organisation: live grants, distinct clients holding one, and live API keys (one
    /// query, for the metrics gauges).
    async fn org_activity(&self, now: UnixTime) -> Result<Vec<OrgActivity>, StoreError>;
    /// The organisation's redaction policy as stored (JSON), `None` for the server's default.
    async fn org_redaction(&self, org: &OrgId) -> Result<Option<String>, StoreError>;
    async fn set_org_redaction(&self, org: &OrgId, policy: Option<&str>) -> Result<(), StoreError>;
    /// Renames and sets the redaction policy if both are still `from`; `false` when either
    /// changed meanwhile (so two admins cannot silently overwrite each other).
    async fn update_org_settings(
        &self,
        org: &OrgId,
        from: (&str, Option<&str>),
        to: (&str, Option<&str>),
    ) -> Result<bool, StoreError>;
}

/// Live credentials of one organisation: `(org id, grants, clients, API keys)`.
pub type OrgActivity = (String, i64, i64, i64);

/// What the kill switch revoked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Killed {
    pub grants: u64,
    pub refresh_tokens: u64,
    pub api_keys: u64,
}

const INSERT: &str = "\
INSERT INTO organizations (id, name, disabled, created_at) VALUES ($1, $2, FALSE, $3)
RETURNING id, name, disabled, created_at";

const LIST: &str = "SELECT id, name, disabled, created_at FROM organizations ORDER BY name";

/// An exact id wins over a name that happens to equal it.
const FIND: &str = "\
SELECT id, name, disabled, created_at FROM organizations
WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1";

const SET_DISABLED: &str = "UPDATE organizations SET disabled = $1 WHERE id = $2";

const ACTIVITY: &str = "\
SELECT o.id,
    (SELECT COUNT(*) FROM grants g WHERE g.organization_id = o.id AND g.revoked_at IS NULL),
    (SELECT COUNT(DISTINCT g.client_id) FROM grants g
        WHERE g.organization_id = o.id AND g.revoked_at IS NULL),
    (SELECT COUNT(*) FROM api_keys k WHERE k.organization_id = o.id AND k.revoked_at IS NULL
        AND (k.expires_at IS NULL OR k.expires_at > $1))
FROM organizations o ORDER BY o.id";

const REDACTION: &str = "SELECT redaction FROM organizations WHERE id = $1";

const SET_REDACTION: &str = "UPDATE organizations SET redaction = $1 WHERE id = $2";

const UPDATE_SETTINGS: &str = "\
UPDATE organizations SET name = $1, redaction = $2
WHERE id = $3 AND name = $4 AND redaction IS NOT DISTINCT FROM $5";

const KILL_GRANTS: &str = "\
UPDATE grants SET revoked_at = $2 WHERE organization_id = $1 AND revoked_at IS NULL";

const KILL_REFRESH_TOKENS: &str = "\
UPDATE refresh_tokens SET revoked_at = $2 WHERE organization_id = $1 AND revoked_at IS NULL";

const KILL_API_KEYS: &str = "\
UPDATE api_keys SET revoked_at = $2 WHERE organization_id = $1 AND revoked_at IS NULL";

macro_rules! org_store {
    ($store:ty) => {
        #[async_trait]
        impl OrgStore for $store {
            async fn create_org(
                &self,
                name: &str,
                now: UnixTime,
            ) -> Result<Organization, StoreError> {
                sqlx::query_as(INSERT)
                    .bind(OrgId::new_random().as_str())
                    .bind(name)
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| {
                        StoreError::conflict_or(e, || {
                            format!("an organisation named '{name}' already exists")
                        })
                    })
            }

            async fn list_orgs(&self) -> Result<Vec<Organization>, StoreError> {
                Ok(sqlx::query_as(LIST).fetch_all(&self.pool).await?)
            }

            async fn find_org(&self, id_or_name: &str) -> Result<Option<Organization>, StoreError> {
                Ok(sqlx::query_as(FIND)
                    .bind(id_or_name)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn set_org_disabled(
                &self,
                org: &OrgId,
                disabled: bool,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(SET_DISABLED)
                    .bind(disabled)
                    .bind(org.as_str())
                    .execute(&self.pool)
                    .await?;
                StoreError::found(done.rows_affected(), "organisation")
            }

            async fn org_activity(&self, now: UnixTime) -> Result<Vec<OrgActivity>, StoreError> {
                Ok(sqlx::query_as(ACTIVITY)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn org_redaction(&self, org: &OrgId) -> Result<Option<String>, StoreError> {
                let row: Option<(Option<String>,)> = sqlx::query_as(REDACTION)
                    .bind(org.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.and_then(|(r,)| r))
            }

            async fn set_org_redaction(
                &self,
                org: &OrgId,
                policy: Option<&str>,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(SET_REDACTION)
                    .bind(policy)
                    .bind(org.as_str())
                    .execute(&self.pool)
                    .await?;
                StoreError::found(done.rows_affected(), "organisation")
            }

            async fn update_org_settings(
                &self,
                org: &OrgId,
                from: (&str, Option<&str>),
                to: (&str, Option<&str>),
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(UPDATE_SETTINGS)
                    .bind(to.0)
                    .bind(to.1)
                    .bind(org.as_str())
                    .bind(from.0)
                    .bind(from.1)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        StoreError::conflict_or(e, || {
                            format!("an organisation named '{}' already exists", to.0)
                        })
                    })?;
                Ok(done.rows_affected() == 1)
            }

            async fn kill_org(&self, org: &OrgId, now: UnixTime) -> Result<Killed, StoreError> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(SET_DISABLED)
                    .bind(true)
                    .bind(org.as_str())
                    .execute(&mut *tx)
                    .await?;
                StoreError::found(done.rows_affected(), "organisation")?;
                let mut revoke = async |sql: &'static str| {
                    sqlx::query(sql)
                        .bind(org.as_str())
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map(|d| d.rows_affected())
                };
                let killed = Killed {
                    grants: revoke(KILL_GRANTS).await?,
                    refresh_tokens: revoke(KILL_REFRESH_TOKENS).await?,
                    api_keys: revoke(KILL_API_KEYS).await?,
                };
                tx.commit().await?;
                Ok(killed)
            }
        }
    };
}

org_store!(SqliteStore);
org_store!(PgStore);
