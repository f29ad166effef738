//! Dynamic registration, client management and Client ID Metadata Documents.

use super::*;

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
        clari_mcp::oauth::cimd::PER_HOST_PER_MINUTE as usize,
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

#[tokio::test]
async fn a_metadata_document_that_moves_its_redirect_uris_loses_remembered_consent() {
    use axum::routing::get;
    use std::sync::{Arc, Mutex};
    let doc: Arc<Mutex<Value>> = Arc::new(Mutex::new(Value::Null));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    let served = doc.clone();
    let router = axum::Router::new().route(
        "/client.json",
        get(move || {
            let d = served.lock().unwrap().clone();
            async move { ([("cache-control", "max-age=600")], axum::Json(d)) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let cid = format!("{server}/client.json");
    let moved = "http://127.0.0.1/elsewhere";
    *doc.lock().unwrap() =
        json!({"client_id": cid, "client_name": "Doc Client", "redirect_uris": [REDIRECT]});

    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app_with(&db, &[("CLARI_MCP_DANGER_CIMD_ALLOW_LOOPBACK", "true")]).await;
    seed_user(&app, "Acme", "ava@acme.test").await;
    let p = pkce();
    let mut b = Browser::new(&app);
    // The consent page says which host the application is, beside the name it gives itself.
    let start = authorize_raw(&mut b, &base(&cid, &p)).await;
    let login = b.get(start.location.as_deref().unwrap()).await;
    assert!(
        login.body.contains("Doc Client (127.0.0.1)"),
        "{}",
        login.body
    );
    let first = authorize(&mut b, &cid, &p, "ava@acme.test").await;
    assert!(first.contains_key("code"));
    let silent = with(base(&cid, &p), "prompt", Some("none"));
    let again = authorize_raw(&mut b, &silent).await;
    assert!(query_of(&again.location.clone().unwrap()).contains_key("code"));

    // The document now names a second redirect URI; once the cached copy expires, the new one
    // is read, and the consent given for the old list no longer counts.
    *doc.lock().unwrap() = json!({"client_id": cid, "client_name": "Doc Client",
        "redirect_uris": [REDIRECT, moved]});
    app.clock.advance(601);
    let to_new = with(
        with(base(&cid, &p), "prompt", Some("none")),
        "redirect_uri",
        Some(moved),
    );
    let page = authorize_raw(&mut b, &to_new).await;
    let q = query_of(&page.location.clone().unwrap_or_default());
    assert!(!q.contains_key("code"), "a code went to the new URI: {q:?}");
    assert_eq!(q.get("error").map(String::as_str), Some("consent_required"));
    db.cleanup().await;
}

#[tokio::test]
async fn client_names_with_bidi_zero_width_or_control_characters_are_refused() {
    let (_db, app) = app().await;
    for name in [
        "Claude\u{202E}edualC",
        "Cla\u{200B}ude",
        "Claude\u{0007}",
        "Claude\u{2066}x\u{2069}",
    ] {
        let r = register(
            &app,
            json!({"client_name": name, "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
        )
        .await;
        assert_eq!(r.status(), 400, "{name:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client_metadata");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("client_name"),
            "{body}"
        );
    }
    let r = register(
        &app,
        json!({"client_name": "Zoë’s Agent 日本", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_eq!(r.status(), 201, "letters of any script are fine");
}
