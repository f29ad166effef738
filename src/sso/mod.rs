//! Single sign-on with an organisation's OpenID Connect provider.
//!
//! The sign-in page asks for the e-mail address first; an address of a domain an organisation's
//! connection owns goes to `/sso/start`, which sends the person to that provider (code flow,
//! PKCE, `state`, `nonce`). `/sso/callback` validates the ID token ([`oidc`]) and signs the
//! person in:
//! - the provider identity is (issuer, `sub`), never the e-mail address alone: a provider that
//!   lets people edit their address cannot reach another account;
//! - the first sign-in of an identity makes the account (without a password) and the membership
//!   with the role the groups claim maps to; later sign-ins update the role;
//! - an identity whose address already has an account here is linked only after the person
//!   proves that account's password once (`/sso/link`);
//! - someone whose groups map to no role, or who is suspended in the organisation (by an admin
//!   or by SCIM), is refused.

pub mod connection;
pub mod oidc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tower_sessions::Session;

use crate::audit::{Actor, Event};
use crate::crypto::constant_time_eq;
use crate::state::AppState;
use crate::store::{Email, OrgId, Role, SsoConnection, Standing, UserCredentials, UserId};
use crate::web::extract::{ClientAddr, CsrfForm};
use crate::web::login::{
    complete_sign_in, continue_after_sign_in, count_failure, safe_next, safe_rid, too_many,
    wait_for,
};
use crate::web::{self, error_page, internal_error_page, render};

const STARTED_KEY: &str = "sso-started";
const LINK_KEY: &str = "sso-link";
/// How long a trip to the provider (or the linking form) may take.
const PENDING_TTL: i64 = 10 * 60;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sso/start", get(start))
        .route("/sso/callback", get(callback))
        .route("/sso/link", post(link))
}

/// The path of the callback, under the public URL.
pub const CALLBACK_PATH: &str = "/sso/callback";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pending {
    org: String,
    started: oidc::Started,
    rid: Option<String>,
    next: Option<String>,
    until: i64,
}

fn refused(title: &str, message: &str) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        title,
        message,
        "Ask your company's IT team or an administrator of the organisation.",
    )
}

fn provider_failed(e: &dyn std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "single sign-on failed");
    error_page(
        StatusCode::BAD_GATEWAY,
        "Your company's sign-in did not work",
        &format!("{e}."),
        "Try again; if it keeps failing, tell your company's IT team.",
    )
}

/// The domain of an address, lower-case.
pub fn domain_of(email: &Email) -> &str {
    email.as_str().rsplit_once('@').map_or("", |(_, d)| d)
}

async fn provider(state: &AppState, conn: &SsoConnection) -> Result<oidc::Provider, Response> {
    let secret = state
        .vault
        .open_string(&conn.secret_ciphertext, &conn.secret_key_id)
        .map_err(|e| internal_error_page(&e))?;
    oidc::Provider::discover(
        crate::net::guarded_client(state.config.danger_sso_allow_loopback),
        &conn.issuer,
        &conn.client_id,
        secret.expose_secret(),
        &format!("{}{CALLBACK_PATH}", state.config.public_url),
    )
    .await
    .map_err(|e| provider_failed(&e))
}

#[derive(Deserialize)]
pub struct StartQuery {
    email: Option<String>,
    rid: Option<String>,
    next: Option<String>,
}

/// `GET /sso/start?email=…`: to the provider of the address's domain.
async fn start(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<StartQuery>,
) -> Response {
    let Some(email) = q.email.as_deref().and_then(|e| Email::parse(e).ok()) else {
        return web::see_other("/login");
    };
    let conn = match state
        .store
        .sso_connection_for_domain(domain_of(&email))
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => {
            return web::see_other(&format!("/login?email={}", web::urlencode(email.as_str())));
        }
        Err(e) => return internal_error_page(&e),
    };
    let provider = match provider(&state, &conn).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let started = provider.start(Some(email.as_str()));
    let pending = Pending {
        org: conn.organization_id.to_string(),
        started: started.clone(),
        rid: safe_rid(q.rid),
        next: safe_next(q.next.as_deref()),
        until: state.now() + PENDING_TTL,
    };
    // One trip at a time per browser: a new one replaces the old.
    if session.insert(STARTED_KEY, &pending).await.is_err() {
        return internal_error_page(&"the session could not be updated");
    }
    web::expire_soon_if_anonymous(&session).await;
    Redirect::to(&started.url).into_response()
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /sso/callback`: back from the provider.
async fn callback(
    State(state): State<AppState>,
    session: Session,
    ClientAddr(ip): ClientAddr,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let now = state.now();
    let pending: Option<Pending> = session.get(STARTED_KEY).await.ok().flatten();
    let _ = session.remove_value(STARTED_KEY).await;
    // The state binds the answer to this browser's trip (RFC 6749 §10.12): anything else is
    // refused before the code is used.
    let Some(pending) = pending.filter(|p| {
        p.until > now
            && q.state
                .as_deref()
                .is_some_and(|s| constant_time_eq(s.as_bytes(), p.started.state.as_bytes()))
    }) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired",
            "The answer from your company's sign-in does not belong to a sign-in started here.",
            "Start again from the sign-in page.",
        );
    };
    if let Some(e) = q.error.as_deref() {
        return refused(
            "Your company's sign-in said no",
            &format!(
                "The provider answered: {}.",
                e.chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(60)
                    .collect::<String>()
            ),
        );
    }
    let Some(code) = q.code.as_deref() else {
        return provider_failed(&"the provider sent no code");
    };
    let Ok(org) = OrgId::parse(&pending.org) else {
        return internal_error_page(&"a pending sign-in names no organisation");
    };
    let conn = match state.store.sso_connection(&org).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return refused(
                "Single sign-on is off",
                "The organisation no longer uses single sign-on.",
            );
        }
        Err(e) => return internal_error_page(&e),
    };
    let provider = match provider(&state, &conn).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let who = match provider
        .finish(code, &pending.started, &conn.groups_claim, now)
        .await
    {
        Ok(v) => v,
        Err(e) => {
            // Anyone can repeat a failing trip: the first failure per address and window is an
            // event, the rest are counted and summarised.
            let event = Event::new(Some(&org), Actor::system(), "signin.failure")
                .outcome("failure")
                .target(crate::net::address_bucket(ip))
                .detail("method", "sso")
                .detail("reason", e.to_string());
            state
                .audit
                .record_refusal(state.store.as_ref(), event, "sso_provider")
                .await;
            return provider_failed(&e);
        }
    };
    let Ok(email) = Email::parse(&who.email) else {
        return provider_failed(&"the provider's e-mail address is not one");
    };
    // The address must be of a domain this connection owns.
    match state.store.sso_domains(&org).await {
        Ok(domains) if domains.iter().any(|d| d == domain_of(&email)) => {}
        Ok(_) => {
            return refused(
                "This address is not your company's",
                &format!("{email} is not of a domain your company's sign-in owns here."),
            );
        }
        Err(e) => return internal_error_page(&e),
    }
    let user = match state.store.sso_identity(&who.issuer, &who.subject).await {
        Ok(Some(u)) => u,
        Ok(None) => match state.store.find_user_by_email(&email).await {
            Ok(Some(_)) => {
                return begin_link(&state, &session, &org, &who, &email, pending).await;
            }
            Ok(None) => match state
                .store
                .create_sso_user(&email, &who.issuer, &who.subject, now)
                .await
            {
                Ok(c) => c.user.id,
                Err(e) => return internal_error_page(&e),
            },
            Err(e) => return internal_error_page(&e),
        },
        Err(e) => return internal_error_page(&e),
    };
    finish_sign_in(&state, &session, &conn, &user, &email, &who.groups, pending).await
}

/// The role the person's groups map to: the admin group makes an admin; the member group (or
/// any group when none is configured) a member; otherwise none.
pub fn role_for(groups: &[String], conn: &SsoConnection) -> Option<Role> {
    let has = |g: &Option<String>| g.as_ref().is_some_and(|g| groups.iter().any(|x| x == g));
    if has(&conn.admin_group) {
        Some(Role::Admin)
    } else if conn.member_group.is_none() || has(&conn.member_group) {
        Some(Role::Member)
    } else {
        None
    }
}

/// Just-in-time membership with the mapped role, then the session.
async fn finish_sign_in(
    state: &AppState,
    session: &Session,
    conn: &SsoConnection,
    user: &UserId,
    email: &Email,
    groups: &[String],
    pending: Pending,
) -> Response {
    let org = &conn.organization_id;
    let now = state.now();
    let actor = Actor::person(user.as_str(), email.to_string());
    let Some(role) = role_for(groups, conn) else {
        return refused(
            "Not assigned",
            "Your company's directory does not give you access to clari-mcp in this organisation.",
        );
    };
    // The account is the identity's, whatever address the provider sends today.
    let creds = match state.store.find_user_by_id(user).await {
        Ok(Some(c)) if !c.user.disabled => c,
        Ok(_) => return refused("Account disabled", "This account is disabled."),
        Err(e) => return internal_error_page(&e),
    };
    match state.store.member(org, user).await {
        Ok(None) => {
            if let Err(e) = state.store.add_membership(org, user, role, now).await {
                return internal_error_page(&e);
            }
            state.audit.record(
                Event::new(Some(org), actor.clone(), "member.joined")
                    .detail("role", role.as_str())
                    .detail("method", "sso"),
            );
        }
        Ok(Some(m)) if m.suspended => {
            return refused(
                "Suspended",
                "You are suspended in this organisation; your company's sign-in does not change that.",
            );
        }
        Ok(Some(m)) if m.role != role => {
            match state
                .store
                .update_member(
                    org,
                    user,
                    Standing::new(m.role, false),
                    Standing::new(role, false),
                )
                .await
            {
                Ok(_) => state.audit.record(
                    Event::new(Some(org), actor.clone(), "member.role_changed")
                        .target(user.as_str())
                        .detail("role", role.as_str())
                        .detail("method", "sso"),
                ),
                Err(e) => return internal_error_page(&e),
            }
        }
        Ok(Some(_)) => {}
        Err(e) => return internal_error_page(&e),
    }
    sign_in(state, session, &creds, org, pending).await
}

async fn sign_in(
    state: &AppState,
    session: &Session,
    creds: &UserCredentials,
    org: &OrgId,
    pending: Pending,
) -> Response {
    if let Err(r) = complete_sign_in(session, creds).await {
        return r;
    }
    // The console opens in the organisation whose sign-in this was.
    let _ = session.insert("org", org.as_str()).await;
    state.metrics.signin("success");
    state.audit.record(
        Event::new(
            None,
            Actor::person(creds.user.id.as_str(), creds.user.email.clone()),
            "signin.success",
        )
        .detail("method", "sso")
        .detail("organization_id", org.as_str()),
    );
    continue_after_sign_in(pending.rid, pending.next)
}

// --- linking an existing account -----------------------------------------------------------------

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct LinkPending {
    org: String,
    issuer: String,
    subject: String,
    email: String,
    groups: Vec<String>,
    pending: Pending,
    until: i64,
}

#[derive(Template)]
#[template(path = "sso_link.html")]
struct LinkPage {
    csrf: String,
    email: String,
    error: Option<String>,
}

async fn link_page(
    session: &Session,
    status: StatusCode,
    email: &str,
    error: Option<String>,
) -> Response {
    let csrf = web::csrf_token(session).await;
    render(
        status,
        &LinkPage {
            csrf,
            email: email.to_owned(),
            error,
        },
    )
}

async fn begin_link(
    state: &AppState,
    session: &Session,
    org: &OrgId,
    who: &oidc::Verified,
    email: &Email,
    pending: Pending,
) -> Response {
    let link = LinkPending {
        org: org.to_string(),
        issuer: who.issuer.clone(),
        subject: who.subject.clone(),
        email: email.to_string(),
        groups: who.groups.clone(),
        pending,
        until: state.now() + PENDING_TTL,
    };
    if session.insert(LINK_KEY, &link).await.is_err() {
        return internal_error_page(&"the session could not be updated");
    }
    link_page(session, StatusCode::OK, email.as_str(), None).await
}

/// `POST /sso/link`: the password of the existing account, once, to link the provider identity
/// to it (throttled like sign-in).
async fn link(
    State(state): State<AppState>,
    session: Session,
    ClientAddr(ip): ClientAddr,
    CsrfForm(mut form): CsrfForm,
) -> Response {
    let now = state.now();
    let pending: Option<LinkPending> = session.get(LINK_KEY).await.ok().flatten();
    let Some(link) = pending.filter(|l| l.until > now) else {
        return web::see_other("/login");
    };
    let (Ok(email), Ok(org)) = (Email::parse(&link.email), OrgId::parse(&link.org)) else {
        return web::see_other("/login");
    };
    match wait_for(&state, &email, ip, now).await {
        Err(r) => return r,
        Ok(Some(wait)) => {
            return link_page(
                &session,
                StatusCode::TOO_MANY_REQUESTS,
                &link.email,
                Some(too_many(wait)),
            )
            .await;
        }
        Ok(None) => {}
    }
    let password = SecretString::from(form.remove("password").unwrap_or_default());
    let creds = match state.store.find_user_by_email(&email).await {
        Ok(Some(c)) => c,
        Ok(None) => return web::see_other("/login"),
        Err(e) => return internal_error_page(&e),
    };
    let ok = state
        .passwords
        .verify(password, Some(creds.password_hash.clone()))
        .await
        .unwrap_or(false);
    if !ok {
        if let Err(r) = count_failure(&state, &email, ip, now).await {
            return r;
        }
        return link_page(
            &session,
            StatusCode::UNAUTHORIZED,
            &link.email,
            Some("That password is not right.".into()),
        )
        .await;
    }
    if let Err(e) = state
        .store
        .link_sso_identity(&link.issuer, &link.subject, &creds.user.id, now)
        .await
    {
        return internal_error_page(&e);
    }
    let _ = session.remove_value(LINK_KEY).await;
    state.audit.record(
        Event::new(
            Some(&org),
            Actor::person(creds.user.id.as_str(), creds.user.email.clone()),
            "user.sso_linked",
        )
        .detail("issuer", link.issuer.as_str()),
    );
    let conn = match state.store.sso_connection(&org).await {
        Ok(Some(c)) => c,
        Ok(None) => return web::see_other("/login"),
        Err(e) => return internal_error_page(&e),
    };
    finish_sign_in(
        &state,
        &session,
        &conn,
        &creds.user.id,
        &email,
        &link.groups,
        link.pending,
    )
    .await
}
