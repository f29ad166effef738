//! SQL of the export queue, shared by both backends (see `sql.rs`). Statements live in constants
//! so they stay readable; `$N` placeholders work on SQLite and PostgreSQL alike.

/// Inserts the queued row, or takes over one that failed, finished long ago or went stale.
/// Exactly one concurrent caller sees its row come back.
pub(super) const CLAIM: &str = "\
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

pub(super) const FIND: &str = "\
SELECT clari_job_id, status, queue_seq FROM export_jobs
WHERE organization_id = $1 AND request_key = $2";

/// Takes the organisation's lane row: every promotion of one organisation runs after the
/// previous one committed (a row lock on PostgreSQL, the write lock on SQLite).
pub(super) const LOCK_LANE: &str = "\
INSERT INTO export_lanes (organization_id, touched_at) VALUES ($1, $2)
ON CONFLICT (organization_id) DO UPDATE SET touched_at = excluded.touched_at";

pub(super) const COUNT_ACTIVE: &str = "\
SELECT COUNT(*) FROM export_jobs
WHERE organization_id = $1 AND status IN ('starting', 'running') AND updated_at >= $2";

/// Live queued rows ahead of the given one (an earlier place; a tie, possible only under truly
/// concurrent claims, is broken by the key).
pub(super) const COUNT_AHEAD: &str = "\
SELECT COUNT(*) FROM export_jobs
WHERE organization_id = $1 AND status = 'queued' AND updated_at >= $2
  AND (queue_seq < $3 OR (queue_seq = $3 AND request_key < $4))";

pub(super) const OLDEST_RUNNING: &str = "\
SELECT clari_job_id FROM export_jobs
WHERE organization_id = $1 AND status = 'running' AND clari_job_id IS NOT NULL
ORDER BY updated_at, request_key LIMIT 1";

pub(super) const SET_STATUS: &str = "\
UPDATE export_jobs SET status = $1, updated_at = $2
WHERE organization_id = $3 AND request_key = $4";

pub(super) const RECORD_JOB: &str = "\
UPDATE export_jobs SET clari_job_id = $1, status = 'running', updated_at = $2
WHERE organization_id = $3 AND request_key = $4";

pub(super) const PURGE: &str = "\
DELETE FROM export_jobs WHERE status IN ('done', 'failed') AND updated_at < $1";

macro_rules! impl_export_store {
    ($store:ty) => {
        impl $store {
            async fn set_export_status(
                &self,
                org: &$crate::store::OrgId,
                key: &str,
                status: $crate::store::ExportStatus,
                now: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(super::sql_exports::SET_STATUS)
                    .bind(status.as_str())
                    .bind(now)
                    .bind(org.as_str())
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn queue_ahead(
                &self,
                org: &$crate::store::OrgId,
                key: &str,
                queue_seq: i64,
                queued_before: i64,
            ) -> Result<u32, StoreError> {
                let (n,): (i64,) = sqlx::query_as(super::sql_exports::COUNT_AHEAD)
                    .bind(org.as_str())
                    .bind(queued_before)
                    .bind(queue_seq)
                    .bind(key)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n.max(0) as u32)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ExportStore for $store {
            async fn claim_export(
                &self,
                org: &$crate::store::OrgId,
                key: &str,
                now: i64,
                stale: $crate::store::ExportStaleness,
            ) -> Result<$crate::store::ExportClaim, StoreError> {
                let won: Option<(String,)> = sqlx::query_as(super::sql_exports::CLAIM)
                    .bind(org.as_str())
                    .bind(key)
                    .bind(now)
                    .bind(stale.queued_before)
                    .bind(stale.active_before)
                    .bind(stale.done_before)
                    .fetch_optional(&self.pool)
                    .await?;
                if won.is_some() {
                    return Ok($crate::store::ExportClaim::Won);
                }
                let row: Option<(Option<String>, String, i64)> =
                    sqlx::query_as(super::sql_exports::FIND)
                        .bind(org.as_str())
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?;
                // Deleted between the two statements (a purge): claim again next time.
                let Some((clari_job_id, status, queue_seq)) = row else {
                    return Ok($crate::store::ExportClaim::Taken {
                        clari_job_id: None,
                        status: $crate::store::ExportStatus::Queued,
                        position: None,
                    });
                };
                let status = $crate::store::ExportStatus::parse(&status)?;
                let position = if status == $crate::store::ExportStatus::Queued {
                    Some(
                        self.queue_ahead(org, key, queue_seq, stale.queued_before)
                            .await?
                            + 1,
                    )
                } else {
                    None
                };
                Ok($crate::store::ExportClaim::Taken {
                    clari_job_id,
                    status,
                    position,
                })
            }

            async fn promote_export(
                &self,
                org: &$crate::store::OrgId,
                key: &str,
                limit: u32,
                now: i64,
                stale: $crate::store::ExportStaleness,
            ) -> Result<$crate::store::Promotion, StoreError> {
                use $crate::store::{ExportStatus, Promotion};
                let mut tx = self.pool.begin().await?;
                sqlx::query(super::sql_exports::LOCK_LANE)
                    .bind(org.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let row: Option<(Option<String>, String, i64)> =
                    sqlx::query_as(super::sql_exports::FIND)
                        .bind(org.as_str())
                        .bind(key)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((_, status, queue_seq)) = row else {
                    return Ok(Promotion::Lost);
                };
                if ExportStatus::parse(&status)? != ExportStatus::Queued {
                    return Ok(Promotion::Lost);
                }
                let (active,): (i64,) = sqlx::query_as(super::sql_exports::COUNT_ACTIVE)
                    .bind(org.as_str())
                    .bind(stale.active_before)
                    .fetch_one(&mut *tx)
                    .await?;
                let (ahead,): (i64,) = sqlx::query_as(super::sql_exports::COUNT_AHEAD)
                    .bind(org.as_str())
                    .bind(stale.queued_before)
                    .bind(queue_seq)
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?;
                let start = active < i64::from(limit) && ahead == 0;
                let next = if start {
                    ExportStatus::Starting
                } else {
                    ExportStatus::Queued
                };
                sqlx::query(super::sql_exports::SET_STATUS)
                    .bind(next.as_str())
                    .bind(now)
                    .bind(org.as_str())
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                let running: Option<(Option<String>,)> = if start {
                    None
                } else {
                    sqlx::query_as(super::sql_exports::OLDEST_RUNNING)
                        .bind(org.as_str())
                        .fetch_optional(&mut *tx)
                        .await?
                };
                tx.commit().await?;
                Ok(if start {
                    Promotion::Start
                } else {
                    Promotion::Wait {
                        position: ahead.max(0) as u32 + 1,
                        running_job_id: running.and_then(|(j,)| j),
                    }
                })
            }

            async fn record_export_job(
                &self,
                org: &$crate::store::OrgId,
                key: &str,
                clari_job_id: &str,
                now: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(super::sql_exports::RECORD_JOB)
                    .bind(clari_job_id)
                    .bind(now)
                    .bind(org.as_str())
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn requeue_export(
                &self,
                org: &$crate::store::OrgId,
                key: &str,
                now: i64,
            ) -> Result<(), StoreError> {
                self.set_export_status(org, key, $crate::store::ExportStatus::Queued, now)
                    .await
            }

            async fn finish_export(
                &self,
                org: &$crate::store::OrgId,
                key: &str,
                succeeded: bool,
                now: i64,
            ) -> Result<(), StoreError> {
                let status = if succeeded {
                    $crate::store::ExportStatus::Done
                } else {
                    $crate::store::ExportStatus::Failed
                };
                self.set_export_status(org, key, status, now).await
            }

            async fn export_claim(
                &self,
                org: &$crate::store::OrgId,
                key: &str,
            ) -> Result<Option<$crate::store::ExportClaim>, StoreError> {
                let row: Option<(Option<String>, String, i64)> =
                    sqlx::query_as(super::sql_exports::FIND)
                        .bind(org.as_str())
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(|(clari_job_id, status, _)| {
                    Ok($crate::store::ExportClaim::Taken {
                        clari_job_id,
                        status: $crate::store::ExportStatus::parse(&status)?,
                        position: None,
                    })
                })
                .transpose()
            }

            async fn active_exports(
                &self,
                org: &$crate::store::OrgId,
                active_before: i64,
            ) -> Result<u32, StoreError> {
                let (n,): (i64,) = sqlx::query_as(super::sql_exports::COUNT_ACTIVE)
                    .bind(org.as_str())
                    .bind(active_before)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n.max(0) as u32)
            }

            async fn purge_export_jobs(&self, before: i64) -> Result<u64, StoreError> {
                let done = sqlx::query(super::sql_exports::PURGE)
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_export_store;
