//! The authorization server over HTTP: the whole flow as MCP clients and browsers drive it
//! (`flow`), and the attack matrix of ../shared/oauth-security.md §2 and of the authorization
//! extensions, each rule a test named after it, asserting both the answer and its side effect.

mod authorize;
mod client_credentials;
mod discovery;
mod dpop;
mod flow;
mod id_jag;
mod keys;
mod registration;
mod revocation;
mod token;

use serde_json::{Value, json};

use crate::helpers::oauth::*;
use crate::helpers::{Backend, TestApp, TestDb, spawn_app, spawn_app_with};

async fn app() -> (TestDb, TestApp) {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(&db).await;
    seed_user(&app, "Acme", "ava@acme.test").await;
    (db, app)
}

fn id(client: &Value) -> String {
    client["client_id"].as_str().unwrap().to_owned()
}

/// GET /authorize with the given query pairs.
async fn authorize_raw(b: &mut Browser<'_>, pairs: &[(&str, &str)]) -> Page {
    let mut u = url::Url::parse("http://x/authorize").unwrap();
    for (k, v) in pairs {
        u.query_pairs_mut().append_pair(k, v);
    }
    b.get(&format!("/authorize?{}", u.query().unwrap_or_default()))
        .await
}

fn base<'a>(client_id: &'a str, p: &'a Pkce) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("code_challenge", &p.challenge),
        ("code_challenge_method", "S256"),
        ("state", "xyz"),
    ]
}

fn with<'a>(
    mut pairs: Vec<(&'a str, &'a str)>,
    key: &'a str,
    value: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    pairs.retain(|(k, _)| *k != key);
    if let Some(v) = value {
        pairs.push((key, v));
    }
    pairs
}

fn assert_error_page(p: &Page) {
    assert_eq!(
        p.status, 400,
        "expected an error page, got {} {:?}",
        p.status, p.location
    );
    assert!(p.location.is_none(), "an error page never redirects");
    assert!(p.body.contains("<html"), "{}", p.body);
}

fn assert_error_redirect(p: &Page, issuer: &str, error: &str) {
    assert_eq!(p.status, 302, "{}", p.body);
    let loc = p.location.as_deref().unwrap();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    let q = query_of(loc);
    assert_eq!(q.get("error").map(String::as_str), Some(error), "{loc}");
    assert_eq!(q.get("state").map(String::as_str), Some("xyz"));
    assert_eq!(q.get("iss").map(String::as_str), Some(issuer));
    assert!(!q.contains_key("code"));
}

fn assert_rfc6749(
    status: u16,
    body: &Value,
    headers: &reqwest::header::HeaderMap,
    expected_status: u16,
    error: &str,
) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let d = body["error_description"].as_str().unwrap_or_default();
    assert!(
        d.chars()
            .all(|c| matches!(c as u32, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
        "{d}"
    );
}

async fn fresh_tokens(app: &TestApp, cid: &str) -> Value {
    let p = pkce();
    let mut b = Browser::new(app);
    let q = authorize(&mut b, cid, &p, "ava@acme.test").await;
    let (s, t) = exchange(app, cid, &q["code"], &p.verifier).await;
    assert_eq!(s, 200, "{t}");
    t
}

async fn refresh(app: &TestApp, cid: &str, rt: &str) -> (u16, Value) {
    let (s, b, _) = refresh_with(app, cid, rt).await;
    (s, b)
}
