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
mod audit;
mod client;
mod edge;
mod grant;
mod invitation;
mod machines;
mod member;
mod scim_token;
mod sso;

pub use audit::{audit_filter, audit_json};
pub use edge::{ApiError, ApiQuery, ApiResult, Caller, PageQuery};
use edge::{check_if_match, json_body, ok, with_etag};

use super::service::SettingsChange;
use crate::clock::rfc3339;
use crate::redact::RedactionPolicy;
use crate::scope::{Scope, ScopeSet};
use crate::state::AppState;

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
        .route("/api/v1/audit-events", get(audit::list_audit))
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
