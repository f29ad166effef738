//! Every tool against the sandbox, their errors, slow exports, resources and prompts.

use super::*;

both_backends!(
    every_tool_answers_from_clari_with_numbers_that_add_up,
    slow_exports_answer_running_then_ready_from_one_upstream_job,
    an_answer_kept_with_its_export_is_the_answer_built_again_and_goes_with_it,
);

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
        json!({"opportunity_ids": ids, "include_closed": true}),
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

#[tokio::test]
async fn a_missing_clari_key_is_a_tool_error_naming_the_fix() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let s = &env.app.state;
    let other = s
        .store
        .create_org(&crate::helpers::org_name("NoKey"), s.now())
        .await
        .unwrap();
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

/// A warm call answers what is kept with the export for the same tool and arguments: exactly
/// the answer built the first time. Other arguments or another tool get their own; redaction
/// applies to a kept answer as to one just built; a failure is not kept; and a refreshed export
/// starts with nothing kept, so a kept answer never outlives its data.
async fn an_answer_kept_with_its_export_is_the_answer_built_again_and_goes_with_it(db: &TestDb) {
    use clari_mcp::exports::{ExportKey, Keeps};
    let env = mcp_env(db).await;
    let key = env.api_key("clari:read").await;
    let call = |tool: &'static str, args: Value| call_tool(&env.app, &key, tool, args);
    let export = || {
        env.app
            .state
            .forecasts
            .peek(&ExportKey::new(
                env.org.clone(),
                "forecast:forecast:current",
            ))
            .expect("the forecast is cached")
    };
    let first = call("get_forecast", json!({"wait_seconds": 50})).await;
    assert_eq!(first["structuredContent"]["status"], "ready", "{first}");
    let forecast = export();
    assert_eq!(forecast.kept().usage().0, 1, "the answer is kept");

    let again = call("get_forecast", json!({"wait_seconds": 50})).await;
    assert_eq!(again, first, "the kept answer is the answer built");
    assert_eq!(forecast.kept().usage().0, 1);

    let top_one = call("get_forecast", json!({"wait_seconds": 50, "limit": 1})).await;
    assert_eq!(
        top_one["structuredContent"]["breakdown"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_ne!(top_one["structuredContent"], first["structuredContent"]);
    let users = call("list_users", json!({"wait_seconds": 50})).await;
    assert_eq!(users["isError"], false, "{users}");
    assert_eq!(forecast.kept().usage().0, 3, "one per tool and arguments");
    assert_eq!(
        call("get_forecast", json!({"wait_seconds": 50, "limit": 1})).await,
        top_one
    );

    // What is kept is the answer before redaction: a policy set now applies to the next call,
    // kept or not, and what is kept stays as it was.
    let emails = |r: &Value| -> Vec<String> {
        r["structuredContent"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|u| u["email"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(emails(&users).iter().any(|e| e.contains('@')), "{users}");
    let store = &env.app.state.store;
    store
        .set_org_redaction(&env.org, Some(r#"{"kinds":["email"],"custom":[]}"#))
        .await
        .unwrap();
    let redacted = call("list_users", json!({"wait_seconds": 50})).await;
    assert!(!emails(&redacted).is_empty());
    assert!(
        !emails(&redacted).iter().any(|e| e.contains('@')),
        "{redacted}"
    );
    assert!(!redacted.to_string().contains(&emails(&users)[0]));
    store.set_org_redaction(&env.org, None).await.unwrap();
    assert_eq!(call("list_users", json!({"wait_seconds": 50})).await, users);
    assert_eq!(forecast.kept().usage().0, 3);

    // The hit path itself: an answer planted under the key of the first call's tool and
    // arguments is what the next identical call answers.
    let args = json!({"wait_seconds": 50});
    let digest = env
        .app
        .state
        .audit
        .digest_args(&env.org, &serde_json::to_string(&args).unwrap());
    let mut planted =
        rmcp::model::CallToolResult::success(vec![rmcp::model::ContentBlock::text("planted")]);
    planted.structured_content = Some(json!({"status": "ready", "planted": true}));
    forecast.kept().put(
        &clari_mcp::mcp::tools::render::kept_key("get_forecast", &digest),
        std::sync::Arc::new(planted),
        1,
    );
    let hit = call("get_forecast", args.clone()).await;
    assert_eq!(hit["structuredContent"]["planted"], true, "{hit}");

    let unknown = json!({"wait_seconds": 50, "manager": "nobody of that name"});
    for _ in 0..2 {
        let r = call("get_forecast", unknown.clone()).await;
        assert_eq!(r["isError"], true, "{r}");
        assert!(text(&r).contains("`manager`"), "{}", text(&r));
    }
    assert_eq!(forecast.kept().usage().0, 3, "a failure is not kept");

    // Past its time to live the export is fetched again: the new one keeps only the answer
    // built from it, and the old one (with what was kept) is gone from the cache.
    env.app
        .clock
        .advance(env.app.state.config.export_cache_ttl.as_secs() as i64 + 1);
    let fresh = call("get_forecast", json!({"wait_seconds": 50})).await;
    assert_eq!(fresh["structuredContent"]["status"], "ready", "{fresh}");
    assert_eq!(env.sandbox.jobs_created(), 2);
    let refreshed = export();
    assert!(!std::sync::Arc::ptr_eq(&forecast, &refreshed));
    assert_eq!(refreshed.kept().usage().0, 1);
    assert_eq!(
        fresh["structuredContent"], first["structuredContent"],
        "built again from the new export, not the answer planted in the old one"
    );
}

/// A call that waits for a slow export and carries a `progressToken` hears, each second, how long
/// it has waited of at most how long; the answer follows on the same stream. Without a token the
/// answer is plain JSON with nothing before it.
#[tokio::test]
async fn a_waiting_call_reports_progress_when_the_client_asks() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    env.sandbox.set_knobs(|k| k.job_latency_ms = 2_600);
    let key = env.api_key("forecasts:read").await;
    let send = |meta: Value, period: &str| {
        env.app
            .http
            .post(env.app.url("/mcp"))
            .bearer_auth(&key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL)
            .json(
                &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
                    "name": "get_forecast",
                    "arguments": {"wait_seconds": 10, "time_period": period},
                    "_meta": meta,
                }}),
            )
            .send()
    };
    let periods = &env.sandbox.dataset().orgs[0].periods;
    let current = periods[periods.len() - 1].id.clone();
    let r = send(json!({"progressToken": "tok-1"}), &current)
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let messages: Vec<Value> = r
        .text()
        .await
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect();
    let (answer, notes) = messages.split_last().expect("messages");
    assert_eq!(answer["id"], 7, "{answer}");
    assert_eq!(answer["result"]["structuredContent"]["status"], "ready");
    assert!(notes.len() >= 2, "one a second while waiting: {notes:?}");
    for (n, note) in notes.iter().enumerate() {
        assert_eq!(note["method"], "notifications/progress", "{note}");
        let p = &note["params"];
        assert_eq!(p["progressToken"], "tok-1");
        assert_eq!(p["progress"], (n + 1) as f64, "progress increases: {note}");
        assert_eq!(p["total"], 10.0);
        assert!(
            p["message"]
                .as_str()
                .unwrap()
                .contains("Waiting for Clari's export"),
            "{note}"
        );
    }
    // Without a token nothing is sent before the answer, which is plain JSON.
    let previous = periods[periods.len() - 2].id.clone();
    let r = send(json!({}), &previous).await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["result"]["structuredContent"]["status"], "ready");
    db.cleanup().await;
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
    assert_eq!(
        uris,
        [
            "clari://forecast/current",
            "clari://users",
            "ui://clari-mcp/forecast-by-manager.html",
            "ui://clari-mcp/pipeline-changes.html",
            "ui://clari-mcp/deal-risk.html"
        ]
    );
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
