//! Bloomreach Engagement state: customers (identified by any of their ids, properties merged
//! last-write-wins per property, respecting `update_timestamp`) and every tracked event (no
//! deduplication: the vendor documents none).
//!
//! Plain data with no I/O; `bloomreach.rs` validates requests.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// A customer as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct BloomreachCustomer {
    /// Every id the customer was seen with (`registered`, `cookie`, ...).
    pub(crate) ids: Map<String, Value>,
    /// Customer properties.
    pub(crate) properties: Map<String, Value>,
    /// When each property was last written (Unix seconds), for `update_timestamp`.
    pub(crate) property_timestamps: BTreeMap<String, f64>,
    /// First seen (Unix seconds).
    pub(crate) created_at: f64,
    /// Last changed (Unix seconds).
    pub(crate) updated_at: f64,
}

/// A tracked event as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct BloomreachEvent {
    /// The ids the event was sent with.
    pub(crate) customer_ids: Map<String, Value>,
    /// `event_type`.
    pub(crate) event_type: String,
    /// When it happened (Unix seconds; the arrival time if none was sent).
    pub(crate) timestamp: f64,
    /// Event properties.
    pub(crate) properties: Map<String, Value>,
    /// When the sandbox received it (Unix seconds).
    pub(crate) received_at: f64,
    /// The batch `command_id`, if it came in a batch with one.
    pub(crate) command_id: Option<Value>,
}

/// The Bloomreach store.
#[derive(Debug, Default)]
pub(crate) struct BloomreachStore {
    customers: Vec<BloomreachCustomer>,
    events: Vec<BloomreachEvent>,
}

impl BloomreachStore {
    /// The customer sharing any id with `ids`, created if there is none; new ids are added.
    fn customer_mut(&mut self, ids: &Map<String, Value>, now: f64) -> &mut BloomreachCustomer {
        let found = self
            .customers
            .iter()
            .position(|customer| ids.iter().any(|(key, value)| customer.ids.get(key) == Some(value)));
        let index = match found {
            Some(index) => index,
            None => {
                self.customers.push(BloomreachCustomer {
                    ids: Map::new(),
                    properties: Map::new(),
                    property_timestamps: BTreeMap::new(),
                    created_at: now,
                    updated_at: now,
                });
                self.customers.len() - 1
            }
        };
        let customer = &mut self.customers[index];
        for (key, value) in ids {
            if !customer.ids.contains_key(key) {
                customer.ids.insert(key.clone(), value.clone());
            }
        }
        customer
    }

    /// Updates customer properties: each property is written only if its stored value is not
    /// newer than `update_timestamp` (default: now).
    pub(crate) fn update_customer(
        &mut self,
        ids: &Map<String, Value>,
        properties: &Map<String, Value>,
        update_timestamp: Option<f64>,
        now: f64,
    ) {
        let at = update_timestamp.unwrap_or(now);
        let customer = self.customer_mut(ids, now);
        for (name, value) in properties {
            let newer_stored = customer
                .property_timestamps
                .get(name)
                .is_some_and(|&stored| stored > at);
            if !newer_stored {
                customer.properties.insert(name.clone(), value.clone());
                customer.property_timestamps.insert(name.clone(), at);
            }
        }
        customer.updated_at = now;
    }

    /// Stores an event (and creates its customer if unknown).
    pub(crate) fn add_event(&mut self, event: BloomreachEvent) {
        self.customer_mut(&event.customer_ids, event.received_at);
        self.events.push(event);
    }

    /// Every customer, oldest first.
    pub(crate) fn customers(&self) -> &[BloomreachCustomer] {
        &self.customers
    }

    /// Every event, in arrival order.
    pub(crate) fn events(&self) -> &[BloomreachEvent] {
        &self.events
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn customers_are_found_by_any_id_and_collect_new_ids() {
        let mut store = BloomreachStore::default();
        store.update_customer(&map(json!({"registered": "c-1"})), &map(json!({"a": 1})), None, 100.0);
        store.update_customer(
            &map(json!({"registered": "c-1", "cookie": "k"})),
            &map(json!({"b": 2})),
            None,
            101.0,
        );
        store.update_customer(&map(json!({"cookie": "k"})), &map(json!({"c": 3})), None, 102.0);
        assert_eq!(store.customers().len(), 1);
        let customer = &store.customers()[0];
        assert_eq!(
            Value::Object(customer.ids.clone()),
            json!({"registered": "c-1", "cookie": "k"})
        );
        assert_eq!(
            Value::Object(customer.properties.clone()),
            json!({"a": 1, "b": 2, "c": 3})
        );
    }

    #[test]
    fn older_updates_do_not_overwrite_newer_properties() {
        let mut store = BloomreachStore::default();
        let ids = map(json!({"registered": "c-1"}));
        store.update_customer(&ids, &map(json!({"tier": "gold"})), Some(200.0), 300.0);
        store.update_customer(&ids, &map(json!({"tier": "silver", "x": 1})), Some(100.0), 301.0);
        let customer = &store.customers()[0];
        assert_eq!(customer.properties["tier"], "gold");
        assert_eq!(customer.properties["x"], 1);
    }

    #[test]
    fn every_event_is_stored_even_identical_ones() {
        let mut store = BloomreachStore::default();
        for _ in 0..2 {
            store.add_event(BloomreachEvent {
                customer_ids: map(json!({"registered": "c-1"})),
                event_type: "purchase".to_owned(),
                timestamp: 1.0,
                properties: Map::new(),
                received_at: 2.0,
                command_id: None,
            });
        }
        assert_eq!(store.events().len(), 2);
        assert_eq!(store.customers().len(), 1);
    }
}
