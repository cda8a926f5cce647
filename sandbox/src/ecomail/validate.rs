//! Laravel-style request validation for the Ecomail emulation: each rule failure adds a
//! message under the dotted field name, and a request with any failure is answered
//! 422 `{"message": "The given data was invalid.", "errors": {"field": ["..."]}}`.

use std::collections::{BTreeMap, BTreeSet};

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};
use time::{Date, macros::format_description};

use crate::support::is_plausible_email;

/// The most characters custom fields may hold in total (keys plus values).
pub(crate) const MAX_CUSTOM_FIELDS_CHARS: usize = 5000;
/// The most characters all tags may hold in total.
pub(crate) const MAX_TAGS_CHARS: usize = 2000;
/// The most characters one tag may have.
pub(crate) const MAX_TAG_CHARS: usize = 50;
/// The most characters a tracker event `value` may have once JSON-encoded.
pub(crate) const MAX_EVENT_VALUE_CHARS: usize = 20_000;

/// The plain text fields of `subscriber_data`.
pub(crate) const STANDARD_FIELDS: [&str; 14] = [
    "name", "surname", "gender", "company", "city", "street", "zip", "country", "phone", "pretitle", "surtitle",
    "birthday", "nameday", "source",
];

/// Collected validation errors, by dotted field name.
#[derive(Debug, Default)]
pub(crate) struct Errors(BTreeMap<String, Vec<String>>);

impl Errors {
    /// Adds a message for `field`.
    pub(crate) fn add(&mut self, field: &str, message: String) {
        self.0.entry(field.to_owned()).or_default().push(message);
    }

    /// True if nothing failed.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The 422 answer.
    pub(crate) fn into_response(self) -> Response {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"message": "The given data was invalid.", "errors": self.0})),
        )
            .into_response()
    }
}

/// Laravel's attribute name in messages: underscores become spaces.
fn attribute(field: &str) -> String {
    field.replace('_', " ")
}

/// A validated `subscriber_data` object.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubscriberInput {
    /// Lowercased, trimmed e-mail, if sent.
    pub(crate) email: Option<String>,
    /// Standard fields sent with a value (`null` leaves a field unchanged).
    pub(crate) fields: Vec<(&'static str, String)>,
    /// Custom fields with normalised (trimmed, lowercased) keys.
    pub(crate) custom_fields: Option<Map<String, Value>>,
    /// Tags, if sent.
    pub(crate) tags: Option<Vec<String>>,
    /// Groups, if sent.
    pub(crate) groups: Option<Map<String, Value>>,
}

/// Normalises an e-mail the way subscribers are keyed.
pub(crate) fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Validates a required e-mail at `field`.
pub(crate) fn email(value: Option<&Value>, field: &str, errors: &mut Errors) -> Option<String> {
    match value {
        None | Some(Value::Null) => {
            errors.add(field, format!("The {} field is required.", attribute(field)));
            None
        }
        Some(Value::String(text)) if text.trim().is_empty() => {
            errors.add(field, format!("The {} field is required.", attribute(field)));
            None
        }
        Some(Value::String(text)) if is_plausible_email(text.trim()) => Some(normalize_email(text)),
        Some(_) => {
            errors.add(
                field,
                format!("The {} must be a valid email address.", attribute(field)),
            );
            None
        }
    }
}

/// Validates an optional text value (strings, and numbers turned into text).
pub(crate) fn optional_text(value: Option<&Value>, field: &str, errors: &mut Errors) -> Option<String> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        Some(_) => {
            errors.add(field, format!("The {} must be a string.", attribute(field)));
            None
        }
    }
}

/// Laravel's `boolean` rule: `true`, `false`, `1`, `0`, `"1"`, `"0"`, `"true"`, `"false"`.
pub(crate) fn boolean(body: &Map<String, Value>, name: &str, default: bool, errors: &mut Errors) -> bool {
    match body.get(name) {
        None | Some(Value::Null) => default,
        Some(Value::Bool(flag)) => *flag,
        Some(Value::Number(n)) if n.as_u64() == Some(1) => true,
        Some(Value::Number(n)) if n.as_u64() == Some(0) => false,
        Some(Value::String(s)) if s == "1" || s == "true" => true,
        Some(Value::String(s)) if s == "0" || s == "false" => false,
        Some(_) => {
            errors.add(name, format!("The {} field must be true or false.", attribute(name)));
            default
        }
    }
}

fn is_date(text: &str) -> bool {
    text.len() == 10 && Date::parse(text, format_description!("[year]-[month]-[day]")).is_ok()
}

fn is_month_day(text: &str) -> bool {
    text.len() == 5 && Date::parse(&format!("2000-{text}"), format_description!("[year]-[month]-[day]")).is_ok()
}

/// Validates `subscriber_data` at `prefix` (e.g. `subscriber_data` or `subscriber_data.3`).
pub(crate) fn subscriber_data(
    value: Option<&Value>,
    prefix: &str,
    email_required: bool,
    errors: &mut Errors,
) -> SubscriberInput {
    let data = match value {
        Some(Value::Object(data)) => data,
        None | Some(Value::Null) => {
            errors.add(prefix, format!("The {} field is required.", attribute(prefix)));
            return SubscriberInput::default();
        }
        Some(_) => {
            errors.add(prefix, format!("The {} must be an array.", attribute(prefix)));
            return SubscriberInput::default();
        }
    };
    let field = |name: &str| format!("{prefix}.{name}");
    let email = if email_required || data.get("email").is_some_and(|v| !v.is_null()) {
        email(data.get("email"), &field("email"), errors)
    } else {
        None
    };
    let mut fields = Vec::new();
    for name in STANDARD_FIELDS {
        let Some(text) = optional_text(data.get(name), &field(name), errors) else {
            continue;
        };
        let valid = match name {
            "gender" => text.is_empty() || text == "male" || text == "female",
            "birthday" => text.is_empty() || is_date(&text),
            "nameday" => text.is_empty() || is_month_day(&text),
            _ => true,
        };
        if valid {
            fields.push((name, text));
        } else {
            let message = match name {
                "birthday" => format!("The {} does not match the format Y-m-d.", attribute(&field(name))),
                "nameday" => format!("The {} does not match the format m-d.", attribute(&field(name))),
                _ => format!("The selected {} is invalid.", attribute(&field(name))),
            };
            errors.add(&field(name), message);
        }
    }
    SubscriberInput {
        email,
        fields,
        custom_fields: custom_fields(data.get("custom_fields"), &field("custom_fields"), errors),
        tags: tags(data.get("tags"), &field("tags"), errors),
        groups: match data.get("groups") {
            None | Some(Value::Null) => None,
            Some(Value::Object(groups)) => Some(groups.clone()),
            Some(_) => {
                errors.add(
                    &field("groups"),
                    format!("The {} must be an array.", attribute(&field("groups"))),
                );
                None
            }
        },
    }
}

/// The characters a custom field value counts for in the 5000-character budget.
fn value_chars(value: &Value) -> usize {
    match value {
        Value::String(text) => text.chars().count(),
        Value::Object(object) => object.get("value").map_or(0, value_chars),
        other => other.to_string().chars().count(),
    }
}

/// Normalises custom field keys (trim, lowercase), rejecting duplicates, malformed values and
/// more than [`MAX_CUSTOM_FIELDS_CHARS`] characters in total.
fn custom_fields(value: Option<&Value>, field: &str, errors: &mut Errors) -> Option<Map<String, Value>> {
    let fields = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Object(fields)) => fields,
        Some(_) => {
            errors.add(field, format!("The {} must be an array.", attribute(field)));
            return None;
        }
    };
    let mut normalized = Map::new();
    let mut seen = BTreeSet::new();
    let mut total_chars = 0;
    let mut ok = true;
    for (key, value) in fields {
        let key_normalized = key.trim().to_lowercase();
        if key_normalized.is_empty() {
            errors.add(field, format!("The {} keys must not be empty.", attribute(field)));
            ok = false;
            continue;
        }
        if !seen.insert(key_normalized.clone()) {
            errors.add(
                field,
                format!(
                    "The {} contain the key {key_normalized:?} more than once (keys are case-insensitive).",
                    attribute(field)
                ),
            );
            ok = false;
            continue;
        }
        let value_field = format!("{field}.{key_normalized}");
        match value {
            Value::Array(_) => {
                errors.add(
                    &value_field,
                    format!(
                        "The {} must be a value or a {{value, type}} object.",
                        attribute(&value_field)
                    ),
                );
                ok = false;
            }
            Value::Object(object) => {
                let inner = object.get("value");
                let kind = object.get("type");
                let well_formed =
                    inner.is_some_and(|v| !v.is_object() && !v.is_array()) && kind.is_none_or(Value::is_string);
                let date_ok =
                    kind.and_then(Value::as_str) != Some("date") || inner.and_then(Value::as_str).is_some_and(is_date);
                if !well_formed {
                    errors.add(
                        &value_field,
                        format!(
                            "The {} must be a value or a {{value, type}} object.",
                            attribute(&value_field)
                        ),
                    );
                    ok = false;
                } else if !date_ok {
                    errors.add(
                        &value_field,
                        format!("The {} does not match the format Y-m-d.", attribute(&value_field)),
                    );
                    ok = false;
                }
            }
            _ => {}
        }
        total_chars += key_normalized.chars().count() + value_chars(value);
        normalized.insert(key_normalized, value.clone());
    }
    if total_chars > MAX_CUSTOM_FIELDS_CHARS {
        errors.add(
            field,
            format!(
                "The {} may not be greater than {MAX_CUSTOM_FIELDS_CHARS} characters in total.",
                attribute(field)
            ),
        );
        ok = false;
    }
    ok.then_some(normalized)
}

/// Validates tags: strings of at most [`MAX_TAG_CHARS`], [`MAX_TAGS_CHARS`] in total.
fn tags(value: Option<&Value>, field: &str, errors: &mut Errors) -> Option<Vec<String>> {
    let items = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.add(field, format!("The {} must be an array.", attribute(field)));
            return None;
        }
    };
    let mut tags = Vec::with_capacity(items.len());
    let mut ok = true;
    for (index, item) in items.iter().enumerate() {
        let item_field = format!("{field}.{index}");
        match item {
            Value::String(tag) if tag.chars().count() <= MAX_TAG_CHARS => tags.push(tag.clone()),
            Value::String(_) => {
                errors.add(
                    &item_field,
                    format!(
                        "The {} may not be greater than {MAX_TAG_CHARS} characters.",
                        attribute(&item_field)
                    ),
                );
                ok = false;
            }
            _ => {
                errors.add(&item_field, format!("The {} must be a string.", attribute(&item_field)));
                ok = false;
            }
        }
    }
    let total: usize = tags.iter().map(|tag| tag.chars().count()).sum();
    if total > MAX_TAGS_CHARS {
        errors.add(
            field,
            format!(
                "The {} may not be greater than {MAX_TAGS_CHARS} characters in total.",
                attribute(field)
            ),
        );
        ok = false;
    }
    ok.then_some(tags)
}

/// Turns a tracker event `value` into the stored text: strings as they are, anything else
/// JSON-encoded.
pub(crate) fn event_value(value: Option<&Value>, field: &str, errors: &mut Errors) -> Option<String> {
    let text = match value {
        None | Some(Value::Null) => return None,
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    if text.chars().count() > MAX_EVENT_VALUE_CHARS {
        errors.add(
            field,
            format!(
                "The {} may not be greater than {MAX_EVENT_VALUE_CHARS} characters.",
                attribute(field)
            ),
        );
        return None;
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(data: Value) -> (SubscriberInput, Errors) {
        let mut errors = Errors::default();
        let input = subscriber_data(Some(&data), "subscriber_data", true, &mut errors);
        (input, errors)
    }

    #[test]
    fn custom_field_keys_are_trimmed_and_lowercased() {
        let (input, errors) = validate(json!({
            "email": " Jan@Example.com ",
            "custom_fields": {" Loyalty_Tier ": "gold", "BIRTH": {"value": "2000-01-31", "type": "date"}}
        }));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(input.email.as_deref(), Some("jan@example.com"));
        assert_eq!(
            Value::Object(input.custom_fields.unwrap()),
            json!({"loyalty_tier": "gold", "birth": {"value": "2000-01-31", "type": "date"}})
        );
    }

    #[test]
    fn custom_field_keys_equal_after_normalisation_are_rejected() {
        let (_, errors) = validate(json!({
            "email": "jan@example.com",
            "custom_fields": {"Tier": "gold", "tier ": "silver"}
        }));
        assert!(errors.0.contains_key("subscriber_data.custom_fields"), "{errors:?}");
    }

    #[test]
    fn limits_on_custom_fields_and_tags_are_enforced() {
        let long = "x".repeat(MAX_CUSTOM_FIELDS_CHARS);
        let (_, errors) = validate(json!({"email": "a@b.cz", "custom_fields": {"k": long}}));
        assert!(errors.0.contains_key("subscriber_data.custom_fields"));
        let (_, errors) = validate(json!({"email": "a@b.cz", "tags": ["t".repeat(51)]}));
        assert!(errors.0.contains_key("subscriber_data.tags.0"));
        let many: Vec<String> = (0..41).map(|_| "t".repeat(50)).collect();
        let (_, errors) = validate(json!({"email": "a@b.cz", "tags": many}));
        assert!(errors.0.contains_key("subscriber_data.tags"));
    }

    #[test]
    fn standard_fields_are_checked() {
        let (_, errors) = validate(json!({
            "email": "nope", "gender": "other", "birthday": "2000-02-30", "nameday": "13-01", "name": ["x"]
        }));
        for field in ["email", "gender", "birthday", "nameday", "name"] {
            assert!(
                errors.0.contains_key(&format!("subscriber_data.{field}")),
                "{field}: {errors:?}"
            );
        }
        let (input, errors) = validate(json!({
            "email": "a@b.cz", "gender": "female", "birthday": "2000-02-29", "nameday": "02-29", "zip": 60200
        }));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(input.fields.contains(&("zip", "60200".to_owned())));
    }

    #[test]
    fn missing_subscriber_data_is_required() {
        let mut errors = Errors::default();
        subscriber_data(None, "subscriber_data", true, &mut errors);
        assert_eq!(errors.0["subscriber_data"], ["The subscriber data field is required."]);
    }

    #[test]
    fn event_values_are_stored_as_json_text() {
        let mut errors = Errors::default();
        assert_eq!(
            event_value(Some(&json!({"a": 1})), "event.value", &mut errors).as_deref(),
            Some(r#"{"a":1}"#)
        );
        assert_eq!(
            event_value(Some(&json!("plain")), "event.value", &mut errors).as_deref(),
            Some("plain")
        );
        let huge = json!("x".repeat(MAX_EVENT_VALUE_CHARS + 1));
        assert_eq!(event_value(Some(&huge), "event.value", &mut errors), None);
        assert!(!errors.is_empty());
    }
}
