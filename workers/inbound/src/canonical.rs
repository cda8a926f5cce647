//! The compact form of a JSON document as Voucherify signs it: `JSON.stringify(JSON.parse(body))`
//! in JavaScript, reproduced exactly.
//!
//! Voucherify's `x-voucherify-signature` is an HMAC over "the JSON body with whitespace removed";
//! its own verification sample re-serialises the parsed body. A byte-level whitespace strip is
//! not the same thing when the sender escaped characters it did not have to (`\u00e9`, `\/`) or
//! wrote numbers in another form (`1.0`, `1E3`), so this module re-serialises the way
//! JavaScript does:
//! - object keys keep their order (a duplicate key keeps its first position and its last
//!   value, as `JSON.parse` does);
//! - strings are written with the minimal escapes (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`,
//!   other control characters as lowercase `\u00xx`; everything else literally, `/` included);
//! - every number is an IEEE double printed the way `Number.prototype.toString` prints it
//!   (shortest round-trip digits; `1e+21` and up and below `1e-6` in exponent form; `-0`
//!   as `0`), which also means integers beyond 2^53 lose precision exactly as they do in
//!   JavaScript.
//!
//! One known difference remains: serde_json's default float parser may be one ULP off for
//! numbers with more than 17 significant digits; such bodies still verify against the raw bytes.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value that remembers key order.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    // `as f64` rounds to the nearest double, which is what JavaScript's parser does with the
    // integer's decimal text.
    #[allow(clippy::cast_precision_loss)]
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v as f64))
    }

    #[allow(clippy::cast_precision_loss)]
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v as f64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Number(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(String, Node)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Node>()? {
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
        }
        Ok(Node::Object(entries))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// `JSON.stringify(JSON.parse(body))`, or `None` when `body` is not JSON.
pub(crate) fn compact(body: &[u8]) -> Option<Vec<u8>> {
    let node: Node = serde_json::from_slice(body).ok()?;
    let mut out = String::with_capacity(body.len());
    write_node(&node, &mut out);
    Some(out.into_bytes())
}

fn write_node(node: &Node, out: &mut String) {
    match node {
        Node::Null => out.push_str("null"),
        Node::Bool(true) => out.push_str("true"),
        Node::Bool(false) => out.push_str("false"),
        Node::Number(n) => out.push_str(&js_number(*n)),
        Node::String(s) => write_string(s, out),
        Node::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_node(item, out);
            }
            out.push(']');
        }
        Node::Object(entries) => {
            out.push('{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_node(value, out);
            }
            out.push('}');
        }
    }
}

/// A string with `JSON.stringify`'s escapes.
fn write_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let code = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[code >> 4]));
                out.push(char::from(HEX[code & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `Number.prototype.toString()` for a finite double (ECMA-262 `Number::toString`).
pub(crate) fn js_number(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    if !x.is_finite() {
        // JSON.stringify writes non-finite numbers as null; JSON cannot carry them anyway.
        return "null".to_owned();
    }
    if x < 0.0 {
        return format!("-{}", js_number(-x));
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `d[.ddd]e<exp>`.
    let scientific = format!("{x:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let k = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    let n = exponent + 1;
    let zeros = |count: i64| "0".repeat(usize::try_from(count).unwrap_or(0));
    if k <= n && n <= 21 {
        format!("{digits}{}", zeros(n - k))
    } else if 0 < n && n <= 21 {
        let split = usize::try_from(n).unwrap_or(0);
        let (whole, fraction) = digits.split_at(split);
        format!("{whole}.{fraction}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", zeros(-n))
    } else {
        let sign = if n - 1 < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        if rest.is_empty() {
            format!("{first}e{sign}{}", (n - 1).abs())
        } else {
            format!("{first}.{rest}e{sign}{}", (n - 1).abs())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(body: &str) -> String {
        String::from_utf8(compact(body.as_bytes()).unwrap_or_default()).unwrap_or_default()
    }

    #[test]
    fn numbers_print_like_javascript() {
        // Expected values are what node's `String(n)` prints.
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (-0.0, "0"),
            (123.456, "123.456"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1.23e22, "1.23e+22"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-10, "1.5e-10"),
            (-2.5e-8, "-2.5e-8"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (123_456_789.0, "123456789"),
            (0.000_123, "0.000123"),
            (12_345_678_901_234_567_890.0, "12345678901234567000"),
        ];
        for (value, expected) in cases {
            assert_eq!(js_number(*value), *expected, "{value}");
        }
    }

    #[test]
    fn compact_form_keeps_key_order_and_minimal_escapes() {
        let body = r#" {
            "z": 1.0, "a": [1E3, -0, 2.50, 12345678901234567890],
            "s": "\u00e9\/\u001F\n\"", "n": null, "t": true
        } "#;
        assert_eq!(
            canonical(body),
            "{\"z\":1,\"a\":[1000,0,2.5,12345678901234567000],\"s\":\"é/\\u001f\\n\\\"\",\"n\":null,\"t\":true}"
        );
    }

    #[test]
    fn duplicate_keys_keep_the_first_position_and_the_last_value() {
        assert_eq!(canonical(r#"{"a":1,"b":2,"a":3}"#), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn not_json_has_no_compact_form() {
        assert_eq!(compact(b"{\"a\":"), None);
        assert_eq!(compact(b""), None);
    }

    #[test]
    fn compact_input_is_unchanged() {
        let body = r#"{"id":"whs_1","data":{"order":{"amount":12050},"tags":["a","b"]},"x":"č"}"#;
        assert_eq!(canonical(body), body);
    }
}
