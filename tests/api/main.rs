//! The one integration test binary: every module drives the real code over real databases, HTTP
//! and processes.

mod helpers;

mod abuse;
mod admin;
mod bounds;
mod clari;
mod cli;
mod deployment;
mod docs;
mod governance;
mod health;
mod identity;
mod layers;
mod mcp;
mod mfa;
mod oauth;
mod scim;
mod sso;
mod stdio;
mod store;
mod traces;
mod vault;
