//! Running an organisation without shell access: `/api/v1` and the account and admin pages.

mod api;
mod consent;
mod pages;

use clari_mcp::store::{Email, Role, UserId};
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::mcp::{call_tool, mcp_env, rpc};
use crate::helpers::oauth::PASSWORD;
use crate::helpers::{TestApp, TestDb};

/// One `/api/v1` call with a bearer token and an optional JSON body: status and JSON answer.
pub async fn api(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Invites `email` through `/api/v1/invitations` and accepts as the person would, in a browser
/// of their own: a new account with their own password (`PASSWORD`), or signed in with it when
/// the account exists. Returns the membership as `/api/v1/members` shows it.
async fn join(app: &TestApp, admin_key: &str, email: &str, role: &str) -> Value {
    let (status, inv) = api(
        app,
        admin_key,
        Method::POST,
        "/api/v1/invitations",
        Some(json!({"email": email, "role": role})),
    )
    .await;
    assert_eq!(status, 201, "{inv}");
    accept_invitation(app, inv["url"].as_str().unwrap(), PASSWORD).await;
    let (_, members) = api(
        app,
        admin_key,
        Method::GET,
        "/api/v1/members?limit=100",
        None,
    )
    .await;
    let email = email.to_lowercase();
    members["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == email.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{email} did not join: {members}"))
}

/// Accepts the invitation at `link` in a fresh browser: creates the account with `password`,
/// or, when one exists, signs in with it and accepts.
pub async fn accept_invitation(app: &TestApp, link: &str, password: &str) {
    let mut b = crate::helpers::oauth::Browser::new(app);
    let page = b.get(link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = crate::helpers::oauth::hidden(&page.body, "csrf");
    let path = link.strip_prefix(&app.address).unwrap().to_owned();
    let created = b
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("action", "create"),
                ("new", password),
                ("confirm", password),
            ],
        )
        .await;
    if created.status == 303 {
        return;
    }
    assert_eq!(created.status, 409, "{}", created.body);
    let to_login = b
        .post(&path, &[("csrf", &csrf), ("action", "accept")])
        .await;
    let login = to_login.location.expect("sent to sign in");
    let email = crate::helpers::oauth::query_of(&format!("http://x{login}"))["email"].clone();
    let page = b.get(&login).await;
    let csrf = crate::helpers::oauth::hidden(&page.body, "csrf");
    let next = crate::helpers::oauth::hidden(&page.body, "next");
    let signed_in = b
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", &email),
                ("password", password),
                ("next", &next),
            ],
        )
        .await;
    assert_eq!(
        signed_in.location.as_deref(),
        Some(path.as_str()),
        "{}",
        signed_in.body
    );
    let page = b.get(&path).await;
    let csrf = crate::helpers::oauth::hidden(&page.body, "csrf");
    let accepted = b
        .post(&path, &[("csrf", &csrf), ("action", "accept")])
        .await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
}
