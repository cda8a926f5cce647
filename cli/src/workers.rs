//! The workers this CLI knows, with the routing keys each consumes. To add a worker, add a row
//! to [`KNOWN_WORKERS`] (taking the constants from the worker's own crate).

use mq::WorkerTopology;
use mq::consumer::WorkerSpec;
use settings::{ConfigError, Strings};

use crate::support::usage;

/// One worker: its name (also its queue's) and the routing keys its work queue is bound to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KnownWorker {
    /// Worker name.
    pub(crate) name: &'static str,
    /// Routing keys (topic patterns) of its work queue.
    pub(crate) routing_keys: &'static [&'static str],
}

/// Every worker the CLI manages.
pub(crate) const KNOWN_WORKERS: &[KnownWorker] = &[
    KnownWorker {
        name: contact_sync::config::WORKER,
        routing_keys: contact_sync::config::ROUTING_KEYS,
    },
    KnownWorker {
        name: loyalty_events::config::WORKER,
        routing_keys: loyalty_events::config::ROUTING_KEYS,
    },
    KnownWorker {
        name: voucher_events::config::WORKER,
        routing_keys: voucher_events::config::ROUTING_KEYS,
    },
    KnownWorker {
        name: recommendations::config::WORKER,
        routing_keys: recommendations::config::ROUTING_KEYS,
    },
];

/// Prefetch passed to [`WorkerSpec::from_strings`]; the CLI does not consume, so it is unused.
const DEFAULT_PREFETCH: u16 = 32;

fn known_names() -> String {
    KNOWN_WORKERS.iter().map(|w| w.name).collect::<Vec<_>>().join(", ")
}

/// The worker called `name`, or a usage error listing the known ones.
pub(crate) fn find(name: &str) -> anyhow::Result<&'static KnownWorker> {
    KNOWN_WORKERS
        .iter()
        .find(|w| w.name == name)
        .ok_or_else(|| usage(format!("unknown worker `{name}`; known workers: {}", known_names())))
}

/// The named workers (every known one when `names` is empty), without duplicates.
pub(crate) fn select(names: &[String]) -> anyhow::Result<Vec<&'static KnownWorker>> {
    if names.is_empty() {
        return Ok(KNOWN_WORKERS.iter().collect());
    }
    let mut out: Vec<&'static KnownWorker> = Vec::new();
    for name in names {
        let worker = find(name)?;
        if !out.iter().any(|w| w.name == worker.name) {
            out.push(worker);
        }
    }
    Ok(out)
}

/// The topology of each worker, with tiers and delivery limit from the workers' variables
/// (`SWITCHYARD_RETRY_TIERS`, `SWITCHYARD_DELIVERY_LIMIT`).
pub(crate) fn topologies(strings: &dyn Strings, workers: &[&KnownWorker]) -> Result<Vec<WorkerTopology>, ConfigError> {
    workers
        .iter()
        .map(|w| WorkerSpec::from_strings(strings, w.name, w.routing_keys, DEFAULT_PREFETCH).map(|s| s.topology))
        .collect()
}

/// Whether an AMQP topic binding `pattern` matches `routing_key` (`*` = one word, `#` = zero
/// or more words).
pub(crate) fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    fn matches(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => (0..=key.len()).any(|skip| matches(rest, key.get(skip..).unwrap_or_default())),
            Some((word, rest)) => key
                .split_first()
                .is_some_and(|(first, key_rest)| (*word == "*" || word == first) && matches(rest, key_rest)),
        }
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    matches(&pattern, &key)
}

/// How many of `workers` have a work queue bound for `routing_key`.
pub(crate) fn consumers_of(workers: &[KnownWorker], routing_key: &str) -> usize {
    workers
        .iter()
        .filter(|w| w.routing_keys.iter().any(|p| topic_matches(p, routing_key)))
        .count()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    #[test]
    fn contact_sync_is_known_with_its_routing_keys() {
        let worker = find("contact-sync").ok();
        assert!(worker.is_some_and(|w| w.routing_keys.contains(&"contact.changed")));
    }

    #[test]
    fn unknown_worker_is_a_usage_error_naming_the_known_ones() {
        let error = select(&["contakt-sync".to_owned()]).err();
        assert!(error.as_ref().is_some_and(crate::support::is_usage));
        assert!(error.is_some_and(|e| e.to_string().contains("contact-sync")));
    }

    #[test]
    fn no_worker_named_means_all_known_workers() {
        assert_eq!(select(&[]).map(|w| w.len()).ok(), Some(KNOWN_WORKERS.len()));
        let twice = select(&["contact-sync".to_owned(), "contact-sync".to_owned()]);
        assert_eq!(twice.map(|w| w.len()).ok(), Some(1));
    }

    #[test]
    fn topologies_take_tiers_from_the_worker_variables() {
        let env: HashMap<&str, &str> = [("SWITCHYARD_RETRY_TIERS", "1s,5s"), ("SWITCHYARD_DELIVERY_LIMIT", "7")].into();
        let topologies = topologies(&env, &select(&[]).unwrap_or_default()).unwrap_or_default();
        let first = topologies.first();
        assert_eq!(
            first.map(|t| t.tiers.clone()),
            Some(vec![Duration::from_secs(1), Duration::from_secs(5)])
        );
        assert_eq!(first.map(|t| t.delivery_limit), Some(7));
    }

    #[test]
    fn bad_tiers_name_the_variable() {
        let env: HashMap<&str, &str> = [("SWITCHYARD_RETRY_TIERS", "10s,1s")].into();
        let error = topologies(&env, &select(&[]).unwrap_or_default()).err();
        assert_eq!(
            error.map(|e| e.variable().to_owned()),
            Some("SWITCHYARD_RETRY_TIERS".to_owned())
        );
    }

    #[test]
    fn topic_patterns_match_like_the_broker() {
        assert!(topic_matches("contact.changed", "contact.changed"));
        assert!(!topic_matches("contact.changed", "contact.changes"));
        assert!(topic_matches("contact.*", "contact.deleted"));
        assert!(!topic_matches("contact.*", "contact.lookup.requested"));
        assert!(topic_matches("contact.#", "contact.lookup.requested"));
        assert!(topic_matches("#", "anything.at.all"));
        assert!(topic_matches("contact.#.requested", "contact.requested"));
    }

    #[test]
    fn consumers_count_workers_bound_for_a_key() {
        assert_eq!(consumers_of(KNOWN_WORKERS, "contact.changed"), 1);
        assert_eq!(consumers_of(KNOWN_WORKERS, "contact.chnaged"), 0);
    }
}
