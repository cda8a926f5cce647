//! Spotler contacts: upsert (`POST /contact` with `update=true`, or batched into
//! `POST /contact/list` calls of up to 100) and subscriptions from sign-up forms.
//!
//! A contact whose message carries an order always goes through the single endpoint, because
//! the purchase dates are a read-modify-write (read the stored dates, send only the ones that
//! move). A contact without an order has nothing to read, so it may share a `/contact/list`
//! call with others (the bulk path, for the full export after activation and other
//! backlogs). A batch of one uses the single endpoint too.

use std::collections::BTreeMap;

use api_client::CallError;
use messages::contact::{ContactChanged, ContactSubscribed};
use provider_spotler::{Contact, SpotlerClient};
use serde_json::{Value, json};

use crate::fields::{purchase_dates, source_value};
use crate::handler::{ContactSync, DestinationResult, SpotlerDestination};

/// Flushes one batch of contacts: one result per contact, in order. Used by the Spotler bulk
/// batcher.
pub async fn flush_bulk(client: &SpotlerClient, contacts: Vec<Contact>) -> Vec<Result<(), CallError>> {
    match contacts.as_slice() {
        [] => Vec::new(),
        [single] => vec![client.insert_contact(single, true).await],
        many => match client.insert_contacts(many, true).await {
            Ok(results) => results,
            // The call failed as a whole: every contact in it shares the failure.
            Err(error) => vec![Err(error); many.len()],
        },
    }
}

/// Spotler `permissions` entries (`[{bit, enabled}]`) for the mapped permissions.
fn permissions(mapping: &BTreeMap<String, u32>, granted: &BTreeMap<String, bool>) -> Vec<Value> {
    granted
        .iter()
        .filter_map(|(name, enabled)| mapping.get(name).map(|bit| json!({"bit": bit, "enabled": enabled})))
        .collect()
}

impl ContactSync {
    pub(crate) async fn upsert_spotler(
        &self,
        spotler: &SpotlerDestination,
        contact: &ContactChanged,
    ) -> DestinationResult {
        let mapping = &self.mapping.spotler;
        let mut properties = BTreeMap::new();
        for (source, target) in &mapping.properties {
            if let Some(value) = source_value(contact, source) {
                properties.insert(target.clone(), value);
            }
        }
        let permissions = permissions(&mapping.permissions, &contact.permissions);
        if !permissions.is_empty() {
            properties.insert("permissions".to_owned(), Value::Array(permissions));
        }
        let first = mapping.properties.get("first_purchase_date");
        let last = mapping.properties.get("last_purchase_date");
        let read_modify_write = contact.order.is_some() && (first.is_some() || last.is_some());
        if read_modify_write {
            let existing = spotler.client.get_contact(&contact.contact_id).await?;
            let existing = existing.map(|c| c.properties).unwrap_or_default();
            purchase_dates(&mut properties, &existing, first, last);
        }
        let record = Contact {
            external_id: contact.contact_id.clone(),
            properties,
        };
        match &spotler.bulk {
            Some(bulk) if !read_modify_write => bulk
                .submit(record)
                .await
                .unwrap_or_else(|stopped| Err(CallError::Retriable(format!("spotler insert_contacts: {stopped}")))),
            _ => spotler.client.insert_contact(&record, true).await,
        }
        .map(|()| None)
    }

    pub(crate) async fn subscribe_spotler(
        &self,
        spotler: &SpotlerDestination,
        subscribed: &ContactSubscribed,
    ) -> DestinationResult {
        let mapping = &self.mapping.spotler;
        let permissions = permissions(&mapping.permissions, &subscribed.permissions);
        if permissions.is_empty() {
            return Err(CallError::Permanent(format!(
                "spotler subscribe: none of the form's permissions ({}) is mapped in [spotler.permissions]",
                subscribed.permissions.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let mut properties = BTreeMap::new();
        let fields = [
            ("email", Some(&subscribed.email)),
            ("first_name", subscribed.first_name.as_ref()),
            ("last_name", subscribed.last_name.as_ref()),
            ("language", subscribed.language.as_ref()),
        ];
        for (source, value) in fields {
            if let (Some(target), Some(value)) = (mapping.properties.get(source), value) {
                properties.insert(target.clone(), Value::String(value.clone()));
            }
        }
        // Spotler needs the address under its own name whatever the mapping says.
        properties
            .entry("email".to_owned())
            .or_insert_with(|| Value::String(subscribed.email.clone()));
        properties.insert("permissions".to_owned(), Value::Array(permissions));
        spotler
            .client
            .subscribe(subscribed.contact_id.as_deref(), &properties)
            .await
            .map(|()| None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mapped_permissions_are_sent() {
        let mapping: BTreeMap<String, u32> = [("newsletter".to_owned(), 1)].into_iter().collect();
        let granted: BTreeMap<String, bool> = [("newsletter".to_owned(), true), ("sms".to_owned(), false)]
            .into_iter()
            .collect();
        assert_eq!(permissions(&mapping, &granted), [json!({"bit": 1, "enabled": true})]);
    }
}
