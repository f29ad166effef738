//! Two replicas over one PostgreSQL.

use super::*;

#[tokio::test]
async fn two_replicas_over_one_postgres_share_tokens_revocations_and_sessions() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        crate::helpers::announce_skip(
            "mcp::two_replicas_over_one_postgres_share_tokens_revocations_and_sessions",
        );
        return;
    };
    // Replicas share the database and the vault keys, nothing else.
    let vault_key = clari_mcp::crypto::Vault::generate_key();
    let keys = [(
        "CLARI_MCP_VAULT_KEYS",
        secrecy::ExposeSecret::expose_secret(&vault_key),
    )];
    let env = mcp_env_with(&db, &keys).await;
    // Behind a load balancer every replica has the same public URL, hence the same issuer.
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

    // An OAuth sign-in on replica A.
    let client = crate::helpers::oauth::register_public(&env.app).await;
    let cid = client["client_id"].as_str().unwrap().to_owned();
    let p = crate::helpers::oauth::pkce();
    let mut browser = crate::helpers::oauth::Browser::new(&env.app);
    let q = crate::helpers::oauth::authorize(&mut browser, &cid, &p, "ava@acme.test").await;
    // The code is redeemed on replica B.
    let (status, tokens) = crate::helpers::oauth::exchange(&b, &cid, &q["code"], &p.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let at = tokens["access_token"].as_str().unwrap().to_owned();
    // B's token works on A and on B.
    assert_eq!(
        call_tool(&env.app, &at, "get_admin_limits", json!({})).await["isError"],
        false
    );
    assert_eq!(
        call_tool(&b, &at, "get_admin_limits", json!({})).await["isError"],
        false
    );
    // A browser session made on A is valid on B: the account page shows the grant.
    let mut on_b = crate::helpers::oauth::Browser::new(&b);
    on_b.cookies = browser.cookies.clone();
    let account = on_b.get("/account").await;
    assert_eq!(account.status, 200, "signed in on B with A's session");
    assert!(account.body.contains("Test Agent"));
    // Revoked on A, refused by B on the next request.
    let r = env
        .app
        .http
        .post(env.app.url("/revoke"))
        .form(&[("client_id", cid.as_str()), ("token", at.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        rpc(&b, Some(&at), "tools/list", json!({})).await.status,
        401
    );
    db.cleanup().await;
}

#[tokio::test]
async fn replicas_share_one_clari_export_through_the_database() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let (env, b) = mcp_env_with_replica(&db).await;
    env.sandbox.set_knobs(|k| k.job_latency_ms = 1_000);
    let key = env.api_key("forecasts:read").await;
    let on_a = call_tool(&env.app, &key, "get_forecast", json!({"wait_seconds": 0})).await;
    assert_eq!(on_a["structuredContent"]["status"], "running");
    // Replica B has nothing in memory, but follows the job A started.
    let on_b = call_tool(&b, &key, "get_forecast", json!({"wait_seconds": 10})).await;
    assert_eq!(on_b["structuredContent"]["status"], "ready", "{on_b}");
    let again_a = call_tool(&env.app, &key, "get_forecast", json!({"wait_seconds": 10})).await;
    assert_eq!(
        again_a["structuredContent"]["total"],
        on_b["structuredContent"]["total"]
    );
    assert_eq!(
        env.sandbox.jobs_created(),
        1,
        "one Clari export for both replicas"
    );
}

/// Cuts every change listener of this test's database, so that they cannot come back until
/// connections are allowed again.
async fn cut_listeners(db: &TestDb) {
    db.allow_connections(false).await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.postgres().unwrap().0)
        .await
        .unwrap();
    let cut: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
         WHERE application_name = $1 AND datname = $2",
    )
    .bind(clari_mcp::store::changes::LISTENER_NAME)
    .bind(db.postgres().unwrap().1)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(
        cut.len() >= 2 && cut.iter().all(|(done,)| *done),
        "both replicas listen: {cut:?}"
    );
}

#[tokio::test]
async fn a_replica_whose_change_listener_was_cut_still_refuses_a_revoked_key_over_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        crate::helpers::announce_skip(
            "mcp::a_replica_whose_change_listener_was_cut_still_refuses_a_revoked_key_over_postgres",
        );
        return;
    };
    let (env, b) = mcp_env_with_replica(&db).await;
    let key = env.api_key("forecasts:read").await;
    let changes = b.state.store.changes();
    crate::helpers::eventually("both change listeners to be current", async || {
        changes.trusted() && env.app.state.store.changes().trusted()
    })
    .await;
    // Warm on B: the key is now in B's memory, and B serves it without the store.
    assert_eq!(
        rpc(&b, Some(&key), "tools/list", json!({})).await.status,
        200
    );
    assert_eq!(b.state.cached.api_keys.len(), 1, "B keeps the key");
    assert_eq!(
        rpc(&b, Some(&key), "tools/list", json!({})).await.status,
        200
    );
    // A key B has not seen yet, for while its listener is away.
    let other = env.api_key("forecasts:read").await;
    // A connection opened before the listeners are cut revokes while they are away.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let losses = changes.listener_losses();
    cut_listeners(&db).await;
    crate::helpers::eventually("B to notice its listener is gone", async || {
        changes.listener_losses() > losses
    })
    .await;
    sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE key_hash = $2")
        .bind(b.clock.now_for_tests())
        .bind(clari_mcp::crypto::sha256_hex(&key))
        .execute(&mut conn)
        .await
        .unwrap();
    // The notification was sent to nobody, yet B does not serve what it kept: while its
    // listener is away it asks the store,
    assert_eq!(
        rpc(&b, Some(&key), "tools/list", json!({})).await.status,
        401
    );
    assert_eq!(
        rpc(&env.app, Some(&key), "tools/list", json!({}))
            .await
            .status,
        401
    );
    // and keeps nothing new meanwhile;
    let kept = b.state.cached.api_keys.len();
    assert_eq!(
        rpc(&b, Some(&other), "tools/list", json!({})).await.status,
        200
    );
    assert_eq!(
        b.state.cached.api_keys.len(),
        kept,
        "nothing is kept while away"
    );
    // and once it is back, what it kept before is gone.
    db.allow_connections(true).await;
    crate::helpers::eventually("B's listener to be back", async || changes.trusted()).await;
    assert_eq!(
        rpc(&b, Some(&key), "tools/list", json!({})).await.status,
        401
    );
    // B keeps keys again, and hears the next change as before.
    assert_eq!(
        rpc(&b, Some(&other), "tools/list", json!({})).await.status,
        200
    );
    assert_eq!(
        b.state.cached.api_keys.len(),
        kept + 1,
        "kept again once back"
    );
    env.app
        .state
        .store
        .set_user_disabled(&env.user, true)
        .await
        .unwrap();
    assert_eq!(
        rpc(&b, Some(&other), "tools/list", json!({})).await.status,
        401
    );
    db.cleanup().await;
}

/// A replica whose listener lags behind cannot serve what a change on another replica (or
/// the operator's CLI) revoked, once that change has returned: the change waits for every
/// listener's acknowledgement, and a listener that gives none in time has stopped trusting
/// its cache by then. Without the wait, B would still answer from memory here.
#[tokio::test]
async fn a_change_returns_only_when_a_lagging_replica_has_heard_it_or_distrusts_its_cache() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        crate::helpers::announce_skip(
            "mcp::a_change_returns_only_when_a_lagging_replica_has_heard_it_or_distrusts_its_cache",
        );
        return;
    };
    let vault_key = clari_mcp::crypto::Vault::generate_key();
    let vault_key = secrecy::ExposeSecret::expose_secret(&vault_key).to_owned();
    let (env, b) =
        crate::helpers::mcp::mcp_env_with_replica_and(&db, &[("CLARI_MCP_VAULT_KEYS", &vault_key)])
            .await;
    let changes = b.state.store.changes();
    let trusted = async || changes.trusted() && env.app.state.store.changes().trusted();
    crate::helpers::eventually("both change listeners to be current", trusted).await;
    let key = env.api_key("forecasts:read").await;
    let other = env.api_key("forecasts:read").await;
    let spare = env.api_key("forecasts:read").await;
    for k in [&key, &other, &spare] {
        assert_eq!(rpc(&b, Some(k), "tools/list", json!({})).await.status, 200);
    }
    assert_eq!(b.state.cached.api_keys.len(), 3, "B keeps the keys");
    let a = &env.app.state.store;
    let revoke = async |key: &str| {
        let id = a
            .list_api_keys(&env.org)
            .await
            .unwrap()
            .into_iter()
            .find(|k| key.ends_with(&k.key_hint))
            .unwrap()
            .id;
        a.revoke_api_key(&env.org, &id, env.app.clock.now_for_tests())
            .await
            .unwrap();
    };

    // B, keeping up, acknowledges A's change: A does not wait it out.
    revoke(&spare).await;
    assert_eq!(a.changes().unacknowledged_changes(), 0, "B acknowledged");
    assert_eq!(
        rpc(&b, Some(&spare), "tools/list", json!({})).await.status,
        401
    );

    // B's listener stops reading, as one behind a slow network would; A revokes a key.
    let hold = changes
        .hold_listener()
        .await
        .expect("a PostgreSQL listener");
    revoke(&key).await;
    assert_eq!(
        a.changes().unacknowledged_changes(),
        1,
        "A waited B out, and counts it"
    );
    assert_eq!(
        rpc(&b, Some(&key), "tools/list", json!({})).await.status,
        401,
        "B has not heard the revocation, and no longer trusts what it kept"
    );
    drop(hold);
    crate::helpers::eventually("B's listener to catch up", trusted).await;
    assert_eq!(
        rpc(&b, Some(&key), "tools/list", json!({})).await.status,
        401
    );
    assert_eq!(
        rpc(&b, Some(&other), "tools/list", json!({})).await.status,
        200,
        "B serves the other key again"
    );

    // The same from the operator's CLI, a process of its own.
    let hold = changes
        .hold_listener()
        .await
        .expect("a PostgreSQL listener");
    let mut cli = crate::helpers::Cli::new(&db);
    cli.env.insert("CLARI_MCP_VAULT_KEYS".to_owned(), vault_key);
    let keys: Vec<serde_json::Value> =
        serde_json::from_str(&cli.ok(&["api-key", "list", "--json"], None)).unwrap();
    let other_id = keys
        .iter()
        .find(|k| other.ends_with(k["key_hint"].as_str().unwrap()))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::task::spawn_blocking(move || cli.ok(&["api-key", "revoke", &other_id], None))
        .await
        .unwrap();
    assert_eq!(
        rpc(&b, Some(&other), "tools/list", json!({})).await.status,
        401
    );
    drop(hold);
    db.cleanup().await;
}

/// A replica whose listening connection the database closed, before the replica notices, is
/// not listed as listening any more, yet may still trust what it keeps: a change waits it out
/// because it pinged lately.
#[tokio::test]
async fn a_change_waits_out_a_replica_whose_listener_was_closed_before_it_noticed() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        crate::helpers::announce_skip(
            "mcp::a_change_waits_out_a_replica_whose_listener_was_closed_before_it_noticed",
        );
        return;
    };
    let (env, b) = mcp_env_with_replica(&db).await;
    let (on_a, on_b) = (env.app.state.store.changes(), b.state.store.changes());
    crate::helpers::eventually("both change listeners to be current", async || {
        on_a.trusted() && on_b.trusted()
    })
    .await;
    let key = env.api_key("forecasts:read").await;
    assert_eq!(
        rpc(&b, Some(&key), "tools/list", json!({})).await.status,
        200
    );
    // B reads nothing more from its listener, so it cannot see its connection close.
    let hold = on_b.hold_listener().await.expect("a PostgreSQL listener");
    let losses = on_a.listener_losses();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
         WHERE application_name = $1 AND datname = current_database()",
    )
    .bind(clari_mcp::store::changes::LISTENER_NAME)
    .execute(&mut conn)
    .await
    .unwrap();
    crate::helpers::eventually("A's listener to be back", async || {
        on_a.listener_losses() > losses && on_a.trusted()
    })
    .await;
    let a = &env.app.state.store;
    let id = a.list_api_keys(&env.org).await.unwrap()[0].id.clone();
    a.revoke_api_key(&env.org, &id, env.app.clock.now_for_tests())
        .await
        .unwrap();
    assert_eq!(on_a.unacknowledged_changes(), 1, "B was waited out");
    assert_eq!(
        rpc(&b, Some(&key), "tools/list", json!({})).await.status,
        401
    );
    drop(hold);
    crate::helpers::eventually("B to notice and come back", async || {
        on_b.listener_losses() > 0 && on_b.trusted()
    })
    .await;
    assert_eq!(
        rpc(&b, Some(&key), "tools/list", json!({})).await.status,
        401
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_cli_change_applies_to_the_next_call_of_a_running_sqlite_server() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let vault_key = clari_mcp::crypto::Vault::generate_key();
    let vault_key = secrecy::ExposeSecret::expose_secret(&vault_key).to_owned();
    let env = mcp_env_with(&db, &[("CLARI_MCP_VAULT_KEYS", &vault_key)]).await;
    let key = env.api_key("forecasts:read").await;
    assert_eq!(
        rpc(&env.app, Some(&key), "tools/list", json!({}))
            .await
            .status,
        200
    );
    assert_eq!(
        env.app.state.cached.api_keys.len(),
        1,
        "the server keeps the key"
    );
    assert_eq!(
        rpc(&env.app, Some(&key), "tools/list", json!({}))
            .await
            .status,
        200
    );
    // The operator revokes it from a shell, in another process, against the same file.
    let mut cli = crate::helpers::Cli::new(&db);
    cli.env
        .insert("CLARI_MCP_VAULT_KEYS".to_owned(), vault_key.clone());
    let listing = cli.ok(&["api-key", "list", "--json"], None);
    let keys: Vec<serde_json::Value> = serde_json::from_str(&listing).unwrap();
    assert!(!keys.is_empty());
    for key in &keys {
        cli.ok(&["api-key", "revoke", key["id"].as_str().unwrap()], None);
    }
    assert_eq!(
        rpc(&env.app, Some(&key), "tools/list", json!({}))
            .await
            .status,
        401
    );
}

/// What B keeps in memory besides credentials (the organisation's redaction policy and time
/// zone, and its DPoP requirement, which comes with the grant behind a token) is dropped when A
/// changes it: B's next call answers by the new setting.
#[tokio::test]
async fn settings_changed_on_one_replica_apply_to_the_next_call_on_the_other_over_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        crate::helpers::announce_skip(
            "mcp::settings_changed_on_one_replica_apply_to_the_next_call_on_the_other_over_postgres",
        );
        return;
    };
    let (env, b) = mcp_env_with_replica(&db).await;
    crate::helpers::eventually("both change listeners to be current", async || {
        b.state.store.changes().trusted() && env.app.state.store.changes().trusted()
    })
    .await;
    let key = env.api_key("clari:read").await;
    let client = crate::helpers::oauth::register_public(&env.app).await;
    let cid = client["client_id"].as_str().unwrap().to_owned();
    let p = crate::helpers::oauth::pkce();
    let mut browser = crate::helpers::oauth::Browser::new(&env.app);
    let q = crate::helpers::oauth::authorize(&mut browser, &cid, &p, "ava@acme.test").await;
    let (status, tokens) =
        crate::helpers::oauth::exchange(&env.app, &cid, &q["code"], &p.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let at = tokens["access_token"].as_str().unwrap().to_owned();

    // B answers by the settings as they are, and keeps them.
    let a = &env.app.state.store;
    let org = &env.org;
    a.set_org_redaction(org, Some(r#"{"kinds":[],"custom":[]}"#))
        .await
        .unwrap();
    let users = || call_tool(&b, &key, "list_users", json!({"limit": 200}));
    let day = json!({"since": "2026-11-30", "until": "2026-11-30", "wait_seconds": 30});
    let since = async || {
        call_tool(&b, &key, "list_forecast_submissions", day.clone()).await["structuredContent"]
            ["since"]
            .clone()
    };
    assert!(users().await.to_string().contains("@northwind.example"));
    assert_eq!(since().await, "2026-11-30T00:00:00Z");
    assert_eq!(
        rpc(&b, Some(&at), "tools/list", json!({})).await.status,
        200
    );
    assert_eq!(
        rpc(&b, Some(&at), "tools/list", json!({})).await.status,
        200
    );
    assert!(b.state.cached.behind.lookups().0 >= 1, "B kept the grant");
    assert!(
        b.state.cached.redaction.lookups().0 >= 1,
        "B kept the policy"
    );

    // A changes each; B's very next call follows.
    a.set_org_redaction(org, Some(r#"{"kinds":["email"],"custom":[]}"#))
        .await
        .unwrap();
    assert!(!users().await.to_string().contains("@northwind.example"));
    a.set_org_time_zone(org, Some("America/New_York"))
        .await
        .unwrap();
    assert_eq!(since().await, "2026-11-30T05:00:00Z");
    a.set_org_requires_dpop(org, true).await.unwrap();
    assert_eq!(
        rpc(&b, Some(&at), "tools/list", json!({})).await.status,
        401
    );
    db.cleanup().await;
}
