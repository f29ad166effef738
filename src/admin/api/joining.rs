//! How people join an organisation through the API: invitations, and the SCIM tokens of the
//! organisation's identity provider.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::edge::{json_body, page, with_etag};
use super::{ApiQuery, ApiResult, Caller, PageQuery, RoleText, api_email, member_role};
use crate::admin::service::AdminError;
use crate::clock::rfc3339;
use crate::store::{Invitation, ScimToken};

fn invitation_json(i: &Invitation) -> Value {
    json!({
        "id": i.id.as_str(),
        "email": i.email,
        "role": i.role.as_str(),
        "status": "pending",
        "created_at": rfc3339(i.created_at),
        "expires_at": rfc3339(i.expires_at),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvitation {
    email: String,
    #[serde(default = "member_role")]
    role: RoleText,
}

// --- invitations ------------------------------------------------------------------------------

pub(super) async fn list_invitations(
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult {
    let admin = caller.admin().await?;
    page(
        admin.invitations().await?,
        |i| i.id.to_string(),
        |i| invitation_json(&i),
        &q,
    )
}

pub(super) async fn get_invitation(caller: Caller, Path(id): Path<String>) -> ApiResult {
    let admin = caller.admin().await?;
    let found = admin
        .invitations()
        .await?
        .into_iter()
        .find(|i| i.id.as_str() == id)
        .ok_or(AdminError::NotFound("invitation"))?;
    Ok(with_etag(invitation_json(&found)))
}

/// Invites a person: `url` is the link, in this answer only; `emailed` says whether it was
/// sent (and `email_error` why not). The answer is the same whether or not the address has an
/// account here.
pub(super) async fn create_invitation(
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let admin = caller.admin().await?;
    let new: NewInvitation = json_body(&headers, &body)?;
    api_email(&new.email)?;
    let created = admin.invite(&new.email, new.role.into()).await?;
    let mut value = invitation_json(&created.invitation);
    value["url"] = json!(created.link.expose_secret());
    value["emailed"] = json!(created.emailed.is_ok());
    if let Err(why) = &created.emailed {
        value["email_error"] = json!(why);
    }
    let mut r = with_etag(value);
    *r.status_mut() = StatusCode::CREATED;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/invitations/{}", created.invitation.id))
    {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

pub(super) async fn withdraw_invitation(caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.admin().await?.revoke_invitation(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

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
