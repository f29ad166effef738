//! The edge of the admin API: its error body, the caller's authentication, JSON bodies, ETags
//! and cursor paging.

use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::admin::service::{AdminError, OrgAdmin, role_in};
use crate::audit::Actor;
use crate::bearer::{
    AuthFailure, Presented, authenticate_request, credentials, dpop_challenge, public_url, quoted,
    resource_metadata_url,
};
use crate::crypto::sha256_hex;
use crate::http::RequestMeta;
use crate::scope::Scope;
use crate::state::AppState;
use crate::store::{Role, UserId};

/// The largest JSON body the API reads.
const MAX_BODY: usize = 64 * 1024;
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;

/// An error of the API: a status, a stable code and a message in words.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    pub message: String,
    challenge: Option<String>,
    /// A `DPoP` challenge and a fresh nonce, on a 401 (RFC 9449 §7.1, §9).
    dpop: Option<(String, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            challenge: None,
            dpop: None,
        }
    }

    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let status = match &e {
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Invalid { .. } => StatusCode::BAD_REQUEST,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Changed(_) => StatusCode::PRECONDITION_FAILED,
            AdminError::Store(cause) => {
                tracing::error!(error = %cause, "admin API answering 503");
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the server cannot complete the request right now; try again shortly",
                );
            }
        };
        Self::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            code: self.code,
            message: &self.message,
        };
        let mut r = (self.status, axum::Json(body)).into_response();
        let h = r.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::WWW_AUTHENTICATE, c);
        }
        if let Some((c, nonce)) = self.dpop {
            if let Ok(c) = HeaderValue::from_str(&c) {
                h.append(header::WWW_AUTHENTICATE, c);
            }
            if let Ok(n) = HeaderValue::from_str(&nonce) {
                h.insert(crate::dpop::NONCE_HEADER, n);
            }
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        r
    }
}

/// The body of every error answer.
#[derive(Serialize)]
struct ErrorResponse<'a> {
    code: &'a str,
    message: &'a str,
}

pub type ApiResult = Result<Response, ApiError>;

/// The authenticated admin of one organisation.
pub struct Caller {
    pub state: AppState,
    pub user: UserId,
    org: crate::store::OrgId,
    meta: RequestMeta,
}

impl Caller {
    pub async fn admin(&self) -> Result<OrgAdmin<'_>, ApiError> {
        let org = self
            .state
            .store
            .find_org(self.org.as_str())
            .await
            .map_err(AdminError::from)?
            .ok_or_else(|| ApiError::from(AdminError::NotFound("organisation")))?;
        // An organisation that requires a second factor of its admins: an admin without one
        // is refused here until they enrol (on /account/mfa).
        let required = self
            .state
            .store
            .require_admin_mfa(&org.id)
            .await
            .map_err(AdminError::from)?;
        if required
            && self
                .state
                .store
                .totp_of(&self.user)
                .await
                .map_err(AdminError::from)?
                .is_none()
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "mfa_required",
                format!(
                    "{} requires its admins to use two-step sign-in: set it up on /account/mfa first",
                    org.name
                ),
            ));
        }
        Ok(OrgAdmin {
            state: &self.state,
            org,
            actor: Actor::new("user", self.user.as_str(), None),
            meta: self.meta.clone(),
        })
    }
}

fn challenge(state: &AppState, error: Option<(&str, &str)>) -> String {
    let mut c = format!(
        "Bearer resource_metadata=\"{}\", scope=\"admin\"",
        resource_metadata_url(state)
    );
    if let Some((code, why)) = error {
        c.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            quoted(why)
        ));
    }
    c
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let nonce = || crate::dpop::new_nonce(&state.vault, state.now());
        if credentials(&parts.headers).is_none() {
            let mut e = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <access token or API key with the admin scope>",
            );
            e.challenge = Some(challenge(state, None));
            e.dpop = Some((dpop_challenge(None), nonce()));
            return Err(e);
        }
        let url = public_url(state, &parts.uri);
        let presented = Presented::new(&parts.headers, &parts.method, &url);
        let ctx = match authenticate_request(state, presented).await {
            Ok(c) => c,
            Err(AuthFailure::Refused(why)) => {
                let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", why);
                e.challenge = Some(challenge(state, Some(("invalid_token", why))));
                e.dpop = Some((dpop_challenge(None), nonce()));
                return Err(e);
            }
            Err(AuthFailure::Dpop { error, reason }) => {
                let mut e = ApiError::new(StatusCode::UNAUTHORIZED, error, reason);
                e.challenge = Some(challenge(state, None));
                e.dpop = Some((dpop_challenge(Some((error, reason))), nonce()));
                return Err(e);
            }
            Err(AuthFailure::Unavailable) => {
                return Err(ApiError::from(AdminError::Store(
                    crate::store::StoreError::NotFound("credential check"),
                )));
            }
        };
        if !ctx.scopes.allows(Scope::Admin) {
            let why = "this API needs a token or API key with the admin scope";
            let mut e = ApiError::new(StatusCode::FORBIDDEN, "insufficient_scope", why);
            e.challenge = Some(challenge(state, Some(("insufficient_scope", why))));
            return Err(e);
        }
        let Some(user) = ctx.user_id else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not_admin",
                "a machine client acts for no person and cannot administer the organisation",
            ));
        };
        match role_in(state, &user, &ctx.org_id).await? {
            Some(Role::Admin) => {}
            _ => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "not_admin",
                    "the person behind this token is no longer an admin of the organisation",
                ));
            }
        }
        Ok(Caller {
            state: state.clone(),
            user,
            org: ctx.org_id,
            meta: RequestMeta::from_parts(parts, state.config.trusted_proxies),
        })
    }
}

// --- plumbing -------------------------------------------------------------------------------

pub fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ));
    }
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {MAX_BODY} bytes"),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("the body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad("the body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| ApiError::bad(format!("the body is not valid: {e}")))
}

/// A response struct as JSON. serde_json keeps an object's keys sorted, so a body and its ETag
/// do not depend on the order in which a struct declares its fields.
pub(super) fn to_json(body: impl Serialize) -> Value {
    serde_json::to_value(body)
        .expect("an API response is strings, numbers, lists and objects with string keys")
}

fn respond(status: StatusCode, value: Value) -> Response {
    let mut r = (status, axum::Json(value)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn ok(status: StatusCode, body: impl Serialize) -> Response {
    respond(status, to_json(body))
}

/// A strong ETag of a representation.
fn etag_of(value: &Value) -> String {
    format!("\"{}\"", &sha256_hex(&value.to_string())[..32])
}

pub fn with_etag(body: impl Serialize) -> Response {
    let value = to_json(body);
    let tag = etag_of(&value);
    let mut r = respond(StatusCode::OK, value);
    if let Ok(v) = HeaderValue::from_str(&tag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// `If-Match` must be present and name the current ETag (or be `*`).
pub fn check_if_match(headers: &HeaderMap, current: impl Serialize) -> Result<(), ApiError> {
    let Some(given) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition_required",
            "send If-Match with the ETag from your last GET, so a concurrent change is not overwritten",
        ));
    };
    let tag = etag_of(&to_json(current));
    let matches = given
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == tag);
    if matches {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "the resource changed since you read it; GET it again and retry",
        ))
    }
}

/// A query string, refused with the API's own error body when it does not fit.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::bad(format!("the query is not valid: {}", e.body_text())))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

pub fn limit_of(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad(format!("limit must be 1 to {MAX_LIMIT}"))),
    }
}

/// A list's cursor is the key of the last item of the previous page (an id, or an audit
/// sequence number); absent or empty is the first page.
pub fn decode_cursor(cursor: Option<&str>) -> Option<String> {
    cursor.filter(|c| !c.is_empty()).map(str::to_owned)
}

pub fn encode_cursor(key: &str) -> String {
    key.to_owned()
}

/// One page of a list: its items and the cursor of the next page (`null` on the last).
#[derive(Serialize)]
pub struct Page<R> {
    pub items: Vec<R>,
    pub next_cursor: Option<String>,
}

/// One page of `items` ordered by `key`, after the cursor's key.
pub fn page<T, R: Serialize>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    render: impl Fn(&T) -> R,
    q: &PageQuery,
) -> Result<Response, ApiError> {
    let limit = limit_of(q.limit)?;
    let after = decode_cursor(q.cursor.as_deref());
    items.sort_by_key(|a| key(a));
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|i| after.as_ref().is_none_or(|a| key(i) > *a))
        .collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    let next = more
        .then(|| rest.last().map(|l| encode_cursor(&key(l))))
        .flatten();
    let items = rest.iter().map(render).collect();
    Ok(ok(
        StatusCode::OK,
        Page {
            items,
            next_cursor: next,
        },
    ))
}
