//! The authorization server driven over HTTP as MCP clients and browsers drive it.

use clari_mcp::store::GrantId;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::oauth::*;
use crate::helpers::{TestDb, spawn_app};

both_backends!(whole_flow_dcr_authorize_login_consent_token_refresh_revoke_introspect);

async fn whole_flow_dcr_authorize_login_consent_token_refresh_revoke_introspect(db: &TestDb) {
    let app = spawn_app(db).await;
    let org = seed_user(&app, "Acme", "ava@acme.test").await;
    let issuer = app.state.config.issuer.clone();

    // Discovery: RFC 9728 → RFC 8414, issuer byte-identical everywhere.
    let prm: Value = app
        .http
        .get(app.url("/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], app.state.config.mcp_url.as_str());
    assert_eq!(prm["authorization_servers"][0], issuer.as_str());
    let meta: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], issuer.as_str());
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    // DCR, then the browser part.
    let client = register_public(&app).await;
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    assert!(
        client.get("client_secret").is_none(),
        "public clients get no secret"
    );
    let p = pkce();
    let mut browser = Browser::new(&app);
    let q = authorize(&mut browser, &client_id, &p, "ava@acme.test").await;
    assert_eq!(q["state"], "st-123", "state echoed");
    assert_eq!(q["iss"], issuer, "RFC 9207 iss");

    // Code → tokens.
    let (status, tokens) = exchange(&app, &client_id, &q["code"], &p.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "clari:read");
    assert_eq!(tokens["expires_in"], 900);
    let at = tokens["access_token"].as_str().unwrap().to_owned();
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    let claims = app
        .state
        .keys
        .verify(
            &at,
            &issuer,
            &app.state.config.mcp_url,
            app.state.now(),
            app.state.store.as_ref(),
            &app.state.vault,
        )
        .await
        .unwrap();
    assert_eq!(claims.org, org.as_str());
    assert_eq!(claims.aud, app.state.config.mcp_url);
    assert_eq!(claims.client_id, client_id);
    assert_eq!(claims.exp - claims.iat, 900);
    // Verified once, remembered until it expires: the same answer, then none.
    let app_ref = &app;
    let verify = |token: String, now: i64| async move {
        app_ref
            .state
            .keys
            .verify(
                &token,
                &issuer_of(app_ref),
                &app_ref.state.config.mcp_url,
                now,
                app_ref.state.store.as_ref(),
                &app_ref.state.vault,
            )
            .await
    };
    assert_eq!(verify(at.clone(), app.state.now()).await.unwrap(), claims);
    assert!(matches!(
        verify(at.clone(), claims.exp + 31).await,
        Err(clari_mcp::signing::TokenError::Expired)
    ));
    let mut tampered = at.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(verify(tampered, app.state.now()).await.is_err());
    let header = jsonwebtoken::decode_header(&at).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwks: Value = app
        .http
        .get(app.url("/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], header.kid.unwrap().as_str());

    // A second authorization is remembered: no consent page.
    let p2 = pkce();
    let q2 = authorize(&mut browser, &client_id, &p2, "ava@acme.test").await;
    assert!(q2.contains_key("code"), "{q2:?}");

    // Refresh rotates.
    let (status, refreshed, headers) = refresh_with(&app, &client_id, &rt).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(headers["cache-control"], "no-store");
    let rt2 = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt, rt2);
    // Narrowing is allowed, widening is not.
    app.clock.advance(20);
    let (status, narrow, _) = token(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", &rt2),
            ("scope", "audit:read"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{narrow}");
    assert_eq!(narrow["scope"], "audit:read");
    let rt3 = narrow["refresh_token"].as_str().unwrap().to_owned();

    // A confidential client for introspection.
    let server = register_confidential(&app).await;
    let sid = server["client_id"].as_str().unwrap();
    let secret = server["client_secret"].as_str().unwrap();
    let intro = |token: String| {
        let http = app.http.clone();
        let url = app.url("/introspect");
        let (sid, secret) = (sid.to_owned(), secret.to_owned());
        async move {
            http.post(url)
                .basic_auth(sid, Some(secret))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
        }
    };
    let r = intro(at.clone()).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["active"], false,
        "another client's token is not active for this caller"
    );

    // Revoking the refresh token ends the sign-in: the refresh token and access tokens are dead.
    let r = app
        .http
        .post(app.url("/revoke"))
        .form(&[("client_id", client_id.as_str()), ("token", rt3.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, body, _) = refresh_with(&app, &client_id, &rt3).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        app.state
            .store
            .live_grant(&org, &GrantId::parse(&claims.gid).unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

fn issuer_of(app: &crate::helpers::TestApp) -> String {
    app.state.config.issuer.clone()
}
