//! The admin pages of one organisation: its Clari connection, its members, the applications and
//! API keys that can read its data, and the kill switch.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use tower_sessions::Session;

use super::keys::{GrantRow, KeyRow, expiry, key_created, ticked_scopes};
use super::{AdminPost, acting, after, when};
use crate::admin::service::{AdminError, MemberChange};
use crate::scope::Scope;
use crate::state::AppState;
use crate::store::{Role, UserId};
use crate::web::console::{AdminConsole, Console, Nav};
use crate::web::{internal_error_page, render};

// --- Clari connection -------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "admin_clari.html")]
struct ClariPage {
    nav: Nav,
    hint: Option<String>,
    base_url: Option<String>,
    rotated: String,
    test: Option<TestResult>,
}

struct TestResult {
    ok: bool,
    text: String,
}

async fn clari_view(
    state: &AppState,
    session: &Session,
    c: &Console,
    test: Option<TestResult>,
) -> Response {
    let admin = acting(state, c, Default::default());
    let info = match admin.clari_credential().await {
        Ok(i) => i,
        Err(e) => return internal_error_page(&e),
    };
    let nav = c.nav(session, "clari", "/admin").await;
    render(
        StatusCode::OK,
        &ClariPage {
            nav,
            hint: info.as_ref().map(|i| format!("****{}", i.key_hint)),
            base_url: info.as_ref().and_then(|i| i.base_url.clone()),
            rotated: info
                .as_ref()
                .map(|i| when(i.rotated_at))
                .unwrap_or_default(),
            test,
        },
    )
}

pub async fn clari_page(
    State(state): State<AppState>,
    session: Session,
    AdminConsole(c): AdminConsole,
) -> Response {
    clari_view(&state, &session, &c, None).await
}

pub async fn set_clari_key(State(state): State<AppState>, mut p: AdminPost) -> Response {
    let key = SecretString::from(p.form.remove("api_key").unwrap_or_default());
    let outcome = p
        .admin(&state)
        .replace_clari_key(key)
        .await
        .map(|i| format!("Clari API key ****{} stored.", i.key_hint));
    after(&p.session, "/admin", outcome).await
}

pub async fn test_clari_key(
    State(state): State<AppState>,
    AdminPost {
        c, meta, session, ..
    }: AdminPost,
) -> Response {
    let result = match acting(&state, &c, meta).test_connection().await {
        Ok(l) => TestResult {
            ok: true,
            text: format!(
                "Clari answered. Export jobs: {} of {} concurrent slots free; {} of {} this month's quota left.",
                l.jobs.available_concurrent_limit,
                l.jobs.concurrent_limit,
                l.jobs.available_monthly_quota,
                l.jobs.monthly_quota
            ),
        },
        Err(words) => TestResult {
            ok: false,
            text: format!("The connection failed: {words}."),
        },
    };
    clari_view(&state, &session, &c, Some(result)).await
}

// --- members ----------------------------------------------------------------------------------

struct MemberRow {
    id: String,
    email: String,
    role: &'static str,
    status: &'static str,
    suspended: bool,
    is_me: bool,
}

struct InvitationRow {
    id: String,
    email: String,
    role: &'static str,
    expires: String,
}

#[derive(Template)]
#[template(path = "admin_members.html")]
struct MembersPage {
    nav: Nav,
    members: Vec<MemberRow>,
    invitations: Vec<InvitationRow>,
    invitation_days: i64,
}

/// The organisation's members and pending invitations. What an admin sees of a person is their
/// membership here (e-mail, role, suspended), nothing of their account or other organisations.
pub async fn members_page(
    State(state): State<AppState>,
    session: Session,
    AdminConsole(c): AdminConsole,
) -> Response {
    let admin = acting(&state, &c, Default::default());
    let (members, invitations) = match tokio::try_join!(admin.members(), admin.invitations()) {
        Ok(both) => both,
        Err(e) => return internal_error_page(&e),
    };
    let members = members
        .into_iter()
        .map(|m| MemberRow {
            is_me: m.user.id == c.user,
            id: m.user.id.to_string(),
            email: m.user.email,
            role: m.role.as_str(),
            status: if m.suspended { "suspended" } else { "active" },
            suspended: m.suspended,
        })
        .collect();
    let invitations = invitations
        .into_iter()
        .map(|i| InvitationRow {
            id: i.id.to_string(),
            email: i.email,
            role: i.role.as_str(),
            expires: when(i.expires_at),
        })
        .collect();
    let nav = c.nav(&session, "members", "/admin/members").await;
    render(
        StatusCode::OK,
        &MembersPage {
            nav,
            members,
            invitations,
            invitation_days: (state.config.invitation_ttl + 43_199) / 86_400,
        },
    )
}

#[derive(Template)]
#[template(path = "invitation_created.html")]
struct InvitationCreatedPage {
    nav: Nav,
    email: String,
    role: &'static str,
    org_name: String,
    link: String,
    expires: String,
    emailed: Result<(), String>,
}

/// `POST /admin/members`: invites a person. The link is shown on this answer only.
pub async fn invite_member(State(state): State<AppState>, p: AdminPost) -> Response {
    let role = match p.form.get("role").map(String::as_str) {
        Some("admin") => Role::Admin,
        _ => Role::Member,
    };
    let email = p.form.get("email").cloned().unwrap_or_default();
    match p.admin(&state).invite(&email, role).await {
        Ok(created) => {
            let nav = p.c.nav(&p.session, "members", "/admin/members").await;
            render(
                StatusCode::OK,
                &InvitationCreatedPage {
                    nav,
                    email: created.invitation.email.clone(),
                    role: created.invitation.role.as_str(),
                    org_name: p.c.org.name.clone(),
                    link: created.link.expose_secret().to_owned(),
                    expires: when(created.invitation.expires_at),
                    emailed: created.emailed,
                },
            )
        }
        Err(e) => after(&p.session, "/admin/members", Err(e)).await,
    }
}

/// One form per row: `action` is `make_admin`, `make_member`, `suspend`, `reinstate` or `remove`.
pub async fn change_member(
    State(state): State<AppState>,
    Path(id): Path<String>,
    p: AdminPost,
) -> Response {
    let admin = p.admin(&state);
    let outcome: Result<String, AdminError> = async {
        let seen = admin.member(&id).await?;
        let change = |role: Option<Role>, suspended: Option<bool>| MemberChange { role, suspended };
        let who = seen.user.email.clone();
        match p.form.get("action").map(String::as_str) {
            Some("remove") => {
                admin.remove_member(&id).await?;
                Ok(format!(
                    "{who} was removed; their keys and connected apps here are revoked."
                ))
            }
            Some("make_admin") => {
                admin
                    .update_member(&seen, change(Some(Role::Admin), None))
                    .await?;
                Ok(format!("{who} is now an admin."))
            }
            Some("make_member") => {
                admin
                    .update_member(&seen, change(Some(Role::Member), None))
                    .await?;
                Ok(format!("{who} is now a member."))
            }
            Some("suspend") => {
                admin.update_member(&seen, change(None, Some(true))).await?;
                Ok(format!("{who} is suspended in this organisation."))
            }
            Some("reinstate") => {
                admin
                    .update_member(&seen, change(None, Some(false)))
                    .await?;
                Ok(format!("{who} is active again."))
            }
            _ => Err(AdminError::invalid("action", "choose what to do")),
        }
    }
    .await;
    after(&p.session, "/admin/members", outcome).await
}

// --- applications and API keys ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "admin_access.html")]
struct AccessPage {
    nav: Nav,
    grants: Vec<GrantRow>,
    keys: Vec<KeyRow>,
    members: Vec<(String, String)>,
    scopes: Vec<(&'static str, &'static str, bool)>,
}

pub async fn access_page(
    State(state): State<AppState>,
    session: Session,
    AdminConsole(c): AdminConsole,
) -> Response {
    let admin = acting(&state, &c, Default::default());
    let (grants, keys, members) =
        match tokio::try_join!(admin.grants(), admin.api_keys(), admin.members()) {
            Ok(all) => all,
            Err(e) => return internal_error_page(&e),
        };
    let grants = grants
        .iter()
        .map(|g| GrantRow::new(g, &g.user_email))
        .collect();
    let keys = keys
        .iter()
        .filter(|k| k.revoked_at.is_none())
        .map(|k| KeyRow::new(k, &k.user_email))
        .collect();
    let members = members
        .into_iter()
        .filter(|m| !m.suspended && !m.user.disabled)
        .map(|m| (m.user.id.to_string(), m.user.email))
        .collect();
    let scopes = Scope::ALL
        .into_iter()
        .map(|s| (s.as_str(), s.description(), s.is_dangerous()))
        .collect();
    let nav = c.nav(&session, "access", "/admin/access").await;
    render(
        StatusCode::OK,
        &AccessPage {
            nav,
            grants,
            keys,
            members,
            scopes,
        },
    )
}

/// An admin creates a key for any active member (from the access page); shown once.
async fn create_key_for(
    state: &AppState,
    p: &AdminPost,
) -> Result<(SecretString, crate::store::ApiKey), AdminError> {
    let f = &p.form;
    let user = f
        .get("user")
        .and_then(|u| UserId::parse(u).ok())
        .ok_or(AdminError::NotFound("member"))?;
    p.admin(state)
        .create_api_key(
            &user,
            f.get("name").map(String::as_str).unwrap_or_default(),
            ticked_scopes(f),
            expiry(f, state.now())?,
        )
        .await
}

// --- kill switch ------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "admin_kill.html")]
struct KillPage {
    nav: Nav,
    error: Option<String>,
    reason: String,
}

pub async fn kill_page(session: Session, AdminConsole(c): AdminConsole) -> Response {
    let nav = c.nav(&session, "access", "/admin/kill").await;
    render(
        StatusCode::OK,
        &KillPage {
            nav,
            error: None,
            reason: String::new(),
        },
    )
}

#[derive(Template)]
#[template(path = "admin_killed.html")]
struct KilledPage {
    org_name: String,
    report: crate::governance::KillReport,
}

pub async fn kill(State(state): State<AppState>, p: AdminPost) -> Response {
    let reason = p.form.get("reason").cloned().unwrap_or_default();
    let confirm = p.form.get("confirm").cloned().unwrap_or_default();
    match p.admin(&state).kill(&reason, &confirm).await {
        Ok(report) => render(
            StatusCode::OK,
            &KilledPage {
                org_name: p.c.org.name.clone(),
                report,
            },
        ),
        Err(AdminError::Store(e)) => internal_error_page(&e),
        Err(e) => {
            let nav = p.c.nav(&p.session, "access", "/admin/kill").await;
            render(
                StatusCode::BAD_REQUEST,
                &KillPage {
                    nav,
                    error: Some(e.to_string()),
                    reason,
                },
            )
        }
    }
}

/// `POST /admin/api-keys`: an admin makes a key for a member.
pub async fn create_key(State(state): State<AppState>, p: AdminPost) -> Response {
    match create_key_for(&state, &p).await {
        Ok((secret, key)) => {
            let nav = p.c.nav(&p.session, "access", "/admin/access").await;
            key_created(nav, &secret, &key, &p.c.org.name, "/admin/access")
        }
        Err(e) => after(&p.session, "/admin/access", Err(e)).await,
    }
}
