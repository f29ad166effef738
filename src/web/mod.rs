//! Browser pages: sign-in, consent (rendered by the authorization endpoint), the account page where a
//! user revokes what they granted, and error pages. Sessions live in the database (so replicas share
//! them) behind an HttpOnly, SameSite=Lax cookie that is `__Host-` prefixed and Secure on https.
//! Every form carries a per-session CSRF token; every page forbids framing.

pub mod console;
pub mod extract;
pub mod invite;
pub mod login;
pub mod mfa;
mod password_change;
pub mod session;

use askama::Template;
use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_sessions::Session;

use crate::crypto::{constant_time_eq, random_token};
use crate::state::AppState;
use crate::store::{Email, UserId};

pub const USER_KEY: &str = "user_id";
pub(crate) const CSRF_KEY: &str = "csrf";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login::get_login).post(login::post_login))
        .route(
            "/login/new-password",
            post(password_change::post_new_password),
        )
        .route("/login/second-factor", post(mfa::post_second_factor))
        .route(
            "/invitations/{token}",
            get(invite::get_invitation).post(invite::post_invitation),
        )
        .route("/logout", post(post_logout))
}

/// Security headers of every page.
pub fn page(status: StatusCode, html: String) -> Response {
    with_headers(
        (status, axum::response::Html(html)).into_response(),
        &[
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
    )
}

/// `r` with each of `headers` set.
pub fn with_headers(mut r: Response, headers: &[(HeaderName, &'static str)]) -> Response {
    for (name, value) in headers {
        r.headers_mut()
            .insert(name.clone(), HeaderValue::from_static(value));
    }
    r
}

pub fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => page(status, html),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub hint: &'a str,
}

/// An error page that never redirects anywhere.
pub fn error_page(status: StatusCode, title: &str, message: &str, hint: &str) -> Response {
    render(
        status,
        &ErrorPage {
            title,
            message,
            hint,
        },
    )
}

/// The page for a failure of ours; the cause goes to the log once (with the request id of the
/// trace span), never to the page.
pub fn internal_error_page(cause: &dyn std::fmt::Display) -> Response {
    tracing::error!(cause = %cause, "answering 500");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The server could not complete the request.",
        "Try again in a moment.",
    )
}

/// 303 See Other: the right redirect after a POST (RFC 9700 §4.12).
pub fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

/// The session's CSRF token, created on first use.
pub async fn csrf_token(session: &Session) -> String {
    if let Ok(Some(t)) = session.get::<String>(CSRF_KEY).await {
        return t;
    }
    let t = random_token(32);
    let _ = session.insert(CSRF_KEY, &t).await;
    expire_soon_if_anonymous(session).await;
    t
}

/// What a sign-in started by an authorization request is for, shown on the sign-in page.
#[derive(serde::Serialize, serde::Deserialize)]
struct SignInFor {
    client_name: String,
    until: i64,
}

fn sign_in_key(rid: &str) -> String {
    format!("signin-for:{rid}")
}

/// Records that the sign-in of request `rid` is for the application `client_name`, until `until`.
pub async fn sign_in_is_for(session: &Session, rid: &str, client_name: &str, until: i64) {
    let record = SignInFor {
        client_name: client_name.to_owned(),
        until,
    };
    if let Err(e) = session.insert(&sign_in_key(rid), &record).await {
        tracing::warn!(error = %e, "could not note which application a sign-in is for");
    }
}

/// Forgets what the sign-in of request `rid` was for (the request was dropped).
pub async fn forget_sign_in_for(session: &Session, rid: &str) {
    let _ = session.remove_value(&sign_in_key(rid)).await;
}

/// The application the sign-in of request `rid` is for, while the request is still valid.
pub(crate) async fn sign_in_for(state: &AppState, session: &Session, rid: &str) -> Option<String> {
    let r: SignInFor = session.get(&sign_in_key(rid)).await.ok().flatten()?;
    (r.until > state.now()).then_some(r.client_name)
}

/// How long a session with nobody signed in is kept: a sign-in form or an authorization request
/// waiting for sign-in. Anyone can make us create one, so it goes quickly.
pub const ANONYMOUS_SESSION_IDLE: time::Duration = time::Duration::minutes(15);
/// How long a signed-in session is kept without activity.
pub const SIGNED_IN_SESSION_IDLE: time::Duration = time::Duration::hours(12);

/// Gives a session nobody signed in to the short idle expiry.
pub async fn expire_soon_if_anonymous(session: &Session) {
    if matches!(session.get::<String>(USER_KEY).await, Ok(None)) {
        session.set_expiry(Some(tower_sessions::Expiry::OnInactivity(
            ANONYMOUS_SESSION_IDLE,
        )));
    }
}

pub async fn check_csrf(session: &Session, presented: Option<&String>) -> bool {
    match (
        session.get::<String>(CSRF_KEY).await.ok().flatten(),
        presented,
    ) {
        (Some(expected), Some(given)) => constant_time_eq(expected.as_bytes(), given.as_bytes()),
        _ => false,
    }
}

pub fn csrf_failure() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The form was not sent from this site's current page.",
        "Go back, reload the page and try again.",
    )
}

pub(crate) const EPOCH_KEY: &str = "epoch";

/// The signed-in user, if the session has one, the user is still enabled and has not signed out
/// everywhere (or changed password) since this session signed in.
pub async fn current_user(state: &AppState, session: &Session) -> Option<(UserId, String)> {
    let id: String = session.get(USER_KEY).await.ok().flatten()?;
    let email: String = session.get("email").await.ok().flatten()?;
    let epoch: i64 = session.get(EPOCH_KEY).await.ok().flatten().unwrap_or(0);
    let creds = state
        .store
        .find_user_by_email(&Email::parse(&email).ok()?)
        .await
        .ok()
        .flatten()?;
    (creds.user.id.as_str() == id && !creds.user.disabled && creds.session_epoch == epoch)
        .then_some((creds.user.id, email))
}

/// Keeps this session signed in after the user's epoch moved on (their own password change).
pub async fn adopt_epoch(session: &Session, epoch: i64) -> bool {
    session.insert(EPOCH_KEY, epoch).await.is_ok() && session.cycle_id().await.is_ok()
}

const FLASH_KEY: &str = "flash";

/// A one-line message for the next page this session shows: what was done, or why not.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Flash {
    pub error: bool,
    pub text: String,
}

pub async fn flash(session: &Session, error: bool, text: impl Into<String>) {
    let f = Flash {
        error,
        text: text.into(),
    };
    let _ = session.insert(FLASH_KEY, f).await;
}

/// Takes the pending message, if any.
pub async fn take_flash(session: &Session) -> Option<Flash> {
    session.remove::<Flash>(FLASH_KEY).await.ok().flatten()
}

async fn home() -> Response {
    see_other("/account")
}

/// Unix seconds as `2026-11-29 16:40 UTC`.
pub fn when(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(|d| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                d.year(),
                u8::from(d.month()),
                d.day(),
                d.hour(),
                d.minute()
            )
        })
        .unwrap_or_default()
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `POST /logout`. A small form, read leniently: anything unreadable counts as a form without
/// a token, so a broken or forged sign-out is refused as an expired form.
async fn post_logout(session: Session, body: axum::body::Body) -> Response {
    let form = crate::http::read_body(body, 4096)
        .await
        .and_then(|b| crate::http::parse_form(&b))
        .unwrap_or_default();
    if !check_csrf(&session, form.get("csrf")).await {
        return csrf_failure();
    }
    let _ = session.flush().await;
    see_other("/login")
}
