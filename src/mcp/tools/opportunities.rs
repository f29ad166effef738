//! Opportunity tools: deal risk and one opportunity's history (Clari's `/opportunity`), and
//! pipeline changes (candidates from the shared activity export, history from `/opportunity`).

use std::collections::HashSet;
use std::time::Duration;

use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::deals::{field_value, is_closed, opp_name};
use super::forecast::{SubmissionRow, submissions};
use super::population::population;
use super::render::{Export, Summary, exact, plural};
use super::window::{Days, Span, org_zone};
use super::{Tool, ToolError, limit, wait};
use crate::clari::ExportState;
use crate::clari::OpportunityId;
use crate::clari::client::{MAX_OPPORTUNITY_IDS, opportunity_requests, unique_records};
use crate::clock::rfc3339;
use crate::exports::pipeline;
use crate::principal::AuthContext;
use crate::scope::Scope;
use crate::state::AppState;

// --- get_deal_risk ----------------------------------------------------------------------------

/// At most this many unknown ids are named back; the answer counts the rest.
const MAX_ECHOED_IDS: usize = 20;

pub struct GetDealRisk;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DealRiskArgs {
    /// Salesforce opportunity ids (15 or 18 characters), up to 1,000; repeats and the 15- and
    /// 18-character forms of one opportunity count once.
    pub opportunity_ids: Vec<String>,
    /// Also deals that are closed (default false: a lost deal is not at risk, it is lost).
    pub include_closed: Option<bool>,
    /// Most opportunities in the answer, riskiest first (default 25, at most 200).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RiskRow {
    pub opportunity_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Clari's CRM score, 0–100; lower is riskier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_date: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast_category: Option<Value>,
    /// The opportunity owner's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<Value>,
    /// The deal is closed (won or lost).
    pub closed: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DealRiskOut {
    /// Riskiest first.
    pub opportunities: Vec<RiskRow>,
    /// Ids Clari does not know (the first 20, each once; `not_found_count` has them all).
    pub not_found: Vec<String>,
    /// How many distinct ids Clari does not know.
    pub not_found_count: usize,
    /// Opportunities found in all (open and closed).
    pub found: usize,
    /// Closed deals among them, left out (ask with include_closed for them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub closed_omitted: usize,
    /// True when `limit` cut the list short.
    pub truncated: bool,
}

impl Summary for DealRiskOut {
    fn summary(&self, _tool: &str) -> String {
        let riskiest = self
            .opportunities
            .first()
            .map(|r| {
                format!(
                    "; riskiest: {} (score {})",
                    r.name.as_deref().unwrap_or(&r.opportunity_id),
                    r.score
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "n/a".into())
                )
            })
            .unwrap_or_default();
        format!(
            "Scores for {} {}opportunit{}{riskiest}{}{}{}. get_opportunity shows one deal's history.",
            self.found - self.closed_omitted,
            if self.closed_omitted > 0 { "open " } else { "" },
            plural(self.found - self.closed_omitted, "y", "ies"),
            if self.closed_omitted > 0 {
                format!(
                    "; {} closed deal(s) left out (include_closed for them)",
                    self.closed_omitted
                )
            } else {
                String::new()
            },
            match self.not_found_count {
                0 => String::new(),
                n if n > self.not_found.len() => {
                    format!(
                        "; {n} id(s) not found (the first {} listed)",
                        self.not_found.len()
                    )
                }
                n => format!("; {n} id(s) not found"),
            },
            if self.truncated {
                format!("; showing the riskiest {}", self.opportunities.len())
            } else {
                String::new()
            }
        )
    }
}

impl Tool for GetDealRisk {
    const NAME: &'static str = "get_deal_risk";
    const TITLE: &'static str = "Deal risk";
    const DESCRIPTION: &'static str = "Clari's CRM score and risk message for up to 1,000 opportunity ids, riskiest first, with stage, amount, close date, forecast category, owner and account. Open deals only unless include_closed. search_deals finds deals by what they are.";
    const SCOPE: Scope = Scope::OpportunitiesRead;
    type Args = DealRiskArgs;
    type Output = DealRiskOut;

    async fn run(
        state: &AppState,
        ctx: &AuthContext,
        a: DealRiskArgs,
    ) -> Result<DealRiskOut, ToolError> {
        let limit = limit(a.limit)?;
        if a.opportunity_ids.len() > MAX_OPPORTUNITY_IDS {
            return Err(ToolError::arg(
                "opportunity_ids",
                format!(
                    "{} ids given; at most {MAX_OPPORTUNITY_IDS} per call",
                    a.opportunity_ids.len()
                ),
            ));
        }
        let ids = a
            .opportunity_ids
            .iter()
            .map(|id| OpportunityId::parse(id.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        super::spend_clari_requests(state, ctx, opportunity_requests(&ids)).await?;
        let target = pipeline::target(state, &ctx.org_id).await?;
        let opps = state.clari.opportunities(&target, &ids).await?;
        drop(target);
        let found: HashSet<&str> = opps
            .iter()
            .map(|o| o.id.get(..15).unwrap_or(&o.id))
            .collect();
        let missing: Vec<&str> = unique_records(&ids)
            .into_iter()
            .filter(|id| !found.contains(&id[..15]))
            .collect();
        let not_found_count = missing.len();
        let not_found: Vec<String> = missing
            .into_iter()
            .take(MAX_ECHOED_IDS)
            .map(str::to_owned)
            .collect();
        let include_closed = a.include_closed.unwrap_or(false);
        let closed_omitted = if include_closed {
            0
        } else {
            opps.iter().filter(|o| is_closed(o)).count()
        };
        let mut rows: Vec<RiskRow> = opps
            .iter()
            .filter(|o| include_closed || !is_closed(o))
            .map(|o| RiskRow {
                opportunity_id: o.id.clone(),
                name: opp_name(o),
                score: o.crm_score.as_ref().and_then(|s| s.score),
                message: o.crm_score.as_ref().and_then(|s| s.message.clone()),
                stage: field_value(o, "opportunity.stage"),
                amount: field_value(o, "opportunity.amount"),
                close_date: field_value(o, "opportunity.close_date"),
                forecast_category: field_value(o, "opportunity.forecast_category"),
                owner: field_value(o, "opportunity.owner"),
                account: field_value(o, "opportunity.account"),
                closed: is_closed(o),
            })
            .collect();
        rows.sort_by(|a, b| {
            a.score
                .unwrap_or(f64::MAX)
                .total_cmp(&b.score.unwrap_or(f64::MAX))
        });
        let total = rows.len();
        rows.truncate(limit);
        Ok(DealRiskOut {
            opportunities: rows,
            not_found,
            not_found_count,
            found: opps.len(),
            closed_omitted,
            truncated: total > limit,
        })
    }
}

// --- get_opportunity --------------------------------------------------------------------------

pub struct GetOpportunity;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpportunityArgs {
    /// A Salesforce opportunity id.
    pub opportunity_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HistoryPoint {
    #[schemars(extend("format" = "date-time"))]
    pub at: String,
    pub from: Value,
    pub to: Value,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FieldRow {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub value: Value,
    /// The value at the start of the tracking window.
    pub original_value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trend: Option<String>,
    /// Changes, oldest first.
    pub history: Vec<HistoryPoint>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct OpportunityOut {
    pub opportunity_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub fields: Vec<FieldRow>,
}

impl Summary for OpportunityOut {
    fn summary(&self, _tool: &str) -> String {
        let changes: usize = self.fields.iter().map(|f| f.history.len()).sum();
        format!(
            "{} — score {}{}; {} recorded change{}.",
            self.name.as_deref().unwrap_or(&self.opportunity_id),
            self.score
                .map(|s| s.to_string())
                .unwrap_or_else(|| "n/a".into()),
            self.message
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            changes,
            plural(changes, "", "s")
        )
    }
}

impl Tool for GetOpportunity {
    const NAME: &'static str = "get_opportunity";
    const TITLE: &'static str = "Opportunity";
    const DESCRIPTION: &'static str = "One opportunity's fields (amount, stage, close date, owner, forecast category) with their change history.";
    const SCOPE: Scope = Scope::OpportunitiesRead;
    type Args = OpportunityArgs;
    type Output = OpportunityOut;

    async fn run(
        state: &AppState,
        ctx: &AuthContext,
        a: OpportunityArgs,
    ) -> Result<OpportunityOut, ToolError> {
        let id = OpportunityId::parse(a.opportunity_id.trim())?;
        let target = pipeline::target(state, &ctx.org_id).await?;
        let opps = state
            .clari
            .opportunities(&target, std::slice::from_ref(&id))
            .await?;
        drop(target);
        let Some(o) = opps.into_iter().next() else {
            return Err(ToolError {
                message: format!("Clari has no opportunity '{}'.", a.opportunity_id),
                hint: "Check the Salesforce opportunity id (15 or 18 characters).".into(),
                class: "not_found",
            });
        };
        Ok(OpportunityOut {
            opportunity_id: o.id.clone(),
            name: opp_name(&o),
            score: o.crm_score.as_ref().and_then(|s| s.score),
            message: o.crm_score.as_ref().and_then(|s| s.message.clone()),
            fields: o
                .fields
                .iter()
                .map(|f| FieldRow {
                    field: f.id.trim_start_matches("opportunity.").to_owned(),
                    label: f.alias.clone(),
                    value: exact(f.value.clone()),
                    original_value: exact(f.original_value.clone()),
                    trend: f.trend.clone(),
                    history: f
                        .trend_history
                        .iter()
                        .map(|h| HistoryPoint {
                            at: rfc3339(h.date / 1000),
                            from: exact(h.old_value.clone()),
                            to: exact(h.new_value.clone()),
                        })
                        .collect(),
                })
                .collect(),
        })
    }
}

// --- get_pipeline_changes ---------------------------------------------------------------------

pub struct GetPipelineChanges;

/// A kind of change: a deal field, or forecast submissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Stage,
    Amount,
    CloseDate,
    Owner,
    /// Forecast submissions (commit, best case) in the same window.
    Forecast,
}

impl ChangeKind {
    fn field(self) -> Option<&'static str> {
        match self {
            Self::Stage => Some("stage"),
            Self::Amount => Some("amount"),
            Self::CloseDate => Some("close_date"),
            Self::Owner => Some("owner"),
            Self::Forecast => None,
        }
    }
}

const DEAL_CHANGES: [ChangeKind; 4] = [
    ChangeKind::Stage,
    ChangeKind::Amount,
    ChangeKind::CloseDate,
    ChangeKind::Owner,
];

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineArgs {
    /// First day of the window, YYYY-MM-DD (a whole day in the organisation's time zone), or an
    /// RFC 3339 time (default: 7 days before today).
    pub since: Option<String>,
    /// Last day of the window, YYYY-MM-DD, inclusive, or an RFC 3339 time (default: today).
    pub until: Option<String>,
    /// Kinds of change (default: stage, amount, close_date and owner; forecast submissions only
    /// when `forecast` is asked for).
    pub changes: Option<Vec<ChangeKind>>,
    /// Also changes on deals that are now closed (default false: open deals only).
    pub include_closed: Option<bool>,
    /// Most changes in the answer, newest first (default 25, at most 200).
    pub limit: Option<u32>,
    /// Seconds to wait for Clari's exports (default 4, at most 50).
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChangeRow {
    pub opportunity_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// stage, amount, close_date or owner.
    pub change: String,
    pub from: Value,
    pub to: Value,
    #[schemars(extend("format" = "date-time"))]
    pub at: String,
    /// A close date moved later.
    pub slipped: bool,
    /// The deal's stage now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The deal is closed now (won or lost).
    pub closed: bool,
}

/// Whether the forecast part of the answer is there.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForecastChangesStatus {
    Ready,
    /// The forecast export is still being prepared; call again for forecast_changes.
    Running,
    Queued,
    /// Clari could not export the forecast (the log has the reason); the changes above stand.
    Unavailable,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PipelineData {
    /// The window's first instant.
    #[schemars(extend("format" = "date-time"))]
    pub since: String,
    /// The first instant after the window.
    #[schemars(extend("format" = "date-time"))]
    pub until: String,
    /// The days the window covers, as resolved.
    pub window: Days,
    /// The kinds of change reported.
    pub kinds: Vec<String>,
    /// Whether changes on deals now closed are in.
    pub include_closed: bool,
    /// Newest first.
    pub changes: Vec<ChangeRow>,
    /// Changes in the window in all.
    pub total_changes: usize,
    /// Close-date slips among them.
    pub slipped: usize,
    /// True when `limit` cut `changes` short.
    pub truncated: bool,
    /// Changes on deals that are now closed, left out (ask with include_closed for them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub closed_deal_changes_omitted: usize,
    /// What the answer covers: the history of deals with activity (meetings, e-mails,
    /// attachments) in Clari's activity export since this day.
    #[schemars(extend("format" = "date"))]
    pub covers_activity_since: String,
    /// Deals whose history was read.
    pub deals_checked: usize,
    /// Active deals whose history was not read (one call reads at most 1,000).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub opportunities_not_checked: usize,
    /// Forecast submissions in the same window, newest first (only when `forecast` is asked
    /// for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_changes: Option<Vec<SubmissionRow>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_changes_status: Option<ForecastChangesStatus>,
    #[serde(skip)]
    #[schemars(skip)]
    pub span_text: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary for PipelineData {
    fn summary(&self, tool: &str) -> String {
        let mut text = format!(
            "{} change{} ({}) {} on {} deals, {} close-date slip{}, newest first{}",
            self.total_changes,
            plural(self.total_changes, "", "s"),
            self.kinds.join(", "),
            self.span_text,
            if self.include_closed {
                "open or closed"
            } else {
                "open"
            },
            self.slipped,
            plural(self.slipped, "", "s"),
            if self.truncated {
                format!("; showing {} (raise limit for more)", self.changes.len())
            } else {
                String::new()
            },
        );
        if self.closed_deal_changes_omitted > 0 {
            text += &format!(
                "; {} change{} on deals now closed left out (include_closed for them)",
                self.closed_deal_changes_omitted,
                plural(self.closed_deal_changes_omitted, "", "s")
            );
        }
        text += &format!(
            ". Covers the {} deals with activity since {}",
            self.deals_checked, self.covers_activity_since
        );
        if self.opportunities_not_checked > 0 {
            text += &format!(
                " ({} more were active but not read: at most 1,000 a call)",
                self.opportunities_not_checked
            );
        }
        text.push('.');
        match (&self.forecast_changes, self.forecast_changes_status) {
            (Some(f), Some(ForecastChangesStatus::Ready)) => {
                text += &format!(
                    " {} forecast submission{} in the window.",
                    f.len(),
                    plural(f.len(), "", "s")
                )
            }
            (_, Some(ForecastChangesStatus::Unavailable)) => {
                text += " Forecast submissions are unavailable from Clari right now."
            }
            (_, Some(_)) => {
                text += &format!(
                    " Forecast submissions are still being exported: call {tool} again shortly for them."
                )
            }
            (_, None) => {}
        }
        text
    }
}

impl Tool for GetPipelineChanges {
    const NAME: &'static str = "get_pipeline_changes";
    const TITLE: &'static str = "Pipeline changes";
    const DESCRIPTION: &'static str = "Stage, amount, close-date and owner changes of open deals in a window, newest first, from each deal's field history; each row has the deal's stage now. Forecast submissions too when changes includes forecast. Covers the deals in Clari's activity export of the last 90 days and says so. Answers 'Which deals slipped close date this week?'.";
    const SCOPE: Scope = Scope::OpportunitiesRead;
    type Args = PipelineArgs;
    type Output = Export<PipelineData>;

    async fn run(
        state: &AppState,
        ctx: &AuthContext,
        a: PipelineArgs,
    ) -> Result<Self::Output, ToolError> {
        let tz = org_zone(state, &ctx.org_id).await?;
        let span = Span::resolve(a.since.as_deref(), a.until.as_deref(), state.now(), 7, tz)?;
        let kinds: Vec<ChangeKind> = match &a.changes {
            Some(k) if !k.is_empty() => k.clone(),
            _ => DEAL_CHANGES.to_vec(),
        };
        let fields: Vec<&str> = kinds.iter().filter_map(|k| k.field()).collect();
        let include_closed = a.include_closed.unwrap_or(false);
        let limit = limit(a.limit)?;
        let pop = match population(state, ctx, span.start, wait(a.wait_seconds)).await? {
            Ok(p) => p,
            Err(not_ready) => return Ok(not_ready),
        };
        let mut changes: Vec<(i64, ChangeRow)> = Vec::new();
        let mut omitted = 0usize;
        for (o, _) in &pop.deals {
            let closed = is_closed(o);
            let stage =
                field_value(o, "opportunity.stage").and_then(|v| v.as_str().map(str::to_owned));
            for f in &o.fields {
                let kind = f.id.trim_start_matches("opportunity.");
                if !fields.contains(&kind) {
                    continue;
                }
                for h in f.trend_history.iter().filter(|h| span.contains_ms(h.date)) {
                    if closed && !include_closed {
                        omitted += 1;
                        continue;
                    }
                    let slipped = kind == "close_date"
                        && matches!(
                            (h.old_value.as_str(), h.new_value.as_str()),
                            (Some(old), Some(new)) if new > old
                        );
                    changes.push((
                        h.date,
                        ChangeRow {
                            opportunity_id: o.id.clone(),
                            name: opp_name(o),
                            change: kind.to_owned(),
                            from: exact(h.old_value.clone()),
                            to: exact(h.new_value.clone()),
                            at: rfc3339(h.date / 1000),
                            slipped,
                            stage: stage.clone(),
                            closed,
                        },
                    ));
                }
            }
        }
        changes.sort_by_key(|c| std::cmp::Reverse(c.0));
        let total = changes.len();
        let slipped = changes.iter().filter(|c| c.1.slipped).count();
        // Forecast calls changed in the same window, only when asked for: from the current
        // quarter's shared export when it is cached or quick; the answer says when they are
        // still coming.
        let (forecast_changes, forecast_changes_status) = if kinds.contains(&ChangeKind::Forecast) {
            match pipeline::forecast(state, &ctx.org_id, "forecast", None, Duration::from_secs(3))
                .await
            {
                Ok(ExportState::Ready(f)) => (
                    Some(
                        submissions(&f, span.start_ms(), span.end_ms(), None, None)
                            .into_iter()
                            .take(limit)
                            .collect(),
                    ),
                    Some(ForecastChangesStatus::Ready),
                ),
                Ok(ExportState::Queued { .. }) => (None, Some(ForecastChangesStatus::Queued)),
                Ok(ExportState::Running { .. }) => (None, Some(ForecastChangesStatus::Running)),
                Err(e) => {
                    tracing::info!(error = %e, "forecast changes unavailable for get_pipeline_changes");
                    (None, Some(ForecastChangesStatus::Unavailable))
                }
            }
        } else {
            (None, None)
        };
        Ok(Export::Ready(PipelineData {
            since: span.since(),
            until: span.until(),
            window: span.days(),
            kinds: kinds
                .iter()
                .map(|k| k.field().unwrap_or("forecast").to_owned())
                .collect(),
            changes: changes.into_iter().take(limit).map(|(_, c)| c).collect(),
            total_changes: total,
            slipped,
            truncated: total > limit,
            include_closed,
            closed_deal_changes_omitted: omitted,
            covers_activity_since: pop.since_day,
            deals_checked: pop.deals.len(),
            opportunities_not_checked: pop.not_read,
            forecast_changes,
            forecast_changes_status,
            span_text: span.describe(),
        }))
    }
}
