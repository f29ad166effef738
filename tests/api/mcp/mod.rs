//! The MCP resource server end to end: transport, authentication, scopes, tools against the sandbox.

pub mod answers;
mod isolation;
mod prewarm;
mod questions;
mod replicas;
mod tasks;
mod tools;
mod transport;
mod truth;

use clari_mcp::clari::sandbox::Level;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::mcp::*;
use crate::helpers::{Backend, TestDb};

fn text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
