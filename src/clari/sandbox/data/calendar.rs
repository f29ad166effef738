//! The fiscal calendar: quarters from 1 February, weeks within them, and times of day.

use time::{Date, Duration as Days, Month, OffsetDateTime, Weekday};

/// A fiscal quarter. FY N runs from 1 February of year N: Q1 Feb–Apr, Q2 May–Jul, Q3 Aug–Oct,
/// Q4 Nov–Jan.
#[derive(Debug, Clone)]
pub struct Period {
    pub id: String,
    pub year: i32,
    pub quarter: u8,
    pub start: Date,
    pub end: Date,
    pub crm_id: String,
    /// Weekly time frames `(start, end)`; ids `tf_1`… repeat in every quarter.
    pub weeks: Vec<(Date, Date)>,
    /// How many weeks have data (all for past quarters, up to this week for the current one).
    pub weeks_elapsed: usize,
}

impl Period {
    pub fn of(year: i32, quarter: u8) -> Self {
        let start_month = 2 + 3 * (quarter as i32 - 1); // 2, 5, 8, 11
        let start =
            Date::from_calendar_date(year, Month::try_from(start_month as u8).unwrap(), 1).unwrap();
        let (ny, nm) = if start_month + 3 > 12 {
            (year + 1, start_month + 3 - 12)
        } else {
            (year, start_month + 3)
        };
        let end = Date::from_calendar_date(ny, Month::try_from(nm as u8).unwrap(), 1).unwrap()
            - Days::days(1);
        let mut weeks = Vec::new();
        let mut w = start;
        while w <= end {
            let we = (w + Days::days(6)).min(end);
            weeks.push((w, we));
            w += Days::days(7);
        }
        Self {
            id: format!("{year}_Q{quarter}"),
            year,
            quarter,
            start,
            end,
            crm_id: format!("0264x0000{year}{quarter}AAA"),
            weeks_elapsed: weeks.len(),
            weeks,
        }
    }

    pub fn containing(d: Date) -> Self {
        let m = d.month() as i32;
        let (year, q) = if m == 1 {
            (d.year() - 1, 4)
        } else {
            (d.year(), ((m - 2) / 3 + 1) as u8)
        };
        Self::of(year, q)
    }

    pub fn previous(&self) -> Self {
        if self.quarter == 1 {
            Self::of(self.year - 1, 4)
        } else {
            Self::of(self.year, self.quarter - 1)
        }
    }

    pub fn label(&self) -> String {
        format!("Q{} FY{}", self.quarter, self.year)
    }

    pub fn time_frame_id(week: usize) -> String {
        format!("tf_{}", week + 1)
    }
}

/// Four quarters: three complete ones and the current one (up to this week).
pub(super) fn quarters(today: Date) -> Vec<Period> {
    let mut current = Period::containing(today);
    current.weeks_elapsed =
        (((today - current.start).whole_days() / 7) as usize + 1).min(current.weeks.len());
    let mut periods = vec![current.clone()];
    for _ in 0..3 {
        let p = periods.last().unwrap().previous();
        periods.push(p);
    }
    periods.reverse();
    periods
}

pub(super) fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The UTC day of an epoch-millisecond instant.
pub(super) fn date_of_ms(t: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(t.div_euclid(1000))
        .map(|t| t.date())
        .unwrap_or(Date::MIN)
}

pub(super) fn at(d: Date, hour: i64, minute: i64) -> OffsetDateTime {
    d.midnight().assume_utc() + Days::hours(hour) + Days::minutes(minute)
}

/// Monday of the week (or the week's first day when the week starts after Monday).
pub(super) fn submission_day(week: (Date, Date)) -> Date {
    let mut d = week.0;
    while d <= week.1 {
        if d.weekday() == Weekday::Monday {
            return d;
        }
        d += Days::days(1);
    }
    week.0
}
