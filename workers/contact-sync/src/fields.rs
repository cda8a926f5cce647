//! Provider-neutral field helpers: the value of a mapping source field, the purchase-date rules,
//! names and the language code.

use std::collections::BTreeMap;

use messages::contact::ContactChanged;
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::format_description;

/// `YYYY-MM-DD`.
pub(crate) fn date(at: OffsetDateTime) -> String {
    at.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// The value of a mapping source field, if the contact has it.
pub(crate) fn source_value(contact: &ContactChanged, source: &str) -> Option<Value> {
    let text = |s: &Option<String>| s.as_ref().map(|v| Value::String(v.clone()));
    match source {
        "email" => Some(Value::String(contact.email.clone())),
        "first_name" => text(&contact.first_name),
        "last_name" => text(&contact.last_name),
        "phone" => text(&contact.phone),
        "city" => text(&contact.city),
        "country" => text(&contact.country),
        // The whole multilingual store structure (`cs - eshop-cz - b2c`) as it came.
        "language" => text(&contact.language),
        "first_purchase_date" | "last_purchase_date" => {
            contact.order.as_ref().map(|o| Value::String(date(o.placed_at)))
        }
        other => other
            .strip_prefix("attributes.")
            .and_then(|name| contact.attributes.get(name))
            .filter(|v| !v.is_null())
            .cloned(),
    }
}

/// "First Last", or whichever part there is.
pub(crate) fn full_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The language code: the first level of a multilingual store structure (`cs` of
/// `cs - eshop-cz - b2c`), for providers whose language field takes a code.
pub(crate) fn language_code(language: Option<&str>) -> Option<String> {
    language
        .and_then(|l| l.split(" - ").next())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}

/// A stored custom field value, unwrapped from Ecomail's `{"value": ..., "type": "date"}`.
pub(crate) fn unwrap_date(value: Value) -> Value {
    match value {
        Value::Object(mut map) if map.contains_key("value") => map.remove("value").unwrap_or(Value::Null),
        other => other,
    }
}

/// Applies the purchase-date rules to `properties` (which holds the new order's date under
/// both names). The first purchase date is set when the destination has none and never moves
/// later: a stored date is only replaced by an earlier one, which happens only when an older
/// order arrives after a newer one. The last purchase date never moves earlier. Both rules
/// converge to the right values whatever order the messages are handled in.
pub(crate) fn purchase_dates(
    properties: &mut BTreeMap<String, Value>,
    existing: &BTreeMap<String, Value>,
    first: Option<&String>,
    last: Option<&String>,
) {
    let stored = |name: &String| {
        existing
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let new = |properties: &BTreeMap<String, Value>, name: &String| {
        properties.get(name).and_then(Value::as_str).map(str::to_owned)
    };
    if let Some(first) = first
        && let (Some(current), Some(new)) = (stored(first), new(properties, first))
        && current <= new
    {
        properties.remove(first);
    }
    if let Some(last) = last
        && let (Some(current), Some(new)) = (stored(last), new(properties, last))
        && current >= new
    {
        properties.remove(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect()
    }

    fn check(existing: &[(&str, &str)], new_date: &str) -> BTreeMap<String, Value> {
        let mut properties = props(&[("firstPurchaseDate", new_date), ("lastPurchaseDate", new_date)]);
        let (first, last) = ("firstPurchaseDate".to_owned(), "lastPurchaseDate".to_owned());
        purchase_dates(&mut properties, &props(existing), Some(&first), Some(&last));
        properties
    }

    #[test]
    fn first_order_sets_both_dates() {
        assert_eq!(
            check(&[], "2026-11-21"),
            props(&[("firstPurchaseDate", "2026-11-21"), ("lastPurchaseDate", "2026-11-21")])
        );
    }

    #[test]
    fn later_order_moves_only_the_last_date() {
        let existing = [("firstPurchaseDate", "2026-01-01"), ("lastPurchaseDate", "2026-01-01")];
        assert_eq!(
            check(&existing, "2026-11-21"),
            props(&[("lastPurchaseDate", "2026-11-21")])
        );
    }

    #[test]
    fn late_arriving_order_between_first_and_last_changes_nothing() {
        let existing = [("firstPurchaseDate", "2026-01-01"), ("lastPurchaseDate", "2026-12-01")];
        assert_eq!(check(&existing, "2026-11-21"), props(&[]));
    }

    #[test]
    fn late_arriving_order_older_than_the_stored_first_moves_it_earlier() {
        let existing = [("firstPurchaseDate", "2026-03-01"), ("lastPurchaseDate", "2026-11-21")];
        assert_eq!(
            check(&existing, "2026-01-15"),
            props(&[("firstPurchaseDate", "2026-01-15")])
        );
    }

    #[test]
    fn repeated_order_sends_no_dates() {
        let existing = [("firstPurchaseDate", "2026-03-01"), ("lastPurchaseDate", "2026-03-01")];
        assert_eq!(check(&existing, "2026-03-01"), props(&[]));
    }

    #[test]
    fn names_and_language_codes() {
        assert_eq!(full_name(Some("Ann"), Some(" Lee ")), Some("Ann Lee".to_owned()));
        assert_eq!(full_name(None, Some("Lee")), Some("Lee".to_owned()));
        assert_eq!(full_name(Some(" "), None), None);
        assert_eq!(language_code(Some("cs - eshop-cz - b2c")), Some("cs".to_owned()));
        assert_eq!(language_code(Some("de")), Some("de".to_owned()));
        assert_eq!(language_code(None), None);
    }
}
