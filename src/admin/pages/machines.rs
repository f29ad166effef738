//! `/admin/machines`: the organisation's machine clients (client credentials): list, register
//! with public keys or a secret shown once, revoke.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::ExposeSecret;
use tower_sessions::Session;

use super::keys::ticked_scopes;
use super::{AdminPost, acting, after, when};
use crate::admin::service::{MachineKeys, NewMachineClient};
use crate::scope::Scope;
use crate::state::AppState;
use crate::web::console::{AdminConsole, Nav};
use crate::web::{internal_error_page, render};

const BACK: &str = "/admin/machines";

struct MachineRow {
    id: String,
    name: String,
    scope: String,
    method: &'static str,
    created: String,
    last_used: String,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_machines.html")]
struct MachinesPage {
    nav: Nav,
    clients: Vec<MachineRow>,
    scopes: Vec<(&'static str, &'static str)>,
    token_endpoint: String,
    mcp_url: String,
}

#[derive(Template)]
#[template(path = "machine_created.html")]
struct CreatedPage {
    nav: Nav,
    name: String,
    client_id: String,
    secret: Option<String>,
    scope: String,
    token_endpoint: String,
}

/// `GET /admin/machines`.
pub async fn page(
    State(state): State<AppState>,
    session: Session,
    AdminConsole(c): AdminConsole,
) -> Response {
    let clients = match acting(&state, &c, Default::default())
        .machine_clients()
        .await
    {
        Ok(list) => list,
        Err(e) => return internal_error_page(&e),
    };
    let clients = clients
        .into_iter()
        .map(|m| MachineRow {
            id: m.id.to_string(),
            name: m.name,
            scope: m.scopes.to_string(),
            method: m.auth_method.as_str(),
            created: when(m.created_at),
            last_used: m.last_used_at.map_or_else(|| "never".to_owned(), when),
            revoked: m.revoked_at.map(when),
        })
        .collect();
    let nav = c.nav(&session, "machines", BACK).await;
    render(
        StatusCode::OK,
        &MachinesPage {
            nav,
            clients,
            scopes: Scope::ALL
                .into_iter()
                .filter(|s| *s != Scope::Admin)
                .map(|s| (s.as_str(), s.description()))
                .collect(),
            token_endpoint: format!("{}/token", state.config.issuer),
            mcp_url: state.config.mcp_url.clone(),
        },
    )
}

/// `POST /admin/machines`: the secret, when there is one, is on this answer only.
pub async fn create(State(state): State<AppState>, p: AdminPost) -> Response {
    let f = &p.form;
    let text = |k: &str| {
        f.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let keys = match (
        f.get("method").map(String::as_str),
        text("jwks"),
        text("jwks_uri"),
    ) {
        (Some("jwks"), Some(jwks), _) => MachineKeys::Jwks(jwks),
        (Some("jwks_uri"), _, Some(uri)) => MachineKeys::JwksUri(uri),
        (Some("secret"), _, _) => MachineKeys::Secret,
        _ => {
            let why = crate::admin::service::AdminError::invalid(
                "keys",
                "paste the client's public keys (JWKS), give their URL, or choose a secret",
            );
            return after(&p.session, BACK, Err(why)).await;
        }
    };
    let new = NewMachineClient {
        name: f.get("name").cloned().unwrap_or_default(),
        scopes: ticked_scopes(f),
        keys,
    };
    match p.admin(&state).create_machine_client(new).await {
        Ok((client, secret)) => {
            let nav = p.c.nav(&p.session, "machines", BACK).await;
            render(
                StatusCode::CREATED,
                &CreatedPage {
                    nav,
                    name: client.name.clone(),
                    client_id: client.id.to_string(),
                    secret: secret.map(|s| s.expose_secret().to_owned()),
                    scope: client.scopes.to_string(),
                    token_endpoint: format!("{}/token", state.config.issuer),
                },
            )
        }
        Err(e) => after(&p.session, BACK, Err(e)).await,
    }
}
