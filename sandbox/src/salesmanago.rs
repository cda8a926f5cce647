//! SALESmanago API v2 emulation, served under `/salesmanago` (PROVIDERS.md section 5).
//!
//! | method and path | answer (always HTTP 200 unless a fault or the `http429` limit mode) |
//! |---|---|
//! | `POST /api/contact/upsert` | `{"success": true, "message": [], "contactId": "..."}` |
//! | `POST /api/v2/contact/addContactExtEvent` | `{"success": true, "message": [], "eventId": "..."}` |
//! | `POST /api/contact/batchupsert` | `{"success": true, "message": [], "contactIds": {"<email>": "<id>"}}` |
//!
//! Every body carries the account's `clientId`, any `apiKey`, `requestTime` (Unix ms) and
//! `sha` = hex SHA-1 of `apiKey + clientId + apiSecret`; otherwise the answer is 200
//! `{"success": false, "message": ["Not authenticated"]}`. `owner` must name the account user.
//! Validation failures are 200 `{"success": false, "message": ["..."]}`; messages name fields,
//! never values. Over the rate limit the answer depends on the limit mode: 429 with
//! `Retry-After`, or 200 `{"success": false, "message": ["API limit exceeded"]}`. Forced
//! faults use the real HTTP status with a `success: false` body.

pub(crate) mod store;

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};
use time::{Date, macros::format_description};

use self::store::{ContactUpsert, EventContact, SalesmanagoEvent, StoreError};
use crate::{
    SalesmanagoLimitMode, Sandbox,
    provider::Refusal,
    support::{constant_time_eq, hex, is_plausible_email, now_utc},
};

/// The external event types accepted (the documented list plus CANCELLATION, RETURN, SURVEY).
pub const SALESMANAGO_EVENT_TYPES: [&str; 16] = [
    "PURCHASE",
    "CART",
    "VISIT",
    "PHONE_CALL",
    "OTHER",
    "RESERVATION",
    "CANCELLED",
    "ACTIVATION",
    "MEETING",
    "OFFER",
    "DOWNLOAD",
    "LOGIN",
    "TRANSACTION",
    "CANCELLATION",
    "RETURN",
    "SURVEY",
];

/// The most contacts one `batchupsert` may carry.
const MAX_BATCH_CONTACTS: usize = 1000;
/// The plain text fields of `contact`.
const CONTACT_FIELDS: [&str; 6] = ["name", "phone", "fax", "company", "state", "externalId"];
/// The fields of `contact.address`.
const ADDRESS_FIELDS: [&str; 4] = ["streetAddress", "zipCode", "city", "country"];

/// The SALESmanago routes, relative to the prefix.
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/api/contact/upsert", post(upsert))
        .route("/api/contact/batchupsert", post(batch_upsert))
        .route("/api/v2/contact/addContactExtEvent", post(add_event))
        .fallback(|| async { failure_with(StatusCode::NOT_FOUND, "Not found") })
        .method_not_allowed_fallback(|| async { failure_with(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed") })
}

/// `{"success": false, "message": [text]}` with `status`.
fn failure_with(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({"success": false, "message": [text]}))).into_response()
}

/// The usual failure: HTTP 200 with `success: false`.
fn failure(text: &str) -> Response {
    failure_with(StatusCode::OK, text)
}

fn with_retry_after(mut response: Response, retry_after_secs: Option<u64>) -> Response {
    if let Some(secs) = retry_after_secs {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// SALESmanago's answer to a refusal by the shared machinery.
pub(crate) fn refusal(sandbox: &Sandbox, refusal: Refusal) -> Response {
    match refusal {
        Refusal::RateLimited { retry_after_secs } => match sandbox.salesmanago_limit_mode() {
            SalesmanagoLimitMode::Http429 => with_retry_after(
                failure_with(StatusCode::TOO_MANY_REQUESTS, "API limit exceeded"),
                Some(retry_after_secs),
            ),
            SalesmanagoLimitMode::SuccessFalse => failure("API limit exceeded"),
        },
        Refusal::Forced {
            status,
            retry_after_secs,
        } => {
            let text = if status == StatusCode::TOO_MANY_REQUESTS {
                "API limit exceeded"
            } else {
                "Forced failure"
            };
            with_retry_after(failure_with(status, text), retry_after_secs)
        }
        Refusal::InjectedError => failure_with(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
        Refusal::PayloadTooLarge => failure_with(StatusCode::PAYLOAD_TOO_LARGE, "Request too large"),
    }
}

/// Checks the authentication fields of the body: `Some` is the 200 `success: false` answer.
pub(crate) fn auth_failure(sandbox: &Sandbox, body: &Bytes) -> Option<Response> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Some(failure("Request body must be a JSON object"));
    };
    let creds = &sandbox.config().salesmanago;
    let text = |name: &str| body.get(name).and_then(Value::as_str).filter(|v| !v.is_empty());
    let (Some(client_id), Some(api_key), Some(sha)) = (text("clientId"), text("apiKey"), text("sha")) else {
        return Some(failure("Not authenticated"));
    };
    if body.get("requestTime").and_then(Value::as_i64).is_none() {
        return Some(failure("Not authenticated"));
    }
    let expected = hex(&Sha1::digest(
        format!("{api_key}{client_id}{}", creds.api_secret).as_bytes(),
    ));
    let sha_ok = constant_time_eq(sha.to_ascii_lowercase().as_bytes(), expected.as_bytes());
    let client_ok = constant_time_eq(client_id.as_bytes(), creds.client_id.as_bytes());
    if sha_ok && client_ok {
        None
    } else {
        Some(failure("Not authenticated"))
    }
}

/// The body, already known to be a JSON object (auth ran first).
fn object(body: &Bytes) -> Map<String, Value> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// `owner` must be the account user.
fn check_owner(sandbox: &Sandbox, body: &Map<String, Value>) -> Result<(), String> {
    match body.get("owner").and_then(Value::as_str) {
        Some(owner) if owner.trim().eq_ignore_ascii_case(&sandbox.config().salesmanago.owner) => Ok(()),
        Some(_) => Err("Owner is not a user of this account".to_owned()),
        None => Err("owner is required".to_owned()),
    }
}

fn optional_text(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(_) => Err(format!("{path}{key} must be a string")),
    }
}

fn flag(map: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(value)) => Ok(*value),
        Some(_) => Err(format!("{key} must be a boolean")),
    }
}

fn string_list(map: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(tag) if !tag.trim().is_empty() => Ok(tag.trim().to_owned()),
                _ => Err(format!("{key} must be an array of non-empty strings")),
            })
            .collect(),
        Some(_) => Err(format!("{key} must be an array of strings")),
    }
}

fn email_field(value: Option<&Value>, field: &str) -> Result<String, String> {
    match value {
        Some(Value::String(email)) if is_plausible_email(email.trim()) => Ok(email.trim().to_lowercase()),
        None | Some(Value::Null) => Err(format!("{field} is required")),
        Some(Value::String(email)) if email.trim().is_empty() => Err(format!("{field} is required")),
        Some(_) => Err(format!("{field} is not a valid e-mail address")),
    }
}

/// Validates one upsert (the body of `/api/contact/upsert` or an `upsertDetails` entry).
fn parse_upsert(map: &Map<String, Value>) -> Result<ContactUpsert, String> {
    let contact = match map.get("contact") {
        Some(Value::Object(contact)) => contact,
        None | Some(Value::Null) => return Err("contact is required".to_owned()),
        Some(_) => return Err("contact must be an object".to_owned()),
    };
    let mut upsert = ContactUpsert {
        email: email_field(contact.get("email"), "contact.email")?,
        ..ContactUpsert::default()
    };
    upsert.new_email = match map.get("newEmail") {
        None | Some(Value::Null) => None,
        value => Some(email_field(value, "newEmail")?),
    };
    for field in CONTACT_FIELDS {
        if let Some(value) = optional_text(contact, field, "contact.")? {
            upsert.fields.push((field, value));
        }
    }
    upsert.address = match contact.get("address") {
        None | Some(Value::Null) => None,
        Some(Value::Object(address)) => {
            if let Some(unknown) = address.keys().find(|key| !ADDRESS_FIELDS.contains(&key.as_str())) {
                return Err(format!("contact.address.{unknown} is not a known address field"));
            }
            Some(address.clone())
        }
        Some(_) => return Err("contact.address must be an object".to_owned()),
    };
    upsert.tags = string_list(map, "tags")?;
    upsert.remove_tags = string_list(map, "removeTags")?;
    upsert.properties = match map.get("properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(properties)) => {
            if let Some((key, _)) = properties
                .iter()
                .find(|(_, value)| value.is_object() || value.is_array())
            {
                return Err(format!("properties.{key} must be a string, number or boolean"));
            }
            properties.clone()
        }
        Some(_) => return Err("properties must be an object".to_owned()),
    };
    upsert.dictionary_properties = match map.get("dictionaryProperties") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(items.clone()),
        Some(_) => return Err("dictionaryProperties must be an array".to_owned()),
    };
    upsert.birthday = optional_text(map, "birthday", "")?;
    if let Some(birthday) = &upsert.birthday
        && Date::parse(birthday, format_description!("[year][month][day]")).is_err()
    {
        return Err("birthday must be a date in the format yyyyMMdd".to_owned());
    }
    upsert.lang = optional_text(map, "lang", "")?;
    upsert.force_opt_in = flag(map, "forceOptIn")?;
    upsert.force_opt_out = flag(map, "forceOptOut")?;
    upsert.force_phone_opt_in = flag(map, "forcePhoneOptIn")?;
    upsert.force_phone_opt_out = flag(map, "forcePhoneOptOut")?;
    if upsert.force_opt_in && upsert.force_opt_out {
        return Err("forceOptIn and forceOptOut cannot both be true".to_owned());
    }
    if upsert.force_phone_opt_in && upsert.force_phone_opt_out {
        return Err("forcePhoneOptIn and forcePhoneOptOut cannot both be true".to_owned());
    }
    flag(map, "async")?;
    Ok(upsert)
}

fn now_ms() -> i64 {
    let now = now_utc();
    now.unix_timestamp()
        .saturating_mul(1000)
        .saturating_add(i64::from(now.millisecond()))
}

fn store_error(error: &StoreError) -> &'static str {
    match error {
        StoreError::NewEmailTaken => "A contact with newEmail already exists",
        StoreError::ContactNotFound => "Contact not found",
    }
}

/// `POST /api/contact/upsert`.
async fn upsert(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let body = object(&body);
    let upsert = match check_owner(&sandbox, &body).and_then(|()| parse_upsert(&body)) {
        Ok(upsert) => upsert,
        Err(message) => return failure(&message),
    };
    let result = sandbox.salesmanago_store().upsert(&upsert, now_ms());
    match result {
        Ok(contact_id) => Json(json!({"success": true, "message": [], "contactId": contact_id})).into_response(),
        Err(error) => failure(store_error(&error)),
    }
}

/// `POST /api/contact/batchupsert`: all entries are validated first; one invalid entry fails
/// the whole call (`success: false` naming its index) and nothing is stored.
async fn batch_upsert(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let body = object(&body);
    if let Err(message) = check_owner(&sandbox, &body) {
        return failure(&message);
    }
    let details = match body.get("upsertDetails") {
        Some(Value::Array(details)) if !details.is_empty() => details,
        Some(Value::Array(_)) | None | Some(Value::Null) => return failure("upsertDetails is required"),
        Some(_) => return failure("upsertDetails must be an array"),
    };
    if details.len() > MAX_BATCH_CONTACTS {
        return failure(&format!("upsertDetails may hold at most {MAX_BATCH_CONTACTS} contacts"));
    }
    let mut upserts = Vec::with_capacity(details.len());
    for (index, entry) in details.iter().enumerate() {
        let parsed = match entry {
            Value::Object(entry) => parse_upsert(entry),
            _ => Err("entry must be an object".to_owned()),
        };
        match parsed {
            Ok(upsert) => upserts.push(upsert),
            Err(message) => return failure(&format!("upsertDetails[{index}]: {message}")),
        }
    }
    let now = now_ms();
    let mut store = sandbox.salesmanago_store();
    let mut contact_ids = Map::new();
    let mut messages = Vec::new();
    for (index, upsert) in upserts.iter().enumerate() {
        match store.upsert(upsert, now) {
            Ok(id) => {
                let email = upsert.new_email.clone().unwrap_or_else(|| upsert.email.clone());
                contact_ids.insert(email, Value::String(id));
            }
            Err(error) => messages.push(format!("upsertDetails[{index}]: {}", store_error(&error))),
        }
    }
    drop(store);
    Json(json!({
        "success": messages.is_empty(),
        "message": messages,
        "contactIds": contact_ids,
    }))
    .into_response()
}

/// Validates an `addContactExtEvent` body.
fn parse_event(body: &Map<String, Value>) -> Result<(EventContact, bool, SalesmanagoEvent), String> {
    let contact = match (body.get("email").filter(|v| !v.is_null()), body.get("contactId")) {
        (Some(email), _) => EventContact::Email(email_field(Some(email), "email")?),
        (None, Some(Value::String(id))) if !id.trim().is_empty() => EventContact::ContactId(id.trim().to_owned()),
        _ => return Err("email or contactId is required".to_owned()),
    };
    let force_opt_in = flag(body, "forceOptIn")?;
    let event = match body.get("contactEvent") {
        Some(Value::Object(event)) => event,
        None | Some(Value::Null) => return Err("contactEvent is required".to_owned()),
        Some(_) => return Err("contactEvent must be an object".to_owned()),
    };
    let date = event
        .get("date")
        .and_then(Value::as_i64)
        .filter(|date| *date > 0)
        .ok_or_else(|| "contactEvent.date is required (Unix time in milliseconds)".to_owned())?;
    let event_type = match event.get("contactExtEventType") {
        Some(Value::String(kind)) if SALESMANAGO_EVENT_TYPES.contains(&kind.as_str()) => kind.clone(),
        None | Some(Value::Null) => return Err("contactEvent.contactExtEventType is required".to_owned()),
        Some(_) => {
            return Err(format!(
                "contactEvent.contactExtEventType is not valid; expected one of {}",
                SALESMANAGO_EVENT_TYPES.join(", ")
            ));
        }
    };
    let value = match event.get("value") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => number.as_f64(),
        Some(Value::String(text)) => Some(
            text.trim()
                .parse::<f64>()
                .map_err(|_| "contactEvent.value must be a number".to_owned())?,
        ),
        Some(_) => return Err("contactEvent.value must be a number".to_owned()),
    };
    let mut details = BTreeMap::new();
    for n in 1..=20 {
        let key = format!("detail{n}");
        if let Some(detail) = optional_text(event, &key, "contactEvent.")? {
            details.insert(key, detail);
        }
    }
    let record = SalesmanagoEvent {
        event_id: String::new(),
        contact_id: String::new(),
        email: String::new(),
        contact_ext_event_type: event_type,
        date,
        description: optional_text(event, "description", "contactEvent.")?,
        products: optional_text(event, "products", "contactEvent.")?,
        location: optional_text(event, "location", "contactEvent.")?,
        value,
        details,
        external_id: optional_text(event, "externalId", "contactEvent.")?,
        shop_domain: optional_text(event, "shopDomain", "contactEvent.")?,
        received_at: now_ms(),
    };
    Ok((contact, force_opt_in, record))
}

/// `POST /api/v2/contact/addContactExtEvent`.
async fn add_event(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let body = object(&body);
    let (contact, force_opt_in, event) = match check_owner(&sandbox, &body).and_then(|()| parse_event(&body)) {
        Ok(parsed) => parsed,
        Err(message) => return failure(&message),
    };
    let result = sandbox.salesmanago_store().add_event(&contact, force_opt_in, event);
    match result {
        Ok(event_id) => Json(json!({"success": true, "message": [], "eventId": event_id})).into_response(),
        Err(error) => failure(store_error(&error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn upsert_needs_a_valid_contact_email_and_never_echoes_it() {
        assert_eq!(parse_upsert(&map(json!({}))).unwrap_err(), "contact is required");
        assert_eq!(
            parse_upsert(&map(json!({"contact": {}}))).unwrap_err(),
            "contact.email is required"
        );
        let error = parse_upsert(&map(json!({"contact": {"email": "ann.example.com"}}))).unwrap_err();
        assert_eq!(error, "contact.email is not a valid e-mail address");
    }

    #[test]
    fn upsert_reads_every_documented_field() {
        let upsert = parse_upsert(&map(json!({
            "contact": {"email": " Ann@Example.com ", "name": "Ann", "phone": "+420", "externalId": "c-1",
                        "address": {"city": "Brno"}},
            "tags": ["REGISTRATION"], "removeTags": ["GUEST"], "properties": {"tier": "gold", "points": 5},
            "forceOptIn": true, "birthday": "19900131", "lang": "cs",
        })))
        .unwrap();
        assert_eq!(upsert.email, "ann@example.com");
        assert_eq!(upsert.fields.len(), 3);
        assert_eq!(upsert.tags, ["REGISTRATION"]);
        assert_eq!(upsert.remove_tags, ["GUEST"]);
        assert!(upsert.force_opt_in && !upsert.force_opt_out);
        assert_eq!(upsert.birthday.as_deref(), Some("19900131"));
        for bad in [
            json!({"contact": {"email": "a@b.cz"}, "birthday": "1990-01-31"}),
            json!({"contact": {"email": "a@b.cz"}, "forceOptIn": true, "forceOptOut": true}),
            json!({"contact": {"email": "a@b.cz"}, "tags": "VIP"}),
            json!({"contact": {"email": "a@b.cz"}, "properties": {"x": {"y": 1}}}),
        ] {
            assert!(parse_upsert(&map(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn events_need_a_known_type_a_date_and_a_contact() {
        let good = json!({"email": "a@b.cz", "contactEvent": {"date": 1_700_000_000_000_i64,
            "contactExtEventType": "PURCHASE", "value": 12.5, "detail1": "x", "products": "p1,p2"}});
        let (contact, _, event) = parse_event(&map(good)).unwrap();
        assert_eq!(contact, EventContact::Email("a@b.cz".to_owned()));
        assert_eq!(event.value, Some(12.5));
        assert_eq!(event.details.get("detail1").map(String::as_str), Some("x"));
        for (bad, expected) in [
            (json!({"contactEvent": {}}), "email or contactId is required"),
            (
                json!({"email": "a@b.cz", "contactEvent": {"contactExtEventType": "PURCHASE"}}),
                "contactEvent.date is required (Unix time in milliseconds)",
            ),
            (
                json!({"email": "a@b.cz", "contactEvent": {"date": 1, "contactExtEventType": "BUY"}}),
                "contactEvent.contactExtEventType is not valid",
            ),
        ] {
            let error = parse_event(&map(bad)).unwrap_err();
            assert!(error.starts_with(expected), "{error}");
        }
    }
}
