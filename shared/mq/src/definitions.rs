//! The broker topology as a RabbitMQ definitions document (the format of
//! `rabbitmqctl import_definitions`, the management UI's "Import definitions" and the
//! `load_definitions` setting), generated from [`topology::entities`], the same list that
//! [`topology::declare`] creates and [`topology::verify`] checks. `switchyard topology export`
//! writes it; `deploy/rabbitmq/definitions.json` is its output for every known worker.
//!
//! Only exchanges, queues and bindings in vhost `/` are listed: users, permissions and policies
//! belong to the operator, and credentials never go into a generated file.

use serde_json::{Map, Value, json};

use crate::topology::{self, Arg, Entity, Names, WorkerTopology};

/// The virtual host every entity is declared in.
pub const VHOST: &str = "/";

fn arguments(args: &[(&'static str, Arg)]) -> Value {
    let map: Map<String, Value> = args
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Arg::Str(s) => Value::String(s.clone()),
                Arg::Int(i) => Value::from(*i),
            };
            ((*key).to_owned(), value)
        })
        .collect();
    Value::Object(map)
}

/// The definitions document of the shared exchanges plus `workers` under `names`: every
/// exchange, queue (with its arguments: quorum type, delivery limit, dead-lettering, TTLs) and
/// binding, in declaration order, in vhost [`VHOST`].
pub fn definitions(names: &Names, workers: &[WorkerTopology]) -> Value {
    let mut exchanges = Vec::new();
    let mut queues = Vec::new();
    let mut bindings = Vec::new();
    for entity in topology::entities(names, workers) {
        match entity {
            Entity::Exchange {
                name,
                kind,
                arguments: args,
            } => exchanges.push(json!({
                "name": name,
                "vhost": VHOST,
                "type": kind,
                "durable": true,
                "auto_delete": false,
                "internal": false,
                "arguments": arguments(&args),
            })),
            Entity::Queue { name, arguments: args } => queues.push(json!({
                "name": name,
                "vhost": VHOST,
                "durable": true,
                "auto_delete": false,
                "arguments": arguments(&args),
            })),
            Entity::Binding {
                exchange,
                queue,
                routing_key,
            } => bindings.push(json!({
                "source": exchange,
                "vhost": VHOST,
                "destination": queue,
                "destination_type": "queue",
                "routing_key": routing_key,
                "arguments": {},
            })),
        }
    }
    json!({
        "vhosts": [{ "name": VHOST }],
        "exchanges": exchanges,
        "queues": queues,
        "bindings": bindings,
    })
}

/// [`definitions`] as the text committed to `deploy/rabbitmq/definitions.json`: pretty JSON
/// with a final newline, so regenerating an unchanged topology changes no byte.
pub fn definitions_text(names: &Names, workers: &[WorkerTopology]) -> String {
    let value = definitions(names, workers);
    // Serializing a `Value` cannot fail (its keys are strings); the fallback is unreachable.
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn topo() -> WorkerTopology {
        WorkerTopology {
            worker: "contact-sync".into(),
            routing_keys: vec!["contact.changed".into(), "contact.deleted".into()],
            tiers: vec![Duration::from_secs(1), Duration::from_secs(60)],
            delivery_limit: 10,
        }
    }

    fn find<'a>(doc: &'a Value, section: &str, name: &str) -> Option<&'a Value> {
        doc[section].as_array()?.iter().find(|entry| entry["name"] == name)
    }

    #[test]
    fn lists_every_entity_of_the_topology() {
        let names = Names::new("");
        let doc = definitions(&names, &[topo()]);
        let entities = topology::entities(&names, &[topo()]);
        let count = |kind: fn(&Entity) -> bool| entities.iter().filter(|e| kind(e)).count();
        let len = |section: &str| doc[section].as_array().map_or(0, Vec::len);
        assert_eq!(len("exchanges"), count(|e| matches!(e, Entity::Exchange { .. })));
        assert_eq!(len("queues"), count(|e| matches!(e, Entity::Queue { .. })));
        assert_eq!(len("bindings"), count(|e| matches!(e, Entity::Binding { .. })));
    }

    #[test]
    fn queues_carry_their_arguments() {
        let doc = definitions(&Names::new(""), &[topo()]);
        let work = find(&doc, "queues", "contact-sync").cloned().unwrap_or_default();
        assert_eq!(work["durable"], true);
        assert_eq!(work["vhost"], "/");
        assert_eq!(work["arguments"]["x-queue-type"], "quorum");
        assert_eq!(work["arguments"]["x-delivery-limit"], 10);
        assert_eq!(work["arguments"]["x-dead-letter-exchange"], "switchyard.dead");
        let tier = find(&doc, "queues", "contact-sync.retry.1m")
            .cloned()
            .unwrap_or_default();
        assert_eq!(tier["arguments"]["x-message-ttl"], 60_000);
        assert_eq!(tier["arguments"]["x-dead-letter-exchange"], "switchyard.retry");
    }

    #[test]
    fn main_exchange_is_topic_with_the_alternate_exchange() {
        let doc = definitions(&Names::new("tenant"), &[topo()]);
        let main = find(&doc, "exchanges", "tenant.switchyard")
            .cloned()
            .unwrap_or_default();
        assert_eq!(main["type"], "topic");
        assert_eq!(main["arguments"]["alternate-exchange"], "tenant.switchyard.unroutable");
    }

    #[test]
    fn bindings_route_each_key_to_the_work_queue() {
        let doc = definitions(&Names::new(""), &[topo()]);
        let bound: Vec<&str> = doc["bindings"]
            .as_array()
            .map(|b| {
                b.iter()
                    .filter(|b| b["source"] == "switchyard" && b["destination"] == "contact-sync")
                    .filter_map(|b| b["routing_key"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(bound, ["contact.changed", "contact.deleted"]);
    }

    #[test]
    fn text_is_stable_and_ends_with_a_newline() {
        let names = Names::new("");
        let text = definitions_text(&names, &[topo()]);
        assert!(text.ends_with("}\n"));
        assert_eq!(text, definitions_text(&names, &[topo()]));
    }
}
