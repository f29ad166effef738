//! `/api/v1/api-keys`: the organisation's live API keys.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::edge::{json_body, ok, page};
use super::{ApiError, ApiQuery, ApiResult, Caller, PageQuery, no_content, scopes_of};
use crate::admin::service::AdminError;
use crate::clock::rfc3339;
use crate::scope::Scope;
use crate::store::{ApiKey, UserId};

/// An API key as the API shows it: `****` and its last four characters, never the key.
#[derive(Serialize)]
struct ApiKeyResponse {
    id: String,
    name: String,
    user_id: String,
    user_email: String,
    key_hint: String,
    scopes: Vec<&'static str>,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

impl From<&ApiKey> for ApiKeyResponse {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.as_str().to_owned(),
            name: k.name.clone(),
            user_id: k.user_id.as_str().to_owned(),
            user_email: k.user_email.clone(),
            key_hint: format!("****{}", k.key_hint),
            scopes: k.scopes.iter().map(Scope::as_str).collect(),
            created_at: rfc3339(k.created_at),
            expires_at: k.expires_at.map(rfc3339),
            last_used_at: k.last_used_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}

/// The creation answer: the key itself, in this answer only, and its description.
#[derive(Serialize)]
struct CreatedApiKeyResponse<'a> {
    key: &'a str,
    api_key: ApiKeyResponse,
}

pub(super) async fn list_keys(caller: Caller, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult {
    let admin = caller.admin().await?;
    let live: Vec<ApiKey> = admin
        .api_keys()
        .await?
        .into_iter()
        .filter(|k| k.revoked_at.is_none())
        .collect();
    page(live, |k| k.id.to_string(), |k| ApiKeyResponse::from(k), &q)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    scopes: Vec<String>,
    user_id: Option<String>,
    /// A JSON number; `30.0` is the integer 30, as JSON Schema says.
    expires_in_days: Option<serde_json::Number>,
}

pub(super) async fn create_key(caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult {
    let admin = caller.admin().await?;
    let new: NewKey = json_body(&headers, &body)?;
    let scopes = scopes_of(&new.scopes)?;
    let user = match &new.user_id {
        Some(u) => UserId::parse(u).map_err(|_| AdminError::NotFound("member"))?,
        None => caller.user.clone(),
    };
    let days = new
        .expires_in_days
        .as_ref()
        .map(|n| n.as_f64().unwrap_or(f64::NAN));
    let expires_at = match days {
        None => None,
        Some(d) if d.fract() == 0.0 && (1.0..=3650.0).contains(&d) => {
            Some(caller.state.now() + d as i64 * 86_400)
        }
        Some(_) => {
            return Err(ApiError::bad(
                "expires_in_days must be a whole number from 1 to 3650",
            ));
        }
    };
    let (secret, key) = admin
        .create_api_key(&user, &new.name, scopes, expires_at)
        .await?;
    let created = CreatedApiKeyResponse {
        key: secret.expose_secret(),
        api_key: ApiKeyResponse::from(&key),
    };
    let mut r = ok(StatusCode::CREATED, created);
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/api-keys/{}", key.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

pub(super) async fn revoke_key(caller: Caller, Path(key_id): Path<String>) -> ApiResult {
    caller.admin().await?.revoke_api_key(&key_id).await?;
    Ok(no_content())
}
