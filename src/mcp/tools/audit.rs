//! `list_audit_events`: Clari's audit log (30 days at most), newest first, with actor names.

use std::collections::HashMap;

use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::render::{Summary, exact, next_page, plural};
use super::{Tool, ToolError, cursor, date_arg, limit};
use crate::clari::ClariError;
use crate::clari::types::AuditQuery;
use crate::clock::rfc3339;
use crate::mcp::data;
use crate::principal::AuthContext;
use crate::scope::Scope;
use crate::state::AppState;

/// The deepest a cursor may reach into the log: paging further means narrowing the window.
pub const MAX_AUDIT_OFFSET: usize = 5_000;

pub struct ListAuditEvents;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditArgs {
    /// Start, YYYY-MM-DD or RFC 3339 (default: 7 days ago; at most 30 days back).
    pub since: Option<String>,
    /// End (default: now).
    pub until: Option<String>,
    /// Only this event, e.g. forecast.submitted.
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
    #[schemars(extend("format" = "date-time"))]
    pub since: String,
    #[schemars(extend("format" = "date-time"))]
    pub until: String,
    /// Newest first.
    pub events: Vec<AuditRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl Summary for AuditOut {
    fn summary(&self, _tool: &str) -> String {
        format!(
            "{} audit event{} between {} and {}, newest first.{}",
            self.events.len(),
            plural(self.events.len(), "", "s"),
            self.since,
            self.until,
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
        let since = date_arg("since", a.since.as_deref(), now - 7 * 86_400)?;
        let until = date_arg("until", a.until.as_deref(), now)?;
        let limit = limit(a.limit)?;
        let offset = cursor(a.cursor.as_deref(), MAX_AUDIT_OFFSET)?;
        let query = AuditQuery {
            limit: Some(1000),
            actor_id: a.actor_id,
            date_from: Some(rfc3339(since)),
            date_to: Some(rfc3339(until)),
            event: a.event.clone(),
            ..Default::default()
        };
        let target = data::target(state, &ctx.org_id).await?;
        let log = state
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
        let more = log.next_link.is_some() || rows.len() > offset + limit;
        let events: Vec<AuditRow> = rows.into_iter().skip(offset).take(limit).collect();
        let next_offset = offset + limit;
        Ok(AuditOut {
            since: rfc3339(since),
            until: rfc3339(until),
            events,
            next_cursor: (more && next_offset <= MAX_AUDIT_OFFSET).then(|| next_offset.to_string()),
        })
    }
}
