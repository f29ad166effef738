//! Time as an injected dependency: protocol code receives `now` as a parameter, handlers get it from
//! the [`Clock`] in `AppState`, and tests move time without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Seconds since the Unix epoch, UTC. Every timestamp the store keeps uses this unit.
pub type UnixTime = i64;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixTime;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }
}

/// A clock that only moves when told to; shared by clones.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: UnixTime) -> Self {
        Self(Arc::new(AtomicI64::new(start)))
    }

    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }

    pub fn set(&self, now: UnixTime) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// The current reading (same as `Clock::now`, without importing the trait).
    pub fn now_for_tests(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}

/// The IANA time zone named `name` (from the database built into the binary), or why not.
pub fn time_zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(name).map_err(|_| {
        format!("'{name}' is not an IANA time zone name such as Europe/Berlin or America/New_York")
    })
}

/// Formats a Unix time as RFC 3339 (UTC), for people and JSON.
pub fn rfc3339(t: UnixTime) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Why text is not a usable duration (each quotes the text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("'{text}' is not a duration such as 90d, 12h, 15m or 30s ({reason})")]
    Syntax { text: String, reason: String },
    #[error("'{0}' must be greater than zero")]
    Zero(String),
    #[error("'{0}' is longer than 100 years")]
    TooLong(String),
    #[error("'{0}' is not a whole number of seconds")]
    Fraction(String),
}

/// Parses a human duration (`90d`, `12h`, `30m`, `2w`, `1h 30m`; humantime syntax) into whole
/// seconds. Zero, sub-second remainders and more than 100 years are refused.
pub fn parse_duration(text: &str) -> Result<i64, DurationError> {
    let d = parse_std_duration(text)?;
    if d.subsec_nanos() != 0 {
        return Err(DurationError::Fraction(text.trim().to_owned()));
    }
    Ok(d.as_secs() as i64)
}

/// Parses a human duration (`250ms`, `2s`, `15m`) into a [`std::time::Duration`]; zero and more
/// than 100 years are refused.
pub fn parse_std_duration(text: &str) -> Result<std::time::Duration, DurationError> {
    let text = text.trim();
    let d = humantime::parse_duration(text).map_err(|e| DurationError::Syntax {
        text: text.to_owned(),
        reason: e.to_string(),
    })?;
    if d.is_zero() {
        return Err(DurationError::Zero(text.to_owned()));
    }
    if d.as_secs() > 100 * 365 * 86_400 {
        return Err(DurationError::TooLong(text.to_owned()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90d"), Ok(90 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        assert!(parse_duration("90").is_err());
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("d").is_err());
        assert_eq!(parse_duration("1h 30m"), Ok(5_400));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("1500ms").is_err());
        assert_eq!(
            parse_std_duration("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert!(parse_duration("99999999999d").is_err());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        let c2 = c.clone();
        c.advance(61);
        assert_eq!(c2.now(), 1_061);
    }
}
