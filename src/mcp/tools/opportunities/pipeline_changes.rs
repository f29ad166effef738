//! `get_pipeline_changes`: stage, amount, close-date and owner changes in a window, from the
//! field history of the deals in the shared activity export, with forecast submissions when
//! asked for.

use std::time::Duration;

use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::is_zero;
use crate::clari::ExportState;
use crate::clock::rfc3339;
use crate::exports::pipeline;
use crate::mcp::tools::deals::{field_value, is_closed, opp_name};
use crate::mcp::tools::forecast::{SubmissionRow, submissions};
use crate::mcp::tools::population::population;
use crate::mcp::tools::render::{Export, Summary, exact, plural};
use crate::mcp::tools::window::{Span, Window, org_zone};
use crate::mcp::tools::{Tool, ToolError, limit, wait};
use crate::principal::AuthContext;
use crate::scope::Scope;
use crate::state::AppState;

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
    #[serde(flatten)]
    pub span: Window,
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
}

impl Summary for PipelineData {
    fn summary(&self, tool: &str) -> String {
        let mut text = format!(
            "{} change{} ({}) {} on {} deals, {} close-date slip{}, newest first{}",
            self.total_changes,
            plural(self.total_changes, "", "s"),
            self.kinds.join(", "),
            self.span.text,
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
            span: span.window(),
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
        }))
    }
}
