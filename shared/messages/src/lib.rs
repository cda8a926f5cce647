//! Message contracts: the catalog of message types, their JSON Schemas (from `schemas/`), the
//! validation every worker runs before anything else, and the typed payloads.
//!
//! # Layout
//! - [`catalog`]: every message type, its version and schema text.
//! - [`validate`]: size limit, JSON parsing and schema validation, with errors that name the
//!   JSON path and the problem but never echo the value (it may be personal data).
//! - [`contact`]: payloads of the contact topics and the `contact.synced` result.
//!
//! Architecture invariant: this is the only crate that defines topic JSON in Rust.

pub mod catalog;
pub mod contact;
pub mod inbound;
pub mod loyalty;
pub mod recommendation;
#[cfg(test)]
pub(crate) mod testing;
pub mod validate;
pub mod voucher;

pub use catalog::{CATALOG, MessageSpec};
pub use validate::{DEFAULT_MAX_BODY_BYTES, Invalid, Schemas};

/// A message to publish: its type (also its routing key), id, and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Message type and routing key, e.g. `contact.synced`.
    pub kind: String,
    /// AMQP `message_id`; derived from the input so a redelivery produces the same id.
    pub message_id: String,
    /// Correlation id carried over from the input.
    pub correlation_id: Option<String>,
    /// Serialized JSON body.
    pub body: Vec<u8>,
}

impl Outgoing {
    /// Serializes `body` as the payload of a `kind` message.
    pub fn json<T: serde::Serialize>(
        kind: &str,
        message_id: String,
        correlation_id: Option<String>,
        body: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            kind: kind.to_owned(),
            message_id,
            correlation_id,
            body: serde_json::to_vec(body)?,
        })
    }
}
