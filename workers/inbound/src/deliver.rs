//! Publishing exactly what the broker confirmed, once per event: every message is checked
//! against its schema, skipped when the processed-event ledger says it was already confirmed
//! (a vendor retry, a re-pulled window), published through the [`Outbox`] within a time bound,
//! and recorded in the ledger only after the broker's confirm.
//!
//! The ledger narrows duplicates, it cannot close them: two copies of one webhook arriving at
//! the same moment both publish (with the same message id, which downstream dedups on). If
//! Redis does not answer, the ledger says "not done" and the message is published again with
//! the same id: at-least-once, never lost.

use std::sync::Arc;
use std::time::Duration;

use ledger::Ledger;
use messages::{Outgoing, Schemas};
use mq::outbox::Outbox;

/// The ledger effect of a confirmed publish.
const EFFECT: &str = "published";

/// Publishes inbound's messages.
#[derive(Debug, Clone)]
pub struct Deliverer {
    outbox: Outbox,
    ledger: Ledger,
    schemas: Arc<Schemas>,
    timeout: Duration,
}

/// What a delivery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Messages published and confirmed now.
    pub published: usize,
    /// Messages skipped because an earlier publish was confirmed.
    pub duplicates: usize,
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    /// A message does not match its schema (the reason names the path, never the value).
    #[error("{kind} does not match its schema: {reason}")]
    Invalid {
        /// The message type.
        kind: String,
        /// Path and rule.
        reason: String,
    },
    /// The broker did not confirm in time (or is unreachable): nothing may be acknowledged.
    #[error("the broker did not confirm the publish: {0}")]
    Unavailable(String),
}

impl Deliverer {
    /// A deliverer over `outbox`, with the processed-event `ledger`, validating with `schemas`
    /// and waiting at most `timeout` for the broker.
    pub fn new(outbox: Outbox, ledger: Ledger, schemas: Arc<Schemas>, timeout: Duration) -> Self {
        Self {
            outbox,
            ledger,
            schemas,
            timeout,
        }
    }

    /// The outbox (readiness, shutdown).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Checks `message` against the schema of its kind.
    pub fn check(&self, message: &Outgoing) -> Result<(), DeliverError> {
        self.schemas
            .check(&message.kind, &message.body)
            .map(drop)
            .map_err(|invalid| DeliverError::Invalid {
                kind: message.kind.clone(),
                reason: invalid.to_string(),
            })
    }

    /// Validates every message, then publishes those not yet confirmed, all or nothing: on an
    /// invalid message nothing is published; on a broker failure nothing is recorded.
    pub async fn deliver(&self, messages: &[Outgoing]) -> Result<Delivered, DeliverError> {
        for message in messages {
            self.check(message)?;
        }
        let mut fresh = Vec::with_capacity(messages.len());
        for message in messages {
            if !self.ledger.is_done(&message.message_id, EFFECT).await {
                fresh.push(message.clone());
            }
        }
        let duplicates = messages.len() - fresh.len();
        if fresh.is_empty() {
            return Ok(Delivered {
                published: 0,
                duplicates,
            });
        }
        match tokio::time::timeout(self.timeout, self.outbox.publish(&fresh)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(DeliverError::Unavailable(error.to_string())),
            Err(_) => {
                // The connection may be hung: start afresh on the next publish.
                self.outbox.reset().await;
                return Err(DeliverError::Unavailable(format!(
                    "no confirm within {}",
                    settings::format_duration(self.timeout)
                )));
            }
        }
        for message in &fresh {
            self.ledger.mark_done(&message.message_id, EFFECT).await;
        }
        Ok(Delivered {
            published: fresh.len(),
            duplicates,
        })
    }
}
