//! The export job lifecycle: create → poll (interval and deadline configurable) → download.
//!
//! Waiting is the caller's business and never the job's: when the deadline passes, the caller gets
//! [`ExportState::Running`] with the job id and can resume later; nothing is cancelled, because
//! others may be waiting for the same job. Dropping a wait (a client going away) likewise leaves
//! the job running in Clari.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::client::{ClariClient, ClariTarget};
use super::error::ClariError;
use super::types::*;

/// Asked before every status check: `false` stops the wait (`ClariError::Abandoned`) without
/// another call to Clari.
pub type StillWanted = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

#[derive(Clone)]
pub struct WaitPolicy {
    /// Pause between status checks.
    pub poll_interval: Duration,
    /// How long this caller is willing to wait; zero means "check once".
    pub deadline: Duration,
    /// When set, the wait goes on only while this says so.
    pub still_wanted: Option<StillWanted>,
}

impl std::fmt::Debug for WaitPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitPolicy")
            .field("poll_interval", &self.poll_interval)
            .field("deadline", &self.deadline)
            .field("still_wanted", &self.still_wanted.is_some())
            .finish()
    }
}

impl Default for WaitPolicy {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            deadline: Duration::from_secs(25),
            still_wanted: None,
        }
    }
}

/// Where an export stands: the one name for "ready or not yet", from the Clari client (ready, or
/// running with its job id) up to the tools (which also see an export queued behind Clari's
/// concurrency limit, or running before Clari has given it an id).
#[derive(Debug, Clone, PartialEq)]
pub enum ExportState<T> {
    Ready(T),
    /// The Clari job exists (`Some`), or is being created (`None`).
    Running {
        job_id: Option<JobId>,
    },
    /// Waiting for one of Clari's concurrency slots; 1 = next to start. `waiting_for` is the
    /// running job expected to free a slot first.
    Queued {
        position: u32,
        waiting_for: Option<JobId>,
    },
}

impl<T> ExportState<T> {
    pub fn ready(self) -> Option<T> {
        match self {
            Self::Ready(t) => Some(t),
            Self::Running { .. } | Self::Queued { .. } => None,
        }
    }

    /// Not ready yet (running or queued).
    pub fn is_pending(&self) -> bool {
        !matches!(self, Self::Ready(_))
    }

    /// The same state with the ready value mapped by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> ExportState<U> {
        match self {
            Self::Ready(v) => ExportState::Ready(f(v)),
            Self::Running { job_id } => ExportState::Running { job_id },
            Self::Queued {
                position,
                waiting_for,
            } => ExportState::Queued {
                position,
                waiting_for,
            },
        }
    }
}

/// Reports Clari's silent fallback to the current quarter for a period it does not know.
pub fn check_time_period(
    requested: Option<&TimePeriod>,
    results: &ForecastResults,
) -> Result<(), ClariError> {
    let (Some(requested), Some(first)) = (requested, results.time_periods.first()) else {
        return Ok(());
    };
    if first.time_period_id == requested.as_str() {
        Ok(())
    } else {
        Err(ClariError::WrongTimePeriod {
            requested: requested.to_string(),
            returned: first.time_period_id.clone(),
        })
    }
}

impl ClariClient {
    /// Polls a job until it is DONE (returns the job), ends otherwise (`JobEnded`), or the
    /// deadline passes (`StillRunning`).
    pub async fn wait_for_job(
        &self,
        target: &ClariTarget,
        job_id: &JobId,
        wait: WaitPolicy,
    ) -> Result<Job, ClariError> {
        let deadline = Instant::now() + wait.deadline;
        // The first look comes quickly: small exports often finish in well under a poll interval.
        let mut pause = wait.poll_interval.min(Duration::from_millis(200));
        loop {
            if let Some(still_wanted) = &wait.still_wanted
                && !still_wanted().await
            {
                return Err(ClariError::Abandoned {
                    job_id: Some(job_id.to_string()),
                });
            }
            let job = self.job(target, job_id).await?;
            match &job.status {
                JobStatus::Done => return Ok(job),
                s if s.is_terminal() => {
                    return Err(ClariError::JobEnded {
                        job_id: job_id.to_string(),
                        status: s.to_string(),
                    });
                }
                s => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(ClariError::StillRunning {
                            job_id: job_id.to_string(),
                            status: s.to_string(),
                        });
                    }
                    tokio::time::sleep(pause.min(deadline - now)).await;
                    pause = wait.poll_interval;
                }
            }
        }
    }

    /// Waits for `job_id` within `wait` and downloads it with `download`, or reports it running.
    async fn finish<T, F, Fut>(
        &self,
        target: &ClariTarget,
        job_id: JobId,
        wait: WaitPolicy,
        download: F,
    ) -> Result<ExportState<T>, ClariError>
    where
        F: FnOnce(JobId) -> Fut,
        Fut: Future<Output = Result<T, ClariError>>,
    {
        match self.wait_for_job(target, &job_id, wait).await {
            Ok(_) => Ok(ExportState::Ready(download(job_id).await?)),
            Err(ClariError::StillRunning { .. }) => Ok(ExportState::Running {
                job_id: Some(job_id),
            }),
            Err(e) => Err(e),
        }
    }

    /// Creates a forecast export, waits within `wait`, downloads and checks the time period.
    pub async fn export_forecast(
        &self,
        target: &ClariTarget,
        forecast_id: &ForecastId,
        req: &ForecastExportRequest,
        wait: WaitPolicy,
    ) -> Result<ExportState<ForecastResults>, ClariError> {
        let job_id = self
            .create_forecast_export(target, forecast_id, req)
            .await?;
        self.resume_forecast_export(target, &job_id, req.time_period.as_ref(), wait)
            .await
    }

    /// Continues waiting for a forecast export started earlier (by this caller or another).
    pub async fn resume_forecast_export(
        &self,
        target: &ClariTarget,
        job_id: &JobId,
        requested_period: Option<&TimePeriod>,
        wait: WaitPolicy,
    ) -> Result<ExportState<ForecastResults>, ClariError> {
        let outcome = self
            .finish(target, job_id.clone(), wait, |id| async move {
                self.forecast_results(target, &id).await
            })
            .await?;
        if let ExportState::Ready(results) = &outcome {
            check_time_period(requested_period, results)?;
        }
        Ok(outcome)
    }

    /// Creates an audit export and waits for it within `wait`.
    pub async fn export_audit(
        &self,
        target: &ClariTarget,
        query: &AuditQuery,
        now: i64,
        wait: WaitPolicy,
    ) -> Result<ExportState<AuditPage>, ClariError> {
        let job_id = self.create_audit_export(target, query, now).await?;
        self.finish(target, job_id, wait, |id| async move {
            self.audit_results(target, &id).await
        })
        .await
    }

    /// Creates an activity export and waits for it within `wait`.
    pub async fn export_activity(
        &self,
        target: &ClariTarget,
        req: &ActivityExportRequest,
        wait: WaitPolicy,
    ) -> Result<ExportState<ActivityResults>, ClariError> {
        let job_id = self.create_activity_export(target, req).await?;
        self.resume_activity_export(target, &job_id, wait).await
    }

    pub async fn resume_activity_export(
        &self,
        target: &ClariTarget,
        job_id: &JobId,
        wait: WaitPolicy,
    ) -> Result<ExportState<ActivityResults>, ClariError> {
        self.finish(target, job_id.clone(), wait, |id| async move {
            self.activity_results(target, &id).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results_for(period: &str) -> ForecastResults {
        ForecastResults {
            time_periods: vec![TimePeriodInfo {
                time_period_id: period.into(),
                label: None,
                year: None,
                period_type: None,
                start_date: None,
                end_date: None,
                crm_id: None,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn fallback_to_another_quarter_is_reported() {
        let asked = TimePeriod::parse("2019_Q1").unwrap();
        let err = check_time_period(Some(&asked), &results_for("2026_Q4")).unwrap_err();
        assert!(matches!(err, ClariError::WrongTimePeriod { .. }));
        assert!(check_time_period(Some(&asked), &results_for("2019_Q1")).is_ok());
        assert!(check_time_period(None, &results_for("2026_Q4")).is_ok());
    }
}
