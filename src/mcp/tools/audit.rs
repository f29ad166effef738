//! `list_audit_events`: Clari's audit log (30 days at most), newest first, with actor names.

use std::collections::{BTreeMap, HashMap};

use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::render::{Summary, exact, next_page, plural};
use super::window::{Span, Window, org_zone};
use super::{Tool, ToolError, cursor, limit};
use crate::clari::ClariError;
use crate::clari::types::AuditQuery;
use crate::clock::rfc3339;
use crate::exports::pipeline;
use crate::principal::AuthContext;
use crate::scope::Scope;
use crate::state::AppState;

/// The deepest a cursor may reach into the log: paging further means narrowing the window.
pub const MAX_AUDIT_OFFSET: usize = 5_000;

pub struct ListAuditEvents;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditArgs {
    /// First day, YYYY-MM-DD (a whole day in the organisation's time zone), or an RFC 3339
    /// time (default: 7 days before today; Clari keeps 30 days).
    pub since: Option<String>,
    /// Last day, YYYY-MM-DD, inclusive, or an RFC 3339 time (default: today).
    pub until: Option<String>,
    /// Only this event. Clari does not publish its list of names; every answer lists the names
    /// among the events it read (`event_names`), so call once without this to see them.
    #[schemars(extend("examples" = ["forecast.submitted", "user.login", "api.accessed"]))]
    pub event: Option<String>,
    /// Only this actor (numeric Clari user id).
    pub actor_id: Option<i64>,
    /// Most events in the answer (default 25, at most 200).
    pub limit: Option<u32>,
    /// The `next_cursor` of a previous answer.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditRow {
    #[schemars(extend("format" = "date-time"))]
    pub at: String,
    pub event: String,
    pub actor_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_email: Option<String>,
    pub actor_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_type: Option<String>,
    /// The event's own parameters, as Clari recorded them.
    pub parameters: Value,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditOut {
    #[serde(flatten)]
    pub span: Window,
    /// The filters as applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<i64>,
    /// Newest first.
    pub events: Vec<AuditRow>,
    /// Matching events in the window in all, when Clari's log was read to its end (it is
    /// read up to 1,000 events, or further when a cursor reaches beyond).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<usize>,
    /// Event names among the events read, with how many of each: the values `event` takes.
    pub event_names: BTreeMap<String, usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl Summary for AuditOut {
    fn summary(&self, _tool: &str) -> String {
        format!(
            "{} audit event{} {}{}, newest first; showing {}. Event names: {}.{}",
            self.total
                .map(|t| t.to_string())
                .unwrap_or_else(|| "More than 1,000".into()),
            plural(self.total.unwrap_or(2), "", "s"),
            self.span.text,
            match (&self.event, self.actor_id) {
                (Some(e), Some(a)) => format!(" named {e} by actor {a}"),
                (Some(e), None) => format!(" named {e}"),
                (None, Some(a)) => format!(" by actor {a}"),
                (None, None) => String::new(),
            },
            self.events.len(),
            if self.event_names.is_empty() {
                "none".to_owned()
            } else {
                self.event_names
                    .iter()
                    .map(|(n, c)| format!("{n} ({c})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            next_page(&self.next_cursor)
        )
    }
}

impl Tool for ListAuditEvents {
    const NAME: &'static str = "list_audit_events";
    const TITLE: &'static str = "Audit events";
    const DESCRIPTION: &'static str = "Clari audit events (last 30 days at most) with actor names, filterable by event and actor.";
    const SCOPE: Scope = Scope::AuditRead;
    type Args = AuditArgs;
    type Output = AuditOut;

    async fn run(state: &AppState, ctx: &AuthContext, a: AuditArgs) -> Result<AuditOut, ToolError> {
        let now = state.now();
        let tz = org_zone(state, &ctx.org_id).await?;
        let span = Span::resolve(a.since.as_deref(), a.until.as_deref(), now, 7, tz)?;
        let (since, until) = (span.start, (span.end - 1).min(now));
        let limit = limit(a.limit)?;
        let offset = cursor(a.cursor.as_deref(), MAX_AUDIT_OFFSET)?;
        // One Clari page of 1,000 at least, so the total and the event names are usually whole.
        let read = (offset + limit + 1).max(1000);
        let query = AuditQuery {
            limit: Some(1000),
            actor_id: a.actor_id,
            date_from: Some(rfc3339(since)),
            date_to: Some(rfc3339(until)),
            event: a.event.clone(),
            ..Default::default()
        };
        let target = pipeline::target(state, &ctx.org_id).await?;
        let log = state
            .clari
            .audit_events_all(&target, &query, now, read)
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
        drop(target);
        let names: HashMap<&str, (&Option<String>, &Option<String>)> = log
            .actors
            .iter()
            .map(|a| (a.actor_id.as_str(), (&a.name, &a.email)))
            .collect();
        let mut rows: Vec<AuditRow> = log
            .items
            .iter()
            .map(|e| {
                let (name, email) = names
                    .get(e.actor_id.as_str())
                    .copied()
                    .unwrap_or((&None, &None));
                AuditRow {
                    at: rfc3339(e.event_timestamp.unix_seconds()),
                    event: e.event.clone(),
                    actor_id: e.actor_id.clone(),
                    actor: name.clone(),
                    actor_email: email.clone(),
                    actor_type: e.actor_type.clone(),
                    session_type: e.session_type.clone(),
                    parameters: exact(e.event_parameters.clone()),
                }
            })
            .collect();
        rows.reverse(); // newest first
        let total = (log.next_link.is_none() && rows.len() < read).then_some(rows.len());
        let mut event_names = BTreeMap::new();
        for r in &rows {
            *event_names.entry(r.event.clone()).or_insert(0) += 1;
        }
        let more = log.next_link.is_some() || rows.len() > offset + limit;
        let events: Vec<AuditRow> = rows.into_iter().skip(offset).take(limit).collect();
        let next_offset = offset + limit;
        Ok(AuditOut {
            span: span.window(),
            event: a.event.clone(),
            actor_id: a.actor_id,
            events,
            total,
            event_names,
            next_cursor: (more && next_offset <= MAX_AUDIT_OFFSET).then(|| next_offset.to_string()),
        })
    }
}
