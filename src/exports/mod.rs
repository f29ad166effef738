//! Clari exports as a service below the tools. Two floors:
//! - below the application state: the single-flight export cache ([`cache`]), the
//!   organisations' concurrency limits ([`limits`]) and the views built from export results
//!   ([`view`]), which the state holds;
//! - above it, what drives an export: the pipeline a tool calls ([`pipeline`]: cache →
//!   single-flight → the organisation's queue → Clari), the queue across replicas ([`queue`]) and
//!   the background refresh of pre-warmed forecasts ([`prewarm`]).

pub mod cache;
pub mod limits;
pub mod pipeline;
pub mod prewarm;
pub mod queue;
pub mod view;

pub use cache::{CACHE_USE, CacheUse, ExportCache, ExportKey, Progress};
pub use limits::LimitCache;
pub use view::{ActivityWindow, BrokenHierarchy, Forecast, week_index};
