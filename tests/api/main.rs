//! The one integration test binary: every module drives the real code over real databases, HTTP
//! and processes.

mod helpers;

mod clari;
mod cli;
mod health;
mod store;
mod vault;
