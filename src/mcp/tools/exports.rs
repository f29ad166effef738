//! Export-job tools: the organisation's Clari export jobs and limits.

use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

use super::render::{Summary, plural};
use super::{Tool, ToolError, limit};
use crate::clari::JobId;
use crate::clari::types::{Job, JobStatus};
use crate::clock::rfc3339;
use crate::exports::pipeline;
use crate::principal::AuthContext;
use crate::scope::Scope;
use crate::state::AppState;

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobRow {
    pub job_id: String,
    /// SCHEDULED, STARTED, DONE, FAILED, CANCELLED or ABORTED.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub ended: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub expires: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downloads: Option<i64>,
}

impl From<&Job> for JobRow {
    fn from(j: &Job) -> Self {
        Self {
            job_id: j.job_id.to_string(),
            status: j.status.as_str().to_owned(),
            title: j.title.clone(),
            module: j.module.clone(),
            started: j.start_time.map(|t| rfc3339(t / 1000)),
            ended: j.end_time.map(|t| rfc3339(t / 1000)),
            expires: j.expired_time.map(|t| rfc3339(t / 1000)),
            file_name: j.file_name.clone(),
            downloads: j.downloads,
        }
    }
}

// --- list_export_jobs -------------------------------------------------------------------------

pub struct ListExportJobs;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobsArgs {
    /// Only jobs with this status (SCHEDULED, STARTED, DONE, FAILED, CANCELLED, ABORTED).
    pub status: Option<String>,
    /// Most jobs in the answer, newest first (default 25, at most 200).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct JobsOut {
    /// Newest first.
    pub jobs: Vec<JobRow>,
    /// Jobs matching in all.
    pub total: usize,
    /// Jobs not yet finished.
    pub running: usize,
}

impl Summary for JobsOut {
    fn summary(&self, _tool: &str) -> String {
        format!(
            "{} export job{}, {} still running; showing {}.",
            self.total,
            plural(self.total, "", "s"),
            self.running,
            self.jobs.len()
        )
    }
}

impl Tool for ListExportJobs {
    const NAME: &'static str = "list_export_jobs";
    const TITLE: &'static str = "Export jobs";
    const DESCRIPTION: &'static str =
        "Clari export jobs started with this organisation's API key and their status.";
    const SCOPE: Scope = Scope::ExportsRead;
    type Args = JobsArgs;
    type Output = JobsOut;

    async fn run(state: &AppState, ctx: &AuthContext, a: JobsArgs) -> Result<JobsOut, ToolError> {
        let limit = limit(a.limit)?;
        let status = a.status.as_deref().map(JobStatus::parse);
        if let Some(JobStatus::Other(s)) = &status {
            return Err(ToolError::arg(
                "status",
                format!("'{s}' is not one of SCHEDULED, STARTED, DONE, FAILED, CANCELLED, ABORTED"),
            ));
        }
        let target = pipeline::target(state, &ctx.org_id).await?;
        let mut jobs = state.clari.list_jobs(&target).await?;
        drop(target);
        jobs.retain(|j| status.as_ref().is_none_or(|s| &j.status == s));
        jobs.sort_by_key(|j| std::cmp::Reverse(j.start_time));
        Ok(JobsOut {
            total: jobs.len(),
            running: jobs.iter().filter(|j| !j.status.is_terminal()).count(),
            jobs: jobs.iter().take(limit).map(JobRow::from).collect(),
        })
    }
}

// --- get_export_job ---------------------------------------------------------------------------

pub struct GetExportJob;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobArgs {
    /// A Clari export job id (24 hexadecimal characters).
    pub job_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct JobOut {
    pub job: JobRow,
}

impl Summary for JobOut {
    fn summary(&self, _tool: &str) -> String {
        format!("Export job {} is {}.", self.job.job_id, self.job.status)
    }
}

impl Tool for GetExportJob {
    const NAME: &'static str = "get_export_job";
    const TITLE: &'static str = "Export job";
    const DESCRIPTION: &'static str = "One Clari export job's status.";
    const SCOPE: Scope = Scope::ExportsRead;
    type Args = JobArgs;
    type Output = JobOut;

    async fn run(state: &AppState, ctx: &AuthContext, a: JobArgs) -> Result<JobOut, ToolError> {
        let target = pipeline::target(state, &ctx.org_id).await?;
        let job = state
            .clari
            .job(&target, &JobId::parse(a.job_id.trim())?)
            .await?;
        Ok(JobOut {
            job: JobRow::from(&job),
        })
    }
}

// --- get_admin_limits -------------------------------------------------------------------------

pub struct GetAdminLimits;

#[derive(Debug, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LimitsOut {
    /// Export jobs that may run at once.
    pub concurrent_limit: i64,
    pub available_concurrent: i64,
    /// Exports allowed in a rolling 30 days.
    pub monthly_quota: i64,
    pub available_monthly_quota: i64,
    pub running_job_ids: Vec<String>,
}

impl Summary for LimitsOut {
    fn summary(&self, _tool: &str) -> String {
        format!(
            "{} of {} concurrent export slots free; {} of {} monthly exports left (rolling 30 days).",
            self.available_concurrent.max(0),
            self.concurrent_limit,
            self.available_monthly_quota.max(0),
            self.monthly_quota
        )
    }
}

impl Tool for GetAdminLimits {
    const NAME: &'static str = "get_admin_limits";
    const TITLE: &'static str = "Export limits";
    const DESCRIPTION: &'static str = "Clari export concurrency and monthly quota: how many export jobs may run and remain this month.";
    const SCOPE: Scope = Scope::ExportsRead;
    type Args = NoArgs;
    type Output = LimitsOut;

    async fn run(state: &AppState, ctx: &AuthContext, _: NoArgs) -> Result<LimitsOut, ToolError> {
        let target = pipeline::target(state, &ctx.org_id).await?;
        let l = state.clari.admin_limits(&target).await?.jobs;
        Ok(LimitsOut {
            concurrent_limit: l.concurrent_limit,
            available_concurrent: l.available_concurrent_limit,
            monthly_quota: l.monthly_quota,
            available_monthly_quota: l.available_monthly_quota,
            running_job_ids: l.running_job_ids,
        })
    }
}
