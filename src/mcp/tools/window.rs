//! Date windows, one rule for every tool: a date (`YYYY-MM-DD`) is a whole day in the
//! organisation's time zone (UTC unless its admin set one), `since` from the start of its day and
//! `until` to the end of its day, inclusive; an RFC 3339 time is that instant. Every answer says
//! the window as resolved, so "0 submissions on Monday" can be checked against what was asked.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use rmcp::schemars::{self, JsonSchema};
use serde::Serialize;

use super::ToolError;
use crate::clock::rfc3339;
use crate::state::AppState;
use crate::store::OrgId;

/// The longest window a tool reads, in days.
const MAX_DAYS: i64 = 366;

/// A resolved window: `[start, end)` in Unix seconds, and the days it covers.
#[derive(Debug, Clone)]
pub struct Span {
    pub start: i64,
    /// The first second after the window.
    pub end: i64,
    pub tz: TimeZone,
    /// Both ends were dates, so the window is whole days.
    pub whole_days: bool,
}

/// The window as resolved, in every answer that has one.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Days {
    /// The first day covered, in `time_zone`.
    #[schemars(extend("format" = "date"))]
    pub first_day: String,
    /// The last day covered (inclusive), in `time_zone`.
    #[schemars(extend("format" = "date"))]
    pub last_day: String,
    /// The IANA time zone whose days these are (the organisation's; UTC by default).
    pub time_zone: String,
}

// What an answer with a window says of it, first in the answer (flattened into it). Not a doc
// comment: that would become the description of every answer it is flattened into.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Window {
    /// The window's first instant.
    #[schemars(extend("format" = "date-time"))]
    pub since: String,
    /// The first instant after the window.
    #[schemars(extend("format" = "date-time"))]
    pub until: String,
    /// The days the window covers, as resolved.
    pub window: Days,
    /// The window in words, for the summary ([`Span::describe`]).
    #[serde(skip)]
    #[schemars(skip)]
    pub text: String,
}

/// The name of a time zone, as shown and stored.
pub fn zone_name(tz: &TimeZone) -> String {
    tz.iana_name().unwrap_or("UTC").to_owned()
}

/// The organisation's time zone, checked on every call so that a change applies at once.
pub async fn org_zone(state: &AppState, org: &OrgId) -> Result<TimeZone, ToolError> {
    let stored = state
        .org_setting(org, crate::state::OrgSetting::TimeZone)
        .await
        .map_err(|e| {
        tracing::error!(org_id = %org, error = %e, "reading the organisation's time zone failed");
        ToolError::from(crate::clari::ClariError::StoreUnavailable)
    })?;
    Ok(stored
        .as_deref()
        .and_then(|n| TimeZone::get(n).ok())
        .unwrap_or(TimeZone::UTC))
}

fn day_of(second: i64, tz: &TimeZone) -> Date {
    Timestamp::from_second(second)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone())
        .date()
}

fn midnight(d: Date, tz: &TimeZone) -> i64 {
    d.to_zoned(tz.clone())
        .map(|z| z.timestamp().as_second())
        .unwrap_or(0)
}

enum Bound {
    Day(Date),
    Instant(i64),
}

fn bound(name: &str, text: &str) -> Result<Bound, ToolError> {
    let bad = || {
        ToolError::arg(
            name,
            format!("'{text}' is not a date (YYYY-MM-DD) or an RFC 3339 time"),
        )
    };
    if text.len() == 10 {
        return text.parse::<Date>().map(Bound::Day).map_err(|_| bad());
    }
    crate::clari::client::parse_date(text)
        .filter(|_| text.len() > 10)
        .map(Bound::Instant)
        .ok_or_else(bad)
}

impl Span {
    /// Resolves `since`/`until` as the caller gave them. Without `since`, the window starts
    /// `default_days` days before today; without `until`, it ends with today.
    pub fn resolve(
        since: Option<&str>,
        until: Option<&str>,
        now: i64,
        default_days: i64,
        tz: TimeZone,
    ) -> Result<Self, ToolError> {
        let today = day_of(now, &tz);
        let until = match until {
            Some(u) => bound("until", u)?,
            None => Bound::Day(today),
        };
        // Without `since`, the window reaches back from its last day.
        let last_day = match &until {
            Bound::Day(d) => *d,
            Bound::Instant(t) => day_of(*t, &tz),
        };
        let since = match since {
            Some(s) => bound("since", s)?,
            None => Bound::Day(
                last_day
                    .checked_sub(default_days.days())
                    .unwrap_or(last_day),
            ),
        };
        let whole_days = matches!((&since, &until), (Bound::Day(_), Bound::Day(_)));
        let start = match since {
            Bound::Day(d) => midnight(d, &tz),
            Bound::Instant(t) => t,
        };
        let end = match until {
            Bound::Day(d) => midnight(d.tomorrow().unwrap_or(d), &tz),
            Bound::Instant(t) => t + 1,
        };
        if start >= end {
            return Err(ToolError::arg("since", "must not be after until"));
        }
        if end - start > MAX_DAYS * 86_400 + 3_600 {
            return Err(ToolError::arg(
                "since",
                "the window may span at most a year",
            ));
        }
        Ok(Self {
            start,
            end,
            tz,
            whole_days,
        })
    }

    /// `(start, end)` in Unix seconds, end exclusive.
    pub fn bounds(&self) -> (i64, i64) {
        (self.start, self.end)
    }

    pub fn start_ms(&self) -> i64 {
        self.start * 1000
    }

    /// The first millisecond after the window.
    pub fn end_ms(&self) -> i64 {
        self.end * 1000
    }

    pub fn contains_ms(&self, ms: i64) -> bool {
        ms >= self.start_ms() && ms < self.end_ms()
    }

    /// The window's first instant, RFC 3339.
    pub fn since(&self) -> String {
        rfc3339(self.start)
    }

    /// The first instant after the window, RFC 3339.
    pub fn until(&self) -> String {
        rfc3339(self.end)
    }

    pub fn days(&self) -> Days {
        Days {
            first_day: day_of(self.start, &self.tz).to_string(),
            last_day: day_of(self.end - 1, &self.tz).to_string(),
            time_zone: zone_name(&self.tz),
        }
    }

    /// What an answer says of the window.
    pub fn window(&self) -> Window {
        Window {
            since: self.since(),
            until: self.until(),
            window: self.days(),
            text: self.describe(),
        }
    }

    /// "on 2026-11-30 (UTC)", "from 2026-11-28 to 2026-12-05 inclusive (UTC)", or the instants.
    pub fn describe(&self) -> String {
        let d = self.days();
        if !self.whole_days {
            format!("from {} to {} (exclusive)", self.since(), self.until())
        } else if d.first_day == d.last_day {
            format!("on {} ({})", d.first_day, d.time_zone)
        } else {
            format!(
                "from {} to {} inclusive ({})",
                d.first_day, d.last_day, d.time_zone
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_472_000; // 2026-12-05T12:00:00Z

    #[test]
    fn a_date_until_is_the_whole_day() {
        let s = Span::resolve(
            Some("2026-11-30"),
            Some("2026-11-30"),
            NOW,
            7,
            TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(s.since(), "2026-11-30T00:00:00Z");
        assert_eq!(s.until(), "2026-12-01T00:00:00Z");
        assert!(s.contains_ms(s.end_ms() - 1));
        assert!(!s.contains_ms(s.end_ms()));
        assert_eq!(s.describe(), "on 2026-11-30 (UTC)");
    }

    #[test]
    fn days_are_the_organisations() {
        let ny = crate::clock::time_zone("America/New_York").unwrap();
        let s = Span::resolve(Some("2026-11-30"), Some("2026-11-30"), NOW, 7, ny).unwrap();
        assert_eq!(s.since(), "2026-11-30T05:00:00Z");
        assert_eq!(s.until(), "2026-12-01T05:00:00Z");
        let d = s.days();
        assert_eq!(
            (d.first_day.as_str(), d.last_day.as_str()),
            ("2026-11-30", "2026-11-30")
        );
        assert_eq!(d.time_zone, "America/New_York");
    }

    #[test]
    fn defaults_are_whole_days_ending_today() {
        let s = Span::resolve(None, None, NOW, 7, TimeZone::UTC).unwrap();
        assert_eq!(s.since(), "2026-11-28T00:00:00Z");
        assert_eq!(s.until(), "2026-12-06T00:00:00Z");
        assert_eq!(
            s.describe(),
            "from 2026-11-28 to 2026-12-05 inclusive (UTC)"
        );
        let s = Span::resolve(None, Some("2026-10-01"), NOW, 7, TimeZone::UTC).unwrap();
        assert_eq!(s.since(), "2026-09-24T00:00:00Z");
    }

    #[test]
    fn instants_stay_instants_and_bad_input_names_the_argument() {
        let s = Span::resolve(
            Some("2026-11-30T09:00:00Z"),
            Some("2026-11-30T17:00:00Z"),
            NOW,
            7,
            TimeZone::UTC,
        )
        .unwrap();
        assert_eq!(s.since(), "2026-11-30T09:00:00Z");
        assert!(!s.whole_days);
        let e = Span::resolve(Some("30/11/2026"), None, NOW, 7, TimeZone::UTC).unwrap_err();
        assert!(e.message.contains("`since`"), "{}", e.message);
        let e = Span::resolve(
            Some("2026-12-02"),
            Some("2026-12-01"),
            NOW,
            7,
            TimeZone::UTC,
        )
        .unwrap_err();
        assert!(e.message.contains("`since`"), "{}", e.message);
        assert!(crate::clock::time_zone("Mars/Olympus").is_err());
    }
}
