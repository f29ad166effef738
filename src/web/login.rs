//! Sign-in with e-mail and password, throttled so that nobody but the owner is slowed down.

use std::net::IpAddr;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tower_sessions::Session;

use super::extract::{ClientAddr, CsrfForm};
use super::{
    CSRF_KEY, EPOCH_KEY, USER_KEY, csrf_token, internal_error_page, render, see_other, sign_in_for,
    urlencode,
};
use crate::audit::{Actor, Event};
use crate::clock::UnixTime;
use crate::crypto::random_token;
use crate::http::{RequestMeta, ip_bucket};
use crate::state::AppState;
use crate::store::{Email, UserCredentials, UserId};

/// The throttling window: counts start afresh every 15 minutes.
pub const LOGIN_WINDOW: i64 = 15 * 60;
/// Wrong passwords for one account from one address before each further try must wait.
pub const FREE_FAILURES_PER_ACCOUNT_AND_ADDRESS: i64 = 5;
/// Wrong passwords from one address (any accounts) before each further try must wait.
pub const FREE_FAILURES_PER_ADDRESS: i64 = 100;
/// The longest wait between two tries.
pub const MAX_DELAY_SECONDS: i64 = 15 * 60;

/// How long a caller must still wait before the next try, after `failures` failures in the
/// window, the last at `last_at`; `None` when they may try now. The first `free` failures cost
/// nothing, then every failure doubles the wait (1 s, 2 s, 4 s, … up to 15 minutes).
///
/// The buckets are (account, address) and (address): a flood of wrong passwords for an account
/// from other addresses never delays its owner on a fresh address (OWASP Authentication Cheat
/// Sheet, "account lockout"; RFC 9700 §4.6 against online guessing).
pub fn wait_before_next_try(
    failures: i64,
    last_at: Option<UnixTime>,
    now: UnixTime,
    free: i64,
) -> Option<i64> {
    if failures < free {
        return None;
    }
    let exponent = (failures - free).min(20) as u32;
    let delay = 2i64.pow(exponent).min(MAX_DELAY_SECONDS);
    let until = last_at.unwrap_or(now) + delay;
    (until > now).then_some(until - now)
}

fn buckets(email: &Email, ip: IpAddr) -> (String, String) {
    let address = ip_bucket(ip);
    (
        format!("login:pair:{email}:{address}"),
        format!("login:ip:{address}"),
    )
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    rid: Option<String>,
    next: Option<String>,
    email: String,
    error: Option<String>,
    client_name: Option<String>,
    /// Where the address's company sign-in starts, when its domain has one.
    sso_url: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    rid: Option<String>,
    next: Option<String>,
    email: Option<String>,
}

/// Where a sign-in may continue besides consent: only our own invitation pages, so `next` can
/// never send anyone elsewhere (no open redirect).
pub fn safe_next(next: Option<&str>) -> Option<String> {
    let n = next?;
    let ok = n.starts_with("/invitations/")
        && n.len() <= 200
        && n[1..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_".contains(c));
    ok.then(|| n.to_owned())
}

/// An authorization request's id as the pages carry it: what `/authorize` makes (22
/// base64url characters) or nothing, so no page stores a long or odd one in a session.
pub fn safe_rid(rid: Option<String>) -> Option<String> {
    rid.filter(|r| {
        (1..=64).contains(&r.len())
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

async fn login_page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    form: (Option<String>, Option<String>, String),
    error: Option<String>,
) -> Response {
    let (rid, next, email) = form;
    let client_name = match &rid {
        Some(r) => sign_in_for(state, session, r).await,
        None => None,
    };
    let sso_url = match Email::parse(&email) {
        Ok(e) => sso_start_url(state, &e, rid.as_deref(), next.as_deref()).await,
        Err(_) => None,
    };
    let csrf = csrf_token(session).await;
    render(
        status,
        &LoginPage {
            csrf,
            rid,
            next,
            email,
            error,
            client_name,
            sso_url,
        },
    )
}

/// `/sso/start` for an address whose domain an organisation's connection owns.
async fn sso_start_url(
    state: &AppState,
    email: &Email,
    rid: Option<&str>,
    next: Option<&str>,
) -> Option<String> {
    let domain = email.as_str().rsplit_once('@')?.1;
    state
        .store
        .sso_connection_for_domain(domain)
        .await
        .ok()
        .flatten()?;
    let mut url = format!("/sso/start?email={}", urlencode(email.as_str()));
    if let Some(r) = rid {
        url.push_str(&format!("&rid={}", urlencode(r)));
    }
    if let Some(n) = next {
        url.push_str(&format!("&next={}", urlencode(n)));
    }
    Some(url)
}

/// Whether the address's domain belongs to a connection that requires single sign-on.
async fn sso_required(state: &AppState, email: &Email) -> Result<bool, Response> {
    let domain = email.as_str().rsplit_once('@').map_or("", |(_, d)| d);
    match state.store.sso_connection_for_domain(domain).await {
        Ok(c) => Ok(c.is_some_and(|c| c.required)),
        Err(e) => Err(internal_error_page(&e)),
    }
}

pub async fn get_login(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<LoginQuery>,
) -> Response {
    let email = q.email.unwrap_or_default().chars().take(254).collect();
    let next = safe_next(q.next.as_deref());
    login_page(
        &state,
        &session,
        StatusCode::OK,
        (safe_rid(q.rid), next, email),
        None,
    )
    .await
}

/// A page answering a throttled sign-in step, with `Retry-After` (RFC 9110 §10.2.3) saying when
/// to try again.
pub(super) fn retry_after(mut page: Response, wait: i64) -> Response {
    page.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait.max(1)));
    page
}

/// A sign-in half done: the password was proven, and one more step (a second factor, a new
/// password) is due before a deadline. It lives in the server-side session under the step's key;
/// the session id is renewed when it is stored, so a session fixed beforehand learns nothing.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct HalfSignedIn {
    pub user_id: String,
    pub email: String,
    pub epoch: i64,
    pub rid: Option<String>,
    pub next: Option<String>,
    pub until: i64,
}

impl HalfSignedIn {
    /// Stores the half-done sign-in of `creds` under `key` until `until`.
    pub(super) async fn stash(
        session: &Session,
        key: &str,
        creds: &UserCredentials,
        (rid, next): (Option<String>, Option<String>),
        until: i64,
    ) -> Result<HalfSignedIn, Response> {
        let half = HalfSignedIn {
            user_id: creds.user.id.to_string(),
            email: creds.user.email.clone(),
            epoch: creds.session_epoch,
            rid,
            next,
            until,
        };
        if session.cycle_id().await.is_err() || session.insert(key, &half).await.is_err() {
            return Err(internal_error_page(&"the session could not be updated"));
        }
        Ok(half)
    }

    /// The half-done sign-in under `key`, while it is still in time.
    pub(super) async fn pending(session: &Session, key: &str, now: i64) -> Option<HalfSignedIn> {
        let half: Option<HalfSignedIn> = session.get(key).await.ok().flatten();
        half.filter(|h| h.until > now)
    }
}

pub async fn post_login(
    State(state): State<AppState>,
    session: Session,
    ClientAddr(ip): ClientAddr,
    meta: RequestMeta,
    CsrfForm(mut form): CsrfForm,
) -> Response {
    let rid = safe_rid(form.get("rid").cloned());
    let next = safe_next(form.get("next").map(String::as_str));
    let email_text = form.get("email").cloned().unwrap_or_default();
    // Moved out of the form, not copied; `SecretString` wipes it when dropped.
    let password = SecretString::from(form.remove("password").unwrap_or_default());
    let echo = (rid.clone(), next.clone(), email_text.clone());
    let generic = "The e-mail or password is incorrect.".to_owned();
    // The sign-in page again, with what was typed (never the password) and why.
    let again = async |status: StatusCode, why: Option<String>| {
        login_page(&state, &session, status, echo.clone(), why).await
    };
    let Ok(email) = Email::parse(&email_text) else {
        return again(StatusCode::UNAUTHORIZED, Some(generic)).await;
    };
    // E-mail first: an address of a company with single sign-on goes to its provider; any other
    // is asked for its password.
    if password.expose_secret().is_empty() {
        if let Some(url) = sso_start_url(&state, &email, rid.as_deref(), next.as_deref()).await {
            return see_other(&url);
        }
        return again(StatusCode::OK, None).await;
    }
    // A company that requires single sign-on: no password sign-in for its domains, whoever
    // asks (so the answer says nothing about who has an account).
    match sso_required(&state, &email).await {
        Err(r) => return r,
        Ok(true) => {
            return again(
                StatusCode::FORBIDDEN,
                Some("Your company requires its own sign-in: continue with single sign-on.".into()),
            )
            .await;
        }
        Ok(false) => {}
    }

    // Throttle before spending argon2 work. A refused try is only read and counted in the
    // metrics: it writes nothing, so a flood adds no rows.
    let now = state.now();
    match wait_for(&state, &email, ip, now).await {
        Err(r) => return r,
        Ok(Some(wait)) => {
            state.metrics.signin("throttled");
            let page = again(StatusCode::TOO_MANY_REQUESTS, Some(too_many(wait))).await;
            return retry_after(page, wait);
        }
        Ok(None) => {}
    }

    let request_id = meta.request_id;
    let signin = |action: &'static str, outcome: &'static str, user: Option<&UserId>| {
        let actor = Actor {
            kind: "user",
            id: user.map(|u| u.to_string()),
            name: Some(email.to_string()),
        };
        Event::new(None, actor, action)
            .outcome(outcome)
            .from_request(request_id.clone(), Some(ip.to_string()))
    };

    let creds = match state.store.find_user_by_email(&email).await {
        Ok(c) => c,
        Err(e) => return internal_error_page(&e),
    };
    let hash = creds.as_ref().map(|c| c.password_hash.clone());
    let verified = state
        .passwords
        .verify(password, hash)
        .await
        .unwrap_or(false);
    let known = creds.as_ref().map(|c| c.user.id.clone());
    let Some(creds) = creds.filter(|c| verified && !c.user.disabled) else {
        tracing::info!("sign-in failed");
        state.metrics.signin("failure");
        let reason = if known.is_some() && verified {
            "user disabled"
        } else {
            "wrong e-mail or password"
        };
        let counted = match count_failure(&state, &email, ip, now).await {
            Ok(c) => c,
            Err(r) => return r,
        };
        state
            .audit
            .record(signin("signin.failure", "failure", known.as_ref()).detail("reason", reason));
        // One event when waiting starts, not one per refused try.
        if counted.0 == FREE_FAILURES_PER_ACCOUNT_AND_ADDRESS
            || counted.1 == FREE_FAILURES_PER_ADDRESS
        {
            state.audit.record(
                signin("signin.throttled", "denied", known.as_ref())
                    .detail("failures_from_address", counted.1)
                    .detail("failures_for_account_from_address", counted.0),
            );
        }
        return again(StatusCode::UNAUTHORIZED, Some(generic)).await;
    };
    if creds.must_change_password {
        return super::password_change::begin(&state, &session, &creds, rid, next).await;
    }
    if creds.mfa_enabled {
        return super::mfa::begin(&state, &session, &creds, rid, next).await;
    }
    if let Err(r) = complete_sign_in(&session, &creds).await {
        return r;
    }
    tracing::info!(user_id = %creds.user.id, "signed in");
    state.metrics.signin("success");
    state
        .audit
        .record(signin("signin.success", "success", Some(&creds.user.id)));
    continue_after_sign_in(rid, next)
}

/// How long the next try from `ip` for `email` must wait, if at all: a read, no write.
pub async fn wait_for(
    state: &AppState,
    email: &Email,
    ip: IpAddr,
    now: UnixTime,
) -> Result<Option<i64>, Response> {
    let window = now - now.rem_euclid(LOGIN_WINDOW);
    let (pair, by_ip) = buckets(email, ip);
    let (pair_seen, ip_seen) = match (
        state.store.rate_peek(&pair, window).await,
        state.store.rate_peek(&by_ip, window).await,
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Err(internal_error_page(&e)),
    };
    Ok([
        wait_before_next_try(
            pair_seen.0,
            pair_seen.1,
            now,
            FREE_FAILURES_PER_ACCOUNT_AND_ADDRESS,
        ),
        wait_before_next_try(ip_seen.0, ip_seen.1, now, FREE_FAILURES_PER_ADDRESS),
    ]
    .into_iter()
    .flatten()
    .max())
}

/// Counts a failed try (a wrong password or second factor): `(for the account from this
/// address, from this address)` in the current window.
pub async fn count_failure(
    state: &AppState,
    email: &Email,
    ip: IpAddr,
    now: UnixTime,
) -> Result<(i64, i64), Response> {
    let window = now - now.rem_euclid(LOGIN_WINDOW);
    let (pair, by_ip) = buckets(email, ip);
    match (
        state.store.rate_hit_at(&pair, window, now).await,
        state.store.rate_hit_at(&by_ip, window, now).await,
    ) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), _) | (_, Err(e)) => Err(internal_error_page(&e)),
    }
}

pub fn too_many(wait: i64) -> String {
    format!(
        "Too many wrong attempts from here. Wait {} and try again.",
        in_words(wait)
    )
}

fn in_words(seconds: i64) -> String {
    match seconds {
        s if s < 90 => format!("{s} seconds"),
        s => format!("{} minutes", (s + 59) / 60),
    }
}

/// Signs the session in as `creds`: a new session id (no fixation), a fresh CSRF token, the
/// account's epoch, and the long idle expiry.
pub async fn complete_sign_in(session: &Session, creds: &UserCredentials) -> Result<(), Response> {
    session.set_expiry(Some(tower_sessions::Expiry::OnInactivity(
        super::SIGNED_IN_SESSION_IDLE,
    )));
    if session.cycle_id().await.is_err()
        || session
            .insert(USER_KEY, creds.user.id.as_str())
            .await
            .is_err()
        || session
            .insert("email", creds.user.email.as_str())
            .await
            .is_err()
        || session
            .insert(EPOCH_KEY, creds.session_epoch)
            .await
            .is_err()
        || session.insert(CSRF_KEY, random_token(32)).await.is_err()
    {
        return Err(internal_error_page(
            &"the session could not be updated at sign-in",
        ));
    }
    Ok(())
}

/// Consent for the authorization request, the invitation being accepted, or the account page.
pub fn continue_after_sign_in(rid: Option<String>, next: Option<String>) -> Response {
    match (rid, next) {
        (Some(rid), _) => see_other(&format!("/authorize/consent?rid={}", urlencode(&rid))),
        (None, Some(next)) => see_other(&next),
        (None, None) => see_other("/account"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failures_are_free_then_each_doubles_the_wait() {
        let free = FREE_FAILURES_PER_ACCOUNT_AND_ADDRESS;
        assert_eq!(wait_before_next_try(free - 1, Some(100), 100, free), None);
        assert_eq!(wait_before_next_try(free, Some(100), 100, free), Some(1));
        assert_eq!(wait_before_next_try(free, Some(100), 101, free), None);
        assert_eq!(
            wait_before_next_try(free + 3, Some(100), 100, free),
            Some(8)
        );
        assert_eq!(
            wait_before_next_try(free + 3, Some(100), 105, free),
            Some(3)
        );
        assert_eq!(
            wait_before_next_try(free + 40, Some(100), 100, free),
            Some(MAX_DELAY_SECONDS)
        );
    }

    #[test]
    fn next_only_leads_to_our_invitation_pages() {
        assert_eq!(
            safe_next(Some("/invitations/abc-_1")).as_deref(),
            Some("/invitations/abc-_1")
        );
        for bad in [
            "https://evil.test/invitations/x",
            "//evil.test/invitations/x",
            "/account",
            "/invitations/../admin",
            "/invitations/x?y=1",
            "/invitations/x\\y",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad}");
        }
    }
}
