//! The MCP tools: read-only, scope-gated, compact by default (`limit` and `cursor`), each returning
//! structured content plus a one-line text summary. Failures are tool results with `isError: true`
//! that say what happened and what to do; a bad argument is named.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use rmcp::schemars::{self, JsonSchema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::AuthContext;
use super::data::{self, Forecast};
use crate::app::AppState;
use crate::clari::ClariError;
use crate::clari::client::parse_date;
use crate::clari::types::*;
use crate::clock::rfc3339;
use crate::scope::Scope;

pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 200;
pub const DEFAULT_WAIT: u64 = 20;
pub const MAX_WAIT: u64 = 50;

/// A failure shown to the agent: what happened, and what to do.
#[derive(Debug)]
pub struct ToolError {
    pub message: String,
    pub hint: String,
}

impl ToolError {
    pub fn arg(name: &str, reason: impl std::fmt::Display) -> Self {
        Self {
            message: format!("Invalid argument `{name}`: {reason}."),
            hint: "Correct the argument and call the tool again.".into(),
        }
    }
}

impl From<ClariError> for ToolError {
    fn from(e: ClariError) -> Self {
        match &e {
            ClariError::InvalidArgument { argument, reason } => Self::arg(argument, reason),
            _ => Self {
                message: format!("{}.", capitalize(&e.to_string())),
                hint: e.hint().into(),
            },
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

pub type ToolResult = Result<(Value, String), ToolError>;

struct Def {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    scope: Scope,
    input: fn() -> JsonObject,
    output: fn() -> JsonObject,
}

fn schema<T: JsonSchema>() -> JsonObject {
    let mut value = serde_json::to_value(schemars::schema_for!(T)).expect("schema serializes");
    objects_only(&mut value);
    value.as_object().cloned().unwrap_or_default()
}

/// schemars writes `true` as the schema of a free-form value; MCP requires every property (and
/// item) schema to be an object, so `true` becomes `{}` (the same meaning).
fn objects_only(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if matches!(key.as_str(), "properties" | "$defs" | "definitions") {
                    if let Value::Object(props) = child {
                        for p in props.values_mut() {
                            if *p == Value::Bool(true) {
                                *p = json!({});
                            }
                        }
                    }
                } else if key == "items" && *child == Value::Bool(true) {
                    *child = json!({});
                }
                objects_only(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(objects_only),
        _ => {}
    }
}

macro_rules! defs {
    ($( $name:literal, $title:literal, $scope:expr, $args:ty, $out:ty, $desc:literal; )*) => {
        const DEFS: &[Def] = &[ $( Def { name: $name, title: $title, description: $desc, scope: $scope, input: schema::<$args>, output: schema::<$out> }, )* ];
    };
}

defs! {
    "get_forecast", "Forecast", Scope::ForecastsRead, GetForecastArgs, ForecastOut,
        "Forecast for a forecast tab and fiscal quarter: Commit, Best Case, Pipeline, Closed Won and Quota for a manager (default: the top of the hierarchy) with the rollup of each direct report, attainment and coverage vs quota. Answers 'What does Q3 commit look like by manager?'.";
    "list_forecast_submissions", "Forecast submissions", Scope::ForecastsRead, SubmissionsArgs, SubmissionsOut,
        "Who submitted or changed which forecast value when, newest first, with the week-over-week change. Filter by user, field and date window. Answers 'Who changed the forecast on Monday?'.";
    "list_time_periods", "Time periods", Scope::ForecastsRead, TimePeriodsArgs, TimePeriodsOut,
        "The fiscal quarter of a forecast (default: the current one) and its weekly time frames.";
    "list_users", "Forecast hierarchy", Scope::UsersRead, UsersArgs, UsersOut,
        "The forecast hierarchy: users, roles, managers, e-mails and CRM ids, optionally under one manager.";
    "get_deal_risk", "Deal risk", Scope::OpportunitiesRead, DealRiskArgs, DealRiskOut,
        "Clari's CRM score and risk message for any number of opportunity ids (riskiest first).";
    "get_opportunity", "Opportunity", Scope::OpportunitiesRead, OpportunityArgs, OpportunityOut,
        "One opportunity's fields (amount, stage, close date, owner, forecast category) with their change history.";
    "list_opportunities", "Opportunities", Scope::OpportunitiesRead, WindowArgs, OpportunitiesOut,
        "Opportunities with activity (meetings, e-mails, attachments) in a date window, with owner and account.";
    "list_accounts", "Accounts", Scope::AccountsRead, WindowArgs, AccountsOut,
        "Accounts with activity in a date window, with owners and their opportunities.";
    "get_pipeline_changes", "Pipeline changes", Scope::OpportunitiesRead, PipelineArgs, PipelineOut,
        "Stage, amount, close-date and owner changes in a window, newest first, from field history, plus forecast submission changes. Answers 'Which deals slipped close date this week?'.";
    "list_audit_events", "Audit events", Scope::AuditRead, AuditArgs, AuditOut,
        "Clari audit events (last 30 days at most) with actor names, filterable by event and actor.";
    "list_export_jobs", "Export jobs", Scope::ExportsRead, JobsArgs, JobsOut,
        "Clari export jobs started with this organisation's API key and their status.";
    "get_export_job", "Export job", Scope::ExportsRead, JobArgs, JobOut,
        "One Clari export job's status.";
    "get_admin_limits", "Export limits", Scope::ExportsRead, NoArgs, LimitsOut,
        "Clari export concurrency and monthly quota: how many export jobs may run and remain this month.";
}

/// The scope a tool needs; `None` for names that are not tools.
pub fn required_scope(name: &str) -> Option<Scope> {
    DEFS.iter().find(|d| d.name == name).map(|d| d.scope)
}

/// The tools a caller with these scopes may call.
pub fn list_for(scopes: &crate::scope::ScopeSet) -> Vec<Tool> {
    DEFS.iter()
        .filter(|d| scopes.allows(d.scope))
        .map(tool)
        .collect()
}

pub fn all_tools() -> Vec<Tool> {
    DEFS.iter().map(tool).collect()
}

fn tool(d: &Def) -> Tool {
    Tool::new(d.name, d.description, Arc::new((d.input)()))
        .with_title(d.title)
        .with_raw_output_schema(Arc::new((d.output)()))
        .with_annotations(
            ToolAnnotations::new()
                .read_only(true)
                .destructive(false)
                .idempotent(true)
                .open_world(true),
        )
}

fn parse<T: DeserializeOwned>(args: JsonObject) -> Result<T, ToolError> {
    let value = Value::Object(args);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let inner = inner.split(" at line").next().unwrap_or(&inner).to_owned();
        if path == "." {
            ToolError::arg(inner.split('`').nth(1).unwrap_or("arguments"), &inner)
        } else {
            ToolError::arg(&path, inner)
        }
    })
}

/// Runs a tool; `Err` only for unknown names (a protocol error, not a tool error).
pub async fn call(
    state: &AppState,
    ctx: &AuthContext,
    name: &str,
    args: JsonObject,
) -> Option<CallToolResult> {
    let def = DEFS.iter().find(|d| d.name == name)?;
    if !ctx.scopes.allows(def.scope) {
        return Some(error_result(ToolError {
            message: format!("This token lacks the {} scope.", def.scope),
            hint: "Reconnect and approve that access.".into(),
        }));
    }
    let result = match name {
        "get_forecast" => get_forecast(state, ctx, args).await,
        "list_forecast_submissions" => list_forecast_submissions(state, ctx, args).await,
        "list_time_periods" => list_time_periods(state, ctx, args).await,
        "list_users" => list_users(state, ctx, args).await,
        "get_deal_risk" => get_deal_risk(state, ctx, args).await,
        "get_opportunity" => get_opportunity(state, ctx, args).await,
        "list_opportunities" => list_opportunities(state, ctx, args).await,
        "list_accounts" => list_accounts(state, ctx, args).await,
        "get_pipeline_changes" => get_pipeline_changes(state, ctx, args).await,
        "list_audit_events" => list_audit_events(state, ctx, args).await,
        "list_export_jobs" => list_export_jobs(state, ctx, args).await,
        "get_export_job" => get_export_job(state, ctx, args).await,
        "get_admin_limits" => get_admin_limits(state, ctx, args).await,
        _ => return None,
    };
    Some(match result {
        Ok((value, summary)) => {
            let mut r = CallToolResult::success(vec![ContentBlock::text(summary)]);
            r.structured_content = Some(value);
            r
        }
        Err(e) => {
            tracing::info!(tool = name, error = %e.message, "tool error");
            error_result(e)
        }
    })
}

fn error_result(e: ToolError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!(
        "{} {}",
        e.message, e.hint
    ))])
}

// --- arguments ------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetForecastArgs {
    /// Forecast tab id from the Clari URL (app.clari.com/forecast/<id>); default "forecast".
    pub forecast_id: Option<String>,
    /// Fiscal quarter as YYYY_QN, e.g. 2026_Q3; default the current quarter.
    pub time_period: Option<String>,
    /// A manager (user id, e-mail or name) whose team to show; default the top of the hierarchy.
    pub manager: Option<String>,
    /// Fields to include: commit, best_case, pipeline, closed_won, quota; default all.
    pub fields: Option<Vec<String>>,
    /// Most rows in the breakdown (default 25, at most 200).
    pub limit: Option<u32>,
    /// Seconds to wait for Clari's export (default 20, at most 50); otherwise "call again".
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmissionsArgs {
    pub forecast_id: Option<String>,
    pub time_period: Option<String>,
    /// Only this user's submissions (user id, e-mail or name).
    pub user: Option<String>,
    /// Only this field: commit or best_case.
    pub field: Option<String>,
    /// Start of the window, YYYY-MM-DD or RFC 3339 (default: 7 days ago).
    pub since: Option<String>,
    /// End of the window (default: now).
    pub until: Option<String>,
    pub limit: Option<u32>,
    /// The `next_cursor` of a previous answer.
    pub cursor: Option<String>,
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimePeriodsArgs {
    pub forecast_id: Option<String>,
    pub time_period: Option<String>,
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsersArgs {
    pub forecast_id: Option<String>,
    /// Only this manager and everyone below (user id, e-mail or name).
    pub manager: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DealRiskArgs {
    /// Salesforce opportunity ids (15 or 18 characters), up to 10,000.
    pub opportunity_ids: Vec<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpportunityArgs {
    /// A Salesforce opportunity id.
    pub opportunity_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowArgs {
    /// Start of the window, YYYY-MM-DD (default: 30 days ago).
    pub since: Option<String>,
    /// End of the window, YYYY-MM-DD (default: today).
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineArgs {
    /// Start of the window, YYYY-MM-DD or RFC 3339 (default: 7 days ago).
    pub since: Option<String>,
    pub until: Option<String>,
    /// Kinds of change: stage, amount, close_date, owner (default all).
    pub changes: Option<Vec<String>>,
    pub limit: Option<u32>,
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditArgs {
    /// Start, YYYY-MM-DD or RFC 3339 (default: 7 days ago; at most 30 days back).
    pub since: Option<String>,
    pub until: Option<String>,
    /// Only this event, e.g. forecast.submitted.
    pub event: Option<String>,
    /// Only this actor (numeric Clari user id).
    pub actor_id: Option<i64>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobsArgs {
    /// Only jobs with this status (SCHEDULED, STARTED, DONE, FAILED, CANCELLED, ABORTED).
    pub status: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobArgs {
    pub job_id: String,
}

// --- outputs (schemas only; the values are built with the same field names) ----------------------

#[derive(Serialize, JsonSchema)]
pub struct ForecastRow {
    user_id: String,
    name: String,
    role: Option<String>,
    commit: Option<f64>,
    best_case: Option<f64>,
    pipeline: Option<f64>,
    closed_won: Option<f64>,
    quota: Option<f64>,
    attainment: Option<f64>,
    commit_to_quota: Option<f64>,
}

#[derive(Serialize, JsonSchema)]
pub struct ForecastOut {
    status: String,
    forecast_id: String,
    time_period: Option<String>,
    week: Option<Value>,
    currency: Option<String>,
    total: Option<ForecastRow>,
    breakdown: Vec<ForecastRow>,
    truncated: bool,
    job_id: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct SubmissionsOut {
    status: String,
    submissions: Vec<Value>,
    next_cursor: Option<String>,
    job_id: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct TimePeriodsOut {
    status: String,
    time_periods: Vec<Value>,
    weeks: Vec<Value>,
    job_id: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct UsersOut {
    status: String,
    users: Vec<Value>,
    total: usize,
    next_cursor: Option<String>,
    job_id: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct DealRiskOut {
    opportunities: Vec<Value>,
    not_found: Vec<String>,
    truncated: bool,
}

#[derive(Serialize, JsonSchema)]
pub struct OpportunityOut {
    opportunity_id: String,
    score: Option<f64>,
    message: Option<String>,
    fields: Vec<Value>,
}

#[derive(Serialize, JsonSchema)]
pub struct OpportunitiesOut {
    status: String,
    opportunities: Vec<Value>,
    total: usize,
    next_cursor: Option<String>,
    job_id: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct AccountsOut {
    status: String,
    accounts: Vec<Value>,
    total: usize,
    next_cursor: Option<String>,
    job_id: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct PipelineOut {
    status: String,
    since: String,
    until: String,
    changes: Vec<Value>,
    forecast_changes: Vec<Value>,
    truncated: bool,
    job_id: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct AuditOut {
    events: Vec<Value>,
    next_cursor: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct JobsOut {
    jobs: Vec<Value>,
    total: usize,
}

#[derive(Serialize, JsonSchema)]
pub struct JobOut {
    job: Value,
}

#[derive(Serialize, JsonSchema)]
pub struct LimitsOut {
    concurrent_limit: i64,
    available_concurrent: i64,
    monthly_quota: i64,
    available_monthly_quota: i64,
    running_job_ids: Vec<String>,
}

// --- helpers --------------------------------------------------------------------------------------

fn limit(l: Option<u32>) -> Result<usize, ToolError> {
    match l {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(ToolError::arg("limit", "must be at least 1")),
        Some(n) => Ok((n as usize).min(MAX_LIMIT)),
    }
}

fn cursor(c: Option<&str>) -> Result<usize, ToolError> {
    match c {
        None => Ok(0),
        Some(c) => c.parse().map_err(|_| {
            ToolError::arg("cursor", "use the next_cursor value of a previous answer")
        }),
    }
}

fn wait(w: Option<u64>) -> Duration {
    Duration::from_secs(w.unwrap_or(DEFAULT_WAIT).min(MAX_WAIT))
}

fn page<T: Clone>(items: &[T], offset: usize, limit: usize) -> (Vec<T>, Option<String>) {
    let slice: Vec<T> = items.iter().skip(offset).take(limit).cloned().collect();
    let next = (offset + limit < items.len()).then(|| (offset + limit).to_string());
    (slice, next)
}

fn date_arg(name: &str, value: Option<&str>, default: i64) -> Result<i64, ToolError> {
    match value {
        None => Ok(default),
        Some(v) => parse_date(v).ok_or_else(|| {
            ToolError::arg(
                name,
                format!("'{v}' is not a date (YYYY-MM-DD) or RFC 3339 time"),
            )
        }),
    }
}

fn period_arg(v: Option<&str>) -> Result<Option<TimePeriod>, ToolError> {
    v.map(|p| TimePeriod::parse(p).map_err(|e| ToolError::arg("time_period", e)))
        .transpose()
}

fn still_running(job_id: Option<String>, what: &str) -> (Value, String) {
    let summary = format!(
        "Clari is still preparing the {what} export{}. Call the tool again with the same arguments in about 15 seconds; the export keeps running meanwhile.",
        job_id
            .as_ref()
            .map(|j| format!(" (job {j})"))
            .unwrap_or_default()
    );
    (json!({"status": "running", "job_id": job_id}), summary)
}

fn money(v: Option<f64>, currency: &str) -> String {
    match v {
        None => "n/a".into(),
        Some(v) => {
            let whole = v.round() as i64;
            let digits = whole.abs().to_string();
            let mut s = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    s.push(',');
                }
                s.push(c);
            }
            format!(
                "{}{}{s}",
                if whole < 0 { "-" } else { "" },
                if currency == "USD" { "$" } else { "" }
            )
        }
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some((a / b * 1000.0).round() / 1000.0),
        _ => None,
    }
}

// --- forecast tools -------------------------------------------------------------------------------

fn row(f: &Forecast, u: &ForecastUser) -> ForecastRow {
    let v = |field: &str| f.value(&u.user_id, field);
    let quota = f.quota(&u.user_id);
    ForecastRow {
        user_id: u.user_id.clone(),
        name: u.name.clone().unwrap_or_else(|| u.user_id.clone()),
        role: u.hierarchy_name.clone(),
        commit: v("commit"),
        best_case: v("best_case"),
        pipeline: v("pipeline"),
        closed_won: v("closed_won"),
        quota,
        attainment: ratio(v("closed_won"), quota),
        commit_to_quota: ratio(v("commit"), quota),
    }
}

fn restrict(mut r: Value, fields: &Option<Vec<String>>) -> Value {
    if let (Some(fields), Some(obj)) = (fields, r.as_object_mut()) {
        for f in ["commit", "best_case", "pipeline", "closed_won", "quota"] {
            if !fields.iter().any(|x| x == f) {
                obj.remove(f);
            }
        }
    }
    r
}

async fn get_forecast(state: &AppState, ctx: &AuthContext, args: JsonObject) -> ToolResult {
    let a: GetForecastArgs = parse(args)?;
    let forecast_id = a.forecast_id.clone().unwrap_or_else(|| "forecast".into());
    let period = period_arg(a.time_period.as_deref())?;
    if let Some(fields) = &a.fields {
        for f in fields {
            if !["commit", "best_case", "pipeline", "closed_won", "quota"].contains(&f.as_str()) {
                return Err(ToolError::arg(
                    "fields",
                    format!("'{f}' is not one of commit, best_case, pipeline, closed_won, quota"),
                ));
            }
        }
    }
    let limit = limit(a.limit)?;
    let req = ForecastExportRequest {
        time_period: period,
        types_to_export: vec![ExportType::Forecast, ExportType::Quota],
        ..Default::default()
    };
    let f = match data::forecast(state, ctx, &forecast_id, req, wait(a.wait_seconds)).await? {
        data::Got::Ready(f) => f,
        data::Got::Running(job) => return Ok(still_running(job, "forecast")),
    };
    let Some(top) = (match &a.manager {
        Some(m) => Some(f.find_user(m).ok_or_else(|| {
            ToolError::arg(
                "manager",
                format!("no user matches '{m}' (list_users shows the hierarchy)"),
            )
        })?),
        None => f.root(),
    }) else {
        return Err(ToolError {
            message: "Clari returned no users for this forecast.".into(),
            hint: "Check that the API key's user can see this forecast.".into(),
        });
    };
    let team = f.direct_reports(&top.user_id);
    let total = row(&f, top);
    let truncated = team.len() > limit;
    let breakdown: Vec<ForecastRow> = team.iter().take(limit).map(|u| row(&f, u)).collect();
    let currency = f.currency().unwrap_or_else(|| "USD".into());
    let summary = format!(
        "{} {}{}: {} has Commit {}, Best Case {}, Closed Won {} against quota {} ({}); {} direct report{} in the breakdown.",
        forecast_id,
        f.period_id().unwrap_or_default(),
        f.week()
            .map(|w| format!(" (week of {})", w.1))
            .unwrap_or_default(),
        total.name,
        money(total.commit, &currency),
        money(total.best_case, &currency),
        money(total.closed_won, &currency),
        money(total.quota, &currency),
        total
            .attainment
            .map(|a| format!("{:.0}% attained", a * 100.0))
            .unwrap_or_else(|| "no quota".into()),
        breakdown.len(),
        if breakdown.len() == 1 { "" } else { "s" }
    );
    let out = json!({
        "status": "ready",
        "forecast_id": forecast_id,
        "time_period": f.period_id(),
        "week": f.week().map(|(id, start, end)| json!({"time_frame_id": id, "start": start, "end": end})),
        "currency": currency,
        "total": restrict(serde_json::to_value(&total).unwrap(), &a.fields),
        "breakdown": breakdown.iter().map(|r| restrict(serde_json::to_value(r).unwrap(), &a.fields)).collect::<Vec<_>>(),
        "truncated": truncated,
        "job_id": null,
    });
    Ok((out, summary))
}

async fn list_forecast_submissions(
    state: &AppState,
    ctx: &AuthContext,
    args: JsonObject,
) -> ToolResult {
    let a: SubmissionsArgs = parse(args)?;
    let forecast_id = a.forecast_id.clone().unwrap_or_else(|| "forecast".into());
    let period = period_arg(a.time_period.as_deref())?;
    let now = state.now();
    let since = date_arg("since", a.since.as_deref(), now - 7 * 86_400)?;
    let until = date_arg("until", a.until.as_deref(), now)?;
    if since > until {
        return Err(ToolError::arg("since", "must not be after until"));
    }
    if let Some(field) = &a.field
        && field != "commit"
        && field != "best_case"
    {
        return Err(ToolError::arg(
            "field",
            "submitted fields are commit and best_case",
        ));
    }
    let (limit, offset) = (limit(a.limit)?, cursor(a.cursor.as_deref())?);
    let req = ForecastExportRequest {
        time_period: period,
        types_to_export: vec![ExportType::Forecast, ExportType::ForecastUpdated],
        include_historical: Some(true),
        ..Default::default()
    };
    let f = match data::forecast(state, ctx, &forecast_id, req, wait(a.wait_seconds)).await? {
        data::Got::Ready(f) => f,
        data::Got::Running(job) => return Ok(still_running(job, "forecast history")),
    };
    let who = match &a.user {
        Some(u) => Some(
            f.find_user(u)
                .ok_or_else(|| ToolError::arg("user", format!("no user matches '{u}'")))?
                .user_id
                .clone(),
        ),
        None => None,
    };
    let rows = f.submissions(
        since * 1000,
        until * 1000,
        who.as_deref(),
        a.field.as_deref(),
    );
    let (items, next) = page(&rows, offset, limit);
    let summary = format!(
        "{} forecast submission{} between {} and {}{}.",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        rfc3339(since),
        rfc3339(until),
        if next.is_some() {
            format!(
                "; showing {}, more with cursor {}",
                items.len(),
                next.as_deref().unwrap_or_default()
            )
        } else {
            String::new()
        }
    );
    Ok((
        json!({"status": "ready", "submissions": items, "next_cursor": next, "job_id": null}),
        summary,
    ))
}

async fn list_time_periods(state: &AppState, ctx: &AuthContext, args: JsonObject) -> ToolResult {
    let a: TimePeriodsArgs = parse(args)?;
    let forecast_id = a.forecast_id.clone().unwrap_or_else(|| "forecast".into());
    let period = period_arg(a.time_period.as_deref())?;
    let req = ForecastExportRequest {
        time_period: period,
        types_to_export: vec![ExportType::Forecast],
        include_historical: Some(true),
        ..Default::default()
    };
    let f = match data::forecast(state, ctx, &forecast_id, req, wait(a.wait_seconds)).await? {
        data::Got::Ready(f) => f,
        data::Got::Running(job) => return Ok(still_running(job, "time period")),
    };
    let periods: Vec<Value> = f.results.time_periods.iter().map(|p| json!({"time_period": p.time_period_id, "label": p.label, "start": p.start_date, "end": p.end_date})).collect();
    let weeks: Vec<Value> = f
        .results
        .time_frames
        .iter()
        .map(
            |w| json!({"time_frame_id": w.time_frame_id, "start": w.start_date, "end": w.end_date}),
        )
        .collect();
    let summary = format!(
        "{}: {} week{} with data.",
        periods
            .first()
            .and_then(|p| p["label"].as_str())
            .unwrap_or("The quarter"),
        weeks.len(),
        if weeks.len() == 1 { "" } else { "s" }
    );
    Ok((
        json!({"status": "ready", "time_periods": periods, "weeks": weeks, "job_id": null}),
        summary,
    ))
}

async fn list_users(state: &AppState, ctx: &AuthContext, args: JsonObject) -> ToolResult {
    let a: UsersArgs = parse(args)?;
    let forecast_id = a.forecast_id.clone().unwrap_or_else(|| "forecast".into());
    let (limit, offset) = (limit(a.limit)?, cursor(a.cursor.as_deref())?);
    let req = ForecastExportRequest {
        types_to_export: vec![ExportType::Forecast],
        ..Default::default()
    };
    let f = match data::forecast(state, ctx, &forecast_id, req, wait(a.wait_seconds)).await? {
        data::Got::Ready(f) => f,
        data::Got::Running(job) => return Ok(still_running(job, "hierarchy")),
    };
    let users: Vec<&ForecastUser> = match &a.manager {
        Some(m) => {
            let top = f
                .find_user(m)
                .ok_or_else(|| ToolError::arg("manager", format!("no user matches '{m}'")))?;
            f.subtree(&top.user_id)
        }
        None => f.results.users.iter().collect(),
    };
    let rows: Vec<Value> = users
        .iter()
        .map(|u| {
            let manager = f.manager_of(u);
            json!({
                "user_id": u.user_id, "name": u.name, "email": u.email, "role": u.hierarchy_name,
                "manager": manager.and_then(|m| m.name.clone()), "manager_user_id": manager.map(|m| m.user_id.clone()),
                "direct_reports": f.direct_reports(&u.user_id).len(), "crm_id": u.crm_id, "scope_id": u.scope_id,
            })
        })
        .collect();
    let total = rows.len();
    let (items, next) = page(&rows, offset, limit);
    let summary = format!(
        "{total} user{} in the hierarchy; showing {}.",
        if total == 1 { "" } else { "s" },
        items.len()
    );
    Ok((
        json!({"status": "ready", "users": items, "total": total, "next_cursor": next, "job_id": null}),
        summary,
    ))
}

// --- opportunity tools ----------------------------------------------------------------------------

fn field<'a>(o: &'a Opportunity, id: &str) -> Option<&'a OpportunityField> {
    o.fields.iter().find(|f| f.id == id)
}

fn opp_name(o: &Opportunity) -> Option<String> {
    field(o, "opportunity.name").and_then(|f| f.value.as_str().map(str::to_owned))
}

async fn get_deal_risk(state: &AppState, ctx: &AuthContext, args: JsonObject) -> ToolResult {
    let a: DealRiskArgs = parse(args)?;
    let limit = limit(a.limit)?;
    let target = data::target(state, &ctx.org_id).await?;
    let opps = state
        .clari
        .opportunities(&target, &a.opportunity_ids)
        .await?;
    let found: HashSet<&str> = opps.iter().map(|o| o.id.as_str()).collect();
    let not_found: Vec<String> = a
        .opportunity_ids
        .iter()
        .filter(|id| !found.contains(id.trim()))
        .cloned()
        .collect();
    let mut rows: Vec<(f64, Value)> = opps
        .iter()
        .map(|o| {
            let score = o.crm_score.as_ref().and_then(|s| s.score);
            let v = json!({
                "opportunity_id": o.id, "name": opp_name(o), "score": score,
                "message": o.crm_score.as_ref().and_then(|s| s.message.clone()),
                "stage": field(o, "opportunity.stage").map(|f| f.value.clone()),
                "amount": field(o, "opportunity.amount").map(|f| f.value.clone()),
                "close_date": field(o, "opportunity.close_date").map(|f| f.value.clone()),
            });
            (score.unwrap_or(f64::MAX), v)
        })
        .collect();
    rows.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    let truncated = rows.len() > limit;
    let items: Vec<Value> = rows.into_iter().take(limit).map(|(_, v)| v).collect();
    let riskiest = items
        .first()
        .map(|v| {
            format!(
                "; riskiest: {} (score {})",
                v["name"].as_str().unwrap_or("?"),
                v["score"]
            )
        })
        .unwrap_or_default();
    let summary = format!(
        "Scores for {} opportunit{}{}{}.",
        found.len(),
        if found.len() == 1 { "y" } else { "ies" },
        riskiest,
        if not_found.is_empty() {
            String::new()
        } else {
            format!("; {} id(s) not found", not_found.len())
        }
    );
    Ok((
        json!({"opportunities": items, "not_found": not_found, "truncated": truncated}),
        summary,
    ))
}

async fn get_opportunity(state: &AppState, ctx: &AuthContext, args: JsonObject) -> ToolResult {
    let a: OpportunityArgs = parse(args)?;
    let target = data::target(state, &ctx.org_id).await?;
    let opps = state
        .clari
        .opportunities(&target, std::slice::from_ref(&a.opportunity_id))
        .await?;
    let Some(o) = opps.into_iter().next() else {
        return Err(ToolError {
            message: format!("Clari has no opportunity '{}'.", a.opportunity_id),
            hint: "Check the Salesforce opportunity id (15 or 18 characters).".into(),
        });
    };
    let fields: Vec<Value> = o
        .fields
        .iter()
        .map(|f| {
            json!({
                "field": f.id.trim_start_matches("opportunity."), "label": f.alias, "value": f.value, "original_value": f.original_value, "trend": f.trend,
                "history": f.trend_history.iter().map(|h| json!({"at": rfc3339(h.date / 1000), "from": h.old_value, "to": h.new_value})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let score = o.crm_score.as_ref().and_then(|s| s.score);
    let message = o.crm_score.as_ref().and_then(|s| s.message.clone());
    let changes: usize = o.fields.iter().map(|f| f.trend_history.len()).sum();
    let summary = format!(
        "{} — score {}{}; {} recorded change{}.",
        opp_name(&o).unwrap_or_else(|| o.id.clone()),
        score.map(|s| s.to_string()).unwrap_or_else(|| "n/a".into()),
        message
            .as_ref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default(),
        changes,
        if changes == 1 { "" } else { "s" }
    );
    Ok((
        json!({"opportunity_id": o.id, "score": score, "message": message, "fields": fields}),
        summary,
    ))
}

struct Window {
    since: i64,
    until: i64,
}

fn window(a: &WindowArgs, now: i64, default_days: i64) -> Result<Window, ToolError> {
    let since = date_arg("since", a.since.as_deref(), now - default_days * 86_400)?;
    let until = date_arg("until", a.until.as_deref(), now)?;
    if since > until {
        return Err(ToolError::arg("since", "must not be after until"));
    }
    if until - since > 366 * 86_400 {
        return Err(ToolError::arg(
            "since",
            "the window may span at most a year",
        ));
    }
    Ok(Window { since, until })
}

async fn list_opportunities(state: &AppState, ctx: &AuthContext, args: JsonObject) -> ToolResult {
    let a: WindowArgs = parse(args)?;
    let w = window(&a, state.now(), 30)?;
    let (limit, offset) = (limit(a.limit)?, cursor(a.cursor.as_deref())?);
    let acts = match data::activities(state, ctx, w.since, w.until, wait(a.wait_seconds)).await? {
        data::Got::Ready(a) => a,
        data::Got::Running(job) => return Ok(still_running(job, "activity")),
    };
    let mut by_id: BTreeMap<String, (Value, i64, usize)> = BTreeMap::new();
    for act in &acts.activities {
        for o in &act.opportunities {
            let e = by_id.entry(o.opportunity_id.clone()).or_insert_with(|| {
                (json!({"opportunity_id": o.opportunity_id, "name": o.opportunity_name, "owner_crm_id": o.opportunity_owner_id,
                        "account": act.accounts.first().map(|a| json!({"account_id": a.account_id, "name": a.account_name}))}), 0, 0)
            });
            e.1 = e.1.max(act.date);
            e.2 += 1;
        }
    }
    let mut rows: Vec<(i64, Value)> = by_id
        .into_values()
        .map(|(mut v, last, n)| {
            v["last_activity"] = json!(rfc3339(last / 1000));
            v["activity_count"] = json!(n);
            (last, v)
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let rows: Vec<Value> = rows.into_iter().map(|(_, v)| v).collect();
    let total = rows.len();
    let (items, next) = page(&rows, offset, limit);
    let summary = format!(
        "{total} opportunit{} with activity between {} and {}; showing {} (most recent first).",
        if total == 1 { "y" } else { "ies" },
        rfc3339(w.since),
        rfc3339(w.until),
        items.len()
    );
    Ok((
        json!({"status": "ready", "opportunities": items, "total": total, "next_cursor": next, "job_id": null}),
        summary,
    ))
}

async fn list_accounts(state: &AppState, ctx: &AuthContext, args: JsonObject) -> ToolResult {
    let a: WindowArgs = parse(args)?;
    let w = window(&a, state.now(), 30)?;
    let (limit, offset) = (limit(a.limit)?, cursor(a.cursor.as_deref())?);
    let acts = match data::activities(state, ctx, w.since, w.until, wait(a.wait_seconds)).await? {
        data::Got::Ready(a) => a,
        data::Got::Running(job) => return Ok(still_running(job, "activity")),
    };
    struct Acc {
        name: Option<String>,
        owner: Option<String>,
        opps: BTreeMap<String, Option<String>>,
        last: i64,
        count: usize,
    }
    let mut by_id: BTreeMap<String, Acc> = BTreeMap::new();
    for act in &acts.activities {
        for acc in &act.accounts {
            let e = by_id.entry(acc.account_id.clone()).or_insert_with(|| Acc {
                name: acc.account_name.clone(),
                owner: acc.account_owner_id.clone(),
                opps: BTreeMap::new(),
                last: 0,
                count: 0,
            });
            e.last = e.last.max(act.date);
            e.count += 1;
            for o in &act.opportunities {
                e.opps
                    .insert(o.opportunity_id.clone(), o.opportunity_name.clone());
            }
        }
    }
    let mut rows: Vec<(i64, Value)> = by_id
        .into_iter()
        .map(|(id, a)| {
            (a.last, json!({
                "account_id": id, "name": a.name, "owner_crm_id": a.owner, "last_activity": rfc3339(a.last / 1000), "activity_count": a.count,
                "opportunities": a.opps.into_iter().map(|(id, name)| json!({"opportunity_id": id, "name": name})).collect::<Vec<_>>(),
            }))
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let rows: Vec<Value> = rows.into_iter().map(|(_, v)| v).collect();
    let total = rows.len();
    let (items, next) = page(&rows, offset, limit);
    let summary = format!(
        "{total} account{} with activity between {} and {}; showing {}.",
        if total == 1 { "" } else { "s" },
        rfc3339(w.since),
        rfc3339(w.until),
        items.len()
    );
    Ok((
        json!({"status": "ready", "accounts": items, "total": total, "next_cursor": next, "job_id": null}),
        summary,
    ))
}

async fn get_pipeline_changes(state: &AppState, ctx: &AuthContext, args: JsonObject) -> ToolResult {
    let a: PipelineArgs = parse(args)?;
    let now = state.now();
    let since = date_arg("since", a.since.as_deref(), now - 7 * 86_400)?;
    let until = date_arg("until", a.until.as_deref(), now)?;
    if since > until {
        return Err(ToolError::arg("since", "must not be after until"));
    }
    let kinds: Vec<String> = a.changes.clone().unwrap_or_else(|| {
        vec![
            "stage".into(),
            "amount".into(),
            "close_date".into(),
            "owner".into(),
        ]
    });
    for k in &kinds {
        if !["stage", "amount", "close_date", "owner"].contains(&k.as_str()) {
            return Err(ToolError::arg(
                "changes",
                format!("'{k}' is not one of stage, amount, close_date, owner"),
            ));
        }
    }
    let limit = limit(a.limit)?;
    // Opportunities worked on in the last quarter are the candidates (Clari has no list endpoint).
    let acts = match data::activities(
        state,
        ctx,
        since.min(now - 90 * 86_400),
        now,
        wait(a.wait_seconds),
    )
    .await?
    {
        data::Got::Ready(a) => a,
        data::Got::Running(job) => return Ok(still_running(job, "activity")),
    };
    let mut ids: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for act in &acts.activities {
        for o in &act.opportunities {
            if seen.insert(o.opportunity_id.clone()) {
                ids.push(o.opportunity_id.clone());
            }
        }
    }
    let target = data::target(state, &ctx.org_id).await?;
    let opps = if ids.is_empty() {
        Vec::new()
    } else {
        state.clari.opportunities(&target, &ids).await?
    };
    let mut changes: Vec<(i64, Value)> = Vec::new();
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
                    changes.push((h.date, json!({
                        "opportunity_id": o.id, "name": opp_name(o), "change": kind, "from": h.old_value, "to": h.new_value,
                        "at": rfc3339(h.date / 1000), "slipped": slipped,
                    })));
                }
            }
        }
    }
    changes.sort_by_key(|c| std::cmp::Reverse(c.0));
    let truncated = changes.len() > limit;
    let slipped = changes.iter().filter(|c| c.1["slipped"] == true).count();
    let items: Vec<Value> = changes.iter().take(limit).map(|(_, v)| v.clone()).collect();
    // Forecast calls changed in the same window, from the current quarter's history (when cached
    // or quick); their absence is not an error.
    let req = ForecastExportRequest {
        types_to_export: vec![ExportType::Forecast, ExportType::ForecastUpdated],
        include_historical: Some(true),
        ..Default::default()
    };
    let forecast_changes =
        match data::forecast(state, ctx, "forecast", req, Duration::from_secs(5)).await {
            Ok(data::Got::Ready(f)) => f
                .submissions(since * 1000, until * 1000, None, None)
                .into_iter()
                .take(limit)
                .collect(),
            _ => Vec::new(),
        };
    let summary = format!(
        "{} pipeline change{} between {} and {} ({} close-date slip{}), newest first; {} forecast submission change{}.",
        changes.len(),
        if changes.len() == 1 { "" } else { "s" },
        rfc3339(since),
        rfc3339(until),
        slipped,
        if slipped == 1 { "" } else { "s" },
        forecast_changes.len(),
        if forecast_changes.len() == 1 { "" } else { "s" }
    );
    Ok((
        json!({"status": "ready", "since": rfc3339(since), "until": rfc3339(until), "changes": items, "forecast_changes": forecast_changes, "truncated": truncated, "job_id": null}),
        summary,
    ))
}

// --- audit and exports ----------------------------------------------------------------------------

async fn list_audit_events(state: &AppState, ctx: &AuthContext, args: JsonObject) -> ToolResult {
    let a: AuditArgs = parse(args)?;
    let now = state.now();
    let since = date_arg("since", a.since.as_deref(), now - 7 * 86_400)?;
    let until = date_arg("until", a.until.as_deref(), now)?;
    let (limit, offset) = (limit(a.limit)?, cursor(a.cursor.as_deref())?);
    let query = AuditQuery {
        limit: Some(1000),
        actor_id: a.actor_id,
        date_from: Some(rfc3339(since)),
        date_to: Some(rfc3339(until)),
        event: a.event.clone(),
        ..Default::default()
    };
    let target = data::target(state, &ctx.org_id).await?;
    let page_data = state
        .clari
        .audit_events_all(&target, &query, now, offset + limit + 1)
        .await
        .map_err(|e| match e {
            ClariError::InvalidArgument {
                argument: "date_from",
                reason,
            } => ToolError::arg("since", reason),
            ClariError::InvalidArgument {
                argument: "date_to",
                reason,
            } => ToolError::arg("until", reason),
            other => other.into(),
        })?;
    let names: HashMap<&str, (&Option<String>, &Option<String>)> = page_data
        .actors
        .iter()
        .map(|a| (a.actor_id.as_str(), (&a.name, &a.email)))
        .collect();
    let mut rows: Vec<Value> = page_data
        .items
        .iter()
        .map(|e| {
            let (name, email) = names.get(e.actor_id.as_str()).copied().unwrap_or((&None, &None));
            json!({
                "at": rfc3339(e.event_timestamp.unix_seconds()), "event": e.event, "actor_id": e.actor_id, "actor": name, "actor_email": email,
                "actor_type": e.actor_type, "session_type": e.session_type, "parameters": e.event_parameters,
            })
        })
        .collect();
    rows.reverse(); // newest first
    let more = page_data.next_link.is_some() || rows.len() > offset + limit;
    let items: Vec<Value> = rows.into_iter().skip(offset).take(limit).collect();
    let next = more.then(|| (offset + limit).to_string());
    let summary = format!(
        "{} audit event{} between {} and {}{}.",
        items.len(),
        if items.len() == 1 { "" } else { "s" },
        rfc3339(since),
        rfc3339(until),
        if more { "; more with next_cursor" } else { "" }
    );
    Ok((json!({"events": items, "next_cursor": next}), summary))
}

fn job_json(j: &Job) -> Value {
    json!({
        "job_id": j.job_id, "status": j.status.as_str(), "title": j.title, "module": j.module,
        "started": j.start_time.map(|t| rfc3339(t / 1000)), "ended": j.end_time.map(|t| rfc3339(t / 1000)),
        "expires": j.expired_time.map(|t| rfc3339(t / 1000)), "file_name": j.file_name, "downloads": j.downloads,
    })
}

async fn list_export_jobs(state: &AppState, ctx: &AuthContext, args: JsonObject) -> ToolResult {
    let a: JobsArgs = parse(args)?;
    let limit = limit(a.limit)?;
    let status = a.status.as_deref().map(JobStatus::parse);
    if let Some(JobStatus::Other(s)) = &status {
        return Err(ToolError::arg(
            "status",
            format!("'{s}' is not one of SCHEDULED, STARTED, DONE, FAILED, CANCELLED, ABORTED"),
        ));
    }
    let target = data::target(state, &ctx.org_id).await?;
    let mut jobs = state.clari.list_jobs(&target).await?;
    jobs.retain(|j| status.as_ref().is_none_or(|s| &j.status == s));
    jobs.sort_by_key(|j| std::cmp::Reverse(j.start_time));
    let total = jobs.len();
    let items: Vec<Value> = jobs.iter().take(limit).map(job_json).collect();
    let running = jobs.iter().filter(|j| !j.status.is_terminal()).count();
    Ok((
        json!({"jobs": items, "total": total}),
        format!(
            "{total} export job{}, {running} still running.",
            if total == 1 { "" } else { "s" }
        ),
    ))
}

async fn get_export_job(state: &AppState, ctx: &AuthContext, args: JsonObject) -> ToolResult {
    let a: JobArgs = parse(args)?;
    let target = data::target(state, &ctx.org_id).await?;
    let job = state.clari.job(&target, a.job_id.trim()).await?;
    let summary = format!("Export job {} is {}.", job.job_id, job.status);
    Ok((json!({"job": job_json(&job)}), summary))
}

async fn get_admin_limits(state: &AppState, ctx: &AuthContext, args: JsonObject) -> ToolResult {
    let _: NoArgs = parse(args)?;
    let target = data::target(state, &ctx.org_id).await?;
    let l = state.clari.admin_limits(&target).await?.jobs;
    let summary = format!(
        "{} of {} concurrent export slots free; {} of {} monthly exports left (rolling 30 days).",
        l.available_concurrent_limit.max(0),
        l.concurrent_limit,
        l.available_monthly_quota.max(0),
        l.monthly_quota
    );
    Ok((
        json!({"concurrent_limit": l.concurrent_limit, "available_concurrent": l.available_concurrent_limit, "monthly_quota": l.monthly_quota, "available_monthly_quota": l.available_monthly_quota, "running_job_ids": l.running_job_ids}),
        summary,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_schemas_a_scope_and_read_only_annotations() {
        let tools = all_tools();
        assert_eq!(tools.len(), 13);
        for t in &tools {
            assert_eq!(
                t.input_schema.get("type").and_then(Value::as_str),
                Some("object"),
                "{}",
                t.name
            );
            assert!(t.output_schema.is_some(), "{}", t.name);
            assert_eq!(
                t.annotations.as_ref().and_then(|a| a.read_only_hint),
                Some(true)
            );
            assert!(required_scope(&t.name).is_some());
        }
    }

    #[test]
    fn schemas_use_objects_for_every_property() {
        fn walk(v: &Value, path: &str) {
            if let Value::Object(m) = v {
                if let Some(Value::Object(props)) = m.get("properties") {
                    for (k, p) in props {
                        assert!(p.is_object(), "{path}.{k} is {p}");
                    }
                }
                for (k, c) in m {
                    walk(c, &format!("{path}.{k}"));
                }
            }
        }
        for t in all_tools() {
            walk(&Value::Object((*t.input_schema).clone()), &t.name);
            walk(
                &Value::Object((*t.output_schema.clone().unwrap()).clone()),
                &t.name,
            );
        }
    }

    #[test]
    fn argument_errors_name_the_argument() {
        let e = parse::<GetForecastArgs>(serde_json::from_value(json!({"limit": "ten"})).unwrap())
            .unwrap_err();
        assert!(e.message.contains("`limit`"), "{}", e.message);
        let e = parse::<GetForecastArgs>(
            serde_json::from_value(json!({"quarter": "2026_Q3"})).unwrap(),
        )
        .unwrap_err();
        assert!(e.message.contains("quarter"), "{}", e.message);
        let e = parse::<DealRiskArgs>(JsonObject::new()).unwrap_err();
        assert!(e.message.contains("opportunity_ids"), "{}", e.message);
    }

    #[test]
    fn money_is_grouped() {
        assert_eq!(money(Some(1234567.0), "USD"), "$1,234,567");
        assert_eq!(money(Some(-900.0), "EUR"), "-900");
        assert_eq!(money(None, "USD"), "n/a");
    }
}
