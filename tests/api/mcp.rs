//! The MCP resource server end to end: transport, authentication, scopes, tools against the sandbox.

use serde_json::json;

use crate::both_backends;

both_backends!(
    every_tool_answers_from_clari_with_numbers_that_add_up,
    revocation_and_disabling_take_effect_on_the_next_request,
    an_organisation_never_sees_another_organisations_data,
    slow_exports_answer_running_then_ready_from_one_upstream_job,
);

use crate::helpers::{Backend, TestDb};
use crate::mcp_helpers::*;

#[tokio::test]
async fn smoke_initialize_list_and_call_with_an_api_key() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let key = env.api_key("clari:read").await;
    let init = rpc(&env.app, Some(&key), "initialize", json!({"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}})).await;
    assert_eq!(init.status, 200, "{}", init.body);
    let list = rpc(&env.app, Some(&key), "tools/list", json!({})).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(
        list.body["result"]["tools"].as_array().unwrap().len(),
        13,
        "{}",
        list.body
    );
    let limits = call_tool(&env.app, &key, "get_admin_limits", json!({})).await;
    assert_eq!(limits["isError"], false, "{limits}");
    assert_eq!(limits["structuredContent"]["concurrent_limit"], 3);
}

use clari_mcp::clari::sandbox::Level;
use serde_json::Value;

fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn requests_without_a_valid_token_get_the_resource_metadata_challenge() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let issuer = env.app.state.config.issuer.clone();
    let expected_meta =
        format!("resource_metadata=\"{issuer}/.well-known/oauth-protected-resource/mcp\"");

    let none = rpc(&env.app, None, "tools/list", json!({})).await;
    assert_eq!(none.status, 401);
    let challenge = none.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(&expected_meta), "{challenge}");
    assert!(challenge.contains("scope=\"accounts:read audit:read exports:read forecasts:read opportunities:read users:read\"") || challenge.contains("forecasts:read"), "{challenge}");
    assert!(
        !challenge.contains("error="),
        "no error code without a token: {challenge}"
    );
    assert!(!challenge.contains("offline_access"));

    for bad in [
        "garbage",
        "cmk_not-a-real-key",
        "eyJhbGciOiJFUzI1NiJ9.e30.sig",
    ] {
        let r = rpc(&env.app, Some(bad), "tools/list", json!({})).await;
        assert_eq!(r.status, 401, "{bad}");
        let c = r.headers["www-authenticate"].to_str().unwrap();
        assert!(
            c.contains("error=\"invalid_token\"") && c.contains(&expected_meta),
            "{c}"
        );
    }

    // A token of ours, but for another audience, is refused (no passthrough of foreign tokens).
    let s = &env.app.state;
    let claims = clari_mcp::signing::AccessClaims {
        iss: issuer.clone(),
        sub: env.user.to_string(),
        aud: "https://other.example.com/mcp".into(),
        client_id: "c".into(),
        scope: "clari:read".into(),
        org: env.org.to_string(),
        gid: "g".into(),
        jti: "j".into(),
        iat: s.now(),
        exp: s.now() + 600,
    };
    let foreign = s.keys.sign(&claims).await.unwrap();
    let r = rpc(&env.app, Some(&foreign), "tools/list", json!({})).await;
    assert_eq!(r.status, 401);
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("another resource")
    );
}

#[tokio::test]
async fn tools_are_scope_gated_with_a_step_up_challenge() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let key = env.api_key("audit:read").await;
    let list = rpc(&env.app, Some(&key), "tools/list", json!({})).await;
    let names: Vec<&str> = list.body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["list_audit_events"]);
    let denied = rpc(
        &env.app,
        Some(&key),
        "tools/call",
        json!({"name": "get_forecast", "arguments": {}}),
    )
    .await;
    assert_eq!(denied.status, 403);
    let c = denied.headers["www-authenticate"].to_str().unwrap();
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");
    assert!(
        c.contains("scope=\"forecasts:read audit:read\"")
            || (c.contains("forecasts:read") && c.contains("audit:read")),
        "{c}"
    );
    assert!(c.contains("resource_metadata="), "{c}");
    assert_eq!(env.sandbox.request_count(), 0, "nothing reached Clari");
    // Every tool carries schemas and the read-only hint.
    let all = env.api_key("clari:read").await;
    let list = rpc(&env.app, Some(&all), "tools/list", json!({})).await;
    for t in list.body["result"]["tools"].as_array().unwrap() {
        assert_eq!(t["annotations"]["readOnlyHint"], true, "{t}");
        assert!(
            t["inputSchema"].is_object() && t["outputSchema"].is_object(),
            "{t}"
        );
    }
}

async fn every_tool_answers_from_clari_with_numbers_that_add_up(db: &TestDb) {
    let env = mcp_env(db).await;
    let key = env.api_key("clari:read").await;
    let data = &env.sandbox.dataset().orgs[0];
    let cur = data.periods.len() - 1;
    let week = data.periods[cur].weeks_elapsed - 1;
    let grid = &data.forecasts[0].grids[cur];
    let ceo = data
        .users
        .iter()
        .position(|u| u.level == Level::Ceo)
        .unwrap();

    let f = call_tool(&env.app, &key, "get_forecast", json!({"wait_seconds": 20})).await;
    assert_eq!(f["isError"], false, "{f}");
    let s = &f["structuredContent"];
    assert_eq!(s["status"], "ready");
    assert_eq!(s["time_period"], data.periods[cur].id.as_str());
    assert_eq!(s["total"]["name"], data.users[ceo].name.as_str());
    assert_eq!(s["total"]["commit"], grid.values[ceo][0][week]);
    assert_eq!(s["total"]["quota"], grid.quota[ceo]);
    let breakdown = s["breakdown"].as_array().unwrap();
    assert_eq!(breakdown.len(), 3, "three VPs");
    let sum: f64 = breakdown
        .iter()
        .map(|r| r["commit"].as_f64().unwrap())
        .sum();
    assert_eq!(
        sum,
        s["total"]["commit"].as_f64().unwrap(),
        "the VPs add up to the total"
    );
    assert!(text(&f).contains("Commit $"));

    // By manager, for another quarter, limited to two fields.
    let vp = &data.users[data.users[ceo].children[0]];
    let f = call_tool(&env.app, &key, "get_forecast", json!({"manager": vp.name, "time_period": data.periods[cur - 1].id, "fields": ["commit", "quota"]})).await;
    let s = &f["structuredContent"];
    assert_eq!(s["time_period"], data.periods[cur - 1].id.as_str());
    assert_eq!(s["breakdown"].as_array().unwrap().len(), 2);
    assert!(s["total"].get("pipeline").is_none() && s["total"].get("commit").is_some());

    let subs = call_tool(
        &env.app,
        &key,
        "list_forecast_submissions",
        json!({"since": clari_mcp::clock::rfc3339(env.app.state.now() - 30 * 86_400), "limit": 5}),
    )
    .await;
    let items = subs["structuredContent"]["submissions"].as_array().unwrap();
    assert!(!items.is_empty(), "{subs}");
    assert!(
        items
            .windows(2)
            .all(|w| w[0]["updated_on"].as_str() >= w[1]["updated_on"].as_str()),
        "newest first"
    );
    assert!(items[0]["updated_by_name"].is_string());

    let tp = call_tool(&env.app, &key, "list_time_periods", json!({})).await;
    assert_eq!(
        tp["structuredContent"]["weeks"].as_array().unwrap().len(),
        data.periods[cur].weeks_elapsed
    );

    let users = call_tool(&env.app, &key, "list_users", json!({"limit": 5})).await;
    assert_eq!(users["structuredContent"]["total"], 40);
    assert_eq!(
        users["structuredContent"]["users"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(users["structuredContent"]["next_cursor"], "5");

    let ids: Vec<&str> = data.opps.iter().take(3).map(|o| o.id.as_str()).collect();
    let risk = call_tool(
        &env.app,
        &key,
        "get_deal_risk",
        json!({"opportunity_ids": ids}),
    )
    .await;
    let rows = risk["structuredContent"]["opportunities"]
        .as_array()
        .unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        let o = data
            .opps
            .iter()
            .find(|o| o.id == r["opportunity_id"].as_str().unwrap())
            .unwrap();
        assert_eq!(r["score"], o.score);
    }
    assert!(
        rows.windows(2)
            .all(|w| w[0]["score"].as_f64() <= w[1]["score"].as_f64()),
        "riskiest first"
    );

    let one = call_tool(
        &env.app,
        &key,
        "get_opportunity",
        json!({"opportunity_id": data.opps[0].id}),
    )
    .await;
    assert_eq!(
        one["structuredContent"]["opportunity_id"],
        data.opps[0].id.as_str()
    );

    let opps = call_tool(&env.app, &key, "list_opportunities", json!({})).await;
    assert!(
        opps["structuredContent"]["total"].as_u64().unwrap() > 0,
        "{opps}"
    );
    let accts = call_tool(&env.app, &key, "list_accounts", json!({"limit": 3})).await;
    assert!(accts["structuredContent"]["total"].as_u64().unwrap() > 0);

    let changes = call_tool(
        &env.app,
        &key,
        "get_pipeline_changes",
        json!({"limit": 200}),
    )
    .await;
    let c = &changes["structuredContent"];
    assert!(!c["changes"].as_array().unwrap().is_empty(), "{changes}");
    assert!(
        c["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["slipped"] == true),
        "some deals slipped this week"
    );

    let audit = call_tool(
        &env.app,
        &key,
        "list_audit_events",
        json!({"event": "forecast.submitted", "limit": 10}),
    )
    .await;
    let events = audit["structuredContent"]["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .all(|e| e["event"] == "forecast.submitted" && e["actor"].is_string())
    );

    let jobs = call_tool(&env.app, &key, "list_export_jobs", json!({})).await;
    let listed = jobs["structuredContent"]["jobs"].as_array().unwrap();
    assert!(!listed.is_empty());
    let job = call_tool(
        &env.app,
        &key,
        "get_export_job",
        json!({"job_id": listed[0]["job_id"]}),
    )
    .await;
    assert_eq!(job["structuredContent"]["job"]["status"], "DONE");
    let limits = call_tool(&env.app, &key, "get_admin_limits", json!({})).await;
    assert!(text(&limits).contains("concurrent export slots"));
}

#[tokio::test]
async fn bad_arguments_and_clari_failures_are_tool_errors_that_say_what_to_do() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let key = env.api_key("clari:read").await;
    let cases = [
        (
            "get_forecast",
            json!({"time_period": "2024-Q5"}),
            "time_period",
        ),
        ("get_forecast", json!({"limit": "ten"}), "limit"),
        ("get_forecast", json!({"quarter": "2026_Q3"}), "quarter"),
        ("get_forecast", json!({"fields": ["commits"]}), "fields"),
        ("get_forecast", json!({"manager": "Nobody Here"}), "manager"),
        ("get_deal_risk", json!({}), "opportunity_ids"),
        (
            "get_deal_risk",
            json!({"opportunity_ids": ["short"]}),
            "opportunity_ids",
        ),
        ("list_audit_events", json!({"since": "2020-01-01"}), "since"),
        ("list_export_jobs", json!({"status": "WHATEVER"}), "status"),
    ];
    for (tool, args, argument) in cases {
        let r = call_tool(&env.app, &key, tool, args.clone()).await;
        assert_eq!(r["isError"], true, "{tool} {args}: {r}");
        let t = text(&r);
        assert!(t.contains(argument), "{tool} {args}: {t}");
    }
    let unknown = call_tool(
        &env.app,
        &key,
        "get_forecast",
        json!({"forecast_id": "deal_owner"}),
    )
    .await;
    assert_eq!(unknown["isError"], true);
    assert!(
        text(&unknown).contains("app.clari.com/forecast"),
        "{}",
        text(&unknown)
    );
    // An unknown tool is a protocol error, not a tool result.
    let r = rpc(
        &env.app,
        Some(&key),
        "tools/call",
        json!({"name": "drop_tables", "arguments": {}}),
    )
    .await;
    assert!(r.body.get("error").is_some(), "{}", r.body);
    // Quota reached upstream: the numbers and what to do.
    env.sandbox.set_knobs(|k| k.quota_exhausted = true);
    let q = call_tool(
        &env.app,
        &key,
        "list_time_periods",
        json!({"time_period": "2025_Q1"}),
    )
    .await;
    assert_eq!(q["isError"], true);
    assert!(text(&q).contains("monthly quota"), "{}", text(&q));
}

async fn an_organisation_never_sees_another_organisations_data(db: &TestDb) {
    let env = mcp_env(db).await;
    let s = &env.app.state;
    let globex = s.store.create_org("Globex", s.now()).await.unwrap();
    s.store
        .put_clari_credential(
            &globex.id,
            &s.vault.seal(env.sandbox.orgs()[1].api_key.as_bytes()),
            "yyyy",
            None,
            s.now(),
        )
        .await
        .unwrap();
    let user = s
        .store
        .create_user(
            &globex.id,
            &clari_mcp::store::Email::parse("bo@globex.test").unwrap(),
            "$argon2id$x",
            clari_mcp::store::Role::Member,
            s.now(),
        )
        .await
        .unwrap();
    let key_a = env.api_key("clari:read").await;
    let key_b = env.api_key_for(&globex.id, &user.id, "clari:read").await;
    let a = call_tool(&env.app, &key_a, "get_forecast", json!({})).await;
    let b = call_tool(&env.app, &key_b, "get_forecast", json!({})).await;
    let data = env.sandbox.dataset();
    assert_eq!(
        a["structuredContent"]["total"]["name"],
        data.orgs[0].users[0].name.as_str()
    );
    assert_eq!(
        b["structuredContent"]["total"]["name"],
        data.orgs[1].users[0].name.as_str(),
        "B's own data, not A's cached answer"
    );
    let jobs_b = call_tool(&env.app, &key_b, "list_export_jobs", json!({})).await;
    assert_eq!(
        jobs_b["structuredContent"]["total"], 1,
        "only B's own export job"
    );
}

async fn revocation_and_disabling_take_effect_on_the_next_request(db: &TestDb) {
    let env = mcp_env(db).await;
    let s = &env.app.state;
    let key = env.api_key("clari:read").await;
    assert_eq!(
        rpc(&env.app, Some(&key), "tools/list", json!({}))
            .await
            .status,
        200
    );
    s.store.set_org_disabled(&env.org, true).await.unwrap();
    assert_eq!(
        rpc(&env.app, Some(&key), "tools/list", json!({}))
            .await
            .status,
        401
    );
    s.store.set_org_disabled(&env.org, false).await.unwrap();
    s.store.set_user_disabled(&env.user, true).await.unwrap();
    assert_eq!(
        rpc(&env.app, Some(&key), "tools/list", json!({}))
            .await
            .status,
        401
    );
    s.store.set_user_disabled(&env.user, false).await.unwrap();
    let id = s.store.list_api_keys(&env.org).await.unwrap()[0].id.clone();
    s.store
        .revoke_api_key(&env.org, &id, s.now())
        .await
        .unwrap();
    assert_eq!(
        rpc(&env.app, Some(&key), "tools/list", json!({}))
            .await
            .status,
        401
    );

    // The OAuth path: a token from the authorization server works until its grant is revoked.
    let client = crate::oauth_helpers::register_public(&env.app).await;
    let cid = client["client_id"].as_str().unwrap().to_owned();
    let p = crate::oauth_helpers::pkce();
    let mut b = crate::oauth_helpers::Browser::new(&env.app);
    let q = crate::oauth_helpers::authorize(&mut b, &cid, &p, "ava@acme.test").await;
    let (status, tokens) =
        crate::oauth_helpers::exchange(&env.app, &cid, &q["code"], &p.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let at = tokens["access_token"].as_str().unwrap().to_owned();
    let ok = call_tool(&env.app, &at, "get_admin_limits", json!({})).await;
    assert_eq!(ok["isError"], false);
    let r = env
        .app
        .http
        .post(env.app.url("/revoke"))
        .form(&[
            ("client_id", cid.as_str()),
            ("token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = rpc(&env.app, Some(&at), "tools/list", json!({})).await;
    assert_eq!(
        after.status, 401,
        "the still-unexpired access token stops working at once"
    );
}

#[tokio::test]
async fn a_missing_clari_key_is_a_tool_error_naming_the_fix() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let s = &env.app.state;
    let other = s.store.create_org("NoKey", s.now()).await.unwrap();
    s.store
        .add_membership(
            &other.id,
            &env.user,
            clari_mcp::store::Role::Member,
            s.now(),
        )
        .await
        .unwrap();
    let key = env.api_key_for(&other.id, &env.user, "clari:read").await;
    let r = call_tool(&env.app, &key, "get_admin_limits", json!({})).await;
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("set-clari-key"), "{}", text(&r));
}

async fn slow_exports_answer_running_then_ready_from_one_upstream_job(db: &TestDb) {
    let env = mcp_env(db).await;
    env.sandbox.set_knobs(|k| k.job_latency_ms = 1_500);
    let key = env.api_key("forecasts:read").await;
    let first = call_tool(&env.app, &key, "get_forecast", json!({"wait_seconds": 0})).await;
    assert_eq!(first["isError"], false);
    assert_eq!(first["structuredContent"]["status"], "running", "{first}");
    assert!(
        text(&first).contains("call get_forecast again with the same arguments"),
        "{}",
        text(&first)
    );
    // Concurrent callers join the same job.
    let calls =
        (0..4).map(|_| call_tool(&env.app, &key, "get_forecast", json!({"wait_seconds": 10})));
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r["structuredContent"]["status"], "ready", "{r}");
    }
    assert_eq!(
        env.sandbox.jobs_created(),
        1,
        "one upstream export for five callers"
    );
    // A warm answer comes from memory: no request reaches Clari at all.
    let requests = env.sandbox.request_count();
    let again = call_tool(&env.app, &key, "get_forecast", json!({})).await;
    assert_eq!(again["structuredContent"]["status"], "ready");
    assert_eq!(
        env.sandbox.request_count(),
        requests,
        "served from the cache"
    );
    assert_eq!(env.sandbox.jobs_created(), 1);
}

#[tokio::test]
async fn resources_and_prompts_are_served() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let key = env.api_key("clari:read").await;
    let list = rpc(&env.app, Some(&key), "resources/list", json!({})).await;
    let uris: Vec<&str> = list.body["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris, ["clari://forecast/current", "clari://users"]);
    let templates = rpc(&env.app, Some(&key), "resources/templates/list", json!({})).await;
    assert_eq!(
        templates.body["result"]["resourceTemplates"][0]["uriTemplate"],
        "clari://forecast/{forecast_id}/{time_period}"
    );
    let read = rpc(
        &env.app,
        Some(&key),
        "resources/read",
        json!({"uri": "clari://forecast/current"}),
    )
    .await;
    let contents = &read.body["result"]["contents"][0];
    let doc: Value = serde_json::from_str(contents["text"].as_str().unwrap()).unwrap();
    assert_eq!(doc["status"], "ready", "{doc}");
    let period = env.sandbox.dataset().orgs[0].periods[1].id.clone();
    let read = rpc(
        &env.app,
        Some(&key),
        "resources/read",
        json!({"uri": format!("clari://forecast/forecast/{period}")}),
    )
    .await;
    let doc: Value =
        serde_json::from_str(read.body["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(doc["time_period"], period.as_str());
    let prompts = rpc(&env.app, Some(&key), "prompts/list", json!({})).await;
    let names: Vec<&str> = prompts.body["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["forecast_call_prep", "weekly_pipeline_review"]);
    let got = rpc(
        &env.app,
        Some(&key),
        "prompts/get",
        json!({"name": "forecast_call_prep", "arguments": {"manager": "Ava Turner"}}),
    )
    .await;
    let msg = got.body["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap();
    assert!(
        msg.contains("Ava Turner") && msg.contains("get_forecast"),
        "{msg}"
    );
}

#[tokio::test]
async fn foreign_origins_and_hosts_are_refused() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let key = env.api_key("clari:read").await;
    let r = env
        .app
        .http
        .post(env.app.url("/mcp"))
        .bearer_auth(&key)
        .header("origin", "http://evil.example.com")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = env
        .app
        .http
        .post(env.app.url("/mcp"))
        .bearer_auth(&key)
        .header("host", "evil.example.com")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "DNS rebinding guard");
    // Without a token too: the check comes before authentication, so 403 rather than a 401 challenge.
    for (name, value) in [
        ("origin", "http://evil.example.com"),
        ("host", "evil.example.com"),
    ] {
        let r = env
            .app
            .http
            .post(env.app.url("/mcp"))
            .header(name, value)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{name}: {value}");
        assert!(r.headers().get("www-authenticate").is_none());
    }
    // The public origin itself is allowed.
    let r = rpc(&env.app, Some(&key), "tools/list", json!({})).await;
    assert_eq!(r.status, 200);
}

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
    let client = crate::oauth_helpers::register_public(&env.app).await;
    let cid = client["client_id"].as_str().unwrap().to_owned();
    let p = crate::oauth_helpers::pkce();
    let mut browser = crate::oauth_helpers::Browser::new(&env.app);
    let q = crate::oauth_helpers::authorize(&mut browser, &cid, &p, "ava@acme.test").await;
    // The code is redeemed on replica B.
    let (status, tokens) = crate::oauth_helpers::exchange(&b, &cid, &q["code"], &p.verifier).await;
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
    let mut on_b = crate::oauth_helpers::Browser::new(&b);
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
async fn the_rmcp_client_discovers_registers_signs_in_and_calls_tools() {
    use rmcp::ServiceExt;
    use rmcp::transport::auth::{AuthClient, AuthorizationRequest, OAuthState};
    use rmcp::transport::streamable_http_client::{
        StreamableHttpClientTransport, StreamableHttpClientTransportConfig,
    };

    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let mcp_url = env.app.state.config.mcp_url.clone();

    // rmcp does RFC 9728 → RFC 8414 discovery, DCR and PKCE itself.
    let mut oauth = OAuthState::new(mcp_url.as_str(), None)
        .await
        .expect("discovery");
    oauth
        .start_authorization(
            AuthorizationRequest::new(crate::oauth_helpers::REDIRECT)
                .with_client_name("rmcp end-to-end"),
        )
        .await
        .expect("registration");
    let url = oauth.get_authorization_url().await.unwrap();
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("resource="),
        "{url}"
    );

    // The person at the browser: sign in and approve.
    let mut b = crate::oauth_helpers::Browser::new(&env.app);
    let start = b.get(&url).await;
    assert_eq!(start.status, 302, "{}", start.body);
    let after = b
        .login(
            start.location.as_deref().unwrap(),
            "ava@acme.test",
            crate::oauth_helpers::PASSWORD,
        )
        .await;
    let page = b.get(after.location.as_deref().unwrap()).await;
    let all: Vec<&str> = clari_mcp::scope::Scope::NARROW
        .iter()
        .map(|s| s.as_str())
        .collect();
    let done = b.approve(&page, None, &all).await;
    let callback = done.location.expect("redirect to the client");
    oauth
        .handle_callback_url(&callback)
        .await
        .expect("code exchange, state and iss checked by rmcp");

    let manager = oauth.into_authorization_manager().expect("authorized");
    let http = AuthClient::new(reqwest::Client::default(), manager);
    let transport = StreamableHttpClientTransport::with_client(
        http,
        StreamableHttpClientTransportConfig::with_uri(mcp_url.as_str()),
    );
    let client = ().serve(transport).await.expect("initialize over OAuth");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 13);
    let result = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("get_forecast")
                .with_arguments(serde_json::Map::new()),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false));
    assert_eq!(result.structured_content.unwrap()["status"], "ready");
    client.cancel().await.unwrap();
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
