//! What each vendor sends, turned into Switchyard messages. Pure functions: no I/O, no clock
//! (the caller passes "now"), so every mapping rule is unit-tested.
//!
//! - [`ecomail`]: the list webhook → `loyalty.subscription.changed`.
//! - [`salesmanago`]: the opt-in / opt-out callback → `contact.consent.changed`.
//! - [`voucherify`]: project webhooks → `voucher.redeemed` (every customer event).
//! - [`spotler`]: pulled bounces and changed contacts → `contact.bounced`, `contact.updated`.
//!
//! # Message ids (the deduplication keys)
//! Each message id is derived from what identifies the vendor's event, so a vendor retry or a
//! re-pulled window produces the same id, which the processed-event ledger and downstream
//! consumers dedup on:
//! - Voucherify: `voucherify:<envelope id>` (`whs_…`, the same on every retry of a delivery).
//! - Ecomail (no delivery id, no timestamp): `ecomail:<hash>` of the normalised payload (e-mail
//!   lowercased, status, list, campaign) and the UTC day it arrived. A retry on the same day is
//!   a duplicate; the same change repeated on the same day (subscribe, unsubscribe, subscribe
//!   again) is published once per day and status, which leaves the subscriber's state right.
//! - SALESmanago (no id either): `salesmanago:<hash>` of the e-mail (lowercased), opt-in or
//!   opt-out, and the UTC day.
//! - Spotler: `spotler-bounce:<hash>` of external id, date, type and mailing; `spotler-update:
//!   <hash>` of external id and `lastChanged` (or the contact's content when Spotler gives no
//!   date).
//!
//! `<hash>` is the first 128 bits of SHA-256 in hex: collisions are out of reach, and the id
//! never shows an e-mail address.

pub mod ecomail;
pub mod salesmanago;
pub mod spotler;
pub mod voucherify;

use messages::Outgoing;
use sha2::{Digest, Sha256};

use crate::verify::hex;

/// What a webhook or callback amounts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A message to publish.
    Message(Outgoing),
    /// Valid, but nothing Switchyard acts on (e.g. a Voucherify event that is not a customer
    /// event); answered 2xx so the vendor does not retry it.
    Ignored(&'static str),
}

/// `<prefix>:<first 128 bits of SHA-256 over the parts, separated by NUL>`.
pub(crate) fn digest_id(prefix: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update([0u8]);
        }
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    format!("{prefix}:{}", hex(digest.get(..16).unwrap_or_default()))
}

/// An id as logs may show it: itself, unless it looks like an e-mail address (external ids
/// sometimes are one), which logs never carry.
pub fn loggable_id(id: &str) -> &str {
    if id.contains('@') { "<e-mail address>" } else { id }
}

/// A plausible e-mail address (the schemas check the exact format): one `@`, no whitespace,
/// a dotted domain, at most 254 characters.
pub(crate) fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !email.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_short_and_separate_their_parts() {
        let id = digest_id("x", &["a", "b"]);
        assert_eq!(id, digest_id("x", &["a", "b"]));
        assert_eq!(id.len(), 2 + 32);
        assert_ne!(id, digest_id("x", &["ab", ""]), "parts are separated");
        assert!(!digest_id("x", &["jana@example.com"]).contains('@'));
        assert_eq!(loggable_id("c-1"), "c-1");
        assert_eq!(loggable_id("jana@example.com"), "<e-mail address>");
    }

    #[test]
    fn plausible_emails() {
        assert!(plausible_email("a+b@example.com"));
        for bad in ["", "a", "a@b", "a b@c.cz", "@c.cz", "a@b@c.cz"] {
            assert!(!plausible_email(bad), "{bad}");
        }
    }
}
