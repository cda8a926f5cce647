//! The HTTP side shared by every provider client.
//!
//! # Layout
//! - [`classify`]: the retry classification table (status and transport errors → class) and
//!   `Retry-After` parsing. The one place that decides retriable vs permanent.
//! - [`limiter`]: the per-destination budget: a `governor` GCRA sized so no window ever admits
//!   more than the quota, a concurrency cap, and a pause that vendor feedback (429,
//!   `Retry-After`, `X-Rate-Limit-*`) sets for every caller.
//! - [`shared`]: the budget shared by every replica in Redis (atomic Lua GCRA on the server
//!   clock), with a conservative per-replica fallback while Redis is unreachable.
//! - [`client`]: [`ProviderClient`], a reqwest client with timeouts that sends every request
//!   through the limiter, honours 429 without spending the message's attempts, and reports
//!   metrics.
//!
//! Invariant: a rate limit is never a failure. Waiting for the budget either succeeds within
//! the hold bound or becomes [`CallError::RateLimited`], which the runtime parks in a delay
//! tier without counting an attempt.

pub mod classify;
pub mod client;
pub mod limiter;
pub mod metrics;
pub mod shared;

pub use classify::{Class, classify_status, parse_retry_after};
pub use client::{CallError, ProviderClient, Reply};
pub use limiter::{Budget, budget_quota};
pub use metrics::HttpMetrics;
