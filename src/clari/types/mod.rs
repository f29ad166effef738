//! Serde DTOs for the Clari Revenue API (`/v4`). Tolerant where the real API is inconsistent: job
//! objects wrapped in `{"job": …}` or not, `jobId` or `id`, `eventTimestamp` as a string or as
//! `{epochSecond, nano}`, `items` or `activities`, activity `date` as a number or a string.

mod activity;
mod audit;
mod export;
mod forecast;
mod opportunity;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub use super::ids::{ForecastId, JobId, OpportunityId, TimePeriod};
pub use activity::*;
pub use audit::*;
pub use export::*;
pub use forecast::*;
pub use opportunity::*;

// --- lenient scalars --------------------------------------------------------------------------

/// Accepts a string or a number (ids are strings in some responses and integers in others).
pub(super) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
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

pub(super) fn lenient_string_required<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    lenient_string(d)?.ok_or_else(|| serde::de::Error::custom("missing id"))
}

pub(super) fn lenient_millis<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
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
            let err = TimePeriod::parse(bad).unwrap_err().to_string();
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
