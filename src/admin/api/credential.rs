//! `/api/v1/clari-credential`: the organisation's Clari API key (never shown back) and a test
//! call with it.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::edge::{json_body, ok};
use super::{ApiResult, Caller};
use crate::clari::types::Limits;
use crate::clock::rfc3339;
use crate::store::ClariCredentialInfo;

/// The stored key as the API shows it: whether there is one and, if so, `****` and its last
/// four characters; every other field is `null` when there is none.
#[derive(Serialize)]
struct CredentialResponse {
    configured: bool,
    key_hint: Option<String>,
    base_url: Option<String>,
    rotated_at: Option<String>,
}

impl From<Option<ClariCredentialInfo>> for CredentialResponse {
    fn from(info: Option<ClariCredentialInfo>) -> Self {
        match info {
            Some(i) => Self {
                configured: true,
                key_hint: Some(format!("****{}", i.key_hint)),
                base_url: i.base_url,
                rotated_at: Some(rfc3339(i.rotated_at)),
            },
            None => Self {
                configured: false,
                key_hint: None,
                base_url: None,
                rotated_at: None,
            },
        }
    }
}

/// The answer of a test call: Clari's limits, or in words why the call failed.
#[derive(Serialize)]
struct ConnectionTestResponse {
    ok: bool,
    limits: Option<LimitsResponse>,
    error: Option<String>,
}

#[derive(Serialize)]
struct LimitsResponse {
    concurrent_limit: i64,
    available_concurrent_limit: i64,
    monthly_quota: i64,
    available_monthly_quota: i64,
}

impl From<Result<Limits, String>> for ConnectionTestResponse {
    fn from(outcome: Result<Limits, String>) -> Self {
        match outcome {
            Ok(l) => Self {
                ok: true,
                limits: Some(LimitsResponse {
                    concurrent_limit: l.jobs.concurrent_limit,
                    available_concurrent_limit: l.jobs.available_concurrent_limit,
                    monthly_quota: l.jobs.monthly_quota,
                    available_monthly_quota: l.jobs.available_monthly_quota,
                }),
                error: None,
            },
            Err(words) => Self {
                ok: false,
                limits: None,
                error: Some(words),
            },
        }
    }
}

pub(super) async fn get_credential(caller: Caller) -> ApiResult {
    let admin = caller.admin().await?;
    let info = admin.clari_credential().await?;
    Ok(ok(StatusCode::OK, CredentialResponse::from(info)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialPut {
    api_key: String,
}

pub(super) async fn put_credential(caller: Caller, headers: HeaderMap, body: Bytes) -> ApiResult {
    let admin = caller.admin().await?;
    let put: CredentialPut = json_body(&headers, &body)?;
    let key = SecretString::from(put.api_key);
    let info = admin.replace_clari_key(key).await?;
    Ok(ok(StatusCode::OK, CredentialResponse::from(Some(info))))
}

pub(super) async fn test_credential(caller: Caller) -> ApiResult {
    let admin = caller.admin().await?;
    let outcome = admin.test_connection().await;
    Ok(ok(StatusCode::OK, ConnectionTestResponse::from(outcome)))
}
