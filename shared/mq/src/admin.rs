//! Broker operations for the `switchyard` CLI and tests: publish a message, inspect and
//! replay dead letters, count queue depth.

use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use settings::MqConfig;

use crate::MqError;
use crate::connection::connect_once;
use crate::headers;
use crate::publisher::{Publication, Publisher, json_properties};
use crate::topology::{self, Drift, Entity, Names, WorkerTopology};

/// An open admin session.
#[derive(Debug)]
pub struct Admin {
    connection: Connection,
    publisher: Publisher,
    names: Names,
}

/// A dead letter as read from `<worker>.dead`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Position in the queue (0 = head).
    pub index: usize,
    /// `message_id`, if any.
    pub message_id: Option<String>,
    /// Message type.
    pub kind: Option<String>,
    /// `invalid`, `permanent`, `exhausted`, or `poison` (broker delivery limit).
    pub class: String,
    /// The error text.
    pub error: String,
    /// Attempt it failed on.
    pub attempt: Option<i64>,
    /// Routing key to replay to.
    pub original_routing_key: Option<String>,
    /// Destinations that failed, if only some did.
    pub scope: Option<String>,
    /// When it was dead-lettered.
    pub failed_at: Option<String>,
    /// The worker that dead-lettered it (absent for broker dead letters).
    pub worker: Option<String>,
    /// Correlation id of the original message.
    pub correlation_id: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// A filter for dead letters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    /// Only this class.
    pub class: Option<String>,
    /// Only this message type.
    pub kind: Option<String>,
    /// Only this message id.
    pub message_id: Option<String>,
    /// Only letters dead-lettered at or after this time (`x-switchyard-failed-at`).
    pub failed_since: Option<time::OffsetDateTime>,
    /// Only letters dead-lettered before this time.
    pub failed_until: Option<time::OffsetDateTime>,
}

impl DeadLetterFilter {
    /// Whether `letter` passes. With a time bound, letters without `x-switchyard-failed-at`
    /// (broker dead letters such as poison messages) do not pass.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        let in_window = if self.failed_since.is_none() && self.failed_until.is_none() {
            true
        } else {
            let failed_at = letter
                .failed_at
                .as_deref()
                .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
            failed_at.is_some_and(|at| {
                self.failed_since.is_none_or(|since| at >= since) && self.failed_until.is_none_or(|until| at < until)
            })
        };
        in_window
            && self.class.as_ref().is_none_or(|c| c == &letter.class)
            && self.kind.as_ref().is_none_or(|k| Some(k) == letter.kind.as_ref())
            && self
                .message_id
                .as_ref()
                .is_none_or(|m| Some(m) == letter.message_id.as_ref())
    }
}

fn dead_letter(index: usize, properties: &BasicProperties, body: Vec<u8>) -> DeadLetter {
    let table = properties.headers().as_ref();
    let broker_reason = headers::broker_death_reason(table);
    let class = headers::get_str(table, headers::ERROR_CLASS).unwrap_or_else(|| match broker_reason.as_deref() {
        Some("delivery_limit") => "poison".to_owned(),
        Some(other) => format!("broker:{other}"),
        None => "unknown".to_owned(),
    });
    let error = headers::get_str(table, headers::ERROR).unwrap_or_else(|| match broker_reason.as_deref() {
        Some("delivery_limit") => "delivery limit exceeded (the worker failed or crashed on it repeatedly)".to_owned(),
        Some(other) => format!("dead-lettered by the broker: {other}"),
        None => String::new(),
    });
    DeadLetter {
        index,
        message_id: properties.message_id().as_ref().map(|m| m.as_str().to_owned()),
        kind: properties.kind().as_ref().map(|k| k.as_str().to_owned()),
        class,
        error,
        attempt: headers::get_int(table, headers::ATTEMPT),
        original_routing_key: headers::get_str(table, headers::ORIGINAL_ROUTING_KEY)
            .or_else(|| headers::death_routing_key(table)),
        scope: headers::get_str(table, headers::SCOPE),
        failed_at: headers::get_str(table, headers::FAILED_AT),
        worker: headers::get_str(table, headers::WORKER),
        correlation_id: properties.correlation_id().as_ref().map(|c| c.as_str().to_owned()),
        body,
    }
}

impl Admin {
    /// Connects (first URL that answers).
    pub async fn connect(config: &MqConfig) -> Result<Self, MqError> {
        let connection = connect_once(&config.urls, "switchyard admin").await?;
        let publisher = Publisher::open(&connection).await?;
        Ok(Self {
            connection,
            publisher,
            names: Names::new(&config.namespace),
        })
    }

    /// The names in use.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Declares the shared exchanges and the given workers' queues.
    pub async fn declare(&self, workers: &[WorkerTopology]) -> Result<(), MqError> {
        topology::declare(&self.connection, &self.names, workers).await
    }

    /// Compares the broker with the expected topology.
    pub async fn verify(&self, workers: &[WorkerTopology]) -> Result<Vec<Drift>, MqError> {
        topology::verify(&self.connection, &self.names, workers).await
    }

    /// Publishes a JSON message to the main exchange with confirm and `mandatory`.
    pub async fn publish(
        &self,
        kind: &str,
        message_id: &str,
        correlation_id: Option<&str>,
        body: &[u8],
    ) -> Result<(), MqError> {
        self.publish_raw(
            kind,
            json_properties(message_id, kind, correlation_id, FieldTable::default()),
            body,
        )
        .await
    }

    /// Publishes with the given properties to the main exchange.
    pub async fn publish_raw(
        &self,
        routing_key: &str,
        properties: BasicProperties,
        body: &[u8],
    ) -> Result<(), MqError> {
        let exchange = self.names.exchange();
        self.publisher
            .publish_all(vec![Publication {
                exchange: &exchange,
                routing_key,
                body,
                properties,
            }])
            .await
    }

    /// Messages ready in a queue (0 when it does not exist).
    pub async fn queue_depth(&self, queue: &str) -> Result<u32, MqError> {
        let channel = self.connection.create_channel().await?;
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let depth = match channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
        {
            Ok(q) => q.message_count(),
            Err(_) => 0,
        };
        let _closed = channel.close(200, "ok".into()).await;
        Ok(depth)
    }

    async fn take_all(
        &self,
        channel: &Channel,
        queue: &str,
        limit: usize,
    ) -> Result<Vec<lapin::message::Delivery>, MqError> {
        let mut out = Vec::new();
        while out.len() < limit {
            match channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: false })
                .await?
            {
                Some(message) => out.push(message.delivery),
                None => break,
            }
        }
        Ok(out)
    }

    /// Reads up to `limit` dead letters of `worker` without removing them.
    pub async fn dead_letters(&self, worker: &str, limit: usize) -> Result<Vec<DeadLetter>, MqError> {
        let channel = self.connection.create_channel().await?;
        let queue = self.names.dead_queue(worker);
        let deliveries = self.take_all(&channel, &queue, limit).await?;
        let letters = deliveries
            .iter()
            .enumerate()
            .map(|(i, d)| dead_letter(i, &d.properties, d.data.clone()))
            .collect();
        // Closing the channel returns every unacked message to the queue, in order.
        let _closed = channel.close(200, "peeked".into()).await;
        Ok(letters)
    }

    /// Republishes matching dead letters of `worker` to their original routing key with the
    /// attempt count reset, at most `rate_per_sec` per second; each is removed from the dead
    /// queue only after the republish is confirmed. With `dry_run` nothing changes. Returns the
    /// replayed (or, dry, would-be-replayed) letters.
    pub async fn replay(
        &self,
        worker: &str,
        filter: &DeadLetterFilter,
        rate_per_sec: u32,
        dry_run: bool,
        mut progress: impl FnMut(&DeadLetter),
    ) -> Result<Vec<DeadLetter>, MqError> {
        let channel = self.connection.create_channel().await?;
        let queue = self.names.dead_queue(worker);
        let deliveries = self.take_all(&channel, &queue, usize::MAX).await?;
        let pause = Duration::from_secs_f64(1.0 / f64::from(rate_per_sec.max(1)));
        let exchange = self.names.exchange();
        let mut replayed = Vec::new();
        for (index, delivery) in deliveries.iter().enumerate() {
            let letter = dead_letter(index, &delivery.properties, delivery.data.clone());
            if !filter.matches(&letter) || dry_run {
                if dry_run && filter.matches(&letter) {
                    progress(&letter);
                    replayed.push(letter);
                }
                continue;
            }
            let Some(routing_key) = letter.original_routing_key.clone().or_else(|| letter.kind.clone()) else {
                continue;
            };
            let mut table = headers::carry_over(delivery.properties.headers().as_ref());
            if let Some(scope) = &letter.scope {
                headers::set_str(&mut table, headers::SCOPE, scope);
            }
            let properties = delivery.properties.clone().with_headers(table);
            self.publisher
                .publish_all(vec![Publication {
                    exchange: &exchange,
                    routing_key: &routing_key,
                    body: &delivery.data,
                    properties,
                }])
                .await?;
            delivery.acker.ack(BasicAckOptions::default()).await?;
            progress(&letter);
            replayed.push(letter);
            tokio::time::sleep(pause).await;
        }
        for delivery in deliveries.iter() {
            // Everything not replayed goes back (closing the channel would do it too).
            let _back = delivery
                .acker
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                })
                .await;
        }
        let _closed = channel.close(200, "replayed".into()).await;
        Ok(replayed)
    }

    /// Deletes every message of `worker`'s dead queue; returns how many.
    pub async fn purge_dead(&self, worker: &str) -> Result<u32, MqError> {
        let channel = self.connection.create_channel().await?;
        let count = channel
            .queue_purge(
                self.names.dead_queue(worker).as_str().into(),
                QueuePurgeOptions::default(),
            )
            .await?;
        let _closed = channel.close(200, "purged".into()).await;
        Ok(count)
    }

    /// Deletes the dead letters of `worker` that match `filter` (all others stay, in order);
    /// with `dry_run` nothing changes. Returns the (would-be) deleted letters.
    pub async fn purge_matching(
        &self,
        worker: &str,
        filter: &DeadLetterFilter,
        dry_run: bool,
    ) -> Result<Vec<DeadLetter>, MqError> {
        let channel = self.connection.create_channel().await?;
        let queue = self.names.dead_queue(worker);
        let deliveries = self.take_all(&channel, &queue, usize::MAX).await?;
        let mut purged = Vec::new();
        for (index, delivery) in deliveries.iter().enumerate() {
            let letter = dead_letter(index, &delivery.properties, delivery.data.clone());
            if filter.matches(&letter) && !dry_run {
                delivery.acker.ack(BasicAckOptions::default()).await?;
                purged.push(letter);
            } else {
                if filter.matches(&letter) {
                    purged.push(letter);
                }
                let _back = delivery
                    .acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await;
            }
        }
        let _closed = channel.close(200, "purged".into()).await;
        Ok(purged)
    }

    /// Removes and returns up to `limit` messages from any queue (tests, demo summaries).
    pub async fn drain(&self, queue: &str, limit: usize) -> Result<Vec<(BasicProperties, Vec<u8>)>, MqError> {
        let channel = self.connection.create_channel().await?;
        let deliveries = self.take_all(&channel, queue, limit).await?;
        let mut out = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            delivery.acker.ack(BasicAckOptions::default()).await?;
            out.push((delivery.properties, delivery.data));
        }
        let _closed = channel.close(200, "drained".into()).await;
        Ok(out)
    }

    /// Declares a durable queue (`<ns>.<name>`) bound to the main exchange with the given
    /// routing keys, for observers of results (tests, the demo, downstream consumers).
    pub async fn declare_observer(&self, name: &str, routing_keys: &[&str]) -> Result<String, MqError> {
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        self.declare_bound(name, routing_keys, options).await
    }

    /// Like [`Admin::declare_observer`], but the queue belongs to this connection: the broker
    /// deletes it when the connection closes (one-off collectors such as `switchyard batch`).
    pub async fn declare_private_observer(&self, name: &str, routing_keys: &[&str]) -> Result<String, MqError> {
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        self.declare_bound(name, routing_keys, options).await
    }

    async fn declare_bound(
        &self,
        name: &str,
        routing_keys: &[&str],
        options: QueueDeclareOptions,
    ) -> Result<String, MqError> {
        let channel = self.connection.create_channel().await?;
        let queue = self.names.work_queue(name);
        channel
            .queue_declare(queue.as_str().into(), options, FieldTable::default())
            .await?;
        for key in routing_keys {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    self.names.exchange().as_str().into(),
                    (*key).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        let _closed = channel.close(200, "declared".into()).await;
        Ok(queue)
    }

    /// Deletes every queue and exchange of the given workers and the shared exchanges of this
    /// namespace, plus the named extra queues. For tests and throwaway namespaces; refuses to run
    /// on the empty (production) namespace.
    pub async fn remove_namespace(&self, workers: &[WorkerTopology], extra_queues: &[String]) -> Result<(), MqError> {
        if self.names.work_queue("x") == "x" {
            return Err(MqError::TopologyMismatch(
                "refusing to delete the topology of the empty namespace".to_owned(),
            ));
        }
        let channel = self.connection.create_channel().await?;
        for queue in extra_queues {
            let _deleted = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for entity in topology::entities(&self.names, workers) {
            match entity {
                Entity::Queue { name, .. } => {
                    let _deleted = channel
                        .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                Entity::Exchange { name, .. } => {
                    let _deleted = channel
                        .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
                        .await;
                }
                Entity::Binding { .. } => {}
            }
        }
        let _closed = channel.close(200, "removed".into()).await;
        Ok(())
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _closed = self.connection.close(200, "bye".into()).await;
    }
}
