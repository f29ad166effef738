//! DPoP (RFC 9449): bound tokens from the token endpoint, proofs checked on every protected
//! request, server nonces, and each rule of §4.3 refused on its own.

use reqwest::Method;

use super::keys::{Key, claims_of};
use super::*;
use crate::admin::api;
use crate::helpers::mcp::{McpEnv, mcp_env, rpc};

/// `/token` with a DPoP header.
async fn token_with_proof(
    app: &TestApp,
    proof: &str,
    form: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = app
        .http
        .post(app.url("/token"))
        .header("DPoP", proof)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.json().await.unwrap_or(Value::Null), headers)
}

/// `tools/list` on `/mcp` with `Authorization: <scheme> <token>` and an optional proof.
async fn mcp_call(
    app: &TestApp,
    scheme: &str,
    token: &str,
    proof: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = app
        .http
        .post(app.url("/mcp"))
        .header("authorization", format!("{scheme} {token}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", crate::helpers::mcp::PROTOCOL)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}));
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

fn nonce_of(h: &reqwest::header::HeaderMap) -> String {
    h["dpop-nonce"].to_str().unwrap().to_owned()
}

/// The `DPoP` challenge of a 401 (after the `Bearer` one).
fn dpop_challenge(h: &reqwest::header::HeaderMap) -> String {
    h.get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("DPoP "))
        .expect("a DPoP challenge")
}

/// A public client's code exchanged with a proof of `key`: the nonce round trip first.
async fn bound_tokens(env: &McpEnv, key: &Key) -> Value {
    let app = &env.app;
    let cid = id(&register_public(app).await);
    let p = pkce();
    let mut b = Browser::new(app);
    let q = authorize(&mut b, &cid, &p, "ava@acme.test").await;
    let token_url = format!("{}/token", app.state.config.issuer);
    let now = app.state.now();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", cid.as_str()),
        ("code", q["code"].as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", p.verifier.as_str()),
    ];
    // Without a nonce: 400 use_dpop_nonce, with one to use (RFC 9449 §8).
    let (s, body, h) =
        token_with_proof(app, &key.proof("POST", &token_url, now, None, None), &form).await;
    assert_rfc6749(s, &body, &h, 400, "use_dpop_nonce");
    let nonce = nonce_of(&h);
    let (s, t, h) = token_with_proof(
        app,
        &key.proof("POST", &token_url, now, Some(&nonce), None),
        &form,
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert!(h.contains_key("dpop-nonce"));
    let mut t = t;
    t["client_id"] = json!(cid);
    t
}

async fn env() -> (TestDb, McpEnv) {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    (db, env)
}

#[tokio::test]
async fn a_dpop_bound_token_works_only_with_a_fresh_proof_of_its_key_for_this_request() {
    let (_db, env) = env().await;
    let app = &env.app;
    let key = Key::new("agent");
    let t = bound_tokens(&env, &key).await;
    assert_eq!(t["token_type"], "DPoP");
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(claims_of(at)["cnf"]["jkt"], key.thumbprint());
    let mcp = app.state.config.mcp_url.clone();
    let now = app.state.now();

    // A first call without a nonce is told to use one; then it goes through.
    let (s, h, _) = mcp_call(
        app,
        "DPoP",
        at,
        Some(&key.proof("POST", &mcp, now, None, Some(at))),
    )
    .await;
    assert_eq!(s, 401);
    assert!(dpop_challenge(&h).contains("error=\"use_dpop_nonce\""));
    let nonce = nonce_of(&h);
    let proof = key.proof("POST", &mcp, now, Some(&nonce), Some(at));
    let (s, h, body) = mcp_call(app, "DPoP", at, Some(&proof)).await;
    assert_eq!(s, 200, "{body}");
    assert!(
        h.contains_key("dpop-nonce"),
        "a fresh nonce for the next proof"
    );

    // Each rule on its own, every other part right.
    let cases: Vec<(&str, &str, String, &str)> = vec![
        (
            "a replayed proof (same jti)",
            "DPoP",
            proof.clone(),
            "invalid_dpop_proof",
        ),
        (
            "a proof for another URL",
            "DPoP",
            key.proof(
                "POST",
                &format!("{}/api/v1/members", app.state.config.issuer),
                now,
                Some(&nonce),
                Some(at),
            ),
            "invalid_dpop_proof",
        ),
        (
            "a proof for another method",
            "DPoP",
            key.proof("GET", &mcp, now, Some(&nonce), Some(at)),
            "invalid_dpop_proof",
        ),
        (
            "a proof without ath",
            "DPoP",
            key.proof("POST", &mcp, now, Some(&nonce), None),
            "invalid_dpop_proof",
        ),
        (
            "a proof for another token",
            "DPoP",
            key.proof("POST", &mcp, now, Some(&nonce), Some("other")),
            "invalid_dpop_proof",
        ),
        (
            "an old proof",
            "DPoP",
            key.proof("POST", &mcp, now - 600, Some(&nonce), Some(at)),
            "invalid_dpop_proof",
        ),
        (
            "a made-up nonce",
            "DPoP",
            key.proof("POST", &mcp, now, Some("made-up"), Some(at)),
            "use_dpop_nonce",
        ),
        (
            "another key's proof",
            "DPoP",
            Key::new("thief").proof("POST", &mcp, now, Some(&nonce), Some(at)),
            "invalid_token",
        ),
    ];
    for (why, scheme, proof, error) in cases {
        let (s, h, _) = mcp_call(app, scheme, at, Some(&proof)).await;
        assert_eq!(s, 401, "{why}");
        let c = dpop_challenge(&h);
        assert!(c.contains(&format!("error=\"{error}\"")), "{why}: {c}");
        assert!(c.contains("algs=\"ES256"), "{c}");
    }
    // A stolen bound token presented as Bearer, or with no proof, is refused.
    let (s, h, _) = mcp_call(app, "Bearer", at, None).await;
    assert_eq!(s, 401);
    assert!(dpop_challenge(&h).contains("error=\"invalid_token\""));
    let (s, h, _) = mcp_call(app, "DPoP", at, None).await;
    assert_eq!(s, 401);
    assert!(dpop_challenge(&h).contains("error=\"invalid_dpop_proof\""));
    // The admin API checks proofs the same way.
    let admin_at = at;
    let r = app
        .http
        .get(app.url("/api/v1/members"))
        .header("authorization", format!("Bearer {admin_at}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The public client's refresh token is bound to the key (RFC 9449 §5).
    let token_url = format!("{}/token", app.state.config.issuer);
    let rt = t["refresh_token"].as_str().unwrap();
    let cid = t["client_id"].as_str().unwrap();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", cid),
        ("refresh_token", rt),
    ];
    let (s, b, h) = token(app, &form).await;
    assert_rfc6749(s, &b, &h, 400, "invalid_dpop_proof");
    let thief = Key::new("thief").proof("POST", &token_url, now, Some(&nonce), None);
    let (s, b, h) = token_with_proof(app, &thief, &form).await;
    assert_rfc6749(s, &b, &h, 400, "invalid_dpop_proof");
    let (s, b, _) = token_with_proof(
        app,
        &key.proof("POST", &token_url, now, Some(&nonce), None),
        &form,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["token_type"], "DPoP");
    assert_eq!(
        claims_of(b["access_token"].as_str().unwrap())["cnf"]["jkt"],
        key.thumbprint()
    );
}

#[tokio::test]
async fn an_organisation_that_requires_dpop_refuses_unbound_tokens_old_and_new() {
    let (_db, env) = env().await;
    let app = &env.app;
    let admin = env.api_key("admin").await;
    let (s, created) = api(
        app,
        &admin,
        Method::POST,
        "/api/v1/service-clients",
        Some(json!({"name": "job", "scopes": ["users:read"], "token_endpoint_auth_method": "client_secret_basic"})),
    )
    .await;
    assert_eq!(s, 201);
    let (cid, secret) = (
        created["client_id"].as_str().unwrap(),
        created["client_secret"].as_str().unwrap(),
    );
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", cid),
        ("client_secret", secret),
    ];
    let (s, unbound, _) = token(app, &form).await;
    assert_eq!(s, 200);
    let unbound = unbound["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        rpc(app, Some(&unbound), "tools/list", json!({}))
            .await
            .status,
        200
    );

    // The admin requires DPoP.
    let r = app
        .http
        .get(app.url("/api/v1/organization"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = app
        .http
        .patch(app.url("/api/v1/organization"))
        .bearer_auth(&admin)
        .header("if-match", etag)
        .json(&json!({"require_dpop": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["require_dpop"], true);

    // The token issued before stops on its next call; a new one needs a proof.
    let (s, h, _) = mcp_call(app, "Bearer", &unbound, None).await;
    assert_eq!(s, 401);
    assert!(dpop_challenge(&h).contains("requires DPoP"));
    let (s, b, h) = token(app, &form).await;
    assert_rfc6749(s, &b, &h, 400, "invalid_dpop_proof");
    let key = Key::new("job");
    let token_url = format!("{}/token", app.state.config.issuer);
    let now = app.state.now();
    let (_, _, h) =
        token_with_proof(app, &key.proof("POST", &token_url, now, None, None), &form).await;
    let nonce = nonce_of(&h);
    let (s, b, _) = token_with_proof(
        app,
        &key.proof("POST", &token_url, now, Some(&nonce), None),
        &form,
    )
    .await;
    assert_eq!((s, b["token_type"].as_str()), (200, Some("DPoP")), "{b}");
    let at = b["access_token"].as_str().unwrap();
    let mcp = app.state.config.mcp_url.clone();
    let (s, _, body) = mcp_call(
        app,
        "DPoP",
        at,
        Some(&key.proof("POST", &mcp, now, Some(&nonce), Some(at))),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    // API keys are not the organisation's clients' tokens: they still work.
    assert_eq!(
        rpc(
            app,
            Some(&env.api_key("users:read").await),
            "tools/list",
            json!({})
        )
        .await
        .status,
        200
    );
}
