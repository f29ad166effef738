//! Transport and authentication: the challenge, scope step-up, Origin and Host, a real client.

use super::*;

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
        14,
        "{}",
        list.body
    );
    let limits = call_tool(&env.app, &key, "get_admin_limits", json!({})).await;
    assert_eq!(limits["isError"], false, "{limits}");
    assert_eq!(limits["structuredContent"]["concurrent_limit"], 3);
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
        cnf: None,
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
            AuthorizationRequest::new(crate::helpers::oauth::REDIRECT)
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
    let mut b = crate::helpers::oauth::Browser::new(&env.app);
    let start = b.get(&url).await;
    assert_eq!(start.status, 302, "{}", start.body);
    let after = b
        .login(
            start.location.as_deref().unwrap(),
            "ava@acme.test",
            crate::helpers::oauth::PASSWORD,
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
    assert_eq!(tools.len(), 14);
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
async fn what_is_not_json_rpc_is_400_and_a_missing_or_wildcard_accept_is_fine() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let key = env.api_key("clari:read").await;
    let app = &env.app;
    let send = |body: &'static str, accept: Option<&'static str>| {
        let mut req = app
            .http
            .post(app.url("/mcp"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .header("mcp-protocol-version", PROTOCOL)
            .body(body);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        req.send()
    };
    for body in [
        "not json",
        r#"[1]"#,
        r#"{"id":1,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":null}"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":"x","error":null}"#,
        // An error code beyond 32 bits is JSON and an integer, but no JSON-RPC error MCP uses.
        r#"{"jsonrpc":"2.0","id":"x","error":{"code":282707716434938976,"message":"m"}}"#,
    ] {
        let r = send(body, Some("application/json, text/event-stream"))
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"]["code"].as_i64().unwrap() <= -32600, "{v}");
    }
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    for accept in [None, Some("*/*")] {
        let r = send(list, accept).await.unwrap();
        assert_eq!(r.status(), 200, "{accept:?}");
    }
    assert_eq!(send(list, Some("text/html")).await.unwrap().status(), 406);
}

/// The MCP endpoint is exactly `/mcp` (the resource its metadata names), behind the layers every
/// request passes: a path below it is unknown, and both answers carry a request id.
#[tokio::test]
async fn the_endpoint_is_exactly_its_path_behind_the_common_layers() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = mcp_env(&db).await;
    let key = env.api_key("clari:read").await;
    let r = rpc(&env.app, Some(&key), "tools/list", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers.contains_key("x-request-id"), "{:?}", r.headers);
    // Paths below /mcp, which `rpc` never calls.
    let post = |path: &'static str, request_id: Option<&'static str>| {
        let mut req = env
            .app
            .http
            .post(env.app.url(path))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
        if let Some(id) = request_id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };
    for path in ["/mcp/", "/mcp/tools"] {
        let r = post(path, None).await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(r.headers().contains_key("x-request-id"), "{path}");
    }
    let r = post("/mcp", Some("req-from-client")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "req-from-client");
}
