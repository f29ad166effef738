//! The admin REST API, `/api/v1`: what the admin pages do, for scripts. A caller presents an
//! access token or API key carrying the `admin` scope and must still be an active admin of the
//! token's organisation on every request. Errors are `{"code", "message"}` with a stable code;
//! lists page with an opaque `cursor`; updates need `If-Match` with the resource's `ETag`.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

mod api_key;
mod client;
mod edge;
mod grant;
mod invitation;
mod machines;
mod member;
mod scim_token;
mod sso;

pub use edge::{ApiError, ApiQuery, ApiResult, Caller, PageQuery};
use edge::{check_if_match, decode_cursor, encode_cursor, json_body, limit_of, ok, with_etag};

use super::service::SettingsChange;
use crate::clock::rfc3339;
use crate::redact::RedactionPolicy;
use crate::scope::{Scope, ScopeSet};
use crate::state::AppState;
use crate::store::{AuditFilter, AuditRecord};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/organization", get(get_org).patch(patch_org))
        .route(
            "/api/v1/clari-credential",
            get(get_credential).put(put_credential),
        )
        .route("/api/v1/clari-credential/test", post(test_credential))
        .route("/api/v1/members", get(member::list_members))
        .route(
            "/api/v1/invitations",
            get(invitation::list_invitations).post(invitation::create_invitation),
        )
        .route(
            "/api/v1/invitations/{id}",
            get(invitation::get_invitation).delete(invitation::withdraw_invitation),
        )
        .route(
            "/api/v1/scim-tokens",
            get(scim_token::list_scim_tokens).post(scim_token::create_scim_token),
        )
        .route(
            "/api/v1/scim-tokens/{id}",
            delete(scim_token::revoke_scim_token),
        )
        .route(
            "/api/v1/sso",
            get(sso::get_sso).put(sso::put_sso).delete(sso::delete_sso),
        )
        .route(
            "/api/v1/members/{user_id}",
            get(member::get_member)
                .patch(member::patch_member)
                .delete(member::remove_member),
        )
        .route(
            "/api/v1/api-keys",
            get(api_key::list_keys).post(api_key::create_key),
        )
        .route("/api/v1/api-keys/{key_id}", delete(api_key::revoke_key))
        .route("/api/v1/grants", get(grant::list_grants))
        .route("/api/v1/grants/{grant_id}", delete(grant::revoke_grant))
        .route("/api/v1/clients", get(client::list_clients))
        .route("/api/v1/clients/{client_id}", delete(client::revoke_client))
        .route("/api/v1/audit-events", get(list_audit))
        .route("/api/v1/kill-switch", post(kill))
        .route(
            "/api/v1/service-clients",
            get(machines::list).post(machines::create),
        )
        .route(
            "/api/v1/service-clients/{client_id}",
            get(machines::get_one).delete(machines::revoke),
        )
}

// --- representations ------------------------------------------------------------------------

pub fn audit_json(r: &AuditRecord) -> Value {
    json!({
        "seq": r.seq,
        "at": rfc3339(r.at),
        "actor": {"kind": r.actor_kind, "id": r.actor_id, "name": r.actor_name},
        "action": r.action,
        "target": r.target,
        "outcome": r.outcome,
        "request_id": r.request_id,
        "client_ip": r.client_ip,
        "details": serde_json::from_str::<Value>(&r.details).unwrap_or(Value::Null),
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    })
}

// --- organisation ---------------------------------------------------------------------------

async fn get_org(caller: Caller) -> ApiResult {
    let admin = caller.admin().await?;
    Ok(with_etag(json!(admin.settings().await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgPatch {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    redaction: Option<Option<RedactionPolicy>>,
    require_admin_mfa: Option<bool>,
    require_dpop: Option<bool>,
    /// `null` is back to UTC.
    #[serde(default, deserialize_with = "present")]
    time_zone: Option<Option<String>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

async fn patch_org(caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult {
    let admin = caller.admin().await?;
    let patch: OrgPatch = json_body(&headers, &body)?;
    // What is wrong with the change itself is said before whether it is stale.
    if let Some(n) = &patch.name {
        super::service::validate_org_name(n)?;
    }
    if let Some(Some(p)) = &patch.redaction {
        super::service::validate_redaction(p)?;
    }
    if let Some(Some(z)) = &patch.time_zone {
        super::service::validate_time_zone(z)?;
    }
    let seen = admin.settings().await?;
    check_if_match(&headers, &seen)?;
    let updated = admin
        .update_settings(
            &seen,
            SettingsChange {
                name: patch.name,
                redaction: patch.redaction,
                require_admin_mfa: patch.require_admin_mfa,
                require_dpop: patch.require_dpop,
                time_zone: patch
                    .time_zone
                    .map(|z| z.unwrap_or_else(|| "UTC".to_owned())),
            },
        )
        .await?;
    Ok(with_etag(json!(updated)))
}

// --- Clari credential -------------------------------------------------------------------------

async fn get_credential(caller: Caller) -> ApiResult {
    let admin = caller.admin().await?;
    let info = admin.clari_credential().await?;
    Ok(ok(StatusCode::OK, credential_json(info)))
}

fn credential_json(info: Option<crate::store::ClariCredentialInfo>) -> Value {
    match info {
        Some(i) => json!({
            "configured": true,
            "key_hint": format!("****{}", i.key_hint),
            "base_url": i.base_url,
            "rotated_at": rfc3339(i.rotated_at),
        }),
        None => {
            json!({"configured": false, "key_hint": null, "base_url": null, "rotated_at": null})
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialPut {
    api_key: String,
}

async fn put_credential(caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult {
    let admin = caller.admin().await?;
    let put: CredentialPut = json_body(&headers, &body)?;
    let key = SecretString::from(put.api_key);
    let info = admin.replace_clari_key(key).await?;
    Ok(ok(StatusCode::OK, credential_json(Some(info))))
}

async fn test_credential(caller: Caller) -> ApiResult {
    let admin = caller.admin().await?;
    Ok(ok(
        StatusCode::OK,
        match admin.test_connection().await {
            Ok(l) => json!({
                "ok": true,
                "limits": {
                    "concurrent_limit": l.jobs.concurrent_limit,
                    "available_concurrent_limit": l.jobs.available_concurrent_limit,
                    "monthly_quota": l.jobs.monthly_quota,
                    "available_monthly_quota": l.jobs.available_monthly_quota,
                },
                "error": null,
            }),
            Err(words) => json!({"ok": false, "limits": null, "error": words}),
        },
    ))
}

/// An empty answer to a removal.
fn no_content() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The scopes of a request body, each a scope name (400 naming the first that is not).
fn scopes_of(names: &[String]) -> Result<ScopeSet, ApiError> {
    names
        .iter()
        .map(|s| Scope::parse(s))
        .collect::<Result<ScopeSet, _>>()
        .map_err(|e| ApiError::bad(format!("scopes: {e}")))
}

// --- audit ------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
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

async fn list_audit(caller: Caller, ApiQuery(q): ApiQuery<AuditQuery>) -> ApiResult {
    let admin = caller.admin().await?;
    for (name, value) in [
        ("since", &q.since),
        ("until", &q.until),
        ("action", &q.action),
        ("actor_id", &q.actor_id),
        ("outcome", &q.outcome),
    ] {
        if value.as_deref().is_some_and(super::service::is_blank) {
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
    let items: Vec<Value> = rows.iter().map(audit_json).collect();
    Ok(ok(
        StatusCode::OK,
        json!({"items": items, "next_cursor": next}),
    ))
}

// --- kill switch ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KillRequest {
    reason: String,
    confirm: String,
}

async fn kill(caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult {
    let admin = caller.admin().await?;
    let req: KillRequest = json_body(&headers, &body)?;
    let report = admin.kill(&req.reason, &req.confirm).await?;
    Ok(ok(StatusCode::OK, json!(report)))
}
