//! SALESmanago's JSON: the authentication fields every body carries, the request bodies and
//! the `success` envelope of every answer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

/// The authentication fields of one try.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Auth<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) api_key: String,
    pub(crate) request_time: i64,
    pub(crate) sha: String,
    pub(crate) owner: &'a str,
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// `sha` = hex SHA-1 of `apiKey + clientId + apiSecret`.
pub(crate) fn signature(api_key: &str, client_id: &str, api_secret: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(api_key.as_bytes());
    hasher.update(client_id.as_bytes());
    hasher.update(api_secret.as_bytes());
    hex(&hasher.finalize())
}

/// A fresh random `apiKey` (SALESmanago accepts any string; a new one per request).
pub(crate) fn random_api_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The body of one try: the operation's fields (a JSON object) with the authentication fields
/// added.
pub(crate) fn signed_body(payload: &Map<String, Value>, auth: &Auth<'_>) -> Vec<u8> {
    let mut object = payload.clone();
    if let Ok(Value::Object(fields)) = serde_json::to_value(auth) {
        object.extend(fields);
    }
    // Serializing a `Value` cannot fail.
    serde_json::to_vec(&Value::Object(object)).unwrap_or_default()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireAddress<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) street_address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) zip_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) city: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) country: Option<&'a str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireContact<'a> {
    pub(crate) email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) company: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) external_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) address: Option<WireAddress<'a>>,
}

/// `POST /api/contact/upsert` (without the authentication fields).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpsertBody<'a> {
    pub(crate) contact: WireContact<'a>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(crate) tags: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(crate) remove_tags: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) properties: &'a BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) lang: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) birthday: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) force_opt_in: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) force_opt_out: bool,
}

/// `contactEvent` of `addContactExtEvent`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireEvent<'a> {
    pub(crate) date: i64,
    pub(crate) contact_ext_event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) products: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) location: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) external_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) shop_domain: Option<&'a str>,
    /// `detail1` … `detail20`.
    #[serde(flatten)]
    pub(crate) details: BTreeMap<String, &'a str>,
}

/// `POST /api/v2/contact/addContactExtEvent` (without the authentication fields).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventBody<'a> {
    pub(crate) email: &'a str,
    pub(crate) contact_event: WireEvent<'a>,
}

/// The envelope of every answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Answer {
    pub(crate) success: Option<bool>,
    #[serde(default)]
    pub(crate) message: Messages,
    pub(crate) contact_id: Option<Value>,
    pub(crate) event_id: Option<Value>,
}

/// `message` is documented as an array of strings; tolerate a single string too.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub(crate) enum Messages {
    /// No message.
    #[default]
    None,
    /// One text.
    One(String),
    /// Several texts (anything that is not a string is ignored).
    Many(Vec<Value>),
}

impl Messages {
    /// Every text.
    pub(crate) fn texts(&self) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::One(text) => vec![text.clone()],
            Self::Many(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        }
    }
}

/// An id that SALESmanago sends as a string or a number.
pub(crate) fn id_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_is_hex_sha1_of_key_client_and_secret() {
        // sha1("abc") is the FIPS 180 test vector.
        assert_eq!(signature("a", "b", "c"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn api_keys_are_fresh() {
        assert_ne!(random_api_key(), random_api_key());
        assert_eq!(random_api_key().len(), 32);
    }

    #[test]
    fn messages_accept_an_array_or_a_string() {
        let many: Answer =
            serde_json::from_str(r#"{"success":false,"message":["a", 1, "b"]}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(many.message.texts(), ["a", "b"]);
        let one: Answer = serde_json::from_str(r#"{"success":false,"message":"x"}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one.message.texts(), ["x"]);
        let none: Answer = serde_json::from_str(r#"{"success":true,"contactId":12}"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(none.message.texts().is_empty());
        assert_eq!(id_text(none.contact_id.as_ref()), "12");
    }
}
