//! Handling of `contact.changed`, `contact.deleted` and `contact.deactivated`.
//!
//! Each destination is one unit of work: the outcome holds one `contact.synced` result per
//! destination that finished (synced, or failed for good) and one failure per destination
//! still to retry, scoped so a retry redoes only that destination.

use std::collections::BTreeMap;

use api_client::CallError;
use messages::Outgoing;
use messages::contact::{ContactChanged, ContactDeactivated, ContactDeleted, ContactSynced};
use mq::{Failure, FailureKind, Handler, Incoming, Outcome};
use provider_ecomail::{EcomailClient, Subscriber};
use provider_spotler::{Contact, SpotlerClient};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::locks::KeyedLocks;
use crate::mapping::FieldMapping;

/// Destination names (scope values and `contact.synced` destinations).
pub const SPOTLER: &str = "spotler";
/// Ecomail destination.
pub const ECOMAIL: &str = "ecomail";

/// The worker's dependencies.
#[derive(Debug)]
pub struct ContactSync {
    /// Spotler client, when Spotler is enabled.
    pub spotler: Option<SpotlerClient>,
    /// Ecomail client, when Ecomail is enabled.
    pub ecomail: Option<EcomailClient>,
    /// The field mapping.
    pub mapping: FieldMapping,
    /// One message per contact at a time in this process (read-modify-write of dates).
    pub contacts: KeyedLocks,
}

/// The result of one destination.
type DestinationResult = Result<(), CallError>;

impl Handler for ContactSync {
    async fn handle(&self, message: Incoming) -> Outcome {
        match message.kind.as_str() {
            "contact.changed" => match serde_json::from_value::<ContactChanged>(message.body.clone()) {
                Ok(contact) => self.changed(&message, &contact).await,
                Err(error) => Outcome::failed(
                    FailureKind::Invalid,
                    format!("body does not match contact.changed: {error}"),
                ),
            },
            "contact.deleted" => match serde_json::from_value::<ContactDeleted>(message.body.clone()) {
                Ok(deleted) => self.deleted(&message, &deleted).await,
                Err(error) => Outcome::failed(
                    FailureKind::Invalid,
                    format!("body does not match contact.deleted: {error}"),
                ),
            },
            "contact.deactivated" => match serde_json::from_value::<ContactDeactivated>(message.body.clone()) {
                Ok(deactivated) => self.deactivated(&message, &deactivated).await,
                Err(error) => Outcome::failed(
                    FailureKind::Invalid,
                    format!("body does not match contact.deactivated: {error}"),
                ),
            },
            other => Outcome::failed(FailureKind::Invalid, format!("contact-sync does not handle `{other}`")),
        }
    }
}

impl ContactSync {
    async fn changed(&self, message: &Incoming, contact: &ContactChanged) -> Outcome {
        let _contact = self.contacts.lock(&contact.contact_id).await;
        let spotler = async {
            match &self.spotler {
                Some(client) if message.wants(SPOTLER) => Some(self.upsert_spotler(client, contact).await),
                _ => None,
            }
        };
        let ecomail = async {
            match &self.ecomail {
                Some(client) if message.wants(ECOMAIL) => Some(self.upsert_ecomail(client, contact).await),
                _ => None,
            }
        };
        let (spotler, ecomail) = tokio::join!(spotler, ecomail);
        let mut outcome = Outcome::default();
        for (destination, result) in [(SPOTLER, spotler), (ECOMAIL, ecomail)] {
            if let Some(result) = result {
                settle(
                    &mut outcome,
                    message,
                    &contact.contact_id,
                    destination,
                    "upsert",
                    result,
                );
            }
        }
        outcome
    }

    async fn deleted(&self, message: &Incoming, deleted: &ContactDeleted) -> Outcome {
        let mut outcome = Outcome::default();
        if let Some(client) = &self.spotler
            && message.wants(SPOTLER)
        {
            // A contact Spotler never had is already as anonymous as it gets.
            let result = client.anonymize(&deleted.contact_id).await.map(drop);
            settle(&mut outcome, message, &deleted.contact_id, SPOTLER, "anonymize", result);
        }
        outcome
    }

    async fn deactivated(&self, message: &Incoming, deactivated: &ContactDeactivated) -> Outcome {
        let mut outcome = Outcome::default();
        if let Some(client) = &self.spotler
            && message.wants(SPOTLER)
        {
            let result = match client.inactivate(&deactivated.contact_id).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(CallError::Permanent(
                    "spotler inactivate: contact not found, nothing to inactivate".to_owned(),
                )),
                Err(error) => Err(error),
            };
            settle(
                &mut outcome,
                message,
                &deactivated.contact_id,
                SPOTLER,
                "inactivate",
                result,
            );
        }
        outcome
    }

    async fn upsert_spotler(&self, client: &SpotlerClient, contact: &ContactChanged) -> DestinationResult {
        let mapping = &self.mapping.spotler;
        let mut properties = BTreeMap::new();
        for (source, target) in &mapping.properties {
            if let Some(value) = source_value(contact, source) {
                properties.insert(target.clone(), value);
            }
        }
        let permissions: Vec<Value> = contact
            .permissions
            .iter()
            .filter_map(|(name, enabled)| {
                mapping
                    .permissions
                    .get(name)
                    .map(|bit| json!({"bit": bit, "enabled": enabled}))
            })
            .collect();
        if !permissions.is_empty() {
            properties.insert("permissions".to_owned(), Value::Array(permissions));
        }
        let first = mapping.properties.get("first_purchase_date");
        let last = mapping.properties.get("last_purchase_date");
        if contact.order.is_some() && (first.is_some() || last.is_some()) {
            let existing = client.get_contact(&contact.contact_id).await?;
            let existing = existing.map(|c| c.properties).unwrap_or_default();
            purchase_dates(&mut properties, &existing, first, last);
        }
        client
            .insert_contact(
                &Contact {
                    external_id: contact.contact_id.clone(),
                    properties,
                },
                true,
            )
            .await
    }

    async fn upsert_ecomail(&self, client: &EcomailClient, contact: &ContactChanged) -> DestinationResult {
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
        subscriber.tags = contact
            .permissions
            .iter()
            .filter(|(_, granted)| **granted)
            .filter_map(|(name, _)| mapping.permission_tags.get(name).cloned())
            .collect();
        let first = mapping.custom_fields.get("first_purchase_date");
        let last = mapping.custom_fields.get("last_purchase_date");
        if contact.order.is_some() && (first.is_some() || last.is_some()) {
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
        client.subscribe(&subscriber, true).await
    }
}

fn unwrap_date(value: Value) -> Value {
    match value {
        Value::Object(mut map) if map.contains_key("value") => map.remove("value").unwrap_or(Value::Null),
        other => other,
    }
}

/// Applies the purchase-date rules to `properties` (which holds the new order's date under
/// both names). The first purchase date is set when the destination has none and never moves
/// later: a stored date is only replaced by an earlier one, which happens only when an older
/// order arrives after a newer one. The last purchase date never moves earlier. Both rules
/// converge to the right values whatever order the messages are handled in.
fn purchase_dates(
    properties: &mut BTreeMap<String, Value>,
    existing: &BTreeMap<String, Value>,
    first: Option<&String>,
    last: Option<&String>,
) {
    let stored = |name: &String| {
        existing
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let new = |properties: &BTreeMap<String, Value>, name: &String| {
        properties.get(name).and_then(Value::as_str).map(str::to_owned)
    };
    if let Some(first) = first
        && let (Some(current), Some(new)) = (stored(first), new(properties, first))
        && current <= new
    {
        properties.remove(first);
    }
    if let Some(last) = last
        && let (Some(current), Some(new)) = (stored(last), new(properties, last))
        && current >= new
    {
        properties.remove(last);
    }
}

fn date(at: OffsetDateTime) -> String {
    at.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// The value of a mapping source field, if the contact has it.
fn source_value(contact: &ContactChanged, source: &str) -> Option<Value> {
    let text = |s: &Option<String>| s.as_ref().map(|v| Value::String(v.clone()));
    match source {
        "email" => Some(Value::String(contact.email.clone())),
        "first_name" => text(&contact.first_name),
        "last_name" => text(&contact.last_name),
        "phone" => text(&contact.phone),
        "city" => text(&contact.city),
        "country" => text(&contact.country),
        "language" => text(&contact.language),
        "first_purchase_date" | "last_purchase_date" => {
            contact.order.as_ref().map(|o| Value::String(date(o.placed_at)))
        }
        other => other
            .strip_prefix("attributes.")
            .and_then(|name| contact.attributes.get(name))
            .filter(|v| !v.is_null())
            .cloned(),
    }
}

/// Adds the outcome of one destination: a result when it finished, a scoped failure when it
/// must be retried (or parked), and both when it failed for good.
fn settle(
    outcome: &mut Outcome,
    message: &Incoming,
    contact_id: &str,
    destination: &str,
    operation: &str,
    result: DestinationResult,
) {
    let scope = vec![destination.to_owned()];
    let (status, error, failure) = match result {
        Ok(()) => ("synced", None, None),
        Err(CallError::Permanent(reason) | CallError::NotFound(reason)) => (
            "failed",
            Some(reason.clone()),
            Some(Failure {
                scope,
                kind: FailureKind::Permanent,
                reason,
            }),
        ),
        Err(CallError::Retriable(reason)) => {
            let failure = Some(Failure {
                scope,
                kind: FailureKind::Retriable,
                reason: reason.clone(),
            });
            if message.last_attempt {
                ("failed", Some(reason), failure)
            } else {
                ("", None, failure)
            }
        }
        Err(CallError::RateLimited { retry_in }) => {
            let reason = format!("{destination} rate limited for {retry_in:?}");
            (
                "",
                None,
                Some(Failure {
                    scope,
                    kind: FailureKind::RateLimited { retry_in },
                    reason,
                }),
            )
        }
    };
    if !status.is_empty() {
        let synced = ContactSynced {
            contact_id: contact_id.to_owned(),
            destination: destination.to_owned(),
            operation: operation.to_owned(),
            status: status.to_owned(),
            error,
            source_message_id: message.message_id.clone(),
        };
        let id = format!("{}:{destination}", message.message_id);
        match Outgoing::json("contact.synced", id, message.correlation_id.clone(), &synced) {
            Ok(result) => outcome.results.push(result),
            Err(error) => outcome.failures.push(Failure {
                scope: vec![destination.to_owned()],
                kind: FailureKind::Permanent,
                reason: format!("cannot encode contact.synced: {error}"),
            }),
        }
    }
    if let Some(failure) = failure {
        outcome.failures.push(failure);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect()
    }

    fn check(existing: &[(&str, &str)], new_date: &str) -> BTreeMap<String, Value> {
        let mut properties = props(&[("firstPurchaseDate", new_date), ("lastPurchaseDate", new_date)]);
        let (first, last) = ("firstPurchaseDate".to_owned(), "lastPurchaseDate".to_owned());
        purchase_dates(&mut properties, &props(existing), Some(&first), Some(&last));
        properties
    }

    #[test]
    fn first_order_sets_both_dates() {
        assert_eq!(
            check(&[], "2026-11-21"),
            props(&[("firstPurchaseDate", "2026-11-21"), ("lastPurchaseDate", "2026-11-21")])
        );
    }

    #[test]
    fn later_order_moves_only_the_last_date() {
        let existing = [("firstPurchaseDate", "2026-01-01"), ("lastPurchaseDate", "2026-01-01")];
        assert_eq!(
            check(&existing, "2026-11-21"),
            props(&[("lastPurchaseDate", "2026-11-21")])
        );
    }

    #[test]
    fn late_arriving_order_between_first_and_last_changes_nothing() {
        let existing = [("firstPurchaseDate", "2026-01-01"), ("lastPurchaseDate", "2026-12-01")];
        assert_eq!(check(&existing, "2026-11-21"), props(&[]));
    }

    #[test]
    fn late_arriving_order_older_than_the_stored_first_moves_it_earlier() {
        let existing = [("firstPurchaseDate", "2026-03-01"), ("lastPurchaseDate", "2026-11-21")];
        assert_eq!(
            check(&existing, "2026-01-15"),
            props(&[("firstPurchaseDate", "2026-01-15")])
        );
    }

    #[test]
    fn repeated_order_sends_no_dates() {
        let existing = [("firstPurchaseDate", "2026-03-01"), ("lastPurchaseDate", "2026-03-01")];
        assert_eq!(check(&existing, "2026-03-01"), props(&[]));
    }
}
