//! Forecast grids: weekly Commit, Best Case, Pipeline and Closed Won per person, with who
//! submitted each call and when. Only reps carry their own numbers; managers are the sums.

use time::OffsetDateTime;

use super::calendar::{Period, at, ms, submission_day};
use super::hierarchy::depth;
use super::{ForecastTab, Grid, Level, Rng, SUBMITTED_FIELDS, SandboxUser, Update, round_to};

/// The two forecast tabs, each with a grid per quarter.
pub(super) fn tabs(
    rng: &mut Rng,
    users: &[SandboxUser],
    reps: &[usize],
    periods: &[Period],
    now: OffsetDateTime,
) -> Vec<ForecastTab> {
    let tabs = [
        ("forecast", "Net New Bookings", 1.0),
        ("renewals", "Renewals", 0.45),
    ];
    let mut forecasts = Vec::new();
    for (tab, tab_name, scale) in tabs {
        let mut grids = Vec::new();
        for period in periods {
            grids.push(grid(rng, users, reps, period, scale, now));
        }
        forecasts.push(ForecastTab {
            id: tab.into(),
            name: tab_name.into(),
            grids,
        });
    }
    forecasts
}

// Rows are summed from other rows of the same matrix, so indices are clearer than iterators.
#[allow(clippy::needless_range_loop)]
fn grid(
    rng: &mut Rng,
    users: &[SandboxUser],
    reps: &[usize],
    period: &Period,
    scale: f64,
    now: OffsetDateTime,
) -> Grid {
    let n = users.len();
    let weeks = period.weeks.len();
    let empty = || {
        [
            vec![0.0; weeks],
            vec![0.0; weeks],
            vec![0.0; weeks],
            vec![0.0; weeks],
        ]
    };
    let no_update = Update {
        is_updated: false,
        by: None,
        on_ms: None,
    };
    let mut values: Vec<[Vec<f64>; 4]> = (0..n).map(|_| empty()).collect();
    let mut updates: Vec<[Vec<Update>; 4]> = (0..n)
        .map(|_| {
            [
                vec![no_update; weeks],
                vec![no_update; weeks],
                vec![no_update; weeks],
                vec![no_update; weeks],
            ]
        })
        .collect();
    let mut quota = vec![0.0; n];
    let now_ms = ms(now);

    for &r in reps {
        let q = round_to(rng.range(150_000, 450_000) as f64 * scale, 5_000.0);
        quota[r] = q;
        let attain = 0.6 + rng.unit() * 0.7;
        let target = q * attain;
        let upside = 0.1 + rng.unit() * 0.25;
        let pipe = 1.5 + rng.unit() * 1.5;
        let mut last: Option<Update> = None;
        for w in 0..weeks {
            let t = (w + 1) as f64 / weeks as f64;
            let closed = round_to(target * t.powf(1.5), 100.0);
            let call = round_to(
                target * (0.78 + 0.22 * t) + (rng.unit() - 0.5) * 0.06 * q,
                100.0,
            )
            .max(closed);
            let changed = w == 0 || rng.chance(0.6);
            let (commit, best) = if changed || w == 0 {
                (call, round_to(call + q * upside * (1.0 - 0.5 * t), 100.0))
            } else {
                (
                    values[r][0][w - 1].max(closed),
                    values[r][1][w - 1].max(closed),
                )
            };
            values[r][0][w] = commit;
            values[r][1][w] = best.max(commit);
            values[r][2][w] = round_to(q * pipe * (1.0 - 0.6 * t), 100.0);
            values[r][3][w] = closed;
            let day = submission_day(period.weeks[w]);
            let when = ms(at(day, rng.range(8, 12), rng.range(0, 60)));
            let upd = if changed && when <= now_ms {
                let u = Update {
                    is_updated: true,
                    by: Some(r),
                    on_ms: Some(when),
                };
                last = Some(u);
                u
            } else {
                Update {
                    is_updated: false,
                    ..last.unwrap_or(no_update)
                }
            };
            updates[r][0][w] = upd;
            updates[r][1][w] = upd;
        }
    }
    // Rollups: every manager is the sum of the team, deepest first.
    let mut order: Vec<usize> = (0..n).filter(|&u| users[u].level != Level::Rep).collect();
    order.sort_by_key(|&u| std::cmp::Reverse(depth(users, u)));
    for &m in &order {
        for f in 0..4 {
            for w in 0..weeks {
                values[m][f][w] = users[m].children.iter().map(|&c| values[c][f][w]).sum();
            }
        }
        quota[m] = users[m].children.iter().map(|&c| quota[c]).sum();
        for f in SUBMITTED_FIELDS {
            for w in 0..weeks {
                let child_updates: Vec<Update> = users[m]
                    .children
                    .iter()
                    .map(|&c| updates[c][f][w])
                    .collect();
                let latest = child_updates.iter().filter_map(|u| u.on_ms).max();
                let any = child_updates.iter().any(|u| u.is_updated);
                updates[m][f][w] = match latest {
                    // The manager submits the rolled-up call a few hours after the team.
                    Some(t) if any && t + 3 * 3_600_000 <= now_ms => Update {
                        is_updated: true,
                        by: Some(m),
                        on_ms: Some(t + 3 * 3_600_000),
                    },
                    Some(t) => Update {
                        is_updated: false,
                        by: Some(m),
                        on_ms: Some(t),
                    },
                    None => no_update,
                };
            }
        }
    }
    let adjustment = (0..n)
        .map(|u| {
            if users[u].level == Level::Rep {
                0.0
            } else {
                round_to((rng.unit() - 0.5) * 0.04 * quota[u], 100.0)
            }
        })
        .collect();
    Grid {
        values,
        updates,
        quota,
        adjustment,
    }
}
