//! The consent page: who is asking, for which scopes (untick any), in which organisation; then
//! approve (a code goes back to the validated redirect URI) or deny.

use askama::Template;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tower_sessions::Session;

use super::authorize::{
    PENDING_TTL, Pending, RedirectTarget, bad_request_page, error_redirect, finish, pending_key,
    redirect_to, remembered,
};
use super::error::ErrorCode;
use super::request::{displayed_scopes, normalize};
use super::{client, core, redirect};
use crate::audit::{Actor, Event};
use crate::http::RequestMeta;
use crate::scope::ScopeSet;
use crate::state::AppState;
use crate::store::UserId;
use crate::web::extract::CsrfForm;
use crate::web::{self, error_page, render, urlencode};

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    client_name: String,
    /// The host that identifies the client (see [`super::client::identifying_host`]).
    client_host: String,
    /// Whether `client_host` is the client's metadata document's (else its redirect host).
    client_host_is_document: bool,
    email: String,
    redirect_host: String,
    localhost: bool,
    csrf: String,
    rid: String,
    /// (id, name, slug) of each organisation the person can choose.
    orgs: Vec<(String, String, String)>,
    /// (name, description, dangerous)
    scopes: Vec<(&'static str, &'static str, bool)>,
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
    let memberships = match state.store.memberships(user).await {
        Ok(ms) => ms,
        Err(e) => return web::internal_error_page(&e),
    };
    // Never preselected: a person in several organisations chooses one for every new grant,
    // by its name and slug.
    let orgs: Vec<(String, String, String)> = core::selectable_orgs(&memberships)
        .into_iter()
        .map(|(id, name)| {
            let slug = memberships
                .iter()
                .find(|m| m.organization.id == id)
                .map(|m| m.organization.slug.clone())
                .unwrap_or_default();
            (id.into_string(), name, slug)
        })
        .collect();
    let admin_somewhere = core::admin_somewhere(&memberships);
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
    let scopes = displayed_scopes(&requested, admin_somewhere)
        .into_iter()
        .map(|s| (s.as_str(), s.description(), s.is_dangerous()))
        .collect();
    let csrf = web::csrf_token(session).await;
    render(
        StatusCode::OK,
        &ConsentPage {
            client_name: p.client_name.clone(),
            client_host: super::client::identifying_host(
                p.client_id.as_str(),
                &p.redirect_uri,
                state.config.danger_cimd_allow_loopback,
            ),
            client_host_is_document: super::client::is_cimd_id(
                p.client_id.as_str(),
                state.config.danger_cimd_allow_loopback,
            ),
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

pub async fn post_consent(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    CsrfForm(form): CsrfForm,
) -> Response {
    let request = meta.parts();
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
        state.audit.record(
            Event::new(None, Actor::person(user.as_str(), email), "consent.denied")
                .target(p.client_id.as_str())
                .outcome("denied")
                .from_request(request.0, request.1)
                .detail("client_name", p.client_name.as_str())
                .detail("scope", p.scope.to_string()),
        );
        return error_redirect(
            &state,
            &target,
            ErrorCode::AccessDenied,
            "the user denied the request",
            true,
        );
    }
    let requested = p.scope.clone();
    let memberships = match state.store.memberships(&user).await {
        Ok(m) => m,
        Err(e) => return web::internal_error_page(&e),
    };
    let chosen: ScopeSet = displayed_scopes(&requested, core::admin_somewhere(&memberships))
        .into_iter()
        .filter(|s| form.contains_key(&format!("scope_{}", s.as_str())))
        .collect();
    // The consent page again, saying what is missing from the answer.
    let again = async |missing: &str| {
        consent_page(
            &state,
            &session,
            rid,
            &p,
            &user,
            email.clone(),
            Some(missing.into()),
        )
        .await
    };
    if chosen.is_empty() {
        return again("Choose at least one kind of data, or deny.").await;
    }
    let org = core::chosen_org(
        &core::selectable_orgs(&memberships),
        form.get("org").map(String::as_str),
    );
    let Some(org) = org else {
        return again("Choose one of your organisations.").await;
    };
    let _ = session.remove_value(&pending_key(rid)).await;
    let granted = normalize(chosen);
    state.audit.record(
        Event::new(
            Some(&org),
            Actor::person(user.as_str(), email),
            "consent.granted",
        )
        .target(p.client_id.as_str())
        .from_request(request.0, request.1)
        .detail("client_name", p.client_name.as_str())
        .detail("scope", granted.to_string())
        .detail("requested_scope", requested.to_string()),
    );
    finish(&state, &user, &org, &p, &granted, true).await
}
