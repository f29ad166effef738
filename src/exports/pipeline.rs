//! What the tools read from Clari, shaped once: the organisation's Clari target (key decrypted only
//! when Clari must be called, dropped after), exports through one generic shared-export helper
//! (cache → single-flight → the organisation's queue → Clari), and a `Forecast` view whose
//! lookups are built once per cached export.
//!
//! Tools that need the same data share one export: one forecast export (all types, with history)
//! per forecast tab and quarter serves the forecast, its submissions, time periods and users; one
//! activity export of the last [`ACTIVITY_DAYS`] days serves opportunities, accounts and pipeline
//! changes for any window inside it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::cache::{ExportCache, ExportKey, Progress, Weigh};
use super::queue::{self, Started, Waiting};
use super::view::{ActivityWindow, Forecast};
use crate::clari::client::ClariTarget;
use crate::clari::types::*;
use crate::clari::{ClariClient, ClariError, ExportState, ForecastId, JobId, WaitPolicy};
use crate::clock::rfc3339;
use crate::state::AppState;
use crate::store::OrgId;

/// How long a background export may keep polling Clari before giving up.
const BACKGROUND_DEADLINE: Duration = Duration::from_secs(600);
/// The activity window exported once and shared by every activity question inside it.
pub const ACTIVITY_DAYS: i64 = 90;

/// The organisation's Clari base URL and key, decrypted for this call only.
pub async fn target(state: &AppState, org: &OrgId) -> Result<ClariTarget, ClariError> {
    let cred = state
        .store
        .clari_credential(org)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, org_id = %org, "reading the Clari credential failed");
            ClariError::StoreUnavailable
        })?
        .ok_or(ClariError::MissingApiKey)?;
    let key = state
        .vault
        .open_string(&cred.ciphertext, &cred.key_id)
        .map_err(|e| {
            tracing::error!(error = %e, org_id = %org, "the stored Clari key cannot be decrypted");
            ClariError::MissingApiKey
        })?;
    let base = cred
        .base_url
        .as_deref()
        .unwrap_or(&state.config.clari_base_url);
    ClariTarget::new(base, key)
}

impl Weigh for Forecast {
    /// The content's weight, and the most the answers kept with it may weigh; the view's
    /// lookups come on top.
    fn weight(&self) -> usize {
        self.results.content_bytes + crate::exports::kept::KEPT_BYTES
    }
}

impl Weigh for ActivityResults {
    fn weight(&self) -> usize {
        self.content_bytes
    }
}

/// One kind of Clari export: how to name it, start it, and finish it.
pub trait ExportKind: Send + Sync + 'static {
    type Output: Weigh + Send + Sync + 'static;

    /// The cache key: the organisation and the export it asks for. Its text form keys the queue.
    fn request_key(&self, org: &OrgId) -> ExportKey;
    fn cache(state: &AppState) -> &ExportCache<Self::Output>;
    fn create(
        &self,
        client: &ClariClient,
        target: &ClariTarget,
    ) -> impl Future<Output = Result<JobId, ClariError>> + Send;
    fn resume(
        &self,
        client: &ClariClient,
        target: &ClariTarget,
        job_id: &JobId,
        wait: WaitPolicy,
    ) -> impl Future<Output = Result<ExportState<Self::Output>, ClariError>> + Send;
}

tokio::task_local! {
    /// Who a tool call is made for (the task owner of `mcp::tasks`); unset for the server's own
    /// work (pre-warming), which counts as one more caller waiting.
    pub static EXPORT_OWNER: String;
}

/// Who waits for an export the server fetches for itself.
const BACKGROUND_OWNER: &str = "background";

/// The export `kind` for the organisation: from the cache, or joined, or queued and started in
/// the background. Waits at most `wait` for it to be ready. A caller that gets here before the
/// export is ready is noted as waiting for it, so no other caller's cancel stops it.
pub async fn shared_export<K: ExportKind>(
    state: &AppState,
    org: &OrgId,
    kind: K,
    wait: Duration,
) -> Progress<K::Output> {
    let key = kind.request_key(org);
    if K::cache(state).peek(&key).is_none() {
        let owner = EXPORT_OWNER
            .try_with(Clone::clone)
            .unwrap_or_else(|_| BACKGROUND_OWNER.to_owned());
        // Keyed as the shared export row is (the digest of the request).
        let row_key = crate::crypto::sha256_hex(&key.to_string());
        if let Err(e) = state
            .store
            .note_export_interest(org, &row_key, &owner, state.now())
            .await
        {
            tracing::warn!(error = %e, "noting who waits for an export failed");
        }
    }
    K::cache(state)
        .get(key, wait, |tx| {
            // Only when the export has to be made: a warm call allocates none of this.
            let (task_state, task_org) = (state.clone(), org.clone());
            let request = kind.request_key(org).to_string();
            async move {
                let outcome = run_export(&task_state, &task_org, &request, &kind, &tx).await;
                let _ = tx.send(outcome.map(|v| ExportState::Ready(Arc::new(v))));
                // Its weight is known now.
                K::cache(&task_state).trim();
            }
        })
        .await
}

async fn run_export<K: ExportKind>(
    state: &AppState,
    org: &OrgId,
    request: &str,
    kind: &K,
    tx: &tokio::sync::watch::Sender<Progress<K::Output>>,
) -> Result<K::Output, ClariError> {
    let target = target(state, org).await?;
    let client = &state.clari;
    let report = |w: Waiting| {
        let _ = tx.send(Ok(match w {
            Waiting::Queued {
                position,
                waiting_for,
            } => ExportState::Queued {
                position,
                waiting_for,
            },
            Waiting::Starting => ExportState::Running { job_id: None },
        }));
    };
    let started = queue::start_or_follow(state, org, &target, request, report, || {
        kind.create(client, &target)
    })
    .await?;
    let _ = tx.send(Ok(ExportState::Running {
        job_id: Some(started.job_id.clone()),
    }));
    match follow_in_background(state, org, request, kind, target, &started).await? {
        ExportState::Ready(v) => Ok(v),
        ExportState::Running { .. } | ExportState::Queued { .. } => Err(ClariError::StillRunning {
            job_id: started.job_id.to_string(),
            status: "running".to_owned(),
        }),
    }
}

/// Waits for the Clari job `started` follows (see [`background_wait`]) and records its end on the
/// export's row when this replica owns it.
///
/// The decrypted key lives as long as this wait. Once the organisation is disabled (`org
/// disable` or the kill switch), the wait ends before another status check, and the replica
/// that created the job cancels it upstream with the key still in hand. So a job nobody can
/// read any more stops using the organisation's Clari slot and quota, even when the kill
/// switch did not see it (created while the kill ran, or after a plain disable the kill found
/// nothing open). A second cancel of the same job (the kill switch's own) is refused by Clari
/// and only logged.
pub async fn follow_in_background<K: ExportKind>(
    state: &AppState,
    org: &OrgId,
    request: &str,
    kind: &K,
    target: ClariTarget,
    started: &Started,
) -> Result<ExportState<K::Output>, ClariError> {
    let outcome = kind
        .resume(
            &state.clari,
            &target,
            &started.job_id,
            background_wait(state, org),
        )
        .await;
    if started.owner
        && let Err(ClariError::Abandoned { .. }) = &outcome
    {
        match state.clari.cancel_job(&target, &started.job_id).await {
            Ok(_) => {
                tracing::info!(org_id = %org, job_id = %started.job_id, "export of a disabled organisation cancelled upstream");
            }
            Err(e) => {
                tracing::debug!(error = %e, org_id = %org, job_id = %started.job_id, "export of a disabled organisation not cancelled (already ended)");
            }
        }
    }
    drop(target);
    let ok = matches!(outcome, Ok(ExportState::Ready(_)));
    queue::finish(state, org, request, started, ok).await;
    outcome
}

/// How an export is awaited in the background: polled until [`BACKGROUND_DEADLINE`], and only
/// while the organisation stays enabled.
pub fn background_wait(state: &AppState, org: &OrgId) -> WaitPolicy {
    let (check_state, check_org) = (state.clone(), org.clone());
    WaitPolicy {
        poll_interval: state.config.export_poll_interval,
        deadline: BACKGROUND_DEADLINE,
        still_wanted: Some(Arc::new(move || {
            let (state, org) = (check_state.clone(), check_org.clone());
            Box::pin(async move { queue::org_enabled(&state, &org).await })
        })),
    }
}

// --- forecast ---------------------------------------------------------------------------------

/// One forecast tab for one quarter (`None`: the current one), with every type the tools read.
pub struct ForecastExport {
    pub forecast_id: ForecastId,
    pub time_period: Option<TimePeriod>,
}

impl ForecastExport {
    pub fn new(forecast_id: ForecastId, time_period: Option<TimePeriod>) -> Self {
        Self {
            forecast_id,
            time_period,
        }
    }

    fn request(&self) -> ForecastExportRequest {
        ForecastExportRequest {
            time_period: self.time_period.clone(),
            types_to_export: vec![
                ExportType::Forecast,
                ExportType::Quota,
                ExportType::ForecastUpdated,
            ],
            include_historical: Some(true),
            ..Default::default()
        }
    }
}

impl ExportKind for ForecastExport {
    type Output = Forecast;

    fn request_key(&self, org: &OrgId) -> ExportKey {
        let period = self
            .time_period
            .as_ref()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "current".into());
        ExportKey::new(
            org.clone(),
            format!("forecast:{}:{period}", self.forecast_id),
        )
    }

    fn cache(state: &AppState) -> &ExportCache<Forecast> {
        &state.forecasts
    }

    async fn create(
        &self,
        client: &ClariClient,
        target: &ClariTarget,
    ) -> Result<JobId, ClariError> {
        client
            .create_forecast_export(target, &self.forecast_id, &self.request())
            .await
    }

    async fn resume(
        &self,
        client: &ClariClient,
        target: &ClariTarget,
        job_id: &JobId,
        wait: WaitPolicy,
    ) -> Result<ExportState<Forecast>, ClariError> {
        Ok(client
            .resume_forecast_export(target, job_id, self.time_period.as_ref(), wait)
            .await?
            .map(Forecast::new))
    }
}

pub async fn forecast(
    state: &AppState,
    org: &OrgId,
    forecast_id: &str,
    time_period: Option<TimePeriod>,
    wait: Duration,
) -> Progress<Forecast> {
    let kind = ForecastExport::new(ForecastId::parse(forecast_id)?, time_period);
    shared_export(state, org, kind, wait).await
}

// --- activity ---------------------------------------------------------------------------------

/// The activity export of whole days `start..=end` (YYYY-MM-DD), all activity types.
pub struct ActivityExport {
    start: String,
    end: String,
}

fn day(t: i64) -> String {
    rfc3339(t).get(..10).unwrap_or_default().to_owned()
}

impl ActivityExport {
    /// The shared window of the last [`ACTIVITY_DAYS`] days when `since..until` lies inside it,
    /// else exactly the days asked for.
    pub fn covering(since: i64, until: i64, now: i64) -> Self {
        let (shared_start, shared_end) = (day(now - ACTIVITY_DAYS * 86_400), day(now));
        let (start, end) = (day(since), day(until));
        if start >= shared_start && end <= shared_end {
            Self {
                start: shared_start,
                end: shared_end,
            }
        } else {
            Self { start, end }
        }
    }

    fn request(&self) -> ActivityExportRequest {
        ActivityExportRequest {
            activity_types: ActivityType::ALL.to_vec(),
            start_date: format!("{}T00:00:00Z", self.start),
            end_date: format!("{}T23:59:59Z", self.end),
            export_format: ExportFormat::Json,
        }
    }
}

impl ExportKind for ActivityExport {
    type Output = ActivityResults;

    fn request_key(&self, org: &OrgId) -> ExportKey {
        ExportKey::new(org.clone(), format!("activity:{}:{}", self.start, self.end))
    }

    fn cache(state: &AppState) -> &ExportCache<ActivityResults> {
        &state.activities
    }

    async fn create(
        &self,
        client: &ClariClient,
        target: &ClariTarget,
    ) -> Result<JobId, ClariError> {
        client.create_activity_export(target, &self.request()).await
    }

    async fn resume(
        &self,
        client: &ClariClient,
        target: &ClariTarget,
        job_id: &JobId,
        wait: WaitPolicy,
    ) -> Result<ExportState<ActivityResults>, ClariError> {
        client.resume_activity_export(target, job_id, wait).await
    }
}

/// Activities of the whole days from `since` to `until` (the window a tool asked for), from the
/// shared export when it covers them.
pub async fn activities(
    state: &AppState,
    org: &OrgId,
    (start, end): (i64, i64),
    wait: Duration,
) -> Progress<ActivityWindow> {
    // Clari's export takes whole UTC days; the window `[start, end)` (Unix seconds) is cut from
    // them exactly.
    // Nothing has happened after now, so a window ending later is read up to now.
    let now = state.now();
    let kind = ActivityExport::covering(start.min(now), (end - 1).min(now), now);
    let got = shared_export(state, org, kind, wait).await?;
    let (from_ms, to_ms) = (start * 1000, end * 1000 - 1);
    Ok(got.map(|all| Arc::new(ActivityWindow::new(all, from_ms, to_ms))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_activity_window_serves_windows_inside_it() {
        let now = 1_800_000_000;
        let inside = ActivityExport::covering(now - 30 * 86_400, now, now);
        let shared = ActivityExport::covering(now - 7 * 86_400, now - 86_400, now);
        assert_eq!(
            (inside.start.as_str(), inside.end.as_str()),
            (shared.start.as_str(), shared.end.as_str())
        );
        let older = ActivityExport::covering(now - 200 * 86_400, now - 100 * 86_400, now);
        assert_eq!(older.start, day(now - 200 * 86_400));
        assert_eq!(older.end, day(now - 100 * 86_400));
    }
}
