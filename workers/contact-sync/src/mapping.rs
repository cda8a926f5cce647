//! The field-mapping file: which contact fields go to which provider property.

use std::collections::BTreeMap;
use std::path::Path;

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
        for (name, bit) in &mapping.spotler.permissions {
            if *bit == 0 {
                return Err(fail(format!(
                    "[spotler.permissions] `{name}` has bit 0; Spotler permission bits start at 1"
                )));
            }
        }
        Ok(mapping)
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
}
