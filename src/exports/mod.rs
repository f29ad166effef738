//! Clari exports as a service below the tools. Two floors:
//! - below the application state: the single-flight export cache ([`cache`]), the
//!   organisations' concurrency limits ([`limits`]), the views built from export results
//!   ([`view`]) and what readers keep with them ([`kept`]), which the state holds;
//! - above it, what drives an export: the pipeline a tool calls ([`pipeline`]: cache →
//!   single-flight → the organisation's queue → Clari), the queue across replicas ([`queue`]) and
//!   the background refresh of pre-warmed forecasts ([`prewarm`]).

pub mod cache;
pub mod kept;
pub mod limits;
pub mod pipeline;
pub mod prewarm;
pub mod queue;
pub mod view;

pub use cache::{CACHE_USE, CacheUse, ExportCache, ExportKey, Progress};
pub use kept::{Keeps, Kept, KeptValue};
pub use limits::LimitCache;
pub use view::{ActivityWindow, BrokenHierarchy, Forecast, week_index};
