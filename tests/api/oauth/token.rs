//! The token endpoint: codes, PKCE, client authentication, refresh rotation.

use super::*;

#[tokio::test]
async fn pkce_verifier_is_required_and_must_match() {
    let (_db, app) = app().await;
    let cid = id(&register_public(&app).await);
    for verifier in [None, Some("x".repeat(43)), Some("bad chars!".repeat(5))] {
        let p = pkce();
        let mut b = Browser::new(&app);
        let q = authorize(&mut b, &cid, &p, "ava@acme.test").await;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", cid.as_str()),
            ("code", q["code"].as_str()),
            ("redirect_uri", REDIRECT),
        ];
        if let Some(v) = verifier.as_deref() {
            form.push(("code_verifier", v));
        }
        let (s, body, h) = token(&app, &form).await;
        assert_rfc6749(s, &body, &h, 400, "invalid_grant");
        // The code was not consumed by the failed attempt: the right verifier still works.
        let (s, _) = exchange(&app, &cid, &q["code"], &p.verifier).await;
        assert_eq!(s, 200);
    }
}

#[tokio::test]
async fn code_reuse_fails_and_revokes_every_token_from_it() {
    let (_db, app) = app().await;
    let cid = id(&register_public(&app).await);
    let p = pkce();
    let mut b = Browser::new(&app);
    let q = authorize(&mut b, &cid, &p, "ava@acme.test").await;
    let (s, first) = exchange(&app, &cid, &q["code"], &p.verifier).await;
    assert_eq!(s, 200);
    let (s, body, h) = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &cid),
            ("code", &q["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_rfc6749(s, &body, &h, 400, "invalid_grant");
    let (s, body, _) = refresh_with(&app, &cid, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the refresh token from the reused code is dead"
    );
}

#[tokio::test]
async fn concurrent_redemptions_of_one_code_yield_exactly_one_token() {
    let (_db, app) = app().await;
    let cid = id(&register_public(&app).await);
    let p = pkce();
    let mut b = Browser::new(&app);
    let q = authorize(&mut b, &cid, &p, "ava@acme.test").await;
    let attempts = (0..6).map(|_| exchange(&app, &cid, &q["code"], &p.verifier));
    let results = futures_util::future::join_all(attempts).await;
    assert_eq!(
        results.iter().filter(|(s, _)| *s == 200).count(),
        1,
        "{results:?}"
    );
    // Every refused redemption, whether it found the code used or lost the race to redeem
    // it, is the same replay in the audit trail.
    app.state.audit.flush().await;
    let org = app.state.store.find_org("Acme").await.unwrap().unwrap().id;
    let replays = app
        .state
        .store
        .find_audit_events(
            org.as_str(),
            &clari_mcp::store::AuditFilter {
                action: Some("token.replay_detected".into()),
                ..Default::default()
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(replays.len(), 5, "{replays:?}");
}

#[tokio::test]
async fn expired_codes_and_other_clients_codes_are_invalid_grant() {
    let (_db, app) = app().await;
    let a = id(&register_public(&app).await);
    let other = id(&register_public(&app).await);
    let p = pkce();
    let mut b = Browser::new(&app);
    let q = authorize(&mut b, &a, &p, "ava@acme.test").await;
    let (s, body) = exchange(&app, &other, &q["code"], &p.verifier).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    // Presenting it as another client burned nothing.
    let q2 = authorize(&mut b, &a, &p, "ava@acme.test").await;
    app.clock.advance(61);
    let (s, body) = exchange(&app, &a, &q2["code"], &p.verifier).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "60 s lifetime"
    );
    let (s, _) = exchange(&app, &a, &q["code"], &p.verifier).await;
    assert_eq!(s, 400, "the first code expired too");
}

#[tokio::test]
async fn token_redirect_uri_must_equal_the_authorize_one() {
    let (_db, app) = app().await;
    let cid = id(&register_public(&app).await);
    let p = pkce();
    let mut b = Browser::new(&app);
    let q = authorize(&mut b, &cid, &p, "ava@acme.test").await;
    for redirect in [
        Some("http://127.0.0.1:3999/callback?x=1"),
        Some("http://127.0.0.1:4000/callback"),
        None,
    ] {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", cid.as_str()),
            ("code", q["code"].as_str()),
            ("code_verifier", p.verifier.as_str()),
        ];
        if let Some(r) = redirect {
            form.push(("redirect_uri", r));
        }
        let (s, body, _) = token(&app, &form).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{redirect:?}"
        );
    }
}

#[tokio::test]
async fn client_authentication_failures_are_invalid_client() {
    let (_db, app) = app().await;
    let conf = register_confidential(&app).await;
    let cid = id(&conf);
    let secret = conf["client_secret"].as_str().unwrap().to_owned();
    let public = id(&register_public(&app).await);
    let post = |builder: reqwest::RequestBuilder| async move {
        let r = builder.send().await.unwrap();
        let s = r.status().as_u16();
        let h = r.headers().clone();
        (s, r.json::<Value>().await.unwrap(), h)
    };
    let form = [
        ("grant_type", "authorization_code"),
        ("code", "x"),
        ("redirect_uri", "https://app.example.com/cb"),
        ("code_verifier", &"a".repeat(43)),
    ];
    let t = app.url("/token");
    let (s, b, h) = post(
        app.http
            .post(&t)
            .basic_auth(&cid, Some("wrong"))
            .form(&form),
    )
    .await;
    assert_rfc6749(s, &b, &h, 401, "invalid_client");
    assert!(h["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let (s, b, h) = post(
        app.http
            .post(&t)
            .basic_auth("cmc_nobody", Some("x"))
            .form(&form),
    )
    .await;
    assert_rfc6749(s, &b, &h, 401, "invalid_client");
    let (s, b, h) = post(
        app.http
            .post(&t)
            .header("authorization", "Basic %%%")
            .form(&form),
    )
    .await;
    assert_rfc6749(s, &b, &h, 401, "invalid_client");
    let mut both = form.to_vec();
    both.push(("client_secret", &secret));
    let (s, b, h) = post(
        app.http
            .post(&t)
            .basic_auth(&cid, Some(&secret))
            .form(&both),
    )
    .await;
    assert_rfc6749(s, &b, &h, 400, "invalid_request");
    let mut pub_secret = form.to_vec();
    pub_secret.push(("client_id", &public));
    pub_secret.push(("client_secret", "anything"));
    let (s, b, h) = post(app.http.post(&t).form(&pub_secret)).await;
    assert_rfc6749(s, &b, &h, 401, "invalid_client");
    let (s, b, h) = post(app.http.post(&t).form(&form)).await;
    assert_rfc6749(s, &b, &h, 401, "invalid_client");
    // The right secret gets past authentication (and then fails on the bogus code).
    let (s, b, h) = post(
        app.http
            .post(&t)
            .basic_auth(&cid, Some(&secret))
            .form(&form),
    )
    .await;
    assert_rfc6749(s, &b, &h, 400, "invalid_grant");
    let mut post_auth = form.to_vec();
    post_auth.push(("client_id", &cid));
    post_auth.push(("client_secret", &secret));
    let (s, b, h) = post(app.http.post(&t).form(&post_auth)).await;
    assert_rfc6749(s, &b, &h, 400, "invalid_grant");
}

#[tokio::test]
async fn malformed_token_requests_get_rfc6749_json_never_a_framework_page() {
    let (_db, app) = app().await;
    let cid = id(&register_public(&app).await);
    let t = app.url("/token");
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            app.http
                .post(&t)
                .form(&[("grant_type", "password"), ("client_id", cid.as_str())]),
            400,
            "unsupported_grant_type",
        ),
        (
            app.http
                .post(&t)
                .body(format!(
                    "grant_type=authorization_code&code=a&code=b&client_id={cid}"
                ))
                .header("content-type", "application/x-www-form-urlencoded"),
            400,
            "invalid_request",
        ),
        (
            app.http
                .post(&t)
                .json(&json!({"grant_type": "authorization_code"})),
            400,
            "invalid_request",
        ),
        (
            app.http
                .post(&t)
                .body(vec![0xffu8, 0xfe, b'=', b'x'])
                .header("content-type", "application/x-www-form-urlencoded"),
            400,
            "invalid_request",
        ),
        (
            app.http
                .post(&t)
                .body(vec![b'a'; 10 * 1024 * 1024])
                .header("content-type", "application/x-www-form-urlencoded"),
            400,
            "invalid_request",
        ),
        (
            app.http.post(&t).form(&[("client_id", cid.as_str())]),
            400,
            "invalid_request",
        ),
    ];
    for (req, status, error) in cases {
        let r = req.send().await.unwrap();
        let s = r.status().as_u16();
        let h = r.headers().clone();
        let body: Value = r.json().await.unwrap();
        assert_rfc6749(s, &body, &h, status, error);
    }
    // Unknown extra parameters are ignored (RFC 6749 §3.1).
    let p = pkce();
    let mut b = Browser::new(&app);
    let mut pairs = base(&cid, &p);
    pairs.push(("unknown_extra", "1"));
    assert_eq!(authorize_raw(&mut b, &pairs).await.status, 302);
    let q = authorize(&mut b, &cid, &p, "ava@acme.test").await;
    let (s, _, _) = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &cid),
            ("code", &q["code"]),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
            ("something_else", "x"),
        ],
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn refresh_replay_revokes_family() {
    let (_db, app) = app().await;
    let cid = id(&register_public(&app).await);
    let t = fresh_tokens(&app, &cid).await;
    let rt1 = t["refresh_token"].as_str().unwrap().to_owned();
    let (s, t2) = refresh(&app, &cid, &rt1).await;
    assert_eq!(s, 200);
    let rt2 = t2["refresh_token"].as_str().unwrap().to_owned();
    app.clock.advance(11);
    let (s, body) = refresh(&app, &cid, &rt1).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    let (s, _) = refresh(&app, &cid, &rt2).await;
    assert_eq!(s, 400, "the newest token of the family died too");
    let claims = app
        .state
        .keys
        .verify(
            t2["access_token"].as_str().unwrap(),
            &app.state.config.issuer,
            &app.state.config.mcp_url,
            app.state.now(),
            app.state.store.as_ref(),
            &app.state.vault,
        )
        .await
        .unwrap();
    assert!(
        app.state
            .store
            .live_grant(
                &clari_mcp::store::OrgId::parse(&claims.org).unwrap(),
                &clari_mcp::store::GrantId::parse(&claims.gid).unwrap()
            )
            .await
            .unwrap()
            .is_none(),
        "access tokens of the grant are dead"
    );
}

#[tokio::test]
async fn a_lost_refresh_response_may_be_retried_within_the_grace_window_only() {
    let (_db, app) = app().await;
    let cid = id(&register_public(&app).await);
    let t = fresh_tokens(&app, &cid).await;
    let rt1 = t["refresh_token"].as_str().unwrap().to_owned();
    let (s, lost) = refresh(&app, &cid, &rt1).await;
    assert_eq!(s, 200);
    let lost_rt = lost["refresh_token"].as_str().unwrap().to_owned();
    app.clock.advance(5);
    let (s, retried) = refresh(&app, &cid, &rt1).await;
    assert_eq!(s, 200, "a retry within 10 s is answered: {retried}");
    let rt3 = retried["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = refresh(&app, &cid, &lost_rt).await;
    assert_eq!(
        s, 400,
        "the unused successor was revoked, so only one token is live"
    );
    // That was a replay of a revoked token; the family is now revoked.
    let (s, _) = refresh(&app, &cid, &rt3).await;
    assert_eq!(s, 400);

    // Once the successor has been used, a retry is a replay.
    let t = fresh_tokens(&app, &cid).await;
    let rt1 = t["refresh_token"].as_str().unwrap().to_owned();
    let (_, t2) = refresh(&app, &cid, &rt1).await;
    let rt2 = t2["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = refresh(&app, &cid, &rt2).await;
    assert_eq!(s, 200);
    let (s, _) = refresh(&app, &cid, &rt1).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn refresh_tokens_are_bound_to_client_scope_and_resource() {
    let (_db, app) = app().await;
    let a = id(&register_public(&app).await);
    let b = id(&register_public(&app).await);
    let t = fresh_tokens(&app, &a).await;
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let (s, body) = refresh(&app, &b, &rt).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "client B presenting A's token"
    );
    let (s, _) = refresh(&app, &a, t["access_token"].as_str().unwrap()).await;
    assert_eq!(s, 400, "an access token is not a refresh token");
    // Narrow first, then try to widen past the original.
    let (s, body, _) = token(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &a),
            ("refresh_token", &rt),
            ("resource", "https://evil.example.com/mcp"),
        ],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_target")));
    let (s, body, _) = token(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &a),
            ("refresh_token", &rt),
            ("scope", "admin:write"),
        ],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_scope")));
    // The failed attempts left the token usable.
    let (s, _) = refresh(&app, &a, &rt).await;
    assert_eq!(s, 200);

    // A grant of one scope cannot be widened by refresh.
    let p = pkce();
    let mut br = Browser::new(&app);
    let resource = app.state.config.mcp_url.clone();
    let start = br
        .get(&authorize_url(
            &a,
            &p.challenge,
            "s",
            "audit:read",
            &resource,
        ))
        .await;
    let next = start.location.unwrap();
    let next = if next.starts_with("/login") {
        br.login(&next, "ava@acme.test", PASSWORD)
            .await
            .location
            .unwrap()
    } else {
        next
    };
    let page = br.get(&next).await;
    let code = if page.status == 302 {
        query_of(&page.location.unwrap())["code"].clone()
    } else {
        let done = br.approve(&page, None, &["audit:read"]).await;
        query_of(&done.location.unwrap())["code"].clone()
    };
    let (s, narrow) = exchange(&app, &a, &code, &p.verifier).await;
    assert_eq!(
        (s, narrow["scope"].as_str()),
        (200, Some("audit:read")),
        "{narrow}"
    );
    let (s, body, _) = token(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &a),
            ("refresh_token", narrow["refresh_token"].as_str().unwrap()),
            ("scope", "clari:read"),
        ],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_scope")));
}

#[tokio::test]
async fn codes_and_refresh_tokens_die_with_their_user_org_or_client() {
    let (_db, app) = app().await;
    let store = app.state.store.clone();
    let user = store
        .find_user_by_email(&clari_mcp::store::Email::parse("ava@acme.test").unwrap())
        .await
        .unwrap()
        .unwrap()
        .user;
    let org = store.find_org("Acme").await.unwrap().unwrap();
    let c = register_public(&app).await;
    let cid = id(&c);

    let t = fresh_tokens(&app, &cid).await;
    store.set_user_disabled(&user.id, true).await.unwrap();
    assert_eq!(
        refresh(&app, &cid, t["refresh_token"].as_str().unwrap())
            .await
            .0,
        400,
        "disabled user"
    );
    store.set_user_disabled(&user.id, false).await.unwrap();

    let t = fresh_tokens(&app, &cid).await;
    store.set_org_disabled(&org.id, true).await.unwrap();
    assert_eq!(
        refresh(&app, &cid, t["refresh_token"].as_str().unwrap())
            .await
            .0,
        400,
        "disabled organisation"
    );
    store.set_org_disabled(&org.id, false).await.unwrap();

    // A code issued, then the client deleted before the exchange.
    let p = pkce();
    let mut b = Browser::new(&app);
    let q = authorize(&mut b, &cid, &p, "ava@acme.test").await;
    store
        .disable_client(
            &clari_mcp::store::ClientId::parse(&cid).unwrap(),
            app.state.now(),
        )
        .await
        .unwrap();
    let (s, body) = exchange(&app, &cid, &q["code"], &p.verifier).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")));
}
