//! The broker runtime: the only crate that knows lapin.
//!
//! # Layout
//! - [`topology`]: names under `SWITCHYARD_NAMESPACE`, idempotent declaration and drift checks.
//! - [`definitions`]: the same topology as a RabbitMQ definitions document.
//! - [`outcome`]: what a handler returns and the one function ([`outcome::plan`]) that maps it to
//!   ack / delay tier / dead letter.
//! - [`headers`]: our `x-switchyard-*` headers.
//! - [`connection`]: connecting with failover across cluster URLs and backoff.
//! - [`publisher`]: publishing with `mandatory` and publisher confirms.
//! - [`outbox`]: a reconnecting confirmed publisher for binaries that only publish (`inbound`).
//! - [`acks`]: settling deliveries with coalesced `multiple` acks.
//! - [`consumer`]: the consumer loop ([`consumer::run`]): manual acks, bounded prefetch,
//!   validation before the handler, reconnects, graceful shutdown.
//! - [`admin`]: what the `switchyard` CLI needs (publish, dead-letter inspection and replay).
//! - [`batch`]: a batcher that lets many deliveries share one provider call.
//! - [`worker`]: the settings and `main` skeleton every worker binary shares.
//!
//! Architecture invariant: handlers never ack. They return an [`Outcome`]; the runtime acks an
//! input only after every message the outcome implies (results, retry copies, dead letters) has
//! been confirmed by the broker.

pub mod acks;
pub mod admin;
pub mod batch;
pub mod connection;
pub mod consumer;
pub mod definitions;
pub mod headers;
pub mod metrics;
pub mod outbox;
pub mod outcome;
pub mod publisher;
pub mod topology;
pub mod worker;

pub use consumer::{Handler, Incoming, WorkerSpec, run};
pub use metrics::MqMetrics;
pub use outcome::{ErrorClass, Failure, FailureKind, Outcome, RetryPolicy};
pub use topology::{Names, WorkerTopology};

/// Errors of the broker runtime.
#[derive(Debug, thiserror::Error)]
pub enum MqError {
    /// The broker refused a declaration because an existing entity differs (406). Fatal: an
    /// operator must fix the topology; retrying cannot help.
    #[error("topology mismatch: {0}")]
    TopologyMismatch(String),
    /// Any other broker error (connection, channel, protocol).
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    /// A publish was not confirmed (nacked, returned as unroutable, or timed out).
    #[error("publish not confirmed: {0}")]
    NotConfirmed(String),
    /// No broker URL answered.
    #[error("cannot connect to any broker: {0}")]
    Connect(String),
}

impl MqError {
    /// Whether a declaration failed with 406 PRECONDITION_FAILED.
    pub(crate) fn from_declare(error: lapin::Error, what: &str) -> Self {
        let text = error.to_string();
        if text.contains("PRECONDITION_FAILED") || text.contains("406") {
            Self::TopologyMismatch(format!("{what}: {text}"))
        } else {
            Self::Broker(error)
        }
    }
}
