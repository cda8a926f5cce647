//! Pulled Spotler records → `contact.bounced` and `contact.updated`.
//!
//! - A bounce's `type` `HARDBOUNCE` / `SOFTBOUNCE` becomes `hard` / `soft`; any other type is
//!   skipped (the schema knows only these two). Its `date` is `bounced_at`.
//! - A changed contact carries its properties after the change: `email` gets its own field
//!   (when it looks like an address), `permissions` becomes the list of bits, the `EMAIL`
//!   channel becomes `subscribed` (false after an unsubscribe), every channel goes into
//!   `channels`, and the remaining properties are kept when their names are valid and their
//!   values are scalars or lists of scalars (others are dropped, named in a debug log).
//! - A record without a parseable date takes the end of the pulled window.

use std::collections::BTreeMap;

use messages::Outgoing;
use messages::inbound::{BounceType, ChangeSource, ContactBounced, ContactUpdated, Permission};
use provider_spotler::{Bounce, BounceKind, ChangedContact};
use serde_json::Value;
use time::OffsetDateTime;

use super::{digest_id, plausible_email};

/// The message type of a bounce.
pub const BOUNCED: &str = "contact.bounced";
/// The message type of a changed contact.
pub const UPDATED: &str = "contact.updated";
/// The most properties the schema allows.
const MAX_PROPERTIES: usize = 128;
/// The longest list value the schema allows.
const MAX_LIST: usize = 64;

fn email_of(contact: &ChangedContact) -> Option<String> {
    contact
        .properties
        .get("email")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|e| plausible_email(e))
        .map(str::to_owned)
}

fn valid_property_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn scalar(value: &Value) -> bool {
    matches!(
        value,
        Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null
    )
}

fn permissions(value: Option<&Value>) -> Vec<Permission> {
    value
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|entry| {
                    let bit = u32::try_from(entry.get("bit")?.as_u64()?).ok()?;
                    let enabled = entry.get("enabled")?.as_bool()?;
                    Some(Permission { bit, enabled })
                })
                .take(MAX_LIST)
                .collect()
        })
        .unwrap_or_default()
}

/// The `contact.bounced` message of `bounce`; `window_end` stands in for a missing date.
pub fn bounced(bounce: &Bounce, window_end: OffsetDateTime) -> Result<Outgoing, String> {
    let (bounce_type, type_text) = match &bounce.kind {
        BounceKind::Hard => (BounceType::Hard, "HARDBOUNCE"),
        BounceKind::Soft => (BounceType::Soft, "SOFTBOUNCE"),
        BounceKind::Other(_) => return Err("the bounce type is neither HARDBOUNCE nor SOFTBOUNCE".to_owned()),
    };
    let contact = &bounce.contact;
    let message_id = digest_id(
        "spotler-bounce",
        &[
            &contact.external_id,
            &bounce.date_raw,
            type_text,
            bounce.encrypted_act_id.as_deref().unwrap_or_default(),
        ],
    );
    let body = ContactBounced {
        source: ChangeSource::Spotler,
        contact_id: contact.external_id.clone(),
        email: email_of(contact),
        bounce_type,
        bounced_at: bounce.date.unwrap_or(window_end),
        mailing_ref: bounce.encrypted_act_id.clone(),
    };
    Outgoing::json(BOUNCED, message_id, None, &body).map_err(|e| format!("cannot encode the message: {e}"))
}

/// The `contact.updated` message of `contact`; `window_end` stands in for a missing
/// `lastChanged`.
pub fn updated(contact: &ChangedContact, window_end: OffsetDateTime) -> Result<Outgoing, String> {
    let mut properties = BTreeMap::new();
    let mut dropped = Vec::new();
    for (name, value) in &contact.properties {
        if name == "email" || name == "permissions" {
            continue;
        }
        let list_of_scalars = value
            .as_array()
            .is_some_and(|items| items.len() <= MAX_LIST && items.iter().all(scalar));
        if valid_property_name(name) && (scalar(value) || list_of_scalars) && properties.len() < MAX_PROPERTIES {
            properties.insert(name.clone(), value.clone());
        } else {
            dropped.push(name.as_str());
        }
    }
    if !dropped.is_empty() {
        tracing::debug!(
            contact_id = super::loggable_id(&contact.external_id),
            properties = ?dropped,
            "Dropped properties the contact.updated schema cannot carry."
        );
    }
    let channels: BTreeMap<String, bool> = contact
        .channels
        .iter()
        .map(|c| (c.name.to_ascii_lowercase(), c.value))
        .filter(|(name, _)| valid_property_name(name))
        .take(8)
        .collect();
    let identity = match &contact.last_changed_raw {
        Some(raw) => raw.clone(),
        // No date: the content identifies this state of the contact.
        None => serde_json::to_string(&(&contact.properties, &channels)).unwrap_or_default(),
    };
    let message_id = digest_id("spotler-update", &[&contact.external_id, &identity]);
    let body = ContactUpdated {
        source: ChangeSource::Spotler,
        contact_id: contact.external_id.clone(),
        email: email_of(contact),
        changed_at: contact.last_changed.unwrap_or(window_end),
        subscribed: channels.get("email").copied(),
        channels,
        permissions: permissions(contact.properties.get("permissions")),
        properties,
    };
    Outgoing::json(UPDATED, message_id, None, &body).map_err(|e| format!("cannot encode the message: {e}"))
}

#[cfg(test)]
mod tests {
    use provider_spotler::changes::Channel;
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    const END: OffsetDateTime = datetime!(2026-05-04 10:00:00 UTC);

    fn contact(properties: Value, channels: Vec<(&str, bool)>, last_changed: Option<&str>) -> ChangedContact {
        ChangedContact {
            external_id: "c-1".to_owned(),
            properties: properties
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            channels: channels
                .into_iter()
                .map(|(name, value)| Channel {
                    name: name.to_owned(),
                    value,
                })
                .collect(),
            last_changed_raw: last_changed.map(str::to_owned),
            last_changed: last_changed.and_then(provider_spotler::changes::parse_date),
        }
    }

    fn json_of(message: &Outgoing) -> Value {
        serde_json::from_slice(&message.body).unwrap_or_default()
    }

    #[test]
    fn bounces_map_type_date_and_address() {
        let bounce = Bounce {
            date_raw: "2026-05-04T09:00:00".to_owned(),
            date: Some(datetime!(2026-05-04 09:00:00 UTC)),
            kind: BounceKind::Hard,
            contact: contact(json!({"email": "jana@example.com"}), vec![], None),
            encrypted_act_id: Some("act".to_owned()),
        };
        let message = bounced(&bounce, END).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(message.kind, BOUNCED);
        let body = json_of(&message);
        assert_eq!(body["bounce_type"], "hard");
        assert_eq!(body["bounced_at"], "2026-05-04T09:00:00Z");
        assert_eq!(body["email"], "jana@example.com");
        assert_eq!(body["mailing_ref"], "act");
        assert_eq!(
            bounced(&bounce, END + time::Duration::hours(1))
                .ok()
                .map(|m| m.message_id),
            Some(message.message_id.clone()),
            "ids do not depend on the window"
        );
        let other = Bounce {
            kind: BounceKind::Other("SPAM".to_owned()),
            ..bounce.clone()
        };
        assert!(bounced(&other, END).is_err());
        let undated = Bounce {
            date_raw: String::new(),
            date: None,
            contact: contact(json!({"email": "not an address"}), vec![], None),
            ..bounce
        };
        let body = json_of(&bounced(&undated, END).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(body["bounced_at"], "2026-05-04T10:00:00Z");
        assert!(body.get("email").is_none());
    }

    #[test]
    fn updates_split_email_permissions_channels_and_properties() {
        let changed = contact(
            json!({
                "email": "jana@example.com",
                "firstName": "Jana",
                "interests": ["bikes", 2],
                "permissions": [{"bit": 1, "enabled": false}, {"bit": "x"}],
                "nested": {"a": 1},
                "bad name": "x",
            }),
            vec![("EMAIL", false), ("SMS", true)],
            Some("2026-05-04T09:30:00"),
        );
        let message = updated(&changed, END).unwrap_or_else(|e| panic!("{e}"));
        let body = json_of(&message);
        assert_eq!(body["email"], "jana@example.com");
        assert_eq!(body["subscribed"], false);
        assert_eq!(body["channels"], json!({"email": false, "sms": true}));
        assert_eq!(body["permissions"], json!([{"bit": 1, "enabled": false}]));
        assert_eq!(
            body["properties"],
            json!({"firstName": "Jana", "interests": ["bikes", 2]})
        );
        assert_eq!(body["changed_at"], "2026-05-04T09:30:00Z");
    }

    #[test]
    fn update_ids_follow_last_changed_or_content() {
        let a = contact(json!({"firstName": "A"}), vec![], Some("2026-05-04T09:30:00"));
        let b = contact(json!({"firstName": "B"}), vec![], Some("2026-05-04T09:31:00"));
        let id = |c: &ChangedContact| updated(c, END).map(|m| m.message_id).unwrap_or_default();
        assert_eq!(id(&a), id(&a.clone()));
        assert_ne!(id(&a), id(&b));
        let undated_a = contact(json!({"firstName": "A"}), vec![], None);
        let undated_b = contact(json!({"firstName": "B"}), vec![], None);
        assert_ne!(id(&undated_a), id(&undated_b));
        assert_eq!(
            id(&undated_a),
            updated(&undated_a, END + time::Duration::hours(2))
                .map(|m| m.message_id)
                .unwrap_or_default()
        );
    }
}
