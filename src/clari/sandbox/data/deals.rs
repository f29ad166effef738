//! Accounts, opportunities with their field history and CRM scores, and the activities that
//! link them.

use time::{Duration as Days, OffsetDateTime};

use super::calendar::{Period, ms};
use super::names::{
    ACTIVITY_KINDS, COMPANY_A, COMPANY_B, DEAL_TYPES, FIRST, LAST, PRODUCTS, STAGES,
};
use super::{Account, ActivityRec, Change, Opp, Rng, SandboxUser, round_to};

/// 80 accounts with distinct names, each owned by a rep.
pub(super) fn accounts(rng: &mut Rng, reps: &[usize]) -> Vec<Account> {
    let mut accounts = Vec::new();
    let mut account_names = std::collections::HashSet::new();
    while accounts.len() < 80 {
        let n = format!("{} {}", rng.pick(COMPANY_A), rng.pick(COMPANY_B));
        if !account_names.insert(n.clone()) {
            continue;
        }
        let dom = format!("{}.example", n.to_lowercase().replace(' ', ""));
        accounts.push(Account {
            id: format!("0015e00000{}", rng.alnum(8)),
            name: n,
            domain: dom,
            owner: *rng.pick(reps),
        });
    }
    accounts
}

/// 300 opportunities across the quarters, with changes and slips; [`scores`] rates them once
/// their activities exist.
pub(super) fn opportunities(
    rng: &mut Rng,
    users: &[SandboxUser],
    reps: &[usize],
    accounts: &[Account],
    periods: &[Period],
    now: OffsetDateTime,
) -> Vec<Opp> {
    let today = now.date();
    let mut opps = Vec::new();
    for i in 0..300 {
        let account = rng.range(0, accounts.len() as i64) as usize;
        let owner = if rng.chance(0.85) {
            accounts[account].owner
        } else {
            *rng.pick(reps)
        };
        let period = &periods[rng.range(0, periods.len() as i64) as usize];
        let close =
            period.start + Days::days(rng.range(0, (period.end - period.start).whole_days() + 1));
        let past = close < today;
        let stage: &'static str = if past {
            if rng.chance(0.55) {
                "Closed Won"
            } else {
                "Closed Lost"
            }
        } else {
            STAGES[rng.range(0, 5) as usize]
        };
        let amount = round_to(rng.range(8_000, 260_000) as f64, 500.0);
        let category = match stage {
            "Closed Won" => "Closed",
            "Closed Lost" => "Omitted",
            "Negotiation" => "Commit",
            "Proposal" => "Best Case",
            _ => "Pipeline",
        };
        let mut opp = Opp {
            id: format!("0065e00000{}", rng.alnum(8)),
            name: format!(
                "{} - {} {}",
                accounts[account].name,
                rng.pick(PRODUCTS),
                rng.pick(DEAL_TYPES)
            ),
            account,
            owner,
            amount,
            original_amount: amount,
            stage,
            close_date: close,
            original_close_date: close,
            forecast_category: category,
            score: 0.0,
            score_message: String::new(),
            changes: Vec::new(),
        };
        changes(rng, &mut opp, users, reps, now, i);
        opps.push(opp);
    }
    opps
}

/// Clari's CRM score and message for each opportunity, consistent with its data: a closed deal
/// is won or lost, not at risk; an open one is rated by its slips, its latest activity and its
/// amount, in that order.
pub(super) fn scores(
    rng: &mut Rng,
    opps: &mut [Opp],
    activities: &[ActivityRec],
    now: OffsetDateTime,
) {
    let fortnight_ago = ms(now) - 14 * 86_400_000;
    let mut last = vec![i64::MIN; opps.len()];
    for a in activities {
        for &o in &a.opps {
            last[o] = last[o].max(a.at_ms);
        }
    }
    for (i, opp) in opps.iter_mut().enumerate() {
        let slips = opp
            .changes
            .iter()
            .filter(|c| c.field == "opportunity.close_date")
            .count();
        let (score, message) = match opp.stage {
            "Closed Lost" => (0.0, "Opportunity is lost".to_owned()),
            "Closed Won" => (100.0, "Opportunity is won".to_owned()),
            _ if slips >= 2 => (
                rng.range(8, 35) as f64,
                format!("Close date has slipped {slips} times"),
            ),
            _ if last[i] < fortnight_ago => (
                rng.range(20, 45) as f64,
                "No activity in the last 14 days".to_owned(),
            ),
            _ if opp.amount < opp.original_amount => {
                (rng.range(35, 60) as f64, "Amount has decreased".to_owned())
            }
            _ => (
                rng.range(55, 96) as f64,
                "Strong engagement with the buying group".to_owned(),
            ),
        };
        opp.score = score;
        opp.score_message = message;
    }
}

/// 600 activities over the last 120 days, oldest first.
pub(super) fn activities(
    rng: &mut Rng,
    opps: &[Opp],
    accounts: &[Account],
    now: OffsetDateTime,
) -> Vec<ActivityRec> {
    let mut activities = Vec::new();
    for _ in 0..600 {
        let opp_idx = rng.range(0, opps.len() as i64) as usize;
        let account = opps[opp_idx].account;
        let linked = if rng.chance(0.7) {
            vec![opp_idx]
        } else {
            Vec::new()
        };
        let kind = *rng.pick(ACTIVITY_KINDS);
        let when = now - Days::minutes(rng.range(30, 120 * 24 * 60));
        let contacts = (0..rng.range(1, 4))
            .map(|_| {
                let n = format!("{} {}", rng.pick(FIRST), rng.pick(LAST));
                let e = format!(
                    "{}@{}",
                    n.to_lowercase().replace(' ', "."),
                    accounts[account].domain
                );
                (n, e)
            })
            .collect();
        let subject = match kind {
            "MEETING" => format!(
                "{} sync: {}",
                accounts[account].name,
                rng.pick(&["discovery", "demo", "pricing", "security review", "kickoff"])
            ),
            "EMAIL_SENT" | "EMAIL_RECEIVED" => format!("Re: {} proposal", accounts[account].name),
            _ => format!(
                "{} - {}.pdf",
                accounts[account].name,
                rng.pick(&["Order Form", "Security Questionnaire", "MSA", "Pricing"])
            ),
        };
        activities.push(ActivityRec {
            id: rng.hex(32),
            kind,
            subject,
            at_ms: ms(when),
            owner: opps[opp_idx].owner,
            account,
            opps: linked,
            contacts,
        });
    }
    activities.sort_by_key(|a| a.at_ms);
    activities
}

/// An open deal's history, walked back from today's values. A closed deal is frozen: nothing
/// changes it. A close date only ever moves later, from a day not yet past when it moved; an
/// amount edit changes the amount.
fn changes(
    rng: &mut Rng,
    opp: &mut Opp,
    users: &[SandboxUser],
    reps: &[usize],
    now: OffsetDateTime,
    i: usize,
) {
    let now_ms = ms(now);
    let day_ms = 86_400_000;
    // Every tenth opportunity slips its close date within the last week, so "what slipped this
    // week" always has answers.
    let n_changes = rng.range(0, 5) as usize + usize::from(i.is_multiple_of(10));
    let mut times: Vec<i64> = (0..n_changes)
        .map(|_| now_ms - rng.range(1, 56) * day_ms - rng.range(0, day_ms))
        .collect();
    if i.is_multiple_of(10) {
        times.push(now_ms - rng.range(1, 6) * day_ms - rng.range(0, day_ms / 2));
    }
    times.sort_unstable();
    let open = !opp.stage.starts_with("Closed");
    if !open {
        return;
    }
    let mut amount = opp.amount;
    let mut close = opp.close_date;
    let mut stage_idx = STAGES.iter().position(|s| *s == opp.stage).unwrap_or(0);
    let mut owner = opp.owner;
    // Walk backwards from today's values to reconstruct history, newest change first.
    let mut changes = Vec::new();
    for (k, &t) in times.iter().enumerate().rev() {
        let recent_slip = i.is_multiple_of(10) && k == times.len() - 1;
        let kind = if recent_slip { 1 } else { rng.range(0, 4) };
        match kind {
            0 => {
                let mut old = round_to(amount * (0.8 + rng.unit() * 0.4), 500.0);
                if old == amount {
                    old += 500.0;
                }
                changes.push(Change {
                    field: "opportunity.amount",
                    old: old.into(),
                    new: amount.into(),
                    at_ms: t,
                });
                amount = old;
            }
            1 => {
                let moved_on = super::calendar::date_of_ms(t);
                let old = (close - Days::days(rng.range(7, 35))).max(moved_on);
                if old >= close {
                    continue;
                }
                changes.push(Change {
                    field: "opportunity.close_date",
                    old: old.to_string().into(),
                    new: close.to_string().into(),
                    at_ms: t,
                });
                close = old;
            }
            2 if stage_idx > 0 && stage_idx < 5 => {
                let old = stage_idx - 1;
                changes.push(Change {
                    field: "opportunity.stage",
                    old: STAGES[old].into(),
                    new: STAGES[stage_idx].into(),
                    at_ms: t,
                });
                stage_idx = old;
            }
            _ => {
                let old = *rng.pick(reps);
                if old != owner {
                    changes.push(Change {
                        field: "opportunity.owner",
                        old: users[old].name.clone().into(),
                        new: users[owner].name.clone().into(),
                        at_ms: t,
                    });
                    owner = old;
                }
            }
        }
    }
    changes.reverse();
    opp.original_amount = amount;
    opp.original_close_date = close;
    opp.changes = changes;
}
