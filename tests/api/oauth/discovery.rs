//! Discovery documents, CORS and signing-key rotation.

use super::*;

#[tokio::test]
async fn discovery_documents_and_cors_are_as_clients_expect() {
    let (_db, app) = app().await;
    let iss = app.state.config.issuer.clone();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let r = app
            .http
            .get(app.url(path))
            .header("origin", "http://localhost:6274")
            .header("mcp-protocol-version", "2025-11-25")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        let m: Value = r.json().await.unwrap();
        assert_eq!(m["issuer"], iss.as_str());
        for key in [
            "authorization_endpoint",
            "token_endpoint",
            "registration_endpoint",
            "revocation_endpoint",
            "introspection_endpoint",
            "jwks_uri",
        ] {
            assert!(m[key].as_str().unwrap().starts_with(&iss), "{key}");
        }
        assert_eq!(m["response_types_supported"], json!(["code"]));
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            m["token_endpoint_auth_methods_supported"],
            json!([
                "none",
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt"
            ])
        );
        // The authorization extensions: client credentials, ID-JAG (the profile, and the
        // jwt-bearer grant it needs) and DPoP, with asymmetric algorithms only.
        assert_eq!(
            m["grant_types_supported"],
            json!([
                "authorization_code",
                "refresh_token",
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:jwt-bearer"
            ])
        );
        assert_eq!(
            m["authorization_grant_profiles_supported"],
            json!(["urn:ietf:params:oauth:grant-profile:id-jag"])
        );
        for key in [
            "dpop_signing_alg_values_supported",
            "token_endpoint_auth_signing_alg_values_supported",
        ] {
            let algs = m[key].as_array().unwrap();
            assert!(algs.contains(&json!("ES256")), "{key}");
            assert!(
                !algs
                    .iter()
                    .any(|a| a == "none" || a.as_str().unwrap().starts_with("HS")),
                "{key}"
            );
        }
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert_eq!(m["client_id_metadata_document_supported"], true);
        assert!(
            m["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("clari:read"))
        );
    }
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let prm: Value = app
            .http
            .get(app.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(prm["resource"], format!("{iss}/mcp"));
        assert_eq!(prm["authorization_servers"], json!([iss]));
        assert_eq!(prm["bearer_methods_supported"], json!(["header"]));
        assert!(
            prm["dpop_signing_alg_values_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("ES256"))
        );
        assert_eq!(prm["dpop_bound_access_tokens_required"], false);
        assert!(
            !prm["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("offline_access"))
        );
    }
    // Preflight on the token endpoint allows MCP-Protocol-Version; the authorization endpoint has no CORS.
    let pre = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/token"))
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "mcp-protocol-version,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(pre.headers().get("access-control-allow-origin").is_some());
    assert!(
        pre.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_lowercase()
            .contains("mcp-protocol-version")
    );
    let authz = app
        .http
        .get(app.url("/authorize"))
        .header("origin", "http://localhost:6274")
        .send()
        .await
        .unwrap();
    assert!(authz.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn signing_key_rotation_keeps_old_tokens_valid_and_publishes_both() {
    let (_db, app) = app().await;
    let cid = id(&register_public(&app).await);
    let before = fresh_tokens(&app, &cid).await;
    let old_kid = jsonwebtoken::decode_header(before["access_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    let new_kid = clari_mcp::signing::Keys::rotate(
        app.state.store.as_ref(),
        &app.state.vault,
        app.state.now(),
    )
    .await
    .unwrap();
    app.state
        .keys
        .reload(app.state.store.as_ref(), &app.state.vault, app.state.now())
        .await
        .unwrap();
    let jwks: Value = app
        .http
        .get(app.url("/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()));
    let after = fresh_tokens(&app, &cid).await;
    assert_eq!(
        jsonwebtoken::decode_header(after["access_token"].as_str().unwrap())
            .unwrap()
            .kid
            .unwrap(),
        new_kid
    );
    let s = &app.state;
    assert!(
        s.keys
            .verify(
                before["access_token"].as_str().unwrap(),
                &s.config.issuer,
                &s.config.mcp_url,
                s.now(),
                s.store.as_ref(),
                &s.vault
            )
            .await
            .is_ok()
    );
    // Once the old tokens have expired, the old key leaves the JWKS.
    app.clock.advance(900 + 301);
    s.keys
        .reload(s.store.as_ref(), &s.vault, s.now())
        .await
        .unwrap();
    let jwks: Value = app
        .http
        .get(app.url("/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
}
