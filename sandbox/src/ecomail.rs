//! Ecomail API v2 emulation, served under `/ecomail` (PROVIDERS.md section 4).
//!
//! | method and path | answer |
//! |---|---|
//! | `POST /lists/{list_id}/subscribe` | 200 subscriber (`already_subscribed: true` if it existed and `update_existing` was false) |
//! | `GET /lists/{list_id}/subscriber/{email}` | 200 `{subscriber: {...}}`; 404 |
//! | `PUT /lists/{list_id}/update-subscriber` | 200 `{subscriber: {...}}`; 404 |
//! | `DELETE /lists/{list_id}/unsubscribe` | 200 `{subscriber: {...}}` with status 2; 404 |
//! | `POST /lists/{list_id}/subscribe-bulk` | 200 `{inserts: N}` (first 3000 entries) |
//! | `PUT /lists/{list_id}/update-subscriber-bulk` | 200 `{updates: N}`: subscribers of the list updated (first 3000 entries; nobody is added) |
//! | `POST /tracker/events` | 200 the stored event; 422 if the address is unknown |
//! | `GET /subscribers/{email}/events` | 200 `{current_page, data, per_page, total}` |
//!
//! Auth is the `key` header (401 `{"message":"Unauthorized"}`). Like Laravel, a body is read
//! only when it is declared JSON; anything else counts as empty input, so it fails validation
//! with 422. Lists exist implicitly: any numeric list id works.

pub(crate) mod store;
pub(crate) mod validate;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State, rejection::PathRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header::RETRY_AFTER, request::Parts},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use serde_json::{Map, Value, json};

use self::{
    store::{EcomailEvent, EcomailSubscriber, SubscribeOptions, SubscribeOutcome, UpdateError},
    validate::{Errors, SubscriberInput},
};
use crate::{
    Sandbox,
    provider::Refusal,
    support::{has_json_content_type, now_utc, sql_datetime},
};

/// Entries of `subscribe-bulk` beyond this are ignored.
const MAX_BULK_SUBSCRIBERS: usize = 3000;
/// Default and maximum page sizes of the events listing.
const DEFAULT_EVENTS_PER_PAGE: usize = 20;
const MAX_EVENTS_PER_PAGE: usize = 100;

/// The Ecomail routes, relative to the prefix.
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/lists/{list_id}/subscribe", post(subscribe))
        .route("/lists/{list_id}/subscribe-bulk", post(subscribe_bulk))
        .route("/lists/{list_id}/subscriber/{email}", get(get_subscriber))
        .route("/lists/{list_id}/update-subscriber", put(update_subscriber))
        .route("/lists/{list_id}/update-subscriber-bulk", put(update_subscriber_bulk))
        .route("/lists/{list_id}/unsubscribe", delete(unsubscribe))
        .route("/tracker/events", post(track_event))
        .route("/subscribers/{email}/events", get(subscriber_events))
        .fallback(|| async { route_not_found() })
        .method_not_allowed_fallback(|| async { message(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed") })
}

/// An Ecomail `{"message": ...}` response.
fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({"message": text}))).into_response()
}

fn with_retry_after(mut response: Response, retry_after_secs: Option<u64>) -> Response {
    if let Some(secs) = retry_after_secs {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Ecomail's answer to a refusal by the shared machinery.
pub(crate) fn refusal(refusal: Refusal) -> Response {
    match refusal {
        Refusal::RateLimited { retry_after_secs } => with_retry_after(
            message(StatusCode::TOO_MANY_REQUESTS, "Too Many Attempts."),
            Some(retry_after_secs),
        ),
        Refusal::Forced {
            status,
            retry_after_secs,
        } => {
            let response = match status.as_u16() {
                401 => message(status, "Unauthorized"),
                404 => message(status, "Not Found"),
                429 => message(status, "Too Many Attempts."),
                400..=499 => (status, Json(json!({"message": "Forced failure", "errors": {}}))).into_response(),
                _ => message(status, "Server Error"),
            };
            with_retry_after(response, retry_after_secs)
        }
        Refusal::InjectedError => message(StatusCode::INTERNAL_SERVER_ERROR, "Server Error"),
        Refusal::PayloadTooLarge => message(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"),
    }
}

/// Ecomail's 401 answer if the `key` header is missing or wrong.
pub(crate) fn auth_failure(sandbox: &Sandbox, parts: &Parts) -> Option<Response> {
    let expected = sandbox.config().ecomail_api_key.as_bytes();
    match parts.headers.get("key") {
        Some(key) if constant_time_eq(key.as_bytes(), expected) => None,
        _ => Some(message(StatusCode::UNAUTHORIZED, "Unauthorized")),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The request input, the way Laravel sees it: the JSON object body, or nothing.
fn input(headers: &HeaderMap, body: &Bytes) -> Map<String, Value> {
    if !has_json_content_type(headers) {
        return Map::new();
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// The numeric list id of the path, if it is one (anything else is an unknown route).
fn list_id(path: Result<Path<String>, PathRejection>) -> Option<u64> {
    path.ok().and_then(|Path(id)| id.parse().ok())
}

fn route_not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not Found")
}

fn subscriber_not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Subscriber not found")
}

/// The subscriber as the subscribe call returns it.
fn subscribe_view(subscriber: &EcomailSubscriber, already_subscribed: bool) -> Value {
    let mut view = json!({
        "id": subscriber.id,
        "name": subscriber.name,
        "surname": subscriber.surname,
        "email": subscriber.email,
        "gender": subscriber.gender,
        "bounce_soft": subscriber.bounce_soft,
        "bounced_hard": subscriber.bounced_hard,
        "bounce_message": null,
        "inserted_at": subscriber.inserted_at,
    });
    if already_subscribed && let Some(object) = view.as_object_mut() {
        object.insert("already_subscribed".to_owned(), Value::Bool(true));
    }
    view
}

/// The subscriber as the get-subscriber call returns it.
fn full_view(subscriber: &EcomailSubscriber) -> Value {
    json!({"subscriber": {
        "id": subscriber.id,
        "name": subscriber.name,
        "surname": subscriber.surname,
        "email": subscriber.email,
        "gender": subscriber.gender,
        "company": subscriber.company,
        "city": subscriber.city,
        "street": subscriber.street,
        "zip": subscriber.zip,
        "country": subscriber.country,
        "phone": subscriber.phone,
        "pretitle": subscriber.pretitle,
        "surtitle": subscriber.surtitle,
        "birthday": subscriber.birthday,
        "nameday": subscriber.nameday,
        "source": subscriber.source,
        "bounce_soft": subscriber.bounce_soft,
        "bounced_hard": subscriber.bounced_hard,
        "bounce_message": null,
        "inserted_at": subscriber.inserted_at,
        "status": subscriber.status,
        "list_id": subscriber.list_id,
        "subscribed_at": subscriber.subscribed_at,
        "unsubscribed_at": subscriber.unsubscribed_at,
        "custom_fields": subscriber.custom_fields,
        "groups": subscriber.groups,
        "tags": subscriber.tags,
    }})
}

/// `POST /lists/{list_id}/subscribe`.
async fn subscribe(
    State(sandbox): State<Sandbox>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(list_id) = list_id(path) else {
        return route_not_found();
    };
    let body = input(&headers, &body);
    let mut errors = Errors::default();
    let data = validate::subscriber_data(body.get("subscriber_data"), "subscriber_data", true, &mut errors);
    let options = SubscribeOptions {
        update_existing: validate::boolean(&body, "update_existing", false, &mut errors),
        skip_confirmation: validate::boolean(&body, "skip_confirmation", false, &mut errors),
        resubscribe: validate::boolean(&body, "resubscribe", false, &mut errors),
    };
    for flag in ["trigger_autoresponders", "trigger_notification"] {
        validate::boolean(&body, flag, false, &mut errors);
    }
    if !errors.is_empty() {
        return errors.into_response();
    }
    let now = sql_datetime(now_utc());
    let (outcome, subscriber) = sandbox.ecomail_store().subscribe(list_id, &data, options, &now);
    Json(subscribe_view(
        &subscriber,
        outcome == SubscribeOutcome::AlreadySubscribed,
    ))
    .into_response()
}

/// The validated entries of a bulk call's `subscriber_data` (the first 3000, each with an
/// e-mail), or the errors.
fn bulk_entries(body: &Map<String, Value>, errors: &mut Errors) -> Vec<SubscriberInput> {
    match body.get("subscriber_data") {
        Some(Value::Array(items)) => items
            .iter()
            .take(MAX_BULK_SUBSCRIBERS)
            .enumerate()
            .map(|(index, item)| {
                validate::subscriber_data(Some(item), &format!("subscriber_data.{index}"), true, errors)
            })
            .collect(),
        None | Some(Value::Null) => {
            errors.add("subscriber_data", "The subscriber data field is required.".to_owned());
            Vec::new()
        }
        Some(_) => {
            errors.add("subscriber_data", "The subscriber data must be an array.".to_owned());
            Vec::new()
        }
    }
}

/// `POST /lists/{list_id}/subscribe-bulk`: never sends double opt-in; counts inserted and
/// updated subscribers.
async fn subscribe_bulk(
    State(sandbox): State<Sandbox>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(list_id) = list_id(path) else {
        return route_not_found();
    };
    let body = input(&headers, &body);
    let mut errors = Errors::default();
    let options = SubscribeOptions {
        update_existing: validate::boolean(&body, "update_existing", true, &mut errors),
        skip_confirmation: true,
        resubscribe: validate::boolean(&body, "resubscribe", false, &mut errors),
    };
    validate::boolean(&body, "trigger_autoresponders", false, &mut errors);
    let entries = bulk_entries(&body, &mut errors);
    if !errors.is_empty() {
        return errors.into_response();
    }
    let now = sql_datetime(now_utc());
    let mut store = sandbox.ecomail_store();
    let inserts = entries
        .iter()
        .filter(|entry| {
            let (outcome, _) = store.subscribe(list_id, entry, options, &now);
            outcome != SubscribeOutcome::AlreadySubscribed
        })
        .count();
    drop(store);
    Json(json!({"inserts": inserts})).into_response()
}

/// `PUT /lists/{list_id}/update-subscriber-bulk`: updates the entries that are subscribers of
/// the list and counts them; an entry that is not is skipped (the count says only how many).
async fn update_subscriber_bulk(
    State(sandbox): State<Sandbox>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(list_id) = list_id(path) else {
        return route_not_found();
    };
    let body = input(&headers, &body);
    let mut errors = Errors::default();
    let allow_resubscribe = validate::boolean(&body, "allow_resubscribe", false, &mut errors);
    let entries = bulk_entries(&body, &mut errors);
    if !errors.is_empty() {
        return errors.into_response();
    }
    let now = sql_datetime(now_utc());
    let mut store = sandbox.ecomail_store();
    let updates = entries
        .iter()
        .filter(|entry| store.update_existing(list_id, entry, allow_resubscribe, &now))
        .count();
    drop(store);
    Json(json!({"updates": updates})).into_response()
}

/// `GET /lists/{list_id}/subscriber/{email}`.
async fn get_subscriber(
    State(sandbox): State<Sandbox>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let Some((list_id, email)) = path
        .ok()
        .and_then(|Path((list, email))| Some((list.parse::<u64>().ok()?, email)))
    else {
        return route_not_found();
    };
    match sandbox.ecomail_subscriber(list_id, &email) {
        Some(subscriber) => Json(full_view(&subscriber)).into_response(),
        None => subscriber_not_found(),
    }
}

/// `PUT /lists/{list_id}/update-subscriber`.
async fn update_subscriber(
    State(sandbox): State<Sandbox>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(list_id) = list_id(path) else {
        return route_not_found();
    };
    let body = input(&headers, &body);
    let mut errors = Errors::default();
    let email = validate::email(body.get("email"), "email", &mut errors);
    let data = match body.get("subscriber_data") {
        None | Some(Value::Null) => SubscriberInput::default(),
        data => validate::subscriber_data(data, "subscriber_data", false, &mut errors),
    };
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return errors.into_response();
    };
    let result = sandbox.ecomail_store().update(list_id, &email, &data);
    match result {
        Ok(subscriber) => Json(full_view(&subscriber)).into_response(),
        Err(UpdateError::NotFound) => subscriber_not_found(),
        Err(UpdateError::EmailTaken) => {
            let mut errors = Errors::default();
            errors.add(
                "subscriber_data.email",
                "The subscriber data.email has already been taken.".to_owned(),
            );
            errors.into_response()
        }
    }
}

/// `DELETE /lists/{list_id}/unsubscribe`.
async fn unsubscribe(
    State(sandbox): State<Sandbox>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(list_id) = list_id(path) else {
        return route_not_found();
    };
    let body = input(&headers, &body);
    let mut errors = Errors::default();
    let Some(email) = validate::email(body.get("email"), "email", &mut errors) else {
        return errors.into_response();
    };
    let now = sql_datetime(now_utc());
    let result = sandbox.ecomail_store().unsubscribe(list_id, &email, &now);
    match result {
        Some(subscriber) => Json(full_view(&subscriber)).into_response(),
        None => subscriber_not_found(),
    }
}

/// `POST /tracker/events`.
async fn track_event(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let body = input(&headers, &body);
    let mut errors = Errors::default();
    let event = match body.get("event") {
        Some(Value::Object(event)) => event.clone(),
        None | Some(Value::Null) => {
            errors.add("event", "The event field is required.".to_owned());
            return errors.into_response();
        }
        Some(_) => {
            errors.add("event", "The event must be an array.".to_owned());
            return errors.into_response();
        }
    };
    let email = validate::email(event.get("email"), "event.email", &mut errors);
    let text =
        |name: &str, errors: &mut Errors| validate::optional_text(event.get(name), &format!("event.{name}"), errors);
    let category = text("category", &mut errors);
    let action = text("action", &mut errors);
    let label = text("label", &mut errors);
    let property = text("property", &mut errors);
    let value = validate::event_value(event.get("value"), "event.value", &mut errors);
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return errors.into_response();
    };
    let mut store = sandbox.ecomail_store();
    if !store.is_known(&email) {
        drop(store);
        errors.add("event.email", "The selected event.email is invalid.".to_owned());
        return errors.into_response();
    }
    let stored = store.add_event(EcomailEvent {
        id: 0,
        email,
        category,
        action,
        label,
        property,
        value,
        timestamp: sql_datetime(now_utc()),
    });
    drop(store);
    Json(json!({
        "id": stored.id,
        "email": stored.email,
        "category": stored.category,
        "action": stored.action,
        "label": stored.label,
        "property": stored.property,
        "value": stored.value,
    }))
    .into_response()
}

/// `GET /subscribers/{email}/events?per_page&page`.
async fn subscriber_events(
    State(sandbox): State<Sandbox>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let Ok(Path(email)) = path else {
        return route_not_found();
    };
    let mut per_page = DEFAULT_EVENTS_PER_PAGE;
    let mut page = 1;
    let mut errors = Errors::default();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "per_page" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_EVENTS_PER_PAGE).contains(&n) => per_page = n,
                _ => errors.add(
                    "per_page",
                    format!("The per page must be between 1 and {MAX_EVENTS_PER_PAGE}."),
                ),
            },
            "page" => match value.parse::<usize>() {
                Ok(n) if n >= 1 => page = n,
                _ => errors.add("page", "The page must be at least 1.".to_owned()),
            },
            _ => {}
        }
    }
    if !errors.is_empty() {
        return errors.into_response();
    }
    let email = validate::normalize_email(&email);
    let store = sandbox.ecomail_store();
    if !store.is_known(&email) {
        drop(store);
        return subscriber_not_found();
    }
    let events: Vec<&EcomailEvent> = store.events().iter().filter(|e| e.email == email).collect();
    let total = events.len();
    let data: Vec<Value> = events
        .iter()
        .skip(per_page.saturating_mul(page - 1))
        .take(per_page)
        .map(|event| {
            json!({
                "id": event.id,
                "email": event.email,
                "category": event.category,
                "action": event.action,
                "label": event.label,
                "property": event.property,
                "value": event.value,
                "timestamp": event.timestamp,
            })
        })
        .collect();
    drop(store);
    Json(json!({"current_page": page, "data": data, "per_page": per_page, "total": total})).into_response()
}
