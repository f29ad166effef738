//! SCIM 2.0 provisioning end to end: an organisation's identity provider, with the token its
//! admin made, provisions people (who are invited, never handed an account), finds them by
//! filter, and deactivates or deletes them, which revokes everything they hold there at once.

use reqwest::Method;
use serde_json::{Value, json};

use crate::admin::api as admin_api;
use crate::both_backends;
use crate::helpers::mcp::{McpEnv, call_tool, mcp_env, mcp_env_with, rpc};
use crate::helpers::oauth::PASSWORD;
use crate::helpers::{Backend, TestApp, TestDb, org_name};

both_backends!(
    scim_provisions_and_deprovisions_people_of_its_organisation_only,
    scim_speaks_scim_errors_and_discovery,
);

/// One SCIM call: status, content type and the JSON answer.
async fn scim(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String, Value) {
    let mut req = app.http.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/scim+json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.json().await.unwrap_or(Value::Null))
}

async fn scim_token(env: &McpEnv) -> String {
    let admin = env.api_key("admin").await;
    let (status, made) = admin_api(
        &env.app,
        &admin,
        Method::POST,
        "/api/v1/scim-tokens",
        Some(json!({"name": "Okta"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    made["token"].as_str().unwrap().to_owned()
}

/// Provisions `email`, and has the person accept the invitation that provisioning made.
async fn provision_and_join(
    env: &McpEnv,
    token: &str,
    email: &str,
) -> (String, clari_mcp::store::UserId) {
    let app = &env.app;
    let (status, _, user) = scim(
        app,
        Some(token),
        Method::POST,
        "/scim/v2/acme/Users",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": email, "externalId": "00u1",
            "name": {"givenName": "Cy", "familyName": "Lee"}, "active": true
        })),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let pending = app
        .state
        .store
        .pending_invitations(&env.org, app.state.now())
        .await
        .unwrap();
    assert!(
        pending.iter().any(|i| i.email == email),
        "an invitation, not an account"
    );
    assert!(
        app.state
            .store
            .find_user_by_email(&clari_mcp::store::Email::parse(email).unwrap())
            .await
            .unwrap()
            .is_none(),
        "provisioning never makes an account or sets a password"
    );
    // The admin re-sends the link (as they would after reading the pending list) and the
    // person accepts with their own password.
    let admin = env.api_key("admin").await;
    let (_, inv) = admin_api(
        app,
        &admin,
        Method::POST,
        "/api/v1/invitations",
        Some(json!({"email": email})),
    )
    .await;
    crate::admin::accept_invitation(app, inv["url"].as_str().unwrap(), PASSWORD).await;
    let account = app
        .state
        .store
        .find_user_by_email(&clari_mcp::store::Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();
    (user["id"].as_str().unwrap().to_owned(), account.user.id)
}

async fn scim_provisions_and_deprovisions_people_of_its_organisation_only(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let token = scim_token(&env).await;
    let (id, cy) = provision_and_join(&env, &token, "cy@acme.test").await;
    let key = env.api_key_for(&env.org, &cy, "clari:read").await;
    assert_eq!(
        rpc(app, Some(&key), "tools/list", json!({})).await.status,
        200
    );

    // Found the way identity providers look: userName without regard to case, externalId.
    let (status, _, found) = scim(
        app,
        Some(&token),
        Method::GET,
        "/scim/v2/acme/Users?filter=userName%20eq%20%22CY@ACME.test%22",
        None,
    )
    .await;
    assert_eq!(
        (status, found["totalResults"].as_i64()),
        (200, Some(1)),
        "{found}"
    );
    assert_eq!(found["Resources"][0]["id"], id.as_str());
    let (_, _, by_ext) = scim(
        app,
        Some(&token),
        Method::GET,
        "/scim/v2/acme/Users?filter=externalId%20eq%20%2200u1%22",
        None,
    )
    .await;
    assert_eq!(by_ext["totalResults"], 1);
    let (status, _, dup) = scim(
        app,
        Some(&token),
        Method::POST,
        "/scim/v2/acme/Users",
        Some(json!({"userName": "CY@acme.test"})),
    )
    .await;
    assert_eq!(
        (status, dup["scimType"].as_str()),
        (409, Some("uniqueness")),
        "{dup}"
    );

    // Entra ID's deactivation: the key is refused on the next call, the membership suspended.
    let (status, _, patched) = scim(
        app,
        Some(&token),
        Method::PATCH,
        &format!("/scim/v2/acme/Users/{id}"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}),
        ),
    )
    .await;
    assert_eq!(
        (status, patched["active"].as_bool()),
        (200, Some(false)),
        "{patched}"
    );
    assert_eq!(
        rpc(app, Some(&key), "tools/list", json!({})).await.status,
        401
    );
    let m = app
        .state
        .store
        .member(&env.org, &cy)
        .await
        .unwrap()
        .unwrap();
    assert!(m.suspended);
    let keys = app.state.store.list_api_keys(&env.org).await.unwrap();
    assert!(
        keys.iter()
            .filter(|k| k.user_id == cy)
            .all(|k| k.revoked_at.is_some()),
        "revoked, not only suspended"
    );

    // Okta's reactivation reinstates the membership; nothing revoked comes back.
    let (status, _, _) = scim(
        app,
        Some(&token),
        Method::PATCH,
        &format!("/scim/v2/acme/Users/{id}"),
        Some(json!({"Operations": [{"op": "replace", "value": {"active": true}}]})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !app.state
            .store
            .member(&env.org, &cy)
            .await
            .unwrap()
            .unwrap()
            .suspended
    );
    assert_eq!(
        rpc(app, Some(&key), "tools/list", json!({})).await.status,
        401
    );
    let fresh = env.api_key_for(&env.org, &cy, "clari:read").await;
    assert_eq!(
        rpc(app, Some(&fresh), "tools/list", json!({})).await.status,
        200
    );

    // An admin's suspension is the admin's: the provider's reactivation does not lift it.
    let admin = env.api_key("admin").await;
    let path = format!("/api/v1/members/{cy}");
    let r = app
        .http
        .get(app.url(&path))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = app
        .http
        .patch(app.url(&path))
        .bearer_auth(&admin)
        .header("if-match", etag)
        .json(&json!({"suspended": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _, _) = scim(
        app,
        Some(&token),
        Method::PATCH,
        &format!("/scim/v2/acme/Users/{id}"),
        Some(json!({"Operations": [{"op": "replace", "value": {"active": true}}]})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        app.state
            .store
            .member(&env.org, &cy)
            .await
            .unwrap()
            .unwrap()
            .suspended
    );
    // A userName that changes only in case is the same person: nothing is revoked.
    let (status, _, _) = scim(
        app,
        Some(&token),
        Method::PATCH,
        &format!("/scim/v2/acme/Users/{id}"),
        Some(
            json!({"Operations": [{"op": "replace", "path": "userName", "value": "CY@acme.test"}]}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let keys = app.state.store.list_api_keys(&env.org).await.unwrap();
    assert!(
        keys.iter()
            .any(|k| k.user_id == cy && k.revoked_at.is_none()),
        "a case-only change of userName revoked nothing"
    );

    // Deleting deprovisions too.
    let (status, _, _) = scim(
        app,
        Some(&token),
        Method::DELETE,
        &format!("/scim/v2/acme/Users/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        rpc(app, Some(&fresh), "tools/list", json!({})).await.status,
        401
    );
    let (status, _, gone) = scim(
        app,
        Some(&token),
        Method::GET,
        &format!("/scim/v2/acme/Users/{id}"),
        None,
    )
    .await;
    assert_eq!((status, gone["status"].as_str()), (404, Some("404")));

    // Another organisation's token opens nothing here, and ours nothing there.
    let s = &app.state;
    let globex = s
        .store
        .create_org(&org_name("Globex"), s.now())
        .await
        .unwrap();
    let admin = env.api_key("admin").await;
    let (_, listed) = admin_api(app, &admin, Method::GET, "/api/v1/scim-tokens", None).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&token), "never shown again");
    let (status, _, _) = scim(
        app,
        Some(&token),
        Method::GET,
        "/scim/v2/globex/Users",
        None,
    )
    .await;
    assert_eq!(status, 401);
    let _ = globex;
    // A revoked token is refused.
    let tid = listed["items"][0]["id"].as_str().unwrap();
    let (status, _) = admin_api(
        app,
        &admin,
        Method::DELETE,
        &format!("/api/v1/scim-tokens/{tid}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, _) = scim(app, Some(&token), Method::GET, "/scim/v2/acme/Users", None).await;
    assert_eq!(status, 401);
}

async fn scim_speaks_scim_errors_and_discovery(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let token = scim_token(&env).await;
    let (status, ct, body) = scim(app, None, Method::GET, "/scim/v2/acme/Users", None).await;
    assert_eq!(status, 401);
    assert!(ct.starts_with("application/scim+json"));
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    let (status, _, spc) = scim(
        app,
        Some(&token),
        Method::GET,
        "/scim/v2/acme/ServiceProviderConfig",
        None,
    )
    .await;
    assert_eq!(
        (status, spc["patch"]["supported"].as_bool()),
        (200, Some(true))
    );
    let (status, _, e) = scim(
        app,
        Some(&token),
        Method::POST,
        "/scim/v2/acme/ServiceProviderConfig",
        Some(json!({})),
    )
    .await;
    assert_eq!((status, e["status"].as_str()), (405, Some("405")));
    let (_, _, types) = scim(
        app,
        Some(&token),
        Method::GET,
        "/scim/v2/acme/ResourceTypes",
        None,
    )
    .await;
    assert_eq!(types["totalResults"], 1);
    let (_, _, schema) = scim(
        app,
        Some(&token),
        Method::GET,
        "/scim/v2/acme/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
        None,
    )
    .await;
    assert_eq!(schema["attributes"][0]["name"], "userName");
    for (path, status) in [
        ("/scim/v2/acme/Schemas/urn:nope", 404),
        ("/scim/v2/acme/ResourceTypes/Group", 404),
        ("/scim/v2/acme/Groups", 404),
        ("/scim/v2/acme/Users?filter=title%20eq%20%22x%22", 400),
        ("/scim/v2/acme/Users?count=abc", 400),
    ] {
        let (got, _, e) = scim(app, Some(&token), Method::GET, path, None).await;
        assert_eq!(got, status, "{path}: {e}");
        assert_eq!(
            e["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{path}"
        );
    }
    let (status, _, e) = scim(
        app,
        Some(&token),
        Method::POST,
        "/scim/v2/acme/Users",
        Some(json!({"name": {"givenName": "x"}})),
    )
    .await;
    assert_eq!(
        (status, e["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{e}"
    );
    // Paging: startIndex is 1-based.
    for n in 0..3 {
        scim(
            app,
            Some(&token),
            Method::POST,
            "/scim/v2/acme/Users",
            Some(json!({"userName": format!("u{n}")})),
        )
        .await;
    }
    let (_, _, page) = scim(
        app,
        Some(&token),
        Method::GET,
        "/scim/v2/acme/Users?startIndex=2&count=1",
        None,
    )
    .await;
    assert_eq!(
        (
            page["totalResults"].as_i64(),
            page["startIndex"].as_i64(),
            page["itemsPerPage"].as_i64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(page["Resources"][0]["userName"], "u1");
}

#[tokio::test]
async fn deactivating_over_scim_stops_a_person_on_every_replica_over_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        crate::helpers::announce_skip(
            "scim::deactivating_over_scim_stops_a_person_on_every_replica_over_postgres",
        );
        return;
    };
    let vault_key = clari_mcp::crypto::Vault::generate_key();
    let keys = [(
        "CLARI_MCP_VAULT_KEYS",
        secrecy::ExposeSecret::expose_secret(&vault_key),
    )];
    let env = mcp_env_with(&db, &keys).await;
    let b = crate::helpers::spawn_app_with(
        &db,
        &[
            keys[0],
            ("CLARI_MCP_CLARI_BASE_URL", &env.sandbox.base_url),
            ("CLARI_MCP_PUBLIC_URL", &env.app.address),
        ],
    )
    .await;
    b.clock.set(env.app.clock.now_for_tests());
    let token = scim_token(&env).await;
    let (id, cy) = provision_and_join(&env, &token, "cy@acme.test").await;
    let key = env.api_key_for(&env.org, &cy, "clari:read").await;
    let client = crate::helpers::oauth::register_public(&env.app).await;
    let cid = client["client_id"].as_str().unwrap().to_owned();
    let p = crate::helpers::oauth::pkce();
    let mut browser = crate::helpers::oauth::Browser::new(&env.app);
    let q = crate::helpers::oauth::authorize(&mut browser, &cid, &p, "cy@acme.test").await;
    let (status, tokens) = crate::helpers::oauth::exchange(&b, &cid, &q["code"], &p.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let at = tokens["access_token"].as_str().unwrap().to_owned();
    for app in [&env.app, &b] {
        assert_eq!(
            call_tool(app, &at, "get_admin_limits", json!({})).await["isError"],
            false
        );
        assert_eq!(
            rpc(app, Some(&key), "tools/list", json!({})).await.status,
            200
        );
    }
    // Deactivated through replica A; refused on both at the next call.
    let (status, _, _) = scim(
        &env.app,
        Some(&token),
        Method::PATCH,
        &format!("/scim/v2/acme/Users/{id}"),
        Some(json!({"Operations": [{"op": "replace", "path": "active", "value": false}]})),
    )
    .await;
    assert_eq!(status, 200);
    for app in [&env.app, &b] {
        assert_eq!(
            rpc(app, Some(&at), "tools/list", json!({})).await.status,
            401
        );
        assert_eq!(
            rpc(app, Some(&key), "tools/list", json!({})).await.status,
            401
        );
    }
    let (status, refreshed, _) =
        crate::helpers::oauth::refresh_with(&b, &cid, tokens["refresh_token"].as_str().unwrap())
            .await;
    assert_eq!(
        (status, refreshed["error"].as_str()),
        (400, Some("invalid_grant")),
        "{refreshed}"
    );
    // Audited, with the token as the actor.
    env.app.state.audit.flush().await;
    let events = env
        .app
        .state
        .store
        .find_audit_events(
            env.org.as_str(),
            &clari_mcp::store::AuditFilter {
                action: Some("scim.user_deactivated".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_kind, "scim");
    db.cleanup().await;
}
