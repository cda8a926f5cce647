//! Names and declaration of the broker topology (DESIGN.md section 3).
//!
//! ```text
//! upstream ──► switchyard (topic, AE=switchyard.unroutable) ──rk──► <worker> (quorum)
//!                                   └─ no binding ─► switchyard.unroutable (fanout) ─► switchyard.unroutable
//! <worker> ──(worker publishes copy)──► <worker>.retry.<d> (TTL d) ──expired──► switchyard.retry ─<worker>─► <worker>
//! <worker> ──(worker publishes dead letter, or delivery limit)──► switchyard.dead ─<worker>─► <worker>.dead
//! ```

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

use crate::MqError;

/// Every name, prefixed with the namespace (`<ns>.` when one is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names under `namespace` (empty: the plain names of DESIGN.md).
    pub fn new(namespace: &str) -> Self {
        let prefix = if namespace.is_empty() {
            String::new()
        } else {
            format!("{namespace}.")
        };
        Self { prefix }
    }

    fn name(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }

    /// The main topic exchange upstream systems publish to.
    pub fn exchange(&self) -> String {
        self.name("switchyard")
    }
    /// The alternate exchange and its queue for messages no queue is bound for.
    pub fn unroutable(&self) -> String {
        self.name("switchyard.unroutable")
    }
    /// The dead-letter exchange.
    pub fn dead_exchange(&self) -> String {
        self.name("switchyard.dead")
    }
    /// The exchange expired retry copies return through.
    pub fn retry_exchange(&self) -> String {
        self.name("switchyard.retry")
    }
    /// A worker's work queue.
    pub fn work_queue(&self, worker: &str) -> String {
        self.name(worker)
    }
    /// A worker's dead-letter queue.
    pub fn dead_queue(&self, worker: &str) -> String {
        self.name(&format!("{worker}.dead"))
    }
    /// A worker's delay tier.
    pub fn tier_queue(&self, worker: &str, delay: Duration) -> String {
        self.name(&format!("{worker}.retry.{}", settings::format_duration(delay)))
    }
}

/// What one worker needs declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerTopology {
    /// Worker name; its queues are named after it.
    pub worker: String,
    /// Routing keys (message types) its work queue is bound to.
    pub routing_keys: Vec<String>,
    /// Delay tiers, shortest first.
    pub tiers: Vec<Duration>,
    /// Quorum-queue delivery limit (poison-message guard).
    pub delivery_limit: u32,
}

/// One entity of the topology, with its arguments: what `declare` creates, `verify` checks and
/// the RabbitMQ definitions export lists.
#[derive(Debug, Clone, PartialEq)]
pub enum Entity {
    /// An exchange.
    Exchange {
        /// Name.
        name: String,
        /// `topic`, `direct` or `fanout`.
        kind: &'static str,
        /// Arguments.
        arguments: Vec<(&'static str, Arg)>,
    },
    /// A durable queue.
    Queue {
        /// Name.
        name: String,
        /// Arguments.
        arguments: Vec<(&'static str, Arg)>,
    },
    /// A binding of a queue to an exchange.
    Binding {
        /// Exchange.
        exchange: String,
        /// Queue.
        queue: String,
        /// Routing key.
        routing_key: String,
    },
}

/// A declaration argument value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A string.
    Str(String),
    /// A number.
    Int(i64),
}

fn quorum_args(extra: Vec<(&'static str, Arg)>) -> Vec<(&'static str, Arg)> {
    let mut args = vec![("x-queue-type", Arg::Str("quorum".into()))];
    args.extend(extra);
    args
}

/// Every entity of the shared exchanges plus the given workers, in declaration order.
pub fn entities(names: &Names, workers: &[WorkerTopology]) -> Vec<Entity> {
    let mut out = vec![
        Entity::Exchange {
            name: names.unroutable(),
            kind: "fanout",
            arguments: vec![],
        },
        Entity::Queue {
            name: names.unroutable(),
            arguments: quorum_args(vec![]),
        },
        Entity::Binding {
            exchange: names.unroutable(),
            queue: names.unroutable(),
            routing_key: String::new(),
        },
        Entity::Exchange {
            name: names.exchange(),
            kind: "topic",
            arguments: vec![("alternate-exchange", Arg::Str(names.unroutable()))],
        },
        Entity::Exchange {
            name: names.dead_exchange(),
            kind: "direct",
            arguments: vec![],
        },
        Entity::Exchange {
            name: names.retry_exchange(),
            kind: "direct",
            arguments: vec![],
        },
    ];
    for worker in workers {
        let work = names.work_queue(&worker.worker);
        out.push(Entity::Queue {
            name: work.clone(),
            arguments: quorum_args(vec![
                ("x-delivery-limit", Arg::Int(i64::from(worker.delivery_limit))),
                ("x-dead-letter-exchange", Arg::Str(names.dead_exchange())),
                ("x-dead-letter-routing-key", Arg::Str(worker.worker.clone())),
                ("x-dead-letter-strategy", Arg::Str("at-least-once".into())),
                ("x-overflow", Arg::Str("reject-publish".into())),
            ]),
        });
        for key in &worker.routing_keys {
            out.push(Entity::Binding {
                exchange: names.exchange(),
                queue: work.clone(),
                routing_key: key.clone(),
            });
        }
        out.push(Entity::Binding {
            exchange: names.retry_exchange(),
            queue: work.clone(),
            routing_key: worker.worker.clone(),
        });
        let dead = names.dead_queue(&worker.worker);
        out.push(Entity::Queue {
            name: dead.clone(),
            arguments: quorum_args(vec![]),
        });
        out.push(Entity::Binding {
            exchange: names.dead_exchange(),
            queue: dead,
            routing_key: worker.worker.clone(),
        });
        for delay in &worker.tiers {
            let millis = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            out.push(Entity::Queue {
                name: names.tier_queue(&worker.worker, *delay),
                arguments: quorum_args(vec![
                    ("x-message-ttl", Arg::Int(millis)),
                    ("x-dead-letter-exchange", Arg::Str(names.retry_exchange())),
                    ("x-dead-letter-routing-key", Arg::Str(worker.worker.clone())),
                    ("x-dead-letter-strategy", Arg::Str("at-least-once".into())),
                    ("x-overflow", Arg::Str("reject-publish".into())),
                ]),
            });
        }
    }
    out
}

fn field_table(arguments: &[(&'static str, Arg)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in arguments {
        let value = match value {
            Arg::Str(s) => AMQPValue::LongString(LongString::from(s.as_str())),
            Arg::Int(i) => AMQPValue::LongLongInt(*i),
        };
        table.insert(ShortString::from(*key), value);
    }
    table
}

async fn declare_one(channel: &Channel, entity: &Entity, passive: bool) -> Result<(), lapin::Error> {
    match entity {
        Entity::Exchange { name, kind, arguments } => {
            let kind = match *kind {
                "topic" => ExchangeKind::Topic,
                "fanout" => ExchangeKind::Fanout,
                _ => ExchangeKind::Direct,
            };
            let options = ExchangeDeclareOptions {
                durable: true,
                passive,
                ..ExchangeDeclareOptions::default()
            };
            channel
                .exchange_declare(name.as_str().into(), kind, options, field_table(arguments))
                .await
        }
        Entity::Queue { name, arguments } => {
            let options = QueueDeclareOptions {
                durable: true,
                passive,
                ..QueueDeclareOptions::default()
            };
            channel
                .queue_declare(name.as_str().into(), options, field_table(arguments))
                .await
                .map(drop)
        }
        Entity::Binding {
            exchange,
            queue,
            routing_key,
        } => {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
        }
    }
}

/// A short description of an entity for messages.
pub fn describe(entity: &Entity) -> String {
    match entity {
        Entity::Exchange { name, kind, .. } => format!("exchange `{name}` ({kind})"),
        Entity::Queue { name, .. } => format!("queue `{name}`"),
        Entity::Binding {
            exchange,
            queue,
            routing_key,
        } => {
            format!("binding `{exchange}` -[{routing_key}]-> `{queue}`")
        }
    }
}

/// Declares everything idempotently on one channel. A 406 (an existing entity with other
/// arguments) is a [`MqError::TopologyMismatch`] naming the entity.
pub async fn declare(connection: &Connection, names: &Names, workers: &[WorkerTopology]) -> Result<(), MqError> {
    let channel = connection.create_channel().await?;
    for entity in entities(names, workers) {
        declare_one(&channel, &entity, false)
            .await
            .map_err(|e| MqError::from_declare(e, &describe(&entity)))?;
    }
    let _closed = channel.close(200, "declared".into()).await;
    Ok(())
}

/// One difference between the expected topology and the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// The entity.
    pub entity: String,
    /// What differs.
    pub problem: String,
}

/// Compares the broker with the expected topology without changing anything: missing
/// exchanges and queues, and queues whose arguments differ. Bindings are only checked for
/// existence of both ends (AMQP 0-9-1 cannot list bindings).
pub async fn verify(connection: &Connection, names: &Names, workers: &[WorkerTopology]) -> Result<Vec<Drift>, MqError> {
    let mut drift = Vec::new();
    for entity in entities(names, workers) {
        if matches!(entity, Entity::Binding { .. }) {
            continue;
        }
        // A failed declare closes the channel, so each check gets its own.
        let channel = connection.create_channel().await?;
        if let Err(error) = declare_one(&channel, &entity, true).await {
            drift.push(Drift {
                entity: describe(&entity),
                problem: format!("missing ({error})"),
            });
            continue;
        }
        let channel = connection.create_channel().await?;
        match declare_one(&channel, &entity, false).await {
            Ok(()) => {
                let _closed = channel.close(200, "verified".into()).await;
            }
            Err(error) => drift.push(Drift {
                entity: describe(&entity),
                problem: error.to_string(),
            }),
        }
    }
    Ok(drift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> WorkerTopology {
        WorkerTopology {
            worker: "contact-sync".into(),
            routing_keys: vec!["contact.changed".into()],
            tiers: vec![Duration::from_secs(1), Duration::from_secs(600)],
            delivery_limit: 10,
        }
    }

    #[test]
    fn names_follow_the_design_without_namespace() {
        let names = Names::new("");
        assert_eq!(names.exchange(), "switchyard");
        assert_eq!(names.unroutable(), "switchyard.unroutable");
        assert_eq!(names.dead_queue("contact-sync"), "contact-sync.dead");
        assert_eq!(
            names.tier_queue("contact-sync", Duration::from_secs(600)),
            "contact-sync.retry.10m"
        );
    }

    #[test]
    fn namespace_prefixes_every_name() {
        let names = Names::new("t42");
        for entity in entities(&names, &[topo()]) {
            let all_prefixed = match &entity {
                Entity::Exchange { name, .. } | Entity::Queue { name, .. } => name.starts_with("t42."),
                Entity::Binding { exchange, queue, .. } => exchange.starts_with("t42.") && queue.starts_with("t42."),
            };
            assert!(all_prefixed, "{entity:?}");
        }
    }

    #[test]
    fn work_queue_is_quorum_with_delivery_limit_and_dlx() {
        let entities = entities(&Names::new(""), &[topo()]);
        let work = entities.iter().find_map(|e| match e {
            Entity::Queue { name, arguments } if name == "contact-sync" => Some(arguments.clone()),
            _ => None,
        });
        let args = work.unwrap_or_default();
        assert!(args.contains(&("x-queue-type", Arg::Str("quorum".into()))));
        assert!(args.contains(&("x-delivery-limit", Arg::Int(10))));
        assert!(args.contains(&("x-dead-letter-exchange", Arg::Str("switchyard.dead".into()))));
        assert!(args.contains(&("x-dead-letter-strategy", Arg::Str("at-least-once".into()))));
    }
}
