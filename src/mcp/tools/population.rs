//! The deals Clari's activity export knows of: every opportunity in the organisation's shared
//! activity export of a window, read from `/opportunity`, with what the export says of each and
//! the names of the people in it. The I/O behind `search_deals` and `get_pipeline_changes`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::ToolError;
use super::render::Export;
use crate::clari::client::{MAX_OPPORTUNITY_IDS, opportunity_requests};
use crate::clari::types::Opportunity;
use crate::clari::{ExportState, OpportunityId};
use crate::clock::rfc3339;
use crate::exports::pipeline::{self, ACTIVITY_DAYS};
use crate::principal::AuthContext;
use crate::state::AppState;

/// What the activity export says of one opportunity beyond `/opportunity`.
#[derive(Debug, Clone, Default)]
pub(super) struct Seen {
    pub account_id: Option<String>,
    pub account_name: Option<String>,
    pub account_owner_crm_id: Option<String>,
    pub owner_crm_id: Option<String>,
    pub last_activity_ms: i64,
}

/// The deals Clari's activity export knows of, read from `/opportunity`.
pub(super) struct Population {
    pub deals: Vec<(Opportunity, Seen)>,
    /// The first day of the activity window the population comes from.
    pub since_day: String,
    /// Active opportunities beyond the 1,000 one call reads.
    pub not_read: usize,
    /// Salesforce user id → name, from internal participants and the forecast's users.
    pub people: HashMap<String, String>,
    /// Lower-case e-mail → name, from the same.
    pub email_names: HashMap<String, String>,
}

/// Where the activity a population is read from starts: `from`, or [`ACTIVITY_DAYS`] days ago if
/// that is earlier, at the start of its UTC day. The answer says it covers activity since a day
/// (`since_day`), so a deal whose only activity was earlier on that day is in it too.
fn activity_from(from: i64, now: i64) -> i64 {
    let from = from.min(now - ACTIVITY_DAYS * 86_400);
    from - from.rem_euclid(86_400)
}

/// Reads the population, or where the activity export stands.
pub(super) async fn population<T>(
    state: &AppState,
    ctx: &AuthContext,
    from: i64,
    wait: Duration,
) -> Result<Result<Population, Export<T>>, ToolError> {
    let now = state.now();
    let from = activity_from(from, now);
    let got = pipeline::activities(state, &ctx.org_id, (from, now + 1), wait).await?;
    if let Some(not_ready) = Export::not_ready(&got) {
        return Ok(Err(not_ready));
    }
    let ExportState::Ready(acts) = got else {
        unreachable!("not_ready answers every other state")
    };
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut ids: Vec<OpportunityId> = Vec::new();
    let mut read = HashSet::new();
    let mut not_read = 0usize;
    let mut people: HashMap<String, String> = HashMap::new();
    let mut email_names: HashMap<String, String> = HashMap::new();
    for act in acts.iter() {
        for p in act
            .participants
            .iter()
            .filter(|p| p.is_internal == Some(true))
        {
            let Some(name) = &p.name else { continue };
            if let Some(id) = p.sfdc_user_id.as_ref().filter(|id| !id.is_empty()) {
                people.entry(id.clone()).or_insert_with(|| name.clone());
            }
            if let Some(e) = &p.email {
                email_names
                    .entry(e.to_lowercase())
                    .or_insert_with(|| name.clone());
            }
        }
        for o in &act.opportunities {
            let Ok(id) = OpportunityId::parse(&o.opportunity_id) else {
                continue;
            };
            let key = id.record().to_owned();
            if read.insert(key.clone()) {
                if ids.len() < MAX_OPPORTUNITY_IDS {
                    ids.push(id);
                } else {
                    not_read += 1;
                    continue;
                }
            }
            let s = seen.entry(key).or_default();
            s.last_activity_ms = s.last_activity_ms.max(act.date);
            s.owner_crm_id = s
                .owner_crm_id
                .take()
                .or_else(|| o.opportunity_owner_id.clone());
            if let Some(a) = act.accounts.first()
                && s.account_id.is_none()
            {
                s.account_id = Some(a.account_id.clone());
                s.account_name = a.account_name.clone();
                s.account_owner_crm_id = a.account_owner_id.clone();
            }
        }
    }
    let opps = if ids.is_empty() {
        Vec::new()
    } else {
        super::spend_clari_requests(state, ctx, opportunity_requests(&ids)).await?;
        let target = pipeline::target(state, &ctx.org_id).await?;
        state.clari.opportunities(&target, &ids).await?
    };
    // The forecast's users name people better than meeting participants do, when its export
    // is at hand (the current quarter's is pre-warmed); it is never waited for.
    if let Ok(ExportState::Ready(f)) =
        pipeline::forecast(state, &ctx.org_id, "forecast", None, Duration::ZERO).await
    {
        for u in &f.results.users {
            let Some(name) = &u.name else { continue };
            if let Some(crm) = &u.crm_id {
                people.insert(crm.clone(), name.clone());
            }
            if let Some(e) = &u.email {
                email_names.insert(e.to_lowercase(), name.clone());
            }
        }
    }
    let deals = opps
        .into_iter()
        .map(|o| {
            let s = seen
                .get(o.id.get(..15).unwrap_or(&o.id))
                .cloned()
                .unwrap_or_default();
            (o, s)
        })
        .collect();
    Ok(Ok(Population {
        deals,
        since_day: rfc3339(from).chars().take(10).collect(),
        not_read,
        people,
        email_names,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_activity_read_starts_at_midnight_utc_of_the_day_the_answer_names() {
        // 2026-12-08T04:15:00Z: ninety days before is 2026-09-09T04:15:00Z.
        let now = 1_796_703_300;
        let from = activity_from(now, now);
        assert_eq!(rfc3339(from), "2026-09-09T00:00:00Z");
        // An earlier start asked for is kept, at the start of its day.
        let earlier = activity_from(now - 200 * 86_400 + 3_600, now);
        assert_eq!(rfc3339(earlier), "2026-05-22T00:00:00Z");
    }
}
