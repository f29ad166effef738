//! Hardening: what an attacker, a misbehaving upstream or a careless setting can make the server
//! do. Each test is named after the rule it guards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use clari_mcp::clari::client::{ClariTarget, check_base_url};
use clari_mcp::clari::{ClariClient, ClariError, ClientOptions};
use clari_mcp::config::Config;
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::mcp::*;
use crate::helpers::{Backend, TestDb, eventually};

crate::both_backends!(
    expired_sessions_codes_and_refresh_tokens_are_purged,
    simultaneous_refreshes_with_one_token_are_not_a_replay,
);

/// Serves `router` on 127.0.0.1:0 and returns its origin.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_clari_key_never_follows_a_redirect() {
    // B records every header it is sent; A redirects everything to B.
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let record = seen.clone();
    let b = serve(axum::Router::new().fallback(move |req: Request| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push(req.headers().clone());
            axum::Json(
                json!({"jobs": {"concurrentLimit": 3, "availableConcurrentLimit": 3,
                "monthlyQuota": 10, "availableMonthlyQuota": 10}}),
            )
        }
    }))
    .await;
    for status in [
        StatusCode::FOUND,
        StatusCode::MOVED_PERMANENTLY,
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ] {
        let to = b.clone();
        let a =
            serve(axum::Router::new().fallback(move |req: Request| {
                let to = to.clone();
                async move {
                    (status, [(header::LOCATION, format!("{to}{}", req.uri()))]).into_response()
                }
            }))
            .await;
        let client = ClariClient::new(ClientOptions::default());
        let target = ClariTarget::new(
            &format!("{a}/v4"),
            SecretString::from("secret-clari-key".to_owned()),
        )
        .unwrap();
        let err = client.admin_limits(&target).await.unwrap_err();
        assert!(
            matches!(&err, ClariError::UnexpectedResponse(m) if m.contains("redirect")),
            "{status}: {err:?}"
        );
    }
    let leaked = seen
        .lock()
        .unwrap()
        .iter()
        .any(|h| h.contains_key("apikey"));
    assert!(!leaked, "the redirect target never sees the API key");
    assert!(
        seen.lock().unwrap().is_empty(),
        "no request reached the redirect target"
    );
}

#[tokio::test]
async fn plain_http_to_a_remote_clari_is_refused_everywhere() {
    for bad in [
        "http://api.clari.com/v4",
        "http://10.0.0.5/v4",
        "https://user:pass@api.clari.com/v4",
        "ftp://api.clari.com",
        "not a url",
    ] {
        assert!(check_base_url(bad).is_err(), "{bad}");
        assert!(
            ClariTarget::new(bad, SecretString::from("k".to_owned())).is_err(),
            "{bad}"
        );
        let env: HashMap<String, String> = [
            ("CLARI_MCP_CLARI_BASE_URL", bad),
            ("CLARI_MCP_DATABASE_URL", "sqlite::memory:"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let e = Config::from_sources(None, &env).unwrap_err().to_string();
        assert!(e.contains("CLARI_MCP_CLARI_BASE_URL"), "{bad}: {e}");
    }
    for good in [
        "https://api.clari.com/v4",
        "http://127.0.0.1:9999/v4",
        "http://localhost/v4",
        "http://[::1]:8/v4",
    ] {
        assert!(check_base_url(good).is_ok(), "{good}");
    }
}

#[tokio::test]
async fn a_cursor_this_server_did_not_issue_is_a_tool_error_naming_cursor() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let key = env.api_key("clari:read").await;
    for cursor in ["5001", "18446744073709551615", "-3", "abc"] {
        let r = call_tool(
            &env.app,
            &key,
            "list_audit_events",
            json!({"cursor": cursor, "limit": 200}),
        )
        .await;
        assert_eq!(r["isError"], true, "{cursor}: {r}");
        let text = r["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("`cursor`"), "{cursor}: {text}");
    }
    let requests = env.sandbox.request_count();
    assert_eq!(requests, 0, "a bad cursor never reaches Clari");
}

#[tokio::test]
async fn an_upstream_that_pages_forever_is_read_a_bounded_number_of_pages() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let key = env.api_key("audit:read").await;
    env.sandbox.set_knobs(|k| k.audit_empty_pages = true);
    let r = call_tool(&env.app, &key, "list_audit_events", json!({})).await;
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(r["structuredContent"]["events"], json!([]));
    let requests = env.sandbox.request_count();
    assert!(
        requests <= clari_mcp::clari::client::MAX_AUDIT_PAGES as u64,
        "{requests} requests for one call"
    );
}

/// Registers a public client with `X-Forwarded-For: <xff>`; returns the status.
async fn register_from(app: &crate::helpers::TestApp, xff: &str) -> u16 {
    app.http
        .post(app.url("/register"))
        .header("x-forwarded-for", xff)
        .json(&json!({"redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_spoofed_forwarded_for_does_not_buy_a_fresh_throttle_bucket() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = crate::helpers::spawn_app_with(
        &db,
        &[
            ("CLARI_MCP_DCR_RATE_LIMIT", "3"),
            ("CLARI_MCP_TRUST_FORWARDED_FOR", "true"),
        ],
    )
    .await;
    // Behind one proxy, the proxy appends the real client (203.0.113.9) to whatever it sent.
    for i in 0..3 {
        assert_eq!(
            register_from(&app, &format!("10.9.9.{i}, 203.0.113.9")).await,
            201
        );
    }
    assert_eq!(
        register_from(&app, "10.9.9.77, 203.0.113.9").await,
        429,
        "a new left-most entry is the same client"
    );
    // Another client of the same IPv6 /64 shares the bucket; another /64 does not.
    for i in 0..3 {
        assert_eq!(
            register_from(&app, &format!("2001:db8:5:5::{i}")).await,
            201
        );
    }
    assert_eq!(register_from(&app, "2001:db8:5:5::99").await, 429);
    assert_eq!(register_from(&app, "2001:db8:5:6::1").await, 201);
}

async fn expired_sessions_codes_and_refresh_tokens_are_purged(db: &TestDb) {
    use crate::helpers::oauth::*;
    let app = crate::helpers::spawn_app(db).await;
    // Session expiry runs on the wall clock; put the app's clock there.
    let real_now = time::OffsetDateTime::now_utc().unix_timestamp();
    app.clock.set(real_now);
    seed_user(&app, "Acme", "ava@acme.test").await;
    // A signed-in browser with a grant, a used code and a refresh token.
    let client = register_public(&app).await;
    let cid = client["client_id"].as_str().unwrap().to_owned();
    let p = pkce();
    let mut signed_in = Browser::new(&app);
    let q = authorize(&mut signed_in, &cid, &p, "ava@acme.test").await;
    let (status, tokens) = exchange(&app, &cid, &q["code"], &p.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    // An anonymous visitor who only opened the sign-in page.
    let mut anonymous = Browser::new(&app);
    assert_eq!(anonymous.get("/login").await.status, 200);

    // 20 minutes later only the anonymous session goes.
    app.clock.set(real_now + 20 * 60);
    let done = clari_mcp::app::housekeeping(&app.state).await.unwrap();
    assert_eq!(done.purged.sessions, 1, "{done:?}");
    assert!(done.purged.codes >= 1, "the used code is gone: {done:?}");
    assert_eq!(done.purged.refresh_tokens, 0, "{done:?}");
    assert_eq!(
        signed_in.get("/account").await.status,
        200,
        "still signed in"
    );

    // Past every expiry: the signed-in session and the refresh token go too, then nothing is left.
    app.clock.set(real_now + 40 * 86_400);
    let done = clari_mcp::app::housekeeping(&app.state).await.unwrap();
    assert_eq!(done.purged.sessions, 1, "{done:?}");
    assert!(done.purged.refresh_tokens >= 1, "{done:?}");
    let again = clari_mcp::app::housekeeping(&app.state).await.unwrap();
    assert_eq!(again.purged, clari_mcp::store::Purged::default());
    let (status, body, _) =
        refresh_with(&app, &cid, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn a_disabled_organisations_background_export_stops_calling_clari() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    env.sandbox.set_knobs(|k| k.job_latency_ms = 60_000);
    let key = env.api_key("forecasts:read").await;
    let r = call_tool(&env.app, &key, "get_forecast", json!({"wait_seconds": 0})).await;
    assert_eq!(r["structuredContent"]["status"], "running", "{r}");
    // The export is being polled in the background (40 ms polls here).
    let polling_from = env.sandbox.request_count();
    eventually(
        "the background export to poll Clari three times",
        async || env.sandbox.request_count() >= polling_from + 3,
    )
    .await;
    env.app
        .state
        .store
        .set_org_disabled(&env.org, true)
        .await
        .unwrap();
    // Within a few polls the task gives up, and with it the decrypted key: it ends by reporting
    // its failure to the cache, whose entry then goes. Left polling, it would keep the entry for
    // the job's whole minute.
    eventually(
        "the background export to stop polling Clari for a disabled organisation \
         (Clari is still being polled)",
        async || {
            env.app.state.forecasts.sweep();
            env.app.state.forecasts.is_empty()
        },
    )
    .await;
    // It recorded the export as ended (before it reported), so no other caller follows it.
    let left = env
        .app
        .state
        .store
        .unfinished_exports(&env.org)
        .await
        .unwrap();
    assert!(left.is_empty(), "the abandoned export is closed: {left:?}");
}

/// Turns connections to a PostgreSQL test database off (and drops the open ones) or on again.
async fn postgres_outage(db: &TestDb, down: bool) {
    db.allow_connections(!down).await;
    if down {
        let (admin, name) = db.postgres().expect("a PostgreSQL test database");
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin)
            .await
            .unwrap();
        sqlx::Executor::execute(
            &mut conn,
            sqlx::AssertSqlSafe(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            )),
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_failing_database_is_503_not_a_bad_token_and_the_server_recovers() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        crate::helpers::announce_skip("abuse::a_failing_database_is_503_not_a_bad_token");
        return;
    };
    let env = mcp_env(&db).await;
    let key = env.api_key("clari:read").await;
    assert_eq!(
        rpc(&env.app, Some(&key), "tools/list", json!({}))
            .await
            .status,
        200
    );

    let changes = env.app.state.store.changes();
    let losses = changes.listener_losses();
    postgres_outage(&db, true).await;
    // Until it notices its change listener is gone, the replica may serve the key it keeps in
    // memory (nothing can be revoked meanwhile: the database is down); then it asks the store.
    crate::helpers::eventually("the change listener to be noticed gone", async || {
        changes.listener_losses() > losses
    })
    .await;
    let r = rpc(&env.app, Some(&key), "tools/list", json!({})).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.get("retry-after").is_some());
    assert!(
        r.headers.get("www-authenticate").is_none(),
        "the client must not throw its token away"
    );
    let ready = env
        .app
        .http
        .get(env.app.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    postgres_outage(&db, false).await;
    let r = rpc(&env.app, Some(&key), "tools/list", json!({})).await;
    assert_eq!(r.status, 200, "recovered: {}", r.body);
    let r = call_tool(&env.app, &key, "get_admin_limits", json!({})).await;
    assert_eq!(r["isError"], false, "{r}");
    db.cleanup().await;
}

/// A JWT with the given `kid` in its header and a junk signature.
fn forged_jwt(kid: &str) -> String {
    use base64::Engine;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(json!({"alg": "ES256", "typ": "at+jwt", "kid": kid})),
        b64(json!({"sub": "x", "iss": "x", "aud": "x", "exp": 4_000_000_000u64}))
    )
}

#[tokio::test]
async fn garbage_tokens_with_unknown_kids_cannot_force_key_reloads() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let keys = &env.app.state.keys;
    // Malformed kids are refused before any key lookup.
    for kid in [
        "x",
        "../../etc/passwd",
        &"A".repeat(500),
        "not base64url!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    ] {
        let r = rpc(&env.app, Some(&forged_jwt(kid)), "tools/list", json!({})).await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(keys.unknown_kid_reloads(), 0);
    // Well-formed unknown kids: at most one reload per interval, however many arrive.
    for i in 0..50 {
        let kid = format!("{:0>43}", i);
        let r = rpc(&env.app, Some(&forged_jwt(&kid)), "tools/list", json!({})).await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(keys.unknown_kid_reloads(), 1);
    env.app
        .clock
        .advance(clari_mcp::signing::RELOAD_AT_MOST_EVERY);
    rpc(
        &env.app,
        Some(&forged_jwt(&"z".repeat(43))),
        "tools/list",
        json!({}),
    )
    .await;
    assert_eq!(
        keys.unknown_kid_reloads(),
        2,
        "the next interval may reload again"
    );
}

async fn simultaneous_refreshes_with_one_token_are_not_a_replay(db: &TestDb) {
    use crate::helpers::oauth::*;
    let app = crate::helpers::spawn_app(db).await;
    seed_user(&app, "Acme", "ava@acme.test").await;
    let client = register_public(&app).await;
    let cid = client["client_id"].as_str().unwrap().to_owned();
    let p = pkce();
    let mut b = Browser::new(&app);
    let q = authorize(&mut b, &cid, &p, "ava@acme.test").await;
    let (_, tokens) = exchange(&app, &cid, &q["code"], &p.verifier).await;
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |t: String| {
        let (app, cid) = (&app, cid.clone());
        async move { refresh_with(app, &cid, &t).await }
    };
    // Six refreshes with the same token, truly at once.
    let answers = futures_util::future::join_all((0..6).map(|_| refresh(rt.clone()))).await;
    let mut successors = Vec::new();
    for (status, body, _) in &answers {
        assert_eq!(*status, 200, "a simultaneous refresh was refused: {body}");
        successors.push(body["refresh_token"].as_str().unwrap().to_owned());
    }
    // Nothing was revoked; exactly one successor is live (the answer that came last), the others
    // were superseded as retries are, and the live one refreshes.
    let store = &app.state.store;
    let mut live = Vec::new();
    for s in &successors {
        let r = store
            .refresh(&clari_mcp::crypto::sha256_hex(s))
            .await
            .unwrap()
            .unwrap();
        if r.revoked_at.is_none() && r.rotated_at.is_none() {
            live.push(s.clone());
        }
    }
    assert_eq!(live.len(), 1, "one live refresh token per grant");
    let (status, body, _) = refresh(live.pop().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    // Outside the grace window, the old token coming back is still a replay.
    app.clock
        .advance(clari_mcp::oauth::token::ROTATION_GRACE_SECS + 1);
    let (status, _, _) = refresh(rt).await;
    assert_eq!(status, 400);
    let grants = app
        .state
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
                .id,
        )
        .await
        .unwrap();
    assert!(grants.is_empty(), "the replay revoked the sign-in");
}
