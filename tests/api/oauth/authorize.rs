//! The authorization endpoint, sign-in and consent.

use super::*;

#[tokio::test]
async fn unknown_or_missing_client_gets_an_error_page_not_a_redirect() {
    let (_db, app) = app().await;
    let p = pkce();
    let mut b = Browser::new(&app);
    assert_error_page(
        &authorize_raw(
            &mut b,
            &with(base("nope", &p), "client_id", Some("cmc_unknown")),
        )
        .await,
    );
    assert_error_page(&authorize_raw(&mut b, &with(base("nope", &p), "client_id", None)).await);
}

#[tokio::test]
async fn unregistered_and_near_miss_redirect_uris_get_an_error_page() {
    let (_db, app) = app().await;
    let c = register(&app, json!({"client_name": "Web", "redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "none"})).await.json::<Value>().await.unwrap();
    let cid = id(&c);
    let p = pkce();
    let mut b = Browser::new(&app);
    for bad in [
        "https://evil.example.com/cb",
        "https://app.example.com/cb/",
        "https://app.example.com/cb/extra",
        "https://APP.example.com/cb",
        "HTTPS://app.example.com/cb",
        "https://app.example.com:443/cb",
        "https://app.example.com/cb?x=1",
        "https://app.example.com/cb/../cb",
        "https://app.example.com/%2E%2E/cb",
    ] {
        let page = authorize_raw(&mut b, &with(base(&cid, &p), "redirect_uri", Some(bad))).await;
        assert_error_page(&page);
    }
    // Exactly the registered URI works.
    let ok = authorize_raw(
        &mut b,
        &with(
            base(&cid, &p),
            "redirect_uri",
            Some("https://app.example.com/cb"),
        ),
    )
    .await;
    assert_eq!(ok.status, 302);
    assert!(ok.location.unwrap().starts_with("/login"));
}

#[tokio::test]
async fn missing_redirect_uri_defaults_only_when_exactly_one_is_registered() {
    let (_db, app) = app().await;
    let p = pkce();
    let mut b = Browser::new(&app);
    let two = register(&app, json!({"redirect_uris": ["https://a.example.com/cb", "https://b.example.com/cb"], "token_endpoint_auth_method": "none"})).await.json::<Value>().await.unwrap();
    assert_error_page(
        &authorize_raw(&mut b, &with(base(&id(&two), &p), "redirect_uri", None)).await,
    );
    let one = register_public(&app).await;
    let page = authorize_raw(&mut b, &with(base(&id(&one), &p), "redirect_uri", None)).await;
    assert_eq!(page.status, 302);
}

#[tokio::test]
async fn loopback_redirects_accept_any_port_but_not_lookalikes() {
    let (_db, app) = app().await;
    let c = register(&app, json!({"redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none"})).await.json::<Value>().await.unwrap();
    let p = pkce();
    let mut b = Browser::new(&app);
    let ok = authorize_raw(
        &mut b,
        &with(
            base(&id(&c), &p),
            "redirect_uri",
            Some("http://127.0.0.1:53124/callback"),
        ),
    )
    .await;
    assert_eq!(ok.status, 302, "{}", ok.body);
    for bad in [
        "http://localhost:53124/callback",
        "http://127.0.0.1:53124/other",
        "https://127.0.0.1:53124/callback",
        "http://127.0.0.1.nip.io/callback",
    ] {
        assert_error_page(
            &authorize_raw(&mut b, &with(base(&id(&c), &p), "redirect_uri", Some(bad))).await,
        );
    }
}

#[tokio::test]
async fn request_errors_redirect_with_state_and_iss_only_after_sign_in() {
    let (_db, app) = app().await;
    let iss = app.state.config.issuer.clone();
    let c = register_public(&app).await;
    let cid = id(&c);
    let p = pkce();
    let mut b = Browser::new(&app);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            with(base(&cid, &p), "scope", Some("forecasts:write")),
            "invalid_scope",
        ),
        (
            with(base(&cid, &p), "response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            with(base(&cid, &p), "response_type", None),
            "invalid_request",
        ),
        (
            with(base(&cid, &p), "code_challenge", None),
            "invalid_request",
        ),
        (
            with(base(&cid, &p), "code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (
            with(base(&cid, &p), "code_challenge_method", Some("S512")),
            "invalid_request",
        ),
        (
            with(base(&cid, &p), "code_challenge_method", None),
            "invalid_request",
        ),
        (
            with(base(&cid, &p), "code_challenge", Some("too-short")),
            "invalid_request",
        ),
        (
            with(
                base(&cid, &p),
                "resource",
                Some("https://evil.example.com/mcp"),
            ),
            "invalid_target",
        ),
        (
            with(base(&cid, &p), "resource", Some("relative/mcp")),
            "invalid_target",
        ),
    ];
    // Before sign-in: an error page, never a redirect to the client's URI (RFC 9700 §4.11.2), so a
    // freshly registered client cannot use this server as an open redirector.
    for (pairs, _) in &cases {
        assert_error_page(&authorize_raw(&mut b, pairs).await);
    }
    // Signed in: the error goes back to the application with state and iss.
    let start = authorize_raw(&mut b, &base(&cid, &p)).await;
    let signed_in = b
        .login(
            start.location.as_deref().unwrap(),
            "ava@acme.test",
            PASSWORD,
        )
        .await;
    assert_eq!(signed_in.status, 303);
    for (pairs, error) in cases {
        let page = authorize_raw(&mut b, &pairs).await;
        assert_error_redirect(&page, &iss, error);
    }
}

#[tokio::test]
async fn denial_returns_access_denied_and_consent_is_single_use_with_csrf() {
    let (_db, app) = app().await;
    let iss = app.state.config.issuer.clone();
    let cid = id(&register_public(&app).await);
    let p = pkce();
    let mut b = Browser::new(&app);
    let start = authorize_raw(&mut b, &base(&cid, &p)).await;
    let after = b
        .login(
            start.location.as_deref().unwrap(),
            "ava@acme.test",
            PASSWORD,
        )
        .await;
    assert_eq!(after.status, 303, "login answers a POST with 303");
    let consent = b.get(after.location.as_deref().unwrap()).await;
    assert_eq!(consent.headers["x-frame-options"], "DENY");
    assert!(
        consent.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(consent.body.contains("Test Agent") && consent.body.contains("127.0.0.1"));
    let csrf = hidden(&consent.body, "csrf");
    let rid = hidden(&consent.body, "rid");
    // No CSRF token, or a wrong one: refused, and the request is still pending.
    assert_eq!(
        b.post(
            "/authorize/consent",
            &[("rid", &rid), ("decision", "approve")]
        )
        .await
        .status,
        403
    );
    assert_eq!(
        b.post(
            "/authorize/consent",
            &[("csrf", "forged"), ("rid", &rid), ("decision", "approve")]
        )
        .await
        .status,
        403
    );
    let denied = b
        .post(
            "/authorize/consent",
            &[("csrf", &csrf), ("rid", &rid), ("decision", "deny")],
        )
        .await;
    assert_eq!(denied.status, 303);
    let q = query_of(denied.location.as_deref().unwrap());
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str(), q["iss"].as_str()),
        ("access_denied", "xyz", iss.as_str())
    );
    // Replaying the consent form after its decision does nothing.
    let replay = b
        .post(
            "/authorize/consent",
            &[
                ("csrf", &csrf),
                ("rid", &rid),
                ("decision", "approve"),
                ("scope_audit:read", "on"),
            ],
        )
        .await;
    assert_error_page(&replay);
    assert!(
        app.state
            .store
            .grants_of_user(
                &app.state.store.find_org("Acme").await.unwrap().unwrap().id,
                &app.state
                    .store
                    .find_user_by_email(&clari_mcp::store::Email::parse("ava@acme.test").unwrap())
                    .await
                    .unwrap()
                    .unwrap()
                    .user
                    .id
            )
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn html_in_a_client_name_renders_as_text() {
    let (_db, app) = app().await;
    let c = register(&app, json!({"client_name": "<script>alert(1)</script>", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})).await.json::<Value>().await.unwrap();
    let p = pkce();
    let mut b = Browser::new(&app);
    let start = authorize_raw(&mut b, &base(&id(&c), &p)).await;
    let login = b.get(start.location.as_deref().unwrap()).await;
    assert!(!login.body.contains("<script>alert(1)</script>"));
    assert!(
        login.body.contains("&lt;script&gt;") || login.body.contains("&#60;script&#62;"),
        "{}",
        login
            .body
            .lines()
            .find(|l| l.contains("script"))
            .unwrap_or_default()
    );
}

#[tokio::test]
async fn odd_state_is_echoed_exactly_and_huge_state_refused() {
    let (_db, app) = app().await;
    let cid = id(&register_public(&app).await);
    let p = pkce();
    let mut b = Browser::new(&app);
    let odd = "a&b=c#d é 🔑 +%20";
    let start = authorize_raw(&mut b, &with(base(&cid, &p), "state", Some(odd))).await;
    let after = b
        .login(
            start.location.as_deref().unwrap(),
            "ava@acme.test",
            PASSWORD,
        )
        .await;
    let page = b.get(after.location.as_deref().unwrap()).await;
    let done = b.approve(&page, None, &["users:read"]).await;
    assert_eq!(query_of(&done.location.unwrap())["state"], odd);
    let big = "s".repeat(8 * 1024);
    let page = authorize_raw(&mut b, &with(base(&cid, &p), "state", Some(&big))).await;
    assert!(
        page.status == 400 || page.status == 414 || page.status == 431,
        "{}",
        page.status
    );
    assert!(page.location.is_none());
}

#[tokio::test]
async fn login_is_throttled_per_account() {
    let (_db, app) = app().await;
    let mut b = Browser::new(&app);
    let mut last = 0;
    for _ in 0..12 {
        last = b
            .login("/login", "ava@acme.test", "wrong password here")
            .await
            .status;
    }
    assert_eq!(last, 429);
    let ok = b.login("/login", "ava@acme.test", PASSWORD).await;
    assert_eq!(
        ok.status, 429,
        "even the right password waits out the window"
    );
    app.clock.advance(15 * 60);
    let ok = b.login("/login", "ava@acme.test", PASSWORD).await;
    assert_eq!(ok.status, 303);
}

#[tokio::test]
async fn a_user_in_several_orgs_picks_one_and_can_revoke_the_consent() {
    let (_db, app) = app().await;
    let store = app.state.store.clone();
    let user = store
        .find_user_by_email(&clari_mcp::store::Email::parse("ava@acme.test").unwrap())
        .await
        .unwrap()
        .unwrap()
        .user;
    let globex = store
        .create_org(&crate::helpers::org_name("Globex"), app.state.now())
        .await
        .unwrap();
    store
        .add_membership(
            &globex.id,
            &user.id,
            clari_mcp::store::Role::Member,
            app.state.now(),
        )
        .await
        .unwrap();
    let cid = id(&register_public(&app).await);
    let p = pkce();
    let mut b = Browser::new(&app);
    let start = authorize_raw(&mut b, &base(&cid, &p)).await;
    let next = b
        .login(
            start.location.as_deref().unwrap(),
            "ava@acme.test",
            PASSWORD,
        )
        .await
        .location
        .unwrap();
    let page = b.get(&next).await;
    assert!(
        page.body.matches("type=\"radio\" name=\"org\"").count() == 2
            && page.body.contains("Acme")
            && page.body.contains("Globex"),
        "both organisations offered"
    );
    let done = b
        .approve(&page, Some(globex.id.as_str()), &["forecasts:read"])
        .await;
    let code = query_of(&done.location.unwrap())["code"].clone();
    let (s, t) = exchange(&app, &cid, &code, &p.verifier).await;
    assert_eq!(s, 200);
    let s_ = &app.state;
    let claims = s_
        .keys
        .verify(
            t["access_token"].as_str().unwrap(),
            &s_.config.issuer,
            &s_.config.mcp_url,
            s_.now(),
            s_.store.as_ref(),
            &s_.vault,
        )
        .await
        .unwrap();
    assert_eq!(
        claims.org,
        globex.id.as_str(),
        "the token is bound to the chosen organisation"
    );

    // A member of another org cannot be smuggled in through the form.
    let stranger = store
        .create_org(&crate::helpers::org_name("Initech"), app.state.now())
        .await
        .unwrap();
    let start = authorize_raw(&mut b, &base(&cid, &pkce())).await;
    let page = b.get(start.location.as_deref().unwrap()).await;
    let again = b
        .approve(&page, Some(stranger.id.as_str()), &["forecasts:read"])
        .await;
    assert_eq!(again.status, 200, "the consent page is shown again");
    assert!(again.body.contains("Choose one of your organisations"));

    // The account page lists the grant and revokes it; the refresh token dies with it.
    let account = b.get("/account").await;
    assert!(account.body.contains("Test Agent") && account.body.contains("Globex"));
    let grant_id = claims.gid.clone();
    let revoked = b
        .post(
            &format!("/account/grants/{grant_id}/revoke"),
            &[("csrf", &hidden(&account.body, "csrf"))],
        )
        .await;
    assert_eq!(revoked.status, 303);
    assert_eq!(
        refresh(&app, &cid, t["refresh_token"].as_str().unwrap())
            .await
            .0,
        400
    );
    assert!(!b.get("/account").await.body.contains(&grant_id));
}
