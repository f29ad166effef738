//! Opportunity tools: deal risk and one opportunity's history (Clari's `/opportunity`), and
//! pipeline changes (candidates from the shared activity export, history from `/opportunity`).

mod pipeline_changes;
pub use pipeline_changes::GetPipelineChanges;

use std::collections::HashSet;

use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::deals::{field_value, is_closed, opp_name};
use super::render::{Summary, exact, plural};
use super::{Tool, ToolError, limit};
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

fn is_zero(n: &usize) -> bool {
    *n == 0
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
