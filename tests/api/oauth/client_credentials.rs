//! Machine clients (the `oauth-client-credentials` extension): registered by an admin, tokens by
//! `client_secret_basic` or `private_key_jwt`, each assertion rule refused on its own.

use reqwest::Method;

use super::keys::{Key, claims_of, random_id};
use super::*;
use crate::admin::api;
use crate::helpers::mcp::{McpEnv, mcp_env_with, rpc};

/// A machine client registered through `/api/v1/service-clients`.
async fn machine(env: &McpEnv, body: Value) -> Value {
    let admin = env.api_key("admin").await;
    let (status, created) = api(
        &env.app,
        &admin,
        Method::POST,
        "/api/v1/service-clients",
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    created
}

async fn env() -> (TestDb, McpEnv) {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env_with(&db, &[("CLARI_MCP_DANGER_SSO_ALLOW_LOOPBACK", "true")]).await;
    (db, env)
}

/// A `private_key_jwt` assertion as RFC 7523 §3 describes it, with `changes` applied.
fn assertion(key: &Key, client_id: &str, aud: &str, now: i64, changes: Value) -> String {
    let mut claims = json!({
        "iss": client_id, "sub": client_id, "aud": aud,
        "iat": now, "exp": now + 300, "jti": random_id(),
    });
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    key.sign("JWT", &claims)
}

async fn with_assertion(app: &TestApp, jwt: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", jwt),
    ];
    form.extend_from_slice(extra);
    let (s, b, _) = token(app, &form).await;
    (s, b)
}

#[tokio::test]
async fn a_machine_client_with_a_secret_gets_a_token_for_its_fixed_scopes_and_is_audited_as_itself()
{
    let (_db, env) = env().await;
    let app = &env.app;
    let created = machine(
        &env,
        json!({"name": "Weekly report", "scopes": ["forecasts:read", "users:read"],
               "token_endpoint_auth_method": "client_secret_basic"}),
    )
    .await;
    let id = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    assert!(id.starts_with("svc_") && secret.starts_with("cms_"));
    // The secret is never shown again.
    let admin = env.api_key("admin").await;
    let (_, listed) = api(app, &admin, Method::GET, "/api/v1/service-clients", None).await;
    assert!(!listed.to_string().contains(secret));

    // Asking for more than it holds gets what it holds of it; nothing in common is refused.
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "clari:read"),
            ("resource", &app.state.config.mcp_url),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "forecasts:read users:read");
    assert!(t.get("refresh_token").is_none(), "RFC 6749 §4.4.3");
    let at = t["access_token"].as_str().unwrap();
    let claims = claims_of(at);
    assert_eq!(
        (claims["sub"].as_str(), claims["client_id"].as_str()),
        (Some(id), Some(id))
    );
    assert_eq!(claims["aud"], app.state.config.mcp_url.as_str());
    let (s, b, h) = token(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", "audit:read"),
        ],
    )
    .await;
    assert_rfc6749(s, &b, &h, 400, "invalid_scope");
    let (s, b, h) = token(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", "cms_wrong"),
        ],
    )
    .await;
    assert_rfc6749(s, &b, &h, 401, "invalid_client");

    // It calls a tool; the audit trail names the machine client as the actor.
    let r = rpc(
        app,
        Some(at),
        "tools/call",
        json!({"name": "list_users", "arguments": {}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_ne!(r.body["result"]["isError"], true, "{}", r.body);
    app.state.audit.flush().await;
    let events = app
        .state
        .store
        .audit_events(env.org.as_str(), 0, 10_000)
        .await
        .unwrap();
    let call = events
        .iter()
        .find(|e| e.action == "tool.call")
        .expect("the call is audited");
    assert_eq!(
        (call.actor_kind.as_str(), call.actor_id.as_deref()),
        ("service", Some(id))
    );
    assert_eq!(call.actor_name.as_deref(), Some("Weekly report"));
    // A machine client's token administers nothing.
    let (status, body) = api(app, at, Method::GET, "/api/v1/members", None).await;
    assert_eq!(status, 403, "{body}");

    // Revoked: the token stops on its next call, and no new one is issued.
    let (status, _) = api(
        app,
        &admin,
        Method::DELETE,
        &format!("/api/v1/service-clients/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        rpc(app, Some(at), "tools/list", json!({})).await.status,
        401
    );
    let (s, b, h) = token(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ],
    )
    .await;
    assert_rfc6749(s, &b, &h, 401, "invalid_client");
}

#[tokio::test]
async fn private_key_jwt_assertions_are_refused_one_rule_at_a_time() {
    let (_db, env) = env().await;
    let app = &env.app;
    let key = Key::new("k1");
    let created = machine(
        &env,
        json!({"name": "CI job", "scopes": ["clari:read"],
               "token_endpoint_auth_method": "private_key_jwt", "jwks": key.jwks()}),
    )
    .await;
    assert!(created.get("client_secret").is_none());
    let id = created["client_id"].as_str().unwrap();
    let iss = app.state.config.issuer.clone();
    let now = app.state.now();

    // The issuer (as the official SDK sends it) and the token endpoint are both this server.
    for aud in [iss.clone(), format!("{iss}/token")] {
        let (s, b) = with_assertion(app, &assertion(&key, id, &aud, now, json!({})), &[]).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(
            rpc(app, b["access_token"].as_str(), "tools/list", json!({}))
                .await
                .status,
            200
        );
    }

    // Replayed jti: the same assertion twice.
    let once = assertion(&key, id, &iss, now, json!({}));
    assert_eq!(with_assertion(app, &once, &[]).await.0, 200);
    let (s, b) = with_assertion(app, &once, &[]).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("invalid_client")),
        "{b}"
    );
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("used before")
    );

    let refused = [
        (
            "wrong aud",
            assertion(&key, id, "https://other.example.com", now, json!({})),
        ),
        (
            "expired",
            assertion(&key, id, &iss, now, json!({"exp": now - 120})),
        ),
        (
            "no exp",
            assertion(&key, id, &iss, now, json!({"exp": null})),
        ),
        (
            "lives too long",
            assertion(&key, id, &iss, now, json!({"exp": now + 3600})),
        ),
        (
            "no jti",
            assertion(&key, id, &iss, now, json!({"jti": null})),
        ),
        (
            "iss is not sub",
            assertion(&key, id, &iss, now, json!({"iss": "someone"})),
        ),
        (
            "another key",
            assertion(&Key::new("k1"), id, &iss, now, json!({})),
        ),
        (
            "unknown client",
            assertion(&key, "svc_nobody", &iss, now, json!({})),
        ),
    ];
    for (why, jwt) in refused {
        let (s, b) = with_assertion(app, &jwt, &[]).await;
        assert_eq!(
            (s, b["error"].as_str()),
            (401, Some("invalid_client")),
            "{why}: {b}"
        );
    }
    // A wrong resource, and a client_id that is not the assertion's.
    let good = assertion(&key, id, &iss, now, json!({}));
    let (s, b) = with_assertion(app, &good, &[("resource", "https://other.example.com/mcp")]).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_target")),
        "{b}"
    );
    let good = assertion(&key, id, &iss, now, json!({}));
    let (s, b) = with_assertion(app, &good, &[("client_id", "svc_other")]).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("invalid_client")),
        "{b}"
    );

    // A registered OAuth client may not use the machine grant (RFC 6749 §5.2).
    let dcr = register_confidential(app).await;
    let (s, b, h) = token(
        app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", dcr["client_id"].as_str().unwrap()),
            ("client_secret", dcr["client_secret"].as_str().unwrap()),
        ],
    )
    .await;
    assert_rfc6749(s, &b, &h, 400, "unauthorized_client");
}

#[tokio::test]
async fn registration_refuses_private_keys_the_admin_scope_and_unreadable_key_urls() {
    let (_db, env) = env().await;
    let app = &env.app;
    let admin = env.api_key("admin").await;
    let mut private = Key::new("p").jwk;
    private["d"] = json!("AAAA");
    for body in [
        json!({"name": "x", "scopes": ["admin"], "token_endpoint_auth_method": "client_secret_basic"}),
        json!({"name": "x", "scopes": ["clari:read"], "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [private]}}),
        json!({"name": "x", "scopes": ["clari:read"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://127.0.0.1:1/jwks"}),
        json!({"name": "x", "scopes": ["clari:read"], "token_endpoint_auth_method": "private_key_jwt"}),
        json!({"name": "x", "scopes": [], "token_endpoint_auth_method": "client_secret_basic"}),
    ] {
        let (status, answer) = api(
            app,
            &admin,
            Method::POST,
            "/api/v1/service-clients",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body} → {answer}");
    }
    let (_, listed) = api(app, &admin, Method::GET, "/api/v1/service-clients", None).await;
    assert_eq!(listed["items"], json!([]));
}
