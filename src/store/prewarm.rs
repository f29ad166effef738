//! Pre-warming: which forecast exports an organisation keeps warm, and the daily budget of Clari
//! exports spent on it, one counter per organisation and UTC day shared by every replica.

use async_trait::async_trait;

use super::{OrgId, PgStore, SqliteStore, StoreError};

#[async_trait]
pub trait PrewarmStore: Send + Sync {
    /// The organisation's pre-warm list as stored: `None` follows the server's default, `""` is
    /// off, else comma-separated forecast ids.
    async fn org_prewarm(&self, org: &OrgId) -> Result<Option<String>, StoreError>;
    async fn set_org_prewarm(&self, org: &OrgId, list: Option<&str>) -> Result<(), StoreError>;
    /// Takes one export from the organisation's budget for `day` if fewer than `budget` were
    /// taken; `false` when the day's budget is spent. Atomic across replicas.
    async fn spend_prewarm(&self, org: &OrgId, day: i64, budget: u32) -> Result<bool, StoreError>;
    /// Exports taken from the budget on `day`.
    async fn prewarm_spent(&self, org: &OrgId, day: i64) -> Result<u32, StoreError>;
    /// Deletes the counters of days before `day`.
    async fn purge_prewarm_budget(&self, day: i64) -> Result<u64, StoreError>;
}

const GET: &str = "SELECT prewarm FROM organizations WHERE id = $1";

const SET: &str = "UPDATE organizations SET prewarm = $1 WHERE id = $2";

/// The increment happens only below the budget; no row comes back when it is spent.
const SPEND: &str = "\
INSERT INTO prewarm_budget (organization_id, day, used) VALUES ($1, $2, 1)
ON CONFLICT (organization_id, day) DO UPDATE SET used = prewarm_budget.used + 1
WHERE prewarm_budget.used < $3
RETURNING used";

const SPENT: &str = "SELECT used FROM prewarm_budget WHERE organization_id = $1 AND day = $2";

const PURGE: &str = "DELETE FROM prewarm_budget WHERE day < $1";

macro_rules! prewarm_store {
    ($store:ty) => {
        #[async_trait]
        impl PrewarmStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.org_prewarm", otel.kind = "client", db.operation.name = "org_prewarm", db.system.name = Self::DB_SYSTEM))]
            async fn org_prewarm(&self, org: &OrgId) -> Result<Option<String>, StoreError> {
                let row: Option<(Option<String>,)> = sqlx::query_as(GET)
                    .bind(org.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.and_then(|(r,)| r))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.set_org_prewarm", otel.kind = "client", db.operation.name = "set_org_prewarm", db.system.name = Self::DB_SYSTEM))]
            async fn set_org_prewarm(
                &self,
                org: &OrgId,
                list: Option<&str>,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(SET)
                    .bind(list)
                    .bind(org.as_str())
                    .execute(&self.pool)
                    .await?;
                StoreError::found(done.rows_affected(), "organisation")
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.spend_prewarm", otel.kind = "client", db.operation.name = "spend_prewarm", db.system.name = Self::DB_SYSTEM))]
            async fn spend_prewarm(
                &self,
                org: &OrgId,
                day: i64,
                budget: u32,
            ) -> Result<bool, StoreError> {
                if budget == 0 {
                    return Ok(false);
                }
                let row: Option<(i32,)> = sqlx::query_as(SPEND)
                    .bind(org.as_str())
                    .bind(day)
                    .bind(budget as i32)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.prewarm_spent", otel.kind = "client", db.operation.name = "prewarm_spent", db.system.name = Self::DB_SYSTEM))]
            async fn prewarm_spent(&self, org: &OrgId, day: i64) -> Result<u32, StoreError> {
                let row: Option<(i32,)> = sqlx::query_as(SPENT)
                    .bind(org.as_str())
                    .bind(day)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map_or(0, |(n,)| n.max(0) as u32))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.purge_prewarm_budget", otel.kind = "client", db.operation.name = "purge_prewarm_budget", db.system.name = Self::DB_SYSTEM))]
            async fn purge_prewarm_budget(&self, day: i64) -> Result<u64, StoreError> {
                Ok(sqlx::query(PURGE)
                    .bind(day)
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }
        }
    };
}

prewarm_store!(SqliteStore);
prewarm_store!(PgStore);
