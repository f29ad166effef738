//! What the security team pulls: the kill switch.
//!
//! `kill` disables the organisation and revokes every grant, refresh token, API key and machine
//! client in one transaction; every replica refuses the organisation on its very next request,
//! because each request checks the grant or key (and the organisation) in the database. Then the Clari exports
//! in flight are cancelled upstream, their rows closed, and this process's cached results dropped
//! (other replicas' caches are unreachable, since no request of the organisation gets through, and
//! their background exports stop at their next poll, cancelling upstream the jobs they created:
//! see `exports::pipeline::follow_in_background`). Enabling the organisation afterwards
//! resurrects nothing: people reconnect and keys are issued anew.

use crate::audit::{Actor, Event};
use crate::clari::client::ClariTarget;
use crate::clari::types::JobStatus;
use crate::clari::{ClariError, JobId};
use crate::http::RequestMeta;
use crate::state::AppState;
use crate::store::{ExportStatus, Killed, OrgId, StoreError};

/// What one pull of the kill switch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KillReport {
    #[serde(flatten)]
    pub revoked: Killed,
    /// Clari export jobs cancelled upstream.
    pub exports_cancelled: u64,
    /// Export rows closed (queued ones included).
    pub exports_closed: u64,
}

/// Pulls the kill switch for `org`, recording who did it and why.
pub async fn kill(
    state: &AppState,
    org: &OrgId,
    actor: Actor,
    reason: Option<&str>,
    meta: &RequestMeta,
) -> Result<KillReport, StoreError> {
    let now = state.now();
    // Read before the organisation is disabled as well as after. From the commit on, each
    // replica's background export gives up at its next poll and closes its own row without
    // calling Clari again, which may be before the read after the commit: its Clari job must be
    // cancelled all the same.
    // Best effort: a store error here must not hold up the revocation below.
    let before = state
        .store
        .unfinished_exports(org)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, org_id = %org, "reading the exports in flight before the kill failed");
            Vec::new()
        });
    let revoked = state.store.kill_org(org, now).await?;
    let mut report = KillReport {
        revoked,
        ..KillReport::default()
    };
    state.forget_org_exports(org);
    let open = state.store.unfinished_exports(org).await?;
    let closed_since: Vec<_> = before
        .into_iter()
        .filter(|(key, _, _)| !open.iter().any(|(k, _, _)| k == key))
        .collect();
    // Still open: cancelled upstream and closed here. Closed since the first read: cancelled
    // upstream only (a job that finished meanwhile refuses the cancel, which is only logged).
    let rows: Vec<_> = open
        .into_iter()
        .map(|row| (row, true))
        .chain(closed_since.into_iter().map(|row| (row, false)))
        .collect();
    if !rows.is_empty() {
        let target = crate::exports::pipeline::target(state, org).await.ok();
        for ((key, status, job), still_open) in rows {
            if let (Some(target), Some(job), ExportStatus::Starting | ExportStatus::Running) = (
                &target,
                job.as_deref().and_then(|j| JobId::parse(j).ok()),
                status,
            ) {
                match state.clari.cancel_job(target, &job).await {
                    Ok(_) => report.exports_cancelled += 1,
                    // The replica polling the job may have cancelled it first, on seeing the
                    // organisation disabled: still cancelled because of this kill.
                    Err(ClariError::JobAlreadyFinished { .. })
                        if cancelled_upstream(state, target, &job).await =>
                    {
                        report.exports_cancelled += 1;
                    }
                    // A job whose row closed meanwhile may simply have finished.
                    Err(e) if !still_open => {
                        tracing::debug!(error = %e, org_id = %org, %job, "an export closed during the kill was not cancelled");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, org_id = %org, %job, "cancelling an export at the kill switch failed");
                    }
                }
            }
            if still_open {
                state.store.finish_export(org, &key, false, now).await?;
                report.exports_closed += 1;
            }
        }
    }
    let (request_id, client_ip) = meta.parts();
    state.audit.record(
        Event::new(Some(org), actor, "org.killed")
            .target(org.as_str())
            .from_request(request_id, client_ip)
            .detail("reason", reason)
            .detail("grants_revoked", report.revoked.grants)
            .detail("refresh_tokens_revoked", report.revoked.refresh_tokens)
            .detail("api_keys_revoked", report.revoked.api_keys)
            .detail("service_clients_revoked", report.revoked.service_clients)
            .detail("exports_cancelled", report.exports_cancelled),
    );
    tracing::warn!(org_id = %org, reason, ?report, "kill switch pulled");
    Ok(report)
}

/// Whether Clari reports the job cancelled (before it started) or aborted (while running).
async fn cancelled_upstream(state: &AppState, target: &ClariTarget, job: &JobId) -> bool {
    matches!(
        state.clari.job(target, job).await.map(|j| j.status),
        Ok(JobStatus::Cancelled | JobStatus::Aborted)
    )
}
