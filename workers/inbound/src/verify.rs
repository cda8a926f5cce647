//! Authenticating vendors' calls, every comparison in constant time: the Ecomail URL token,
//! the SALESmanago callback key (hex SHA-1 of e-mail + secret) and the Voucherify signature
//! (hex HMAC-SHA256 of the body with the project's webhook secret).
//!
//! # Which bytes the Voucherify signature covers
//! PROVIDERS.md: "hex HMAC-SHA256 over the JSON body with whitespace removed". A signature is
//! accepted when it matches either
//! 1. the raw body exactly as received (what a sender that posts its compact serialisation,
//!    the normal case, signs), or
//! 2. the body's compact form as JavaScript produces it, `JSON.stringify(JSON.parse(body))`
//!    (see [`crate::canonical`]): key order kept, whitespace removed, minimal escapes,
//!    JavaScript number formatting. This covers a pretty-printed or differently escaped body
//!    whose signature was computed over the compact form.
//!
//! Both are checked with [`hmac::Mac::verify_slice`] (constant time) before the body is parsed
//! into any type; the raw form is tried first, so the common case parses nothing at all.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::canonical;

/// Compares two byte strings without an early exit on the first difference. Only the length
/// can leak, and every caller compares values of a public, fixed length (digests).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decodes hex (either case); `None` for anything else.
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    text.chunks(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Whether `given` equals the configured token. Both are hashed first, so the comparison
/// takes the same time whatever the lengths.
pub(crate) fn token_matches(given: &str, expected: &SecretString) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.expose_secret().as_bytes());
    ct_eq(&given, &expected)
}

/// Whether `key` (hex, either case) is SHA-1 of `email` followed by the secret, the key
/// SALESmanago's recommended callback template carries.
pub(crate) fn salesmanago_key_matches(email: &str, key: &str, secret: &SecretString) -> bool {
    let Some(given) = decode_hex(key) else {
        return false;
    };
    let mut hasher = Sha1::new();
    hasher.update(email.as_bytes());
    hasher.update(secret.expose_secret().as_bytes());
    ct_eq(&given, &hasher.finalize())
}

/// Why a Voucherify signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureError {
    /// The header is not hex of an HMAC-SHA256's length.
    Malformed,
    /// It matches neither the raw body nor its compact form.
    Mismatch,
}

/// Which form of the body the signature covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signed {
    /// The bytes as received.
    Raw,
    /// `JSON.stringify(JSON.parse(body))`.
    Compact,
}

impl Signed {
    /// A label for logs and metrics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Compact => "compact",
        }
    }
}

fn hmac_matches(secret: &SecretString, body: &[u8], signature: &[u8]) -> bool {
    match Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            mac.verify_slice(signature).is_ok()
        }
        // HMAC takes keys of any length.
        Err(_) => false,
    }
}

/// Checks `x-voucherify-signature` (see the module docs for the two accepted forms).
pub(crate) fn voucherify_signature(body: &[u8], header: &str, secret: &SecretString) -> Result<Signed, SignatureError> {
    let signature = decode_hex(header)
        .filter(|s| s.len() == 32)
        .ok_or(SignatureError::Malformed)?;
    if hmac_matches(secret, body, &signature) {
        return Ok(Signed::Raw);
    }
    match canonical::compact(body) {
        Some(compact) if compact != body && hmac_matches(secret, &compact, &signature) => Ok(Signed::Compact),
        _ => Err(SignatureError::Mismatch),
    }
}

/// Hex HMAC-SHA256 of `body` (tests and the sandbox sign this way).
#[cfg(test)]
pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        assert_eq!(decode_hex("00aBff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("é1"), None);
    }

    #[test]
    fn tokens_compare_whatever_the_length() {
        let token = secret("0123456789abcdef0123");
        assert!(token_matches("0123456789abcdef0123", &token));
        assert!(!token_matches("0123456789abcdef012", &token));
        assert!(!token_matches("", &token));
    }

    #[test]
    fn salesmanago_keys_are_sha1_of_email_and_secret() {
        // SHA-1("abc").
        assert!(salesmanago_key_matches(
            "a",
            "A9993E364706816ABA3E25717850C26C9CD0D89D",
            &secret("bc")
        ));
        assert!(!salesmanago_key_matches(
            "a",
            "a9993e364706816aba3e25717850c26c9cd0d89e",
            &secret("bc")
        ));
        assert!(!salesmanago_key_matches("a", "not-hex", &secret("bc")));
        assert!(!salesmanago_key_matches("a", "", &secret("bc")));
    }

    #[test]
    fn signatures_over_raw_or_compact_bodies_verify() {
        let key = secret("whsec");
        let compact = br#"{"id":"whs_1","type":"redemption.succeeded","data":{"amount":100}}"#;
        let signature = sign("whsec", compact);
        assert_eq!(voucherify_signature(compact, &signature, &key), Ok(Signed::Raw));
        let pretty =
            b"{\n  \"id\": \"whs_1\",\n  \"type\": \"redemption.succeeded\",\n  \"data\": { \"amount\": 100.0 }\n}";
        assert_eq!(voucherify_signature(pretty, &signature, &key), Ok(Signed::Compact));
        assert_eq!(
            voucherify_signature(pretty, &signature.to_uppercase(), &key),
            Ok(Signed::Compact)
        );
    }

    #[test]
    fn tampered_or_malformed_signatures_are_refused() {
        let key = secret("whsec");
        let body = br#"{"id":"whs_1","data":{"amount":100}}"#;
        let signature = sign("whsec", body);
        let tampered = br#"{"id":"whs_1","data":{"amount":900}}"#;
        assert_eq!(
            voucherify_signature(tampered, &signature, &key),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            voucherify_signature(body, &sign("other", body), &key),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(voucherify_signature(body, "abcd", &key), Err(SignatureError::Malformed));
        assert_eq!(voucherify_signature(body, "", &key), Err(SignatureError::Malformed));
        assert_eq!(
            voucherify_signature(b"not json", &sign("whsec", b"x"), &key),
            Err(SignatureError::Mismatch)
        );
    }
}
