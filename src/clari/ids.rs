//! Clari's identifiers, parsed once at the edge: a forecast tab, an export job, a Salesforce
//! opportunity. Each `parse` fails with [`ClariError::InvalidArgument`] naming the tool argument,
//! so a bad id never reaches a URL path or a query string.

use std::fmt;

use super::error::{ClariError, clean};

fn is_slug(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn invalid(argument: &'static str, reason: String) -> ClariError {
    ClariError::InvalidArgument { argument, reason }
}

macro_rules! clari_id {
    ($(#[$doc:meta])* $name:ident, $argument:literal, $valid:expr, $reason:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<Self, ClariError> {
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
                let text = super::types::lenient_id(d)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_or_name_the_argument() {
        assert!(OpportunityId::parse("0063x00000AbCdEAAA").is_ok());
        assert!(ForecastId::parse("net_arr").is_ok());
        assert!(JobId::parse("6073683781a6da229df71e00").is_ok());
        for (err, argument) in [
            (OpportunityId::parse("006A").unwrap_err(), "opportunity_ids"),
            (ForecastId::parse("../admin").unwrap_err(), "forecast_id"),
            (JobId::parse("a/b").unwrap_err(), "job_id"),
            (JobId::parse("").unwrap_err(), "job_id"),
        ] {
            assert!(
                matches!(&err, ClariError::InvalidArgument { argument: a, .. } if *a == argument),
                "{err:?}"
            );
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
