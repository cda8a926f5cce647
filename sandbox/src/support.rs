//! Small helpers shared by every provider emulation: clock and timestamp formats, a
//! poison-tolerant mutex lock, the basic e-mail plausibility check, content-type checks,
//! random identifiers, constant-time comparison and masking of e-mail addresses in texts.

use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::{
    Json,
    http::{HeaderMap, StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
};
use serde_json::Value;
use time::{OffsetDateTime, format_description::FormatItem, macros::format_description};

/// RFC 3339 with milliseconds in UTC, e.g. `2025-01-31T12:00:00.123Z` (the call log).
const RFC3339_MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// ISO 8601 to the second in UTC, e.g. `2025-01-31T12:00:00Z` (Spotler contact dates).
const ISO_SECONDS: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// `YYYY-MM-DD HH:MM:SS` (Ecomail timestamps).
const SQL_DATETIME: &[FormatItem<'static>] = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

/// The current wall-clock time in UTC.
pub(crate) fn now_utc() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Formats `at` with `format`, falling back to the Unix timestamp (formatting a UTC time with
/// these fixed descriptions cannot fail in practice, but the sandbox never panics on it).
fn format_or_unix(at: OffsetDateTime, format: &[FormatItem<'_>]) -> String {
    at.format(format).unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// `2025-01-31T12:00:00.123Z`.
pub(crate) fn rfc3339_millis(at: OffsetDateTime) -> String {
    format_or_unix(at, RFC3339_MILLIS)
}

/// `2025-01-31T12:00:00Z`.
pub(crate) fn iso_seconds(at: OffsetDateTime) -> String {
    format_or_unix(at, ISO_SECONDS)
}

/// `2025-01-31 12:00:00`.
pub(crate) fn sql_datetime(at: OffsetDateTime) -> String {
    format_or_unix(at, SQL_DATETIME)
}

/// Locks `mutex`, recovering the data if another thread panicked while holding it: the sandbox
/// state stays usable and no request handler ever panics on a poisoned lock.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A basic e-mail plausibility check, the kind providers run before storing an address:
/// one `@`, a non-empty local part, a dotted domain, no whitespace, at most 254 characters.
pub(crate) fn is_plausible_email(email: &str) -> bool {
    if email.is_empty() || email.len() > 254 || email.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

/// A JSON answer prepared by a validation step (small enough to travel in a `Result`, unlike
/// a whole `Response`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonReply {
    /// The status to answer with.
    pub(crate) status: StatusCode,
    /// The JSON body.
    pub(crate) body: Value,
}

impl JsonReply {
    /// `status` with `body`.
    pub(crate) fn new(status: StatusCode, body: Value) -> Self {
        Self { status, body }
    }
}

impl IntoResponse for JsonReply {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Compares two secrets without an early exit on the first differing byte.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The characters of generated identifiers.
const ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// `prefix` followed by `len` random alphanumeric characters (`cust_7Hq...`).
pub(crate) fn random_id(prefix: &str, len: usize) -> String {
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    for _ in 0..len {
        let index = rand::random_range(0..ID_ALPHABET.len());
        id.push(char::from(ID_ALPHABET[index]));
    }
    id
}

/// Lowercase hexadecimal of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// An identifier for an error text: itself, unless it looks like an e-mail address (error
/// texts never carry addresses), in which case a placeholder.
pub(crate) fn displayable_id(id: &str) -> String {
    if id.contains('@') {
        "<e-mail address>".to_owned()
    } else {
        id.chars().take(200).collect()
    }
}

/// True if the request declares a JSON body (`application/json`, optionally with parameters,
/// or any `+json` media type).
pub(crate) fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media_type = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    media_type == "application/json" || media_type.ends_with("+json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_email_accepts_ordinary_addresses() {
        assert!(is_plausible_email("jan.novak@example.com"));
        assert!(is_plausible_email("a+tag@sub.example.co.uk"));
    }

    #[test]
    fn plausible_email_rejects_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@.com",
            "a@b.com.",
            "a@b..com",
        ] {
            assert!(!is_plausible_email(bad), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn timestamps_use_the_documented_formats() {
        let at = time::macros::datetime!(2025-01-31 12:34:56.789 UTC);
        assert_eq!(rfc3339_millis(at), "2025-01-31T12:34:56.789Z");
        assert_eq!(iso_seconds(at), "2025-01-31T12:34:56Z");
        assert_eq!(sql_datetime(at), "2025-01-31 12:34:56");
    }

    #[test]
    fn helpers_compare_encode_and_mask() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        let id = random_id("cust_", 24);
        assert!(id.starts_with("cust_") && id.len() == 29, "{id}");
        assert!(id.chars().skip(5).all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(displayable_id("order-1"), "order-1");
        assert_eq!(displayable_id("ann@example.com"), "<e-mail address>");
    }

    #[test]
    fn json_content_type_accepts_parameters_and_suffixes() {
        let mut headers = HeaderMap::new();
        assert!(!has_json_content_type(&headers));
        headers.insert(CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
        assert!(has_json_content_type(&headers));
        headers.insert(CONTENT_TYPE, "application/vnd.api+json".parse().unwrap());
        assert!(has_json_content_type(&headers));
        headers.insert(CONTENT_TYPE, "application/xml".parse().unwrap());
        assert!(!has_json_content_type(&headers));
    }
}
