//! The field-mapping file: which contact fields go to which provider property, the
//! SALESmanago consent permission and event tags, and the Voucherify metadata; and the check of
//! the Spotler part against the account's own property list.

use std::collections::BTreeMap;
use std::path::Path;

use provider_spotler::PropertyDef;
use serde::Deserialize;

/// Source fields a mapping may name (besides `attributes.<name>`).
pub const SOURCE_FIELDS: &[&str] = &[
    "email",
    "first_name",
    "last_name",
    "phone",
    "city",
    "country",
    "language",
    "first_purchase_date",
    "last_purchase_date",
];

/// Ecomail `subscriber_data` fields a mapping may target.
pub const ECOMAIL_FIELDS: &[&str] = &[
    "name", "surname", "gender", "company", "city", "street", "zip", "country", "phone", "pretitle", "surtitle",
    "birthday", "nameday", "source",
];

/// The whole mapping.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// Spotler part.
    pub spotler: SpotlerMapping,
    /// Ecomail part.
    pub ecomail: EcomailMapping,
    /// SALESmanago part (optional: defaults apply).
    #[serde(default)]
    pub salesmanago: SalesmanagoMapping,
    /// Voucherify part (optional: defaults apply).
    #[serde(default)]
    pub voucherify: VoucherifyMapping,
}

/// SALESmanago part of the mapping.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesmanagoMapping {
    /// The permission whose grant or withdrawal forces opt-in or opt-out (and adds or removes
    /// the newsletter tag); empty to never touch consent.
    #[serde(default = "default_consent_permission")]
    pub consent_permission: String,
    /// Source field → SALESmanago custom property.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Tags identifying events.
    #[serde(default)]
    pub tags: SalesmanagoTags,
}

fn default_consent_permission() -> String {
    "newsletter".to_owned()
}

impl Default for SalesmanagoMapping {
    fn default() -> Self {
        Self {
            consent_permission: default_consent_permission(),
            properties: BTreeMap::new(),
            tags: SalesmanagoTags::default(),
        }
    }
}

/// Tag names SALESmanago segments on; an empty name sends no tag.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesmanagoTags {
    /// Added on `shop.event` type `registration`.
    #[serde(default = "tag_registration")]
    pub registration: String,
    /// Added while the consent permission is granted (and on `contact.subscribed`), removed
    /// when it is withdrawn.
    #[serde(default = "tag_newsletter")]
    pub newsletter: String,
    /// Added on a purchase by a logged-in customer.
    #[serde(default = "tag_purchase_logged_in")]
    pub purchase_logged_in: String,
    /// Added on a purchase by a guest (not logged in).
    #[serde(default = "tag_purchase_guest")]
    pub purchase_guest: String,
}

fn tag_registration() -> String {
    "REGISTRATION".to_owned()
}

fn tag_newsletter() -> String {
    "NEWSLETTER".to_owned()
}

fn tag_purchase_logged_in() -> String {
    "PURCHASE_LOGGED_IN".to_owned()
}

fn tag_purchase_guest() -> String {
    "PURCHASE_GUEST".to_owned()
}

impl Default for SalesmanagoTags {
    fn default() -> Self {
        Self {
            registration: tag_registration(),
            newsletter: tag_newsletter(),
            purchase_logged_in: tag_purchase_logged_in(),
            purchase_guest: tag_purchase_guest(),
        }
    }
}

/// Voucherify part of the mapping. What is sent as metadata is then filtered by the metadata
/// schema (`VOUCHERIFY_METADATA_SCHEMA`): undefined or wrongly typed keys are dropped and
/// counted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoucherifyMapping {
    /// Send every `attributes.<name>` of the contact as metadata `<name>`.
    #[serde(default = "yes")]
    pub attributes_as_metadata: bool,
    /// Source field → metadata key (in addition to, and overriding, the attributes).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

impl Default for VoucherifyMapping {
    fn default() -> Self {
        Self {
            attributes_as_metadata: true,
            metadata: BTreeMap::new(),
        }
    }
}

/// Spotler part of the mapping.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpotlerMapping {
    /// Source field → Spotler property.
    pub properties: BTreeMap<String, String>,
    /// Permission name → Spotler permission bit.
    #[serde(default)]
    pub permissions: BTreeMap<String, u32>,
}

/// Ecomail part of the mapping.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcomailMapping {
    /// Source field → `subscriber_data` field.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Source field → custom field.
    #[serde(default)]
    pub custom_fields: BTreeMap<String, String>,
    /// Permission name → tag.
    #[serde(default)]
    pub permission_tags: BTreeMap<String, String>,
}

/// A mapping problem, naming the file, table and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field mapping {path}: {problem}")]
pub struct MappingError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

fn check_source(table: &str, source: &str) -> Result<(), String> {
    if SOURCE_FIELDS.contains(&source) {
        return Ok(());
    }
    if let Some(name) = source.strip_prefix("attributes.")
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Ok(());
    }
    Err(format!(
        "[{table}] key `{source}` is not a contact field; use one of {} or `attributes.<name>`",
        SOURCE_FIELDS.join(", ")
    ))
}

impl FieldMapping {
    /// Parses and validates mapping text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Self, MappingError> {
        let fail = |problem: String| MappingError {
            path: origin.to_owned(),
            problem,
        };
        let mapping: Self = toml::from_str(text).map_err(|e| fail(e.to_string().trim().to_owned()))?;
        for source in mapping.spotler.properties.keys() {
            check_source("spotler.properties", source).map_err(fail)?;
        }
        if !mapping.spotler.properties.contains_key("email") {
            return Err(fail(
                "[spotler.properties] must map `email` (Spotler's duplicate prevention needs it)".to_owned(),
            ));
        }
        for (table, map) in [
            ("ecomail.fields", &mapping.ecomail.fields),
            ("ecomail.custom_fields", &mapping.ecomail.custom_fields),
        ] {
            for source in map.keys() {
                if source == "email" {
                    return Err(fail(format!(
                        "[{table}] must not map `email`: it is always sent as Ecomail's key"
                    )));
                }
                check_source(table, source).map_err(fail)?;
            }
        }
        for (source, target) in &mapping.ecomail.fields {
            if !ECOMAIL_FIELDS.contains(&target.as_str()) {
                return Err(fail(format!(
                    "[ecomail.fields] `{source}` maps to `{target}`, which is not an Ecomail subscriber field; use one of {}",
                    ECOMAIL_FIELDS.join(", ")
                )));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for target in mapping.ecomail.custom_fields.values() {
            let key = target.trim().to_lowercase();
            if key.is_empty() || !seen.insert(key) {
                return Err(fail(format!(
                    "[ecomail.custom_fields] `{target}` is empty or used twice (Ecomail compares custom field names case-insensitively)"
                )));
            }
        }
        for (table, map) in [
            ("salesmanago.properties", &mapping.salesmanago.properties),
            ("voucherify.metadata", &mapping.voucherify.metadata),
        ] {
            for (source, target) in map {
                check_source(table, source).map_err(fail)?;
                if target.is_empty()
                    || target.len() > 64
                    || !target.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(fail(format!(
                        "[{table}] `{source}` maps to `{target}`; use 1-64 letters, digits or `_`"
                    )));
                }
            }
        }
        let tags = &mapping.salesmanago.tags;
        for (name, tag) in [
            ("registration", &tags.registration),
            ("newsletter", &tags.newsletter),
            ("purchase_logged_in", &tags.purchase_logged_in),
            ("purchase_guest", &tags.purchase_guest),
        ] {
            if tag.chars().count() > 255 || tag.chars().any(|c| c == ',' || c.is_control()) {
                return Err(fail(format!(
                    "[salesmanago.tags] `{name}` must be at most 255 characters without commas"
                )));
            }
        }
        for (name, bit) in &mapping.spotler.permissions {
            if *bit == 0 {
                return Err(fail(format!(
                    "[spotler.permissions] `{name}` has bit 0; Spotler permission bits start at 1"
                )));
            }
        }
        Ok(mapping)
    }

    /// Checks the Spotler part against the account's properties (`GET /contact/properties/list`):
    /// every mapped property must exist with a type that fits its source field, and mapped
    /// permission bits must exist in the account's `permissions` set. The error names the
    /// mapping key and the property.
    pub fn check_spotler_account(&self, account: &[PropertyDef]) -> Result<(), String> {
        let find = |name: &str| account.iter().find(|p| p.name == name);
        for (source, target) in &self.spotler.properties {
            let Some(property) = find(target) else {
                let mut names: Vec<&str> = account.iter().map(|p| p.name.as_str()).collect();
                names.sort_unstable();
                return Err(format!(
                    "[spotler.properties] `{source}` maps to the property `{target}`, which the Spotler account does not have (it has: {})",
                    names.join(", ")
                ));
            };
            let allowed = spotler_types(source);
            if !allowed.accepts(&property.kind) {
                return Err(format!(
                    "[spotler.properties] `{source}` maps to the property `{target}`, whose type in the Spotler account is `{}`; `{source}` needs {}",
                    property.kind,
                    allowed.describe()
                ));
            }
        }
        if !self.spotler.permissions.is_empty() {
            let Some(permissions) = find("permissions") else {
                return Err(
                    "[spotler.permissions] is set, but the Spotler account has no `permissions` property".to_owned(),
                );
            };
            if permissions.kind != "set" {
                return Err(format!(
                    "[spotler.permissions] is set, but the account's `permissions` property has type `{}`, not `set`",
                    permissions.kind
                ));
            }
            if !permissions.entries.is_empty() {
                for (name, bit) in &self.spotler.permissions {
                    if !permissions.entries.iter().any(|entry| entry.bit == *bit) {
                        return Err(format!(
                            "[spotler.permissions] `{name}` has bit {bit}, which the account's `permissions` property does not define"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads and validates a mapping file.
    pub fn load(path: &Path) -> Result<Self, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|e| MappingError {
            path: path.display().to_string(),
            problem: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }
}

/// The Spotler property types a source field can be written to.
#[derive(Debug, Clone, Copy)]
enum SpotlerTypes {
    /// Exactly these types.
    OneOf(&'static [&'static str]),
    /// Anything but a `set` (free-form attributes).
    AnyScalar,
}

impl SpotlerTypes {
    fn accepts(self, kind: &str) -> bool {
        match self {
            Self::OneOf(kinds) => kinds.contains(&kind),
            Self::AnyScalar => kind != "set",
        }
    }

    fn describe(self) -> String {
        match self {
            Self::OneOf(kinds) => format!("one of {}", kinds.join(", ")),
            Self::AnyScalar => "a single-valued type (not `set`)".to_owned(),
        }
    }
}

fn spotler_types(source: &str) -> SpotlerTypes {
    match source {
        "email" => SpotlerTypes::OneOf(&["email"]),
        "phone" => SpotlerTypes::OneOf(&["mobNr", "string"]),
        // contact-sync sends these as `YYYY-MM-DD`.
        "first_purchase_date" | "last_purchase_date" => SpotlerTypes::OneOf(&["date"]),
        "first_name" | "last_name" | "city" | "country" | "language" => SpotlerTypes::OneOf(&["string"]),
        _ => SpotlerTypes::AnyScalar,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../config/field-mapping.toml");

    fn check(text: &str) -> Result<FieldMapping, String> {
        FieldMapping::parse(text, "test.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn validate_accepts_the_shipped_mapping() {
        let mapping = check(SHIPPED);
        assert_eq!(
            mapping.map(|m| m.spotler.properties.get("first_name").cloned()),
            Ok(Some("firstName".to_owned()))
        );
    }

    #[test]
    fn validate_rejects_unknown_source_field() {
        let err = check("[spotler.properties]\nemail = \"email\"\nshoe_size = \"x\"\n[ecomail]\n")
            .err()
            .unwrap_or_default();
        assert!(err.contains("shoe_size") && err.contains("spotler.properties"), "{err}");
    }

    #[test]
    fn validate_rejects_unknown_ecomail_field() {
        let text = "[spotler.properties]\nemail = \"email\"\n[ecomail.fields]\nfirst_name = \"firstname\"\n";
        let err = check(text).err().unwrap_or_default();
        assert!(err.contains("firstname"), "{err}");
    }

    #[test]
    fn validate_rejects_case_insensitive_duplicate_custom_fields() {
        let text = "[spotler.properties]\nemail = \"email\"\n[ecomail.custom_fields]\ncity = \"X\"\ncountry = \"x\"\n";
        assert!(check(text).is_err());
    }

    #[test]
    fn validate_rejects_typos_in_table_names() {
        let err = check("[spotler.propertys]\n").err().unwrap_or_default();
        assert!(err.contains("propertys") || err.contains("unknown field"), "{err}");
    }

    #[test]
    fn validate_requires_spotler_email() {
        assert!(check("[spotler.properties]\nfirst_name = \"firstName\"\n[ecomail]\n").is_err());
    }

    fn account() -> Vec<PropertyDef> {
        serde_json::from_value(serde_json::json!([
            {"name": "email", "type": "email"},
            {"name": "firstName", "type": "string"},
            {"name": "lastName", "type": "string"},
            {"name": "language", "type": "string"},
            {"name": "firstPurchaseDate", "type": "date"},
            {"name": "lastPurchaseDate", "type": "date"},
            {"name": "loyaltyTier", "type": "string"},
            {"name": "permissions", "type": "set", "entries": [{"bit": 1, "description": "Newsletter"}, {"bit": 2}]},
        ]))
        .unwrap_or_default()
    }

    #[test]
    fn the_shipped_mapping_fits_an_account_with_its_properties() {
        let mapping = check(SHIPPED).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mapping.check_spotler_account(&account()), Ok(()));
    }

    #[test]
    fn a_missing_property_is_refused_by_name() {
        let text = "[spotler.properties]\nemail = \"email\"\n\"attributes.shoe_size\" = \"shoeSize\"\n[ecomail]\n";
        let mapping = check(text).unwrap_or_else(|e| panic!("{e}"));
        let error = mapping.check_spotler_account(&account()).err().unwrap_or_default();
        assert!(
            error.contains("`shoeSize`") && error.contains("does not have"),
            "{error}"
        );
    }

    #[test]
    fn a_property_of_another_type_is_refused_by_name() {
        let text = "[spotler.properties]\nemail = \"email\"\nfirst_purchase_date = \"firstName\"\n[ecomail]\n";
        let mapping = check(text).unwrap_or_else(|e| panic!("{e}"));
        let error = mapping.check_spotler_account(&account()).err().unwrap_or_default();
        assert!(error.contains("`firstName`") && error.contains("`string`"), "{error}");
    }

    #[test]
    fn an_unknown_permission_bit_is_refused() {
        let text = "[spotler.properties]\nemail = \"email\"\n[spotler.permissions]\nsms = 9\n[ecomail]\n";
        let mapping = check(text).unwrap_or_else(|e| panic!("{e}"));
        let error = mapping.check_spotler_account(&account()).err().unwrap_or_default();
        assert!(error.contains("bit 9"), "{error}");
    }

    #[test]
    fn optional_sections_have_defaults_and_are_checked() {
        let mapping = check("[spotler.properties]\nemail = \"email\"\n[ecomail]\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mapping.salesmanago.consent_permission, "newsletter");
        assert_eq!(mapping.salesmanago.tags.purchase_guest, "PURCHASE_GUEST");
        assert!(mapping.voucherify.attributes_as_metadata);
        let bad = "[spotler.properties]\nemail = \"email\"\n[ecomail]\n[voucherify.metadata]\n\"attributes.x\" = \"bad key\"\n";
        assert!(check(bad).is_err());
        let bad_tag = "[spotler.properties]\nemail = \"email\"\n[ecomail]\n[salesmanago.tags]\nnewsletter = \"A,B\"\n";
        assert!(check(bad_tag).is_err());
    }
}
