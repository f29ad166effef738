//! Export requests, jobs and limits (`/export/*`, `/admin/limits`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::{JobId, TimePeriod, lenient_string};

/// Values of `typesToExport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportType {
    Forecast,
    Quota,
    ForecastUpdated,
    Adjustment,
    CrmTotal,
    CrmClosed,
}

impl ExportType {
    pub const ALL: [ExportType; 6] = [
        ExportType::Forecast,
        ExportType::Quota,
        ExportType::ForecastUpdated,
        ExportType::Adjustment,
        ExportType::CrmTotal,
        ExportType::CrmClosed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportType::Forecast => "forecast",
            ExportType::Quota => "quota",
            ExportType::ForecastUpdated => "forecast_updated",
            ExportType::Adjustment => "adjustment",
            ExportType::CrmTotal => "crm_total",
            ExportType::CrmClosed => "crm_closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExportFormat {
    #[default]
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Schedule {
    #[default]
    None,
    Once,
    Max,
}

/// Body of `POST /export/forecast/{forecastId}`; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ForecastExportRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_period: Option<TimePeriod>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub types_to_export: Vec<ExportType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_historical: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_format: Option<ExportFormat>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobCreated {
    pub job_id: JobId,
}

/// Export job status. Terminal: DONE, FAILED, CANCELLED, ABORTED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum JobStatus {
    Scheduled,
    Started,
    Done,
    Failed,
    Cancelled,
    Aborted,
    /// A status this client does not know; treated as still running.
    Other(String),
}

impl JobStatus {
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_uppercase().as_str() {
            "SCHEDULED" => Self::Scheduled,
            "STARTED" => Self::Started,
            "DONE" => Self::Done,
            "FAILED" => Self::Failed,
            "CANCELLED" => Self::Cancelled,
            "ABORTED" => Self::Aborted,
            _ => Self::Other(s.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Scheduled => "SCHEDULED",
            Self::Started => "STARTED",
            Self::Done => "DONE",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
            Self::Aborted => "ABORTED",
            Self::Other(s) => s,
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Done | Self::Failed | Self::Cancelled | Self::Aborted
        )
    }
}

impl<'de> Deserialize<'de> for JobStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(d)?))
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An export job (`GET /export/jobs/{id}`, also the items of `GET /export/jobs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    #[serde(alias = "id")]
    pub job_id: JobId,
    pub status: JobStatus,
    #[serde(default, deserialize_with = "lenient_string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub org_id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub module: Option<String>,
    #[serde(default)]
    pub start_time: Option<i64>,
    #[serde(default)]
    pub end_time: Option<i64>,
    #[serde(default)]
    pub expired_time: Option<i64>,
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub file_type: Option<String>,
    #[serde(default)]
    pub viewed: Option<bool>,
    #[serde(default)]
    pub cells_truncated: Option<bool>,
    #[serde(default)]
    pub rows_truncated: Option<bool>,
    #[serde(default)]
    pub downloads: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
}

/// `{"job": {...}}` as the real API answers, or the bare object as the spec shows.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum JobEnvelope {
    Wrapped { job: Job },
    Bare(Job),
}

impl JobEnvelope {
    pub fn into_job(self) -> Job {
        match self {
            Self::Wrapped { job } | Self::Bare(job) => job,
        }
    }
}

/// A bare array (spec) or an object with a `jobs` array.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum JobListEnvelope {
    Bare(Vec<JobEnvelope>),
    Wrapped { jobs: Vec<JobEnvelope> },
}

impl JobListEnvelope {
    pub fn into_jobs(self) -> Vec<Job> {
        match self {
            Self::Bare(v) | Self::Wrapped { jobs: v } => {
                v.into_iter().map(JobEnvelope::into_job).collect()
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelResponse {
    pub status: JobStatus,
    #[serde(default)]
    pub successful: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobLimits {
    pub concurrent_limit: i64,
    pub available_concurrent_limit: i64,
    pub monthly_quota: i64,
    pub available_monthly_quota: i64,
    /// Omitted by the API when nothing is running.
    #[serde(default)]
    pub running_job_ids: Vec<String>,
    #[serde(default)]
    pub submitted_job_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub jobs: JobLimits,
}
