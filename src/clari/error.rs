//! Every failure of a Clari call becomes a `ClariError` whose message a RevOps user understands, with
//! `hint()` saying what to do. Raw response bodies never reach the message; they go to the log.

use std::time::Duration;

use serde_json::Value;

use super::ids::IdError;
pub use super::text::clean;
use super::types::Limits;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClariError {
    #[error("{argument}: {reason}")]
    InvalidArgument {
        argument: &'static str,
        reason: String,
    },
    #[error("Clari rejected the API key (it is wrong, revoked, or its user was deactivated)")]
    InvalidApiKey,
    #[error("no Clari API key is stored for this organisation")]
    MissingApiKey,
    #[error("the Clari user behind the API key has not opted in to this forecast scope: {message}")]
    NoOptIn { message: String },
    #[error("Clari has no forecast with id '{forecast_id}'")]
    UnknownForecast { forecast_id: String },
    #[error("Clari's export limit is reached: {}", quota_text(.limits.as_ref(), .message))]
    QuotaReached {
        message: String,
        limits: Option<Limits>,
    },
    #[error("Clari does not support that export type: {message}")]
    TypeNotSupported { message: String },
    #[error("Clari rejected the request: {message}")]
    BadRequest { message: String },
    #[error("Clari has no export job '{job_id}' for this API key")]
    JobNotFound { job_id: String },
    #[error("export job '{job_id}' has not finished yet")]
    JobNotFinished { job_id: String },
    #[error("export job '{job_id}' already finished, so it cannot be cancelled")]
    JobAlreadyFinished { job_id: String },
    #[error("export job '{job_id}' ended with status {status}")]
    JobEnded { job_id: String, status: String },
    #[error("export job '{job_id}' is still running (status {status})")]
    StillRunning { job_id: String, status: String },
    /// The organisation was disabled while its export waited: in Clari (`Some` job id) or in the
    /// organisation's queue, before Clari was asked (`None`).
    #[error("the {} was abandoned (the organisation was disabled)", .job_id.as_deref().map_or_else(|| "queued export".to_owned(), |j| format!("wait for export job '{j}'")))]
    Abandoned { job_id: Option<String> },
    #[error(
        "Clari returned data for time period '{returned}' instead of '{requested}' (it falls back to the current quarter when it does not know a period)"
    )]
    WrongTimePeriod { requested: String, returned: String },
    #[error("Clari is rate limiting requests{}", .retry_after.map(|d| format!("; retry after {} s", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("Clari is unavailable (HTTP {status})")]
    Unavailable { status: u16 },
    #[error("Clari did not answer in time")]
    Timeout,
    #[error("Clari could not be reached: {0}")]
    Network(String),
    #[error("Clari sent a response this client cannot read: {0}")]
    UnexpectedResponse(String),
    /// The answer (decompressed) outgrew `CLARI_MCP_CLARI_MAX_RESPONSE_MB`; reading stopped there.
    #[error(
        "Clari's answer is larger than {limit_mb} MB, the most this server reads of one answer"
    )]
    ResponseTooLarge { limit_mb: u64 },
    #[error(
        "this server already has {limit} different Clari exports in progress for the organisation"
    )]
    TooManyExports { limit: usize },
    #[error("Clari's export slots stayed busy for {minutes} minutes, so the export never started")]
    QueueTimeout { minutes: u64 },
    /// Not Clari's fault: this server's database could not be read.
    #[error("this server could not read the organisation's Clari connection from its database")]
    StoreUnavailable,
}

fn quota_text(limits: Option<&Limits>, message: &str) -> String {
    match limits {
        Some(l) => format!(
            "{} of {} concurrent export jobs are free and {} of the monthly quota of {} exports remain",
            l.jobs.available_concurrent_limit.max(0),
            l.jobs.concurrent_limit,
            l.jobs.available_monthly_quota.max(0),
            l.jobs.monthly_quota
        ),
        None => message.to_owned(),
    }
}

impl From<IdError> for ClariError {
    fn from(e: IdError) -> Self {
        Self::InvalidArgument {
            argument: e.argument,
            reason: e.reason,
        }
    }
}

impl ClariError {
    /// The kind of failure, a short stable name for the audit trail and metrics.
    pub fn class(&self) -> &'static str {
        match self {
            Self::InvalidArgument { .. } => "argument",
            Self::InvalidApiKey | Self::MissingApiKey => "clari_key",
            Self::NoOptIn { .. } => "clari_no_optin",
            Self::UnknownForecast { .. } | Self::JobNotFound { .. } => "not_found",
            Self::QuotaReached { .. } | Self::TooManyExports { .. } | Self::QueueTimeout { .. } => {
                "clari_quota"
            }
            Self::TypeNotSupported { .. } | Self::BadRequest { .. } => "clari_bad_request",
            Self::JobNotFinished { .. }
            | Self::StillRunning { .. }
            | Self::JobAlreadyFinished { .. }
            | Self::JobEnded { .. }
            | Self::Abandoned { .. } => "clari_job",
            Self::WrongTimePeriod { .. }
            | Self::UnexpectedResponse(_)
            | Self::ResponseTooLarge { .. } => "clari_data",
            Self::RateLimited { .. } => "clari_rate_limited",
            Self::Unavailable { .. } | Self::Timeout | Self::Network(_) => "clari_unavailable",
            Self::StoreUnavailable => "store_unavailable",
        }
    }

    /// One sentence of what to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::InvalidArgument { .. } => "Correct the argument and try again.",
            Self::InvalidApiKey | Self::MissingApiKey => {
                "An administrator must store a valid Clari API key for the organisation (clari-mcp org set-clari-key)."
            }
            Self::NoOptIn { .. } => {
                "Ask a Clari administrator to opt the API key's user in to this forecast, or choose a scope that user can see."
            }
            Self::UnknownForecast { .. } => {
                "Use the forecast tab id from the Clari URL (app.clari.com/forecast/<forecastId>), for example 'forecast'."
            }
            Self::QuotaReached { .. } => {
                "Wait for running exports to finish (or cancel one) and try again; the monthly quota frees up on a rolling 30-day window."
            }
            Self::TypeNotSupported { .. } => "Leave out crm_total and crm_closed.",
            Self::BadRequest { .. } => "Check the parameters and try again.",
            Self::JobNotFound { .. } => "List export jobs to find a valid job id.",
            Self::JobNotFinished { .. } | Self::StillRunning { .. } => {
                "Call again in a little while with the same job id."
            }
            Self::JobAlreadyFinished { .. } => "Nothing to cancel.",
            Self::JobEnded { .. } => "Start a new export.",
            Self::Abandoned { .. } => "An administrator must enable the organisation again.",
            Self::WrongTimePeriod { .. } => {
                "Use a time period Clari knows (list the time periods of the forecast)."
            }
            Self::RateLimited { .. } => "Wait a moment and try again.",
            Self::Unavailable { .. } | Self::Timeout | Self::Network(_) => {
                "Try again in a minute; if it persists, check Clari's status."
            }
            Self::UnexpectedResponse(_) => "Try again; if it persists, report it to the operator.",
            Self::ResponseTooLarge { .. } => {
                "Ask for a shorter window or one time period; an operator can raise CLARI_MCP_CLARI_MAX_RESPONSE_MB."
            }
            Self::TooManyExports { .. } => {
                "Call again with the same arguments in a minute, when the exports in progress have finished."
            }
            Self::StoreUnavailable => {
                "Try again in a moment; if it persists, tell the server's operator."
            }
            Self::QueueTimeout { .. } => {
                "Check list_export_jobs for long-running exports (cancel one in Clari if it is stuck) and call again."
            }
        }
    }

    /// Whether retrying the same call later could succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Unavailable { .. }
                | Self::Timeout
                | Self::Network(_)
                | Self::StillRunning { .. }
                | Self::JobNotFinished { .. }
                | Self::TooManyExports { .. }
                | Self::QueueTimeout { .. }
                | Self::StoreUnavailable
        )
    }
}

/// The common reading of Clari's error bodies: an optional machine code and a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    pub code: Option<String>,
    pub message: String,
}

/// Reads any of Clari's error envelopes: exports/fcw `{code, namespace, message}`, activity
/// `{code:"Bad request", namespace:"activity", …}`, audit `{errors:[{code, message}]}`,
/// opportunity `[{statusCode, reaspnPhrase|reasonPhrase, description, details}]`, ingest
/// `[{errorCode, errorSummary}]`, the ingest-job `{error}`, and the gateway's `{message}`.
pub fn parse_envelope(body: &[u8]) -> Envelope {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Envelope {
            code: None,
            message: String::new(),
        };
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    match &value {
        Value::Object(_) if value.get("errors").is_some_and(Value::is_array) => {
            let first = &value["errors"][0];
            Envelope {
                code: s(first, "code"),
                message: s(first, "message").unwrap_or_default(),
            }
        }
        Value::Object(_) => Envelope {
            code: s(&value, "code"),
            message: s(&value, "message")
                .or_else(|| s(&value, "error"))
                .unwrap_or_default(),
        },
        Value::Array(items) => {
            let first = items.first().cloned().unwrap_or(Value::Null);
            let code = s(&first, "errorCode")
                .or_else(|| s(&first, "reaspnPhrase"))
                .or_else(|| s(&first, "reasonPhrase"));
            let message = [
                s(&first, "details"),
                s(&first, "description"),
                s(&first, "errorSummary"),
            ]
            .into_iter()
            .flatten()
            .next()
            .unwrap_or_default();
            Envelope { code, message }
        }
        _ => Envelope::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_envelope_is_read() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            (
                r#"{"code":"no_such_forecast_config","namespace":"fcw","errorId":"x","message":"Forecast deal_owner does not exist","orgId":1}"#,
                Some("no_such_forecast_config"),
                "Forecast deal_owner does not exist",
            ),
            (
                r#"{"code":"Bad request","namespace":"activity","message":"startDate is required","userId":"1","orgId":"2"}"#,
                Some("Bad request"),
                "startDate is required",
            ),
            (
                r#"{"errors":[{"code":"bad_date","message":"dateFrom is invalid","status":"400"}]}"#,
                Some("bad_date"),
                "dateFrom is invalid",
            ),
            (
                r#"[{"statusCode":400,"reaspnPhrase":"Bad Request","description":"invalid query parameter","details":"oppId is required"}]"#,
                Some("Bad Request"),
                "oppId is required",
            ),
            (
                r#"[{"statusCode":400,"reasonPhrase":"Bad Request","description":"invalid query parameter"}]"#,
                Some("Bad Request"),
                "invalid query parameter",
            ),
            (
                r#"[{"errorCode":"INVALID_INPUT_FORMAT","errorSummary":"The number of records limit to 100"}]"#,
                Some("INVALID_INPUT_FORMAT"),
                "The number of records limit to 100",
            ),
            (
                r#"{"error":"API rate limit exceeded"}"#,
                None,
                "API rate limit exceeded",
            ),
            (
                r#"{"message":"Invalid authentication credentials","request_id":"r"}"#,
                None,
                "Invalid authentication credentials",
            ),
        ];
        for (body, code, message) in cases {
            let e = parse_envelope(body.as_bytes());
            assert_eq!(e.code.as_deref(), *code, "{body}");
            assert_eq!(e.message, *message, "{body}");
        }
        assert_eq!(parse_envelope(b"<html>502</html>"), Envelope::default());
    }

    #[test]
    fn clean_bounds_and_flattens() {
        assert_eq!(clean("a\nb\tc"), "a b c");
        assert!(clean(&"x".repeat(1000)).chars().count() <= 301);
    }

    #[test]
    fn quota_message_names_the_numbers() {
        let limits: Limits = serde_json::from_str(r#"{"jobs":{"concurrentLimit":3,"availableConcurrentLimit":0,"monthlyQuota":1000,"availableMonthlyQuota":12,"submittedJobIds":[]}}"#).unwrap();
        let e = ClariError::QuotaReached {
            message: "m".into(),
            limits: Some(limits),
        };
        assert!(e.to_string().contains("0 of 3 concurrent"));
        assert!(e.to_string().contains("12 of the monthly quota of 1000"));
    }
}
