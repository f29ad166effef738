//! `/api/v1/organization`: the organisation's settings. The answer is the service's
//! [`OrgSettings`](crate::admin::service::OrgSettings), which is already the wire shape.

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde::Deserialize;

use super::edge::{check_if_match, json_body, with_etag};
use super::{ApiResult, Caller};
use crate::admin::service::{self, SettingsChange};
use crate::redact::RedactionPolicy;

pub(super) async fn get_org(caller: Caller) -> ApiResult {
    let admin = caller.admin().await?;
    Ok(with_etag(admin.settings().await?))
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

pub(super) async fn patch_org(caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult {
    let admin = caller.admin().await?;
    let patch: OrgPatch = json_body(&headers, &body)?;
    // What is wrong with the change itself is said before whether it is stale.
    if let Some(n) = &patch.name {
        service::validate_org_name(n)?;
    }
    if let Some(Some(p)) = &patch.redaction {
        service::validate_redaction(p)?;
    }
    if let Some(Some(z)) = &patch.time_zone {
        service::validate_time_zone(z)?;
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
    Ok(with_etag(updated))
}
