//! The second sign-in step for a person with a TOTP factor: after the password, a six-digit code
//! from their authenticator app (or one of their recovery codes) before the session is signed in.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use tower_sessions::Session;

use super::extract::{ClientAddr, CsrfForm};
use super::login::{
    HalfSignedIn, complete_sign_in, continue_after_sign_in, count_failure, retry_after, too_many,
    wait_for,
};
use super::{csrf_token, internal_error_page, render, see_other};
use crate::audit::{Actor, Event};
use crate::clock::UnixTime;
use crate::crypto::totp;
use crate::http::RequestMeta;
use crate::state::AppState;
use crate::store::{Email, UserCredentials, UserId};

const PENDING_KEY: &str = "second-factor";
/// How long the code form stays valid after the password was proven.
const PENDING_TTL: i64 = 5 * 60;

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactorPage {
    csrf: String,
    email: String,
    error: Option<String>,
}

/// Codes one account may try in a throttling window, from all addresses together: three codes
/// are valid at any moment, so this bounds a guesser holding the password to a 10⁻⁵ chance a
/// window, however many addresses it spreads over.
pub const CODE_TRIES_PER_WINDOW: i64 = 10;

/// Counts one code try for `user` before the code is checked (one atomic increment, so a
/// parallel burst is counted too); `false` once the window's tries are spent.
pub async fn spend_code_try(
    state: &AppState,
    user: &UserId,
    now: UnixTime,
) -> Result<bool, crate::store::StoreError> {
    let window = now - now.rem_euclid(super::login::LOGIN_WINDOW);
    let tries = state
        .store
        .rate_hit_at(&format!("mfa:user:{user}"), window, now)
        .await?;
    Ok(tries <= CODE_TRIES_PER_WINDOW)
}

/// Why a second factor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a code of this person's factor (or no factor).
    Wrong,
    /// The code of a step already used (RFC 6238 §5.2).
    Replayed,
}

/// Checks a TOTP code (six digits) or a recovery code for `user`, spending it: the step is
/// recorded so the same code is refused afterwards on every replica, and a recovery code works
/// once. Returns which factor was used.
pub async fn verify_second_factor(
    state: &AppState,
    user: &UserId,
    code: &str,
    now: UnixTime,
) -> Result<Result<&'static str, Refusal>, crate::store::StoreError> {
    let Some(record) = state.store.totp_of(user).await? else {
        return Ok(Err(Refusal::Wrong));
    };
    let code = code.trim();
    if code.len() == totp::DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
        let Ok(secret) = state.vault.open(&record.ciphertext, &record.key_id) else {
            tracing::error!(user_id = %user, "a TOTP secret cannot be opened with the vault keys");
            return Ok(Err(Refusal::Wrong));
        };
        return Ok(match totp::matching_step(&secret, code, now) {
            None => Err(Refusal::Wrong),
            Some(step) if state.store.use_totp_step(user, step).await? => Ok("totp"),
            Some(_) => Err(Refusal::Replayed),
        });
    }
    let digest = totp::recovery_digest(code);
    Ok(
        if state.store.use_recovery_code(user, &digest, now).await? {
            Ok("recovery_code")
        } else {
            Err(Refusal::Wrong)
        },
    )
}

/// After the password: remember who proved it and ask for the code.
pub async fn begin(
    state: &AppState,
    session: &Session,
    creds: &UserCredentials,
    rid: Option<String>,
    next: Option<String>,
) -> Response {
    let until = state.now() + PENDING_TTL;
    let pending = match HalfSignedIn::stash(session, PENDING_KEY, creds, (rid, next), until).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    page(session, StatusCode::OK, &pending.email, None).await
}

async fn page(
    session: &Session,
    status: StatusCode,
    email: &str,
    error: Option<String>,
) -> Response {
    let csrf = csrf_token(session).await;
    render(
        status,
        &SecondFactorPage {
            csrf,
            email: email.to_owned(),
            error,
        },
    )
}

/// `POST /login/second-factor`: the code; throttled like the password, per (account, address)
/// and per address.
pub async fn post_second_factor(
    State(state): State<AppState>,
    session: Session,
    ClientAddr(ip): ClientAddr,
    meta: RequestMeta,
    CsrfForm(form): CsrfForm,
) -> Response {
    let now = state.now();
    let Some(pending) = HalfSignedIn::pending(&session, PENDING_KEY, now).await else {
        return see_other("/login");
    };
    let (Ok(email), Ok(user)) = (
        Email::parse(&pending.email),
        UserId::parse(&pending.user_id),
    ) else {
        return see_other("/login");
    };
    match wait_for(&state, &email, ip, now).await {
        Err(r) => return r,
        Ok(Some(wait)) => {
            state.metrics.signin("throttled");
            let page = page(
                &session,
                StatusCode::TOO_MANY_REQUESTS,
                &pending.email,
                Some(too_many(wait)),
            )
            .await;
            return retry_after(page, wait);
        }
        Ok(None) => {}
    }
    let event = |action: &'static str, outcome: &'static str| {
        Event::new(
            None,
            Actor::person(user.as_str(), pending.email.clone()),
            action,
        )
        .outcome(outcome)
        .from_request(meta.request_id.clone(), Some(ip.to_string()))
    };
    match spend_code_try(&state, &user, now).await {
        Ok(true) => {}
        Ok(false) => {
            // The password step starts over once the window has passed.
            let _ = session.remove_value(PENDING_KEY).await;
            state.metrics.signin("throttled");
            return page(
                &session,
                StatusCode::TOO_MANY_REQUESTS,
                &pending.email,
                Some("Too many codes for this account. Sign in again in 15 minutes.".into()),
            )
            .await;
        }
        Err(e) => return internal_error_page(&e),
    }
    let code = form.get("code").map(String::as_str).unwrap_or_default();
    let verdict = match verify_second_factor(&state, &user, code, now).await {
        Ok(v) => v,
        Err(e) => return internal_error_page(&e),
    };
    let factor = match verdict {
        Ok(factor) => factor,
        Err(refusal) => {
            state.metrics.signin("failure");
            if let Err(r) = count_failure(&state, &email, ip, now).await {
                return r;
            }
            let (reason, words) = match refusal {
                Refusal::Wrong => ("wrong second factor", "That code is not right."),
                Refusal::Replayed => (
                    "second factor replayed",
                    "That code was already used. Wait for the next one.",
                ),
            };
            state
                .audit
                .record(event("signin.failure", "failure").detail("reason", reason));
            return page(
                &session,
                StatusCode::UNAUTHORIZED,
                &pending.email,
                Some(words.into()),
            )
            .await;
        }
    };
    // The account must still be the one that proved the password, unchanged since.
    let creds = match state.store.find_user_by_email(&email).await {
        Ok(Some(c))
            if c.user.id == user && c.session_epoch == pending.epoch && !c.user.disabled =>
        {
            c
        }
        Ok(_) => {
            let _ = session.remove_value(PENDING_KEY).await;
            return see_other("/login");
        }
        Err(e) => return internal_error_page(&e),
    };
    let _ = session.remove_value(PENDING_KEY).await;
    if let Err(r) = complete_sign_in(&session, &creds).await {
        return r;
    }
    state.metrics.signin("success");
    state
        .audit
        .record(event("signin.success", "success").detail("second_factor", factor));
    continue_after_sign_in(pending.rid, pending.next)
}
