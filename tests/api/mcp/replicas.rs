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
