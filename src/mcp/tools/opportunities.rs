//! Opportunity tools: deal risk and one opportunity's history (Clari's `/opportunity`), and
//! pipeline changes (candidates from the shared activity export, history from `/opportunity`).

use std::collections::HashSet;
use std::time::Duration;

use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::forecast::{SubmissionRow, submissions};
use super::render::{Export, Summary, exact, plural};
use super::{Tool, ToolError, limit, wait, window};
use crate::clari::ExportState;
use crate::clari::OpportunityId;
use crate::clari::client::{MAX_OPPORTUNITY_IDS, opportunity_requests, unique_records};
use crate::clari::types::{Opportunity, OpportunityField};
use crate::clock::rfc3339;
use crate::mcp::data::{self, ACTIVITY_DAYS};
use crate::principal::AuthContext;
use crate::scope::Scope;
use crate::state::AppState;

fn field<'a>(o: &'a Opportunity, id: &str) -> Option<&'a OpportunityField> {
    o.fields.iter().find(|f| f.id == id)
}

fn opp_name(o: &Opportunity) -> Option<String> {
    field(o, "opportunity.name").and_then(|f| f.value.as_str().map(str::to_owned))
}

fn field_value(o: &Opportunity, id: &str) -> Option<Value> {
    field(o, id).map(|f| exact(f.value.clone()))
}

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
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DealRiskOut {
    /// Riskiest first.
    pub opportunities: Vec<RiskRow>,
    /// Ids Clari does not know (the first 20, each once; `not_found_count` has them all).
    pub not_found: Vec<String>,
    /// How many distinct ids Clari does not know.
    pub not_found_count: usize,
    /// Opportunities found in all.
    pub found: usize,
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
            "Scores for {} opportunit{}{riskiest}{}{}. get_opportunity shows one deal's history.",
            self.found,
            plural(self.found, "y", "ies"),
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
    const DESCRIPTION: &'static str =
        "Clari's CRM score and risk message for any number of opportunity ids (riskiest first).";
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
        let target = data::target(state, &ctx.org_id).await?;
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
        let mut rows: Vec<RiskRow> = opps
            .iter()
            .map(|o| RiskRow {
                opportunity_id: o.id.clone(),
                name: opp_name(o),
                score: o.crm_score.as_ref().and_then(|s| s.score),
                message: o.crm_score.as_ref().and_then(|s| s.message.clone()),
                stage: field_value(o, "opportunity.stage"),
                amount: field_value(o, "opportunity.amount"),
                close_date: field_value(o, "opportunity.close_date"),
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
            found: total,
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
        let target = data::target(state, &ctx.org_id).await?;
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

const CHANGE_KINDS: [&str; 4] = ["stage", "amount", "close_date", "owner"];

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineArgs {
    /// Start of the window, YYYY-MM-DD or RFC 3339 (default: 7 days ago).
    pub since: Option<String>,
    /// End of the window (default: now).
    pub until: Option<String>,
    /// Kinds of change: stage, amount, close_date, owner (default all).
    pub changes: Option<Vec<String>>,
    /// Most changes in the answer, newest first (default 25, at most 200).
    pub limit: Option<u32>,
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
    #[schemars(extend("format" = "date-time"))]
    pub since: String,
    #[schemars(extend("format" = "date-time"))]
    pub until: String,
    /// Newest first.
    pub changes: Vec<ChangeRow>,
    /// Changes in the window in all.
    pub total_changes: usize,
    /// Close-date slips among them.
    pub slipped: usize,
    /// True when `limit` cut `changes` short.
    pub truncated: bool,
    /// Forecast submissions of the current quarter in the same window, newest first.
    pub forecast_changes: Vec<SubmissionRow>,
    pub forecast_changes_status: ForecastChangesStatus,
    /// Opportunities with activity in the window whose history was not read: one call reads
    /// at most 1,000 (narrow the window for the rest).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub opportunities_not_checked: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary for PipelineData {
    fn summary(&self, tool: &str) -> String {
        format!(
            "{} pipeline change{} between {} and {} ({} close-date slip{}), newest first{}{}; {}.",
            self.total_changes,
            plural(self.total_changes, "", "s"),
            self.since,
            self.until,
            self.slipped,
            plural(self.slipped, "", "s"),
            if self.truncated {
                format!("; showing {} (raise limit for more)", self.changes.len())
            } else {
                String::new()
            },
            if self.opportunities_not_checked > 0 {
                format!(
                    "; {} more opportunities were active but not read (at most 1,000 a call: narrow the window)",
                    self.opportunities_not_checked
                )
            } else {
                String::new()
            },
            match self.forecast_changes_status {
                ForecastChangesStatus::Ready => format!(
                    "{} forecast submission change{}",
                    self.forecast_changes.len(),
                    plural(self.forecast_changes.len(), "", "s")
                ),
                ForecastChangesStatus::Unavailable => {
                    "forecast changes are unavailable from Clari right now".to_owned()
                }
                _ => format!(
                    "forecast changes are still being exported: call {tool} again shortly for them"
                ),
            }
        )
    }
}

impl Tool for GetPipelineChanges {
    const NAME: &'static str = "get_pipeline_changes";
    const TITLE: &'static str = "Pipeline changes";
    const DESCRIPTION: &'static str = "Stage, amount, close-date and owner changes in a window, newest first, from field history, plus forecast submission changes. Answers 'Which deals slipped close date this week?'.";
    const SCOPE: Scope = Scope::OpportunitiesRead;
    type Args = PipelineArgs;
    type Output = Export<PipelineData>;

    async fn run(
        state: &AppState,
        ctx: &AuthContext,
        a: PipelineArgs,
    ) -> Result<Self::Output, ToolError> {
        let now = state.now();
        let (since, until) = window(a.since.as_deref(), a.until.as_deref(), now, 7)?;
        let kinds: Vec<String> = a
            .changes
            .clone()
            .unwrap_or_else(|| CHANGE_KINDS.iter().map(|k| k.to_string()).collect());
        for k in &kinds {
            if !CHANGE_KINDS.contains(&k.as_str()) {
                return Err(ToolError::arg(
                    "changes",
                    format!("'{k}' is not one of {}", CHANGE_KINDS.join(", ")),
                ));
            }
        }
        let limit = limit(a.limit)?;
        // Opportunities worked on recently are the candidates (Clari has no list endpoint): the
        // shared activity export, or the window itself when it reaches further back.
        let candidates_since = since.min(now - ACTIVITY_DAYS * 86_400);
        let got = data::activities(
            state,
            &ctx.org_id,
            candidates_since,
            now,
            wait(a.wait_seconds),
        )
        .await?;
        if let Some(not_ready) = Export::not_ready(&got) {
            return Ok(not_ready);
        }
        let ExportState::Ready(acts) = got else {
            unreachable!("not_ready answers every other state")
        };
        // Ids as Clari's activity export gives them; one that is not a Salesforce id is skipped.
        // Each opportunity once; beyond MAX_OPPORTUNITY_IDS, the first ones active are read and
        // the answer says how many were not.
        let mut ids: Vec<OpportunityId> = Vec::new();
        let mut seen = HashSet::new();
        let mut not_checked = 0usize;
        for act in acts.iter() {
            for o in &act.opportunities {
                if let Ok(id) = OpportunityId::parse(&o.opportunity_id)
                    && seen.insert(id.record().to_owned())
                {
                    if ids.len() < MAX_OPPORTUNITY_IDS {
                        ids.push(id);
                    } else {
                        not_checked += 1;
                    }
                }
            }
        }
        let opps = if ids.is_empty() {
            Vec::new()
        } else {
            super::spend_clari_requests(state, ctx, opportunity_requests(&ids)).await?;
            let target = data::target(state, &ctx.org_id).await?;
            state.clari.opportunities(&target, &ids).await?
        };
        let mut changes: Vec<(i64, ChangeRow)> = Vec::new();
        for o in &opps {
            for f in &o.fields {
                let kind = f.id.trim_start_matches("opportunity.");
                if !kinds.iter().any(|k| k == kind) {
                    continue;
                }
                for h in &f.trend_history {
                    if h.date >= since * 1000 && h.date <= until * 1000 {
                        let slipped =
                            kind == "close_date" && h.new_value.as_str() > h.old_value.as_str();
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
                            },
                        ));
                    }
                }
            }
        }
        changes.sort_by_key(|c| std::cmp::Reverse(c.0));
        let total = changes.len();
        let slipped = changes.iter().filter(|c| c.1.slipped).count();
        // Forecast calls changed in the same window, from the current quarter's shared export
        // when it is cached or quick; the answer says when they are still coming.
        let (forecast_changes, forecast_changes_status) = match data::forecast(
            state,
            &ctx.org_id,
            "forecast",
            None,
            Duration::from_secs(5),
        )
        .await
        {
            Ok(ExportState::Ready(f)) => (
                submissions(&f, since * 1000, until * 1000, None, None)
                    .into_iter()
                    .take(limit)
                    .collect(),
                ForecastChangesStatus::Ready,
            ),
            Ok(ExportState::Queued { .. }) => (Vec::new(), ForecastChangesStatus::Queued),
            Ok(ExportState::Running { .. }) => (Vec::new(), ForecastChangesStatus::Running),
            Err(e) => {
                tracing::info!(error = %e, "forecast changes unavailable for get_pipeline_changes");
                (Vec::new(), ForecastChangesStatus::Unavailable)
            }
        };
        Ok(Export::Ready(PipelineData {
            since: rfc3339(since),
            until: rfc3339(until),
            changes: changes.into_iter().take(limit).map(|(_, c)| c).collect(),
            total_changes: total,
            slipped,
            truncated: total > limit,
            forecast_changes,
            forecast_changes_status,
            opportunities_not_checked: not_checked,
        }))
    }
}
