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

use super::{OrgId, StoreError};
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

    /// `starting` → `running` with the Clari job id.
    async fn record_export_job(
        &self,
        org: &OrgId,
        key: &str,
        clari_job_id: &str,
        now: UnixTime,
    ) -> Result<(), StoreError>;

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

    /// Deletes finished rows last updated before `before`.
    async fn purge_export_jobs(&self, before: UnixTime) -> Result<u64, StoreError>;
}
