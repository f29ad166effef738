//! `/api/v1/members`: the organisation's memberships.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::edge::{check_if_match, json_body, page, with_etag};
use super::{ApiQuery, ApiResult, Caller, PageQuery, no_content};
use crate::admin::service::MemberChange;
use crate::clock::rfc3339;
use crate::store::{OrgMember, Role};

/// A membership as the API shows it: nothing of the person's account or other organisations.
#[derive(Serialize)]
pub(super) struct MemberResponse {
    user_id: String,
    email: String,
    role: &'static str,
    suspended: bool,
    joined_at: String,
}

impl From<&OrgMember> for MemberResponse {
    fn from(m: &OrgMember) -> Self {
        Self {
            user_id: m.user.id.as_str().to_owned(),
            email: m.user.email.clone(),
            role: m.role.as_str(),
            suspended: m.suspended,
            joined_at: rfc3339(m.joined_at),
        }
    }
}

/// A role as a request names it.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum RoleText {
    Admin,
    Member,
}

pub(super) fn member_role() -> RoleText {
    RoleText::Member
}

impl From<RoleText> for Role {
    fn from(r: RoleText) -> Self {
        match r {
            RoleText::Admin => Role::Admin,
            RoleText::Member => Role::Member,
        }
    }
}

pub(super) async fn list_members(caller: Caller, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult {
    let admin = caller.admin().await?;
    page(
        admin.members().await?,
        |m| m.user.id.to_string(),
        |m| MemberResponse::from(m),
        &q,
    )
}

pub(super) async fn get_member(caller: Caller, Path(user_id): Path<String>) -> ApiResult {
    let admin = caller.admin().await?;
    Ok(with_etag(MemberResponse::from(
        &admin.member(&user_id).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberPatch {
    role: Option<RoleText>,
    suspended: Option<bool>,
}

pub(super) async fn patch_member(
    caller: Caller,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let admin = caller.admin().await?;
    let patch: MemberPatch = json_body(&headers, &body)?;
    let seen = admin.member(&user_id).await?;
    check_if_match(&headers, MemberResponse::from(&seen))?;
    let updated = admin
        .update_member(
            &seen,
            MemberChange {
                role: patch.role.map(Into::into),
                suspended: patch.suspended,
            },
        )
        .await?;
    Ok(with_etag(MemberResponse::from(&updated)))
}

pub(super) async fn remove_member(caller: Caller, Path(user_id): Path<String>) -> ApiResult {
    caller.admin().await?.remove_member(&user_id).await?;
    Ok(no_content())
}
