//! The deals Clari knows of, as one table an agent can filter and sort: `search_deals`.
//!
//! Clari's API has no opportunity listing (`../shared/clari-api.md` §9.1), so the population is
//! every opportunity in the organisation's shared activity export of the last
//! [`ACTIVITY_DAYS`](crate::exports::pipeline::ACTIVITY_DAYS) days, read from `/opportunity` in batches
//! of 100. Every answer says so.

use std::collections::HashMap;

use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::population::{Seen, population};
use super::render::{Amount, Export, Summary, exact, money, next_page, plural};
use super::{Tool, ToolError, cursor, limit, page, wait};
use crate::clari::types::Opportunity;
use crate::clock::rfc3339;
use crate::principal::AuthContext;
use crate::scope::Scope;
use crate::state::AppState;

/// One field's value of an opportunity.
pub(super) fn field_value(o: &Opportunity, id: &str) -> Option<Value> {
    o.fields
        .iter()
        .find(|f| f.id == id)
        .map(|f| exact(f.value.clone()))
}

fn text(o: &Opportunity, id: &str) -> Option<String> {
    field_value(o, id).and_then(|v| v.as_str().map(str::to_owned))
}

pub(super) fn opp_name(o: &Opportunity) -> Option<String> {
    text(o, "opportunity.name")
}

/// Whether a deal is closed: its stage says so ("Closed Won", "Closed Lost"). Only a deal with
/// no stage is judged by its forecast category (Closed), since reps also set Omitted on open
/// deals they take out of a quarter.
pub(super) fn is_closed(o: &Opportunity) -> bool {
    match text(o, "opportunity.stage") {
        Some(stage) => stage.to_lowercase().starts_with("closed"),
        None => text(o, "opportunity.forecast_category").as_deref() == Some("Closed"),
    }
}

fn is_won(o: &Opportunity) -> bool {
    match text(o, "opportunity.stage") {
        Some(stage) => stage.to_lowercase() == "closed won",
        None => text(o, "opportunity.forecast_category").as_deref() == Some("Closed"),
    }
}

fn amount(o: &Opportunity) -> Option<f64> {
    field_value(o, "opportunity.amount").and_then(|v| v.as_f64())
}

fn close_date(o: &Opportunity) -> Option<String> {
    text(o, "opportunity.close_date").map(|d| d.chars().take(10).collect())
}

// --- search_deals -----------------------------------------------------------------------------

pub struct SearchDeals;

/// Which deals by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DealStatus {
    #[default]
    Open,
    Won,
    Lost,
    /// Won and lost.
    Closed,
    All,
}

/// Clari's forecast categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ForecastCategory {
    Pipeline,
    #[serde(rename = "Best Case")]
    BestCase,
    Commit,
    Closed,
    Omitted,
}

impl ForecastCategory {
    fn label(self) -> &'static str {
        match self {
            Self::Pipeline => "Pipeline",
            Self::BestCase => "Best Case",
            Self::Commit => "Commit",
            Self::Closed => "Closed",
            Self::Omitted => "Omitted",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DealSort {
    /// Largest first.
    #[default]
    Amount,
    /// Soonest first.
    CloseDate,
    /// Riskiest first (lowest CRM score).
    Risk,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchDealsArgs {
    /// open (default), won, lost, closed (won and lost) or all.
    pub status: Option<DealStatus>,
    /// Only these stages (names as in the CRM, e.g. Negotiation; case does not matter).
    pub stages: Option<Vec<String>>,
    /// Only these forecast categories.
    pub forecast_categories: Option<Vec<ForecastCategory>>,
    /// Amount at least this.
    pub min_amount: Option<f64>,
    /// Amount at most this.
    pub max_amount: Option<f64>,
    /// Close date on or after this day (YYYY-MM-DD).
    #[schemars(extend("format" = "date"))]
    pub close_from: Option<String>,
    /// Close date on or before this day (YYYY-MM-DD).
    #[schemars(extend("format" = "date"))]
    pub close_until: Option<String>,
    /// The opportunity owner: name, e-mail or Salesforce user id.
    pub owner: Option<String>,
    /// The account: its name (or part of it) or Salesforce id.
    pub account: Option<String>,
    /// amount (default, largest first), close_date (soonest first) or risk (riskiest first).
    pub sort: Option<DealSort>,
    /// Most deals in the answer (default 25, at most 200).
    pub limit: Option<u32>,
    /// The `next_cursor` of a previous answer.
    pub cursor: Option<String>,
    /// Seconds to wait for Clari's activity export (default 4, at most 50).
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DealRow {
    pub opportunity_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date"))]
    pub close_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_category: Option<String>,
    /// The opportunity owner's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The account owner's name (or Salesforce id when no name is known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_owner: Option<String>,
    /// Clari's CRM score, 0–100; lower is riskier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_message: Option<String>,
    pub closed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub last_activity: Option<String>,
}

/// The filters as applied.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DealFilters {
    pub status: DealStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_categories: Option<Vec<ForecastCategory>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_amount: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date"))]
    pub close_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date"))]
    pub close_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub sort: DealSort,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DealsData {
    pub deals: Vec<DealRow>,
    /// Deals matching the filters in all.
    pub total: usize,
    /// The sum of their amounts.
    pub total_amount: Value,
    pub filters: DealFilters,
    /// What the search covers: deals with activity in Clari's activity export since this day.
    #[schemars(extend("format" = "date"))]
    pub covers_activity_since: String,
    /// Deals read in all before filtering.
    pub deals_searched: usize,
    /// Active deals not read (one call reads at most 1,000).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deals_not_read: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary for DealsData {
    fn summary(&self, _tool: &str) -> String {
        format!(
            "{} {} deal{} match ({} in all){}, sorted by {}; showing {}. Searched {} deals with activity since {}{}.{}",
            self.total,
            match self.filters.status {
                DealStatus::All => "open or closed",
                DealStatus::Open => "open",
                DealStatus::Won => "won",
                DealStatus::Lost => "lost",
                DealStatus::Closed => "closed",
            },
            plural(self.total, "", "s"),
            money(self.total_amount.as_f64().map(Amount), ""),
            describe_filters(&self.filters),
            match self.filters.sort {
                DealSort::Amount => "amount, largest first",
                DealSort::CloseDate => "close date, soonest first",
                DealSort::Risk => "risk, riskiest first",
            },
            self.deals.len(),
            self.deals_searched,
            self.covers_activity_since,
            if self.deals_not_read > 0 {
                format!(" ({} more active deals not read)", self.deals_not_read)
            } else {
                String::new()
            },
            next_page(&self.next_cursor)
        )
    }
}

fn describe_filters(f: &DealFilters) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &f.stages {
        parts.push(format!("stage {}", s.join(" or ")));
    }
    if let Some(c) = &f.forecast_categories {
        let names: Vec<&str> = c.iter().map(|c| c.label()).collect();
        parts.push(format!("forecast category {}", names.join(" or ")));
    }
    if let Some(v) = f.min_amount {
        parts.push(format!("amount ≥ {v}"));
    }
    if let Some(v) = f.max_amount {
        parts.push(format!("amount ≤ {v}"));
    }
    if let Some(d) = &f.close_from {
        parts.push(format!("closing on or after {d}"));
    }
    if let Some(d) = &f.close_until {
        parts.push(format!("closing on or before {d}"));
    }
    if let Some(o) = &f.owner {
        parts.push(format!("owned by {o}"));
    }
    if let Some(a) = &f.account {
        parts.push(format!("account {a}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" with {}", parts.join(", "))
    }
}

fn day_arg(name: &str, v: Option<&str>) -> Result<Option<String>, ToolError> {
    v.map(|d| {
        d.parse::<jiff::civil::Date>()
            .ok()
            .filter(|_| d.len() == 10)
            .map(|d| d.to_string())
            .ok_or_else(|| ToolError::arg(name, format!("'{d}' is not a date (YYYY-MM-DD)")))
    })
    .transpose()
}

/// The deal's owner is `q`: their name (any case) or their Salesforce user id (15 or 18
/// characters).
fn owner_matches(q: &str, owner: Option<&str>, crm: Option<&str>) -> bool {
    let q = q.trim();
    owner.is_some_and(|o| o.to_lowercase() == q.to_lowercase())
        || crm.is_some_and(|c| same_record(c, q))
}

/// Two Salesforce ids name the same record: their first 15 characters, case-sensitive, agree.
fn same_record(a: &str, b: &str) -> bool {
    matches!(a.len(), 15 | 18) && matches!(b.len(), 15 | 18) && a.get(..15) == b.get(..15)
}

impl Tool for SearchDeals {
    const NAME: &'static str = "search_deals";
    const TITLE: &'static str = "Search deals";
    const DESCRIPTION: &'static str = "Deals filtered by status (open by default), stage, forecast category, amount, close date, owner and account, sorted by amount, close date or risk; each row has stage, amount, close date, forecast category, owner, account and account owner, and Clari's risk score. Covers the deals in Clari's activity export of the last 90 days (Clari lists no other way), and says so. Answers 'open deals over $100k?', 'high-risk deals still in Commit?', 'who owns the accounts in the top five deals?'.";
    const SCOPE: Scope = Scope::OpportunitiesRead;
    type Args = SearchDealsArgs;
    type Output = Export<DealsData>;

    async fn run(
        state: &AppState,
        ctx: &AuthContext,
        a: SearchDealsArgs,
    ) -> Result<Self::Output, ToolError> {
        let limit = limit(a.limit)?;
        let close_from = day_arg("close_from", a.close_from.as_deref())?;
        let close_until = day_arg("close_until", a.close_until.as_deref())?;
        if let (Some(lo), Some(hi)) = (a.min_amount, a.max_amount)
            && lo > hi
        {
            return Err(ToolError::arg("min_amount", "must not be above max_amount"));
        }
        for (name, v) in [("min_amount", a.min_amount), ("max_amount", a.max_amount)] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err(ToolError::arg(name, "must be a number"));
            }
        }
        let filters = DealFilters {
            status: a.status.unwrap_or_default(),
            stages: a.stages.clone().filter(|s| !s.is_empty()),
            forecast_categories: a.forecast_categories.clone().filter(|c| !c.is_empty()),
            min_amount: a.min_amount,
            max_amount: a.max_amount,
            close_from,
            close_until,
            owner: a.owner.clone().filter(|o| !o.trim().is_empty()),
            account: a.account.clone().filter(|o| !o.trim().is_empty()),
            sort: a.sort.unwrap_or_default(),
        };
        let pop = match population(state, ctx, state.now(), wait(a.wait_seconds)).await? {
            Ok(p) => p,
            Err(not_ready) => return Ok(not_ready),
        };
        // An owner given by e-mail is matched by the name of the person with that address.
        let owner = match filters.owner.as_deref().map(str::trim) {
            Some(q) if q.contains('@') => Some(
                pop.email_names
                    .get(&q.to_lowercase())
                    .cloned()
                    .ok_or_else(|| {
                        ToolError::arg(
                            "owner",
                            format!("nobody with the e-mail '{q}' is known here; give the owner's name or Salesforce user id"),
                        )
                    })?,
            ),
            other => other.map(str::to_owned),
        };
        let mut rows: Vec<DealRow> = pop
            .deals
            .iter()
            .filter(|(o, s)| keep(&filters, owner.as_deref(), o, s))
            .map(|(o, s)| row(o, s, &pop.people))
            .collect();
        sort(&mut rows, filters.sort);
        let total = rows.len();
        let sum: f64 = rows
            .iter()
            .filter_map(|r| r.amount.as_ref().and_then(Value::as_f64))
            .sum();
        let offset = cursor(a.cursor.as_deref(), total)?;
        let (deals, next) = page(&rows, offset, limit);
        Ok(Export::Ready(DealsData {
            deals,
            total,
            total_amount: exact(serde_json::json!(sum)),
            filters,
            covers_activity_since: pop.since_day,
            deals_searched: pop.deals.len(),
            deals_not_read: pop.not_read,
            next_cursor: next,
        }))
    }
}

fn keep(f: &DealFilters, owner: Option<&str>, o: &Opportunity, s: &Seen) -> bool {
    let closed = is_closed(o);
    let status_ok = match f.status {
        DealStatus::Open => !closed,
        DealStatus::Won => closed && is_won(o),
        DealStatus::Lost => closed && !is_won(o),
        DealStatus::Closed => closed,
        DealStatus::All => true,
    };
    let stage = text(o, "opportunity.stage").unwrap_or_default();
    let category = text(o, "opportunity.forecast_category").unwrap_or_default();
    let amount = amount(o);
    let close = close_date(o);
    status_ok
        && f.stages
            .as_ref()
            .is_none_or(|ss| ss.iter().any(|x| x.trim().eq_ignore_ascii_case(&stage)))
        && f.forecast_categories
            .as_ref()
            .is_none_or(|cs| cs.iter().any(|c| c.label() == category))
        && f.min_amount.is_none_or(|m| amount.is_some_and(|v| v >= m))
        && f.max_amount.is_none_or(|m| amount.is_some_and(|v| v <= m))
        && f.close_from
            .as_ref()
            .is_none_or(|d| close.as_ref().is_some_and(|c| c >= d))
        && f.close_until
            .as_ref()
            .is_none_or(|d| close.as_ref().is_some_and(|c| c <= d))
        && owner.is_none_or(|q| {
            owner_matches(
                q,
                text(o, "opportunity.owner").as_deref(),
                s.owner_crm_id.as_deref(),
            )
        })
        && f.account.as_ref().is_none_or(|query| {
            let q = query.trim().to_lowercase();
            let name = text(o, "opportunity.account")
                .or_else(|| s.account_name.clone())
                .unwrap_or_default()
                .to_lowercase();
            name.contains(&q)
                || s.account_id
                    .as_deref()
                    .is_some_and(|id| same_record(id, query.trim()))
        })
}

pub(super) fn row(o: &Opportunity, s: &Seen, people: &HashMap<String, String>) -> DealRow {
    DealRow {
        opportunity_id: o.id.clone(),
        name: opp_name(o),
        stage: text(o, "opportunity.stage"),
        amount: field_value(o, "opportunity.amount"),
        close_date: close_date(o),
        forecast_category: text(o, "opportunity.forecast_category"),
        owner: text(o, "opportunity.owner"),
        account: text(o, "opportunity.account").or_else(|| s.account_name.clone()),
        account_id: s.account_id.clone(),
        account_owner: s
            .account_owner_crm_id
            .as_ref()
            .map(|id| people.get(id).cloned().unwrap_or_else(|| id.clone())),
        risk_score: o.crm_score.as_ref().and_then(|c| c.score),
        risk_message: o.crm_score.as_ref().and_then(|c| c.message.clone()),
        closed: is_closed(o),
        last_activity: (s.last_activity_ms > 0).then(|| rfc3339(s.last_activity_ms / 1000)),
    }
}

/// Sorts by `by`, then by id, so that pages follow one order whatever order Clari gave.
fn sort(rows: &mut [DealRow], by: DealSort) {
    rows.sort_by(|a, b| a.opportunity_id.cmp(&b.opportunity_id));
    let amount = |r: &DealRow| r.amount.as_ref().and_then(Value::as_f64);
    match by {
        DealSort::Amount => rows.sort_by(|a, b| {
            amount(b)
                .unwrap_or(f64::MIN)
                .total_cmp(&amount(a).unwrap_or(f64::MIN))
        }),
        DealSort::CloseDate => rows.sort_by(|a, b| match (&a.close_date, &b.close_date) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }),
        DealSort::Risk => rows.sort_by(|a, b| {
            a.risk_score
                .unwrap_or(f64::MAX)
                .total_cmp(&b.risk_score.unwrap_or(f64::MAX))
        }),
    }
}
