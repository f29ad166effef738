//! Clari's identifiers, parsed once at the edge: a forecast tab, an export job, a Salesforce
//! opportunity, a fiscal quarter. Each `parse` fails with an [`IdError`] naming the tool argument
//! (it becomes `ClariError::InvalidArgument`), so a bad id never reaches a URL path or a query.

use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::text::clean;

/// Why text is not an id of the kind asked for; `argument` is the tool argument it came in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {argument}: {reason}")]
pub struct IdError {
    pub argument: &'static str,
    pub reason: String,
}

/// An id as Clari sends it: a string, or sometimes a number.
pub(super) fn lenient_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected an id (a string or number), got {other}"
        ))),
    }
}

fn is_slug(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn invalid(argument: &'static str, reason: String) -> IdError {
    IdError { argument, reason }
}

macro_rules! clari_id {
    ($(#[$doc:meta])* $name:ident, $argument:literal, $valid:expr, $reason:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<Self, IdError> {
                let valid: fn(&str) -> bool = $valid;
                if valid(text) {
                    Ok(Self(text.to_owned()))
                } else {
                    let reason: fn(&str) -> String = $reason;
                    Err(invalid($argument, reason(&clean(text))))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = lenient_id(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

clari_id!(
    /// A forecast tab, as in `app.clari.com/forecast/<forecastId>`.
    ForecastId,
    "forecast_id",
    |s| is_slug(s, 100),
    |s| format!(
        "'{s}' is not a forecast tab id (letters, digits, '_' or '-', as in app.clari.com/forecast/<forecastId>)"
    )
);

clari_id!(
    /// An export job, as `POST /export/...` returns it.
    JobId,
    "job_id",
    |s| is_slug(s, 64),
    |s| format!("'{s}' is not an export job id")
);

clari_id!(
    /// A Salesforce opportunity: 15 or 18 letters and digits.
    OpportunityId,
    "opportunity_ids",
    |s| (s.len() == 15 || s.len() == 18) && s.bytes().all(|b| b.is_ascii_alphanumeric()),
    |s| format!("'{s}' is not a Salesforce opportunity id (15 or 18 letters and digits)")
);

impl OpportunityId {
    /// The record this id names: its first 15 characters, which a Salesforce 18-character id
    /// only extends with a case checksum. `006…AbC` and `006…AbCEAA` are one opportunity.
    pub fn record(&self) -> &str {
        &self.0[..15]
    }
}

/// At most this many forecast tabs are kept warm per organisation.
pub const MAX_PREWARM_FORECASTS: usize = 10;

impl ForecastId {
    /// A list of forecast tabs separated by commas (`forecast,renewals`), without repeats; empty
    /// text is the empty list.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, IdError> {
        let mut out: Vec<Self> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let id = Self::parse(part)?;
            if !out.contains(&id) {
                out.push(id);
            }
        }
        if out.len() > MAX_PREWARM_FORECASTS {
            return Err(invalid(
                "forecast_id",
                format!(
                    "at most {MAX_PREWARM_FORECASTS} forecast tabs, not {}",
                    out.len()
                ),
            ));
        }
        Ok(out)
    }
}

/// A fiscal quarter of the form `YYYY_QN`, e.g. `2026_Q3`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct TimePeriod(String);

impl TimePeriod {
    /// Parses `YYYY_QN`; the error names the `time_period` argument.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let t = text.trim();
        let b = t.as_bytes();
        let ok = b.len() == 7
            && b[..4].iter().all(u8::is_ascii_digit)
            && &b[4..6] == b"_Q"
            && (b'1'..=b'4').contains(&b[6]);
        if ok {
            Ok(Self(t.to_owned()))
        } else {
            Err(invalid(
                "time_period",
                format!(
                    "'{}' is not a fiscal quarter of the form YYYY_QN with N from 1 to 4 (e.g. 2026_Q3)",
                    clean(t)
                ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_or_name_the_argument() {
        assert!(OpportunityId::parse("0063x00000AbCdEAAA").is_ok());
        assert_eq!(
            OpportunityId::parse("0063x00000AbCdEAAA").unwrap().record(),
            OpportunityId::parse("0063x00000AbCdE").unwrap().record()
        );
        assert!(ForecastId::parse("net_arr").is_ok());
        assert!(JobId::parse("6073683781a6da229df71e00").is_ok());
        for (err, argument) in [
            (OpportunityId::parse("006A").unwrap_err(), "opportunity_ids"),
            (ForecastId::parse("../admin").unwrap_err(), "forecast_id"),
            (JobId::parse("a/b").unwrap_err(), "job_id"),
            (JobId::parse("").unwrap_err(), "job_id"),
        ] {
            assert_eq!(err.argument, argument, "{err:?}");
        }
    }

    #[test]
    fn a_job_id_from_clari_is_checked_like_one_from_a_caller() {
        let ok: JobId = serde_json::from_str("\"abc-1\"").unwrap();
        assert_eq!(ok.as_str(), "abc-1");
        assert!(serde_json::from_str::<JobId>("\"../x\"").is_err());
        // Clari sometimes sends ids as numbers.
        let n: JobId = serde_json::from_str("42").unwrap();
        assert_eq!(n.as_str(), "42");
    }
}
