//! Clari exports as a service below the handlers: the single-flight export cache, the
//! organisations' concurrency limits, and the views built from export results. What drives an
//! export (the queue, the Clari calls) is in `mcp::data` and `mcp::queue`, which use the state
//! that holds these.

pub mod cache;
pub mod limits;
pub mod view;

pub use cache::{CACHE_USE, CacheUse, ExportCache, Progress};
pub use limits::LimitCache;
pub use view::{ActivityWindow, BrokenHierarchy, Forecast, week_index};
