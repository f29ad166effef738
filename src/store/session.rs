//! Browser sessions of the sign-in and consent pages (the data is opaque here), and the shared
//! rate-limit counters; both must be shared by every replica.

use async_trait::async_trait;

use super::{PgStore, SqliteStore, StoreError};
use crate::clock::UnixTime;

/// A session record as stored: its data, expiry, the address that made it and whether
/// nobody has signed in to it.
#[derive(Debug, Clone, Copy)]
pub struct SessionRow<'a> {
    pub id: &'a str,
    pub data: &'a str,
    pub expires_at: UnixTime,
    pub owner: Option<&'a str>,
    pub anonymous: bool,
}

#[async_trait]
pub trait BrowserSessionStore: Send + Sync {
    async fn load_session(&self, id: &str, now: UnixTime) -> Result<Option<String>, StoreError>;
    async fn save_session(&self, row: SessionRow<'_>) -> Result<(), StoreError>;
    async fn delete_session(&self, id: &str) -> Result<(), StoreError>;
    /// Stores a new session unless its id is taken (`false` then). An anonymous session first
    /// makes room: of its owner's anonymous sessions, only the `keep - 1` used last stay.
    async fn create_session(&self, row: SessionRow<'_>, keep: i64) -> Result<bool, StoreError>;
    /// Sessions stored (live or not yet purged) and the largest record's length, for tests and
    /// the bounds benchmark.
    async fn session_stats(&self) -> Result<(i64, i64), StoreError>;
}

#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Counts a hit in `bucket` for the window starting at `window_start`; returns the count.
    async fn rate_hit(&self, bucket: &str, window_start: UnixTime) -> Result<i64, StoreError>;
    /// Adds `n` hits at once (a call that will make `n` upstream requests); returns the count.
    async fn rate_add(
        &self,
        bucket: &str,
        window_start: UnixTime,
        n: i64,
    ) -> Result<i64, StoreError>;
    /// Like `rate_hit`, and remembers `now` as the bucket's last hit.
    async fn rate_hit_at(
        &self,
        bucket: &str,
        window_start: UnixTime,
        now: UnixTime,
    ) -> Result<i64, StoreError>;
    /// A bucket's count and last hit in a window, without counting (a read, no write).
    async fn rate_peek(
        &self,
        bucket: &str,
        window_start: UnixTime,
    ) -> Result<(i64, Option<UnixTime>), StoreError>;
    async fn purge_rate_limits(&self, before: UnixTime) -> Result<u64, StoreError>;
    /// Counters whose bucket is `LIKE pattern` in windows before `before`: (bucket, window,
    /// hits), oldest first, at most 1,000.
    async fn rate_buckets_before(
        &self,
        pattern: &str,
        before: UnixTime,
    ) -> Result<Vec<(String, UnixTime, i64)>, StoreError>;
    async fn delete_rate_bucket(
        &self,
        bucket: &str,
        window_start: UnixTime,
    ) -> Result<(), StoreError>;
}

const LOAD: &str = "SELECT data FROM web_sessions WHERE id = $1 AND expires_at > $2";

const SAVE: &str = "\
INSERT INTO web_sessions (id, data, expires_at, owner, anonymous) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at,
    anonymous = excluded.anonymous";

const DELETE: &str = "DELETE FROM web_sessions WHERE id = $1";

const CREATE: &str = "\
INSERT INTO web_sessions (id, data, expires_at, owner, anonymous) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO NOTHING";

/// The owner's anonymous sessions beyond the newest `$2` (by last use, which sets the expiry).
const MAKE_ROOM: &str = "\
DELETE FROM web_sessions WHERE id IN (
    SELECT id FROM web_sessions WHERE owner = $1 AND anonymous = TRUE
    ORDER BY expires_at DESC, id LIMIT 1000000 OFFSET $2)";

const STATS: &str =
    "SELECT COUNT(*), CAST(COALESCE(MAX(LENGTH(data)), 0) AS BIGINT) FROM web_sessions";

/// One statement, so concurrent hits on any replica all count.
const HIT: &str = "\
INSERT INTO rate_limits (bucket, window_start, hits) VALUES ($1, $2, 1)
ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1
RETURNING hits";

const ADD: &str = "\
INSERT INTO rate_limits (bucket, window_start, hits) VALUES ($1, $2, $3)
ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + $3
RETURNING hits";

const HIT_AT: &str = "\
INSERT INTO rate_limits (bucket, window_start, hits, last_at) VALUES ($1, $2, 1, $3)
ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1, last_at = $3
RETURNING hits";

const PEEK: &str = "SELECT hits, last_at FROM rate_limits WHERE bucket = $1 AND window_start = $2";

const BUCKETS_BEFORE: &str = "\
SELECT bucket, window_start, hits FROM rate_limits WHERE bucket LIKE $1 AND window_start < $2
ORDER BY window_start LIMIT 1000";

const DELETE_BUCKET: &str = "DELETE FROM rate_limits WHERE bucket = $1 AND window_start = $2";

const PURGE_RATE_LIMITS: &str = "DELETE FROM rate_limits WHERE window_start < $1";

macro_rules! session_store {
    ($store:ty) => {
        #[async_trait]
        impl BrowserSessionStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.load_session", otel.kind = "client", db.operation.name = "load_session", db.system.name = Self::DB_SYSTEM))]
            async fn load_session(
                &self,
                id: &str,
                now: UnixTime,
            ) -> Result<Option<String>, StoreError> {
                let row: Option<(String,)> = sqlx::query_as(LOAD)
                    .bind(id)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(d,)| d))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.save_session", otel.kind = "client", db.operation.name = "save_session", db.system.name = Self::DB_SYSTEM))]
            async fn save_session(&self, row: SessionRow<'_>) -> Result<(), StoreError> {
                sqlx::query(SAVE)
                    .bind(row.id)
                    .bind(row.data)
                    .bind(row.expires_at)
                    .bind(row.owner)
                    .bind(row.anonymous)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.create_session", otel.kind = "client", db.operation.name = "create_session", db.system.name = Self::DB_SYSTEM))]
            async fn create_session(
                &self,
                row: SessionRow<'_>,
                keep: i64,
            ) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                if let (Some(owner), true) = (row.owner, row.anonymous) {
                    sqlx::query(MAKE_ROOM)
                        .bind(owner)
                        .bind((keep - 1).max(0))
                        .execute(&mut *tx)
                        .await?;
                }
                let done = sqlx::query(CREATE)
                    .bind(row.id)
                    .bind(row.data)
                    .bind(row.expires_at)
                    .bind(row.owner)
                    .bind(row.anonymous)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.session_stats", otel.kind = "client", db.operation.name = "session_stats", db.system.name = Self::DB_SYSTEM))]
            async fn session_stats(&self) -> Result<(i64, i64), StoreError> {
                Ok(sqlx::query_as(STATS).fetch_one(&self.pool).await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.delete_session", otel.kind = "client", db.operation.name = "delete_session", db.system.name = Self::DB_SYSTEM))]
            async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
                sqlx::query(DELETE).bind(id).execute(&self.pool).await?;
                Ok(())
            }
        }

        #[async_trait]
        impl RateLimitStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.rate_hit", otel.kind = "client", db.operation.name = "rate_hit", db.system.name = Self::DB_SYSTEM))]
            async fn rate_hit(
                &self,
                bucket: &str,
                window_start: UnixTime,
            ) -> Result<i64, StoreError> {
                let (hits,): (i64,) = sqlx::query_as(HIT)
                    .bind(bucket)
                    .bind(window_start)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(hits)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.rate_hit_at", otel.kind = "client", db.operation.name = "rate_hit_at", db.system.name = Self::DB_SYSTEM))]
            async fn rate_hit_at(
                &self,
                bucket: &str,
                window_start: UnixTime,
                now: UnixTime,
            ) -> Result<i64, StoreError> {
                let (hits,): (i64,) = sqlx::query_as(HIT_AT)
                    .bind(bucket)
                    .bind(window_start)
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(hits)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.rate_add", otel.kind = "client", db.operation.name = "rate_add", db.system.name = Self::DB_SYSTEM))]
            async fn rate_add(
                &self,
                bucket: &str,
                window_start: UnixTime,
                n: i64,
            ) -> Result<i64, StoreError> {
                let (hits,): (i64,) = sqlx::query_as(ADD)
                    .bind(bucket)
                    .bind(window_start)
                    .bind(n)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(hits)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.rate_peek", otel.kind = "client", db.operation.name = "rate_peek", db.system.name = Self::DB_SYSTEM))]
            async fn rate_peek(
                &self,
                bucket: &str,
                window_start: UnixTime,
            ) -> Result<(i64, Option<UnixTime>), StoreError> {
                let row: Option<(i64, Option<UnixTime>)> = sqlx::query_as(PEEK)
                    .bind(bucket)
                    .bind(window_start)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.unwrap_or((0, None)))
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.rate_buckets_before", otel.kind = "client", db.operation.name = "rate_buckets_before", db.system.name = Self::DB_SYSTEM))]
            async fn rate_buckets_before(
                &self,
                pattern: &str,
                before: UnixTime,
            ) -> Result<Vec<(String, UnixTime, i64)>, StoreError> {
                Ok(sqlx::query_as(BUCKETS_BEFORE)
                    .bind(pattern)
                    .bind(before)
                    .fetch_all(&self.pool)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.delete_rate_bucket", otel.kind = "client", db.operation.name = "delete_rate_bucket", db.system.name = Self::DB_SYSTEM))]
            async fn delete_rate_bucket(
                &self,
                bucket: &str,
                window_start: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(DELETE_BUCKET)
                    .bind(bucket)
                    .bind(window_start)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.purge_rate_limits", otel.kind = "client", db.operation.name = "purge_rate_limits", db.system.name = Self::DB_SYSTEM))]
            async fn purge_rate_limits(&self, before: UnixTime) -> Result<u64, StoreError> {
                let done = sqlx::query(PURGE_RATE_LIMITS)
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

session_store!(SqliteStore);
session_store!(PgStore);
