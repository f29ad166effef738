//! One tool call, step by step: the gates that may refuse it before any work (the token's scope,
//! the audit trail recording, the organisation's redaction policy readable), the work itself
//! (with the export cache's bookkeeping), the redaction of the answer, and its recording
//! (metrics and the audit event).

use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject};

use super::{Entry, ToolError, find, render};
use crate::audit::{Actor, Event};
use crate::exports::{CACHE_USE, CacheUse};
use crate::http::RequestMeta;
use crate::principal::{AuthContext, Subject};
use crate::redact::{RedactionPolicy, Redactor};
use crate::state::AppState;

/// Error classes that refuse a call before or instead of doing its work: their audit events
/// are summarised per caller and window ([`crate::audit::refusals`]), not written each.
const REFUSALS: [&str; 4] = [
    "scope",
    "throttled",
    "audit_unavailable",
    "redaction_unavailable",
];

/// What one call was: its tool, caller, arguments' digest and when it started.
struct Call<'a> {
    state: &'a AppState,
    ctx: &'a AuthContext,
    meta: &'a RequestMeta,
    entry: &'static Entry,
    digest: String,
    started: Instant,
}

/// Runs a tool for a caller: `None` when no tool has that name.
pub async fn call(
    state: &AppState,
    ctx: &AuthContext,
    meta: &RequestMeta,
    name: &str,
    args: JsonObject,
) -> Option<CallToolResult> {
    let entry = find(name)?;
    let canonical = serde_json::to_string(&args).expect("JSON values serialise");
    let call = Call {
        state,
        ctx,
        meta,
        entry,
        digest: state.audit.digest_args(&ctx.org_id, &canonical),
        started: Instant::now(),
    };
    let policy = match gate(&call).await {
        Ok(policy) => policy,
        Err(refusal) => return Some(call.refused(&refusal).await),
    };
    let (answer, cache) = crate::exports::pipeline::EXPORT_OWNER
        .scope(
            crate::mcp::tasks::owner(ctx),
            CACHE_USE.scope(Cell::new(CacheUse::default()), async {
                let answer = (entry.handler)(state, ctx, args, &call.digest).await;
                (answer, CACHE_USE.with(Cell::get))
            }),
        )
        .await;
    let (mut result, error) = answer;
    let redactions = redact_answer(&call, &policy, &mut result);
    call.record(&result, error, cache, redactions).await;
    Some(result)
}

/// The gates, in order: the token's scope, the audit trail recording (a call that cannot be
/// recorded is not run), the organisation's redaction policy readable. The policy when all
/// pass.
async fn gate(call: &Call<'_>) -> Result<Arc<Redactor>, ToolError> {
    let entry = call.entry;
    if !call.ctx.scopes.allows(entry.scope) {
        return Err(ToolError {
            message: format!("This token lacks the {} scope.", entry.scope),
            hint: "Reconnect and approve that access.".into(),
            class: "scope",
        });
    }
    if !call.state.audit.may_proceed() {
        tracing::error!(
            tool = entry.name,
            "tool call refused: the audit trail is not recording"
        );
        return Err(ToolError {
            message:
                "This call cannot be recorded in the audit trail right now, so it was not run."
                    .into(),
            hint: "Try again in a minute; if it persists, tell the operator.".into(),
            class: "audit_unavailable",
        });
    }
    redactor(call.state, call.ctx).await
}

impl Call<'_> {
    /// A call refused at a gate: its answer, counted and recorded as a refusal.
    async fn refused(&self, refusal: &ToolError) -> CallToolResult {
        let result = render::failure(refusal);
        self.state.metrics.tool_call(
            self.entry.name,
            Some(refusal.class),
            self.started.elapsed().as_secs_f64(),
            render::answer_bytes(&result),
        );
        let event = self.event(&result, Some(refusal.class), CacheUse::default());
        self.state
            .audit
            .record_refusal(self.state.store.as_ref(), event, refusal.class)
            .await;
        result
    }

    /// A call that ran: its metrics (latency, size, cache use, redactions) and its audit event
    /// (a refusal from inside the tool, such as throttling, is summarised like the gates').
    async fn record(
        &self,
        result: &CallToolResult,
        error: Option<&'static str>,
        cache: CacheUse,
        redactions: u64,
    ) {
        let metrics = &self.state.metrics;
        if redactions > 0 {
            metrics
                .tool_redactions
                .get_or_create(&crate::metrics::ToolLabel {
                    tool: self.entry.name.to_owned(),
                })
                .inc_by(redactions);
        }
        metrics.prewarm_hits.inc_by(u64::from(cache.prewarmed));
        for (label, n) in [
            ("hit", cache.hits),
            ("joined", cache.joined),
            ("miss", cache.misses),
        ] {
            for _ in 0..n {
                metrics.export_lookup(label);
            }
        }
        metrics.tool_call(
            self.entry.name,
            error,
            self.started.elapsed().as_secs_f64(),
            render::answer_bytes(result),
        );
        let event = self
            .event(result, error, cache)
            .detail("redactions", redactions);
        match error {
            Some(class) if REFUSALS.contains(&class) => {
                self.state
                    .audit
                    .record_refusal(self.state.store.as_ref(), event, class)
                    .await;
            }
            _ => self.state.audit.record(event),
        }
    }

    /// The audit event of the call.
    fn event(
        &self,
        result: &CallToolResult,
        error: Option<&'static str>,
        cache: CacheUse,
    ) -> Event {
        let bytes = render::answer_bytes(result);
        let (request_id, client_ip) = self.meta.parts();
        let tool = self.entry.name;
        let event = with_caller(
            Event::new(Some(&self.ctx.org_id), caller_actor(self.ctx), "tool.call"),
            self.ctx,
        )
        .target(tool)
        .outcome(if error.is_some() {
            "failure"
        } else {
            "success"
        })
        .from_request(request_id, client_ip)
        .detail("tool", tool)
        .detail("args_digest", self.digest.as_str())
        .detail("error_class", error)
        .detail("latency_ms", self.started.elapsed().as_millis() as u64)
        .detail("result_bytes", bytes)
        .detail("estimated_tokens", bytes.div_ceil(4))
        .detail("cache", cache.label());
        match TASK_POLL.try_with(Clone::clone) {
            Ok(task) => event.detail("task_id", task),
            Err(_) => event,
        }
    }
}

/// Redacts an answer under the organisation's policy (pseudonyms keyed per organisation);
/// how many values were replaced.
fn redact_answer(call: &Call<'_>, policy: &Redactor, result: &mut CallToolResult) -> u64 {
    if policy.is_off() {
        return 0;
    }
    let org = call.ctx.org_id.as_str();
    let pseudonym = |v: &str| call.state.audit.keys().pseudonym(org, v);
    redact(policy, result, &pseudonym)
}

/// The organisation's redaction policy, checked on every call (a change of policy is a security
/// control: it applies to the next call on every replica, through `store::changes`) and
/// compiled once per distinct policy. A policy that cannot be read refuses the call: an answer must not leave unredacted
/// because a setting was unreadable.
async fn redactor(state: &AppState, ctx: &AuthContext) -> Result<Arc<Redactor>, ToolError> {
    let org = &ctx.org_id;
    let refuse = |why: String| {
        tracing::error!(org_id = %org, error = %why, "the redaction policy cannot be applied");
        ToolError {
            message: "The organisation's redaction policy cannot be applied right now, so nothing was answered.".into(),
            hint: "Try again in a minute; if it persists, tell the operator.".into(),
            class: "redaction_unavailable",
        }
    };
    let (key, policy) = match state
        .org_setting_checked(org, crate::state::OrgSetting::Redaction, ctx.checked)
        .await
    {
        Ok(Some(json)) => {
            let policy = serde_json::from_str::<RedactionPolicy>(&json)
                .map_err(|e| refuse(format!("stored policy unreadable: {e}")))?;
            (json, policy)
        }
        Ok(None) => (
            "server default".to_owned(),
            RedactionPolicy {
                kinds: state.config.redact.clone(),
                custom: Vec::new(),
            },
        ),
        Err(e) => return Err(refuse(e.to_string())),
    };
    state
        .redaction
        .compiled(&key, &policy)
        .map_err(|e| refuse(e.to_string()))
}

/// Redacts an answer: the structured content's value tree once (keys and values, strings and
/// numbers), then the text rendered from that same tree, so a host that reads only one half
/// sees exactly what a host that reads the other sees. The text's first line (the summary for
/// people) is redacted as text. Returns how many values were replaced.
fn redact(r: &Redactor, result: &mut CallToolResult, pseudonym: &dyn Fn(&str) -> String) -> u64 {
    let mut n = 0;
    if let Some(s) = &mut result.structured_content {
        n += r.json(s, pseudonym);
    }
    for block in &mut result.content {
        if let ContentBlock::Text(t) = block {
            // An answer with structured content is "summary\n{that content}" (render::answer
            // makes both): the second line is rendered from the redacted tree, not scanned again.
            let rendered = result.structured_content.as_ref().and_then(|after| {
                t.text.split_once('\n').map(|(summary, _)| {
                    let (summary, k) = r.text(summary, pseudonym);
                    (format!("{summary}\n{after}"), k)
                })
            });
            match rendered {
                Some((text, k)) => {
                    n += k;
                    t.text = text;
                }
                None => {
                    let (out, k) = r.text(&t.text, pseudonym);
                    if k > 0 {
                        t.text = out;
                        n += k;
                    }
                }
            }
        }
    }
    n
}

tokio::task_local! {
    /// The task a call is made for, when `tasks/get` runs it again (the audit trail says so).
    pub static TASK_POLL: String;
}

/// Who is calling: the person (through an OAuth client or an API key), or a machine client
/// acting as the organisation's service identity.
pub fn caller_actor(ctx: &AuthContext) -> Actor {
    match (&ctx.subject, &ctx.user_id) {
        (Subject::Service { client_id, name }, _) => {
            Actor::new("service", client_id.as_str(), Some(name.clone()))
        }
        (_, Some(user)) => Actor::new("user", user.as_str(), None),
        (_, None) => Actor::new("user", "", None),
    }
}

/// Adds what the person called through: the client and grant, or the API key.
pub fn with_caller(event: Event, ctx: &AuthContext) -> Event {
    match &ctx.subject {
        Subject::Grant {
            grant_id,
            client_id,
        } => event
            .detail("client_id", client_id.as_str())
            .detail("grant_id", grant_id.as_str()),
        Subject::ApiKey { key_id } => event.detail("api_key_id", key_id.as_str()),
        Subject::Service { client_id, .. } => event.detail("client_id", client_id.as_str()),
    }
}
