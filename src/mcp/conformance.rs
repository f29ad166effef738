//! The MCP conformance suite's fixtures. Compiled only with `--features conformance`, so the normal
//! build has no `test_*` tools; the conformance build serves them next to the real tools, over the
//! same transport, with a fixed test identity instead of the bearer layer.

// The 2025-11-25 scenarios exercise logging, deprecated from 2026-07-28.
#![allow(deprecated)]

use base64::Engine;
use rmcp::model::*;
use serde_json::Value;

/// A 1×1 red PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A short silent WAV (8 kHz, 8-bit mono, 8 samples).
fn wav() -> Vec<u8> {
    let data = [0x80u8; 8];
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    w
}

fn empty_schema() -> std::sync::Arc<JsonObject> {
    std::sync::Arc::new(
        serde_json::json!({"type": "object", "properties": {}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
}

fn schema(v: serde_json::Value) -> std::sync::Arc<JsonObject> {
    std::sync::Arc::new(v.as_object().cloned().unwrap_or_default())
}

/// The Tasks extension's fixtures: `greet` (sync only) and three tools that run as tasks.
fn task_tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "greet",
            "Says hello (always synchronous)",
            schema(
                serde_json::json!({"type": "object", "properties": {"name": {"type": "string"}}}),
            ),
        ),
        Tool::new(
            "slow_compute",
            "Sleeps `seconds` then answers; runs as a task when the caller supports tasks",
            schema(serde_json::json!({"type": "object", "properties": {
                "seconds": {"type": "number"}, "label": {"type": "string"}}})),
        ),
        Tool::new(
            "failing_job",
            "Always ends in a tool error after about a second (needs tasks)",
            empty_schema(),
        ),
        Tool::new(
            "protocol_error_job",
            "Always ends in a protocol error after about a second (needs tasks)",
            empty_schema(),
        ),
    ]
}

/// Runs a task fixture: `None` for any other tool.
pub async fn call_task_fixture(
    state: &crate::state::AppState,
    ctx: &super::auth::AuthContext,
    name: &str,
    args: &JsonObject,
    tasks_declared: bool,
) -> Option<Result<CallToolResponse, rmcp::ErrorData>> {
    use std::time::Duration;
    let needs_tasks = || {
        rmcp::ErrorData::missing_required_client_capability(
            ClientCapabilities::builder().enable_tasks().build(),
        )
    };
    let seconds = args
        .get("seconds")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
        .clamp(0.0, 120.0);
    let label = args
        .get("label")
        .and_then(Value::as_str)
        .unwrap_or("job")
        .to_owned();
    let work: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<CallToolResult, rmcp::ErrorData>> + Send>,
    > = match name {
        "greet" => {
            let who = args.get("name").and_then(Value::as_str).unwrap_or("World");
            return Some(Ok(CallToolResult::success(vec![ContentBlock::text(
                format!("Hello, {who}!"),
            )])
            .into()));
        }
        "slow_compute" if !tasks_declared || seconds == 0.0 => {
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            return Some(Ok(CallToolResult::success(vec![ContentBlock::text(
                format!("Computed {label} in {seconds} s"),
            )])
            .into()));
        }
        "slow_compute" => Box::pin(async move {
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            Ok(CallToolResult::success(vec![ContentBlock::text(format!(
                "Computed {label} in {seconds} s"
            ))]))
        }),
        "failing_job" | "protocol_error_job" if !tasks_declared => return Some(Err(needs_tasks())),
        "failing_job" => Box::pin(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(CallToolResult::error(vec![ContentBlock::text(
                "The job failed, as this fixture always does",
            )]))
        }),
        "protocol_error_job" => Box::pin(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err(rmcp::ErrorData::internal_error(
                "protocol_error_job broke down, as this fixture always does",
                None,
            ))
        }),
        _ => return None,
    };
    Some(
        match super::tasks::create_background(state, ctx, name, args).await {
            Ok((id, handle)) => {
                let (state, org) = (state.clone(), ctx.org_id.clone());
                tokio::spawn(async move {
                    let outcome = work.await;
                    super::tasks::settle(&state, &org, &id, outcome).await;
                });
                Ok(handle)
            }
            Err(e) => Err(e),
        },
    )
}

pub fn tools() -> Vec<Tool> {
    let mut all: Vec<Tool> = [
        ("test_simple_text", "Returns simple text"),
        ("test_image_content", "Returns an image"),
        ("test_audio_content", "Returns audio"),
        ("test_embedded_resource", "Returns an embedded resource"),
        (
            "test_multiple_content_types",
            "Returns text, an image and a resource",
        ),
        ("test_error_handling", "Always returns an error"),
        ("test_tool_with_logging", "Sends log messages while it runs"),
        ("test_tool_with_progress", "Reports progress while it runs"),
    ]
    .into_iter()
    .map(|(name, description)| Tool::new(name, description, empty_schema()))
    .collect();
    all.extend(task_tools());
    all
}

fn embedded() -> ContentBlock {
    ContentBlock::resource(
        ResourceContents::text(
            "This is an embedded resource content.",
            "test://embedded-resource",
        )
        .with_mime_type("text/plain"),
    )
}

pub async fn call(
    name: &str,
    ctx: &rmcp::service::RequestContext<rmcp::RoleServer>,
) -> Option<CallToolResult> {
    Some(match name {
        "test_tool_with_logging" => {
            for message in [
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed",
            ] {
                let _ = ctx
                    .peer
                    .notify_logging_message(LoggingMessageNotificationParam::new(
                        LoggingLevel::Info,
                        Value::from(message),
                    ))
                    .await;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            CallToolResult::success(vec![ContentBlock::text(
                "Tool with logging executed successfully",
            )])
        }
        "test_tool_with_progress" => {
            if let Some(token) = ctx.meta.get_progress_token() {
                for progress in [0.0, 50.0, 100.0] {
                    let _ = ctx
                        .peer
                        .notify_progress(
                            ProgressNotificationParam::new(token.clone(), progress)
                                .with_total(100.0),
                        )
                        .await;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
            CallToolResult::success(vec![ContentBlock::text(
                "Tool with progress executed successfully",
            )])
        }
        "test_simple_text" => CallToolResult::success(vec![ContentBlock::text(
            "This is a simple text response for testing.",
        )]),
        "test_image_content" => {
            CallToolResult::success(vec![ContentBlock::image(b64(PNG), "image/png")])
        }
        "test_audio_content" => {
            CallToolResult::success(vec![ContentBlock::audio(b64(&wav()), "audio/wav")])
        }
        "test_embedded_resource" => CallToolResult::success(vec![embedded()]),
        "test_multiple_content_types" => CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(b64(PNG), "image/png"),
            embedded(),
        ]),
        "test_error_handling" => CallToolResult::error(vec![ContentBlock::text(
            "This tool intentionally returns an error for testing",
        )]),
        _ => return None,
    })
}

pub fn resources() -> Vec<Resource> {
    vec![
        Resource::new("test://static-text", "Static text").with_mime_type("text/plain"),
        Resource::new("test://static-binary", "Static binary").with_mime_type("image/png"),
    ]
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new("test://template/{id}/data", "Template data")
            .with_mime_type("application/json"),
    ]
}

pub fn read(uri: &str) -> Option<ReadResourceResult> {
    let contents = match uri {
        "test://static-text" => {
            ResourceContents::text("This is the content of the static text resource.", uri)
                .with_mime_type("text/plain")
        }
        "test://static-binary" => ResourceContents::blob(b64(PNG), uri).with_mime_type("image/png"),
        _ => {
            let id = uri
                .strip_prefix("test://template/")?
                .strip_suffix("/data")?;
            let body = serde_json::json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")});
            ResourceContents::text(body.to_string(), uri).with_mime_type("application/json")
        }
    };
    Some(ReadResourceResult::new(vec![contents]))
}

pub fn prompts() -> Vec<Prompt> {
    let arg = |name: &str, description: &str| {
        let mut a = PromptArgument::new(name);
        a.description = Some(description.into());
        a.required = Some(true);
        a
    };
    vec![
        Prompt::new("test_simple_prompt", Some("A simple prompt"), None),
        Prompt::new(
            "test_prompt_with_arguments",
            Some("A prompt with arguments"),
            Some(vec![
                arg("arg1", "First test argument"),
                arg("arg2", "Second test argument"),
            ]),
        ),
        Prompt::new(
            "test_prompt_with_embedded_resource",
            Some("A prompt with an embedded resource"),
            Some(vec![arg("resourceUri", "URI of the resource to embed")]),
        ),
        Prompt::new(
            "test_prompt_with_image",
            Some("A prompt with an image"),
            None,
        ),
    ]
}

pub fn get_prompt(name: &str, args: &serde_json::Map<String, Value>) -> Option<GetPromptResult> {
    let get = |k: &str| {
        args.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let messages = match name {
        "test_simple_prompt" => vec![PromptMessage::new_text(
            Role::User,
            "This is a simple prompt for testing.",
        )],
        "test_prompt_with_arguments" => vec![PromptMessage::new_text(
            Role::User,
            format!(
                "Prompt with arguments: arg1='{}', arg2='{}'",
                get("arg1"),
                get("arg2")
            ),
        )],
        "test_prompt_with_embedded_resource" => vec![
            PromptMessage::new_resource(
                Role::User,
                get("resourceUri"),
                Some("text/plain".into()),
                Some("Embedded resource content for testing.".into()),
                None,
                None,
                None,
            ),
            PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
        ],
        "test_prompt_with_image" => vec![
            PromptMessage::new_image(Role::User, PNG, "image/png", None, None),
            PromptMessage::new_text(Role::User, "Please analyze the image above."),
        ],
        _ => return None,
    };
    Some(GetPromptResult::new(messages))
}
