use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::StoreError;
use super::changes::Changes;

/// The store for several replicas behind a load balancer.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
    /// This replica's listener of change notifications.
    pub(super) changes: Arc<Changes>,
}

impl PgStore {
    /// `db.system.name` of its spans (OpenTelemetry database conventions).
    pub const DB_SYSTEM: &'static str = "postgresql";

    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self {
            changes: Changes::listening(url, pool.clone()),
            pool,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(super) fn migrator() -> sqlx::migrate::Migrator {
        sqlx::migrate!("migrations/postgres")
    }
}
