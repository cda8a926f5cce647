//! Ecomail subscribers: `contact.changed` and `contact.subscribed` both go through
//! `POST /lists/{list}/subscribe` with `update_existing`, skipping the double opt-in mail (the
//! consent comes from the source system or the form). Contacts without an order may share a
//! `POST /lists/{list}/subscribe-bulk` call (up to 3,000); Ecomail answers a bulk call with a
//! count only, so every subscriber in it shares the call's outcome.

/// Flushes one batch of subscribers: one result per subscriber, in order.
pub async fn flush_bulk(client: &EcomailClient, subscribers: Vec<Subscriber>) -> Vec<Result<(), CallError>> {
    match subscribers.as_slice() {
        [] => Vec::new(),
        [single] => vec![client.subscribe(single, true).await],
        many => match client.subscribe_bulk(many, true).await {
            Ok(_) => vec![Ok(()); many.len()],
            Err(error) => vec![Err(error); many.len()],
        },
    }
}

use std::collections::BTreeMap;

use api_client::CallError;
use messages::contact::{ContactChanged, ContactSubscribed};
use provider_ecomail::{EcomailClient, Subscriber};
use serde_json::{Value, json};

use crate::fields::{purchase_dates, source_value, unwrap_date};
use crate::handler::{ContactSync, DestinationResult};
use crate::mapping::EcomailMapping;

/// Tags of the granted permissions.
fn permission_tags(mapping: &EcomailMapping, permissions: &BTreeMap<String, bool>) -> Vec<String> {
    permissions
        .iter()
        .filter(|(_, granted)| **granted)
        .filter_map(|(name, _)| mapping.permission_tags.get(name).cloned())
        .collect()
}

impl ContactSync {
    pub(crate) async fn upsert_ecomail(&self, client: &EcomailClient, contact: &ContactChanged) -> DestinationResult {
        let mapping = &self.mapping.ecomail;
        let mut subscriber = Subscriber {
            email: contact.email.clone(),
            ..Subscriber::default()
        };
        for (source, target) in &mapping.fields {
            if let Some(value) = source_value(contact, source) {
                subscriber.fields.insert(target.clone(), value);
            }
        }
        for (source, target) in &mapping.custom_fields {
            if let Some(value) = source_value(contact, source) {
                subscriber.custom_fields.insert(target.clone(), value);
            }
        }
        subscriber.tags = permission_tags(mapping, &contact.permissions);
        let first = mapping.custom_fields.get("first_purchase_date");
        let last = mapping.custom_fields.get("last_purchase_date");
        let read_modify_write = contact.order.is_some() && (first.is_some() || last.is_some());
        if !read_modify_write && let Some(bulk) = &self.ecomail_bulk {
            return bulk
                .submit(subscriber)
                .await
                .unwrap_or_else(|stopped| Err(CallError::Retriable(format!("ecomail subscribe_bulk: {stopped}"))))
                .map(|()| None);
        }
        if read_modify_write {
            let existing = client.get_subscriber(&contact.email).await?;
            // Ecomail stores custom field names lowercased.
            let existing: BTreeMap<String, Value> = existing
                .map(|s| {
                    s.custom_fields
                        .into_iter()
                        .map(|(k, v)| (k.to_lowercase(), unwrap_date(v)))
                        .collect()
                })
                .unwrap_or_default();
            let lower = |name: Option<&String>| name.map(|n| n.to_lowercase());
            let mut lowered: BTreeMap<String, Value> = subscriber
                .custom_fields
                .iter()
                .map(|(k, v)| (k.to_lowercase(), v.clone()))
                .collect();
            purchase_dates(&mut lowered, &existing, lower(first).as_ref(), lower(last).as_ref());
            for target in [first, last].into_iter().flatten() {
                subscriber.custom_fields.remove(target);
                if let Some(value) = lowered.get(&target.to_lowercase()) {
                    subscriber
                        .custom_fields
                        .insert(target.clone(), json!({"value": value, "type": "date"}));
                }
            }
        }
        client.subscribe(&subscriber, true).await.map(|()| None)
    }

    pub(crate) async fn subscribe_ecomail(
        &self,
        client: &EcomailClient,
        subscribed: &ContactSubscribed,
    ) -> DestinationResult {
        let mapping = &self.mapping.ecomail;
        let mut subscriber = Subscriber {
            email: subscribed.email.clone(),
            ..Subscriber::default()
        };
        let fields = [
            ("first_name", subscribed.first_name.as_ref()),
            ("last_name", subscribed.last_name.as_ref()),
            ("language", subscribed.language.as_ref()),
        ];
        for (source, value) in fields {
            let Some(value) = value else { continue };
            if let Some(target) = mapping.fields.get(source) {
                subscriber.fields.insert(target.clone(), Value::String(value.clone()));
            }
            if let Some(target) = mapping.custom_fields.get(source) {
                subscriber
                    .custom_fields
                    .insert(target.clone(), Value::String(value.clone()));
            }
        }
        subscriber.tags = permission_tags(mapping, &subscribed.permissions);
        client.subscribe(&subscriber, true).await.map(|()| None)
    }
}
