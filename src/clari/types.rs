//! Serde DTOs for the Clari Revenue API (`/v4`). Tolerant where the real API is inconsistent: job
//! objects wrapped in `{"job": …}` or not, `jobId` or `id`, `eventTimestamp` as a string or as
//! `{epochSecond, nano}`, `items` or `activities`, activity `date` as a number or a string.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub use super::ids::{ForecastId, JobId, OpportunityId};

/// A fiscal quarter id of the form `YYYY_QN`, e.g. `2026_Q3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TimePeriod(String);

impl TimePeriod {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let b = t.as_bytes();
        let ok = b.len() == 7
            && b[..4].iter().all(u8::is_ascii_digit)
            && &b[4..6] == b"_Q"
            && (b'1'..=b'4').contains(&b[6]);
        if ok {
            Ok(Self(t.to_owned()))
        } else {
            Err(format!(
                "time period '{t}' is not a fiscal quarter of the form YYYY_QN with N from 1 to 4 (e.g. 2026_Q3)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn year(&self) -> i32 {
        self.0[..4].parse().unwrap_or(0)
    }

    pub fn quarter(&self) -> u8 {
        self.0.as_bytes()[6] - b'0'
    }
}

impl fmt::Display for TimePeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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

// --- forecast results -------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ForecastResults {
    #[serde(default)]
    pub entries: Vec<ForecastEntry>,
    #[serde(default)]
    pub users: Vec<ForecastUser>,
    #[serde(default)]
    pub fields: Vec<ForecastField>,
    #[serde(default)]
    pub time_periods: Vec<TimePeriodInfo>,
    #[serde(default)]
    pub time_frames: Vec<TimeFrame>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Currency {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub symbol: Option<String>,
}

/// One value of the forecast grid. Which value keys are present depends on `typesToExport`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForecastEntry {
    #[serde(deserialize_with = "lenient_string_required")]
    pub user_id: String,
    pub field_id: String,
    #[serde(default)]
    pub time_period_id: Option<String>,
    #[serde(default)]
    pub time_frame_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjustment_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm_total_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm_closed_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_updated: Option<bool>,
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_on: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForecastUser {
    #[serde(deserialize_with = "lenient_string_required")]
    pub user_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub crm_id: Option<String>,
    #[serde(default)]
    pub hierarchy_id: Option<String>,
    #[serde(default)]
    pub hierarchy_name: Option<String>,
    #[serde(default)]
    pub parent_hierarchy_id: Option<String>,
    #[serde(default)]
    pub parent_hierarchy_name: Option<String>,
    #[serde(default)]
    pub scope_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForecastField {
    pub field_id: String,
    #[serde(default)]
    pub field_name: Option<String>,
    #[serde(default)]
    pub field_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimePeriodInfo {
    pub time_period_id: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub year: Option<i64>,
    #[serde(default, rename = "type")]
    pub period_type: Option<String>,
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub end_date: Option<String>,
    #[serde(default)]
    pub crm_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeFrame {
    pub time_frame_id: String,
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub end_date: Option<String>,
}

// --- audit ------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SessionType {
    Web,
    Ios,
    Android,
}

/// Filters of `GET /audit/events` (and the body of `POST /export/audit/events`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonating_actor_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_type: Option<SessionType>,
    /// RFC 3339 date-time or `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
    #[serde(default, alias = "activities")]
    pub items: Vec<AuditEvent>,
    #[serde(default)]
    pub actors: Vec<AuditActor>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    #[serde(default, rename = "correlationID", alias = "correlationId")]
    pub correlation_id: Option<String>,
    #[serde(deserialize_with = "lenient_string_required")]
    pub actor_id: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub impersonating_actor_id: Option<String>,
    pub actor_type: String,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub session_type: Option<String>,
    pub event: String,
    #[serde(default)]
    pub event_parameters: Value,
    pub event_timestamp: EventTimestamp,
}

/// RFC 3339 string (spec) or a Java `Instant` object `{epochSecond, nano}` (seen downstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EventTimestamp(
    /// Unix time in milliseconds.
    pub i64,
);

impl EventTimestamp {
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

impl<'de> Deserialize<'de> for EventTimestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Millis(i64),
            Instant {
                #[serde(rename = "epochSecond")]
                epoch_second: i64,
                #[serde(default)]
                nano: i64,
            },
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) => {
                let t =
                    time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                        .map_err(|e| {
                            serde::de::Error::custom(format!("eventTimestamp '{s}': {e}"))
                        })?;
                Ok(Self((t.unix_timestamp_nanos() / 1_000_000) as i64))
            }
            Raw::Millis(ms) => Ok(Self(ms)),
            Raw::Instant { epoch_second, nano } => Ok(Self(epoch_second * 1000 + nano / 1_000_000)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditActor {
    #[serde(default)]
    pub actor_type: Option<String>,
    #[serde(deserialize_with = "lenient_string_required")]
    pub actor_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

// --- opportunity ------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Opportunity {
    pub id: String,
    #[serde(default)]
    pub crm_score: Option<CrmScore>,
    #[serde(default)]
    pub fields: Vec<OpportunityField>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrmScore {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpportunityField {
    pub id: String,
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub trend: Option<String>,
    #[serde(default)]
    pub value: Value,
    #[serde(default)]
    pub original_value: Value,
    #[serde(default)]
    pub trend_history: Vec<TrendPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrendPoint {
    #[serde(default)]
    pub old_value: Value,
    #[serde(default)]
    pub new_value: Value,
    /// Epoch milliseconds.
    pub date: i64,
}

// --- activity ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActivityType {
    Meeting,
    EmailSent,
    EmailReceived,
    AttachmentSent,
    AttachmentReceived,
}

impl ActivityType {
    pub const ALL: [ActivityType; 5] = [
        ActivityType::Meeting,
        ActivityType::EmailSent,
        ActivityType::EmailReceived,
        ActivityType::AttachmentSent,
        ActivityType::AttachmentReceived,
    ];
}

/// Body of `POST /export/activity`. Only the date and zone of the bounds are used by Clari.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityExportRequest {
    pub activity_types: Vec<ActivityType>,
    pub start_date: String,
    pub end_date: String,
    pub export_format: ExportFormat,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ActivityResults {
    #[serde(default)]
    pub activities: Vec<Activity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub activity_id: String,
    pub activity_type: String,
    #[serde(default)]
    pub subject: Option<String>,
    /// Epoch milliseconds (the API sometimes sends it as a string).
    #[serde(deserialize_with = "lenient_millis")]
    pub date: i64,
    #[serde(default)]
    pub activity_owner_id: Option<String>,
    #[serde(default)]
    pub activity_organiser_id: Option<String>,
    #[serde(default)]
    pub accounts: Vec<ActivityAccount>,
    #[serde(default)]
    pub opportunities: Vec<ActivityOpportunity>,
    #[serde(default)]
    pub participants: Vec<Participant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityAccount {
    pub account_id: String,
    #[serde(default)]
    pub account_name: Option<String>,
    #[serde(default)]
    pub account_owner_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityOpportunity {
    pub opportunity_id: String,
    #[serde(default)]
    pub opportunity_name: Option<String>,
    #[serde(default)]
    pub opportunity_owner_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub sfdc_user_id: Option<String>,
    #[serde(default)]
    pub is_internal: Option<bool>,
}

// --- lenient scalars --------------------------------------------------------------------------

/// Accepts a string or a number (ids are strings in some responses and integers in others).
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a string or number, got {other}"
            )));
        }
    })
}

/// An id that must be there, as a string or a number.
pub(super) fn lenient_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    lenient_string_required(d)
}

fn lenient_string_required<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    lenient_string(d)?.ok_or_else(|| serde::de::Error::custom("missing id"))
}

fn lenient_millis<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| serde::de::Error::custom("date is not an integer")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("date '{s}' is not epoch milliseconds"))),
        other => Err(serde::de::Error::custom(format!("unexpected date {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_period_requires_yyyy_qn() {
        assert_eq!(TimePeriod::parse("2026_Q3").unwrap().quarter(), 3);
        for bad in [
            "2024-Q5", "2024_Q5", "2024_Q0", "24_Q1", "2024Q1", "", "2024_q1",
        ] {
            let err = TimePeriod::parse(bad).unwrap_err();
            assert!(err.contains("YYYY_QN"), "{bad}: {err}");
        }
    }

    #[test]
    fn job_is_read_wrapped_or_bare_with_jobid_or_id() {
        let wrapped: JobEnvelope =
            serde_json::from_str(r#"{"job":{"jobId":"a1","status":"STARTED","userId":7}}"#)
                .unwrap();
        let job = wrapped.into_job();
        assert_eq!(
            (job.job_id.as_str(), job.user_id.as_deref()),
            ("a1", Some("7"))
        );
        let bare: JobEnvelope = serde_json::from_str(r#"{"id":"b2","status":"DONE"}"#).unwrap();
        assert_eq!(bare.into_job().status, JobStatus::Done);
        let odd: JobEnvelope = serde_json::from_str(r#"{"jobId":"c","status":"PAUSED"}"#).unwrap();
        assert!(!odd.into_job().status.is_terminal());
    }

    #[test]
    fn event_timestamp_accepts_string_and_instant_object() {
        let a: EventTimestamp = serde_json::from_str(r#""2022-08-03T16:22:18Z""#).unwrap();
        let b: EventTimestamp =
            serde_json::from_str(r#"{"epochSecond":1659543738,"nano":500000000}"#).unwrap();
        assert_eq!(a.0, 1_659_543_738_000);
        assert_eq!(b.0, 1_659_543_738_500);
    }

    #[test]
    fn audit_page_accepts_activities_alias_and_numeric_actor_ids() {
        let page: AuditPage = serde_json::from_str(
            r#"{"activities":[{"correlationID":"c","actorId":42,"actorType":"USER","event":"api.accessed","eventTimestamp":"2022-08-03T16:22:18Z"}]}"#,
        )
        .unwrap();
        assert_eq!(page.items[0].actor_id, "42");
        assert_eq!(page.items[0].correlation_id.as_deref(), Some("c"));
    }

    #[test]
    fn limits_tolerate_missing_running_job_ids() {
        let l: Limits = serde_json::from_str(
            r#"{"jobs":{"concurrentLimit":3,"availableConcurrentLimit":3,"monthlyQuota":1000,"availableMonthlyQuota":999,"submittedJobIds":["x"]}}"#,
        )
        .unwrap();
        assert!(l.jobs.running_job_ids.is_empty());
    }

    #[test]
    fn activity_date_may_be_a_string() {
        let a: Activity = serde_json::from_str(
            r#"{"activityId":"x","activityType":"MEETING","date":"1605312000000"}"#,
        )
        .unwrap();
        assert_eq!(a.date, 1_605_312_000_000);
    }
}
