//! Our message headers. The attempt count travels in a header of our own, never `x-death`
//! (which the broker owns and compacts).

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

/// Attempt number of this delivery, starting at 1.
pub const ATTEMPT: &str = "x-switchyard-attempt";
/// Error class of a dead letter: `invalid`, `permanent`, `exhausted` or `poison`.
pub const ERROR_CLASS: &str = "x-switchyard-error-class";
/// Human-readable error of a dead letter or of the last failed attempt (no secrets, no PII).
pub const ERROR: &str = "x-switchyard-error";
/// Worker that dead-lettered the message.
pub const WORKER: &str = "x-switchyard-worker";
/// Routing key the message was first published with.
pub const ORIGINAL_ROUTING_KEY: &str = "x-switchyard-original-routing-key";
/// When the message was dead-lettered (RFC 3339).
pub const FAILED_AT: &str = "x-switchyard-failed-at";
/// Comma-separated destinations still to do (absent: all). Lets a retry redo only the part
/// that failed.
pub const SCOPE: &str = "x-switchyard-scope";

/// Reads a string header.
pub fn get_str(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    let value = headers?.inner().get(name)?;
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Reads an integer header.
pub fn get_int(headers: Option<&FieldTable>, name: &str) -> Option<i64> {
    match headers?.inner().get(name)? {
        AMQPValue::LongLongInt(i) => Some(*i),
        AMQPValue::LongInt(i) => Some(i64::from(*i)),
        AMQPValue::LongUInt(i) => Some(i64::from(*i)),
        AMQPValue::ShortInt(i) => Some(i64::from(*i)),
        AMQPValue::ShortUInt(i) => Some(i64::from(*i)),
        AMQPValue::ShortShortInt(i) => Some(i64::from(*i)),
        AMQPValue::ShortShortUInt(i) => Some(i64::from(*i)),
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).parse().ok(),
        _ => None,
    }
}

/// Sets a string header.
pub fn set_str(table: &mut FieldTable, name: &str, value: &str) {
    table.insert(ShortString::from(name), AMQPValue::LongString(LongString::from(value)));
}

/// Sets an integer header.
pub fn set_int(table: &mut FieldTable, name: &str, value: i64) {
    table.insert(ShortString::from(name), AMQPValue::LongLongInt(value));
}

/// The headers to carry over when the runtime republishes a message (retry copy, dead letter,
/// replay): everything except the broker's `x-death` family and our own headers, which the
/// caller sets afresh. Dropping `x-death` also keeps the retry cycle from looking like a
/// dead-letter loop to the broker.
pub fn carry_over(headers: Option<&FieldTable>) -> FieldTable {
    let mut out = FieldTable::default();
    if let Some(headers) = headers {
        for (key, value) in headers.inner() {
            let k = key.as_str();
            let broker_owned = k == "x-death"
                || k.starts_with("x-first-death")
                || k.starts_with("x-last-death")
                || k == "x-delivery-count";
            if broker_owned || k.starts_with("x-switchyard-") {
                continue;
            }
            out.insert(key.clone(), value.clone());
        }
    }
    out
}

/// The reason the broker dead-lettered a message (`x-first-death-reason`), e.g.
/// `delivery_limit` for a poison message.
pub fn broker_death_reason(headers: Option<&FieldTable>) -> Option<String> {
    get_str(headers, "x-first-death-reason")
}

/// The original routing key from the broker's `x-death` entry, for broker dead letters.
pub fn death_routing_key(headers: Option<&FieldTable>) -> Option<String> {
    let AMQPValue::FieldArray(entries) = headers?.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = entries.as_slice().first()? else {
        return None;
    };
    let AMQPValue::FieldArray(keys) = first.inner().get("routing-keys")? else {
        return None;
    };
    match keys.as_slice().first()? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carry_over_drops_broker_and_own_headers() {
        let mut table = FieldTable::default();
        set_str(&mut table, "x-first-death-reason", "expired");
        set_int(&mut table, ATTEMPT, 3);
        set_str(&mut table, "tenant", "acme");
        let out = carry_over(Some(&table));
        assert_eq!(out.inner().len(), 1);
        assert_eq!(get_str(Some(&out), "tenant").as_deref(), Some("acme"));
    }

    #[test]
    fn reads_ints_in_any_width() {
        let mut table = FieldTable::default();
        table.insert("a".into(), AMQPValue::LongInt(4));
        table.insert("b".into(), AMQPValue::LongString("7".into()));
        assert_eq!(get_int(Some(&table), "a"), Some(4));
        assert_eq!(get_int(Some(&table), "b"), Some(7));
        assert_eq!(get_int(Some(&table), "c"), None);
    }
}
