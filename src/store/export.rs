//! Clari export jobs shared across replicas: one `export_jobs` row per organisation and request is
//! both the single-flight claim (only one replica starts the Clari job, the others follow it) and
//! the organisation's queue in front of Clari's concurrency limit.
//!
//! Life of a row: `queued` (claimed, waiting for a slot) → `starting` (holds a slot, the Clari job
//! is being created) → `running` (job id recorded) → `done` | `failed`. A queued row whose owner
//! stops heart-beating, or an active row that stalls, is taken over by the next claimant.
//! Promotion from `queued` to `starting` is serialised per organisation through the
//! `export_lanes` row, so two replicas can never both take the last slot.

use async_trait::async_trait;

use super::{OrgId, PgStore, SqliteStore, StoreError};
use crate::clock::UnixTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportStatus {
    Queued,
    Starting,
    Running,
    Done,
    Failed,
}

impl ExportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "queued" => Self::Queued,
            "starting" => Self::Starting,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            other => {
                return Err(StoreError::Conflict(format!(
                    "unknown export status '{other}'"
                )));
            }
        })
    }
}

/// When rows stop counting: a queued row not heart-beaten since `queued_before`, an active
/// (starting/running) row not updated since `active_before`, a finished row older than
/// `done_before` (its result is no longer fresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportStaleness {
    pub queued_before: UnixTime,
    pub active_before: UnixTime,
    pub done_before: UnixTime,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportClaim {
    /// This replica owns the (queued) row: it must wait for a slot, then start the Clari job.
    Won,
    /// Another replica owns it; follow its Clari job once the id is recorded.
    Taken {
        clari_job_id: Option<String>,
        status: ExportStatus,
        /// 1 = next to start; only for queued rows.
        position: Option<u32>,
        /// When the row last changed: for a finished row, when its result was ready.
        updated_at: UnixTime,
    },
}

/// The answer of one attempt to take a concurrency slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Promotion {
    /// The row is now `starting`: create the Clari job.
    Start,
    /// Still queued (the heartbeat was recorded).
    Wait {
        position: u32,
        /// The running job that has been running longest: the first to free a slot.
        running_job_id: Option<String>,
    },
    /// The row is no longer this owner's (taken over after a stall, or finished).
    Lost,
}

#[async_trait]
pub trait ExportStore: Send + Sync {
    /// Joins the queue for `key` (`Won`), or reports the replica that holds it. A stale row
    /// (failed, finished before `done_before`, stalled) is taken over.
    async fn claim_export(
        &self,
        org: &OrgId,
        key: &str,
        now: UnixTime,
        stale: ExportStaleness,
    ) -> Result<ExportClaim, StoreError>;

    /// Moves the owner's queued row to `starting` when fewer than `limit` exports of the
    /// organisation are active and no live queued row is ahead of it; otherwise records the
    /// owner's heartbeat and reports the position.
    async fn promote_export(
        &self,
        org: &OrgId,
        key: &str,
        limit: u32,
        now: UnixTime,
        stale: ExportStaleness,
    ) -> Result<Promotion, StoreError>;

    /// `starting` → `running` with the Clari job id; `false` when the row is no longer
    /// `starting` (the kill switch closed it while the job was being created).
    async fn record_export_job(
        &self,
        org: &OrgId,
        key: &str,
        clari_job_id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// `starting` → `queued` (Clari refused for lack of a slot that other clients hold); the row
    /// keeps its place in the queue.
    async fn requeue_export(&self, org: &OrgId, key: &str, now: UnixTime)
    -> Result<(), StoreError>;

    async fn finish_export(
        &self,
        org: &OrgId,
        key: &str,
        succeeded: bool,
        now: UnixTime,
    ) -> Result<(), StoreError>;

    async fn export_claim(&self, org: &OrgId, key: &str)
    -> Result<Option<ExportClaim>, StoreError>;

    /// Exports of the organisation holding a slot (starting or running, not stalled).
    async fn active_exports(&self, org: &OrgId, active_before: UnixTime)
    -> Result<u32, StoreError>;

    /// The organisation's exports not yet finished: `(request key, status, Clari job id)`.
    async fn unfinished_exports(
        &self,
        org: &OrgId,
    ) -> Result<Vec<(String, ExportStatus, Option<String>)>, StoreError>;

    /// Deletes finished rows last updated before `before`.
    async fn purge_export_jobs(&self, before: UnixTime) -> Result<u64, StoreError>;
    /// Every organisation's unfinished exports at a glance, for the metrics: per status
    /// (`queued`, `starting`, `running`), how many rows, the oldest creation and the oldest update.
    async fn export_queue_summary(&self) -> Result<Vec<ExportQueueRow>, StoreError>;
    /// Notes that `owner` is waiting for the export `key` (one row per export and caller).
    async fn note_export_interest(
        &self,
        org: &OrgId,
        key: &str,
        owner: &str,
        now: UnixTime,
    ) -> Result<(), StoreError>;
    /// Callers other than `owner` that waited for the export of Clari job `job_id` since `since`.
    async fn others_waiting_on_job(
        &self,
        org: &OrgId,
        job_id: &str,
        owner: &str,
        since: UnixTime,
    ) -> Result<i64, StoreError>;
}

// SQL shared by both backends; `$N` placeholders work on SQLite and PostgreSQL alike.

/// Inserts the queued row, or takes over one that failed, finished long ago or went stale.
/// Exactly one concurrent caller sees its row come back.
const CLAIM: &str = "\
INSERT INTO export_jobs
    (organization_id, request_key, clari_job_id, status, created_at, updated_at, queue_seq)
VALUES ($1, $2, NULL, 'queued', $3, $3,
        (SELECT COALESCE(MAX(queue_seq), 0) + 1 FROM export_jobs WHERE organization_id = $1))
ON CONFLICT (organization_id, request_key) DO UPDATE SET
    clari_job_id = NULL, status = 'queued', created_at = excluded.created_at,
    updated_at = excluded.updated_at, queue_seq = excluded.queue_seq
WHERE export_jobs.status = 'failed'
   OR (export_jobs.status = 'done' AND export_jobs.updated_at < $6)
   OR (export_jobs.status = 'queued' AND export_jobs.updated_at < $4)
   OR (export_jobs.status IN ('starting', 'running') AND export_jobs.updated_at < $5)
RETURNING request_key";

const FIND: &str = "\
SELECT clari_job_id, status, queue_seq, updated_at FROM export_jobs
WHERE organization_id = $1 AND request_key = $2";

/// Takes the organisation's lane row: every promotion of one organisation runs after the
/// previous one committed (a row lock on PostgreSQL, the write lock on SQLite).
const LOCK_LANE: &str = "\
INSERT INTO export_lanes (organization_id, touched_at) VALUES ($1, $2)
ON CONFLICT (organization_id) DO UPDATE SET touched_at = excluded.touched_at";

const COUNT_ACTIVE: &str = "\
SELECT COUNT(*) FROM export_jobs
WHERE organization_id = $1 AND status IN ('starting', 'running') AND updated_at >= $2";

/// Live queued rows ahead of the given one (an earlier place; a tie, possible only under truly
/// concurrent claims, is broken by the key).
const COUNT_AHEAD: &str = "\
SELECT COUNT(*) FROM export_jobs
WHERE organization_id = $1 AND status = 'queued' AND updated_at >= $2
  AND (queue_seq < $3 OR (queue_seq = $3 AND request_key < $4))";

const OLDEST_RUNNING: &str = "\
SELECT clari_job_id FROM export_jobs
WHERE organization_id = $1 AND status = 'running' AND clari_job_id IS NOT NULL
ORDER BY updated_at, request_key LIMIT 1";

const SET_STATUS: &str = "\
UPDATE export_jobs SET status = $1, updated_at = $2
WHERE organization_id = $3 AND request_key = $4";

const RECORD_JOB: &str = "\
UPDATE export_jobs SET clari_job_id = $1, status = 'running', updated_at = $2
WHERE organization_id = $3 AND request_key = $4 AND status = 'starting'";

const UNFINISHED: &str = "\
SELECT request_key, status, clari_job_id FROM export_jobs
WHERE organization_id = $1 AND status IN ('queued', 'starting', 'running')";

const PURGE: &str = "\
DELETE FROM export_jobs WHERE status IN ('done', 'failed') AND updated_at < $1";

const QUEUE_SUMMARY: &str = "\
SELECT status, COUNT(*) AS n, MIN(created_at) AS oldest_created, MIN(updated_at) AS oldest_updated
FROM export_jobs WHERE status IN ('queued', 'starting', 'running') GROUP BY status";

/// One status of the export queue, summed over every organisation.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ExportQueueRow {
    pub status: String,
    pub n: i64,
    pub oldest_created: UnixTime,
    pub oldest_updated: UnixTime,
}

const PURGE_INTEREST: &str = "DELETE FROM export_interest WHERE seen_at < $1";

const NOTE_INTEREST: &str = "\
INSERT INTO export_interest (organization_id, request_key, owner, seen_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (organization_id, request_key, owner) DO UPDATE SET seen_at = excluded.seen_at";

const OTHERS_WAITING: &str = "\
SELECT COUNT(*) FROM export_interest i
JOIN export_jobs j ON j.organization_id = i.organization_id AND j.request_key = i.request_key
WHERE i.organization_id = $1 AND j.clari_job_id = $2 AND i.owner <> $3 AND i.seen_at >= $4";

/// A row as `FIND` reads it: Clari job id, status, place in the queue, last update.
type FoundExport = (Option<String>, String, i64, i64);

macro_rules! export_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// The organisation's row for `key`, on the pool or inside a transaction.
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.find_export", otel.kind = "client", db.operation.name = "find_export", db.system.name = Self::DB_SYSTEM))]
            async fn find_export(
                ex: impl sqlx::Executor<'_, Database = $db>,
                org: &OrgId,
                key: &str,
            ) -> Result<Option<FoundExport>, StoreError> {
                Ok(sqlx::query_as(FIND)
                    .bind(org.as_str())
                    .bind(key)
                    .fetch_optional(ex)
                    .await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.set_export_status", otel.kind = "client", db.operation.name = "set_export_status", db.system.name = Self::DB_SYSTEM))]
            async fn set_export_status(
                ex: impl sqlx::Executor<'_, Database = $db>,
                org: &OrgId,
                key: &str,
                status: ExportStatus,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(SET_STATUS)
                    .bind(status.as_str())
                    .bind(now)
                    .bind(org.as_str())
                    .bind(key)
                    .execute(ex)
                    .await?;
                Ok(())
            }

            /// Exports of the organisation holding a slot (starting or running, updated since
            /// `active_before`).
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.count_active", otel.kind = "client", db.operation.name = "count_active", db.system.name = Self::DB_SYSTEM))]
            async fn count_active(
                ex: impl sqlx::Executor<'_, Database = $db>,
                org: &OrgId,
                active_before: UnixTime,
            ) -> Result<u32, StoreError> {
                let (n,): (i64,) = sqlx::query_as(COUNT_ACTIVE)
                    .bind(org.as_str())
                    .bind(active_before)
                    .fetch_one(ex)
                    .await?;
                Ok(n.max(0) as u32)
            }

            /// Live queued rows ahead of `key` (see `COUNT_AHEAD`).
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.queue_ahead", otel.kind = "client", db.operation.name = "queue_ahead", db.system.name = Self::DB_SYSTEM))]
            async fn queue_ahead(
                ex: impl sqlx::Executor<'_, Database = $db>,
                org: &OrgId,
                key: &str,
                queue_seq: i64,
                queued_before: UnixTime,
            ) -> Result<u32, StoreError> {
                let (n,): (i64,) = sqlx::query_as(COUNT_AHEAD)
                    .bind(org.as_str())
                    .bind(queued_before)
                    .bind(queue_seq)
                    .bind(key)
                    .fetch_one(ex)
                    .await?;
                Ok(n.max(0) as u32)
            }
        }

        #[async_trait]
        impl ExportStore for $store {
            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.claim_export", otel.kind = "client", db.operation.name = "claim_export", db.system.name = Self::DB_SYSTEM))]
            async fn claim_export(
                &self,
                org: &OrgId,
                key: &str,
                now: UnixTime,
                stale: ExportStaleness,
            ) -> Result<ExportClaim, StoreError> {
                let won: Option<(String,)> = sqlx::query_as(CLAIM)
                    .bind(org.as_str())
                    .bind(key)
                    .bind(now)
                    .bind(stale.queued_before)
                    .bind(stale.active_before)
                    .bind(stale.done_before)
                    .fetch_optional(&self.pool)
                    .await?;
                if won.is_some() {
                    return Ok(ExportClaim::Won);
                }
                let row = Self::find_export(&self.pool, org, key).await?;
                // Deleted between the two statements (a purge): claim again next time.
                let Some((clari_job_id, status, queue_seq, updated_at)) = row else {
                    return Ok(ExportClaim::Taken {
                        clari_job_id: None,
                        status: ExportStatus::Queued,
                        position: None,
                        updated_at: now,
                    });
                };
                let status = ExportStatus::parse(&status)?;
                let position = if status == ExportStatus::Queued {
                    Some(
                        Self::queue_ahead(&self.pool, org, key, queue_seq, stale.queued_before)
                            .await?
                            + 1,
                    )
                } else {
                    None
                };
                Ok(ExportClaim::Taken {
                    clari_job_id,
                    status,
                    position,
                    updated_at,
                })
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.promote_export", otel.kind = "client", db.operation.name = "promote_export", db.system.name = Self::DB_SYSTEM))]
            async fn promote_export(
                &self,
                org: &OrgId,
                key: &str,
                limit: u32,
                now: UnixTime,
                stale: ExportStaleness,
            ) -> Result<Promotion, StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(LOCK_LANE)
                    .bind(org.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let row = Self::find_export(&mut *tx, org, key).await?;
                let Some((_, status, queue_seq, _)) = row else {
                    return Ok(Promotion::Lost);
                };
                if ExportStatus::parse(&status)? != ExportStatus::Queued {
                    return Ok(Promotion::Lost);
                }
                let active = Self::count_active(&mut *tx, org, stale.active_before).await?;
                let ahead =
                    Self::queue_ahead(&mut *tx, org, key, queue_seq, stale.queued_before).await?;
                let start = active < limit && ahead == 0;
                let next = if start {
                    ExportStatus::Starting
                } else {
                    ExportStatus::Queued
                };
                Self::set_export_status(&mut *tx, org, key, next, now).await?;
                let running: Option<(Option<String>,)> = if start {
                    None
                } else {
                    sqlx::query_as(OLDEST_RUNNING)
                        .bind(org.as_str())
                        .fetch_optional(&mut *tx)
                        .await?
                };
                tx.commit().await?;
                Ok(if start {
                    Promotion::Start
                } else {
                    Promotion::Wait {
                        position: ahead + 1,
                        running_job_id: running.and_then(|(j,)| j),
                    }
                })
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.record_export_job", otel.kind = "client", db.operation.name = "record_export_job", db.system.name = Self::DB_SYSTEM))]
            async fn record_export_job(
                &self,
                org: &OrgId,
                key: &str,
                clari_job_id: &str,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(RECORD_JOB)
                    .bind(clari_job_id)
                    .bind(now)
                    .bind(org.as_str())
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.requeue_export", otel.kind = "client", db.operation.name = "requeue_export", db.system.name = Self::DB_SYSTEM))]
            async fn requeue_export(
                &self,
                org: &OrgId,
                key: &str,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                Self::set_export_status(&self.pool, org, key, ExportStatus::Queued, now).await
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.finish_export", otel.kind = "client", db.operation.name = "finish_export", db.system.name = Self::DB_SYSTEM))]
            async fn finish_export(
                &self,
                org: &OrgId,
                key: &str,
                succeeded: bool,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                let status = if succeeded {
                    ExportStatus::Done
                } else {
                    ExportStatus::Failed
                };
                Self::set_export_status(&self.pool, org, key, status, now).await
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.export_claim", otel.kind = "client", db.operation.name = "export_claim", db.system.name = Self::DB_SYSTEM))]
            async fn export_claim(
                &self,
                org: &OrgId,
                key: &str,
            ) -> Result<Option<ExportClaim>, StoreError> {
                let row = Self::find_export(&self.pool, org, key).await?;
                row.map(|(clari_job_id, status, _, updated_at)| {
                    Ok(ExportClaim::Taken {
                        clari_job_id,
                        status: ExportStatus::parse(&status)?,
                        position: None,
                        updated_at,
                    })
                })
                .transpose()
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.active_exports", otel.kind = "client", db.operation.name = "active_exports", db.system.name = Self::DB_SYSTEM))]
            async fn active_exports(
                &self,
                org: &OrgId,
                active_before: UnixTime,
            ) -> Result<u32, StoreError> {
                Self::count_active(&self.pool, org, active_before).await
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.unfinished_exports", otel.kind = "client", db.operation.name = "unfinished_exports", db.system.name = Self::DB_SYSTEM))]
            async fn unfinished_exports(
                &self,
                org: &OrgId,
            ) -> Result<Vec<(String, ExportStatus, Option<String>)>, StoreError> {
                let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(UNFINISHED)
                    .bind(org.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(|(k, s, j)| Ok((k, ExportStatus::parse(&s)?, j)))
                    .collect()
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.export_queue_summary", otel.kind = "client", db.operation.name = "export_queue_summary", db.system.name = Self::DB_SYSTEM))]
            async fn export_queue_summary(&self) -> Result<Vec<ExportQueueRow>, StoreError> {
                Ok(sqlx::query_as(QUEUE_SUMMARY).fetch_all(&self.pool).await?)
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.purge_export_jobs", otel.kind = "client", db.operation.name = "purge_export_jobs", db.system.name = Self::DB_SYSTEM))]
            async fn purge_export_jobs(&self, before: UnixTime) -> Result<u64, StoreError> {
                let done = sqlx::query(PURGE).bind(before).execute(&self.pool).await?;
                let interest = sqlx::query(PURGE_INTEREST)
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() + interest.rows_affected())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.note_export_interest", otel.kind = "client", db.operation.name = "note_export_interest", db.system.name = Self::DB_SYSTEM))]
            async fn note_export_interest(
                &self,
                org: &OrgId,
                key: &str,
                owner: &str,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                sqlx::query(NOTE_INTEREST)
                    .bind(org.as_str())
                    .bind(key)
                    .bind(owner)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(name = "store", skip_all, fields(otel.name = "store.others_waiting_on_job", otel.kind = "client", db.operation.name = "others_waiting_on_job", db.system.name = Self::DB_SYSTEM))]
            async fn others_waiting_on_job(
                &self,
                org: &OrgId,
                job_id: &str,
                owner: &str,
                since: UnixTime,
            ) -> Result<i64, StoreError> {
                let (n,): (i64,) = sqlx::query_as(OTHERS_WAITING)
                    .bind(org.as_str())
                    .bind(job_id)
                    .bind(owner)
                    .bind(since)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n)
            }
        }
    };
}

export_store!(SqliteStore, sqlx::Sqlite);
export_store!(PgStore, sqlx::Postgres);
