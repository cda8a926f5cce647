//! The Voucherify metadata schema: which metadata keys exist and their types, so only
//! defined, well-typed metadata is sent (Voucherify silently drops the rest on the integration
//! endpoints and refuses it on strict API schemas). Dropped keys are counted, never logged with
//! their values.
//!
//! File format (TOML, or the same shape as JSON):
//!
//! ```toml
//! [metadata]
//! segment = "string"
//! lifetime_value = "number"
//! newsletter = "boolean"
//! last_order_date = "date"   # YYYY-MM-DD
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::ops::AddAssign;
use std::path::Path;
use std::str::FromStr;

use prometheus::{IntCounterVec, Opts, Registry};
use serde::Deserialize;
use serde_json::{Map, Value};
use time::Date;
use time::macros::format_description;

/// The type of one metadata key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataType {
    /// A JSON string.
    String,
    /// A JSON number (integer or decimal).
    Number,
    /// `true` or `false`.
    Boolean,
    /// A string holding a calendar date, `YYYY-MM-DD`.
    Date,
}

impl MetadataType {
    /// The name used in schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Date => "date",
        }
    }

    /// Whether `value` has this type. `null` always matches: it clears the key.
    pub fn accepts(self, value: &Value) -> bool {
        match (self, value) {
            (_, Value::Null) => true,
            (Self::String, Value::String(_)) => true,
            (Self::Number, Value::Number(_)) => true,
            (Self::Boolean, Value::Bool(_)) => true,
            (Self::Date, Value::String(text)) => Date::parse(text, format_description!("[year]-[month]-[day]")).is_ok(),
            _ => false,
        }
    }
}

impl FromStr for MetadataType {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "string" => Ok(Self::String),
            "number" => Ok(Self::Number),
            "boolean" => Ok(Self::Boolean),
            "date" => Ok(Self::Date),
            other => Err(format!(
                "unknown metadata type `{other}`; use string, number, boolean or date"
            )),
        }
    }
}

impl fmt::Display for MetadataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many metadata keys a filter dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Keys the schema does not define.
    pub undefined: u32,
    /// Keys whose value has another type than the schema defines.
    pub wrong_type: u32,
}

impl Dropped {
    /// All dropped keys.
    pub fn total(self) -> u32 {
        self.undefined.saturating_add(self.wrong_type)
    }
}

impl AddAssign for Dropped {
    fn add_assign(&mut self, other: Self) {
        self.undefined = self.undefined.saturating_add(other.undefined);
        self.wrong_type = self.wrong_type.saturating_add(other.wrong_type);
    }
}

/// `switchyard_metadata_dropped_total{provider,reason}`: metadata keys not sent, with
/// `reason` = `undefined` or `wrong_type`. Register once per registry and clone.
#[derive(Debug, Clone)]
pub struct MetadataMetrics {
    dropped: IntCounterVec,
}

impl MetadataMetrics {
    /// Registers the counter on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let dropped = IntCounterVec::new(
            Opts::new(
                "switchyard_metadata_dropped_total",
                "Metadata keys not sent because the provider's metadata schema does not define them or defines another type.",
            ),
            &["provider", "reason"],
        )?;
        registry.register(Box::new(dropped.clone()))?;
        Ok(Self { dropped })
    }

    /// Counts `dropped` for `provider`.
    pub fn record(&self, provider: &str, dropped: Dropped) {
        if dropped.undefined > 0 {
            self.dropped
                .with_label_values(&[provider, "undefined"])
                .inc_by(u64::from(dropped.undefined));
        }
        if dropped.wrong_type > 0 {
            self.dropped
                .with_label_values(&[provider, "wrong_type"])
                .inc_by(u64::from(dropped.wrong_type));
        }
    }
}

/// The defined metadata keys and their types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataSchema {
    fields: BTreeMap<String, MetadataType>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    metadata: BTreeMap<String, String>,
}

impl MetadataSchema {
    /// A schema from `(key, type)` pairs.
    pub fn new(fields: impl IntoIterator<Item = (String, MetadataType)>) -> Self {
        Self {
            fields: fields.into_iter().collect(),
        }
    }

    /// Loads a `.toml` or `.json` schema file (see the module docs for the format).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let parsed = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
            Self::from_json_str(&text)
        } else {
            Self::from_toml_str(&text)
        };
        parsed.map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the TOML form.
    pub fn from_toml_str(text: &str) -> Result<Self, String> {
        let file: SchemaFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        Self::from_file(file)
    }

    /// Parses the JSON form (`{"metadata": {"segment": "string"}}`).
    pub fn from_json_str(text: &str) -> Result<Self, String> {
        let file: SchemaFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Self::from_file(file)
    }

    /// Parses the inline form `segment=string,rating=number` (for an environment variable).
    pub fn from_pairs(text: &str) -> Result<Self, String> {
        let mut fields = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, kind) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected `key=type`, e.g. `segment=string`"))?;
            insert(&mut fields, key.trim(), kind)?;
        }
        Ok(Self { fields })
    }

    fn from_file(file: SchemaFile) -> Result<Self, String> {
        let mut fields = BTreeMap::new();
        for (key, kind) in &file.metadata {
            insert(&mut fields, key, kind)?;
        }
        Ok(Self { fields })
    }

    /// The type of `key`, if defined.
    pub fn get(&self, key: &str) -> Option<MetadataType> {
        self.fields.get(key).copied()
    }

    /// How many keys are defined.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether no key is defined (every key would be dropped).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Removes from `metadata` every key the schema does not define and every value of
    /// another type, and says how many of each it removed.
    pub fn filter(&self, metadata: &mut Map<String, Value>) -> Dropped {
        let mut dropped = Dropped::default();
        metadata.retain(|key, value| match self.fields.get(key) {
            None => {
                dropped.undefined += 1;
                false
            }
            Some(kind) if !kind.accepts(value) => {
                dropped.wrong_type += 1;
                false
            }
            Some(_) => true,
        });
        dropped
    }
}

/// A metadata schema and the counter its drops are recorded in (label `provider` =
/// `voucherify`): what the Voucherify clients apply to every metadata map they send.
#[derive(Debug, Clone)]
pub struct MetadataFilter {
    schema: MetadataSchema,
    metrics: MetadataMetrics,
}

impl MetadataFilter {
    /// Filters with `schema`, counting drops in `metrics`.
    pub fn new(schema: MetadataSchema, metrics: MetadataMetrics) -> Self {
        Self { schema, metrics }
    }

    /// The schema.
    pub fn schema(&self) -> &MetadataSchema {
        &self.schema
    }

    /// [`MetadataSchema::filter`], recording what was dropped.
    pub fn apply(&self, metadata: &mut Map<String, Value>) -> Dropped {
        let dropped = self.schema.filter(metadata);
        self.metrics.record(crate::client::PROVIDER, dropped);
        dropped
    }
}

fn insert(fields: &mut BTreeMap<String, MetadataType>, key: &str, kind: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 64 || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("metadata key `{key}` must be 1-64 letters, digits or `_`"));
    }
    let kind: MetadataType = kind.parse().map_err(|e| format!("key `{key}`: {e}"))?;
    if fields.insert(key.to_owned(), kind).is_some() {
        return Err(format!("metadata key `{key}` is defined twice"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> MetadataSchema {
        MetadataSchema::from_toml_str(
            r#"
            [metadata]
            segment = "string"
            lifetime_value = "number"
            newsletter = "boolean"
            last_order_date = "date"
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn check(input: Value) -> (Value, Dropped) {
        let mut map = input.as_object().cloned().unwrap_or_default();
        let dropped = schema().filter(&mut map);
        (Value::Object(map), dropped)
    }

    #[test]
    fn filter_keeps_defined_well_typed_keys() {
        let input =
            json!({"segment": "vip", "lifetime_value": 10.5, "newsletter": true, "last_order_date": "2026-11-21"});
        assert_eq!(check(input.clone()), (input, Dropped::default()));
    }

    #[test]
    fn filter_drops_undefined_keys() {
        let (kept, dropped) = check(json!({"segment": "vip", "favourite_colour": "red", "shoe_size": 42}));
        assert_eq!(kept, json!({"segment": "vip"}));
        assert_eq!(
            dropped,
            Dropped {
                undefined: 2,
                wrong_type: 0
            }
        );
    }

    #[test]
    fn filter_drops_wrongly_typed_values() {
        let (kept, dropped) = check(json!({
            "segment": 5,
            "lifetime_value": "a lot",
            "newsletter": "yes",
            "last_order_date": "21.11.2026",
        }));
        assert_eq!(kept, json!({}));
        assert_eq!(
            dropped,
            Dropped {
                undefined: 0,
                wrong_type: 4
            }
        );
    }

    #[test]
    fn filter_keeps_null_to_clear_a_defined_key() {
        let (kept, dropped) = check(json!({"segment": null, "other": null}));
        assert_eq!(kept, json!({"segment": null}));
        assert_eq!(dropped.total(), 1);
    }

    #[test]
    fn json_and_inline_forms_match_toml() {
        let json = MetadataSchema::from_json_str(
            r#"{"metadata":{"segment":"string","lifetime_value":"number","newsletter":"boolean","last_order_date":"date"}}"#,
        );
        assert_eq!(json, Ok(schema()));
        let inline =
            MetadataSchema::from_pairs("segment=string, lifetime_value=number,newsletter=boolean,last_order_date=date");
        assert_eq!(inline, Ok(schema()));
    }

    #[test]
    fn validate_rejects_bad_schemas() {
        let bad = [
            "[metadata]\nsegment = \"text\"",
            "[metadata]\n\"bad key\" = \"string\"",
            "segment = \"string\"",
        ];
        for text in bad {
            assert!(MetadataSchema::from_toml_str(text).is_err(), "{text}");
        }
        assert!(MetadataSchema::from_pairs("segment").is_err());
        assert!(MetadataSchema::from_pairs("segment=string,segment=number").is_err());
    }

    #[test]
    fn shipped_schema_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/voucherify-metadata.toml");
        let schema = MetadataSchema::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!schema.is_empty());
    }

    #[test]
    fn metrics_count_by_reason() {
        let registry = Registry::new();
        let metrics = MetadataMetrics::register(&registry).unwrap_or_else(|e| panic!("{e}"));
        metrics.record(
            "voucherify",
            Dropped {
                undefined: 2,
                wrong_type: 1,
            },
        );
        let value = |reason: &str| metrics.dropped.with_label_values(&["voucherify", reason]).get();
        assert_eq!((value("undefined"), value("wrong_type")), (2, 1));
    }
}
