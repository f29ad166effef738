//! `/account`: what every signed-in person manages for themselves: the applications they
//! connected, their own API keys, their password, their two-step sign-in, their sessions and the
//! organisation they are working in. Changes act through the organisation's admin service, so
//! the same rules hold as on the admin pages and the API.

mod mfa;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use secrecy::{ExposeSecret, SecretString};
use tower_sessions::Session;

use crate::admin::pages::keys::{GrantRow, KeyRow, expiry, key_created, ticked_scopes};
use crate::admin::pages::{acting, after};
use crate::admin::service::AdminError;
use crate::audit::{Actor, Event};
use crate::crypto::Passwords;
use crate::http::RequestMeta;
use crate::scope::Scope;
use crate::state::AppState;
use crate::store::{ApiKey, GrantView, Role, StoreError};
use crate::web::console::{Console, Nav, ORG_KEY, not_found};
use crate::web::extract::Posted;
use crate::web::{self, internal_error_page, render, see_other};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(page))
        .route("/account/org", post(switch_org))
        .route("/account/grants/{id}/revoke", post(revoke_grant))
        .route("/account/api-keys", post(create_key))
        .route("/account/api-keys/{id}/revoke", post(revoke_key))
        .route("/account/password", post(change_password))
        .route("/account/mfa", get(mfa::page).post(mfa::enable))
        .route("/account/mfa/disable", post(mfa::disable))
        .route("/account/sign-out-everywhere", post(sign_out_everywhere))
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    apps: Vec<GrantRow>,
    keys: Vec<KeyRow>,
    scopes: Vec<(&'static str, &'static str, bool)>,
    admin_somewhere: bool,
}

/// The person's live API keys in every organisation they can act in.
async fn own_keys(state: &AppState, c: &Console) -> Result<Vec<(ApiKey, String)>, Response> {
    let mut out = Vec::new();
    for m in &c.memberships {
        let keys = state
            .store
            .list_api_keys(&m.organization.id)
            .await
            .map_err(|e| internal_error_page(&e))?;
        out.extend(
            keys.into_iter()
                .filter(|k| k.user_id == c.user && k.revoked_at.is_none())
                .map(|k| (k, m.organization.name.clone())),
        );
    }
    Ok(out)
}

/// The person's live grants in every organisation they belong to, newest first, as the page has
/// always listed them. The store answers one organisation at a time; a grant never outlives its
/// membership (removing a person revokes their grants there), so asking each organisation of
/// theirs, suspended and disabled ones included, finds every one.
async fn own_grants(state: &AppState, c: &Console) -> Result<Vec<GrantView>, StoreError> {
    let mut out = Vec::new();
    for m in &c.memberships {
        out.extend(
            state
                .store
                .grants_of_user(&m.organization.id, &c.user)
                .await?,
        );
    }
    // Newest first, then by id: the order the one query across organisations gave.
    out.sort_by(|a, b| (b.grant.updated_at, &a.grant.id).cmp(&(a.grant.updated_at, &b.grant.id)));
    Ok(out)
}

async fn page(State(state): State<AppState>, session: Session, c: Console) -> Response {
    let grants = match own_grants(&state, &c).await {
        Ok(g) => g,
        Err(e) => return internal_error_page(&e),
    };
    let apps = grants
        .iter()
        .map(|g| GrantRow::new(g, &g.organization_name))
        .collect();
    let keys = match own_keys(&state, &c).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let keys = keys.iter().map(|(k, org)| KeyRow::new(k, org)).collect();
    let admin_somewhere = c
        .memberships
        .iter()
        .any(|m| m.role == Role::Admin && !m.suspended && !m.organization.disabled);
    let scopes = Scope::ALL
        .into_iter()
        .filter(|s| admin_somewhere || *s != Scope::Admin)
        .map(|s| (s.as_str(), s.description(), s.is_dangerous()))
        .collect();
    let nav = c.nav(&session, "account", "/account").await;
    render(
        StatusCode::OK,
        &AccountPage {
            nav,
            apps,
            keys,
            scopes,
            admin_somewhere,
        },
    )
}

/// Switches the organisation the console works in (only to one the person can act in).
async fn switch_org(session: Session, Posted { by: c, form: f }: Posted<Console>) -> Response {
    let wanted = f.get("org").map(String::as_str).unwrap_or_default();
    let Some(m) = c
        .memberships
        .iter()
        .find(|m| m.organization.id.as_str() == wanted && !m.organization.disabled && !m.suspended)
    else {
        return not_found("organisation");
    };
    if session.insert(ORG_KEY, wanted).await.is_err() {
        return internal_error_page(&"the session could not be updated");
    }
    web::flash(
        &session,
        false,
        format!("Now working in {}.", m.organization.name),
    )
    .await;
    // Back to the page the switch was made on, when it is one of ours.
    let back = f.get("back").map(String::as_str).unwrap_or("/account");
    let back = if back == "/account" || back.starts_with("/admin") && !back.contains("//") {
        back
    } else {
        "/account"
    };
    see_other(back)
}

async fn revoke_grant(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    meta: RequestMeta,
    Posted { by: c, .. }: Posted<Console>,
) -> Response {
    let grants = match own_grants(&state, &c).await {
        Ok(g) => g,
        Err(e) => return internal_error_page(&e),
    };
    // Only the person's own grants can be revoked from here.
    let Some(g) = grants.into_iter().find(|g| g.grant.id.as_str() == id) else {
        return not_found("connected application");
    };
    if let Err(e) = state
        .store
        .revoke_grant(&g.grant.organization_id, &g.grant.id, state.now())
        .await
    {
        return internal_error_page(&e);
    }
    let (request_id, ip) = meta.parts();
    state.audit.record(
        Event::new(
            Some(&g.grant.organization_id),
            Actor::person(c.user.as_str(), c.email.clone()),
            "grant.revoked",
        )
        .target(g.grant.id.as_str())
        .from_request(request_id, ip)
        .detail("client_id", g.grant.client_id.as_str())
        .detail("client_name", g.client_name.as_str())
        .detail("via", "account page"),
    );
    web::flash(
        &session,
        false,
        format!("{} can no longer read your Clari data.", g.client_name),
    )
    .await;
    see_other("/account")
}

async fn create_key(
    State(state): State<AppState>,
    session: Session,
    meta: RequestMeta,
    Posted { by: mut c, form: f }: Posted<Console>,
) -> Response {
    // The key belongs to the organisation chosen in the form, one the person can act in.
    let wanted = f.get("org").map(String::as_str).unwrap_or_default();
    let Some(m) = c
        .memberships
        .iter()
        .find(|m| m.organization.id.as_str() == wanted && !m.organization.disabled && !m.suspended)
        .cloned()
    else {
        return not_found("organisation");
    };
    c.org = m.organization.clone();
    let admin = acting(&state, &c, meta);
    let made = match expiry(&f, state.now()) {
        Ok(expires) => {
            admin
                .create_api_key(
                    &c.user,
                    f.get("name").map(String::as_str).unwrap_or_default(),
                    ticked_scopes(&f),
                    expires,
                )
                .await
        }
        Err(e) => Err(e),
    };
    match made {
        Ok((secret, key)) => {
            let nav = c.nav(&session, "account", "/account").await;
            key_created(nav, &secret, &key, &m.organization.name, "/account")
        }
        Err(e) => after(&session, "/account", Err(e)).await,
    }
}

async fn revoke_key(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    meta: RequestMeta,
    Posted { by: mut c, .. }: Posted<Console>,
) -> Response {
    let keys = match own_keys(&state, &c).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let Some((key, _)) = keys.into_iter().find(|(k, _)| k.id.as_str() == id) else {
        return not_found("API key");
    };
    if let Some(m) = c
        .memberships
        .iter()
        .find(|m| m.organization.id == key.organization_id)
    {
        c.org = m.organization.clone();
    }
    let admin = acting(&state, &c, meta);
    let outcome = admin
        .revoke_api_key(&id)
        .await
        .map(|()| format!("API key “{}” revoked.", key.name));
    after(&session, "/account", outcome).await
}

async fn change_password(
    State(state): State<AppState>,
    session: Session,
    Posted { by: c, form: mut f }: Posted<Console>,
) -> Response {
    let current = SecretString::from(f.remove("current").unwrap_or_default());
    let new = SecretString::from(f.remove("new").unwrap_or_default());
    let confirm = SecretString::from(f.remove("confirm").unwrap_or_default());
    let fail = |why: &str| AdminError::invalid("password", why);
    let outcome: Result<String, AdminError> = async {
        let email =
            crate::store::Email::parse(&c.email).map_err(|_| AdminError::NotFound("user"))?;
        let Some(creds) = state.store.find_user_by_email(&email).await? else {
            return Err(AdminError::NotFound("user"));
        };
        let ok = state
            .passwords
            .verify(current, Some(creds.password_hash.clone()))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(fail("the current password is not right"));
        }
        if new.expose_secret() != confirm.expose_secret() {
            return Err(fail("the new password and its confirmation differ"));
        }
        Passwords::check_policy(&new).map_err(|e| fail(&e.to_string()))?;
        let hash = state
            .passwords
            .hash(new)
            .await
            .map_err(|e| fail(&e.to_string()))?;
        state.store.set_user_password(&c.user, &hash, false).await?;
        // Every other browser session of this person is signed out; this one stays.
        let epoch = state.store.bump_session_epoch(&c.user).await?;
        if !web::adopt_epoch(&session, epoch).await {
            return Err(AdminError::Store(crate::store::StoreError::NotFound(
                "session",
            )));
        }
        for m in &c.memberships {
            state.audit.record(Event::new(
                Some(&m.organization.id),
                Actor::person(c.user.as_str(), c.email.clone()),
                "user.password_changed",
            ));
        }
        Ok("Password changed. Your other browser sessions are signed out.".to_owned())
    }
    .await;
    after(&session, "/account", outcome).await
}

async fn sign_out_everywhere(
    State(state): State<AppState>,
    session: Session,
    Posted { by: c, .. }: Posted<Console>,
) -> Response {
    if let Err(e) = state.store.bump_session_epoch(&c.user).await {
        return internal_error_page(&e);
    }
    for m in &c.memberships {
        state.audit.record(Event::new(
            Some(&m.organization.id),
            Actor::person(c.user.as_str(), c.email.clone()),
            "user.signed_out_everywhere",
        ));
    }
    let _ = session.flush().await;
    see_other("/login")
}
