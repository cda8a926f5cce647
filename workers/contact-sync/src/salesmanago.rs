//! SALESmanago: contact upserts (name, phone, address, language code, mapped properties,
//! consent forced from the consent permission, the newsletter tag added or removed with it),
//! sign-ups (opt-in and the newsletter tag) and shop events (event tags, then the external
//! event).
//!
//! External events are not idempotent at SALESmanago, so each one is recorded in the ledger
//! under the message id once SALESmanago accepted it: a redelivery, a retry of an earlier
//! failure or a replay of the message does not add it again.

use std::collections::BTreeMap;

use messages::contact::{ContactChanged, ContactSubscribed, ShopEvent, ShopEventType};
use mq::Incoming;
use provider_salesmanago::{Address, Consent, ContactUpsert, EventType, ExternalEvent, SalesmanagoClient};
use serde_json::Value;

use crate::fields::{full_name, language_code, source_value};
use crate::handler::{ContactSync, DestinationResult};
use crate::mapping::SalesmanagoMapping;

/// The ledger effect of a SALESmanago external event.
const EVENT_EFFECT: &str = "salesmanago:event";

/// A non-empty tag.
fn tag(name: &str) -> Option<String> {
    (!name.trim().is_empty()).then(|| name.trim().to_owned())
}

/// SALESmanago's external event type of a shop event; `None` for a registration (a tag only).
fn event_type(kind: ShopEventType) -> Option<EventType> {
    Some(match kind {
        ShopEventType::Purchase => EventType::Purchase,
        ShopEventType::Cart => EventType::Cart,
        ShopEventType::Cancellation => EventType::Cancellation,
        ShopEventType::Other => EventType::Other,
        ShopEventType::Survey => EventType::Survey,
        ShopEventType::Login => EventType::Login,
        ShopEventType::Visit => EventType::Visit,
        ShopEventType::Return => EventType::Return,
        ShopEventType::Offer => EventType::Offer,
        ShopEventType::Registration => return None,
    })
}

/// The tags a shop event adds.
fn event_tags(mapping: &SalesmanagoMapping, event: &ShopEvent) -> Vec<String> {
    let tags = &mapping.tags;
    let name = match (event.kind, event.logged_in) {
        (ShopEventType::Registration, _) => Some(&tags.registration),
        (ShopEventType::Purchase, Some(true)) => Some(&tags.purchase_logged_in),
        (ShopEventType::Purchase, Some(false)) => Some(&tags.purchase_guest),
        _ => None,
    };
    name.and_then(|n| tag(n)).into_iter().collect()
}

/// Consent and the newsletter tag from the consent permission, if the message mentions it.
fn consent(mapping: &SalesmanagoMapping, upsert: &mut ContactUpsert, permissions: &BTreeMap<String, bool>) {
    if mapping.consent_permission.is_empty() {
        return;
    }
    let newsletter = tag(&mapping.tags.newsletter);
    match permissions.get(&mapping.consent_permission) {
        Some(true) => {
            upsert.consent = Some(Consent::OptIn);
            upsert.tags.extend(newsletter);
        }
        Some(false) => {
            upsert.consent = Some(Consent::OptOut);
            upsert.remove_tags.extend(newsletter);
        }
        None => {}
    }
}

impl ContactSync {
    pub(crate) async fn upsert_salesmanago(
        &self,
        client: &SalesmanagoClient,
        contact: &ContactChanged,
    ) -> DestinationResult {
        let mapping = &self.mapping.salesmanago;
        let address = (contact.city.is_some() || contact.country.is_some()).then(|| Address {
            city: contact.city.clone(),
            country: contact.country.clone(),
            ..Address::default()
        });
        let mut upsert = ContactUpsert {
            email: contact.email.clone(),
            name: full_name(contact.first_name.as_deref(), contact.last_name.as_deref()),
            phone: contact.phone.clone(),
            external_id: Some(contact.contact_id.clone()),
            address,
            lang: language_code(contact.language.as_deref()),
            ..ContactUpsert::default()
        };
        for (source, target) in &mapping.properties {
            // SALESmanago properties are scalars; anything else is left out.
            if let Some(value @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) = source_value(contact, source)
            {
                upsert.properties.insert(target.clone(), value);
            }
        }
        consent(mapping, &mut upsert, &contact.permissions);
        client.upsert_contact(&upsert).await.map(|_| None)
    }

    pub(crate) async fn subscribe_salesmanago(
        &self,
        client: &SalesmanagoClient,
        subscribed: &ContactSubscribed,
    ) -> DestinationResult {
        let mut upsert = ContactUpsert {
            email: subscribed.email.clone(),
            name: full_name(subscribed.first_name.as_deref(), subscribed.last_name.as_deref()),
            external_id: subscribed.contact_id.clone(),
            lang: language_code(subscribed.language.as_deref()),
            ..ContactUpsert::default()
        };
        consent(&self.mapping.salesmanago, &mut upsert, &subscribed.permissions);
        client.upsert_contact(&upsert).await.map(|_| None)
    }

    /// Tags first (an idempotent upsert), then the external event unless the ledger says this
    /// message already added it. Returns the operation reported and the result.
    pub(crate) async fn salesmanago_event(
        &self,
        client: &SalesmanagoClient,
        message: &Incoming,
        event: &ShopEvent,
    ) -> (&'static str, DestinationResult) {
        let tags = event_tags(&self.mapping.salesmanago, event);
        if !tags.is_empty() {
            let upsert = ContactUpsert {
                email: event.email.clone(),
                external_id: event.contact_id.clone(),
                tags,
                ..ContactUpsert::default()
            };
            if let Err(error) = client.upsert_contact(&upsert).await {
                return ("event", Err(error));
            }
        }
        let Some(kind) = event_type(event.kind) else {
            return ("upsert", Ok(None));
        };
        if self.ledger.is_done(&message.message_id, EVENT_EFFECT).await {
            tracing::info!(
                message_id = %message.message_id,
                "SALESmanago already has this external event; not adding it again."
            );
            return ("event", Ok(None));
        }
        let external = ExternalEvent {
            email: event.email.clone(),
            kind,
            date: event.occurred_at,
            description: event.description.clone(),
            products: event.products.clone(),
            location: event.location.clone(),
            value: event.value,
            details: event.details.clone(),
            external_id: Some(event.event_id.clone()),
            shop_domain: event.shop_domain.clone(),
        };
        match client.add_external_event(&external).await {
            Ok(_) => {
                self.ledger.mark_done(&message.message_id, EVENT_EFFECT).await;
                ("event", Ok(None))
            }
            Err(error) => ("event", Err(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;

    fn event(kind: ShopEventType, logged_in: Option<bool>) -> ShopEvent {
        ShopEvent {
            event_id: "e-1".into(),
            kind,
            email: "a@example.com".into(),
            contact_id: None,
            logged_in,
            value: None,
            currency: None,
            products: Vec::new(),
            description: None,
            location: None,
            details: Vec::new(),
            shop_domain: None,
            occurred_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn purchases_and_registrations_carry_their_tags() {
        let mapping = SalesmanagoMapping::default();
        assert_eq!(
            event_tags(&mapping, &event(ShopEventType::Purchase, Some(true))),
            ["PURCHASE_LOGGED_IN"]
        );
        assert_eq!(
            event_tags(&mapping, &event(ShopEventType::Purchase, Some(false))),
            ["PURCHASE_GUEST"]
        );
        assert!(event_tags(&mapping, &event(ShopEventType::Purchase, None)).is_empty());
        assert_eq!(
            event_tags(&mapping, &event(ShopEventType::Registration, None)),
            ["REGISTRATION"]
        );
        assert!(event_tags(&mapping, &event(ShopEventType::Cart, None)).is_empty());
        let mut silent = SalesmanagoMapping::default();
        silent.tags.registration = String::new();
        assert!(event_tags(&silent, &event(ShopEventType::Registration, None)).is_empty());
    }

    #[test]
    fn every_shop_event_but_registration_is_an_external_event() {
        assert_eq!(event_type(ShopEventType::Survey), Some(EventType::Survey));
        assert_eq!(event_type(ShopEventType::Return), Some(EventType::Return));
        assert_eq!(event_type(ShopEventType::Registration), None);
    }

    #[test]
    fn the_consent_permission_forces_opt_in_or_out_with_the_newsletter_tag() {
        let mapping = SalesmanagoMapping::default();
        let mut upsert = ContactUpsert::default();
        let granted: BTreeMap<String, bool> = [("newsletter".to_owned(), true)].into_iter().collect();
        consent(&mapping, &mut upsert, &granted);
        assert_eq!(upsert.consent, Some(Consent::OptIn));
        assert_eq!(upsert.tags, ["NEWSLETTER"]);
        let mut upsert = ContactUpsert::default();
        let withdrawn: BTreeMap<String, bool> = [("newsletter".to_owned(), false)].into_iter().collect();
        consent(&mapping, &mut upsert, &withdrawn);
        assert_eq!(upsert.consent, Some(Consent::OptOut));
        assert_eq!(upsert.remove_tags, ["NEWSLETTER"]);
        let mut upsert = ContactUpsert::default();
        consent(&mapping, &mut upsert, &BTreeMap::new());
        assert_eq!(upsert.consent, None);
    }
}
