//! Voucher topics (`voucher.*`, `bloomreach.*`): the Voucherify × Bloomreach flow.
//!
//! - `voucher.publish.requested` → `voucher.published`: publish a code of a campaign to a
//!   customer; the input's message id is the Voucherify publication `source_id`.
//! - `voucher.redeemed` → `voucher.event.forwarded`: every Voucherify customer event (the
//!   `event` field says which) forwarded to Bloomreach as a customer event.
//! - `bloomreach.customer.updated` / `bloomreach.event.exported` → `voucher.event.forwarded`:
//!   the Bloomreach → Voucherify direction through Voucherify's integration endpoints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::catalog::MessageSpec;

/// The message types of this family.
pub(crate) const SPECS: &[MessageSpec] = &[
    crate::spec!("voucher.publish.requested", 1, Input),
    crate::spec!("voucher.published", 1, Result),
    crate::spec!("voucher.redeemed", 1, Input),
    crate::spec!("voucher.event.forwarded", 1, Result),
    crate::spec!("bloomreach.customer.updated", 1, Input),
    crate::spec!("bloomreach.event.exported", 1, Input),
];

/// Scalar metadata values by key (the schemas allow strings, numbers, booleans and null).
pub type Metadata = BTreeMap<String, serde_json::Value>;

/// `voucher.publish.requested` v1.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VoucherPublishRequested {
    /// Campaign name (or id).
    pub campaign: String,
    /// The customer the code goes to.
    pub customer: PublishCustomer,
    /// Publication channel.
    pub channel: Option<String>,
    /// Publication metadata.
    #[serde(default)]
    pub metadata: Metadata,
}

/// The customer of a publication request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PublishCustomer {
    /// Customer id in the source system (Voucherify `source_id`).
    pub source_id: String,
    /// E-mail. Personal data: never log it.
    pub email: Option<String>,
    /// Name. Personal data: never log it.
    pub name: Option<String>,
}

/// `voucher.published` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherPublished {
    /// Voucherify publication id.
    pub publication_id: String,
    /// The voucher code.
    pub code: String,
    /// Campaign name.
    pub campaign: String,
    /// Customer source id.
    pub customer_source_id: String,
    /// The request's message id (also the publication `source_id`).
    pub source_message_id: String,
}

/// `voucher.redeemed` v1: one Voucherify customer event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VoucherRedeemed {
    /// Which customer event.
    pub event: CustomerEvent,
    /// Voucherify event id.
    pub event_id: Option<String>,
    /// Customer source id.
    pub customer_source_id: String,
    /// Voucherify customer id.
    pub customer_id: Option<String>,
    /// Voucher code.
    pub voucher_code: Option<String>,
    /// Campaign name.
    pub campaign: Option<String>,
    /// Order id.
    pub order_id: Option<String>,
    /// Order amount (major units).
    pub amount: Option<f64>,
    /// Discount (major units).
    pub discount: Option<f64>,
    /// ISO 4217 currency.
    pub currency: Option<String>,
    /// Loyalty points.
    pub points: Option<i64>,
    /// Failure code of a `*.failed` event.
    pub failure_reason: Option<String>,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// Extra properties.
    #[serde(default)]
    pub metadata: Metadata,
}

/// The Voucherify customer events `voucher.redeemed` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CustomerEvent {
    /// `redemption.succeeded`.
    #[serde(rename = "redemption.succeeded")]
    RedemptionSucceeded,
    /// `redemption.failed`.
    #[serde(rename = "redemption.failed")]
    RedemptionFailed,
    /// `redemption.rollback.succeeded`.
    #[serde(rename = "redemption.rollback.succeeded")]
    RedemptionRollbackSucceeded,
    /// `redemption.rollback.failed`.
    #[serde(rename = "redemption.rollback.failed")]
    RedemptionRollbackFailed,
    /// `publication.succeeded`.
    #[serde(rename = "publication.succeeded")]
    PublicationSucceeded,
    /// `publication.failed`.
    #[serde(rename = "publication.failed")]
    PublicationFailed,
    /// `rewarded`.
    #[serde(rename = "rewarded")]
    Rewarded,
    /// `rewarded.loyalty_points`.
    #[serde(rename = "rewarded.loyalty_points")]
    RewardedLoyaltyPoints,
    /// `validation.succeeded`.
    #[serde(rename = "validation.succeeded")]
    ValidationSucceeded,
    /// `validation.failed`.
    #[serde(rename = "validation.failed")]
    ValidationFailed,
}

impl CustomerEvent {
    /// Every customer event.
    pub const ALL: [Self; 10] = [
        Self::RedemptionSucceeded,
        Self::RedemptionFailed,
        Self::RedemptionRollbackSucceeded,
        Self::RedemptionRollbackFailed,
        Self::PublicationSucceeded,
        Self::PublicationFailed,
        Self::Rewarded,
        Self::RewardedLoyaltyPoints,
        Self::ValidationSucceeded,
        Self::ValidationFailed,
    ];

    /// The wire name (`redemption.succeeded`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RedemptionSucceeded => "redemption.succeeded",
            Self::RedemptionFailed => "redemption.failed",
            Self::RedemptionRollbackSucceeded => "redemption.rollback.succeeded",
            Self::RedemptionRollbackFailed => "redemption.rollback.failed",
            Self::PublicationSucceeded => "publication.succeeded",
            Self::PublicationFailed => "publication.failed",
            Self::Rewarded => "rewarded",
            Self::RewardedLoyaltyPoints => "rewarded.loyalty_points",
            Self::ValidationSucceeded => "validation.succeeded",
            Self::ValidationFailed => "validation.failed",
        }
    }
}

/// `voucher.event.forwarded` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherEventForwarded {
    /// `bloomreach` or `voucherify`.
    pub destination: String,
    /// `event` or `customer_update`.
    pub operation: String,
    /// The event name as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The customer's main hard id / source id.
    pub customer_id: String,
    /// Metadata keys not sent (Voucherify direction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_dropped: Option<MetadataDropped>,
    /// The input message.
    pub source_message_id: String,
}

/// Counts of metadata keys that were not sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataDropped {
    /// Keys the metadata schema does not define.
    pub undefined: u32,
    /// Keys whose value has another type than the schema defines.
    pub wrong_type: u32,
}

/// `bloomreach.customer.updated` v1.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BloomreachCustomerUpdated {
    /// Main hard id (Voucherify customer source id).
    pub customer_id: String,
    /// Name. Personal data.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// E-mail. Personal data: never log it.
    pub email: Option<String>,
    /// Phone. Personal data.
    pub phone: Option<String>,
    /// Birth date.
    #[serde(default, with = "date_opt")]
    pub birthdate: Option<Date>,
    /// Postal address.
    pub address: Option<Address>,
    /// Customer metadata.
    #[serde(default)]
    pub metadata: Metadata,
    /// When it changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A postal address (Voucherify's shape).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Address {
    /// City.
    pub city: Option<String>,
    /// State or region.
    pub state: Option<String>,
    /// First line.
    pub line_1: Option<String>,
    /// Second line.
    pub line_2: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
}

/// `bloomreach.event.exported` v1.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BloomreachEventExported {
    /// Event name.
    pub event: String,
    /// Main hard id (Voucherify customer source id).
    pub customer_id: String,
    /// Event metadata.
    #[serde(default)]
    pub metadata: Metadata,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

/// `YYYY-MM-DD` dates, optional.
mod date_opt {
    use serde::{Deserialize, Deserializer};
    use time::Date;
    use time::macros::format_description;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Date>, D::Error> {
        let Some(text) = Option::<String>::deserialize(deserializer)? else {
            return Ok(None);
        };
        Date::parse(&text, format_description!("[year]-[month]-[day]"))
            .map(Some)
            .map_err(|_| serde::de::Error::custom("expected a date as YYYY-MM-DD"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Schemas;
    use crate::testing::check_examples;

    #[test]
    fn every_example_validates_and_deserializes() {
        check_examples::<VoucherPublishRequested>("voucher.publish.requested");
        check_examples::<VoucherPublished>("voucher.published");
        check_examples::<VoucherRedeemed>("voucher.redeemed");
        check_examples::<VoucherEventForwarded>("voucher.event.forwarded");
        check_examples::<BloomreachCustomerUpdated>("bloomreach.customer.updated");
        check_examples::<BloomreachEventExported>("bloomreach.event.exported");
    }

    #[test]
    fn customer_event_names_match_the_schema_enum() {
        let schema: serde_json::Value = serde_json::from_str(
            SPECS
                .iter()
                .find(|s| s.kind == "voucher.redeemed")
                .map_or("{}", |s| s.schema),
        )
        .unwrap_or_default();
        let names: Vec<&str> = schema["properties"]["event"]["enum"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
            .unwrap_or_default();
        let ours: Vec<&str> = CustomerEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(names, ours);
        for event in CustomerEvent::ALL {
            let parsed: Option<CustomerEvent> = serde_json::from_value(serde_json::json!(event.as_str())).ok();
            assert_eq!(parsed, Some(event));
        }
    }

    #[test]
    fn results_serialize_to_valid_messages() {
        let schemas = Schemas::load(crate::DEFAULT_MAX_BODY_BYTES).unwrap_or_else(|e| panic!("{e}"));
        let published = VoucherPublished {
            publication_id: "pub_1".into(),
            code: "CODE-1".into(),
            campaign: "Welcome 10".into(),
            customer_source_id: "c-1".into(),
            source_message_id: "m-1".into(),
        };
        let forwarded = [
            VoucherEventForwarded {
                destination: "bloomreach".into(),
                operation: "event".into(),
                event: Some("voucherify_rewarded".into()),
                customer_id: "c-1".into(),
                metadata_dropped: None,
                source_message_id: "m-2".into(),
            },
            VoucherEventForwarded {
                destination: "voucherify".into(),
                operation: "customer_update".into(),
                event: None,
                customer_id: "c-1".into(),
                metadata_dropped: Some(MetadataDropped {
                    undefined: 2,
                    wrong_type: 1,
                }),
                source_message_id: "m-3".into(),
            },
        ];
        let body = serde_json::to_vec(&published).unwrap_or_default();
        assert!(schemas.check("voucher.published", &body).is_ok());
        for result in forwarded {
            let body = serde_json::to_vec(&result).unwrap_or_default();
            let checked = schemas.check("voucher.event.forwarded", &body);
            assert!(checked.is_ok(), "{checked:?}");
        }
    }

    #[test]
    fn invalid_bodies_are_rejected() {
        let schemas = Schemas::load(crate::DEFAULT_MAX_BODY_BYTES).unwrap_or_else(|e| panic!("{e}"));
        let cases = [
            ("voucher.publish.requested", r#"{"campaign":"Welcome 10"}"#),
            (
                "voucher.publish.requested",
                r#"{"campaign":"","customer":{"source_id":"a"}}"#,
            ),
            (
                "voucher.redeemed",
                r#"{"event":"customer.created","customer_source_id":"a","occurred_at":"2026-01-01T00:00:00Z"}"#,
            ),
            (
                "voucher.redeemed",
                r#"{"event":"rewarded","customer_source_id":"a","occurred_at":"2026-01-01T00:00:00Z","metadata":{"x":{"nested":1}}}"#,
            ),
            (
                "bloomreach.customer.updated",
                r#"{"customer_id":"a","updated_at":"2026-01-01T00:00:00Z","birthdate":"12.4.1990"}"#,
            ),
            ("bloomreach.event.exported", r#"{"event":"x","customer_id":"a"}"#),
        ];
        for (kind, body) in cases {
            assert!(
                schemas.check(kind, body.as_bytes()).is_err(),
                "{kind}: {body} must be invalid"
            );
        }
    }
}
