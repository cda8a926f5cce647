//! Bloomreach Engagement Tracking API emulation, served under `/bloomreach`
//! (PROVIDERS.md section 2).
//!
//! | method and path | answer |
//! |---|---|
//! | `POST /track/v2/projects/{projectToken}/customers` | 200 `{"success": true}`; 400 `{"success": false, "errors": [...]}` |
//! | `POST /track/v2/projects/{projectToken}/customers/events` | the same |
//! | `POST /track/v2/projects/{projectToken}/batch` | 200 `{"results": [...], "start_time", "end_time", "success": true}`; 400 over 50 commands |
//! | `GET /track/v2/projects/{projectToken}/system/time` | 200 `{"success": true, "time": <Unix s>}` |
//!
//! Auth is `Authorization: Basic base64(keyId:secret)` (401); a project token other than the
//! configured one is 403. A body that is not JSON is 400 `{"success": false, "message":
//! "Invalid JSON"}`; a message over 800 KB is 413. A batch runs each command on its own and
//! reports one result per command (echoing `command_id`): a command without ids fails with
//! "At least one id should be specified.", an event without `event_type` fails, and
//! timestamps must be Unix seconds (values over 1e11 look like milliseconds and fail).
//! Over the rate limit: 429 with `Retry-After` and no `X-RateLimit-*` headers, data dropped.
//! Nothing is deduplicated: every accepted event is stored.

pub(crate) mod store;

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderValue, StatusCode, header::AUTHORIZATION, header::RETRY_AFTER, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use serde_json::{Map, Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use self::store::BloomreachEvent;
use crate::{
    Provider, Sandbox,
    provider::Refusal,
    support::{JsonReply, constant_time_eq, now_utc},
};

/// The most commands one batch may hold.
pub(crate) const MAX_BATCH_COMMANDS: usize = 50;
/// The largest message the Tracking API takes (800 KB).
const MAX_MESSAGE_BYTES: usize = 800 * 1024;
/// The largest property value, JSON-encoded (16 KB).
const MAX_PROPERTY_BYTES: usize = 16 * 1024;
/// Timestamps above this are taken for milliseconds (year 5138 in seconds).
const MAX_TIMESTAMP_SECONDS: f64 = 1e11;
/// The message of a command or call without customer ids.
const NO_IDS: &str = "At least one id should be specified.";

/// The Bloomreach routes, relative to the prefix.
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/track/v2/projects/{project}/customers", post(update_customer))
        .route("/track/v2/projects/{project}/customers/events", post(add_event))
        .route("/track/v2/projects/{project}/batch", post(batch))
        .route("/track/v2/projects/{project}/system/time", get(system_time))
        .fallback(|| async { errors(StatusCode::NOT_FOUND, &["Not found"]) })
        .method_not_allowed_fallback(|| async { errors(StatusCode::METHOD_NOT_ALLOWED, &["Method not allowed"]) })
}

/// A `{"success": false, "errors": [...]}` answer.
fn errors(status: StatusCode, messages: &[&str]) -> Response {
    (status, Json(json!({"success": false, "errors": messages}))).into_response()
}

fn with_retry_after(mut response: Response, retry_after_secs: Option<u64>) -> Response {
    if let Some(secs) = retry_after_secs {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Bloomreach's answer to a refusal by the shared machinery (no `X-RateLimit-*` headers).
pub(crate) fn refusal(refusal: Refusal) -> Response {
    match refusal {
        Refusal::RateLimited { retry_after_secs } => with_retry_after(
            errors(StatusCode::TOO_MANY_REQUESTS, &["Rate limit exceeded"]),
            Some(retry_after_secs),
        ),
        Refusal::Forced {
            status,
            retry_after_secs,
        } => {
            let message = match status.as_u16() {
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "Not found",
                429 => "Rate limit exceeded",
                400..=499 => "Forced failure",
                _ => "Internal server error",
            };
            with_retry_after(errors(status, &[message]), retry_after_secs)
        }
        Refusal::InjectedError => errors(StatusCode::INTERNAL_SERVER_ERROR, &["Internal server error"]),
        Refusal::PayloadTooLarge => errors(StatusCode::PAYLOAD_TOO_LARGE, &["Request entity too large"]),
    }
}

/// 401 if the Basic credentials are missing or wrong, 403 if the path names another project.
pub(crate) fn auth_failure(sandbox: &Sandbox, parts: &Parts) -> Option<Response> {
    let creds = &sandbox.config().bloomreach;
    let presented = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().strip_prefix("Basic "))
        .and_then(|encoded| BASE64.decode(encoded.trim()).ok());
    let Some(presented) = presented else {
        return Some(errors(
            StatusCode::UNAUTHORIZED,
            &["Missing or malformed Authorization header (expected Basic base64(keyId:secret))"],
        ));
    };
    let expected = format!("{}:{}", creds.key_id, creds.secret);
    if !constant_time_eq(&presented, expected.as_bytes()) {
        return Some(errors(StatusCode::UNAUTHORIZED, &["Invalid API key ID or secret"]));
    }
    let project = parts
        .uri
        .path()
        .strip_prefix(Provider::Bloomreach.path_prefix())
        .and_then(|rest| rest.strip_prefix("/track/v2/projects/"))
        .and_then(|rest| rest.split('/').next());
    match project {
        Some(token) if token != creds.project_token => Some(errors(
            StatusCode::FORBIDDEN,
            &["Project not found or the API key has no access to it"],
        )),
        _ => None,
    }
}

/// The current time in Unix seconds with a fraction.
fn now_seconds() -> f64 {
    let now = now_utc();
    now.unix_timestamp() as f64 + f64::from(now.millisecond()) / 1000.0
}

/// Decodes a JSON object body; the error is the whole-request answer.
fn parse_body(body: &Bytes) -> Result<Map<String, Value>, JsonReply> {
    let errors = |status, message: &str| JsonReply::new(status, json!({"success": false, "errors": [message]}));
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(errors(StatusCode::PAYLOAD_TOO_LARGE, "Message too large (max 800 KB)"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(errors(StatusCode::BAD_REQUEST, "Request body must be a JSON object")),
        Err(_) => Err(JsonReply::new(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "message": "Invalid JSON"}),
        )),
    }
}

/// `customer_ids`: an object with at least one non-empty string id.
fn customer_ids(data: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let ids = match data.get("customer_ids") {
        Some(Value::Object(ids)) => ids,
        None | Some(Value::Null) => return Err(NO_IDS.to_owned()),
        Some(_) => return Err("customer_ids must be an object".to_owned()),
    };
    let mut valid = Map::new();
    for (key, value) in ids {
        match value {
            Value::Null => {}
            Value::String(id) if id.trim().is_empty() => {}
            Value::String(_) => {
                valid.insert(key.clone(), value.clone());
            }
            _ => return Err(format!("customer_ids.{key} must be a string")),
        }
    }
    if valid.is_empty() {
        return Err(NO_IDS.to_owned());
    }
    Ok(valid)
}

/// `properties`: an optional object whose values are each under 16 KB.
fn properties(data: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let properties = match data.get("properties") {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(properties)) => properties,
        Some(_) => return Err("properties must be an object".to_owned()),
    };
    for (name, value) in properties {
        if value.to_string().len() > MAX_PROPERTY_BYTES {
            return Err(format!("Value of property {name} is too long (max 16 KB)"));
        }
    }
    Ok(properties.clone())
}

/// A timestamp in Unix seconds (a number, or an ISO 8601 / RFC 3339 string).
fn timestamp(data: &Map<String, Value>, field: &str) -> Result<Option<f64>, String> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => match number.as_f64() {
            Some(seconds) if seconds > MAX_TIMESTAMP_SECONDS => Err(format!(
                "{field} looks like milliseconds; Unix timestamps must be in seconds"
            )),
            Some(seconds) if seconds >= 0.0 => Ok(Some(seconds)),
            _ => Err(format!("{field} must be a non-negative number of seconds")),
        },
        Some(Value::String(text)) => OffsetDateTime::parse(text, &Rfc3339)
            .map(|at| Some(at.unix_timestamp() as f64 + f64::from(at.millisecond()) / 1000.0))
            .map_err(|_| format!("{field} must be Unix seconds or an ISO 8601 date-time")),
        Some(_) => Err(format!("{field} must be a number of seconds")),
    }
}

/// Validates and applies a `customers` payload.
fn apply_customer(sandbox: &Sandbox, data: &Map<String, Value>) -> Result<(), String> {
    let ids = customer_ids(data)?;
    let properties = properties(data)?;
    let update_timestamp = timestamp(data, "update_timestamp")?;
    sandbox
        .bloomreach_store()
        .update_customer(&ids, &properties, update_timestamp, now_seconds());
    Ok(())
}

/// Validates and stores a `customers/events` payload.
fn apply_event(sandbox: &Sandbox, data: &Map<String, Value>, command_id: Option<&Value>) -> Result<(), String> {
    let ids = customer_ids(data)?;
    let event_type = match data.get("event_type") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
        None | Some(Value::Null) => return Err("Event type must be specified (event_type).".to_owned()),
        Some(_) => return Err("event_type must be a non-empty string".to_owned()),
    };
    let properties = properties(data)?;
    let now = now_seconds();
    let timestamp = timestamp(data, "timestamp")?.unwrap_or(now);
    sandbox.bloomreach_store().add_event(BloomreachEvent {
        customer_ids: ids,
        event_type,
        timestamp,
        properties,
        received_at: now,
        command_id: command_id.cloned(),
    });
    Ok(())
}

fn single(result: Result<(), String>) -> Response {
    match result {
        Ok(()) => Json(json!({"success": true})).into_response(),
        Err(message) => errors(StatusCode::BAD_REQUEST, &[&message]),
    }
}

/// `POST /track/v2/projects/{projectToken}/customers`.
async fn update_customer(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    match parse_body(&body) {
        Ok(data) => single(apply_customer(&sandbox, &data)),
        Err(reply) => reply.into_response(),
    }
}

/// `POST /track/v2/projects/{projectToken}/customers/events`.
async fn add_event(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    match parse_body(&body) {
        Ok(data) => single(apply_event(&sandbox, &data, None)),
        Err(reply) => reply.into_response(),
    }
}

/// `GET /track/v2/projects/{projectToken}/system/time`.
async fn system_time() -> Response {
    Json(json!({"success": true, "time": now_seconds()})).into_response()
}

/// Runs one batch command.
fn run_command(sandbox: &Sandbox, command: &Value) -> Value {
    let command_id = command.get("command_id").filter(|id| !id.is_null());
    let outcome = match command {
        Value::Object(command) => {
            let data = match command.get("data") {
                Some(Value::Object(data)) => Ok(data.clone()),
                None | Some(Value::Null) => Ok(Map::new()),
                Some(_) => Err("data must be an object".to_owned()),
            };
            match (command.get("name").and_then(Value::as_str), data) {
                (_, Err(message)) => Err(message),
                (Some("customers"), Ok(data)) => apply_customer(sandbox, &data).map(|()| None),
                (Some("customers/events"), Ok(data)) => apply_event(sandbox, &data, command_id).map(|()| None),
                (Some("system/time"), Ok(_)) => Ok(Some(now_seconds())),
                (Some(_), Ok(_)) => Err("Unknown command name".to_owned()),
                (None, Ok(_)) => Err("Command name must be specified".to_owned()),
            }
        }
        _ => Err("Command must be an object".to_owned()),
    };
    let mut result = match outcome {
        Ok(None) => json!({"success": true}),
        Ok(Some(time)) => json!({"success": true, "time": time}),
        Err(message) => json!({"success": false, "errors": [message]}),
    };
    if let (Some(id), Some(object)) = (command_id, result.as_object_mut()) {
        object.insert("command_id".to_owned(), id.clone());
    }
    result
}

/// `POST /track/v2/projects/{projectToken}/batch`.
async fn batch(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let start_time = now_seconds();
    let body = match parse_body(&body) {
        Ok(body) => body,
        Err(reply) => return reply.into_response(),
    };
    let commands = match body.get("commands") {
        Some(Value::Array(commands)) => commands,
        _ => return errors(StatusCode::BAD_REQUEST, &["commands must be an array"]),
    };
    if commands.len() > MAX_BATCH_COMMANDS {
        return errors(
            StatusCode::BAD_REQUEST,
            &["Too many commands in the batch (the maximum is 50)"],
        );
    }
    let results: Vec<Value> = commands.iter().map(|command| run_command(&sandbox, command)).collect();
    Json(json!({
        "results": results,
        "start_time": start_time,
        "end_time": now_seconds(),
        "success": true,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn customer_ids_need_one_non_empty_string() {
        assert_eq!(customer_ids(&map(json!({}))), Err(NO_IDS.to_owned()));
        assert_eq!(customer_ids(&map(json!({"customer_ids": {}}))), Err(NO_IDS.to_owned()));
        assert_eq!(
            customer_ids(&map(json!({"customer_ids": {"registered": " "}}))),
            Err(NO_IDS.to_owned())
        );
        assert!(customer_ids(&map(json!({"customer_ids": {"registered": 5}}))).is_err());
        assert_eq!(
            customer_ids(&map(json!({"customer_ids": {"registered": "c", "cookie": null}}))).map(Value::Object),
            Ok(json!({"registered": "c"}))
        );
    }

    #[test]
    fn timestamps_are_seconds_or_iso_8601() {
        assert_eq!(
            timestamp(&map(json!({"t": 1_700_000_000.5})), "t"),
            Ok(Some(1_700_000_000.5))
        );
        assert_eq!(
            timestamp(&map(json!({"t": "2024-01-01T00:00:00Z"})), "t"),
            Ok(Some(1_704_067_200.0))
        );
        let millis = timestamp(&map(json!({"t": 1_700_000_000_000_u64})), "t").unwrap_err();
        assert!(millis.contains("milliseconds"), "{millis}");
        assert!(timestamp(&map(json!({"t": -1})), "t").is_err());
        assert!(timestamp(&map(json!({"t": "yesterday"})), "t").is_err());
        assert_eq!(timestamp(&map(json!({})), "t"), Ok(None));
    }

    #[test]
    fn oversized_property_values_are_refused() {
        let big = "x".repeat(MAX_PROPERTY_BYTES);
        let error = properties(&map(json!({"properties": {"note": big}}))).unwrap_err();
        assert_eq!(error, "Value of property note is too long (max 16 KB)");
    }
}
