//! The authorization endpoint (RFC 6749 §4.1 with PKCE S256, RFC 8707 resource, RFC 9207 `iss`).
//!
//! Order matters: the client and the exact redirect URI are validated first, and a failure there
//! is an HTML error page, never a redirect. Later errors go back to the validated redirect URI with
//! `error`, the caller's `state` byte for byte, and `iss`, but only for a signed-in user: before
//! sign-in they are an error page too, so an unauthenticated link cannot bounce a browser to a URI
//! that a freshly registered client chose (RFC 9700 §4.11.2). The rules themselves are the pure
//! [`validate_authorization_request`]. The request waits in the browser session (keyed by a random
//! `rid`) through sign-in and consent.

use askama::Template;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::client::{self, Client};
use super::error::ErrorCode;
use super::{core, pkce, redirect};
use crate::crypto::{random_token, sha256_hex};
use crate::http::{parse_form, parse_pairs, read_body};
use crate::scope::{Scope, ScopeSet};
use crate::state::AppState;
use crate::store::{ClientId, CodeRecord, OrgId, UserId};
use crate::web::{self, error_page, render, urlencode};

pub const CODE_TTL: i64 = 60;
const PENDING_TTL: i64 = 600;
pub const MAX_STATE_BYTES: usize = 2048;

/// An authorization request that passed validation, waiting for sign-in and consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub client_id: ClientId,
    pub client_name: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    /// Parsed once, when the request was validated.
    pub scope: ScopeSet,
    pub resource: String,
    pub created_at: i64,
    pub force_consent: bool,
}

fn pending_key(rid: &str) -> String {
    format!("authz:{rid}")
}

/// The authorization response: `redirect_uri` plus `params`, `state` and `iss`.
fn respond(
    state: &AppState,
    redirect_uri: &str,
    params: &[(&str, &str)],
    client_state: Option<&str>,
    see_other: bool,
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return web::internal_error_page(&"a validated redirect URI did not parse");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = client_state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &state.config.issuer);
    }
    redirect_to(url.as_str(), see_other)
}

/// 302 Found answers a GET; 303 See Other answers a POST (never 307 after a form with credentials).
pub fn redirect_to(location: &str, see_other: bool) -> Response {
    let status = if see_other {
        StatusCode::SEE_OTHER
    } else {
        StatusCode::FOUND
    };
    let mut r = status.into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(location) {
        r.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}

fn error_redirect(
    state: &AppState,
    p: &RedirectTarget,
    code: ErrorCode,
    description: &str,
    see_other: bool,
) -> Response {
    let d = super::error::sanitize(description);
    respond(
        state,
        &p.redirect_uri,
        &[("error", code.as_str()), ("error_description", &d)],
        p.state.as_deref(),
        see_other,
    )
}

struct RedirectTarget {
    redirect_uri: String,
    state: Option<String>,
}

fn bad_request_page(message: &str) -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "This sign-in link is not valid",
        message,
        "Return to the application and start again. Nothing was shared.",
    )
}

/// Why an authorization request is refused, in RFC 6749 terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeError {
    pub code: ErrorCode,
    pub description: String,
}

fn refuse(code: ErrorCode, description: impl Into<String>) -> AuthorizeError {
    AuthorizeError {
        code,
        description: description.into(),
    }
}

/// The parts of an authorization request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRequest {
    pub challenge: String,
    pub requested: ScopeSet,
    /// Always this server's MCP URL, as configured.
    pub resource: String,
    pub prompt: String,
}

/// Validates everything after the client and redirect URI: response type, PKCE S256, scope (the
/// client's registered scope by default, and never beyond it), RFC 8707 resource. No I/O.
pub fn validate_authorization_request(
    params: &std::collections::HashMap<String, String>,
    registered_scope: Option<&str>,
    mcp_url: &str,
) -> Result<ValidRequest, AuthorizeError> {
    match params.get("response_type").map(String::as_str) {
        Some("code") => {}
        Some(_) => {
            return Err(refuse(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
        None => {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "response_type is required",
            ));
        }
    }
    let Some(challenge) = params.get("code_challenge") else {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        ));
    };
    if params.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "code_challenge_method must be S256",
        ));
    }
    if !pkce::is_valid_challenge(challenge) {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "code_challenge must be 43 base64url characters",
        ));
    }
    let registered = registered_scope.and_then(|s| ScopeSet::parse(s).ok());
    let requested =
        resolve_requested_scope(params.get("scope").map(String::as_str), registered.as_ref())?;
    let resource = match params.get("resource") {
        Some(r) if resource_matches(r, mcp_url) => mcp_url.to_owned(),
        Some(_) => {
            return Err(refuse(
                ErrorCode::InvalidTarget,
                "resource must be this server's MCP URL",
            ));
        }
        None => mcp_url.to_owned(),
    };
    Ok(ValidRequest {
        challenge: challenge.clone(),
        requested,
        resource,
        prompt: params.get("prompt").cloned().unwrap_or_default(),
    })
}

/// The scope a request asks for: as written, else the client's registered scope, else
/// `clari:read`; never more than the client registered.
pub fn resolve_requested_scope(
    asked: Option<&str>,
    registered: Option<&ScopeSet>,
) -> Result<ScopeSet, AuthorizeError> {
    let requested = match asked.map(ScopeSet::parse) {
        None => registered
            .cloned()
            .unwrap_or_else(|| ScopeSet::new([Scope::ClariRead])),
        Some(Ok(s)) if !s.is_empty() => s,
        Some(Ok(_)) => ScopeSet::new([Scope::ClariRead]),
        Some(Err(e)) => return Err(refuse(ErrorCode::InvalidScope, e.to_string())),
    };
    if let Some(registered) = registered
        && !registered.covers(&requested)
    {
        return Err(refuse(
            ErrorCode::InvalidScope,
            "the requested scope exceeds the scope the client registered",
        ));
    }
    Ok(requested)
}

/// Accepts our MCP resource URL (scheme and host compared case-insensitively; one trailing slash allowed).
pub fn resource_matches(requested: &str, canonical: &str) -> bool {
    if requested.contains('#') {
        return false;
    }
    let (Ok(a), Ok(b)) = (url::Url::parse(requested), url::Url::parse(canonical)) else {
        return false;
    };
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
        && a.query().is_none()
}

/// Consent shows the six narrow scopes in place of `clari:read`, so a user can untick any.
fn displayed_scopes(requested: &ScopeSet) -> Vec<Scope> {
    if requested.allows(Scope::ClariRead) {
        Scope::NARROW.to_vec()
    } else {
        requested.iter().collect()
    }
}

/// All six narrow scopes granted amount to `clari:read`.
pub fn normalize(scopes: ScopeSet) -> ScopeSet {
    if Scope::NARROW.iter().all(|s| scopes.allows(*s)) {
        ScopeSet::new([Scope::ClariRead])
    } else {
        scopes
    }
}

pub async fn get_authorize(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Response {
    let raw = raw.unwrap_or_default();
    let params = match parse_pairs(url::form_urlencoded::parse(raw.as_bytes())) {
        Ok(p) => p,
        Err(e) => return bad_request_page(&e.0),
    };
    let Some(client_id) = params.get("client_id") else {
        return bad_request_page("The request names no client (client_id is missing).");
    };
    let caller = crate::http::client_ip(state.config.trusted_proxies, &headers, peer);
    let client = match client::load(&state, client_id, Some(caller)).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return bad_request_page("The application is not registered here (unknown client_id).");
        }
        Err(e) => return web::internal_error_page(&e),
    };
    let redirect_uri = match params.get("redirect_uri") {
        Some(r) => match redirect::find_match(&client.meta.redirect_uris, r) {
            Some(_) => r.clone(),
            None => {
                return bad_request_page("The redirect URI is not one the application registered.");
            }
        },
        None if client.meta.redirect_uris.len() == 1 => client.meta.redirect_uris[0].clone(),
        None => {
            return bad_request_page(
                "The request must name one of the application's redirect URIs.",
            );
        }
    };
    let client_state = params.get("state").cloned();
    if client_state
        .as_ref()
        .is_some_and(|s| s.len() > MAX_STATE_BYTES)
    {
        return bad_request_page("The state parameter is too long.");
    }
    let target = RedirectTarget {
        redirect_uri: redirect_uri.clone(),
        state: client_state.clone(),
    };

    // From here on, errors go back to the application, but only once the user has signed in: an
    // unauthenticated request must not turn this server into a redirector for whatever URI a
    // freshly registered client named (RFC 9700 §4.11.2).
    let user = web::current_user(&state, &session).await;
    let valid = match validate_authorization_request(
        &params,
        client.meta.scope.as_deref(),
        &state.config.mcp_url,
    ) {
        Ok(v) => v,
        Err(e) if user.is_some() => {
            return error_redirect(&state, &target, e.code, &e.description, false);
        }
        Err(e) => {
            return bad_request_page(&format!("The request is not valid: {}.", e.description));
        }
    };
    let ValidRequest {
        challenge,
        requested,
        resource,
        prompt,
    } = valid;
    let prompt = prompt.as_str();

    let pending = Pending {
        client_id: client.id.clone(),
        client_name: client.meta.client_name.clone(),
        redirect_uri,
        state: client_state,
        code_challenge: challenge,
        scope: requested.clone(),
        resource,
        created_at: state.now(),
        force_consent: prompt.split(' ').any(|p| p == "consent" || p == "login"),
    };
    if prompt.split(' ').any(|p| p == "none") {
        let Some((user, _)) = user else {
            return error_redirect(
                &state,
                &target,
                ErrorCode::LoginRequired,
                "the user is not signed in",
                false,
            );
        };
        return match remembered(&state, &user, &client, &pending).await {
            Some(org) => finish(&state, &user, &org, &pending, &requested, false).await,
            None => error_redirect(
                &state,
                &target,
                ErrorCode::ConsentRequired,
                "the user has not approved this application",
                false,
            ),
        };
    }
    let rid = random_token(16);
    if let Err(e) = session.insert(&pending_key(&rid), &pending).await {
        return web::internal_error_page(&e);
    }
    // The sign-in page names the application the user is signing in for.
    web::sign_in_is_for(
        &session,
        &rid,
        &pending.client_name,
        pending.created_at + PENDING_TTL,
    )
    .await;
    web::expire_soon_if_anonymous(&session).await;
    if user.is_none() || prompt.split(' ').any(|p| p == "login") {
        return redirect_to(&format!("/login?rid={}", urlencode(&rid)), false);
    }
    redirect_to(
        &format!("/authorize/consent?rid={}", urlencode(&rid)),
        false,
    )
}

/// The organisation of a live grant that already covers this request, when the choice is unambiguous.
async fn remembered(
    state: &AppState,
    user: &UserId,
    client: &Client,
    p: &Pending,
) -> Option<OrgId> {
    if p.force_consent {
        return None;
    }
    let requested = &p.scope;
    let orgs = core::selectable_orgs(&state.store.memberships(user).await.ok()?);
    // Remembered only when the organisation is not a choice to make.
    let org = core::chosen_org(&orgs, None)?;
    let org = &org;
    let grant = state
        .store
        .live_grant_for(org, user, &client.id)
        .await
        .ok()??;
    (grant.consent_remembered && grant.scope.covers(requested) && grant.resource == p.resource)
        .then(|| org.clone())
}

/// Records the grant, issues a code and sends the browser back to the application.
async fn finish(
    state: &AppState,
    user: &UserId,
    org: &OrgId,
    p: &Pending,
    scopes: &ScopeSet,
    see_other: bool,
) -> Response {
    let target = RedirectTarget {
        redirect_uri: p.redirect_uri.clone(),
        state: p.state.clone(),
    };
    let now = state.now();
    let existing = state
        .store
        .live_grant_for(org, user, &p.client_id)
        .await
        .ok()
        .flatten();
    // A remembered grant keeps what was approved; a new approval records exactly what was approved.
    let grant = match existing {
        Some(g) if g.consent_remembered && g.scope.covers(scopes) && g.resource == p.resource => g,
        _ => match state
            .store
            .upsert_grant(org, user, &p.client_id, scopes, &p.resource, now)
            .await
        {
            Ok(g) => g,
            Err(_) => {
                return error_redirect(
                    state,
                    &target,
                    ErrorCode::ServerError,
                    "the grant could not be recorded",
                    see_other,
                );
            }
        },
    };
    let code = random_token(32);
    let record = CodeRecord {
        code_hash: sha256_hex(&code),
        grant_id: grant.id.clone(),
        organization_id: org.clone(),
        client_id: p.client_id.clone(),
        user_id: user.clone(),
        redirect_uri: p.redirect_uri.clone(),
        code_challenge: p.code_challenge.clone(),
        scope: scopes.clone(),
        resource: p.resource.clone(),
        created_at: now,
        expires_at: now + CODE_TTL,
        consumed_at: None,
    };
    if state.store.insert_code(&record).await.is_err() {
        return error_redirect(
            state,
            &target,
            ErrorCode::ServerError,
            "the authorization code could not be stored",
            see_other,
        );
    }
    tracing::info!(client_id = %p.client_id, org_id = %org, "authorization code issued");
    respond(
        state,
        &p.redirect_uri,
        &[("code", &code)],
        p.state.as_deref(),
        see_other,
    )
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    client_name: String,
    email: String,
    redirect_host: String,
    localhost: bool,
    csrf: String,
    rid: String,
    orgs: Vec<(String, String)>,
    scopes: Vec<(&'static str, &'static str)>,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct ConsentQuery {
    rid: Option<String>,
}

async fn load_pending(state: &AppState, session: &Session, rid: &str) -> Option<Pending> {
    let p: Pending = session.get(&pending_key(rid)).await.ok().flatten()?;
    (p.created_at + PENDING_TTL > state.now()).then_some(p)
}

fn expired_page() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "This request has expired",
        "The sign-in request is unknown or older than 10 minutes.",
        "Return to the application and connect again.",
    )
}

async fn consent_page(
    state: &AppState,
    session: &Session,
    rid: &str,
    p: &Pending,
    user: &UserId,
    email: String,
    error: Option<String>,
) -> Response {
    let orgs: Vec<(String, String)> = match state.store.memberships(user).await {
        Ok(ms) => core::selectable_orgs(&ms)
            .into_iter()
            .map(|(id, name)| (id.into_string(), name))
            .collect(),
        Err(e) => return web::internal_error_page(&e),
    };
    if orgs.is_empty() {
        return error_page(
            StatusCode::FORBIDDEN,
            "No organisation",
            "Your account does not belong to an active organisation.",
            "Ask an administrator to add you to one.",
        );
    }
    let url = url::Url::parse(&p.redirect_uri).ok();
    let host = url
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| p.redirect_uri.clone());
    let localhost = url.as_ref().is_some_and(redirect::is_loopback_url);
    let requested = p.scope.clone();
    let scopes = displayed_scopes(&requested)
        .into_iter()
        .map(|s| (s.as_str(), s.description()))
        .collect();
    let csrf = web::csrf_token(session).await;
    render(
        StatusCode::OK,
        &ConsentPage {
            client_name: p.client_name.clone(),
            email,
            redirect_host: host,
            localhost,
            csrf,
            rid: rid.to_owned(),
            orgs,
            scopes,
            error,
        },
    )
}

pub async fn get_consent(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ConsentQuery>,
) -> Response {
    let Some(rid) = q.rid else {
        return expired_page();
    };
    let Some(p) = load_pending(&state, &session, &rid).await else {
        return expired_page();
    };
    let Some((user, email)) = web::current_user(&state, &session).await else {
        return redirect_to(&format!("/login?rid={}", urlencode(&rid)), false);
    };
    // Loaded (and, for a metadata document, cached) moments ago by GET /authorize.
    let client = match client::load(&state, p.client_id.as_str(), None).await {
        Ok(Some(c)) => c,
        _ => return bad_request_page("The application is no longer registered."),
    };
    if let Some(org) = remembered(&state, &user, &client, &p).await {
        let _ = session.remove_value(&pending_key(&rid)).await;
        let requested = p.scope.clone();
        return finish(&state, &user, &org, &p, &requested, false).await;
    }
    consent_page(&state, &session, &rid, &p, &user, email, None).await
}

pub async fn post_consent(State(state): State<AppState>, session: Session, body: Body) -> Response {
    let form = match read_body(body, 16 * 1024)
        .await
        .and_then(|b| parse_form(&b))
    {
        Ok(f) => f,
        Err(e) => return bad_request_page(&e.0),
    };
    if !web::check_csrf(&session, form.get("csrf")).await {
        return error_page(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The form was not sent from this site's current page.",
            "Go back, reload the page and try again.",
        );
    }
    let Some(rid) = form.get("rid") else {
        return expired_page();
    };
    let Some(p) = load_pending(&state, &session, rid).await else {
        return expired_page();
    };
    let Some((user, email)) = web::current_user(&state, &session).await else {
        return redirect_to(&format!("/login?rid={}", urlencode(rid)), true);
    };
    let target = RedirectTarget {
        redirect_uri: p.redirect_uri.clone(),
        state: p.state.clone(),
    };
    if form.get("decision").map(String::as_str) != Some("approve") {
        // Single use: the request is gone whatever the answer.
        let _ = session.remove_value(&pending_key(rid)).await;
        tracing::info!(client_id = %p.client_id, "consent denied");
        return error_redirect(
            &state,
            &target,
            ErrorCode::AccessDenied,
            "the user denied the request",
            true,
        );
    }
    let requested = p.scope.clone();
    let chosen: ScopeSet = displayed_scopes(&requested)
        .into_iter()
        .filter(|s| form.contains_key(&format!("scope_{}", s.as_str())))
        .collect();
    if chosen.is_empty() {
        return consent_page(
            &state,
            &session,
            rid,
            &p,
            &user,
            email,
            Some("Choose at least one kind of data, or deny.".into()),
        )
        .await;
    }
    let memberships = match state.store.memberships(&user).await {
        Ok(m) => m,
        Err(e) => return web::internal_error_page(&e),
    };
    let org = core::chosen_org(
        &core::selectable_orgs(&memberships),
        form.get("org").map(String::as_str),
    );
    let Some(org) = org else {
        return consent_page(
            &state,
            &session,
            rid,
            &p,
            &user,
            email,
            Some("Choose one of your organisations.".into()),
        )
        .await;
    };
    let _ = session.remove_value(&pending_key(rid)).await;
    finish(&state, &user, &org, &p, &normalize(chosen), true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_comparison_tolerates_case_and_one_trailing_slash_only() {
        let c = "https://mcp.example.com/mcp";
        assert!(resource_matches("https://mcp.example.com/mcp", c));
        assert!(resource_matches("HTTPS://MCP.example.com/mcp", c));
        assert!(resource_matches("https://mcp.example.com/mcp/", c));
        assert!(resource_matches("https://mcp.example.com:443/mcp", c));
        assert!(!resource_matches("https://mcp.example.com/mcp#x", c));
        assert!(!resource_matches("https://mcp.example.com/other", c));
        assert!(!resource_matches("https://evil.example.com/mcp", c));
        assert!(!resource_matches("mcp", c));
    }

    fn params(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const MCP: &str = "https://mcp.example.com/mcp";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("response_type", "code"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]
    }

    #[test]
    fn a_valid_request_defaults_scope_and_resource() {
        let v = validate_authorization_request(&params(&good()), None, MCP).unwrap();
        assert_eq!(v.requested, ScopeSet::new([Scope::ClariRead]));
        assert_eq!(v.resource, MCP);
        let v =
            validate_authorization_request(&params(&good()), Some("forecasts:read"), MCP).unwrap();
        assert_eq!(
            v.requested.to_string(),
            "forecasts:read",
            "the registered scope"
        );
    }

    #[test]
    fn every_refusal_has_its_error_code() {
        let cases: Vec<(Vec<(&str, &str)>, ErrorCode)> = vec![
            (
                vec![("response_type", "token")],
                ErrorCode::UnsupportedResponseType,
            ),
            (vec![], ErrorCode::InvalidRequest),
            (vec![("response_type", "code")], ErrorCode::InvalidRequest),
            (
                vec![
                    ("response_type", "code"),
                    ("code_challenge", CHALLENGE),
                    ("code_challenge_method", "plain"),
                ],
                ErrorCode::InvalidRequest,
            ),
            (
                vec![
                    ("response_type", "code"),
                    ("code_challenge", "short"),
                    ("code_challenge_method", "S256"),
                ],
                ErrorCode::InvalidRequest,
            ),
        ];
        for (p, code) in cases {
            let e = validate_authorization_request(&params(&p), None, MCP).unwrap_err();
            assert_eq!(e.code, code, "{p:?}");
        }
        let mut p = good();
        p.push(("scope", "admin:everything"));
        assert_eq!(
            validate_authorization_request(&params(&p), None, MCP)
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
        for bad in [
            "https://other.example.com/mcp",
            "https://mcp.example.com//mcp",
            "https://mcp.example.com/mcp/x",
        ] {
            let mut p = good();
            p.push(("resource", bad));
            assert_eq!(
                validate_authorization_request(&params(&p), None, MCP)
                    .unwrap_err()
                    .code,
                ErrorCode::InvalidTarget,
                "{bad}"
            );
        }
    }

    #[test]
    fn requested_scope_never_exceeds_the_registered_scope() {
        let reg = ScopeSet::parse("forecasts:read users:read").unwrap();
        assert!(resolve_requested_scope(Some("forecasts:read"), Some(&reg)).is_ok());
        assert_eq!(
            resolve_requested_scope(Some("clari:read"), Some(&reg))
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
        assert_eq!(
            resolve_requested_scope(Some(""), None).unwrap(),
            ScopeSet::new([Scope::ClariRead]),
            "an empty scope asks for the default"
        );
        assert_eq!(resolve_requested_scope(None, Some(&reg)).unwrap(), reg);
    }

    #[test]
    fn six_narrow_scopes_normalize_to_clari_read() {
        let all: ScopeSet = Scope::NARROW.into_iter().collect();
        assert_eq!(normalize(all).to_string(), "clari:read");
        let some = ScopeSet::parse("audit:read users:read").unwrap();
        assert_eq!(normalize(some.clone()), some);
    }
}
