//! Enterprise-managed authorization: an ID-JAG from the organisation's identity provider is
//! exchanged for a token without a consent page, and each validation rule is refused alone.

use reqwest::Method;

use super::keys::{Key, claims_of, random_id};
use super::*;
use crate::admin::api;
use crate::both_backends;
use crate::helpers::mcp::{McpEnv, mcp_env_with, mcp_env_with_replica_and, rpc};

both_backends!(an_assertion_and_a_dpop_proof_used_on_one_replica_are_refused_on_the_other,);
use clari_mcp::store::{Role, SsoConnection, Standing};

/// An identity provider on loopback: its discovery document and JWKS, signing with `key`.
struct Idp {
    issuer: String,
    key: Key,
}

async fn idp() -> Idp {
    let key = Key::new("idp-1");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let discovery = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    });
    let jwks = key.jwks();
    let router = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || async move { axum::Json(jwks) }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Idp { issuer, key }
}

impl Idp {
    /// An ID-JAG for `sub` to `client_id`, with `changes` applied (`null` removes a claim).
    fn assertion(&self, app: &TestApp, client_id: &str, sub: &str, changes: Value) -> String {
        let now = app.state.now();
        let mut claims = json!({
            "iss": self.issuer, "sub": sub, "aud": app.state.config.issuer,
            "client_id": client_id, "resource": app.state.config.mcp_url,
            "scope": "forecasts:read users:read", "jti": random_id(),
            "iat": now, "exp": now + 300,
        });
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        self.key.sign("oauth-id-jag+jwt", &claims)
    }
}

/// The organisation trusts the provider (its SSO connection), and ava signed in with it once.
async fn trusted(env: &McpEnv, idp: &Idp) {
    let s = &env.app.state;
    let sealed = s.vault.seal(b"sso secret");
    let conn = SsoConnection {
        organization_id: env.org.clone(),
        issuer: idp.issuer.clone(),
        client_id: "clari-mcp".into(),
        secret_ciphertext: sealed.ciphertext,
        secret_key_id: sealed.key_id,
        groups_claim: "groups".into(),
        admin_group: None,
        member_group: None,
        required: false,
        updated_at: s.now(),
    };
    s.store
        .put_sso_connection(&conn, &["acme.test".to_owned()])
        .await
        .unwrap();
    s.store
        .link_sso_identity(&idp.issuer, "ava-at-idp", &env.user, s.now())
        .await
        .unwrap();
}

/// A confidential client registered for the jwt-bearer grant only (no redirect URI).
async fn agent(app: &TestApp) -> (String, String) {
    let r = register(
        app,
        json!({
            "client_name": "Enterprise Agent",
            "grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
            "token_endpoint_auth_method": "client_secret_basic",
        }),
    )
    .await;
    assert_eq!(r.status(), 201);
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["response_types"], json!([]));
    (
        c["client_id"].as_str().unwrap().to_owned(),
        c["client_secret"].as_str().unwrap().to_owned(),
    )
}

async fn exchange_jag(
    app: &TestApp,
    (id, secret): (&str, &str),
    assertion: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", assertion),
    ];
    form.extend_from_slice(extra);
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn env() -> (TestDb, McpEnv, Idp) {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env_with(&db, &[("CLARI_MCP_DANGER_SSO_ALLOW_LOOPBACK", "true")]).await;
    let idp = idp().await;
    trusted(&env, &idp).await;
    (db, env, idp)
}

#[tokio::test]
async fn an_id_jag_from_the_organisations_provider_is_a_grant_without_consent_recorded_and_revocable()
 {
    let (_db, env, idp) = env().await;
    let app = &env.app;
    let (id, secret) = agent(app).await;
    let jag = idp.assertion(app, &id, "ava-at-idp", json!({}));
    let (s, t) = exchange_jag(
        app,
        (&id, &secret),
        &jag,
        &[
            ("scope", "forecasts:read audit:read"),
            ("resource", &app.state.config.mcp_url),
        ],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    // What is asked, within what the assertion allows.
    assert_eq!(t["scope"], "forecasts:read");
    assert_eq!(t["token_type"], "Bearer");
    assert!(
        t.get("refresh_token").is_none(),
        "the client asks its provider again"
    );
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(claims_of(at)["sub"], env.user.as_str());
    assert_eq!(
        rpc(app, Some(at), "tools/list", json!({})).await.status,
        200
    );

    // The grant is listed, audited and revocable like any other.
    let admin = env.api_key("admin").await;
    let (_, grants) = api(app, &admin, Method::GET, "/api/v1/grants", None).await;
    let grant = grants["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["client_id"] == id.as_str())
        .expect("the grant is listed")
        .clone();
    app.state.audit.flush().await;
    let events = app
        .state
        .store
        .audit_events(env.org.as_str(), 0, 10_000)
        .await
        .unwrap();
    let issued = events
        .iter()
        .find(|e| e.action == "token.issued" && e.details.contains("id-jag"))
        .expect("the exchange is audited");
    assert!(issued.details.contains(&idp.issuer), "{}", issued.details);
    let (s, _) = api(
        app,
        &admin,
        Method::DELETE,
        &format!("/api/v1/grants/{}", grant["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        rpc(app, Some(at), "tools/list", json!({})).await.status,
        401
    );

    // An address is not an identity: an unlinked subject claiming a member's e-mail gets nothing.
    let (s, b) = exchange_jag(
        app,
        (&id, &secret),
        &idp.assertion(
            app,
            &id,
            "someone-new",
            json!({"email": "ava@acme.test", "email_verified": true}),
        ),
        &[],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "{b}"
    );
}

#[tokio::test]
async fn id_jags_are_refused_one_rule_at_a_time() {
    let (_db, env, idp) = env().await;
    let app = &env.app;
    let (id, secret) = agent(app).await;
    let creds = (id.as_str(), secret.as_str());
    let now = app.state.now();

    // Replayed jti.
    let once = idp.assertion(app, &id, "ava-at-idp", json!({}));
    assert_eq!(exchange_jag(app, creds, &once, &[]).await.0, 200);
    let (s, b) = exchange_jag(app, creds, &once, &[]).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "{b}"
    );
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("used before")
    );

    let stranger = Key::new("idp-1");
    let mut unknown_issuer = json!({"iss": "https://idp.other.example"});
    unknown_issuer["jti"] = json!(random_id());
    let cases: Vec<(&str, String)> = vec![
        (
            "wrong aud",
            idp.assertion(
                app,
                &id,
                "ava-at-idp",
                json!({"aud": "https://other.example"}),
            ),
        ),
        (
            "aud of two",
            idp.assertion(
                app,
                &id,
                "ava-at-idp",
                json!({"aud": [app.state.config.issuer, "https://x.example"]}),
            ),
        ),
        (
            "wrong resource",
            idp.assertion(
                app,
                &id,
                "ava-at-idp",
                json!({"resource": "https://other.example/mcp"}),
            ),
        ),
        (
            "expired",
            idp.assertion(
                app,
                &id,
                "ava-at-idp",
                json!({"exp": now - 120, "iat": now - 400}),
            ),
        ),
        (
            "issued in the future",
            idp.assertion(
                app,
                &id,
                "ava-at-idp",
                json!({"iat": now + 600, "exp": now + 700}),
            ),
        ),
        (
            "lives too long",
            idp.assertion(app, &id, "ava-at-idp", json!({"exp": now + 7200})),
        ),
        (
            "no jti",
            idp.assertion(app, &id, "ava-at-idp", json!({"jti": null})),
        ),
        (
            "unknown issuer",
            idp.assertion(app, &id, "ava-at-idp", unknown_issuer),
        ),
        (
            "another client's",
            idp.assertion(app, &id, "ava-at-idp", json!({"client_id": "someone-else"})),
        ),
        (
            "not a member",
            idp.assertion(app, &id, "nobody", json!({"email": "eve@elsewhere.test"})),
        ),
        (
            "a scope this server does not have",
            idp.assertion(app, &id, "ava-at-idp", json!({"scope": "chat.read"})),
        ),
        (
            "bound to a key, with no proof",
            idp.assertion(app, &id, "ava-at-idp", json!({"cnf": {"jkt": "abc"}})),
        ),
        (
            "signed by another key",
            stranger.sign(
                "oauth-id-jag+jwt",
                &claims_of(&idp.assertion(app, &id, "ava-at-idp", json!({}))),
            ),
        ),
        (
            "not an ID-JAG (typ)",
            idp.key.sign(
                "JWT",
                &claims_of(&idp.assertion(app, &id, "ava-at-idp", json!({}))),
            ),
        ),
    ];
    for (why, jag) in cases {
        let (s, b) = exchange_jag(app, creds, &jag, &[]).await;
        assert_eq!(
            (s, b["error"].as_str()),
            (400, Some("invalid_grant")),
            "{why}: {b}"
        );
    }
    let (s, b) = exchange_jag(
        app,
        creds,
        &idp.assertion(app, &id, "ava-at-idp", json!({})),
        &[("resource", "https://other.example/mcp")],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_target")),
        "{b}"
    );

    // A suspended member gets nothing.
    app.state
        .store
        .update_member(
            &env.org,
            &env.user,
            Standing::new(Role::Admin, false),
            Standing::new(Role::Admin, true),
        )
        .await
        .unwrap();
    let (s, b) = exchange_jag(
        app,
        creds,
        &idp.assertion(app, &id, "ava-at-idp", json!({})),
        &[],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "{b}"
    );

    // Only confidential clients register for the grant, and without refresh tokens.
    for body in [
        json!({"grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"], "token_endpoint_auth_method": "none"}),
        json!({"grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer", "refresh_token"]}),
        json!({"grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"], "redirect_uris": []}),
    ] {
        let r = register(app, body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
    }
    // A client registered for the code grant only may not exchange assertions.
    let code_client = register_confidential(app).await;
    let (s, b) = exchange_jag(
        app,
        (
            code_client["client_id"].as_str().unwrap(),
            code_client["client_secret"].as_str().unwrap(),
        ),
        &idp.assertion(
            app,
            code_client["client_id"].as_str().unwrap(),
            "ava-at-idp",
            json!({}),
        ),
        &[],
    )
    .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{b}"
    );
}

async fn an_assertion_and_a_dpop_proof_used_on_one_replica_are_refused_on_the_other(db: &TestDb) {
    let (env, b) =
        mcp_env_with_replica_and(db, &[("CLARI_MCP_DANGER_SSO_ALLOW_LOOPBACK", "true")]).await;
    let idp = idp().await;
    trusted(&env, &idp).await;
    let a = &env.app;
    let (id, secret) = agent(a).await;
    let creds = (id.as_str(), secret.as_str());
    let jag = idp.assertion(a, &id, "ava-at-idp", json!({}));
    let (s, t) = exchange_jag(a, creds, &jag, &[]).await;
    assert_eq!(s, 200, "{t}");
    let (s, refused) = exchange_jag(&b, creds, &jag, &[]).await;
    assert_eq!(
        (s, refused["error"].as_str()),
        (400, Some("invalid_grant")),
        "{refused}"
    );

    // A DPoP nonce from one replica is good on the other; a proof used on one is not.
    let key = Key::new("agent");
    let token_url = format!("{}/token", a.state.config.issuer);
    let now = a.state.now();
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", &idp.assertion(a, &id, "ava-at-idp", json!({}))),
    ];
    let dpop_token = |app: &TestApp, proof: String| {
        let req = app
            .http
            .post(app.url("/token"))
            .basic_auth(&id, Some(&secret))
            .header("DPoP", proof)
            .form(&form);
        async move {
            let r = req.send().await.unwrap();
            let h = r.headers().clone();
            (r.status().as_u16(), h, r.json::<Value>().await.unwrap())
        }
    };
    let (s, h, _) = dpop_token(a, key.proof("POST", &token_url, now, None, None)).await;
    assert_eq!(s, 400);
    let nonce = h["dpop-nonce"].to_str().unwrap().to_owned();
    let proof = key.proof("POST", &token_url, now, Some(&nonce), None);
    let (s, _, t) = dpop_token(&b, proof.clone()).await;
    assert_eq!((s, t["token_type"].as_str()), (200, Some("DPoP")), "{t}");
    let (s, _, t) = dpop_token(a, proof).await;
    assert_eq!(
        (s, t["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "{t}"
    );
    assert_eq!(
        rpc(
            &b,
            Some(&env.api_key("users:read").await),
            "tools/list",
            json!({})
        )
        .await
        .status,
        200
    );
}
