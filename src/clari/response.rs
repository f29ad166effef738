//! What Clari's answers mean, without touching the network: a success body decoded into its
//! type, an error status and envelope mapped to [`ClariError`] (naming the forecast or job the
//! call was about), `Retry-After` read, and a transport failure worded without the URL's query.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;

use super::error::{ClariError, clean, parse_envelope};

/// What a failing call was about, so errors can name the forecast or job.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub(super) forecast_id: Option<&'a str>,
    pub(super) job_id: Option<&'a str>,
}

pub(super) fn redact_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClariError> {
    serde_json::from_slice(bytes).map_err(|e| {
        tracing::warn!(error = %e, "unreadable Clari response");
        ClariError::UnexpectedResponse(format!("the JSON did not match the documented shape ({e})"))
    })
}

/// The length of `value` as compact JSON, counted without building it: what a result weighs,
/// whatever whitespace or padding the answer carried.
pub(super) fn compact_len<T: serde::Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing into a counter cannot fail, and the types serialize.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

pub(super) fn transport_error(e: &reqwest::Error) -> ClariError {
    if e.is_timeout() {
        ClariError::Timeout
    } else {
        // reqwest errors carry the URL, never headers; keep the message short.
        let mut msg = e.to_string();
        if let Some(u) = e.url() {
            msg = msg.replace(u.as_str(), redact_query(u.as_str()));
        }
        ClariError::Network(clean(&msg))
    }
}

/// `Retry-After` in seconds or as an HTTP date.
pub(super) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(3_600)));
    }
    let at = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (at - time::OffsetDateTime::now_utc())
        .whole_seconds()
        .max(0) as u64;
    Some(Duration::from_secs(secs.min(3_600)))
}

pub(super) fn map_error(
    status: StatusCode,
    body: &[u8],
    ctx: Ctx<'_>,
    retry_after: Option<Duration>,
) -> ClariError {
    let env = parse_envelope(body);
    let code = env.code.as_deref().unwrap_or("");
    let message = clean(&env.message);
    let message_or_status = || {
        if message.is_empty() {
            format!("HTTP {}", status.as_u16())
        } else {
            message.clone()
        }
    };
    let job_id = || ctx.job_id.unwrap_or_default().to_owned();
    match (status.as_u16(), code) {
        (300..=399, _) => ClariError::UnexpectedResponse(format!(
            "Clari answered with a redirect (HTTP {}), which is not followed so that the API key never goes elsewhere",
            status.as_u16()
        )),
        (_, "no_optin") => ClariError::NoOptIn {
            message: message_or_status(),
        },
        (401, _) => ClariError::InvalidApiKey,
        (_, "export_monthly_quota_reached") => ClariError::QuotaReached {
            message: message_or_status(),
            limits: None,
        },
        (_, "no_such_forecast_config") | (404, "") if ctx.forecast_id.is_some() => {
            ClariError::UnknownForecast {
                forecast_id: ctx.forecast_id.unwrap_or_default().to_owned(),
            }
        }
        (_, "type_not_supported") => ClariError::TypeNotSupported {
            message: message_or_status(),
        },
        (_, "invalid_jobId") => ClariError::JobNotFinished { job_id: job_id() },
        (_, "export_failed_to_cancel") => ClariError::JobAlreadyFinished { job_id: job_id() },
        (400 | 403 | 404, "SWW" | "") if ctx.job_id.is_some() => {
            ClariError::JobNotFound { job_id: job_id() }
        }
        (403, _) => ClariError::InvalidApiKey,
        (429, _) => ClariError::RateLimited { retry_after },
        (500..=599, _) => ClariError::Unavailable {
            status: status.as_u16(),
        },
        _ => ClariError::BadRequest {
            message: message_or_status(),
        },
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn a_result_weighs_its_content_not_the_whitespace_around_it() {
        let padded = format!(
            "{{\"activities\": [{{\"activityId\": \"a1\", \"activityType\": \"Call\", \"date\": 1}}]}}{}",
            " ".repeat(100_000)
        );
        let results: crate::clari::types::ActivityResults = decode(padded.as_bytes()).unwrap();
        let weight = compact_len(&results);
        assert_eq!(
            weight,
            serde_json::to_vec(&results).unwrap().len(),
            "what the content takes as compact JSON"
        );
        assert!(weight < 1_000, "{weight}");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn errors_map_to_words() {
        let f = Ctx {
            forecast_id: Some("deal_owner"),
            job_id: None,
        };
        let j = Ctx {
            forecast_id: None,
            job_id: Some("abc"),
        };
        let none = Ctx::default();
        let m = |s: u16, body: &str, ctx| {
            map_error(StatusCode::from_u16(s).unwrap(), body.as_bytes(), ctx, None)
        };
        assert_eq!(
            m(
                401,
                r#"{"message":"Invalid authentication credentials"}"#,
                none
            ),
            ClariError::InvalidApiKey
        );
        assert!(matches!(
            m(
                401,
                r#"{"code":"no_optin","namespace":"fcw","message":"No optins for scope 1::MGR"}"#,
                f
            ),
            ClariError::NoOptIn { .. }
        ));
        assert_eq!(
            m(
                400,
                r#"{"code":"no_such_forecast_config","message":"x"}"#,
                f
            ),
            ClariError::UnknownForecast {
                forecast_id: "deal_owner".into()
            }
        );
        assert_eq!(
            m(404, "", f),
            ClariError::UnknownForecast {
                forecast_id: "deal_owner".into()
            }
        );
        assert!(matches!(
            m(
                400,
                r#"{"code":"export_monthly_quota_reached","message":"limit"}"#,
                f
            ),
            ClariError::QuotaReached { .. }
        ));
        assert_eq!(
            m(400, r#"{"code":"invalid_jobId"}"#, j),
            ClariError::JobNotFinished {
                job_id: "abc".into()
            }
        );
        assert_eq!(
            m(400, r#"{"code":"SWW","message":"Something went wrong"}"#, j),
            ClariError::JobNotFound {
                job_id: "abc".into()
            }
        );
        assert_eq!(
            m(503, "<html>", none),
            ClariError::Unavailable { status: 503 }
        );
        assert!(
            matches!(m(400, r#"[{"statusCode":400,"reaspnPhrase":"Bad Request","details":"oppId is required"}]"#, none), ClariError::BadRequest { message } if message == "oppId is required")
        );
    }
}
