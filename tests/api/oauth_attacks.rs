//! The attack matrix of ../shared/oauth-security.md §2: each rule a test named after it, asserting
//! both the answer and its side effect.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDb, spawn_app, spawn_app_with};
use crate::oauth_helpers::*;

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
async fn registration_rejects_dangerous_redirect_uris() {
    let (_db, app) = app().await;
    for bad in [
        "http://evil.example.com/cb",
        "http://localhost.evil.com/cb",
        "javascript:alert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
        "https://a.example.com/cb#frag",
        "https://a.example.com/a/../b",
    ] {
        let r = register(
            &app,
            json!({"redirect_uris": [bad], "token_endpoint_auth_method": "none"}),
        )
        .await;
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_redirect_uri", "{bad}");
    }
}

#[tokio::test]
async fn registration_flood_is_limited_and_oversized_metadata_refused() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app_with(&db, &[("CLARI_MCP_DCR_RATE_LIMIT", "3")]).await;
    for _ in 0..3 {
        register_public(&app).await;
    }
    let r = register(
        &app,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    // Size caps (fresh app so the rate limit does not hide them).
    let db2 = TestDb::new(Backend::Sqlite).await.unwrap();
    let app2 = spawn_app(&db2).await;
    let huge = app2
        .http
        .post(app2.url("/register"))
        .header("content-type", "application/json")
        .body(vec![b' '; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    let many: Vec<String> = (0..1000)
        .map(|i| format!("https://a.example.com/cb{i}"))
        .collect();
    let r = register(&app2, json!({"redirect_uris": many})).await;
    assert!(r.status() == 400 || r.status() == 413);
    let r = register(&app2, json!({"redirect_uris": [REDIRECT], "client_name": "x".repeat(5000), "token_endpoint_auth_method": "none"})).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn client_management_requires_the_registration_access_token() {
    let (_db, app) = app().await;
    let c = register_public(&app).await;
    let cid = id(&c);
    let token = c["registration_access_token"].as_str().unwrap();
    let uri = c["registration_client_uri"].as_str().unwrap();
    assert_eq!(uri, format!("{}/register/{cid}", app.state.config.issuer));
    for (auth, target) in [
        (None, cid.clone()),
        (Some("wrong"), cid.clone()),
        (Some(token), "cmc_unknown".to_owned()),
    ] {
        let mut req = app.http.get(app.url(&format!("/register/{target}")));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        assert_eq!(
            req.send().await.unwrap().status(),
            401,
            "no enumeration: unknown and unauthorised look alike"
        );
    }
    let read: Value = app
        .http
        .get(app.url(&format!("/register/{cid}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["client_name"], "Test Agent");
    assert!(read.get("client_secret").is_none() && read.get("registration_access_token").is_none());
    let upd = app.http.put(app.url(&format!("/register/{cid}"))).bearer_auth(token).json(&json!({"client_id": cid, "client_name": "Renamed", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})).send().await.unwrap();
    assert_eq!(upd.status(), 200);
    assert_eq!(upd.json::<Value>().await.unwrap()["client_name"], "Renamed");
    let del = app
        .http
        .delete(app.url(&format!("/register/{cid}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    let p = pkce();
    let mut b = Browser::new(&app);
    assert_error_page(&authorize_raw(&mut b, &base(&cid, &p)).await);
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

#[tokio::test]
async fn revocation_requires_client_auth_and_only_touches_own_tokens() {
    let (_db, app) = app().await;
    let a = id(&register_public(&app).await);
    let b = id(&register_public(&app).await);
    let t = fresh_tokens(&app, &a).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let rev = |form: Vec<(&str, &str)>| {
        let req = app.http.post(app.url("/revoke")).form(&form);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        rev(vec![("token", rt)]).await,
        401,
        "no client authentication"
    );
    assert_eq!(
        rev(vec![("client_id", &b), ("token", rt)]).await,
        200,
        "another client's token: 200, nothing revoked"
    );
    assert_eq!(refresh(&app, &a, rt).await.0, 200, "still live");
    assert_eq!(
        rev(vec![("client_id", &a), ("token", "garbage")]).await,
        200,
        "unknown token: 200"
    );
}

#[tokio::test]
async fn introspection_needs_a_confidential_client_and_reports_dead_tokens_inactive() {
    let (_db, app) = app().await;
    let conf = register_confidential(&app).await;
    let cid = id(&conf);
    let secret = conf["client_secret"].as_str().unwrap().to_owned();
    let public = id(&register_public(&app).await);
    let r = app
        .http
        .post(app.url("/introspect"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .post(app.url("/introspect"))
        .form(&[("token", "x"), ("client_id", public.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The confidential client's own tokens, through a redirect it registered.
    let p = pkce();
    let mut b = Browser::new(&app);
    let start = authorize_raw(
        &mut b,
        &with(
            base(&cid, &p),
            "redirect_uri",
            Some("https://app.example.com/cb"),
        ),
    )
    .await;
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
    let done = b.approve(&page, None, &["forecasts:read"]).await;
    let code = query_of(&done.location.unwrap())["code"].clone();
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(&cid, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example.com/cb"),
            ("code_verifier", &p.verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let at = t["access_token"].as_str().unwrap().to_owned();
    let intro = |token: String| {
        let req = app
            .http
            .post(app.url("/introspect"))
            .basic_auth(&cid, Some(&secret))
            .form(&[("token", token)]);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let v = intro(at.clone()).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["scope"], "forecasts:read");
    assert_eq!(v["client_id"], cid.as_str());
    app.clock.advance(900 + 31);
    assert_eq!(intro(at.clone()).await["active"], false, "expired");
    assert_eq!(intro("garbage".into()).await["active"], false);
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(intro(rt.clone()).await["active"], true);
    app.http
        .post(app.url("/revoke"))
        .basic_auth(&cid, Some(&secret))
        .form(&[("token", rt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(intro(rt).await["active"], false, "revoked");
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
            json!(["none", "client_secret_basic", "client_secret_post"])
        );
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

/// Serves metadata documents on 127.0.0.1; returns the base URL and a hit counter.
async fn document_server(
    docs: Vec<(&'static str, Value)>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut router = axum::Router::new();
    for (path, doc) in docs {
        let doc = serde_json::from_str::<Value>(&doc.to_string().replace("BASE", &base)).unwrap();
        let hits = hits.clone();
        router = router.route(
            path,
            get(move || {
                hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let doc = doc.clone();
                async move { ([("cache-control", "max-age=600")], axum::Json(doc)) }
            }),
        );
    }
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, hits)
}

#[tokio::test]
async fn metadata_document_clients_are_fetched_validated_and_cached() {
    let (server, hits) = document_server(vec![
        ("/client.json", json!({"client_id": "BASE/client.json", "client_name": "Doc Client", "redirect_uris": [REDIRECT]})),
        ("/mismatch.json", json!({"client_id": "https://elsewhere.example/client.json", "client_name": "X", "redirect_uris": [REDIRECT]})),
        ("/secret.json", json!({"client_id": "BASE/secret.json", "client_name": "X", "redirect_uris": [REDIRECT], "client_secret": "s"})),
    ])
    .await;
    let good = format!("{server}/client.json");

    // Off by default: a loopback document is never fetched.
    let (_db, plain) = app().await;
    let p = pkce();
    let mut b = Browser::new(&plain);
    assert_error_page(&authorize_raw(&mut b, &base(&good, &p)).await);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app_with(&db, &[("CLARI_MCP_DANGER_CIMD_ALLOW_LOOPBACK", "true")]).await;
    seed_user(&app, "Acme", "ava@acme.test").await;
    let mut b = Browser::new(&app);
    for bad in ["mismatch.json", "secret.json", "missing.json"] {
        assert_error_page(&authorize_raw(&mut b, &base(&format!("{server}/{bad}"), &p)).await);
    }
    let q = authorize(&mut b, &good, &p, "ava@acme.test").await;
    let (s, t) = exchange(&app, &good, &q["code"], &p.verifier).await;
    assert_eq!(s, 200, "{t}");
    assert!(t["refresh_token"].is_string());
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    let p2 = pkce();
    authorize(&mut b, &good, &p2, "ava@acme.test").await;
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "cached per max-age"
    );
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
    let globex = store.create_org("Globex", app.state.now()).await.unwrap();
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
        page.body.contains("<select") && page.body.contains("Acme") && page.body.contains("Globex"),
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
    let stranger = store.create_org("Initech", app.state.now()).await.unwrap();
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

#[tokio::test]
async fn changing_redirect_uris_forgets_remembered_consent() {
    let (_db, app) = app().await;
    let c = register_public(&app).await;
    let cid = id(&c);
    let token = c["registration_access_token"].as_str().unwrap();
    let p = pkce();
    let mut b = Browser::new(&app);
    let first = authorize(&mut b, &cid, &p, "ava@acme.test").await;
    assert!(first.contains_key("code"));
    // Remembered: prompt=none answers with a code at once.
    let silent = with(base(&cid, &p), "prompt", Some("none"));
    let again = authorize_raw(&mut b, &silent).await;
    let loc = again.location.clone().unwrap_or_default();
    assert!(query_of(&loc).contains_key("code"), "{loc}");
    // The client moves its redirect URI through RFC 7592.
    let moved = "http://127.0.0.1/elsewhere";
    let upd = app
        .http
        .put(app.url(&format!("/register/{cid}")))
        .bearer_auth(token)
        .json(&json!({"client_id": cid, "client_name": "Test Agent", "redirect_uris": [moved], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(upd.status(), 200);
    // prompt=none to the new URI must not deliver a code the user never approved for it.
    let to_new = with(
        with(base(&cid, &p), "prompt", Some("none")),
        "redirect_uri",
        Some(moved),
    );
    let page = authorize_raw(&mut b, &to_new).await;
    let loc = page.location.clone().unwrap_or_default();
    let q = query_of(&loc);
    assert!(!q.contains_key("code"), "a code went to the new URI: {loc}");
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("consent_required"),
        "{loc}"
    );
}

#[tokio::test]
async fn metadata_document_fetches_are_bounded_and_unused_rows_expire() {
    let (server, hits) = document_server(vec![(
        "/client.json",
        json!({"client_id": "BASE/client.json", "client_name": "Doc Client", "redirect_uris": [REDIRECT]}),
    )])
    .await;
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app_with(&db, &[("CLARI_MCP_DANGER_CIMD_ALLOW_LOOPBACK", "true")]).await;
    let p = pkce();
    let mut b = Browser::new(&app);
    let hit = || hits.load(std::sync::atomic::Ordering::SeqCst);
    // A host that answers every request with 404, counting them.
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = asked.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new().fallback(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { axum::http::StatusCode::NOT_FOUND }
    });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let asked_count = || asked.load(std::sync::atomic::Ordering::SeqCst);
    // A document that does not exist is fetched once, then remembered as failed.
    let missing = format!("{other}/missing.json");
    for _ in 0..5 {
        assert_error_page(&authorize_raw(&mut b, &base(&missing, &p)).await);
    }
    assert_eq!(asked_count(), 1, "a failure is cached");
    // Many different URLs on one host: at most the per-host allowance of fetches a minute.
    for i in 0..30 {
        let url = format!("{other}/c{i}.json");
        assert_error_page(&authorize_raw(&mut b, &base(&url, &p)).await);
    }
    assert_eq!(
        asked_count(),
        clari_mcp::net::PER_HOST_PER_MINUTE as usize,
        "one host is fetched at most the allowance a minute"
    );
    // A valid document is cached in the store; with no grant, its row goes once stale.
    app.clock.advance(120);
    let good = format!("{server}/client.json");
    let good_id = clari_mcp::store::ClientId::parse(&good).unwrap();
    let page = authorize_raw(&mut b, &base(&good, &p)).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert_eq!(hit(), 1);
    assert!(app.state.store.client(&good_id).await.unwrap().is_some());
    app.clock.advance(86_400 + 1);
    let done = clari_mcp::app::housekeeping(&app.state).await.unwrap();
    assert!(done.clients >= 1, "{done:?}");
    assert!(app.state.store.client(&good_id).await.unwrap().is_none());
}
