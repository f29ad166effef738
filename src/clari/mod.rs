//! The Clari Revenue API: a faithful client, the export job lifecycle, and the sandbox (a simulator
//! of the real API used by tests, the demo and benchmarks).

pub mod client;
pub mod error;
pub mod export;
pub mod ids;
pub mod response;
pub mod sandbox;
pub mod text;
pub mod transport;
pub mod types;

pub use client::{ClariClient, ClariTarget, ClientOptions, RetryPolicy};
pub use error::ClariError;
pub use export::{ExportState, WaitPolicy};
pub use ids::{ForecastId, IdError, JobId, OpportunityId, TimePeriod};
