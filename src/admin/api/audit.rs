//! `/api/v1/audit-events`: the organisation's audit trail, newest first, and the
//! representation of an event the admin pages' download shares.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::edge::{Page, decode_cursor, encode_cursor, limit_of, ok, to_json};
use super::{ApiError, ApiQuery, ApiResult, Caller};
use crate::admin::service::is_blank;
use crate::clock::rfc3339;
use crate::store::{AuditFilter, AuditRecord};

/// An audit event as the API (and the pages' download) shows it.
#[derive(Serialize)]
struct AuditEventResponse {
    seq: i64,
    at: String,
    actor: AuditActorResponse,
    action: String,
    target: Option<String>,
    outcome: String,
    request_id: Option<String>,
    client_ip: Option<String>,
    /// The event's details as recorded, or `null` if they are not JSON.
    details: Value,
    prev_hash: String,
    hash: String,
}

#[derive(Serialize)]
struct AuditActorResponse {
    kind: String,
    id: Option<String>,
    name: Option<String>,
}

impl From<&AuditRecord> for AuditEventResponse {
    fn from(r: &AuditRecord) -> Self {
        Self {
            seq: r.seq,
            at: rfc3339(r.at),
            actor: AuditActorResponse {
                kind: r.actor_kind.clone(),
                id: r.actor_id.clone(),
                name: r.actor_name.clone(),
            },
            action: r.action.clone(),
            target: r.target.clone(),
            outcome: r.outcome.clone(),
            request_id: r.request_id.clone(),
            client_ip: r.client_ip.clone(),
            details: serde_json::from_str(&r.details).unwrap_or(Value::Null),
            prev_hash: r.prev_hash.clone(),
            hash: r.hash.clone(),
        }
    }
}

/// One event as a JSON value with sorted keys: a line of the admin pages' download.
pub fn audit_json(r: &AuditRecord) -> Value {
    to_json(AuditEventResponse::from(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    since: Option<String>,
    until: Option<String>,
    action: Option<String>,
    actor_id: Option<String>,
    outcome: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

fn time_param(name: &str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        crate::clari::client::parse_date(t.trim()).ok_or_else(|| {
            ApiError::bad(format!(
                "{name}: '{t}' is not a date (YYYY-MM-DD) or RFC 3339 time"
            ))
        })
    })
    .transpose()
}

/// The audit filter of a query, shared with the admin pages.
pub fn audit_filter(
    since: Option<&str>,
    until: Option<&str>,
    action: Option<&str>,
    actor_id: Option<&str>,
    outcome: Option<&str>,
) -> Result<AuditFilter, String> {
    fn non_empty(s: Option<&str>) -> Option<&str> {
        s.map(str::trim).filter(|s| !s.is_empty())
    }
    let time = |name: &str, t: Option<&str>| time_param(name, non_empty(t)).map_err(|e| e.message);
    if let Some(o) = non_empty(outcome)
        && !["success", "failure", "denied"].contains(&o)
    {
        return Err(format!(
            "outcome: '{o}' is not one of success, failure, denied"
        ));
    }
    Ok(AuditFilter {
        since: time("since", since)?,
        until: time("until", until)?,
        action: non_empty(action).map(str::to_owned),
        actor_id: non_empty(actor_id).map(str::to_owned),
        outcome: non_empty(outcome).map(str::to_owned),
    })
}

pub(super) async fn list_audit(caller: Caller, ApiQuery(q): ApiQuery<AuditQuery>) -> ApiResult {
    let admin = caller.admin().await?;
    for (name, value) in [
        ("since", &q.since),
        ("until", &q.until),
        ("action", &q.action),
        ("actor_id", &q.actor_id),
        ("outcome", &q.outcome),
    ] {
        if value.as_deref().is_some_and(is_blank) {
            return Err(ApiError::bad(format!(
                "{name} must not be empty; leave it out instead"
            )));
        }
    }
    let filter = audit_filter(
        q.since.as_deref(),
        q.until.as_deref(),
        q.action.as_deref(),
        q.actor_id.as_deref(),
        q.outcome.as_deref(),
    )
    .map_err(ApiError::bad)?;
    let limit = limit_of(q.limit)?;
    let before = decode_cursor(q.cursor.as_deref())
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_cursor",
                    "cursor is not one this API returned",
                )
            })
        })
        .transpose()?;
    let rows = admin.audit(&filter, before, limit as i64 + 1).await?;
    let more = rows.len() > limit;
    let rows = &rows[..rows.len().min(limit)];
    let next = more
        .then(|| rows.last().map(|r| encode_cursor(&r.seq.to_string())))
        .flatten();
    let page = Page {
        items: rows.iter().map(AuditEventResponse::from).collect(),
        next_cursor: next,
    };
    Ok(ok(StatusCode::OK, page))
}
