//! Payloads of the contact topics (`contact.changed`, `contact.deleted`, `contact.deactivated`)
//! and the `contact.synced` result.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::catalog::MessageSpec;

/// The contact message types.
pub(crate) const SPECS: &[MessageSpec] = &[
    crate::spec!("contact.changed", 1, Input),
    crate::spec!("contact.deleted", 1, Input),
    crate::spec!("contact.deactivated", 1, Input),
    crate::spec!("contact.synced", 1, Result),
];

/// `contact.changed` v1.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ContactChanged {
    /// Stable id in the source system (Spotler `externalId`).
    pub contact_id: String,
    /// E-mail address. Personal data: never log it.
    pub email: String,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// City.
    pub city: Option<String>,
    /// ISO 3166 country code.
    pub country: Option<String>,
    /// Language, or the whole multilingual store structure (`cs - eshop-cz - b2c`).
    pub language: Option<String>,
    /// Mailing permissions by name.
    #[serde(default)]
    pub permissions: BTreeMap<String, bool>,
    /// The order that caused this change.
    pub order: Option<Order>,
    /// Free-form attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// When the change happened.
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
}

/// An order placed by the contact.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Order {
    /// Order id.
    pub order_id: String,
    /// When it was placed; drives first/last purchase dates.
    #[serde(with = "time::serde::rfc3339")]
    pub placed_at: OffsetDateTime,
    /// Order total.
    pub total: Option<f64>,
    /// ISO 4217 currency.
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
    /// Stable id in the source system.
    pub contact_id: String,
    /// `spotler` or `ecomail`.
    pub destination: String,
    /// `upsert`, `anonymize` or `inactivate`.
    pub operation: String,
    /// `synced` or `failed`.
    pub status: String,
    /// Why it failed, without personal data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The input message.
    pub source_message_id: String,
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
