//! The Voucherify customer shape shared by `POST /v1/customers` and the Bloomreach integration's
//! customer upsert, and its wire encoding.

use std::fmt;

use serde_json::{Map, Value};
use time::Date;
use time::macros::format_description;

/// A customer as Voucherify stores it. Personal data: its `Debug` output hides everything but
/// the source id and the metadata keys.
#[derive(Clone, Default, PartialEq)]
pub struct Customer {
    /// Customer id in the source system (Voucherify `source_id`; on the integration endpoint,
    /// the value of the main hard id).
    pub source_id: String,
    /// Full name.
    pub name: Option<String>,
    /// Free-text description.
    pub description: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Birth date.
    pub birthdate: Option<Date>,
    /// Postal address.
    pub address: Option<Address>,
    /// Metadata; filtered to the metadata schema before sending when the client has one.
    pub metadata: Map<String, Value>,
}

impl fmt::Debug for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Customer")
            .field("source_id", &self.source_id)
            .field("metadata_keys", &self.metadata.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// The customer as a JSON object, its id under `id_key` (`source_id` for the API, the main
/// hard id name for the integration endpoint) and with `metadata` (already filtered).
pub(crate) fn customer_json(customer: &Customer, id_key: &str, metadata: Map<String, Value>) -> Value {
    let mut object = Map::new();
    object.insert(id_key.to_owned(), Value::String(customer.source_id.clone()));
    let mut text = |key: &str, value: &Option<String>| {
        if let Some(value) = value {
            object.insert(key.to_owned(), Value::String(value.clone()));
        }
    };
    text("name", &customer.name);
    text("description", &customer.description);
    text("email", &customer.email);
    text("phone", &customer.phone);
    if let Some(date) = customer.birthdate
        && let Ok(formatted) = date.format(format_description!("[year]-[month]-[day]"))
    {
        object.insert("birthdate".to_owned(), Value::String(formatted));
    }
    if let Some(address) = &customer.address {
        let mut fields = Map::new();
        for (key, value) in [
            ("city", &address.city),
            ("state", &address.state),
            ("line_1", &address.line_1),
            ("line_2", &address.line_2),
            ("country", &address.country),
            ("postal_code", &address.postal_code),
        ] {
            if let Some(value) = value {
                fields.insert(key.to_owned(), Value::String(value.clone()));
            }
        }
        if !fields.is_empty() {
            object.insert("address".to_owned(), Value::Object(fields));
        }
    }
    if !metadata.is_empty() {
        object.insert("metadata".to_owned(), Value::Object(metadata));
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::Month;

    use super::*;

    #[test]
    fn encodes_only_present_fields_under_the_id_key() {
        let customer = Customer {
            source_id: "shop-1".into(),
            name: Some("Jana".into()),
            email: Some("jana@example.com".into()),
            birthdate: Date::from_calendar_date(1990, Month::April, 12).ok(),
            address: Some(Address {
                city: Some("Brno".into()),
                ..Address::default()
            }),
            ..Customer::default()
        };
        let metadata = json!({"segment": "vip"}).as_object().cloned().unwrap_or_default();
        assert_eq!(
            customer_json(&customer, "registered", metadata),
            json!({
                "registered": "shop-1",
                "name": "Jana",
                "email": "jana@example.com",
                "birthdate": "1990-04-12",
                "address": {"city": "Brno"},
                "metadata": {"segment": "vip"}
            })
        );
    }

    #[test]
    fn debug_hides_personal_data() {
        let customer = Customer {
            source_id: "shop-1".into(),
            email: Some("jana@example.com".into()),
            name: Some("Jana".into()),
            ..Customer::default()
        };
        let text = format!("{customer:?}");
        assert!(!text.contains("jana") && !text.contains("Jana"), "{text}");
    }
}
