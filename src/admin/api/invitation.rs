//! `/api/v1/invitations`: inviting people to the organisation.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::edge::{json_body, page, with_etag};
use super::member::{RoleText, member_role};
use super::{ApiError, ApiQuery, ApiResult, Caller, PageQuery};
use crate::admin::service::{AdminError, InvitationCreated};
use crate::clock::rfc3339;
use crate::store::Invitation;

/// A pending invitation as the API shows it (never the link's token).
#[derive(Serialize)]
struct InvitationResponse {
    id: String,
    email: String,
    role: &'static str,
    status: &'static str,
    created_at: String,
    expires_at: String,
}

impl From<&Invitation> for InvitationResponse {
    fn from(i: &Invitation) -> Self {
        Self {
            id: i.id.as_str().to_owned(),
            email: i.email.clone(),
            role: i.role.as_str(),
            status: "pending",
            created_at: rfc3339(i.created_at),
            expires_at: rfc3339(i.expires_at),
        }
    }
}

/// The creation answer: the invitation, its link (in this answer only) and whether it was
/// e-mailed, with why not when it was not.
#[derive(Serialize)]
struct CreatedInvitationResponse<'a> {
    #[serde(flatten)]
    invitation: InvitationResponse,
    url: &'a str,
    emailed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_error: Option<&'a str>,
}

impl<'a> From<&'a InvitationCreated> for CreatedInvitationResponse<'a> {
    fn from(c: &'a InvitationCreated) -> Self {
        Self {
            invitation: InvitationResponse::from(&c.invitation),
            url: c.link.expose_secret(),
            emailed: c.emailed.is_ok(),
            email_error: c.emailed.as_ref().err().map(String::as_str),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvitation {
    email: String,
    #[serde(default = "member_role")]
    role: RoleText,
}

/// The API's e-mail rule, stricter than the pages' (which trim and accept any script):
/// printable ASCII, `local@domain.tld`, nothing around it, at most 254 characters.
fn api_email(text: &str) -> Result<&str, ApiError> {
    let printable = |c: char| c.is_ascii_graphic() && c != '@';
    let ok = text.len() <= 254
        && text.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.chars().all(printable)
                && domain.chars().all(printable)
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(text)
    } else {
        Err(ApiError::bad(format!(
            "email: '{}' is not an address of printable ASCII (local@domain.tld)",
            text.chars().take(100).collect::<String>()
        )))
    }
}

pub(super) async fn list_invitations(
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult {
    let admin = caller.admin().await?;
    page(
        admin.invitations().await?,
        |i| i.id.to_string(),
        |i| InvitationResponse::from(i),
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
    Ok(with_etag(InvitationResponse::from(&found)))
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
    let mut r = with_etag(CreatedInvitationResponse::from(&created));
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
