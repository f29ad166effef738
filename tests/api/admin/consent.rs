//! The admin scope at consent: shown in red to admins only, never granted to a member, and an
//! admin's token opens `/api/v1` but no MCP tool.

use super::*;
use crate::helpers::oauth::{Browser, authorize_url, exchange, pkce, query_of, register_public};

both_backends!(the_admin_scope_is_consented_only_by_admins);

/// Runs an authorization asking for `scope` as `email`, ticking every box shown; returns the
/// consent page's HTML and the token answer.
async fn consent_for(app: &TestApp, email: &str, scope: &str) -> (String, Value) {
    let client = register_public(app).await;
    let client_id = client["client_id"].as_str().unwrap();
    let p = pkce();
    let mut b = Browser::new(app);
    let resource = app.state.config.mcp_url.clone();
    let start = b
        .get(&authorize_url(
            client_id,
            &p.challenge,
            "s",
            scope,
            &resource,
        ))
        .await;
    let after = b.login(&start.location.unwrap(), email, PASSWORD).await;
    let consent = b.get(&after.location.unwrap()).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let shown: Vec<&str> = clari_mcp::scope::Scope::ALL
        .iter()
        .map(|s| s.as_str())
        .filter(|s| consent.body.contains(&format!("name=\"scope_{s}\"")))
        .collect();
    let done = b.approve(&consent, None, &shown).await;
    let code = query_of(&done.location.unwrap())["code"].clone();
    let (status, token) = exchange(app, client_id, &code, &p.verifier).await;
    assert_eq!(status, 200, "{token}");
    (consent.body, token)
}

async fn the_admin_scope_is_consented_only_by_admins(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let hash = app
        .state
        .passwords
        .hash(secrecy::SecretString::from(PASSWORD.to_owned()))
        .await
        .unwrap();
    app.state
        .store
        .create_user(
            &env.org,
            &Email::parse("mo@acme.test").unwrap(),
            &hash,
            Role::Member,
            app.state.now(),
        )
        .await
        .unwrap();

    let (page, token) = consent_for(app, "mo@acme.test", "forecasts:read admin").await;
    assert!(
        !page.contains("scope_admin"),
        "a member is not offered admin"
    );
    assert_eq!(token["scope"], "forecasts:read");

    let (page, token) = consent_for(app, "ava@acme.test", "clari:read admin").await;
    let admin_row = page
        .split("<li")
        .find(|li| li.contains("scope_admin"))
        .unwrap();
    assert!(admin_row.contains("class=\"danger\""), "{admin_row}");
    assert!(admin_row.contains("Change things"));
    assert_eq!(token["scope"], "clari:read admin");
    let jwt = token["access_token"].as_str().unwrap();
    let (status, members) = api(app, jwt, Method::GET, "/api/v1/members", None).await;
    assert_eq!(status, 200, "{members}");

    // clari:read alone does not reach the admin API.
    let (_, token) = consent_for(app, "ava@acme.test", "clari:read").await;
    let (status, _) = api(
        app,
        token["access_token"].as_str().unwrap(),
        Method::GET,
        "/api/v1/members",
        None,
    )
    .await;
    assert_eq!(status, 403);
}
