//! Voucherify project webhooks → `voucher.redeemed`, one message per customer event.
//!
//! The envelope is `{id: "whs_…", project_id, created_at, type, data, source, event: {id,
//! type, created_at, …}}` (PROVIDERS.md). `type`, without an optional `customer.` prefix, must
//! be one of the ten customer events of the `voucher.redeemed` schema (redemption
//! succeeded / failed / rolled back / rollback failed, publication succeeded / failed,
//! rewarded, rewarded loyalty points, validation succeeded / failed); any other type
//! (`customer.created`, `voucher.updated`, …) is acknowledged and ignored, as is a customer
//! event whose customer has no `source_id` (nothing downstream could address it).
//!
//! Fields are read from `data` (first match wins):
//! - customer: `customer`, `redemption.customer`; `customer_source_id` = its `source_id`,
//!   `customer_id` = its `id`;
//! - `voucher_code`: `voucher.code`, `redemption.voucher.code`;
//! - `campaign`: `campaign.name`, `voucher.campaign`, `redemption.voucher.campaign`;
//! - order: `order`, `redemption.order`: `order_id` = `source_id` or `id`; `amount` and
//!   `discount` (`total_discount_amount` or `discount_amount`) are in the smallest currency
//!   unit at Voucherify and published in major units (÷ 100);
//! - `points`: `points`, `reward.points`, `reward.loyalty.points`, `loyalty.points`;
//! - `failure_reason` (`*.failed` only): `redemption.failure_code`, `validation.failure_code`,
//!   `publication.failure_code`, `failure_code`, `error.key`;
//! - `occurred_at`: `event.created_at`, then the envelope's `created_at`, then
//!   `redemption.date`, then the arrival time;
//! - `metadata`: `redemption_id`, `publication_id`, `validation_id` when present, then the scalar
//!   entries of `redemption.metadata` / `publication.metadata` whose keys are valid property
//!   names, at most 32 in all.

use messages::Outgoing;
use messages::inbound::VoucherEventBody;
use messages::voucher::{CustomerEvent, Metadata};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Parsed;

/// The message type published.
pub const KIND: &str = "voucher.redeemed";
/// The most metadata entries the schema allows.
const MAX_METADATA: usize = 32;
/// The longest failure reason the schema allows.
const MAX_FAILURE_REASON: usize = 200;

/// The customer event a webhook `type` names, if it is one.
pub fn customer_event(kind: &str) -> Option<CustomerEvent> {
    let name = kind.strip_prefix("customer.").unwrap_or(kind);
    CustomerEvent::ALL.into_iter().find(|event| event.as_str() == name)
}

/// A non-empty string (or a number, as text) at the first of `pointers` that has one.
fn text(data: &Value, pointers: &[&str]) -> Option<String> {
    pointers.iter().find_map(|pointer| match data.pointer(pointer) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn object<'a>(data: &'a Value, pointers: &[&str]) -> Option<&'a Value> {
    pointers
        .iter()
        .find_map(|pointer| data.pointer(pointer).filter(|v| v.is_object()))
}

/// An amount in the smallest currency unit, in major units; negative amounts are left out.
fn major_units(order: &Value, keys: &[&str]) -> Option<f64> {
    keys.iter()
        .find_map(|key| order.get(*key).and_then(Value::as_f64))
        .filter(|minor| *minor >= 0.0 && minor.is_finite())
        .map(|minor| minor / 100.0)
}

fn valid_metadata_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && key.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn metadata(data: &Value) -> Metadata {
    let mut out = Metadata::new();
    for (key, pointer) in [
        ("redemption_id", "/redemption/id"),
        ("publication_id", "/publication/id"),
        ("validation_id", "/validation/id"),
    ] {
        if let Some(id) = text(data, &[pointer]) {
            out.insert(key.to_owned(), Value::String(id));
        }
    }
    for pointer in ["/redemption/metadata", "/publication/metadata"] {
        let Some(entries) = data.pointer(pointer).and_then(Value::as_object) else {
            continue;
        };
        for (key, value) in entries {
            if out.len() >= MAX_METADATA {
                return out;
            }
            let scalar = matches!(
                value,
                Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null
            );
            if scalar && valid_metadata_key(key) && !out.contains_key(key) {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out
}

fn timestamp(envelope: &Value, data: &Value) -> Option<OffsetDateTime> {
    [
        envelope.pointer("/event/created_at"),
        envelope.get("created_at"),
        data.pointer("/redemption/date"),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_str)
    .find_map(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
}

fn failure_reason(event: CustomerEvent, data: &Value) -> Option<String> {
    let failed = matches!(
        event,
        CustomerEvent::RedemptionFailed
            | CustomerEvent::RedemptionRollbackFailed
            | CustomerEvent::PublicationFailed
            | CustomerEvent::ValidationFailed
    );
    if !failed {
        return None;
    }
    text(
        data,
        &[
            "/redemption/failure_code",
            "/validation/failure_code",
            "/publication/failure_code",
            "/failure_code",
            "/error/key",
        ],
    )
    .map(|reason| reason.chars().take(MAX_FAILURE_REASON).collect())
}

/// The envelope id: 1 to 128 letters, digits, `_` or `-`.
fn envelope_id(envelope: &Value) -> Result<String, String> {
    let id = envelope.get("id").and_then(Value::as_str).ok_or("id is required")?;
    let valid =
        !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(id.to_owned())
    } else {
        Err("id must be 1 to 128 letters, digits, `_` or `-`".to_owned())
    }
}

/// Parses a webhook whose signature was already verified, received at `now`. Errors name the
/// field, never its value.
pub fn parse(body: &[u8], now: OffsetDateTime) -> Result<Parsed, String> {
    let envelope: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if !envelope.is_object() {
        return Err("the body must be a JSON object".to_owned());
    }
    let id = envelope_id(&envelope)?;
    let kind = envelope
        .get("type")
        .and_then(Value::as_str)
        .ok_or("type is required and must be a string")?;
    let data = envelope
        .get("data")
        .filter(|d| d.is_object())
        .ok_or("data is required and must be an object")?;
    let Some(event) = customer_event(kind) else {
        return Ok(Parsed::Ignored("not a customer event"));
    };
    let customer = object(data, &["/customer", "/redemption/customer"]);
    let Some(customer_source_id) = customer.and_then(|c| text(c, &["/source_id"])) else {
        return Ok(Parsed::Ignored("the customer has no source_id"));
    };
    let order = object(data, &["/order", "/redemption/order"]);
    let body = VoucherEventBody {
        event,
        event_id: text(&envelope, &["/event/id"]).or_else(|| Some(id.clone())),
        customer_source_id,
        customer_id: customer.and_then(|c| text(c, &["/id"])),
        voucher_code: text(data, &["/voucher/code", "/redemption/voucher/code"]),
        campaign: text(
            data,
            &["/campaign/name", "/voucher/campaign", "/redemption/voucher/campaign"],
        ),
        order_id: order.and_then(|o| text(o, &["/source_id", "/id"])),
        amount: order.and_then(|o| major_units(o, &["amount"])),
        discount: order.and_then(|o| major_units(o, &["total_discount_amount", "discount_amount"])),
        currency: None,
        points: ["/points", "/reward/points", "/reward/loyalty/points", "/loyalty/points"]
            .iter()
            .find_map(|p| data.pointer(p).and_then(Value::as_i64)),
        failure_reason: failure_reason(event, data),
        occurred_at: timestamp(&envelope, data).unwrap_or(now),
        metadata: metadata(data),
    };
    Outgoing::json(KIND, format!("voucherify:{id}"), None, &body)
        .map(Parsed::Message)
        .map_err(|e| format!("cannot encode the message: {e}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-05-04 10:00:00 UTC);

    fn parse_value(envelope: &Value) -> Result<Parsed, String> {
        parse(&serde_json::to_vec(envelope).unwrap_or_default(), NOW)
    }

    fn published(envelope: &Value) -> (String, Value) {
        match parse_value(envelope) {
            Ok(Parsed::Message(m)) => (m.message_id, serde_json::from_slice(&m.body).unwrap_or_default()),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    fn redemption() -> Value {
        json!({
            "id": "whs_abc123",
            "project_id": "proj_1",
            "created_at": "2026-05-04T09:00:00.000Z",
            "type": "redemption.succeeded",
            "data": {
                "customer": {"id": "cust_1", "source_id": "c-42", "email": "jana@example.com"},
                "campaign": {"name": "Welcome 10"},
                "voucher": {"code": "WELCOME-1"},
                "order": {"id": "ord_1", "source_id": "o-9", "amount": 12050, "total_discount_amount": 1000},
                "redemption": {"id": "r_1", "date": "2026-05-04T08:59:00Z", "metadata": {"store": "Brno", "bad key": 1, "nested": {"x": 1}}},
            },
            "source": {"id": "wh_1", "object": "webhook", "target_url": "http://h"},
            "event": {"id": "evcus_1", "type": "redemption.succeeded", "created_at": "2026-05-04T09:00:01Z"},
        })
    }

    #[test]
    fn a_redemption_maps_every_field() {
        let (id, body) = published(&redemption());
        assert_eq!(id, "voucherify:whs_abc123");
        assert_eq!(body["event"], "redemption.succeeded");
        assert_eq!(body["event_id"], "evcus_1");
        assert_eq!(body["customer_source_id"], "c-42");
        assert_eq!(body["customer_id"], "cust_1");
        assert_eq!(body["voucher_code"], "WELCOME-1");
        assert_eq!(body["campaign"], "Welcome 10");
        assert_eq!(body["order_id"], "o-9");
        assert_eq!(body["amount"], 120.5);
        assert_eq!(body["discount"], 10.0);
        assert_eq!(body["occurred_at"], "2026-05-04T09:00:01Z");
        assert_eq!(body["metadata"], json!({"redemption_id": "r_1", "store": "Brno"}));
        assert!(body.get("failure_reason").is_none() && body.get("currency").is_none());
        assert!(
            !body.to_string().contains("jana@"),
            "the customer's address is not carried"
        );
    }

    #[test]
    fn every_customer_event_is_recognised_with_or_without_the_prefix() {
        for event in CustomerEvent::ALL {
            assert_eq!(customer_event(event.as_str()), Some(event));
            assert_eq!(customer_event(&format!("customer.{}", event.as_str())), Some(event));
        }
        assert_eq!(customer_event("customer.created"), None);
        assert_eq!(customer_event("voucher.published"), None);
    }

    #[test]
    fn failures_carry_their_reason_and_rewards_their_points() {
        let mut failed = redemption();
        failed["type"] = json!("customer.redemption.failed");
        failed["data"]["redemption"]["failure_code"] = json!("voucher_expired");
        let (_, body) = published(&failed);
        assert_eq!(body["event"], "redemption.failed");
        assert_eq!(body["failure_reason"], "voucher_expired");

        let rewarded = json!({
            "id": "whs_2", "type": "rewarded.loyalty_points", "created_at": "2026-05-04T09:00:00Z",
            "data": {"customer": {"source_id": "c-1"}, "points": 150},
        });
        let (_, body) = published(&rewarded);
        assert_eq!(body["points"], 150);
        assert_eq!(body["event_id"], "whs_2", "the envelope id when the event has none");
    }

    #[test]
    fn other_events_and_anonymous_customers_are_ignored() {
        let mut created = redemption();
        created["type"] = json!("customer.created");
        assert!(matches!(parse_value(&created), Ok(Parsed::Ignored(_))));
        let mut anonymous = redemption();
        anonymous["data"]["customer"] = json!({"id": "cust_1"});
        assert!(matches!(parse_value(&anonymous), Ok(Parsed::Ignored(_))));
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        for (envelope, field) in [
            (json!([]), "object"),
            (json!({"type": "rewarded", "data": {}}), "id"),
            (json!({"id": "whs 1", "type": "rewarded", "data": {}}), "id"),
            (json!({"id": "whs_1", "data": {}}), "type"),
            (json!({"id": "whs_1", "type": "rewarded"}), "data"),
            (json!({"id": "whs_1", "type": "rewarded", "data": "x"}), "data"),
        ] {
            let error = parse_value(&envelope).err().unwrap_or_default();
            assert!(error.contains(field), "{envelope}: {error}");
        }
    }

    #[test]
    fn metadata_is_capped() {
        let mut many = redemption();
        let entries: serde_json::Map<String, Value> = (0..50).map(|i| (format!("k{i:02}"), json!(i))).collect();
        many["data"]["redemption"]["metadata"] = Value::Object(entries);
        let (_, body) = published(&many);
        assert_eq!(
            body["metadata"].as_object().map(serde_json::Map::len),
            Some(MAX_METADATA)
        );
    }
}
