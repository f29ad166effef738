//! Organisations: the tenants every other row belongs to.

use async_trait::async_trait;

use super::{OrgId, Organization, PgStore, SqliteStore, StoreError};
use crate::clock::UnixTime;
use crate::orgname::{MAX_SLUG_LEN, OrgName};

#[async_trait]
pub trait OrgStore: Send + Sync {
    /// Creates an organisation; refused when its name looks like another's (same key). The
    /// slug is the name's own, or with a number added when that one is taken.
    async fn create_org(&self, name: &OrgName, now: UnixTime) -> Result<Organization, StoreError>;
    /// Gives organisations that predate name keys and slugs theirs (run after migrations; a
    /// name that looks like an older one keeps a key of its own, suffixed with its id).
    async fn backfill_org_keys(&self) -> Result<u64, StoreError>;
    async fn list_orgs(&self) -> Result<Vec<Organization>, StoreError>;
    /// Finds an organisation by id, else by slug, else by exact name (a slug wins over another
    /// organisation's name that equals it).
    async fn find_org(&self, id_or_name: &str) -> Result<Option<Organization>, StoreError>;
    async fn set_org_disabled(&self, org: &OrgId, disabled: bool) -> Result<(), StoreError>;
    /// Whether the organisation with exactly this id is disabled; `None` when there is none.
    async fn org_disabled(&self, org: &OrgId) -> Result<Option<bool>, StoreError>;
    /// The kill switch, in one transaction: disables the organisation and revokes every grant,
    /// refresh token, API key and machine client it has. Enabling it later resurrects none of them.
    async fn kill_org(&self, org: &OrgId, now: UnixTime) -> Result<Killed, StoreError>;
    /// Live grants, distinct clients holding one, and live API keys: in all, and for the `top`
    /// organisations with the most live grants and keys (for the metrics gauges, whose series
    /// must not grow with the number of organisations).
    async fn org_activity(&self, now: UnixTime, top: u32) -> Result<ActivitySummary, StoreError>;
    /// The organisation's redaction policy as stored (JSON), `None` for the server's default.
    async fn org_redaction(&self, org: &OrgId) -> Result<Option<String>, StoreError>;
    async fn set_org_redaction(&self, org: &OrgId, policy: Option<&str>) -> Result<(), StoreError>;
    /// The organisation's IANA time zone as stored, `None` for UTC.
    async fn org_time_zone(&self, org: &OrgId) -> Result<Option<String>, StoreError>;
    async fn set_org_time_zone(&self, org: &OrgId, zone: Option<&str>) -> Result<(), StoreError>;
    /// Renames and sets the redaction policy and time zone (`None` is UTC) if all three are
    /// still `from`; `false` when one changed meanwhile.
    async fn update_org_settings(
        &self,
        org: &OrgId,
        from: (&str, Option<&str>, Option<&str>),
        to: (Option<&OrgName>, Option<&str>, Option<&str>),
    ) -> Result<bool, StoreError>;
}

/// Live credentials of one organisation: `(org id, grants, clients, API keys)`.
pub type OrgActivity = (String, i64, i64, i64);

/// Live credentials in all, and of the organisations with the most.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivitySummary {
    /// Organisations with at least one live grant or API key.
    pub organisations: i64,
    pub grants: i64,
    /// Distinct (organisation, client) pairs with a live grant.
    pub clients: i64,
    pub api_keys: i64,
    /// The organisations with the most live grants and keys, most first.
    pub top: Vec<OrgActivity>,
}

/// What the kill switch revoked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Killed {
    pub grants: u64,
    pub refresh_tokens: u64,
    pub api_keys: u64,
    pub service_clients: u64,
}

const INSERT: &str = "\
INSERT INTO organizations (id, name, name_key, slug, disabled, created_at)
VALUES ($1, $2, $3, $4, FALSE, $5)
RETURNING id, name, disabled, created_at, slug";

const NAME_TAKEN: &str = "SELECT id FROM organizations WHERE name_key = $1";

/// Slugs equal to the base or the base with a number appended.
const SLUGS_LIKE: &str = "\
SELECT slug FROM organizations WHERE slug = $1 OR slug LIKE $1 || '-%'";

const UNKEYED: &str = "SELECT id, name FROM organizations WHERE name_key IS NULL OR slug IS NULL";

const SET_KEYS: &str = "UPDATE organizations SET name_key = $1, slug = $2 WHERE id = $3";

const LIST: &str = "\
SELECT id, name, disabled, created_at, COALESCE(slug, id) AS slug FROM organizations ORDER BY name";

/// An exact id wins over a name or slug that happens to equal it.
const FIND: &str = "\
SELECT id, name, disabled, created_at, COALESCE(slug, id) AS slug FROM organizations
WHERE id = $1 OR name = $1 OR slug = $1 ORDER BY (id = $1) DESC, (slug = $1) DESC LIMIT 1";

const SET_DISABLED: &str = "UPDATE organizations SET disabled = $1 WHERE id = $2";

const DISABLED: &str = "SELECT disabled FROM organizations WHERE id = $1";

/// Live credentials per organisation that has any: grouped once per table, never a subquery
/// per organisation.
macro_rules! live_per_org {
    () => {
        "\
WITH live AS (
    SELECT organization_id AS org, COUNT(*) AS grants, COUNT(DISTINCT client_id) AS clients,
        0 AS api_keys
    FROM grants WHERE revoked_at IS NULL GROUP BY organization_id
    UNION ALL
    SELECT organization_id, 0, 0, COUNT(*) FROM api_keys
    WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)
    GROUP BY organization_id
), per_org AS (
    SELECT org, CAST(SUM(grants) AS BIGINT) AS grants, CAST(SUM(clients) AS BIGINT) AS clients,
        CAST(SUM(api_keys) AS BIGINT) AS api_keys
    FROM live GROUP BY org
)
"
    };
}

const ACTIVITY_TOP: &str = concat!(
    live_per_org!(),
    "SELECT org, grants, clients, api_keys FROM per_org
ORDER BY grants + api_keys DESC, org LIMIT $2"
);

const ACTIVITY_TOTALS: &str = concat!(
    live_per_org!(),
    "SELECT COUNT(*), CAST(COALESCE(SUM(grants), 0) AS BIGINT),
    CAST(COALESCE(SUM(clients), 0) AS BIGINT), CAST(COALESCE(SUM(api_keys), 0) AS BIGINT)
FROM per_org"
);

const REDACTION: &str = "SELECT redaction FROM organizations WHERE id = $1";

const SET_REDACTION: &str = "UPDATE organizations SET redaction = $1 WHERE id = $2";

const TIME_ZONE: &str = "SELECT time_zone FROM organizations WHERE id = $1";

const SET_TIME_ZONE: &str = "UPDATE organizations SET time_zone = $1 WHERE id = $2";

const UPDATE_SETTINGS: &str = "\
UPDATE organizations SET name = COALESCE($1, name), name_key = COALESCE($6, name_key),
    redaction = $2, time_zone = $7
WHERE id = $3 AND name = $4 AND redaction IS NOT DISTINCT FROM $5
    AND time_zone IS NOT DISTINCT FROM $8";

const KILL_GRANTS: &str = "\
UPDATE grants SET revoked_at = $2 WHERE organization_id = $1 AND revoked_at IS NULL";

const KILL_REFRESH_TOKENS: &str = "\
UPDATE refresh_tokens SET revoked_at = $2 WHERE organization_id = $1 AND revoked_at IS NULL";

const KILL_API_KEYS: &str = "\
UPDATE api_keys SET revoked_at = $2 WHERE organization_id = $1 AND revoked_at IS NULL";

const KILL_SERVICE_CLIENTS: &str = "\
UPDATE service_clients SET revoked_at = $2 WHERE organization_id = $1 AND revoked_at IS NULL";

macro_rules! org_store {
    ($store:ty) => {
        #[async_trait]
        impl OrgStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_org", otel.kind = "client", db.operation.name = "create_org", db.system.name = Self::DB_SYSTEM))]
            async fn create_org(
                &self,
                name: &OrgName,
                now: UnixTime,
            ) -> Result<Organization, StoreError> {
                let taken = || {
                    StoreError::Conflict(format!(
                        "an organisation named '{name}', or one that looks the same, already exists"
                    ))
                };
                let clash: Option<(String,)> = sqlx::query_as(NAME_TAKEN)
                    .bind(name.key())
                    .fetch_optional(&self.pool)
                    .await?;
                if clash.is_some() {
                    return Err(taken());
                }
                let used: Vec<(String,)> = sqlx::query_as(SLUGS_LIKE)
                    .bind(name.slug())
                    .fetch_all(&self.pool)
                    .await?;
                let slug = free_slug(name.slug(), used.into_iter().map(|(s,)| s));
                sqlx::query_as(INSERT)
                    .bind(OrgId::new_random().as_str())
                    .bind(name.as_str())
                    .bind(name.key())
                    .bind(slug)
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| StoreError::conflict_or(e, || taken().to_string()))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.backfill_org_keys", otel.kind = "client", db.operation.name = "backfill_org_keys", db.system.name = Self::DB_SYSTEM))]
            async fn backfill_org_keys(&self) -> Result<u64, StoreError> {
                let rows: Vec<(String, String)> =
                    sqlx::query_as(UNKEYED).fetch_all(&self.pool).await?;
                let mut done = 0;
                for (id, name) in rows {
                    // A stored name that no longer parses keeps its text; its key is its own.
                    let parsed = OrgName::parse(&name).ok();
                    let key = parsed.as_ref().map_or_else(
                        || format!("{name}~{id}"),
                        |n| n.key().to_owned(),
                    );
                    let base = parsed.as_ref().map_or("org", |n| n.slug());
                    let used: Vec<(String,)> = sqlx::query_as(SLUGS_LIKE)
                        .bind(base)
                        .fetch_all(&self.pool)
                        .await?;
                    let slug = free_slug(base, used.into_iter().map(|(s,)| s));
                    let first = sqlx::query(SET_KEYS)
                        .bind(&key)
                        .bind(&slug)
                        .bind(&id)
                        .execute(&self.pool)
                        .await;
                    match first {
                        Ok(_) => {}
                        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                            // Two old names that look alike: the later keeps a key of its own.
                            sqlx::query(SET_KEYS)
                                .bind(format!("{key}~{id}"))
                                .bind(format!("{slug}-{}", id.to_lowercase()))
                                .bind(&id)
                                .execute(&self.pool)
                                .await?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                    done += 1;
                }
                Ok(done)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.list_orgs", otel.kind = "client", db.operation.name = "list_orgs", db.system.name = Self::DB_SYSTEM))]
            async fn list_orgs(&self) -> Result<Vec<Organization>, StoreError> {
                Ok(sqlx::query_as(LIST).fetch_all(&self.pool).await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.find_org", otel.kind = "client", db.operation.name = "find_org", db.system.name = Self::DB_SYSTEM))]
            async fn find_org(&self, id_or_name: &str) -> Result<Option<Organization>, StoreError> {
                Ok(sqlx::query_as(FIND)
                    .bind(id_or_name)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.set_org_disabled", otel.kind = "client", db.operation.name = "set_org_disabled", db.system.name = Self::DB_SYSTEM))]
            async fn set_org_disabled(
                &self,
                org: &OrgId,
                disabled: bool,
            ) -> Result<(), StoreError> {
                let change = self.changes.pending(Some(org));
                let done = sqlx::query(SET_DISABLED)
                    .bind(disabled)
                    .bind(org.as_str())
                    .execute(&self.pool)
                    .await?;
                change.done().await;
                StoreError::found(done.rows_affected(), "organisation")
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.org_disabled", otel.kind = "client", db.operation.name = "org_disabled", db.system.name = Self::DB_SYSTEM))]
            async fn org_disabled(&self, org: &OrgId) -> Result<Option<bool>, StoreError> {
                let row: Option<(bool,)> = sqlx::query_as(DISABLED)
                    .bind(org.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(d,)| d))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.org_activity", otel.kind = "client", db.operation.name = "org_activity", db.system.name = Self::DB_SYSTEM))]
            async fn org_activity(
                &self,
                now: UnixTime,
                top: u32,
            ) -> Result<ActivitySummary, StoreError> {
                let (organisations, grants, clients, api_keys): (i64, i64, i64, i64) =
                    sqlx::query_as(ACTIVITY_TOTALS)
                        .bind(now)
                        .fetch_one(&self.pool)
                        .await?;
                let top = sqlx::query_as(ACTIVITY_TOP)
                    .bind(now)
                    .bind(i64::from(top))
                    .fetch_all(&self.pool)
                    .await?;
                Ok(ActivitySummary {
                    organisations,
                    grants,
                    clients,
                    api_keys,
                    top,
                })
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.org_redaction", otel.kind = "client", db.operation.name = "org_redaction", db.system.name = Self::DB_SYSTEM))]
            async fn org_redaction(&self, org: &OrgId) -> Result<Option<String>, StoreError> {
                let row: Option<(Option<String>,)> = sqlx::query_as(REDACTION)
                    .bind(org.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.and_then(|(r,)| r))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.set_org_redaction", otel.kind = "client", db.operation.name = "set_org_redaction", db.system.name = Self::DB_SYSTEM))]
            async fn set_org_redaction(
                &self,
                org: &OrgId,
                policy: Option<&str>,
            ) -> Result<(), StoreError> {
                let change = self.changes.pending(Some(org));
                let done = sqlx::query(SET_REDACTION)
                    .bind(policy)
                    .bind(org.as_str())
                    .execute(&self.pool)
                    .await?;
                change.done().await;
                StoreError::found(done.rows_affected(), "organisation")
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.org_time_zone", otel.kind = "client", db.operation.name = "org_time_zone", db.system.name = Self::DB_SYSTEM))]
            async fn org_time_zone(&self, org: &OrgId) -> Result<Option<String>, StoreError> {
                let row: Option<(Option<String>,)> = sqlx::query_as(TIME_ZONE)
                    .bind(org.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.and_then(|(z,)| z))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.set_org_time_zone", otel.kind = "client", db.operation.name = "set_org_time_zone", db.system.name = Self::DB_SYSTEM))]
            async fn set_org_time_zone(
                &self,
                org: &OrgId,
                zone: Option<&str>,
            ) -> Result<(), StoreError> {
                let change = self.changes.pending(Some(org));
                let done = sqlx::query(SET_TIME_ZONE)
                    .bind(zone)
                    .bind(org.as_str())
                    .execute(&self.pool)
                    .await?;
                change.done().await;
                StoreError::found(done.rows_affected(), "organisation")
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.update_org_settings", otel.kind = "client", db.operation.name = "update_org_settings", db.system.name = Self::DB_SYSTEM))]
            async fn update_org_settings(
                &self,
                org: &OrgId,
                from: (&str, Option<&str>, Option<&str>),
                to: (Option<&OrgName>, Option<&str>, Option<&str>),
            ) -> Result<bool, StoreError> {
                let change = self.changes.pending(Some(org));
                let done = sqlx::query(UPDATE_SETTINGS)
                    .bind(to.0.map(OrgName::as_str))
                    .bind(to.1)
                    .bind(org.as_str())
                    .bind(from.0)
                    .bind(from.1)
                    .bind(to.0.map(OrgName::key))
                    .bind(to.2)
                    .bind(from.2)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        StoreError::conflict_or(e, || {
                            format!(
                                "an organisation named '{}', or one that looks the same, already exists",
                                to.0.map(OrgName::as_str).unwrap_or_default()
                            )
                        })
                    })?;
                change.done().await;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.kill_org", otel.kind = "client", db.operation.name = "kill_org", db.system.name = Self::DB_SYSTEM))]
            async fn kill_org(&self, org: &OrgId, now: UnixTime) -> Result<Killed, StoreError> {
                let change = self.changes.pending(Some(org));
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
                    service_clients: revoke(KILL_SERVICE_CLIENTS).await?,
                };
                tx.commit().await?;
                change.done().await;
                Ok(killed)
            }
        }
    };
}

/// `base`, or `base-2`, `base-3`, … whichever is not in `used`.
fn free_slug(base: &str, used: impl Iterator<Item = String>) -> String {
    let used: std::collections::HashSet<String> = used.collect();
    if !used.contains(base) {
        return base.to_owned();
    }
    let stem = &base[..base.len().min(MAX_SLUG_LEN - 6)];
    (2..)
        .map(|n| format!("{stem}-{n}"))
        .find(|s| !used.contains(s))
        .expect("an unused number exists")
}

org_store!(SqliteStore);
org_store!(PgStore);
