//! Ecomail's list webhook: `{"payload": {"email", "status": "SUBSCRIBED" | "UNSUBSCRIBED",
//! "listId", "campaignId"}}` → `loyalty.subscription.changed`.
//!
//! Ecomail does not sign it; the URL carries a secret token instead (checked by the HTTP
//! layer). The payload has no time, so `occurred_at` is when it arrived. Other statuses are
//! acknowledged and ignored (Ecomail documents only these two for the webhook).

use messages::Outgoing;
use messages::inbound::SubscriptionChangedBody;
use messages::loyalty::SubscriptionStatus;
use serde_json::Value;
use time::OffsetDateTime;

use super::{Parsed, digest_id};

/// The message type published.
pub const KIND: &str = "loyalty.subscription.changed";

fn list_id(value: Option<&Value>) -> Result<u64, String> {
    let id = match value {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        None | Some(Value::Null) => return Err("payload.listId is required".to_owned()),
        Some(_) => None,
    };
    id.filter(|id| *id > 0)
        .ok_or_else(|| "payload.listId must be a positive whole number".to_owned())
}

fn campaign_id(value: Option<&Value>) -> String {
    match value {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.trim().to_owned(),
        _ => String::new(),
    }
}

/// Parses the webhook body received at `now`. Errors name the field, never its value.
pub fn parse(body: &[u8], now: OffsetDateTime) -> Result<Parsed, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let payload = value
        .get("payload")
        .filter(|p| p.is_object())
        .ok_or("payload is required and must be an object")?;
    let email = payload
        .get("email")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or("payload.email is required and must be a string")?;
    let status = match payload.get("status").and_then(Value::as_str).map(str::trim) {
        Some(s) if s.eq_ignore_ascii_case("SUBSCRIBED") => SubscriptionStatus::Subscribed,
        Some(s) if s.eq_ignore_ascii_case("UNSUBSCRIBED") => SubscriptionStatus::Unsubscribed,
        Some(_) => return Ok(Parsed::Ignored("status is neither SUBSCRIBED nor UNSUBSCRIBED")),
        None => return Err("payload.status is required and must be a string".to_owned()),
    };
    let list_id = list_id(payload.get("listId"))?;
    let campaign = campaign_id(payload.get("campaignId"));
    let status_text = match status {
        SubscriptionStatus::Subscribed => "SUBSCRIBED",
        SubscriptionStatus::Unsubscribed => "UNSUBSCRIBED",
    };
    let day = now.date().to_string();
    let message_id = digest_id(
        "ecomail",
        &[
            &email.to_lowercase(),
            status_text,
            &list_id.to_string(),
            &campaign,
            &day,
        ],
    );
    let body = SubscriptionChangedBody {
        email: email.to_owned(),
        status,
        list_id,
        occurred_at: now,
        event_id: None,
    };
    Outgoing::json(KIND, message_id, None, &body)
        .map(Parsed::Message)
        .map_err(|e| format!("cannot encode the message: {e}"))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-05-04 10:00:00 UTC);

    fn message(body: &str, now: OffsetDateTime) -> Outgoing {
        match parse(body.as_bytes(), now) {
            Ok(Parsed::Message(message)) => message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn a_subscription_becomes_loyalty_subscription_changed() {
        let out = message(
            r#"{"payload":{"email":"Jana@Example.com","status":"SUBSCRIBED","listId":7,"campaignId":null}}"#,
            NOW,
        );
        assert_eq!(out.kind, KIND);
        let body: Value = serde_json::from_slice(&out.body).unwrap_or_default();
        assert_eq!(body["email"], "Jana@Example.com");
        assert_eq!(body["status"], "SUBSCRIBED");
        assert_eq!(body["list_id"], 7);
        assert_eq!(body["occurred_at"], "2026-05-04T10:00:00Z");
        assert!(body.get("event_id").is_none());
        assert!(out.message_id.starts_with("ecomail:") && !out.message_id.contains('@'));
    }

    #[test]
    fn ids_repeat_within_a_day_only() {
        let body = r#"{"payload":{"email":"a@example.com","status":"UNSUBSCRIBED","listId":"7"}}"#;
        let first = message(body, NOW);
        let retry = message(body, NOW + time::Duration::hours(3));
        let upper = message(
            r#"{"payload":{"email":"A@EXAMPLE.COM","status":"UNSUBSCRIBED","listId":7}}"#,
            NOW,
        );
        let next_day = message(body, NOW + time::Duration::days(1));
        let other_status = message(
            r#"{"payload":{"email":"a@example.com","status":"SUBSCRIBED","listId":7}}"#,
            NOW,
        );
        assert_eq!(first.message_id, retry.message_id);
        assert_eq!(
            first.message_id, upper.message_id,
            "addresses compare case-insensitively"
        );
        assert_ne!(first.message_id, next_day.message_id);
        assert_ne!(first.message_id, other_status.message_id);
    }

    #[test]
    fn malformed_payloads_are_refused_without_echoing_values() {
        for (body, field) in [
            ("not json", "JSON"),
            (r#"{"email":"a@example.com"}"#, "payload"),
            (r#"{"payload":{"status":"SUBSCRIBED","listId":7}}"#, "payload.email"),
            (r#"{"payload":{"email":"a@example.com","listId":7}}"#, "payload.status"),
            (
                r#"{"payload":{"email":"a@example.com","status":"SUBSCRIBED"}}"#,
                "payload.listId",
            ),
            (
                r#"{"payload":{"email":"a@example.com","status":"SUBSCRIBED","listId":"seven"}}"#,
                "payload.listId",
            ),
            (
                r#"{"payload":{"email":"a@example.com","status":"SUBSCRIBED","listId":0}}"#,
                "payload.listId",
            ),
        ] {
            let error = parse(body.as_bytes(), NOW).err().unwrap_or_default();
            assert!(error.contains(field), "{body}: {error}");
            assert!(!error.contains("a@example.com"), "{error}");
        }
    }

    #[test]
    fn other_statuses_are_ignored() {
        let parsed = parse(
            br#"{"payload":{"email":"a@example.com","status":"BOUNCED","listId":7}}"#,
            NOW,
        );
        assert!(matches!(parsed, Ok(Parsed::Ignored(_))), "{parsed:?}");
    }
}
