//! How people join an organisation through the API besides invitations: the SCIM tokens of the
//! organisation's identity provider, and its single sign-on connection.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::edge::{json_body, page, with_etag};
use super::{ApiQuery, ApiResult, Caller, PageQuery};
use crate::admin::service::AdminError;
use crate::clock::rfc3339;
use crate::store::ScimToken;

// --- SCIM tokens ------------------------------------------------------------------------------

fn scim_token_json(t: &ScimToken, base: &str) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "scim_base_url": base,
        "created_at": rfc3339(t.created_at),
        "last_used_at": t.last_used_at.map(rfc3339),
    })
}

fn scim_base(admin: &crate::admin::OrgAdmin<'_>) -> String {
    format!(
        "{}/scim/v2/{}",
        admin.state.config.public_url, admin.org.slug
    )
}

pub(super) async fn list_scim_tokens(
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult {
    let admin = caller.admin().await?;
    let base = scim_base(&admin);
    page(
        admin.scim_tokens().await?,
        |t| t.id.clone(),
        |t| scim_token_json(&t, &base),
        &q,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewScimToken {
    name: String,
}

/// Makes a SCIM token for the organisation's identity provider: `token` is in this answer
/// only; `scim_base_url` is what to configure as the SCIM connector's base URL.
pub(super) async fn create_scim_token(
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let admin = caller.admin().await?;
    let new: NewScimToken = json_body(&headers, &body)?;
    let (secret, token) = admin.create_scim_token(&new.name).await?;
    let mut value = scim_token_json(&token, &scim_base(&admin));
    value["token"] = json!(secret.expose_secret());
    let mut r = (StatusCode::CREATED, axum::Json(value)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

pub(super) async fn revoke_scim_token(caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.admin().await?.revoke_scim_token(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// --- single sign-on ------------------------------------------------------------------------------

/// The organisation's OpenID Connect connection (never its client secret); 404 when none.
pub(super) async fn get_sso(caller: Caller) -> ApiResult {
    let admin = caller.admin().await?;
    let settings = admin
        .sso()
        .await?
        .ok_or(AdminError::NotFound("single sign-on connection"))?;
    Ok(with_etag(json!(settings)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SsoPut {
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    domains: Vec<String>,
    groups_claim: Option<String>,
    admin_group: Option<String>,
    member_group: Option<String>,
    #[serde(default)]
    required: bool,
}

/// Creates or replaces the connection; `client_secret` is write-only and may be left out to
/// keep the stored one.
pub(super) async fn put_sso(caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult {
    let admin = caller.admin().await?;
    let put: SsoPut = json_body(&headers, &body)?;
    let settings = admin
        .set_sso(crate::admin::service::SsoChange {
            issuer: put.issuer,
            client_id: put.client_id,
            client_secret: put.client_secret.map(secrecy::SecretString::from),
            domains: put.domains,
            groups_claim: put.groups_claim,
            admin_group: put.admin_group,
            member_group: put.member_group,
            required: put.required,
        })
        .await?;
    Ok(with_etag(json!(settings)))
}

pub(super) async fn delete_sso(caller: Caller) -> ApiResult {
    caller.admin().await?.delete_sso().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
