//! Payloads of the contact topics: `contact.changed`, `contact.deleted`, `contact.deactivated`,
//! `contact.subscribed` (a sign-up form), `shop.event` (what a customer did in the shop, for
//! SALESmanago external events), `segment.exported` (a static segment for a Spotler temporary
//! list) and `contact.lookup.requested` (search by property), and their results
//! `contact.synced` and `contact.lookup.result`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::catalog::MessageSpec;

/// The contact message types.
pub(crate) const SPECS: &[MessageSpec] = &[
    crate::spec!("contact.changed", 1, Input),
    crate::spec!("contact.deleted", 1, Input),
    crate::spec!("contact.deactivated", 1, Input),
    crate::spec!("contact.subscribed", 1, Input),
    crate::spec!("shop.event", 1, Input),
    crate::spec!("segment.exported", 1, Input),
    crate::spec!("contact.lookup.requested", 1, Input),
    crate::spec!("contact.synced", 1, Result),
    crate::spec!("contact.lookup.result", 1, Result),
];

/// `contact.changed` v1. Serializable so tools (`switchyard import`) can build it; optional
/// fields that are unset are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactChanged {
    /// Stable id in the source system (Spotler `externalId`).
    pub contact_id: String,
    /// E-mail address. Personal data: never log it.
    pub email: String,
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// ISO 3166 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Language, or the whole multilingual store structure (`cs - eshop-cz - b2c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Mailing permissions by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub permissions: BTreeMap<String, bool>,
    /// The order that caused this change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
    /// Free-form attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// When the change happened.
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
}

/// An order placed by the contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Order id.
    pub order_id: String,
    /// When it was placed; drives first/last purchase dates.
    #[serde(with = "time::serde::rfc3339")]
    pub placed_at: OffsetDateTime,
    /// Order total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    /// ISO 4217 currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// `contact.deleted` v1.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ContactDeleted {
    /// Stable id in the source system.
    pub contact_id: String,
    /// When it was deleted.
    #[serde(with = "time::serde::rfc3339")]
    pub deleted_at: OffsetDateTime,
}

/// `contact.deactivated` v1.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ContactDeactivated {
    /// Stable id in the source system.
    pub contact_id: String,
    /// Why (free text, no personal data).
    pub reason: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub deactivated_at: OffsetDateTime,
}

/// `contact.synced` v1: the outcome at one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactSynced {
    /// Stable id in the source system; `None` when the input had none (a sign-up form, a
    /// guest's shop event, a segment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// `spotler`, `ecomail`, `salesmanago` or `voucherify`.
    pub destination: String,
    /// `upsert`, `anonymize`, `inactivate`, `subscribe`, `event`, `templist_create`,
    /// `templist_add` or `templist_delete`.
    pub operation: String,
    /// `synced` or `failed`.
    pub status: String,
    /// Why it failed, without personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The segment (`segment.exported` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<String>,
    /// Voucherify only: metadata keys left out by the metadata schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_dropped: Option<u32>,
    /// The input message.
    pub source_message_id: String,
}

/// `contact.subscribed` v1: a sign-up through a subscription form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ContactSubscribed {
    /// E-mail address. Personal data: never log it.
    pub email: String,
    /// Permissions the form grants (or withholds), by name; at least one.
    pub permissions: BTreeMap<String, bool>,
    /// The source system's contact id, if known.
    pub contact_id: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Language, or the whole multilingual store structure.
    pub language: Option<String>,
    /// Which form.
    pub source: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub subscribed_at: OffsetDateTime,
}

/// The kind of a [`ShopEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShopEventType {
    /// An order was placed.
    Purchase,
    /// The cart was visited.
    Cart,
    /// An order was cancelled in the customer zone.
    Cancellation,
    /// Anything else (e.g. a newsletter sign-up on the home page).
    Other,
    /// A question was sent from the contact page.
    Survey,
    /// The customer logged in.
    Login,
    /// The customer visited the shop.
    Visit,
    /// Goods were returned.
    Return,
    /// A quotation was requested.
    Offer,
    /// The customer registered an account (a tag only; no external event).
    Registration,
}

impl ShopEventType {
    /// The name used in messages (`purchase`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchase => "purchase",
            Self::Cart => "cart",
            Self::Cancellation => "cancellation",
            Self::Other => "other",
            Self::Survey => "survey",
            Self::Login => "login",
            Self::Visit => "visit",
            Self::Return => "return",
            Self::Offer => "offer",
            Self::Registration => "registration",
        }
    }
}

/// `shop.event` v1: something a customer did in the web shop.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ShopEvent {
    /// The shop's id of the event.
    pub event_id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: ShopEventType,
    /// E-mail address. Personal data: never log it.
    pub email: String,
    /// The source system's contact id, if any.
    pub contact_id: Option<String>,
    /// Purchase only: whether the customer was logged in.
    pub logged_in: Option<bool>,
    /// Event value (e.g. the order total).
    pub value: Option<f64>,
    /// ISO 4217 currency of `value`.
    pub currency: Option<String>,
    /// Product ids.
    #[serde(default)]
    pub products: Vec<String>,
    /// Description.
    pub description: Option<String>,
    /// Where it happened.
    pub location: Option<String>,
    /// Up to 20 free-text details.
    #[serde(default)]
    pub details: Vec<String>,
    /// The shop's domain.
    pub shop_domain: Option<String>,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

/// What to do with a segment's temporary list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentAction {
    /// Create the list with its contacts.
    Create,
    /// Add contacts to the list.
    Add,
    /// Delete the list.
    Delete,
}

/// `segment.exported` v1: a static segment for a Spotler temporary list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SegmentExported {
    /// Stable id of the segment in the source system.
    pub segment_id: String,
    /// What to do.
    pub action: SegmentAction,
    /// The title marketers see (create).
    pub name: Option<String>,
    /// Contact ids of the segment (create) or to add (add).
    #[serde(default)]
    pub contact_ids: Vec<String>,
    /// When it was exported.
    #[serde(with = "time::serde::rfc3339")]
    pub exported_at: OffsetDateTime,
}

/// `contact.lookup.requested` v1: search contacts by a property. Its `Debug` hides the value.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct ContactLookupRequested {
    /// Spotler property name.
    pub property: String,
    /// The value to match. May be personal data: never log it.
    pub value: String,
    /// The requester's own id, echoed in the result.
    pub request_id: Option<String>,
}

impl std::fmt::Debug for ContactLookupRequested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactLookupRequested")
            .field("property", &self.property)
            .field("value", &"<redacted>")
            .field("request_id", &self.request_id)
            .finish()
    }
}

/// `contact.lookup.result` v1: the answer to a lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactLookupResult {
    /// The request message.
    pub source_message_id: String,
    /// The requester's own id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The property searched.
    pub property: String,
    /// Whether any contact matched.
    pub found: bool,
    /// The matching contact ids (at most 100).
    pub contact_ids: Vec<String>,
    /// More contacts matched than `contact_ids` holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Why the search failed (no personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::testing::{check_examples, examples};

    #[test]
    fn every_example_validates_and_deserializes() {
        check_examples::<ContactChanged>("contact.changed");
        check_examples::<ContactDeleted>("contact.deleted");
        check_examples::<ContactDeactivated>("contact.deactivated");
        check_examples::<ContactSynced>("contact.synced");
        check_examples::<ContactSubscribed>("contact.subscribed");
        check_examples::<ShopEvent>("shop.event");
        check_examples::<SegmentExported>("segment.exported");
        check_examples::<ContactLookupRequested>("contact.lookup.requested");
        check_examples::<ContactLookupResult>("contact.lookup.result");
    }

    #[test]
    fn segment_rules_need_a_name_to_create_and_contacts_to_add() {
        let schemas = crate::Schemas::load(crate::DEFAULT_MAX_BODY_BYTES).unwrap_or_else(|e| panic!("{e}"));
        let check = |body: &str| schemas.check("segment.exported", body.as_bytes()).map(drop);
        assert!(check(r#"{"segment_id":"s","action":"create","exported_at":"2026-01-01T00:00:00Z"}"#).is_err());
        assert!(
            check(r#"{"segment_id":"s","action":"add","contact_ids":[],"exported_at":"2026-01-01T00:00:00Z"}"#)
                .is_err()
        );
        assert!(check(r#"{"segment_id":"s","action":"delete","exported_at":"2026-01-01T00:00:00Z"}"#).is_ok());
    }

    #[test]
    fn a_built_contact_changed_validates() {
        let schemas = crate::Schemas::load(crate::DEFAULT_MAX_BODY_BYTES).unwrap_or_else(|e| panic!("{e}"));
        let contact = ContactChanged {
            contact_id: "c-1".into(),
            email: "a@example.com".into(),
            first_name: Some("Ann".into()),
            last_name: None,
            phone: None,
            city: None,
            country: None,
            language: None,
            permissions: BTreeMap::new(),
            order: None,
            attributes: BTreeMap::new(),
            changed_at: OffsetDateTime::UNIX_EPOCH,
        };
        let body = serde_json::to_vec(&contact).unwrap_or_default();
        assert!(schemas.check("contact.changed", &body).is_ok());
    }

    #[test]
    fn lookup_debug_hides_the_value() {
        let request = ContactLookupRequested {
            property: "discountCode".into(),
            value: "SECRET-1".into(),
            request_id: None,
        };
        assert!(!format!("{request:?}").contains("SECRET-1"));
    }

    #[test]
    fn every_catalog_entry_has_examples() {
        for spec in crate::CATALOG.iter() {
            assert!(!examples(spec.kind).is_empty());
        }
    }

    #[test]
    fn invalid_samples_are_rejected() {
        let schemas = crate::Schemas::load(crate::DEFAULT_MAX_BODY_BYTES).unwrap_or_else(|e| panic!("{e}"));
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/invalid");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(kind) = name
                .strip_suffix(".json")
                .and_then(|s| s.rsplit_once('.'))
                .map(|(k, _)| k.to_owned())
            else {
                continue;
            };
            let body = std::fs::read(entry.path()).unwrap_or_default();
            assert!(schemas.check(&kind, &body).is_err(), "{name} must be invalid");
            n += 1;
        }
        assert!(n >= 3);
    }
}
