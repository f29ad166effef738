//! `/api/v1` end to end: who may call it, what each resource does, ETag/If-Match, cursor paging,
//! tenant isolation and the kill switch.

use super::*;

both_backends!(
    only_an_admin_with_the_admin_scope_gets_in,
    members_are_added_changed_and_removed_without_lost_updates,
    api_keys_made_through_the_api_work_on_mcp_and_die_when_revoked,
    an_admin_of_one_organisation_gets_404_for_anything_of_another,
    the_clari_key_is_write_only_and_the_connection_test_speaks_in_words,
    audit_events_page_with_a_cursor_and_filter,
    settings_update_needs_the_current_etag_and_the_kill_switch_needs_the_name,
);

async fn only_an_admin_with_the_admin_scope_gets_in(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let r = app
        .http
        .get(app.url("/api/v1/members"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("resource_metadata="), "{challenge}");
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "unauthorized");

    let (status, body) = api(app, "bad-token", Method::GET, "/api/v1/members", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_token"))
    );

    // clari:read is everything an agent reads, and still not admin.
    let reader = env.api_key("clari:read").await;
    let (status, body) = api(app, &reader, Method::GET, "/api/v1/members", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("insufficient_scope")),
        "{body}"
    );

    // A member cannot be given the admin scope, by the API or by a consent.
    let admin = env.api_key("admin").await;
    let member = join(app, &admin, "bo@acme.test", "member").await;
    assert_eq!(member["role"], "member");
    let (status, body) = api(
        app,
        &admin,
        Method::POST,
        "/api/v1/api-keys",
        Some(json!({"name": "bo's", "scopes": ["admin"], "user_id": member["user_id"]})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );

    // An admin demoted after the key was made is refused on the next request.
    let user = UserId::parse(member["user_id"].as_str().unwrap()).unwrap();
    let (status, _) = patch_member(app, &admin, &user, json!({"role": "admin"})).await;
    assert_eq!(status, 200);
    let bo_key = env.api_key_for(&env.org, &user, "admin").await;
    let (status, _) = api(app, &bo_key, Method::GET, "/api/v1/members", None).await;
    assert_eq!(status, 200);
    let (status, _) = patch_member(app, &admin, &user, json!({"role": "member"})).await;
    assert_eq!(status, 200);
    let (status, body) = api(app, &bo_key, Method::GET, "/api/v1/members", None).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("not_admin")));

    // And the admin scope opens no MCP tool.
    let r = rpc(
        app,
        Some(&admin),
        "tools/call",
        json!({"name": "list_time_periods", "arguments": {}}),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
}

async fn patch_member(app: &TestApp, token: &str, user: &UserId, body: Value) -> (u16, Value) {
    let path = format!("/api/v1/members/{user}");
    let r = app
        .http
        .get(app.url(&path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = app
        .http
        .patch(app.url(&path))
        .bearer_auth(token)
        .header("if-match", etag)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn members_are_added_changed_and_removed_without_lost_updates(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let admin = env.api_key("admin").await;
    // Nobody but the person chooses their password: there is no door that takes one.
    let (status, _) = api(
        app,
        &admin,
        Method::POST,
        "/api/v1/members",
        Some(json!({"email": "cy@acme.test", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 405, "members join by invitation only");
    let (status, body) = api(
        app,
        &admin,
        Method::POST,
        "/api/v1/invitations",
        Some(json!({"email": "cy@acme.test", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let cy = join(app, &admin, "Cy@Acme.test", "member").await;
    assert_eq!(cy["email"], "cy@acme.test");
    let path = format!("/api/v1/members/{}", cy["user_id"].as_str().unwrap());

    // Two admins read the same version; the second write is refused, not silently applied.
    let r = app
        .http
        .get(app.url(&path))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let send = |body: Value, tag: Option<&str>| {
        let mut req = app
            .http
            .patch(app.url(&path))
            .bearer_auth(&admin)
            .json(&body);
        if let Some(t) = tag {
            req = req.header("if-match", t);
        }
        req.send()
    };
    let r = send(json!({"suspended": true}), None).await.unwrap();
    assert_eq!(r.status(), 428);
    let r = send(json!({"suspended": true}), Some(&etag)).await.unwrap();
    assert_eq!(r.status(), 200);
    let new_etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    let r = send(json!({"role": "admin"}), Some(&etag)).await.unwrap();
    assert_eq!(r.status(), 412);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "precondition_failed"
    );
    let (_, now) = api(app, &admin, Method::GET, &path, None).await;
    assert_eq!(
        (now["role"].as_str(), now["suspended"].as_bool()),
        (Some("member"), Some(true))
    );

    // A suspended member's key stops working; reinstated, it works again.
    let cy_id = UserId::parse(cy["user_id"].as_str().unwrap()).unwrap();
    let cy_key = env.api_key_for(&env.org, &cy_id, "clari:read").await;
    assert_eq!(
        rpc(app, Some(&cy_key), "tools/list", json!({}))
            .await
            .status,
        401
    );
    let r = send(json!({"suspended": false}), Some(&new_etag))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        rpc(app, Some(&cy_key), "tools/list", json!({}))
            .await
            .status,
        200
    );

    // The last admin stays: neither demoted nor removed.
    let (status, body) = patch_member(app, &admin, &env.user, json!({"role": "member"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let own = format!("/api/v1/members/{}", env.user);
    let (status, _) = api(app, &admin, Method::DELETE, &own, None).await;
    assert_eq!(status, 409);

    // Removing someone revokes what they held; they can be added back with nothing resurrected.
    let (status, _) = api(app, &admin, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, _) = api(app, &admin, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let back = join(app, &admin, "cy@acme.test", "member").await;
    assert_eq!(
        back["user_id"], cy["user_id"],
        "an existing account joins again with its own password"
    );
    assert_eq!(
        rpc(app, Some(&cy_key), "tools/list", json!({}))
            .await
            .status,
        401
    );

    // Paging: one at a time, every member exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/members?limit=1&cursor={c}"),
            None => "/api/v1/members?limit=1".to_owned(),
        };
        let (status, page) = api(app, &admin, Method::GET, &q, None).await;
        assert_eq!(status, 200, "{page}");
        for m in page["items"].as_array().unwrap() {
            seen.push(m["email"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["ava@acme.test", "cy@acme.test"]);
    let (status, body) = api(
        app,
        &admin,
        Method::GET,
        "/api/v1/audit-events?cursor=abc",
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_cursor")),
        "{body}"
    );
    let (status, body) = api(
        app,
        &admin,
        Method::GET,
        "/api/v1/members?cursor=AAAA&limit=0",
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

async fn api_keys_made_through_the_api_work_on_mcp_and_die_when_revoked(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let admin = env.api_key("admin").await;
    let (status, made) = api(
        app,
        &admin,
        Method::POST,
        "/api/v1/api-keys",
        Some(
            json!({"name": "nightly report", "scopes": ["forecasts:read"], "expires_in_days": 30}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("cmk_"));
    assert_eq!(made["api_key"]["scopes"], json!(["forecasts:read"]));
    let (_, list) = api(app, &admin, Method::GET, "/api/v1/api-keys", None).await;
    let listed = list.to_string();
    assert!(!listed.contains(&key), "a key is shown once, at creation");
    assert!(listed.contains("nightly report"));
    let result = call_tool(app, &key, "list_time_periods", json!({})).await;
    assert_ne!(result["isError"], true, "{result}");
    let id = made["api_key"]["id"].as_str().unwrap();
    let (status, _) = api(
        app,
        &admin,
        Method::DELETE,
        &format!("/api/v1/api-keys/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        rpc(app, Some(&key), "tools/list", json!({})).await.status,
        401
    );
    let (status, _) = api(
        app,
        &admin,
        Method::DELETE,
        &format!("/api/v1/api-keys/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "revoking twice finds nothing live");

    for bad in [
        json!({"name": "x", "scopes": ["nope:read"]}),
        json!({"name": "x", "scopes": []}),
        json!({"name": "", "scopes": ["forecasts:read"]}),
        json!({"name": "x", "scopes": ["forecasts:read"], "expires_in_days": 0}),
        json!({"name": "x", "scopes": ["forecasts:read"], "surprise": 1}),
    ] {
        let (status, body) = api(
            app,
            &admin,
            Method::POST,
            "/api/v1/api-keys",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

async fn an_admin_of_one_organisation_gets_404_for_anything_of_another(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let s = &app.state;
    let globex = s
        .store
        .create_org(&crate::helpers::org_name("Globex"), s.now())
        .await
        .unwrap();
    let bo = s
        .store
        .create_user(
            &globex.id,
            &Email::parse("bo@globex.test").unwrap(),
            "$argon2id$x",
            Role::Admin,
            s.now(),
        )
        .await
        .unwrap();
    let b_key = env.api_key_for(&globex.id, &bo.id, "clari:read").await;
    let b_key_id = s.store.list_api_keys(&globex.id).await.unwrap()[0]
        .id
        .clone();
    let admin_a = env.api_key("admin").await;
    for (method, path) in [
        (Method::GET, format!("/api/v1/members/{}", bo.id)),
        (Method::DELETE, format!("/api/v1/members/{}", bo.id)),
        (Method::DELETE, format!("/api/v1/api-keys/{b_key_id}")),
    ] {
        let (status, body) = api(app, &admin_a, method.clone(), &path, None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("not_found")),
            "{method} {path}"
        );
    }
    // Nothing of B changed, and B's lists never show up in A's.
    assert_eq!(
        rpc(app, Some(&b_key), "tools/list", json!({})).await.status,
        200
    );
    let (_, members) = api(app, &admin_a, Method::GET, "/api/v1/members", None).await;
    assert!(!members.to_string().contains("globex"));
    let (_, keys) = api(app, &admin_a, Method::GET, "/api/v1/api-keys", None).await;
    assert!(!keys.to_string().contains(b_key_id.as_str()));
}

async fn the_clari_key_is_write_only_and_the_connection_test_speaks_in_words(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let admin = env.api_key("admin").await;
    let (status, tested) = api(
        app,
        &admin,
        Method::POST,
        "/api/v1/clari-credential/test",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(tested["ok"], true, "{tested}");
    assert!(tested["limits"]["monthly_quota"].as_i64().unwrap() > 0);

    let secret = "wrong-key-0000-1234";
    let (status, info) = api(
        app,
        &admin,
        Method::PUT,
        "/api/v1/clari-credential",
        Some(json!({"api_key": secret})),
    )
    .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["key_hint"], "****1234");
    let (_, info) = api(app, &admin, Method::GET, "/api/v1/clari-credential", None).await;
    assert!(!info.to_string().contains(secret));
    assert_eq!(info["configured"], true);
    let (_, tested) = api(
        app,
        &admin,
        Method::POST,
        "/api/v1/clari-credential/test",
        None,
    )
    .await;
    assert_eq!(tested["ok"], false);
    assert!(
        tested["error"]
            .as_str()
            .unwrap()
            .contains("rejected the API key"),
        "{tested}"
    );
    let (status, _) = api(
        app,
        &admin,
        Method::PUT,
        "/api/v1/clari-credential",
        Some(json!({"api_key": "has spaces in it"})),
    )
    .await;
    assert_eq!(status, 400);
    let r = app
        .http
        .put(app.url("/api/v1/clari-credential"))
        .bearer_auth(&admin)
        .body("api_key=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

async fn audit_events_page_with_a_cursor_and_filter(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let admin = env.api_key("admin").await;
    for i in 0..3 {
        let (status, _) = api(
            app,
            &admin,
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": format!("k{i}"), "scopes": ["audit:read"]})),
        )
        .await;
        assert_eq!(status, 201);
    }
    app.state.audit.flush().await;
    let (status, first) = api(
        app,
        &admin,
        Method::GET,
        "/api/v1/audit-events?action=api_key.created&limit=2",
        None,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items[0]["seq"].as_i64() > items[1]["seq"].as_i64(),
        "newest first"
    );
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = api(
        app,
        &admin,
        Method::GET,
        &format!("/api/v1/audit-events?action=api_key.created&limit=2&cursor={cursor}"),
        None,
    )
    .await;
    let rest = second["items"].as_array().unwrap();
    assert_eq!(rest.len(), 1, "{second}");
    assert!(rest[0]["seq"].as_i64() < items[1]["seq"].as_i64());
    assert_eq!(rest[0]["details"]["name"], "k0");
    assert!(second["next_cursor"].is_null());
    let (status, body) = api(
        app,
        &admin,
        Method::GET,
        "/api/v1/audit-events?outcome=maybe",
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = api(
        app,
        &admin,
        Method::GET,
        "/api/v1/audit-events?since=yesterday",
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("since"));
}

async fn settings_update_needs_the_current_etag_and_the_kill_switch_needs_the_name(db: &TestDb) {
    let env = mcp_env(db).await;
    let app = &env.app;
    let admin = env.api_key("admin").await;
    let r = app
        .http
        .get(app.url("/api/v1/organization"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let settings: Value = r.json().await.unwrap();
    assert_eq!(settings["name"], "Acme");
    assert!(settings["redaction"].is_null());
    let patch = |body: Value, tag: &str| {
        app.http
            .patch(app.url("/api/v1/organization"))
            .bearer_auth(&admin)
            .header("if-match", tag)
            .json(&body)
            .send()
    };
    let r = patch(
        json!({"redaction": {"kinds": ["email"], "custom": []}}),
        &etag,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let updated: Value = r.json().await.unwrap();
    assert_eq!(updated["redaction"]["kinds"], json!(["email"]));
    let r = patch(json!({"name": "Acme Corp"}), &etag).await.unwrap();
    assert_eq!(
        r.status(),
        412,
        "the other admin's change is not overwritten"
    );
    let r = patch(json!({"redaction": {"kinds": ["telepathy"]}}), "*")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let kill = |body: Value| {
        app.http
            .post(app.url("/api/v1/kill-switch"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let r = kill(json!({"reason": "leaked laptop", "confirm": "acme"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = kill(json!({"reason": " \u{85} ", "confirm": "Acme"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a blank reason");
    let reader = env.api_key("clari:read").await;
    assert_eq!(
        rpc(app, Some(&reader), "tools/list", json!({}))
            .await
            .status,
        200
    );
    let r = kill(json!({"reason": "leaked laptop", "confirm": "Acme"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert!(report["api_keys"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(
        rpc(app, Some(&reader), "tools/list", json!({}))
            .await
            .status,
        401
    );
    let (status, _) = api(app, &admin, Method::GET, "/api/v1/members", None).await;
    assert_eq!(status, 401);
}

/// The organisation's time zone is a setting like the others: validated, guarded by If-Match,
/// audited, and `null` returns to UTC.
#[tokio::test]
async fn the_time_zone_is_set_checked_and_guarded() {
    let db = TestDb::new(crate::helpers::Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let app = &env.app;
    let admin = env.api_key("admin").await;
    let r = app
        .http
        .get(app.url("/api/v1/organization"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(r.json::<Value>().await.unwrap()["time_zone"], "UTC");
    let send = |body: Value, tag: String| {
        app.http
            .patch(app.url("/api/v1/organization"))
            .bearer_auth(&admin)
            .header("if-match", tag)
            .json(&body)
            .send()
    };
    let r = send(json!({"time_zone": "Mars/Olympus_Mons"}), etag.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("time_zone"));
    let r = send(json!({"time_zone": "Europe/Berlin"}), etag.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let fresh = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        r.json::<Value>().await.unwrap()["time_zone"],
        "Europe/Berlin"
    );
    // A second admin who read the old version cannot silently overwrite it.
    let r = send(json!({"time_zone": "Asia/Tokyo"}), etag)
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    assert_eq!(
        app.state
            .store
            .org_time_zone(&env.org)
            .await
            .unwrap()
            .as_deref(),
        Some("Europe/Berlin")
    );
    let r = send(json!({"time_zone": null}), fresh).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["time_zone"], "UTC");
    assert_eq!(app.state.store.org_time_zone(&env.org).await.unwrap(), None);
    db.cleanup().await;
}
