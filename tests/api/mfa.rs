//! Two-step sign-in (TOTP, RFC 6238) for local accounts, on the injected clock: enrolment from
//! the account page, the code after the password, a code never accepted twice, recovery codes
//! that work once, and an organisation that requires it of its admins.

use clari_mcp::crypto::totp;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::mcp::{mcp_env, mcp_env_with};
use crate::helpers::oauth::{Browser, PASSWORD, hidden};
use crate::helpers::{TestApp, TestDb};

both_backends!(
    a_guesser_holding_the_password_gets_ten_codes_a_window_from_any_number_of_addresses,
    enrolment_sign_in_replay_and_recovery_codes,
    an_organisation_can_require_two_step_sign_in_of_its_admins,
);

/// RFC 4648 base32 without padding, as the page shows the secret.
fn base32_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {text}"),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    out
}

async fn signed_in<'a>(app: &'a TestApp, email: &str) -> Browser<'a> {
    let mut b = Browser::new(app);
    let page = b.login("/login", email, PASSWORD).await;
    assert_eq!(page.status, 303, "{}", page.body);
    b
}

/// Enrols the signed-in person; returns the secret and the recovery codes.
async fn enrol(app: &TestApp, b: &mut Browser<'_>) -> (Vec<u8>, Vec<String>) {
    let page = b.get("/account/mfa").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let start = page
        .body
        .find("id=\"totp-secret\"")
        .expect("the secret is shown");
    let rest = &page.body[start..];
    let v = rest.find("value=\"").unwrap() + "value=\"".len();
    let secret = base32_decode(&rest[v..v + rest[v..].find('"').unwrap()]);
    assert!(
        page.body.contains("otpauth://totp/clari-mcp:"),
        "{}",
        page.body
    );
    // A reload keeps the same secret, so the app's pairing still holds.
    let again = b.get("/account/mfa").await;
    assert!(again.body.contains(&totp::base32(&secret)));
    let csrf = hidden(&page.body, "csrf");
    let wrong = b
        .post(
            "/account/mfa",
            &[("csrf", &csrf), ("password", PASSWORD), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.location.as_deref(), Some("/account/mfa"));
    let code = totp::code_at(&secret, totp::step_of(app.state.now()));
    let no_password = b
        .post(
            "/account/mfa",
            &[
                ("csrf", &csrf),
                ("password", "not it at all"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(no_password.location.as_deref(), Some("/account/mfa"));
    let user = ava(app).await;
    assert!(
        app.state.store.totp_of(&user).await.unwrap().is_none(),
        "a session alone does not turn it on: the password is needed too"
    );
    let done = b
        .post(
            "/account/mfa",
            &[("csrf", &csrf), ("password", PASSWORD), ("code", &code)],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let codes: Vec<String> = done
        .body
        .split("<li><code>")
        .skip(1)
        .map(|s| s[..s.find('<').unwrap()].to_owned())
        .collect();
    assert_eq!(codes.len(), totp::RECOVERY_CODES, "{}", done.body);
    (secret, codes)
}

/// The account every test here enrols: the environment's admin.
async fn ava(app: &TestApp) -> clari_mcp::store::UserId {
    app.state
        .store
        .find_user_by_email(&clari_mcp::store::Email::parse("ava@acme.test").unwrap())
        .await
        .unwrap()
        .unwrap()
        .user
        .id
}

/// Password, then a code: the status of the second step (or 429 if throttled before it).
async fn sign_in_with<'a>(app: &'a TestApp, email: &str, code: &str) -> (u16, Browser<'a>) {
    let mut b = Browser::new(app);
    let page = b.login("/login", email, PASSWORD).await;
    if page.status == 429 {
        return (429, b);
    }
    assert_eq!(
        page.status, 200,
        "the password alone does not sign in: {}",
        page.body
    );
    assert!(page.body.contains("Two-step sign-in"));
    assert_eq!(b.get("/account").await.status, 303, "not signed in yet");
    let csrf = hidden(&page.body, "csrf");
    let r = b
        .post("/login/second-factor", &[("csrf", &csrf), ("code", code)])
        .await;
    (r.status, b)
}

async fn enrolment_sign_in_replay_and_recovery_codes(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let mut b = signed_in(app, "ava@acme.test").await;
    let (secret, codes) = enrol(app, &mut b).await;
    let code_now = || totp::code_at(&secret, totp::step_of(app.state.now()));

    // The enrolment code's step is spent: the same code cannot sign in.
    let (status, _) = sign_in_with(app, "ava@acme.test", &code_now()).await;
    assert_eq!(status, 401, "the code used to enrol is not accepted again");
    app.clock.advance(30);
    let (status, mut signed) = sign_in_with(app, "ava@acme.test", &code_now()).await;
    assert_eq!(status, 303);
    assert_eq!(signed.get("/account").await.status, 200);
    // Replayed within its window, on a new sign-in: refused.
    let (status, _) = sign_in_with(app, "ava@acme.test", &code_now()).await;
    assert_eq!(status, 401, "a code is never accepted twice");
    // The previous step's code is late but still in the window; an older one is not.
    app.clock.advance(30);
    let previous = totp::code_at(&secret, totp::step_of(app.state.now()) - 1);
    let two_back = totp::code_at(&secret, totp::step_of(app.state.now()) - 2);
    if two_back != code_now() && two_back != previous {
        let (status, _) = sign_in_with(app, "ava@acme.test", &two_back).await;
        assert_eq!(status, 401, "outside the one-step window");
    }
    // Recovery codes work once, typed loosely.
    let (status, _) = sign_in_with(app, "ava@acme.test", &codes[0].to_uppercase()).await;
    assert_eq!(status, 303);
    let (status, _) = sign_in_with(app, "ava@acme.test", &codes[0]).await;
    assert_eq!(status, 401, "a recovery code works once");
    // Wrong codes are throttled like wrong passwords.
    let mut last = 0;
    for _ in 0..8 {
        last = sign_in_with(app, "ava@acme.test", "123456").await.0;
    }
    assert_eq!(last, 429);

    // Turning it off needs a code; then the password alone signs in again. (The clock moves
    // less than the 15 minutes an anonymous browser session lives.)
    app.clock.advance(60);
    let page = signed.get("/account/mfa").await;
    assert!(
        page.body.contains("9 unused recovery codes left"),
        "{}",
        page.body
    );
    let csrf = hidden(&page.body, "csrf");
    let refused = signed
        .post(
            "/account/mfa/disable",
            &[("csrf", csrf.as_str()), ("code", "999999")],
        )
        .await;
    assert_eq!(refused.location.as_deref(), Some("/account/mfa"));
    assert!(app.state.store.totp_of(&env.user).await.unwrap().is_some());
    let off = signed
        .post(
            "/account/mfa/disable",
            &[("csrf", &csrf), ("code", &code_now())],
        )
        .await;
    assert_eq!(
        off.location.as_deref(),
        Some("/account/mfa"),
        "{}",
        off.body
    );
    assert!(app.state.store.totp_of(&env.user).await.unwrap().is_none());
    let page = Browser::new(app)
        .login("/login", "ava@acme.test", PASSWORD)
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    // The secret is sealed at rest, and the trail says what happened.
    app.state.audit.flush().await;
    let events = app
        .state
        .store
        .find_audit_events("-", &Default::default(), None, 1000)
        .await
        .unwrap();
    for action in ["user.mfa_enabled", "user.mfa_disabled"] {
        assert!(events.iter().any(|e| e.action == action), "{action}");
    }
    assert!(
        events
            .iter()
            .any(|e| e.action == "signin.failure" && e.details.contains("second factor replayed"))
    );
}

async fn an_organisation_can_require_two_step_sign_in_of_its_admins(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let key = env.api_key("admin").await;
    let api = |method: Method, path: &'static str, body: Option<Value>| {
        let mut req = app.http.request(method, app.url(path)).bearer_auth(&key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    let r = api(Method::GET, "/api/v1/organization", None)
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let org: Value = r.json().await.unwrap();
    assert_eq!(org["require_admin_mfa"], false);
    let r = app
        .http
        .patch(app.url("/api/v1/organization"))
        .bearer_auth(&key)
        .header("if-match", etag)
        .json(&json!({"require_admin_mfa": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The admin without a second factor reaches nothing but the enrolment page.
    let r = api(Method::GET, "/api/v1/members", None).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "mfa_required");
    let mut b = signed_in(app, "ava@acme.test").await;
    for path in ["/admin", "/admin/members", "/account"] {
        let page = b.get(path).await;
        assert_eq!(page.location.as_deref(), Some("/account/mfa"), "{path}");
    }
    let page = b.get("/account/mfa").await;
    assert!(
        page.body
            .contains("requires its admins to use two-step sign-in")
    );
    enrol(app, &mut b).await;
    assert_eq!(b.get("/admin/members").await.status, 200);
    assert_eq!(
        api(Method::GET, "/api/v1/members", None)
            .await
            .unwrap()
            .status(),
        200
    );
}

async fn a_guesser_holding_the_password_gets_ten_codes_a_window_from_any_number_of_addresses(
    db: &TestDb,
) {
    let env = mcp_env_with(db, &[("CLARI_MCP_TRUSTED_PROXIES", "1")]).await;
    let app = &env.app;
    let mut b = signed_in(app, "ava@acme.test").await;
    let (secret, _) = enrol(app, &mut b).await;
    app.clock.advance(30);
    // Every try from a fresh address: the per-address throttles never see a repeat.
    let try_from = |n: u32, code: String| async move {
        let ip = format!("198.51.100.{n}");
        let mut b = Browser::new(app);
        let page = b.get("/login").await;
        let csrf = hidden(&page.body, "csrf");
        let send = |path: &'static str, form: Vec<(&'static str, String)>| {
            let cookies = b
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            app.http
                .post(app.url(path))
                .header("x-forwarded-for", ip.clone())
                .header(reqwest::header::COOKIE, cookies)
                .form(&form)
                .send()
        };
        let r = send(
            "/login",
            vec![
                ("csrf", csrf.clone()),
                ("email", "ava@acme.test".into()),
                ("password", PASSWORD.into()),
            ],
        )
        .await
        .unwrap();
        for v in r.headers().get_all("set-cookie") {
            let pair = v.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            b.cookies.insert(k.to_owned(), v.to_owned());
        }
        let page = r.text().await.unwrap();
        let csrf = hidden(&page, "csrf");
        let cookies = b
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        app.http
            .post(app.url("/login/second-factor"))
            .header("x-forwarded-for", ip)
            .header(reqwest::header::COOKIE, cookies)
            .form(&[("csrf", csrf), ("code", code)])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    for n in 0..clari_mcp::web::mfa::CODE_TRIES_PER_WINDOW as u32 {
        assert_eq!(try_from(n, "000000".into()).await, 401, "try {n}");
    }
    let right = totp::code_at(&secret, totp::step_of(app.state.now()));
    assert_eq!(
        try_from(200, right).await,
        429,
        "the window's code tries are spent, even for the right code from a new address"
    );
}
