//! The forecast and its submissions. These, `list_time_periods` and `list_users` all read one
//! shared forecast export per forecast tab and quarter.

use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

use super::render::{Amount, Export, Summary, money, next_page, plural, ratio};
use super::window::{Span, Window, org_zone};
use super::{Tool, ToolError, cursor, limit, page, wait};
use crate::clari::types::{ForecastUser, TimePeriod};
use crate::clock::rfc3339;
use crate::exports::pipeline;
use crate::exports::{BrokenHierarchy, Forecast, week_index};
use crate::principal::AuthContext;
use crate::scope::Scope;
use crate::state::AppState;

pub(super) fn forecast_id(id: &Option<String>) -> String {
    id.clone().unwrap_or_else(|| "forecast".into())
}

pub(super) fn period_arg(v: Option<&str>) -> Result<Option<TimePeriod>, ToolError> {
    v.map(|p| TimePeriod::parse(p).map_err(ToolError::from))
        .transpose()
}

pub(super) fn broken(e: BrokenHierarchy) -> ToolError {
    ToolError {
        message: format!(
            "Clari's forecast hierarchy is not a tree: the walk below user {} comes back to a manager above.",
            e.user_id
        ),
        hint:
            "Ask a Clari administrator to fix the hierarchy; get_forecast still works per manager."
                .into(),
        class: "clari_data",
    }
}

// --- get_forecast -----------------------------------------------------------------------------

pub struct GetForecast;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetForecastArgs {
    /// Forecast tab id from the Clari URL (app.clari.com/forecast/<id>); default "forecast".
    pub forecast_id: Option<String>,
    /// Fiscal quarter as YYYY_QN, e.g. 2026_Q3; default the current quarter.
    pub time_period: Option<String>,
    /// A manager (user id, e-mail or name) whose team to show; default the top of the hierarchy.
    pub manager: Option<String>,
    /// Fields to include; default all.
    pub fields: Option<Vec<ForecastField>>,
    /// Most rows in the breakdown (default 25, at most 200).
    pub limit: Option<u32>,
    /// Seconds to wait for Clari's export (default 4, at most 50); otherwise the answer says
    /// where the export stands and when to call again.
    pub wait_seconds: Option<u64>,
}

/// A forecast figure a caller may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForecastField {
    Commit,
    BestCase,
    Pipeline,
    ClosedWon,
    Quota,
}

impl ForecastField {
    pub fn id(self) -> &'static str {
        match self {
            Self::Commit => "commit",
            Self::BestCase => "best_case",
            Self::Pipeline => "pipeline",
            Self::ClosedWon => "closed_won",
            Self::Quota => "quota",
        }
    }
}

/// One person's forecast at the latest week with values.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ForecastRow {
    pub user_id: String,
    pub name: String,
    /// The person's node in the forecast hierarchy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_case: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_won: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<Amount>,
    /// Closed Won / quota (0.925 = 92.5 %).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attainment: Option<f64>,
    /// Commit / quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_to_quota: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Week {
    pub time_frame_id: String,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ForecastData {
    pub forecast_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_period: Option<String>,
    /// The latest week with values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub week: Option<Week>,
    pub currency: String,
    /// The manager (or the top of the hierarchy) with their whole team's rollup.
    pub total: ForecastRow,
    /// Each direct report's rollup.
    pub breakdown: Vec<ForecastRow>,
    /// How many direct reports there are in all.
    pub direct_reports: usize,
    /// True when `limit` cut the breakdown short.
    pub truncated: bool,
}

fn row(f: &Forecast, u: &ForecastUser, fields: Option<&[ForecastField]>) -> ForecastRow {
    let wanted = |name: &str| fields.is_none_or(|fs| fs.iter().any(|x| x.id() == name));
    let v = |field: &str| wanted(field).then(|| f.value(&u.user_id, field)).flatten();
    let quota = f.quota(&u.user_id);
    ForecastRow {
        user_id: u.user_id.clone(),
        name: u.name.clone().unwrap_or_else(|| u.user_id.clone()),
        role: u.hierarchy_name.clone(),
        commit: v("commit").map(Amount),
        best_case: v("best_case").map(Amount),
        pipeline: v("pipeline").map(Amount),
        closed_won: v("closed_won").map(Amount),
        quota: wanted("quota").then_some(quota).flatten().map(Amount),
        attainment: ratio(f.value(&u.user_id, "closed_won"), quota),
        commit_to_quota: ratio(f.value(&u.user_id, "commit"), quota),
    }
}

impl Summary for ForecastData {
    fn summary(&self, tool: &str) -> String {
        let t = &self.total;
        let c = self.currency.as_str();
        let mut parts = Vec::new();
        for (label, v) in [
            ("Commit", t.commit),
            ("Best Case", t.best_case),
            ("Pipeline", t.pipeline),
            ("Closed Won", t.closed_won),
        ] {
            if v.is_some() {
                parts.push(format!("{label} {}", money(v, c)));
            }
        }
        let quota = match (t.quota, t.attainment) {
            (Some(q), Some(a)) => format!(
                " against quota {} ({:.0}% attained)",
                money(Some(q), c),
                a * 100.0
            ),
            (Some(q), None) => format!(" against quota {}", money(Some(q), c)),
            _ => String::new(),
        };
        format!(
            "{} {}{}: {} has {}{quota}; {} of {} direct report{} in the breakdown{}. For a team, call {tool} with manager set to one of them.",
            self.forecast_id,
            self.time_period.as_deref().unwrap_or(""),
            self.week
                .as_ref()
                .map(|w| format!(" (week of {})", w.start))
                .unwrap_or_default(),
            t.name,
            if parts.is_empty() {
                "no values".into()
            } else {
                parts.join(", ")
            },
            self.breakdown.len(),
            self.direct_reports,
            plural(self.direct_reports, "", "s"),
            if self.truncated {
                " (raise limit for more)"
            } else {
                ""
            },
        )
    }
}

impl Tool for GetForecast {
    const NAME: &'static str = "get_forecast";
    const TITLE: &'static str = "Forecast";
    const DESCRIPTION: &'static str = "Forecast for a forecast tab and fiscal quarter: Commit, Best Case, Pipeline, Closed Won and Quota for a manager (default: the top of the hierarchy) with the rollup of each direct report, attainment and coverage vs quota. Answers 'What does Q3 commit look like by manager?'.";
    const SCOPE: Scope = Scope::ForecastsRead;
    type Args = GetForecastArgs;
    type Output = Export<ForecastData>;

    async fn run(
        state: &AppState,
        ctx: &AuthContext,
        a: GetForecastArgs,
    ) -> Result<Self::Output, ToolError> {
        let forecast_id = forecast_id(&a.forecast_id);
        let period = period_arg(a.time_period.as_deref())?;
        let limit = limit(a.limit)?;
        let got = pipeline::forecast(
            state,
            &ctx.org_id,
            &forecast_id,
            period,
            wait(a.wait_seconds),
        )
        .await?;
        Export::from_kept(got, |f: &Forecast| {
            let top = match &a.manager {
                Some(m) => Some(f.find_user(m).ok_or_else(|| {
                    ToolError::arg(
                        "manager",
                        format!("no user matches '{m}' (list_users shows the hierarchy)"),
                    )
                })?),
                None => f.root(),
            };
            let Some(top) = top else {
                return Err(ToolError {
                    message: "Clari returned no users for this forecast.".into(),
                    hint: "Check that the API key's user can see this forecast.".into(),
                    class: "clari_data",
                });
            };
            let fields = a.fields.as_deref();
            let team = f.direct_reports(&top.user_id);
            Ok(ForecastData {
                forecast_id: forecast_id.clone(),
                time_period: f.period_id(),
                week: f.week().map(|(time_frame_id, start, end)| Week {
                    time_frame_id,
                    start,
                    end,
                }),
                currency: f.currency().unwrap_or_else(|| "USD".into()),
                total: row(f, top, fields),
                breakdown: team.iter().take(limit).map(|u| row(f, u, fields)).collect(),
                direct_reports: team.len(),
                truncated: team.len() > limit,
            })
        })
    }
}

// --- list_forecast_submissions ----------------------------------------------------------------

pub struct ListForecastSubmissions;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmissionsArgs {
    pub forecast_id: Option<String>,
    pub time_period: Option<String>,
    /// Only this user's submissions (user id, e-mail or name).
    pub user: Option<String>,
    /// Only this field.
    pub field: Option<SubmittedField>,
    /// First day of the window, YYYY-MM-DD (a whole day in the organisation's time zone), or an
    /// RFC 3339 time (default: 7 days before today).
    pub since: Option<String>,
    /// Last day of the window, YYYY-MM-DD, inclusive, or an RFC 3339 time (default: today).
    pub until: Option<String>,
    pub limit: Option<u32>,
    /// The `next_cursor` of a previous answer.
    pub cursor: Option<String>,
    pub wait_seconds: Option<u64>,
}

/// The forecast fields people submit.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubmittedField {
    Commit,
    BestCase,
}

impl SubmittedField {
    pub fn id(self) -> &'static str {
        match self {
            Self::Commit => "commit",
            Self::BestCase => "best_case",
        }
    }
}

/// One submitted forecast value.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SubmissionRow {
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub field: String,
    pub field_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Amount>,
    /// The same person's value for the field in the week before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_week_value: Option<Amount>,
    /// value − previous_week_value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub week: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    pub updated_on: String,
    /// Who submitted it (user id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by_name: Option<String>,
}

/// Submitted changes (isUpdated) in `[since_ms, end_ms)`, newest first, with the week-over-week
/// change.
pub(super) fn submissions(
    f: &Forecast,
    since_ms: i64,
    end_ms: i64,
    user: Option<&str>,
    field: Option<&str>,
) -> Vec<SubmissionRow> {
    let mut rows: Vec<(i64, SubmissionRow)> = f
        .results
        .entries
        .iter()
        .filter(|e| e.is_updated == Some(true))
        .filter(|e| e.updated_on.is_some_and(|t| t >= since_ms && t < end_ms))
        .filter(|e| user.is_none_or(|u| e.user_id == u))
        .filter(|e| field.is_none_or(|x| e.field_id == x))
        .map(|e| {
            let week = e.time_frame_id.as_deref().map(week_index).unwrap_or(0);
            let previous = (week > 1)
                .then(|| f.value_in_week(&e.user_id, &e.field_id, week - 1))
                .flatten();
            let at = e.updated_on.unwrap_or(0);
            (
                at,
                SubmissionRow {
                    user_id: e.user_id.clone(),
                    user: f.name(&e.user_id),
                    field: e.field_id.clone(),
                    field_name: f.field_name(&e.field_id).to_owned(),
                    value: e.forecast_value.map(Amount),
                    previous_week_value: previous.map(Amount),
                    change: match (e.forecast_value, previous) {
                        (Some(v), Some(p)) => Some(Amount(v - p)),
                        _ => None,
                    },
                    week: e.time_frame_id.clone(),
                    updated_on: rfc3339(at / 1000),
                    updated_by: e.updated_by.clone(),
                    updated_by_name: e.updated_by.as_deref().and_then(|b| f.name(b)),
                },
            )
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    rows.into_iter().map(|(_, v)| v).collect()
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SubmissionsData {
    #[serde(flatten)]
    pub span: Window,
    /// Newest first.
    pub submissions: Vec<SubmissionRow>,
    /// Submissions in the window in all.
    pub total: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl Summary for SubmissionsData {
    fn summary(&self, _tool: &str) -> String {
        format!(
            "{} forecast submission{} {}, newest first; showing {}.{}",
            self.total,
            plural(self.total, "", "s"),
            self.span.text,
            self.submissions.len(),
            next_page(&self.next_cursor)
        )
    }
}

impl Tool for ListForecastSubmissions {
    const NAME: &'static str = "list_forecast_submissions";
    const TITLE: &'static str = "Forecast submissions";
    const DESCRIPTION: &'static str = "Who submitted or changed which forecast value when, newest first, with the week-over-week change. Filter by user, field and date window. Answers 'Who changed the forecast on Monday?'.";
    const SCOPE: Scope = Scope::ForecastsRead;
    type Args = SubmissionsArgs;
    type Output = Export<SubmissionsData>;

    async fn run(
        state: &AppState,
        ctx: &AuthContext,
        a: SubmissionsArgs,
    ) -> Result<Self::Output, ToolError> {
        let forecast_id = forecast_id(&a.forecast_id);
        let period = period_arg(a.time_period.as_deref())?;
        let tz = org_zone(state, &ctx.org_id).await?;
        let span = Span::resolve(a.since.as_deref(), a.until.as_deref(), state.now(), 7, tz)?;
        let limit = limit(a.limit)?;
        let got = pipeline::forecast(
            state,
            &ctx.org_id,
            &forecast_id,
            period,
            wait(a.wait_seconds),
        )
        .await?;
        Export::from_state(got, |f: &Forecast| {
            let who = match &a.user {
                Some(u) => Some(
                    f.find_user(u)
                        .ok_or_else(|| ToolError::arg("user", format!("no user matches '{u}'")))?
                        .user_id
                        .clone(),
                ),
                None => None,
            };
            let rows = submissions(
                f,
                span.start_ms(),
                span.end_ms(),
                who.as_deref(),
                a.field.map(SubmittedField::id),
            );
            let offset = cursor(a.cursor.as_deref(), rows.len())?;
            let (items, next) = page(&rows, offset, limit);
            Ok(SubmissionsData {
                span: span.window(),
                submissions: items,
                total: rows.len(),
                next_cursor: next,
            })
        })
    }
}
