//! Topics published by `inbound` from vendor webhooks, callbacks and pulls.
//!
//! - `contact.bounced`: a bounce pulled from Spotler (`GET /contact/bounces/list`).
//! - `contact.updated`: a changed contact pulled from Spotler (`GET /contact/updates/list`),
//!   unsubscribes included.
//! - `contact.consent.changed`: SALESmanago's opt-in / opt-out callback.
//!
//! `inbound` also publishes `loyalty.subscription.changed` (Ecomail's list webhook) and
//! `voucher.redeemed` (Voucherify's webhooks). Their schemas belong to the loyalty and voucher
//! families, whose payload types only deserialize (their consumers read them); the
//! [`SubscriptionChangedBody`] and [`VoucherEventBody`] here are the publishing side, and
//! serialize to exactly those schemas (absent optional fields are omitted, never `null`).
//!
//! Every type here that can hold an e-mail address prints it as `<redacted>` in `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::catalog::MessageSpec;
use crate::loyalty::SubscriptionStatus;
use crate::voucher::{CustomerEvent, Metadata};

/// The message types of this family.
pub(crate) const SPECS: &[MessageSpec] = &[
    crate::spec!("contact.bounced", 1, Result),
    crate::spec!("contact.updated", 1, Result),
    crate::spec!("contact.consent.changed", 1, Result),
];

/// What `Debug` shows instead of an e-mail address.
const REDACTED: &str = "<redacted>";

fn redact(email: Option<&String>) -> Option<&'static str> {
    email.map(|_| REDACTED)
}

/// The provider a pulled contact change comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeSource {
    /// Spotler Mail+.
    Spotler,
}

/// The provider a consent change comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentSource {
    /// SALESmanago.
    Salesmanago,
}

/// How a mailing bounced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceType {
    /// Permanently undeliverable (Spotler `HARDBOUNCE`).
    Hard,
    /// A temporary failure (Spotler `SOFTBOUNCE`).
    Soft,
}

/// `contact.bounced` v1.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactBounced {
    /// Who reported it.
    pub source: ChangeSource,
    /// The contact's external id (Spotler `externalId`).
    pub contact_id: String,
    /// The address that bounced, when known. Personal data: never log it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Hard or soft.
    pub bounce_type: BounceType,
    /// When it bounced.
    #[serde(with = "time::serde::rfc3339")]
    pub bounced_at: OffsetDateTime,
    /// Spotler's `encryptedActId` (the mailing action), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailing_ref: Option<String>,
}

impl fmt::Debug for ContactBounced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContactBounced")
            .field("source", &self.source)
            .field("contact_id", &self.contact_id)
            .field("email", &redact(self.email.as_ref()))
            .field("bounce_type", &self.bounce_type)
            .field("bounced_at", &self.bounced_at)
            .field("mailing_ref", &self.mailing_ref)
            .finish()
    }
}

/// One Spotler permission bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// The bit number.
    pub bit: u32,
    /// Whether it is enabled.
    pub enabled: bool,
}

/// `contact.updated` v1.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactUpdated {
    /// Who reported it.
    pub source: ChangeSource,
    /// The contact's external id (Spotler `externalId`).
    pub contact_id: String,
    /// The address after the change, if set. Personal data: never log it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// When the contact last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
    /// Whether the e-mail channel is on (false after an unsubscribe), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribed: Option<bool>,
    /// Channel switches by lowercase channel name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<String, bool>,
    /// Permission bits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<Permission>,
    /// Other properties by Spotler name: scalars or lists of scalars. May hold personal data.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, serde_json::Value>,
}

impl fmt::Debug for ContactUpdated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&String> = self.properties.keys().collect();
        f.debug_struct("ContactUpdated")
            .field("source", &self.source)
            .field("contact_id", &self.contact_id)
            .field("email", &redact(self.email.as_ref()))
            .field("changed_at", &self.changed_at)
            .field("subscribed", &self.subscribed)
            .field("channels", &self.channels)
            .field("permissions", &self.permissions)
            .field("properties (names)", &names)
            .finish()
    }
}

/// Given or withdrawn consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    /// The contact confirmed the subscription.
    OptIn,
    /// The contact unsubscribed.
    OptOut,
}

impl Consent {
    /// The wire name (`opt_in`, `opt_out`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptIn => "opt_in",
            Self::OptOut => "opt_out",
        }
    }
}

/// The channel a consent is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentChannel {
    /// E-mail marketing.
    Email,
}

/// `contact.consent.changed` v1.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactConsentChanged {
    /// Who reported it.
    pub source: ConsentSource,
    /// The address. Personal data: never log it.
    pub email: String,
    /// Given or withdrawn.
    pub consent: Consent,
    /// The channel.
    pub channel: ConsentChannel,
    /// When inbound received the callback.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

impl fmt::Debug for ContactConsentChanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContactConsentChanged")
            .field("source", &self.source)
            .field("email", &REDACTED)
            .field("consent", &self.consent)
            .field("channel", &self.channel)
            .field("occurred_at", &self.occurred_at)
            .finish()
    }
}

/// The publishing side of `loyalty.subscription.changed` v1 (read by
/// [`crate::loyalty::SubscriptionChanged`]).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionChangedBody {
    /// The subscriber. Personal data: never log it.
    pub email: String,
    /// Joined or left.
    pub status: SubscriptionStatus,
    /// The Ecomail list.
    pub list_id: u64,
    /// When it happened or, since Ecomail's payload has no time, was received.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The webhook delivery id, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

impl fmt::Debug for SubscriptionChangedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionChangedBody")
            .field("email", &REDACTED)
            .field("status", &self.status)
            .field("list_id", &self.list_id)
            .field("occurred_at", &self.occurred_at)
            .field("event_id", &self.event_id)
            .finish()
    }
}

/// The publishing side of `voucher.redeemed` v1 (read by [`crate::voucher::VoucherRedeemed`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoucherEventBody {
    /// Which customer event.
    pub event: CustomerEvent,
    /// Voucherify event id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Customer source id.
    pub customer_source_id: String,
    /// Voucherify customer id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Voucher code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voucher_code: Option<String>,
    /// Campaign name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Order id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Order amount (major units).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    /// Discount (major units).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount: Option<f64>,
    /// ISO 4217 currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Loyalty points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
    /// Failure code of a `*.failed` event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// Extra properties (scalars).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: Metadata,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Schemas;
    use crate::loyalty::SubscriptionChanged;
    use crate::testing::check_examples;
    use crate::voucher::VoucherRedeemed;

    fn schemas() -> Schemas {
        Schemas::load(crate::DEFAULT_MAX_BODY_BYTES).unwrap_or_else(|e| panic!("{e}"))
    }

    fn check<T: Serialize>(schemas: &Schemas, kind: &str, value: &T) -> serde_json::Value {
        let body = serde_json::to_vec(value).unwrap_or_default();
        schemas
            .check(kind, &body)
            .unwrap_or_else(|e| panic!("{kind} does not validate: {e}"))
    }

    #[test]
    fn every_example_validates_and_deserializes() {
        check_examples::<ContactBounced>("contact.bounced");
        check_examples::<ContactUpdated>("contact.updated");
        check_examples::<ContactConsentChanged>("contact.consent.changed");
    }

    #[test]
    fn bodies_serialize_to_valid_messages_and_round_trip() {
        let schemas = schemas();
        let at = OffsetDateTime::UNIX_EPOCH;
        let bounced = ContactBounced {
            source: ChangeSource::Spotler,
            contact_id: "c-1".into(),
            email: None,
            bounce_type: BounceType::Soft,
            bounced_at: at,
            mailing_ref: Some("act".into()),
        };
        let value = check(&schemas, "contact.bounced", &bounced);
        assert_eq!(serde_json::from_value::<ContactBounced>(value).ok(), Some(bounced));

        let updated = ContactUpdated {
            source: ChangeSource::Spotler,
            contact_id: "c-2".into(),
            email: Some("a@example.com".into()),
            changed_at: at,
            subscribed: Some(false),
            channels: [("email".to_owned(), false)].into_iter().collect(),
            permissions: vec![Permission { bit: 1, enabled: false }],
            properties: [("firstName".to_owned(), serde_json::json!("Ann"))]
                .into_iter()
                .collect(),
        };
        let value = check(&schemas, "contact.updated", &updated);
        assert_eq!(serde_json::from_value::<ContactUpdated>(value).ok(), Some(updated));

        let consent = ContactConsentChanged {
            source: ConsentSource::Salesmanago,
            email: "a@example.com".into(),
            consent: Consent::OptOut,
            channel: ConsentChannel::Email,
            occurred_at: at,
        };
        let value = check(&schemas, "contact.consent.changed", &consent);
        assert_eq!(
            serde_json::from_value::<ContactConsentChanged>(value).ok(),
            Some(consent)
        );
    }

    #[test]
    fn publishing_bodies_match_the_consumer_schemas() {
        let schemas = schemas();
        let subscription = SubscriptionChangedBody {
            email: "a@example.com".into(),
            status: SubscriptionStatus::Unsubscribed,
            list_id: 7,
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            event_id: None,
        };
        let value = check(&schemas, "loyalty.subscription.changed", &subscription);
        assert!(value.get("event_id").is_none(), "absent fields are omitted, not null");
        let read = serde_json::from_value::<SubscriptionChanged>(value).ok();
        assert_eq!(
            read.map(|r| (r.list_id, r.status)),
            Some((7, SubscriptionStatus::Unsubscribed))
        );

        for event in CustomerEvent::ALL {
            let body = VoucherEventBody {
                event,
                event_id: Some("evcus_1".into()),
                customer_source_id: "c-1".into(),
                customer_id: None,
                voucher_code: Some("CODE".into()),
                campaign: None,
                order_id: None,
                amount: Some(120.5),
                discount: None,
                currency: None,
                points: None,
                failure_reason: None,
                occurred_at: OffsetDateTime::UNIX_EPOCH,
                metadata: Metadata::new(),
            };
            let value = check(&schemas, "voucher.redeemed", &body);
            let read = serde_json::from_value::<VoucherRedeemed>(value).ok();
            assert_eq!(read.map(|r| r.event), Some(event));
        }
    }

    #[test]
    fn invalid_bodies_are_rejected() {
        let schemas = schemas();
        let cases = [
            (
                "contact.bounced",
                r#"{"source":"spotler","contact_id":"c","bounce_type":"HARDBOUNCE","bounced_at":"2026-01-01T00:00:00Z"}"#,
            ),
            (
                "contact.bounced",
                r#"{"source":"ecomail","contact_id":"c","bounce_type":"hard","bounced_at":"2026-01-01T00:00:00Z"}"#,
            ),
            (
                "contact.updated",
                r#"{"source":"spotler","contact_id":"c","changed_at":"2026-01-01T00:00:00Z","properties":{"x":{"nested":1}}}"#,
            ),
            (
                "contact.consent.changed",
                r#"{"source":"salesmanago","email":"not-an-address","consent":"opt_in","channel":"email","occurred_at":"2026-01-01T00:00:00Z"}"#,
            ),
            (
                "contact.consent.changed",
                r#"{"source":"salesmanago","email":"a@example.com","consent":"maybe","channel":"email","occurred_at":"2026-01-01T00:00:00Z"}"#,
            ),
        ];
        for (kind, body) in cases {
            assert!(
                schemas.check(kind, body.as_bytes()).is_err(),
                "{kind}: {body} must be invalid"
            );
        }
    }

    #[test]
    fn debug_never_shows_addresses() {
        let consent = ContactConsentChanged {
            source: ConsentSource::Salesmanago,
            email: "jana@example.com".into(),
            consent: Consent::OptIn,
            channel: ConsentChannel::Email,
            occurred_at: OffsetDateTime::UNIX_EPOCH,
        };
        let subscription = SubscriptionChangedBody {
            email: "jana@example.com".into(),
            status: SubscriptionStatus::Subscribed,
            list_id: 1,
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            event_id: None,
        };
        let bounced = ContactBounced {
            source: ChangeSource::Spotler,
            contact_id: "c".into(),
            email: Some("jana@example.com".into()),
            bounce_type: BounceType::Hard,
            bounced_at: OffsetDateTime::UNIX_EPOCH,
            mailing_ref: None,
        };
        for shown in [
            format!("{consent:?}"),
            format!("{subscription:?}"),
            format!("{bounced:?}"),
        ] {
            assert!(!shown.contains("jana@"), "{shown}");
        }
    }
}
