//! Long Clari exports the protocol way: the MCP Tasks extension (`io.modelcontextprotocol/tasks`).
//!
//! When a `tools/call` declares the extension and the tool waits for a Clari export that is not
//! ready within [`TASK_WINDOW_SECONDS`], the answer is a task handle instead of `running`. The
//! task lives in the database (`mcp_tasks`), so any replica answers `tasks/get` and
//! `tasks/cancel`: a poll runs the same call again without waiting, which joins the export the
//! organisation already has in flight (the export-jobs row is shared), and the finished answer,
//! the same typed result as a direct call, is stored with the task. A task belongs to its caller
//! (organisation, person, and OAuth client or API key); anyone else gets "unknown task". Tasks
//! expire after [`TASK_TTL_SECONDS`] and housekeeping deletes them.

use rmcp::ErrorData as McpError;
use rmcp::model::{
    CallToolResponse, CallToolResult, CreateTaskResult, DetailedTask, GetTaskResult, JsonObject,
    Task, TaskPayload,
};
use serde_json::{Value, json};

use super::auth::{AuthContext, Subject};
use super::tools;
use crate::clari::JobId;
use crate::clock::rfc3339;
use crate::crypto::random_token;
use crate::http::RequestMeta;
use crate::ids::TaskId;
use crate::state::AppState;
use crate::store::{OrgId, TaskRecord, TaskStatus};

/// How long a tasks-aware call waits for its export before answering with a task.
pub const TASK_WINDOW_SECONDS: u64 = 2;
/// How long a task (and its result) is kept.
pub const TASK_TTL_SECONDS: i64 = 3600;
/// The polling interval suggested to clients.
pub const POLL_INTERVAL_MS: u64 = 2000;
/// Working tasks one caller may hold; beyond it calls answer `running` as without tasks.
pub const MAX_WORKING_PER_CALLER: i64 = 20;

/// Who may see a task: the person and what they called through, or the machine client.
pub fn owner(ctx: &AuthContext) -> String {
    let person = ctx.user_id.as_ref().map_or("", |u| u.as_str());
    match &ctx.subject {
        Subject::Grant { client_id, .. } => format!("{person}/client:{client_id}"),
        Subject::ApiKey { key_id } => format!("{person}/key:{key_id}"),
        Subject::Service { client_id, .. } => format!("service:{client_id}"),
    }
}

/// The export job of an answer that is not ready: `Some(job)` (the job when known) for
/// `running` or `queued`, `None` for anything else.
fn not_ready(r: &CallToolResult) -> Option<Option<String>> {
    let s = r.structured_content.as_ref()?;
    match s.get("status").and_then(Value::as_str) {
        Some("running") => Some(s.get("job_id").and_then(Value::as_str).map(str::to_owned)),
        Some("queued") => Some(None),
        _ => None,
    }
}

/// A new task handle: `task_` and 24 random bytes.
fn new_task_id() -> TaskId {
    TaskId::parse(&format!("task_{}", random_token(24))).expect("a minted task id is well formed")
}

fn unknown_task() -> McpError {
    McpError::invalid_params(
        "unknown task: no task with that id belongs to this caller (it may have expired)",
        None,
    )
}

fn store_error(e: impl std::fmt::Display) -> McpError {
    tracing::error!(error = %e, "task store failed");
    McpError::internal_error("the task could not be read or written; try again", None)
}

fn task_of(r: &TaskRecord) -> Task {
    Task::new(
        r.id.to_string(),
        match r.status {
            TaskStatus::Working => rmcp::model::TaskStatus::Working,
            TaskStatus::Completed => rmcp::model::TaskStatus::Completed,
            TaskStatus::Failed => rmcp::model::TaskStatus::Failed,
            TaskStatus::Cancelled => rmcp::model::TaskStatus::Cancelled,
        },
        rfc3339(r.created_at),
        rfc3339(r.updated_at),
    )
    .with_ttl_ms((TASK_TTL_SECONDS * 1000) as u64)
    .with_poll_interval_ms(POLL_INTERVAL_MS)
}

fn detailed(r: &TaskRecord) -> DetailedTask {
    let object = |text: &Option<String>| -> JsonObject {
        text.as_deref()
            .and_then(|t| serde_json::from_str::<JsonObject>(t).ok())
            .unwrap_or_default()
    };
    let payload = match r.status {
        TaskStatus::Working => TaskPayload::Working,
        TaskStatus::Completed => TaskPayload::Completed {
            result: object(&r.result),
        },
        TaskStatus::Failed => TaskPayload::Failed {
            error: object(&r.error),
        },
        TaskStatus::Cancelled => TaskPayload::Cancelled,
    };
    let mut task = task_of(r);
    if r.status == TaskStatus::Working {
        task = task.with_status_message("Clari is preparing the export");
    }
    DetailedTask::new(task, payload)
}

/// A `tools/call`: as a task when the caller declared the extension and the export is slow.
pub async fn call_tool(
    state: &AppState,
    ctx: &AuthContext,
    meta: &RequestMeta,
    name: &str,
    args: JsonObject,
    tasks_declared: bool,
) -> Option<CallToolResponse> {
    if !tasks_declared || !tools::waits_for_exports(name) {
        return tools::call(state, ctx, meta, name, args)
            .await
            .map(Into::into);
    }
    let mut quick = args.clone();
    let asked = args
        .get("wait_seconds")
        .and_then(Value::as_u64)
        .unwrap_or(TASK_WINDOW_SECONDS);
    quick.insert("wait_seconds".into(), json!(asked.min(TASK_WINDOW_SECONDS)));
    let result = tools::call(state, ctx, meta, name, quick).await?;
    let Some(job) = not_ready(&result) else {
        return Some(result.into());
    };
    let now = state.now();
    let mut stored = args;
    stored.remove("wait_seconds");
    let record = TaskRecord {
        id: new_task_id(),
        organization_id: ctx.org_id.clone(),
        owner: owner(ctx),
        tool: name.to_owned(),
        arguments: Value::Object(stored).to_string(),
        status: TaskStatus::Working,
        job_id: job,
        result: None,
        error: None,
        created_at: now,
        updated_at: now,
        expires_at: now + TASK_TTL_SECONDS,
    };
    match state
        .store
        .create_task(&record, MAX_WORKING_PER_CALLER)
        .await
    {
        Ok(true) => Some(CallToolResponse::Task(CreateTaskResult::new(task_of(
            &record,
        )))),
        // At the limit, or the store failed: the plain `running` answer still tells the truth.
        Ok(false) => Some(result.into()),
        Err(e) => {
            tracing::warn!(error = %e, "a task could not be recorded; answering without one");
            Some(result.into())
        }
    }
}

/// Records a working task for a call that runs on in the background; its runner ends it with
/// [`settle`]. Returns the handle to answer with.
pub async fn create_background(
    state: &AppState,
    ctx: &AuthContext,
    tool: &str,
    args: &JsonObject,
) -> Result<(TaskId, CallToolResponse), McpError> {
    let now = state.now();
    let record = TaskRecord {
        id: new_task_id(),
        organization_id: ctx.org_id.clone(),
        owner: owner(ctx),
        tool: tool.to_owned(),
        arguments: Value::Object(args.clone()).to_string(),
        status: TaskStatus::Working,
        job_id: None,
        result: None,
        error: None,
        created_at: now,
        updated_at: now,
        expires_at: now + TASK_TTL_SECONDS,
    };
    if !state
        .store
        .create_task(&record, MAX_WORKING_PER_CALLER)
        .await
        .map_err(store_error)?
    {
        return Err(McpError::invalid_request(
            "too many tasks are still working for this caller; wait for some to finish",
            None,
        ));
    }
    let handle = CallToolResponse::Task(CreateTaskResult::new(task_of(&record)));
    Ok((record.id, handle))
}

/// Ends a background task: completed with a tool result, or failed with a JSON-RPC error. A task
/// cancelled meanwhile stays cancelled.
pub async fn settle(
    state: &AppState,
    org: &OrgId,
    id: &TaskId,
    outcome: Result<CallToolResult, McpError>,
) {
    let (status, result, error) = match outcome {
        Ok(r) => (
            TaskStatus::Completed,
            Some(serde_json::to_string(&r).unwrap_or_default()),
            None,
        ),
        Err(e) => (
            TaskStatus::Failed,
            None,
            Some(json!({"code": e.code.0, "message": e.message}).to_string()),
        ),
    };
    if let Err(e) = state
        .store
        .finish_task(
            org,
            id,
            status,
            result.as_deref(),
            error.as_deref(),
            state.now(),
        )
        .await
    {
        tracing::warn!(error = %e, task_id = %id, "a finished task could not be stored");
    }
}

/// A task id from a request: text that cannot be one names no task of this caller either.
fn parse_task_id(text: &str) -> Result<TaskId, McpError> {
    TaskId::parse(text).map_err(|_| unknown_task())
}

/// The caller's task `task_id`; anyone else's, or an expired one, is an unknown task.
async fn owned_task(
    state: &AppState,
    ctx: &AuthContext,
    task_id: &TaskId,
    now: i64,
) -> Result<TaskRecord, McpError> {
    state
        .store
        .task(&ctx.org_id, &owner(ctx), task_id, now)
        .await
        .map_err(store_error)?
        .ok_or_else(unknown_task)
}

/// `tasks/get`: where the task stands; a working task's export is looked at (without waiting)
/// and, when ready, the finished answer is stored and returned.
pub async fn get(
    state: &AppState,
    ctx: &AuthContext,
    meta: &RequestMeta,
    task_id: &str,
) -> Result<GetTaskResult, McpError> {
    let now = state.now();
    let task_id = &parse_task_id(task_id)?;
    let record = owned_task(state, ctx, task_id, now).await?;
    // A task run in the background (not an export) is finished by its runner; report it.
    if record.status != TaskStatus::Working || !tools::waits_for_exports(&record.tool) {
        return Ok(GetTaskResult::new(detailed(&record)));
    }
    let mut args: JsonObject = serde_json::from_str(&record.arguments).unwrap_or_default();
    args.insert("wait_seconds".into(), json!(0));
    let poll = tools::call(state, ctx, meta, &record.tool, args);
    let finished = match tools::TASK_POLL.scope(record.id.to_string(), poll).await {
        None => Some((
            TaskStatus::Failed,
            None,
            Some(json!({"code": -32602, "message": format!("unknown tool '{}'", record.tool)})),
        )),
        Some(result) => match not_ready(&result) {
            Some(job) => {
                if let Some(j) = job.filter(|j| record.job_id.as_deref() != Some(j)) {
                    let _ = state
                        .store
                        .note_task_job(&record.organization_id, &record.id, &j, now)
                        .await;
                }
                None
            }
            // A tool error is a completed task whose result says `isError: true`.
            None => Some((
                TaskStatus::Completed,
                Some(serde_json::to_value(&result).unwrap_or_default()),
                None,
            )),
        },
    };
    let Some((status, result, error)) = finished else {
        return Ok(GetTaskResult::new(detailed(&record)));
    };
    let (result, error) = (result.map(|v| v.to_string()), error.map(|v| v.to_string()));
    state
        .store
        .finish_task(
            &record.organization_id,
            &record.id,
            status,
            result.as_deref(),
            error.as_deref(),
            now,
        )
        .await
        .map_err(store_error)?;
    // Another replica may have ended it first (cancelled, say): report what is stored.
    let stored = owned_task(state, ctx, task_id, now).await?;
    Ok(GetTaskResult::new(detailed(&stored)))
}

/// Upstream cancels one caller may cause per hour; past them, a cancel only ends the task (the
/// export goes on and stays cached, so starting again joins it instead of spending quota).
pub const UPSTREAM_CANCELS_PER_HOUR: i64 = 3;

/// `tasks/cancel`: ends the task, and cancels its Clari export only when no one else waits for
/// it: no other working task on the same job, no other caller (on any replica, or the server's
/// own pre-warming) that asked for the same export while it was running, and this caller
/// within [`UPSTREAM_CANCELS_PER_HOUR`]. Cancelling an ended task changes nothing and is not an
/// error (MCP 2026-07-28 Tasks, "Cancelling Tasks").
pub async fn cancel(state: &AppState, ctx: &AuthContext, task_id: &str) -> Result<(), McpError> {
    let now = state.now();
    let task_id = &parse_task_id(task_id)?;
    let record = owned_task(state, ctx, task_id, now).await?;
    if record.status != TaskStatus::Working {
        return Ok(());
    }
    let ended = state
        .store
        .finish_task(
            &record.organization_id,
            &record.id,
            TaskStatus::Cancelled,
            None,
            None,
            now,
        )
        .await
        .map_err(store_error)?;
    let Some(job) = record.job_id.as_deref().filter(|_| ended) else {
        return Ok(());
    };
    let shared = state
        .store
        .tasks_sharing_job(&ctx.org_id, job, &record.id)
        .await
        .map_err(store_error)?;
    let others = state
        .store
        .others_waiting_on_job(&ctx.org_id, job, &owner(ctx), record.created_at)
        .await
        .map_err(store_error)?;
    if shared > 0 || others > 0 {
        tracing::info!(
            job,
            shared,
            others,
            "task cancelled; its export goes on for the others waiting"
        );
        return Ok(());
    }
    let hour = now - now.rem_euclid(3600);
    let spent = state
        .store
        .rate_hit(&format!("export-cancel:{}", owner(ctx)), hour)
        .await
        .map_err(store_error)?;
    if spent > UPSTREAM_CANCELS_PER_HOUR {
        tracing::info!(
            job,
            "task cancelled; this caller's upstream cancels for the hour are spent"
        );
        return Ok(());
    }
    if let (Ok(target), Ok(job_id)) = (
        crate::exports::pipeline::target(state, &ctx.org_id).await,
        JobId::parse(job),
    ) && let Err(e) = state.clari.cancel_job(&target, &job_id).await
    {
        // Already finished upstream, or Clari unreachable: the task is cancelled either way.
        tracing::info!(error = %e, job, "cancelling a task's Clari export did not go through");
    }
    Ok(())
}
