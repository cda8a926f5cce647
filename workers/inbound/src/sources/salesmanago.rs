//! SALESmanago's opt-in and opt-out callbacks → `contact.consent.changed`.
//!
//! SALESmanago calls the configured URL template with `$email$` replaced by the address; the
//! template also carries `key`, the hex SHA-1 of the address followed by a shared secret
//! (checked by the HTTP layer). The query is percent-decoded without turning `+` into a space:
//! SALESmanago may substitute the address unencoded, and `+` is common in addresses
//! (`jana+news@…`), while a space never is.

use messages::Outgoing;
use messages::inbound::{Consent, ConsentChannel, ConsentSource, ContactConsentChanged};
use percent_encoding::percent_decode_str;
use time::OffsetDateTime;

use super::digest_id;

/// The message type published.
pub const KIND: &str = "contact.consent.changed";

/// The `email` and `key` query parameters.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CallbackQuery {
    /// The address, decoded.
    pub email: Option<String>,
    /// The key, decoded.
    pub key: Option<String>,
}

impl std::fmt::Debug for CallbackQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackQuery")
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Reads `email` and `key` from a raw query string (the first of each wins).
pub fn parse_query(raw: Option<&str>) -> Result<CallbackQuery, String> {
    let mut query = CallbackQuery::default();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "email" => &mut query.email,
            "key" => &mut query.key,
            _ => continue,
        };
        if slot.is_none() {
            let decoded = percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("{name} is not valid percent-encoded UTF-8"))?;
            *slot = Some(decoded.trim().to_owned()).filter(|v| !v.is_empty());
        }
    }
    Ok(query)
}

/// The consent change for `email`, received at `now`.
pub fn message(email: &str, consent: Consent, now: OffsetDateTime) -> Result<Outgoing, String> {
    let day = now.date().to_string();
    let message_id = digest_id("salesmanago", &[&email.to_lowercase(), consent.as_str(), &day]);
    let body = ContactConsentChanged {
        source: ConsentSource::Salesmanago,
        email: email.to_owned(),
        consent,
        channel: ConsentChannel::Email,
        occurred_at: now,
    };
    Outgoing::json(KIND, message_id, None, &body).map_err(|e| format!("cannot encode the message: {e}"))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-05-04 10:00:00 UTC);

    #[test]
    fn queries_decode_percent_but_keep_plus() {
        let query = parse_query(Some("email=jana+news%40example.com&key=AB12&x=1&email=other")).unwrap_or_default();
        assert_eq!(query.email.as_deref(), Some("jana+news@example.com"));
        assert_eq!(query.key.as_deref(), Some("AB12"));
        let encoded = parse_query(Some("key=k&email=jana%2Bnews%40example.com")).unwrap_or_default();
        assert_eq!(encoded.email.as_deref(), Some("jana+news@example.com"));
        assert_eq!(parse_query(None), Ok(CallbackQuery::default()));
        assert_eq!(parse_query(Some("email=&key")), Ok(CallbackQuery::default()));
        assert!(parse_query(Some("email=%FF")).is_err());
        assert!(!format!("{query:?}").contains("jana"), "Debug hides the address");
    }

    #[test]
    fn messages_dedup_per_address_consent_and_day() {
        let opt_in = message("Jana@example.com", Consent::OptIn, NOW).unwrap_or_else(|e| panic!("{e}"));
        let again = message("jana@example.com", Consent::OptIn, NOW + time::Duration::hours(1));
        let opt_out = message("jana@example.com", Consent::OptOut, NOW);
        let tomorrow = message("jana@example.com", Consent::OptIn, NOW + time::Duration::days(1));
        assert_eq!(opt_in.kind, KIND);
        assert_eq!(Some(&opt_in.message_id), again.as_ref().ok().map(|m| &m.message_id));
        assert_ne!(Some(&opt_in.message_id), opt_out.as_ref().ok().map(|m| &m.message_id));
        assert_ne!(Some(&opt_in.message_id), tomorrow.as_ref().ok().map(|m| &m.message_id));
        let body: serde_json::Value = serde_json::from_slice(&opt_in.body).unwrap_or_default();
        assert_eq!(body["consent"], "opt_in");
        assert_eq!(body["source"], "salesmanago");
        assert_eq!(body["channel"], "email");
        assert_eq!(body["email"], "Jana@example.com");
    }
}
