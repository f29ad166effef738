//! Audit events (35 days generated, Clari keeps 30) and the organisation's sandbox API keys.

use time::{Duration as Days, OffsetDateTime, Weekday};

use super::calendar::{Period, at, ms};
use super::{AuditRec, FIELDS, ForecastTab, Level, Rng, SUBMITTED_FIELDS, SandboxKey, SandboxUser};

/// Forecast submissions (mirroring the grids' history) and everyday events, oldest first.
pub(super) fn events(
    rng: &mut Rng,
    users: &[SandboxUser],
    tab0: &ForecastTab,
    periods: &[Period],
    now: OffsetDateTime,
) -> Vec<AuditRec> {
    let today = now.date();
    let now_ms = ms(now);
    let mut audit = Vec::new();
    let cur = periods.len() - 1;
    // Forecast submissions mirror the submission history of the current and previous quarter.
    for p in [cur - 1, cur] {
        let grid = &tab0.grids[p];
        for (u, per_field) in grid.updates.iter().enumerate() {
            for &f in &SUBMITTED_FIELDS {
                for (w, upd) in per_field[f]
                    .iter()
                    .enumerate()
                    .take(periods[p].weeks_elapsed)
                {
                    if !upd.is_updated {
                        continue;
                    }
                    let (Some(by), Some(on)) = (upd.by, upd.on_ms) else {
                        continue;
                    };
                    if by != u || on < now_ms - 35 * 86_400_000 || on > now_ms {
                        continue;
                    }
                    audit.push(AuditRec {
                        correlation_id: rng.uuid(),
                        actor: u,
                        actor_type: "USER",
                        session_id: rng.uuid(),
                        ip: format!("10.{}.{}.{}", rng.range(0, 255), rng.range(0, 255), rng.range(1, 255)),
                        session_type: "WEB",
                        event: "forecast.submitted",
                        params: serde_json::json!({
                            "forecastId": tab0.id, "fieldId": FIELDS[f].0, "timePeriodId": periods[p].id,
                            "timeFrameId": Period::time_frame_id(w), "value": grid.values[u][f][w],
                        }),
                        at_ms: on,
                    });
                }
            }
        }
    }
    let kinds: &[(&'static str, &'static str, f64)] = &[
        ("user.login", "USER", 0.8),
        ("forecast.viewed", "USER", 0.6),
        ("user.logout", "USER", 0.3),
        ("api.accessed", "USER", 0.15),
        ("export.created", "JOB", 0.05),
        ("settings.updated", "USER", 0.02),
    ];
    for day in 0..35 {
        let date = today - Days::days(day);
        if matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) {
            continue;
        }
        for u in 0..users.len() {
            for (event, actor_type, p) in kinds {
                if !rng.chance(*p) {
                    continue;
                }
                let t = at(date, rng.range(7, 19), rng.range(0, 60));
                if ms(t) > now_ms {
                    continue;
                }
                let session_type = *rng.pick(&["WEB", "WEB", "WEB", "IOS", "ANDROID"]);
                let params = match *event {
                    "forecast.viewed" => serde_json::json!({"forecastId": "forecast"}),
                    "export.created" => serde_json::json!({"module": "FORECAST"}),
                    "settings.updated" => serde_json::json!({"setting": "notifications"}),
                    _ => serde_json::json!({}),
                };
                audit.push(AuditRec {
                    correlation_id: rng.uuid(),
                    actor: u,
                    actor_type,
                    session_id: rng.uuid(),
                    ip: format!(
                        "10.{}.{}.{}",
                        rng.range(0, 255),
                        rng.range(0, 255),
                        rng.range(1, 255)
                    ),
                    session_type,
                    event,
                    params,
                    at_ms: ms(t),
                });
            }
        }
    }
    audit.sort_by(|a, b| {
        a.at_ms
            .cmp(&b.at_ms)
            .then_with(|| a.correlation_id.cmp(&b.correlation_id))
    });
    audit
}

/// The admin key (the CEO's) and the manager key (the first manager's).
pub(super) fn keys(seed: u64, users: &[SandboxUser]) -> Vec<SandboxKey> {
    let ceo = 0;
    let first_manager = users
        .iter()
        .position(|u| u.level == Level::Manager)
        .unwrap();
    // Keys depend only on the seed, so `sandbox --describe` prints the same keys every time.
    let mut key_rng = Rng::new(seed ^ 0x005E_ED0F_4B1D);
    vec![
        SandboxKey {
            key: format!("sbx_{}", key_rng.hex(32)),
            user: ceo,
            label: "admin",
        },
        SandboxKey {
            key: format!("sbx_{}", key_rng.hex(32)),
            user: first_manager,
            label: "manager",
        },
    ]
}
