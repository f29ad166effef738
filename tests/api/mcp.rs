//! The MCP resource server end to end: transport, authentication, scopes, tools against the sandbox.

use serde_json::json;

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
