//! The rmcp `ServerHandler`: tools (filtered by the caller's scopes), resources and prompts. Each
//! request's caller comes from the `AuthContext` the bearer layer put into the HTTP request, which
//! rmcp passes along as `http::request::Parts`; nothing about the caller is kept in the handler.

use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::sync::Arc;
use tracing::Instrument as _;

use super::auth::AuthContext;
use super::tools;
use crate::http::RequestMeta;
use crate::scope::Scope;
use crate::state::AppState;

#[derive(Clone)]
pub struct ClariMcp {
    state: AppState,
    /// `clari-mcp stdio`: the API key this process acts as, checked again on every request (so
    /// revoking it or disabling the organisation stops the next call). `None` over HTTP, where
    /// the bearer layer has already authenticated the request.
    local: Option<Arc<SecretString>>,
}

impl ClariMcp {
    pub fn new(state: AppState) -> Self {
        Self { state, local: None }
    }

    /// A handler for one local user over stdio, acting as `api_key`.
    pub fn local(state: AppState, api_key: Arc<SecretString>) -> Self {
        Self {
            state,
            local: Some(api_key),
        }
    }

    /// The span of one MCP request, after the OpenTelemetry semantic conventions for MCP: named
    /// `{mcp.method.name} {target}`, with `mcp.method.name`, `gen_ai.tool.name` (tools),
    /// `jsonrpc.request.id` and `mcp.protocol.version`. Its parent is the trace context in the
    /// request's `_meta` when the client put one there (MCP 2026-07-28, `_meta` `traceparent`),
    /// else the HTTP request's span; over stdio it starts a trace of its own.
    fn mcp_span(
        &self,
        ctx: &RequestContext<RoleServer>,
        method: &str,
        target: Option<&str>,
    ) -> tracing::Span {
        let parent = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<crate::http::RequestSpan>())
            .and_then(|s| s.0.id());
        let span = tracing::info_span!(
            parent: parent,
            "mcp",
            otel.name = %SpanName(method, target),
            otel.kind = "server",
            mcp.method.name = %method,
            gen_ai.tool.name = tracing::field::Empty,
            gen_ai.operation.name = tracing::field::Empty,
            jsonrpc.request.id = %ctx.id,
            mcp.protocol.version = tracing::field::Empty,
            network.transport = if self.local.is_some() { "pipe" } else { "tcp" },
            trace_id = tracing::field::Empty,
        );
        if method == "tools/call"
            && let Some(tool) = target
        {
            span.record("gen_ai.tool.name", tool);
            span.record("gen_ai.operation.name", "execute_tool");
        }
        if let Some(v) = ctx.protocol_version() {
            span.record("mcp.protocol.version", tracing::field::display(v));
        }
        if !crate::telemetry::continue_from_meta(&span, &ctx.meta.0.0) {
            crate::telemetry::record_trace_id(&span);
        }
        span
    }

    /// Who is asking: over HTTP, the caller the bearer layer put into the request; over stdio,
    /// the local API key, authenticated afresh.
    async fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<AuthContext, McpError> {
        let Some(key) = &self.local else {
            return caller(ctx);
        };
        crate::bearer::authenticate(&self.state, key.expose_secret())
            .await
            .map_err(|e| match e {
                crate::bearer::AuthFailure::Refused(reason)
                | crate::bearer::AuthFailure::Dpop { reason, .. } => McpError::invalid_request(
                    format!("this local server may not answer: {reason}"),
                    None,
                ),
                crate::bearer::AuthFailure::Unavailable => {
                    McpError::internal_error("the local database is unavailable", None)
                }
            })
    }
}

impl ClariMcp {
    /// The request's id and client address, for the audit trail.
    fn request_meta(&self, ctx: &RequestContext<RoleServer>) -> RequestMeta {
        ctx.extensions
            .get::<axum::http::request::Parts>()
            .map(|p| RequestMeta::from_parts(p, self.state.config.trusted_proxies))
            .unwrap_or_default()
    }
}

fn caller(ctx: &RequestContext<RoleServer>) -> Result<AuthContext, McpError> {
    ctx.extensions
        .get::<axum::http::request::Parts>()
        .and_then(|p| p.extensions.get::<AuthContext>())
        .cloned()
        .ok_or_else(|| McpError::invalid_request("the request is not authenticated", None))
}

const INSTRUCTIONS: &str = "Read-only access to this organisation's Clari revenue data. Start with get_forecast (by manager, for a quarter as YYYY_QN), list_forecast_submissions (who changed the forecast when), get_pipeline_changes (which deals slipped), get_deal_risk and list_audit_events. Exports from Clari can take 5-30 s and only a few run at once: when a tool answers status \"running\" or \"queued\", call it again with the same arguments after retry_after_seconds. Every answer's text holds the full data as JSON after a one-line summary.";

const PROMPT_PREP: &str = "forecast_call_prep";
const PROMPT_REVIEW: &str = "weekly_pipeline_review";

// `enable_logging` is deprecated from 2026-07-28 but required by 2025-11-25 clients.
#[allow(deprecated)]
fn server_info() -> ServerConfig {
    ServerConfig::new(
        ServerCapabilities::builder()
            .enable_logging()
            .enable_tools()
            .enable_resources()
            .enable_prompts()
            .enable_tasks()
            .build(),
    )
    .with_server_info(Implementation::new("clari-mcp", env!("CARGO_PKG_VERSION")))
    .with_instructions(INSTRUCTIONS)
}

/// A span's name, `method` or `method target`, written only if a subscriber records the span
/// (with tracing off, a call formats nothing).
struct SpanName<'a>(&'a str, Option<&'a str>);

impl std::fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(target) => write!(f, "{} {target}", self.0),
            None => f.write_str(self.0),
        }
    }
}

impl ServerHandler for ClariMcp {
    /// Built once: rmcp asks for it on every request of a stateless session.
    fn get_info(&self) -> ServerConfig {
        static INFO: std::sync::OnceLock<ServerConfig> = std::sync::OnceLock::new();
        INFO.get_or_init(server_info).clone()
    }

    /// Accepted for clients that set a level; this server's tools send no log messages. Logging is
    /// deprecated from 2026-07-28 (SEP-2577) but part of 2025-11-25, which this server also speaks.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let span = self.mcp_span(&ctx, "tools/list", None);
        async move {
            let auth = self.caller(&ctx).await?;
            Ok(ListToolsResult::with_all_items(tools::list_for(
                &auth.scopes,
            )))
        }
        .instrument(span)
        .await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let span = self.mcp_span(&ctx, "tools/call", Some(request.name.as_ref()));
        // Boxed: rmcp holds this future inside its per-request task and moves that task's
        // state whole several times per request; a call's future (the gates, the tool, the
        // audit) made each of those moves kilobytes larger.
        Box::pin(
            async move {
                let auth = self.caller(&ctx).await?;
                #[cfg(feature = "conformance")]
                if let Some(r) = super::conformance::call(&request.name, &ctx).await {
                    return Ok(r.into());
                }
                let args = request.arguments.unwrap_or_default();
                let meta = self.request_meta(&ctx);
                let tasks_declared = ctx
                    .client_capabilities()
                    .is_some_and(|c| c.supports_tasks());
                #[cfg(feature = "conformance")]
                if let Some(r) = super::conformance::call_task_fixture(
                    &self.state,
                    &auth,
                    &request.name,
                    &args,
                    tasks_declared,
                )
                .await
                {
                    return r;
                }
                let token = tools::waits_for_exports(&request.name)
                    .then(|| ctx.meta.get_progress_token())
                    .flatten();
                let longest = super::progress::longest_wait(&args, tasks_declared);
                // A call that asked for no progress awaits its work in place; one that did boxes
                // the reporting (its timer, its `select!` and a second copy of the work) around it.
                // rmcp moves this future whole at each of its layers: with the reporting inline it
                // was 10,096 bytes, now 2,744.
                let work = super::tasks::call_tool(
                    &self.state,
                    &auth,
                    &meta,
                    &request.name,
                    args,
                    tasks_declared,
                );
                let answer = match token {
                    None => work.await,
                    Some(token) => {
                        Box::pin(super::progress::reporting(&ctx.peer, token, longest, work)).await
                    }
                };
                match answer {
                    Some(response) => Ok(response),
                    None => Err(McpError::invalid_params(
                        format!(
                            "unknown tool '{}'; tools/list shows the available tools",
                            request.name
                        ),
                        None,
                    )),
                }
            }
            .instrument(span),
        )
        .await
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        let span = self.mcp_span(&ctx, "tasks/get", None);
        // Boxed, as `call_tool` is: it may run the tool again.
        Box::pin(
            async move {
                let auth = self.caller(&ctx).await?;
                let meta = self.request_meta(&ctx);
                super::tasks::get(&self.state, &auth, &meta, &request.task_id).await
            }
            .instrument(span),
        )
        .await
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let span = self.mcp_span(&ctx, "tasks/cancel", None);
        async move {
            let auth = self.caller(&ctx).await?;
            super::tasks::cancel(&self.state, &auth, &request.task_id).await
        }
        .instrument(span)
        .await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let span = self.mcp_span(&ctx, "resources/list", None);
        async move {
            let auth = self.caller(&ctx).await?;
            let mut items = Vec::new();
            if auth.scopes.allows(Scope::ForecastsRead) {
                items.push(
                    Resource::new("clari://forecast/current", "Current forecast")
                        .with_description(
                            "The default forecast for the current quarter, by manager",
                        )
                        .with_mime_type("application/json"),
                );
            }
            if auth.scopes.allows(Scope::UsersRead) {
                items.push(
                    Resource::new("clari://users", "Forecast hierarchy")
                        .with_description("Users, roles and managers of the forecast hierarchy")
                        .with_mime_type("application/json"),
                );
            }
            items.extend(super::apps::list(&auth.scopes));
            #[cfg(feature = "conformance")]
            items.extend(super::conformance::resources());
            Ok(ListResourcesResult::with_all_items(items))
        }
        .instrument(span)
        .await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let span = self.mcp_span(&ctx, "resources/templates/list", None);
        async move {
            let auth = self.caller(&ctx).await?;
            let mut items = Vec::new();
            if auth.scopes.allows(Scope::ForecastsRead) {
                items.push(
                    ResourceTemplate::new(
                        "clari://forecast/{forecast_id}/{time_period}",
                        "Forecast for a quarter",
                    )
                    .with_description(
                        "A forecast tab (e.g. forecast) for a fiscal quarter (YYYY_QN)",
                    )
                    .with_mime_type("application/json"),
                );
            }
            #[cfg(feature = "conformance")]
            items.extend(super::conformance::templates());
            Ok(ListResourceTemplatesResult::with_all_items(items))
        }
        .instrument(span)
        .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let span = self.mcp_span(&ctx, "resources/read", Some(request.uri.as_str()));
        async move {
            let auth = self.caller(&ctx).await?;
            #[cfg(feature = "conformance")]
            if let Some(r) = super::conformance::read(&request.uri) {
                return Ok(r.into());
            }
            match super::apps::read(&request.uri, &auth.scopes) {
                Some(Ok(view)) => return Ok(ReadResourceResult::new(vec![view]).into()),
                Some(Err(scope)) => {
                    return Err(McpError::invalid_request(
                        format!("reading {} needs the {} scope", request.uri, scope.as_str()),
                        None,
                    ));
                }
                None => {}
            }
            let uri = request.uri.clone();
            let (tool, args): (&str, Value) = if uri == "clari://forecast/current" {
                ("get_forecast", json!({}))
            } else if uri == "clari://users" {
                ("list_users", json!({"limit": 200}))
            } else if let Some(rest) = uri.strip_prefix("clari://forecast/") {
                let Some((forecast_id, period)) = rest.split_once('/') else {
                    return Err(McpError::resource_not_found(
                        format!("unknown resource {uri}"),
                        None,
                    ));
                };
                (
                    "get_forecast",
                    json!({"forecast_id": forecast_id, "time_period": period}),
                )
            } else {
                return Err(McpError::resource_not_found(
                    format!("unknown resource {uri}"),
                    None,
                ));
            };
            let args = args.as_object().cloned().unwrap_or_default();
            let meta = self.request_meta(&ctx);
            let result = tools::call(&self.state, &auth, &meta, tool, args)
                .await
                .expect("known tool");
            let text = match (&result.structured_content, result.is_error) {
                (Some(v), _) => serde_json::to_string_pretty(v).unwrap_or_default(),
                (None, _) => result
                    .content
                    .iter()
                    .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                    .collect::<Vec<_>>()
                    .join("\n"),
            };
            if result.is_error == Some(true) {
                return Err(McpError::invalid_request(text, None));
            }
            Ok(ReadResourceResult::new(vec![
                ResourceContents::text(text, uri).with_mime_type("application/json"),
            ])
            .into())
        }
        .instrument(span)
        .await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let span = self.mcp_span(&ctx, "prompts/list", None);
        async move {
            let arg = |name: &str, description: &str| {
                let mut a = PromptArgument::new(name);
                a.description = Some(description.into());
                a.required = Some(false);
                a
            };
            #[allow(unused_mut)]
            let mut list = vec![
                Prompt::new(
                    PROMPT_PREP,
                    Some(
                        "Prepare a forecast call: the current forecast, risky deals and last week's changes",
                    ),
                    Some(vec![
                        arg(
                            "manager",
                            "Whose team (name, e-mail or user id); default the whole hierarchy",
                        ),
                        arg("time_period", "Quarter as YYYY_QN; default the current one"),
                    ]),
                ),
                Prompt::new(
                    PROMPT_REVIEW,
                    Some("Review what moved in the pipeline since a date"),
                    Some(vec![arg(
                        "since",
                        "Start date, YYYY-MM-DD; default 7 days ago",
                    )]),
                ),
            ];
            #[cfg(feature = "conformance")]
            list.extend(super::conformance::prompts());
            Ok(ListPromptsResult::with_all_items(list))

        }
        .instrument(span)
        .await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let span = self.mcp_span(&ctx, "prompts/get", Some(request.name.as_str()));
        async move {
            let args = request.arguments.unwrap_or_default();
            #[cfg(feature = "conformance")]
            if let Some(r) = super::conformance::get_prompt(&request.name, &args) {
                return Ok(r.into());
            }
            let get = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_owned);
            let text = match request.name.as_str() {
                PROMPT_PREP => {
                    let team = get("manager")
                        .map(|m| format!(" for {m}'s team"))
                        .unwrap_or_default();
                    let quarter = get("time_period")
                        .map(|p| format!(" in {p}"))
                        .unwrap_or_else(|| " this quarter".into());
                    format!(
                        "Prepare me for a forecast call{team}{quarter}.\n1. Call get_forecast{} and summarise Commit, Best Case and Closed Won against quota, manager by manager.\n2. Call get_pipeline_changes for the last 7 days and list deals whose close date slipped or whose amount fell.\n3. Call get_deal_risk on those deals and flag scores below 40.\n4. Call list_forecast_submissions for the last 7 days and note who changed their call and by how much.\nEnd with three questions I should ask on the call.",
                        match (get("manager"), get("time_period")) {
                            (Some(m), Some(p)) => format!(" (manager \"{m}\", time_period \"{p}\")"),
                            (Some(m), None) => format!(" (manager \"{m}\")"),
                            (None, Some(p)) => format!(" (time_period \"{p}\")"),
                            (None, None) => String::new(),
                        }
                    )
                }
                PROMPT_REVIEW => {
                    let since = get("since").unwrap_or_else(|| "7 days ago".into());
                    format!(
                        "Review what moved in the pipeline since {since}.\n1. Call get_pipeline_changes with since set to that date and group the changes into slipped close dates, stage moves, amount changes and owner changes.\n2. For the five largest changes call get_opportunity to see their history.\n3. Call list_forecast_submissions for the same window and relate forecast changes to the deals that moved.\nSummarise in a short table and a paragraph of what to watch."
                    )
                }
                other => {
                    return Err(McpError::invalid_params(
                        format!("unknown prompt '{other}'"),
                        None,
                    ));
                }
            };
            Ok(GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]).into())

        }
        .instrument(span)
        .await
    }
}
