//! The framework floors `bench/run.sh` measures clari-mcp against, on the same JSON:
//!
//! - `floor axum PORT FILE`: a bare axum handler answering `POST /mcp` with the fixed JSON-RPC
//!   response of a `get_forecast` call (Floor A: the HTTP stack alone);
//! - `floor rmcp PORT FILE`: a bare rmcp stateless Streamable HTTP server (JSON responses, no
//!   auth) whose one tool returns the forecast as text and structured content (Floor B: the MCP
//!   framework this server is built on).
//!
//! `FILE` is a `tools/call` result (`{"content": [...], "structuredContent": {...}}`), as
//! clari-mcp answered it.

/// The server's own allocator, so the comparison is of the code, not of the allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value, json};

#[derive(Clone)]
struct Floor {
    text: Arc<str>,
    structured: Arc<Value>,
}

impl ServerHandler for Floor {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let schema = json!({"type": "object", "properties": {}});
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "get_forecast",
            "Forecast",
            Arc::new(schema.as_object().cloned().unwrap_or_default()),
        )]))
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let mut r = CallToolResult::success(vec![ContentBlock::text(self.text.to_string())]);
        r.structured_content = Some((*self.structured).clone());
        Ok(r.into())
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, kind, port, file] = args.as_slice() else {
        eprintln!("usage: floor axum|rmcp PORT RESULT.json");
        std::process::exit(2);
    };
    let result: Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
    let addr = format!("127.0.0.1:{port}");
    let router = match kind.as_str() {
        "axum" => {
            let body = axum::body::Bytes::from(serde_json::to_vec(
                &json!({"jsonrpc": "2.0", "id": 1, "result": result}),
            )?);
            Router::new().route(
                "/mcp",
                post(move || {
                    let body = body.clone();
                    async move { ([("content-type", "application/json")], body) }
                }),
            )
        }
        "rmcp" => {
            let floor = Floor {
                text: result["content"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                structured: Arc::new(result["structuredContent"].clone()),
            };
            let config = StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_json_response(true)
                .with_allowed_hosts(vec![addr.clone()]);
            let service = StreamableHttpService::new(
                move || Ok(floor.clone()),
                Arc::new(NeverSessionManager::default()),
                config,
            );
            Router::new().nest_service("/mcp", service)
        }
        other => {
            eprintln!("unknown floor '{other}': axum or rmcp");
            std::process::exit(2);
        }
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await
}
