//! clari-mcp: an OAuth 2.1 authorization server fronting an MCP resource server that gives AI agents
//! scoped, read-only access to an organisation's Clari revenue data.
//!
//! The library holds everything; `main.rs` only parses the command line and dispatches, so tests and
//! benchmarks reuse the same code paths as operators.

pub mod account;
pub mod admin;
pub mod apikeys;
pub mod app;
pub mod audit;
pub mod bearer;
pub mod clari;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod dpop;
pub mod exports;
pub mod files;
pub mod governance;
pub mod http;
pub mod ids;
pub mod jose;
pub mod mail;
pub mod mcp;
pub mod metrics;
pub mod net;
pub mod oauth;
pub mod orgname;
pub mod principal;
pub mod redact;
pub mod scim;
pub mod scope;
pub mod serve;
pub mod signing;
pub mod sso;
pub mod state;
pub mod stdio;
pub mod store;
pub mod telemetry;
pub mod web;

/// Installs the process-wide TLS crypto provider (ring). Idempotent; every entry point that builds
/// an HTTP client calls it.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
