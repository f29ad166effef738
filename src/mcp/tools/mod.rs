//! The MCP tools: read-only, scope-gated, compact by default (`limit` and `cursor`).
//!
//! One registry ([`REGISTRY`]) holds every tool: name, title, description, scope, argument type,
//! output type and handler, all from one [`Tool`] implementation. The advertised schemas are
//! generated from the same types that produce the values, so every answer validates against its
//! tool's `outputSchema` in every state (ready, queued, running). Failures are tool results with
//! `isError: true` that say what happened and what to do; a bad argument is named.

mod activity;
mod audit;
mod call;
mod deals;
mod exports;
mod forecast;
mod opportunities;
mod periods;
mod population;
pub use call::{TASK_POLL, call, caller_actor, with_caller};
pub mod render;
pub mod schema;
mod users;
mod window;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use rmcp::model::{CallToolResult, JsonObject, ToolAnnotations};
use rmcp::schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clari::{ClariError, IdError};
use crate::principal::AuthContext;
use crate::scope::{Scope, ScopeSet};
use crate::state::AppState;
use render::Summary;

pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 200;
/// Seconds a call waits for an export unless told otherwise: under the 5 s timeout common MCP
/// clients give a call, so a slow export answers `running` or `queued` instead of timing out.
pub const DEFAULT_WAIT: u64 = 4;
pub const MAX_WAIT: u64 = 50;

/// A failure shown to the agent: what happened, and what to do.
#[derive(Debug)]
pub struct ToolError {
    pub message: String,
    pub hint: String,
    /// What kind of failure, for the audit trail and metrics (`argument`, `clari_…`, `tool`).
    pub class: &'static str,
}

impl ToolError {
    pub fn arg(name: &str, reason: impl std::fmt::Display) -> Self {
        Self {
            message: format!("Invalid argument `{name}`: {reason}."),
            hint: "Correct the argument and call the tool again.".into(),
            class: "argument",
        }
    }
}

impl From<IdError> for ToolError {
    fn from(e: IdError) -> Self {
        Self::arg(e.argument, e.reason)
    }
}

impl From<ClariError> for ToolError {
    fn from(e: ClariError) -> Self {
        match &e {
            ClariError::InvalidArgument { argument, reason } => Self::arg(argument, reason),
            _ => Self {
                message: format!("{}.", capitalize(&e.to_string())),
                hint: e.hint().into(),
                class: e.class(),
            },
        }
    }
}

/// Charges a call that will make `requests` requests to Clari to its caller's budget
/// (`CLARI_MCP_CLARI_REQUESTS_PER_MINUTE`, per application or API key, shared by every
/// replica), or refuses it with when to try again. A refused call counts too, so a caller that
/// keeps asking stays refused until the minute ends; its counter is one row whatever it sends.
pub(crate) async fn spend_clari_requests(
    state: &AppState,
    ctx: &AuthContext,
    requests: u64,
) -> Result<(), ToolError> {
    let budget = i64::from(state.config.clari_requests_per_minute);
    let now = state.now();
    let window = now - now.rem_euclid(60);
    let bucket = format!("clari:{}", crate::mcp::tasks::owner(ctx));
    let n = i64::try_from(requests).unwrap_or(i64::MAX);
    let spent = state
        .store
        .rate_add(&bucket, window, n)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "counting Clari requests failed");
            ToolError::from(ClariError::StoreUnavailable)
        })?;
    if spent > budget {
        let wait = window + 60 - now;
        return Err(ToolError {
            message: format!(
                "Too many Clari requests: this call needs {requests}, and this application may cause {budget} a minute."
            ),
            hint: format!(
                "Try again in {wait} s, with fewer ids at a time (each 100 distinct ids are one request)."
            ),
            class: "throttled",
        });
    }
    Ok(())
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One tool: everything the registry needs, from one type.
pub trait Tool: Send + Sync + 'static {
    const NAME: &'static str;
    const TITLE: &'static str;
    const DESCRIPTION: &'static str;
    const SCOPE: Scope;
    type Args: DeserializeOwned + JsonSchema + Send;
    type Output: Serialize + JsonSchema + Summary + Send;

    fn run(
        state: &AppState,
        ctx: &AuthContext,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, ToolError>> + Send;
}

/// A handler's answer, and the class of its error when it failed.
type Answer = (CallToolResult, Option<&'static str>);

/// A tool's handler: the state, the caller, the arguments, and their keyed digest (the audit
/// trail's, a fixed size whatever the arguments: with the tool's name, the key of the answers
/// kept with an export, [`render::Keeping`]).
type Handler =
    for<'a> fn(&'a AppState, &'a AuthContext, JsonObject, &'a str) -> BoxFuture<'a, Answer>;

/// A registered tool: its advertised definition (schemas generated once) and its handler.
pub struct Entry {
    pub name: &'static str,
    pub scope: Scope,
    pub tool: rmcp::model::Tool,
    handler: Handler,
}

fn handle<'a, T: Tool>(
    state: &'a AppState,
    ctx: &'a AuthContext,
    args: JsonObject,
    digest: &'a str,
) -> BoxFuture<'a, Answer> {
    Box::pin(async move {
        let (result, mut keeping) = render::Keeping::run(T::NAME, digest, async {
            match parse::<T::Args>(args) {
                Ok(args) => T::run(state, ctx, args).await,
                Err(e) => Err(e),
            }
        })
        .await;
        match result {
            Ok(out) => match keeping.found.take() {
                Some(kept) => (kept, None),
                None => {
                    let answer = render::answer(T::NAME, &out);
                    keeping.keep(&answer);
                    (answer, None)
                }
            },
            Err(e) => {
                log_tool_error(T::NAME, &e);
                (render::failure(&e), Some(e.class))
            }
        }
    })
}

/// Logs a tool error. The message may quote the caller's arguments, so it is logged with `?`
/// (escaped): a newline in an argument cannot forge a log line.
fn log_tool_error(tool: &str, e: &ToolError) {
    tracing::info!(tool, error = ?e.message, "tool error");
}

fn entry<T: Tool>() -> Entry {
    let tool = rmcp::model::Tool::new(
        T::NAME,
        T::DESCRIPTION,
        Arc::new(schema::schema_for::<T::Args>()),
    )
    .with_title(T::TITLE)
    .with_raw_output_schema(Arc::new(schema::schema_for::<T::Output>()))
    .with_annotations(
        ToolAnnotations::new()
            .read_only(true)
            .destructive(false)
            .idempotent(true)
            .open_world(true),
    );
    let tool = match crate::mcp::apps::tool_meta(T::NAME) {
        Some(meta) => tool.with_meta(meta),
        None => tool,
    };
    Entry {
        name: T::NAME,
        scope: T::SCOPE,
        tool,
        handler: handle::<T>,
    }
}

/// Every tool, in the order `tools/list` shows them. Adding a tool: implement [`Tool`] and add
/// one line here (and describe it in README.md).
pub static REGISTRY: LazyLock<Vec<Entry>> = LazyLock::new(|| {
    vec![
        entry::<forecast::GetForecast>(),
        entry::<forecast::ListForecastSubmissions>(),
        entry::<periods::ListTimePeriods>(),
        entry::<users::ListUsers>(),
        entry::<deals::SearchDeals>(),
        entry::<opportunities::GetDealRisk>(),
        entry::<opportunities::GetOpportunity>(),
        entry::<activity::ListOpportunities>(),
        entry::<activity::ListAccounts>(),
        entry::<opportunities::GetPipelineChanges>(),
        entry::<audit::ListAuditEvents>(),
        entry::<exports::ListExportJobs>(),
        entry::<exports::GetExportJob>(),
        entry::<exports::GetAdminLimits>(),
    ]
});

fn find(name: &str) -> Option<&'static Entry> {
    REGISTRY.iter().find(|e| e.name == name)
}

/// Whether a tool waits for a Clari export (it takes `wait_seconds`), so it can run as a task.
pub fn waits_for_exports(name: &str) -> bool {
    find(name).is_some_and(|e| {
        e.tool
            .input_schema
            .get("properties")
            .and_then(|p| p.get("wait_seconds"))
            .is_some()
    })
}

/// The scope a tool needs; `None` for names that are not tools.
pub fn required_scope(name: &str) -> Option<Scope> {
    find(name).map(|e| e.scope)
}

/// The tools a caller with these scopes may call.
pub fn list_for(scopes: &ScopeSet) -> Vec<rmcp::model::Tool> {
    REGISTRY
        .iter()
        .filter(|e| scopes.allows(e.scope))
        .map(|e| e.tool.clone())
        .collect()
}

pub fn all_tools() -> Vec<rmcp::model::Tool> {
    REGISTRY.iter().map(|e| e.tool.clone()).collect()
}

// --- arguments shared by several tools --------------------------------------------------------

fn parse<T: DeserializeOwned>(args: JsonObject) -> Result<T, ToolError> {
    let value = serde_json::Value::Object(args);
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

fn limit(l: Option<u32>) -> Result<usize, ToolError> {
    match l {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(ToolError::arg("limit", "must be at least 1")),
        Some(n) => Ok((n as usize).min(MAX_LIMIT)),
    }
}

/// The offset a `cursor` of ours stands for; at most `max`.
fn cursor(c: Option<&str>, max: usize) -> Result<usize, ToolError> {
    match c {
        None => Ok(0),
        Some(c) => c
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                ToolError::arg(
                    "cursor",
                    "it is not a cursor this server issued; use the next_cursor value of a previous answer",
                )
            }),
    }
}

fn wait(w: Option<u64>) -> Duration {
    Duration::from_secs(w.unwrap_or(DEFAULT_WAIT).min(MAX_WAIT))
}

/// One page of `items` from `offset`, and the cursor of the next page.
fn page<T: Clone>(items: &[T], offset: usize, limit: usize) -> (Vec<T>, Option<String>) {
    let slice: Vec<T> = items.iter().skip(offset).take(limit).cloned().collect();
    let end = offset.saturating_add(limit);
    let next = (end < items.len()).then(|| end.to_string());
    (slice, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn every_tool_has_schemas_a_scope_and_read_only_annotations() {
        let tools = all_tools();
        assert_eq!(tools.len(), 14);
        let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 14, "names are unique");
        for t in &tools {
            assert_eq!(
                t.input_schema.get("type").and_then(Value::as_str),
                Some("object"),
                "{}",
                t.name
            );
            let out = t.output_schema.as_ref().expect("output schema");
            assert_eq!(out.get("type").and_then(Value::as_str), Some("object"));
            assert_eq!(
                t.annotations.as_ref().and_then(|a| a.read_only_hint),
                Some(true)
            );
            assert!(required_scope(&t.name).is_some());
        }
    }

    #[test]
    fn schemas_use_objects_for_every_property_and_standard_formats_only() {
        fn walk(v: &Value, path: &str) {
            if let Value::Object(m) = v {
                if let Some(Value::Object(props)) = m.get("properties") {
                    for (k, p) in props {
                        assert!(p.is_object(), "{path}.{k} is {p}");
                    }
                }
                if let Some(f) = m.get("format").and_then(Value::as_str) {
                    assert!(
                        ["date-time", "date", "uri", "email"].contains(&f),
                        "{path}: format {f}"
                    );
                }
                assert!(m.get("$ref").is_none(), "{path}: $ref");
                for (k, c) in m {
                    walk(c, &format!("{path}.{k}"));
                }
            } else if let Value::Array(items) = v {
                for i in items {
                    walk(i, path);
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
        let e = parse::<forecast::GetForecastArgs>(
            serde_json::from_value(json!({"limit": "ten"})).unwrap(),
        )
        .unwrap_err();
        assert!(e.message.contains("`limit`"), "{}", e.message);
        let e = parse::<forecast::GetForecastArgs>(
            serde_json::from_value(json!({"quarter": "2026_Q3"})).unwrap(),
        )
        .unwrap_err();
        assert!(e.message.contains("quarter"), "{}", e.message);
        let e = parse::<opportunities::DealRiskArgs>(JsonObject::new()).unwrap_err();
        assert!(e.message.contains("opportunity_ids"), "{}", e.message);
    }

    #[test]
    fn caller_text_cannot_forge_log_lines() {
        #[derive(Clone, Default)]
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let e = ToolError::arg(
                "manager",
                "no user matches 'x\n2026-01-01T00:00:00Z  INFO forged: admin signed in'",
            );
            log_tool_error("get_forecast", &e);
        });
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "one event, one line: {out}");
        assert!(out.contains("\\n"), "the newline is escaped: {out}");
    }

    #[test]
    fn cursors_are_bounded_and_pages_cannot_overflow() {
        assert_eq!(cursor(Some("25"), 100).unwrap(), 25);
        assert!(
            cursor(Some("101"), 100)
                .unwrap_err()
                .message
                .contains("`cursor`")
        );
        assert!(cursor(Some("-1"), 100).is_err());
        let (items, next) = page(&[1, 2, 3], usize::MAX - 1, 200);
        assert!(items.is_empty() && next.is_none());
    }
}
