//! Pre-warmed forecasts: the current quarter's export of the forecast tabs an organisation names
//! (`clari-mcp org set --prewarm`, else `CLARI_MCP_PREWARM`) is refreshed in the background, on
//! start and ahead of its cache entry's expiry, so the first question of the day answers from
//! memory.
//!
//! The rules that keep it harmless:
//! - A per-organisation budget of Clari exports per UTC day (`CLARI_MCP_PREWARM_DAILY_BUDGET`),
//!   counted in the database and so shared by every replica. Refreshes are spread to fit it: a
//!   forecast is refreshed every `max(TTL - lead, 24 h × forecasts ÷ budget)`, and a pre-warmed
//!   entry is served until its next refresh lands (see [`Schedule`]).
//! - Never the last concurrency slot: a refresh starts only when, after it, one of Clari's slots
//!   stays free for interactive calls, and never ahead of an interactive export waiting in the
//!   queue. Otherwise it is skipped until the next pass; it never waits in the queue.
//! - One replica refreshes: the `export_jobs` row decides, as for interactive exports. Another
//!   replica that finds the refresh running (or just finished) follows its Clari job into its own
//!   cache instead of starting one; following costs Clari no export.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::pipeline::{self, ExportKind, ForecastExport};
use super::queue::{self, SpareStart, Started};
use crate::audit::{Actor, Event};
use crate::clari::{ClariError, ExportState, ForecastId};
use crate::state::AppState;
use crate::store::{OrgId, Organization};

/// How often each replica looks for exports to refresh (the first look is at start).
pub const TICK: Duration = Duration::from_secs(60);

/// When an organisation's pre-warmed exports are refreshed and how long each is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// How long before an entry's expiry its refresh starts (the export's running time).
    pub lead: i64,
    /// Seconds between two refreshes of one forecast.
    pub period: i64,
}

impl Schedule {
    /// For a cache TTL of `ttl` seconds and `forecasts` tabs sharing `budget` exports a day.
    pub fn new(ttl: i64, forecasts: usize, budget: u32) -> Self {
        let lead = (ttl / 5).clamp(30, 600);
        let spread = match budget {
            0 => i64::MAX / 4,
            b => (86_400 * forecasts.max(1) as i64).div_euclid(i64::from(b)),
        };
        Self {
            lead,
            period: (ttl - lead).max(spread).max(60),
        }
    }

    /// A result that finished less than this ago is another replica's recent refresh (or an
    /// interactive export): followed rather than exported again. Our own last refresh, `period`
    /// ago, is older.
    pub fn fresh_for(&self) -> i64 {
        self.period - self.lead
    }

    /// How long a refreshed export is served: until the next refresh has had `lead` to land.
    pub fn lifetime(&self) -> i64 {
        self.period + self.lead
    }
}

/// What one pass did: one count per forecast looked at.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PrewarmPass {
    /// Clari exports started (and finished) by this replica.
    pub started: u32,
    /// Exports of another replica or caller followed into this replica's cache.
    pub followed: u32,
    /// Entries not yet due.
    pub fresh: u32,
    /// Due, but not now: the budget is spent, no slot is spare, or the row is busy.
    pub skipped: u32,
    pub failed: u32,
}

impl PrewarmPass {
    fn count(&mut self, outcome: &str) {
        match outcome {
            "started" => self.started += 1,
            "followed" => self.followed += 1,
            "fresh" => self.fresh += 1,
            "failed" => self.failed += 1,
            _ => self.skipped += 1,
        }
    }
}

/// The UTC day the budget of `now` counts against.
pub fn budget_day(now: i64) -> i64 {
    now.div_euclid(86_400)
}

/// The forecast tabs the organisation keeps warm: its own list, else the server's.
async fn forecasts_of(state: &AppState, org: &Organization) -> Vec<ForecastId> {
    match state.store.org_prewarm(&org.id).await {
        Ok(None) => state.config.prewarm.clone(),
        Ok(Some(list)) => ForecastId::parse_list(&list).unwrap_or_else(|e| {
            tracing::warn!(error = %e, org_id = %org.id, "the stored pre-warm list is invalid; not pre-warming");
            Vec::new()
        }),
        Err(e) => {
            tracing::warn!(error = %e, org_id = %org.id, "reading the pre-warm list failed");
            Vec::new()
        }
    }
}

/// One pass over every enabled organisation: refreshes what is due, within the rules above, and
/// returns when those refreshes have finished.
pub async fn run_pass(state: &AppState) -> PrewarmPass {
    let mut pass = PrewarmPass::default();
    let budget = state.config.prewarm_daily_budget;
    if budget == 0 {
        return pass;
    }
    let orgs = match state.store.list_orgs().await {
        Ok(orgs) => orgs,
        Err(e) => {
            tracing::warn!(error = %e, "listing organisations to pre-warm failed");
            return pass;
        }
    };
    let ttl = state.config.export_cache_ttl.as_secs() as i64;
    let mut running = JoinSet::new();
    for org in orgs.into_iter().filter(|o| !o.disabled) {
        let forecasts = forecasts_of(state, &org).await;
        if forecasts.is_empty() {
            continue;
        }
        let schedule = Schedule::new(ttl, forecasts.len(), budget);
        let now = state.now();
        let spent = match state.store.prewarm_spent(&org.id, budget_day(now)).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, org_id = %org.id, "reading the pre-warm budget failed");
                continue;
            }
        };
        for forecast in forecasts {
            let kind = ForecastExport::new(forecast, None);
            let due = state
                .forecasts
                .ready_until(&kind.request_key(&org.id))
                .is_none_or(|until| now >= until - schedule.lead);
            let outcome = if !due {
                "fresh"
            } else if spent >= budget {
                "budget_spent"
            } else {
                running.spawn(refresh(state.clone(), org.id.clone(), kind, schedule));
                continue;
            };
            state.metrics.prewarm(outcome);
            pass.count(outcome);
        }
    }
    while let Some(done) = running.join_next().await {
        let outcome = done.unwrap_or("failed");
        state.metrics.prewarm(outcome);
        pass.count(outcome);
    }
    pass
}

/// Refreshes one forecast export, or follows the one already under way; the outcome's name.
async fn refresh(
    state: AppState,
    org: OrgId,
    kind: ForecastExport,
    schedule: Schedule,
) -> &'static str {
    let key = kind.request_key(&org);
    let request = key.to_string();
    let target = match pipeline::target(&state, &org).await {
        Ok(t) => t,
        Err(ClariError::MissingApiKey) => return "no_key",
        Err(e) => {
            tracing::warn!(error = %e, org_id = %org, "pre-warm: no Clari target");
            return "failed";
        }
    };
    let client = &state.clari;
    let day = budget_day(state.now());
    let budget = state.config.prewarm_daily_budget;
    let spend = || async {
        state
            .store
            .spend_prewarm(&org, day, budget)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, org_id = %org, "pre-warm budget unavailable; not spending it");
                false
            })
    };
    let start = queue::start_spare(
        &state,
        &org,
        &target,
        &request,
        schedule.fresh_for(),
        spend,
        || kind.create(client, &target),
    )
    .await;
    let (started, finished_at) = match start {
        Ok(SpareStart::Started(s)) => {
            state.audit.record(
                Event::new(Some(&org), Actor::system(), "export.prewarm")
                    .target(kind.forecast_id.as_str())
                    .detail("job_id", s.job_id.as_str()),
            );
            (s, None)
        }
        Ok(SpareStart::Follow {
            job_id,
            finished_at,
        }) => (
            Started {
                job_id,
                owner: false,
            },
            finished_at,
        ),
        Ok(SpareStart::Skipped(why)) => return why,
        Err(e) => {
            tracing::warn!(error = %e, org_id = %org, "pre-warm export not started");
            return "failed";
        }
    };
    match pipeline::follow_in_background(&state, &org, &request, &kind, target, &started).await {
        Ok(ExportState::Ready(forecast)) => {
            let expires = finished_at.unwrap_or_else(|| state.now()) + schedule.lifetime();
            state
                .forecasts
                .install(key, Arc::new(forecast), expires, true);
            if started.owner { "started" } else { "followed" }
        }
        Ok(_) => "failed",
        Err(e) => {
            tracing::warn!(error = %e, org_id = %org, job_id = %started.job_id, "pre-warm export failed");
            "failed"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_are_spread_to_fit_the_daily_budget() {
        // A 5-minute TTL cannot be kept warm all day on 24 exports: once an hour, served 61 min.
        let s = Schedule::new(300, 1, 24);
        assert_eq!((s.period, s.lead, s.lifetime()), (3_600, 60, 3_660));
        assert!(86_400 / s.period <= 24);
        // Two tabs share the budget.
        assert_eq!(Schedule::new(300, 2, 24).period, 7_200);
        // A generous budget refreshes ahead of the TTL, never serving past it.
        let s = Schedule::new(3_600, 1, 1_000);
        assert_eq!((s.period, s.lifetime()), (3_000, 3_600));
    }

    #[test]
    fn the_budget_day_is_the_utc_day() {
        assert_eq!(budget_day(86_399), 0);
        assert_eq!(budget_day(86_400), 1);
    }
}
