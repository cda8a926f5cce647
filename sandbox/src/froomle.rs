//! Froomle emulation, served under `/froomle` (PROVIDERS.md section 6).
//!
//! | method and path | answer |
//! |---|---|
//! | `POST /oauth/token` | 200 `{access_token, expires_in: 86400, scope: "", token_type: "Bearer"}`; 400 `invalid_request` / `unsupported_grant_type`; 401 `invalid_client` |
//! | `POST /api/{environment}/recommendations/requests` | 200 `{device_id, user_id, user_group, version, request_id, lists: [...]}`; 400 |
//! | `POST /api/{environment}/events` | 200 with no body; 400 "Events contain errors: ..."; 415 if not JSON |
//!
//! The token endpoint takes `grant_type=client_credentials&client_id&client_secret`
//! form-urlencoded (or the same as JSON) and issues a JWT-shaped opaque token. Every other call
//! needs `Authorization: Bearer <token>` with a token that was issued, is under a day old and
//! has not been invalidated by `Sandbox::expire_froomle_tokens` (401 otherwise). API errors are
//! `{"error": "...", "message": "..."}`; token errors follow RFC 6749
//! (`{"error", "error_description"}`). Recommendations come from a built-in catalog of 30
//! articles, ranked deterministically per user (or device) and list name. The environment is
//! the path segment; an `environment` field in a body is ignored.

pub(crate) mod store;

use std::collections::BTreeSet;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State, rejection::PathRejection},
    http::{
        HeaderMap, HeaderValue, StatusCode,
        header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER},
        request::Parts,
    },
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use self::store::{Article, FroomleEvent, FroomleRequest, ItemView, RequestedList, TOKEN_LIFETIME, catalog, ranking};
use crate::{
    Provider, Sandbox,
    provider::Refusal,
    support::{JsonReply, constant_time_eq, has_json_content_type, now_utc, random_id, rfc3339_millis},
};

/// The largest `list_size` a list may ask for.
const MAX_LIST_SIZE: u64 = 100;

/// The Froomle routes, relative to the prefix.
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/api/{environment}/recommendations/requests", post(recommendations))
        .route("/api/{environment}/events", post(events))
        .fallback(|| async { api_error(StatusCode::NOT_FOUND, "not_found", "Not found") })
        .method_not_allowed_fallback(|| async {
            api_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            )
        })
}

/// A Froomle API error: `{"error": ..., "message": ...}`.
fn api_error(status: StatusCode, error: &str, message: &str) -> Response {
    (status, Json(json!({"error": error, "message": message}))).into_response()
}

/// The same, as a value that can travel in a `Result`.
fn api_reply(status: StatusCode, error: &str, message: &str) -> JsonReply {
    JsonReply::new(status, json!({"error": error, "message": message}))
}

/// An OAuth 2.0 token endpoint error (RFC 6749 section 5.2).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> JsonReply {
    JsonReply::new(status, json!({"error": error, "error_description": description}))
}

fn with_retry_after(mut response: Response, retry_after_secs: Option<u64>) -> Response {
    if let Some(secs) = retry_after_secs {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Froomle's answer to a refusal by the shared machinery.
pub(crate) fn refusal(refusal: Refusal) -> Response {
    match refusal {
        Refusal::RateLimited { retry_after_secs } => with_retry_after(
            api_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Rate limit exceeded",
            ),
            Some(retry_after_secs),
        ),
        Refusal::Forced {
            status,
            retry_after_secs,
        } => {
            let error = match status.as_u16() {
                400 => "bad_request",
                401 => "unauthorized",
                403 => "forbidden",
                404 => "not_found",
                429 => "too_many_requests",
                503 => "service_unavailable",
                _ if status.is_client_error() => "client_error",
                _ => "internal_server_error",
            };
            with_retry_after(api_error(status, error, "Forced failure"), retry_after_secs)
        }
        Refusal::InjectedError => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "Internal server error",
        ),
        Refusal::PayloadTooLarge => api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Request body too large",
        ),
    }
}

/// 401 unless the call is to the token endpoint or carries a valid Bearer token.
pub(crate) fn auth_failure(sandbox: &Sandbox, parts: &Parts) -> Option<Response> {
    let relative = parts
        .uri
        .path()
        .strip_prefix(Provider::Froomle.path_prefix())
        .unwrap_or_default();
    if relative == "/oauth/token" {
        return None;
    }
    let token = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty());
    let unauthorized = |message: &str| {
        let mut response = api_error(StatusCode::UNAUTHORIZED, "unauthorized", message);
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        Some(response)
    };
    match token {
        None => unauthorized("Missing Bearer token"),
        Some(token) if sandbox.froomle_store().is_valid(token, Instant::now()) => None,
        Some(_) => unauthorized("Invalid or expired access token"),
    }
}

/// The token request parameters, from a form or a JSON body.
fn token_params(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, JsonReply> {
    let malformed = || {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body is malformed",
        )
    };
    if has_json_content_type(headers) {
        return match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(malformed()),
        };
    }
    let form_declared = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_none_or(|value| {
            value
                .trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form_declared {
        return Err(malformed());
    }
    Ok(url::form_urlencoded::parse(body)
        .map(|(name, value)| (name.into_owned(), Value::String(value.into_owned())))
        .collect())
}

/// A JWT-shaped token: header and claims are real base64url JSON, the signature is random.
fn new_token(client_id: &str) -> String {
    let now = now_utc().unix_timestamp();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "sandbox"});
    let claims = json!({
        "iss": "https://sandbox.froomle.com/",
        "sub": client_id,
        "aud": "froomle-api",
        "iat": now,
        "exp": now.saturating_add(i64::try_from(TOKEN_LIFETIME.as_secs()).unwrap_or(i64::MAX)),
        "jti": random_id("", 24),
    });
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(random_id("", 48)),
    )
}

/// `POST /oauth/token`.
async fn token(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let params = match token_params(&headers, &body) {
        Ok(params) => params,
        Err(reply) => return reply.into_response(),
    };
    let text = |name: &str| params.get(name).and_then(Value::as_str).filter(|v| !v.is_empty());
    let Some(grant_type) = text("grant_type") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required").into_response();
    };
    if grant_type != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only client_credentials is supported",
        )
        .into_response();
    }
    let (Some(client_id), Some(client_secret)) = (text("client_id"), text("client_secret")) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id and client_secret are required",
        )
        .into_response();
    };
    let creds = &sandbox.config().froomle;
    if !(constant_time_eq(client_id.as_bytes(), creds.client_id.as_bytes())
        && constant_time_eq(client_secret.as_bytes(), creds.client_secret.as_bytes()))
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Invalid client credentials").into_response();
    }
    let token = new_token(client_id);
    sandbox.froomle_store().issue(token.clone(), Instant::now());
    Json(json!({
        "access_token": token,
        "expires_in": TOKEN_LIFETIME.as_secs(),
        "scope": "",
        "token_type": "Bearer",
    }))
    .into_response()
}

/// The environment path segment.
fn environment(path: Result<Path<String>, PathRejection>) -> Option<String> {
    path.ok()
        .map(|Path(environment)| environment)
        .filter(|e| !e.trim().is_empty())
}

/// A JSON object body, or the 415 / 400 answer.
fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, JsonReply> {
    if !has_json_content_type(headers) {
        return Err(api_reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(api_reply(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Malformed request body",
        )),
    }
}

/// A non-empty string field.
fn text_field(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// A validated list of a recommendations request.
#[derive(Debug)]
struct ListRequest {
    list_name: String,
    list_size: u64,
    limit: u64,
    configuration_id: Option<Value>,
    alias: Option<String>,
}

/// Validates the lists of a recommendations request.
fn parse_lists(body: &Map<String, Value>) -> Result<Vec<ListRequest>, String> {
    let lists = match body.get("lists") {
        Some(Value::Array(lists)) if !lists.is_empty() => lists,
        Some(Value::Array(_)) | None | Some(Value::Null) => return Err("lists is required".to_owned()),
        Some(_) => return Err("lists must be an array".to_owned()),
    };
    let mut parsed = Vec::with_capacity(lists.len());
    let mut names = BTreeSet::new();
    for (index, list) in lists.iter().enumerate() {
        let Value::Object(list) = list else {
            return Err(format!("lists[{index}] must be an object"));
        };
        let list_name = text_field(list, "list_name").ok_or_else(|| format!("lists[{index}].list_name is required"))?;
        let list_size = match list.get("list_size").and_then(Value::as_u64) {
            Some(size @ 1..=MAX_LIST_SIZE) => size,
            _ => {
                return Err(format!(
                    "lists[{index}].list_size must be an integer between 1 and {MAX_LIST_SIZE}"
                ));
            }
        };
        let limit = match list.get("limit") {
            None | Some(Value::Null) => list_size,
            Some(value) => match value.as_u64() {
                Some(limit) if limit >= 1 => limit.min(list_size),
                _ => return Err(format!("lists[{index}].limit must be a positive integer")),
            },
        };
        let alias = text_field(list, "alias");
        let key = alias.clone().unwrap_or_else(|| list_name.clone());
        if !names.insert(key) {
            return Err(format!(
                "lists[{index}].list_name must be unique unless an alias is given"
            ));
        }
        parsed.push(ListRequest {
            list_name,
            list_size,
            limit,
            configuration_id: list.get("configuration_id").filter(|v| !v.is_null()).cloned(),
            alias,
        });
    }
    Ok(parsed)
}

/// `POST /api/{environment}/recommendations/requests`.
async fn recommendations(
    State(sandbox): State<Sandbox>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(environment) = environment(path) else {
        return api_error(StatusCode::NOT_FOUND, "not_found", "Not found");
    };
    let body = match json_body(&headers, &body) {
        Ok(body) => body,
        Err(reply) => return reply.into_response(),
    };
    let invalid = |message: &str| api_error(StatusCode::BAD_REQUEST, "bad_request", message);
    let Some(channel) = text_field(&body, "channel") else {
        return invalid("channel is required");
    };
    let Some(page_type) = text_field(&body, "page_type") else {
        return invalid("page_type is required");
    };
    let device_id = text_field(&body, "device_id");
    let user_id = text_field(&body, "user_id");
    let Some(user_key) = user_id.clone().or_else(|| device_id.clone()) else {
        return invalid("device_id or user_id is required");
    };
    let lists = match parse_lists(&body) {
        Ok(lists) => lists,
        Err(message) => return invalid(&message),
    };
    let catalog = catalog();
    // What each list answers: its articles in rank order and a fresh list key.
    let answers: Vec<(ListRequest, String, Vec<&Article>)> = lists
        .into_iter()
        .map(|list| {
            let order = ranking(&user_key, &list.list_name, catalog.len());
            let count = usize::try_from(list.limit).unwrap_or(usize::MAX).min(catalog.len());
            let articles = order.iter().take(count).map(|&index| &catalog[index]).collect();
            (list, random_id("", 32), articles)
        })
        .collect();
    let mut store = sandbox.froomle_store();
    let request_id = store.next_request_id();
    let answer = Answer {
        device_id: device_id.as_deref(),
        user_id: user_id.as_deref(),
        user_group: "froomle",
        version: "froomle_1",
        request_id: &request_id,
        lists: answers
            .iter()
            .map(|(list, list_key, articles)| ListView {
                list_name: &list.list_name,
                list_key,
                list_size: list.list_size,
                limit: list.limit,
                items: articles
                    .iter()
                    .enumerate()
                    .map(|(i, article)| ItemView::new(article, i + 1))
                    .collect(),
                configuration_id: list.configuration_id.as_ref(),
                alias: list.alias.as_deref(),
            })
            .collect(),
    };
    let reply = Json(&answer).into_response();
    let lists = answers
        .into_iter()
        .map(|(list, list_key, articles)| RequestedList {
            list_name: list.list_name,
            list_key,
            list_size: list.list_size,
            limit: list.limit,
            item_ids: articles.iter().map(|a| a.item_id.clone()).collect(),
        })
        .collect();
    store.add_request(FroomleRequest {
        request_id,
        environment,
        channel,
        page_type,
        device_id,
        user_id,
        lists,
        received_at: rfc3339_millis(now_utc()),
    });
    reply
}

/// A recommendations answer, as Froomle sends it.
#[derive(Serialize)]
struct Answer<'a> {
    device_id: Option<&'a str>,
    user_id: Option<&'a str>,
    user_group: &'static str,
    version: &'static str,
    request_id: &'a str,
    lists: Vec<ListView<'a>>,
}

/// One list of an answer; `configuration_id` and `alias` only when the request named them.
#[derive(Serialize)]
struct ListView<'a> {
    list_name: &'a str,
    list_key: &'a str,
    list_size: u64,
    limit: u64,
    items: Vec<ItemView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    configuration_id: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alias: Option<&'a str>,
}

/// What is wrong with one event, if anything.
fn event_problems(event: &Value) -> Vec<String> {
    let Value::Object(event) = event else {
        return vec!["must be an object".to_owned()];
    };
    let mut problems = Vec::new();
    let event_type = text_field(event, "event_type");
    if event_type.is_none() {
        problems.push("missing event_type".to_owned());
    }
    if text_field(event, "device_id").is_none() && text_field(event, "user_id").is_none() {
        problems.push("missing device_id or user_id".to_owned());
    }
    let required: &[&str] = match event_type.as_deref() {
        Some("batch_open") => &["campaign_id", "channel"],
        Some("batch_click_on_recommendation" | "batch_impression") => {
            &["list_name", "request_id", "action_item", "action_item_type"]
        }
        _ => &[],
    };
    for field in required {
        if text_field(event, field).is_none() && !event.get(*field).is_some_and(Value::is_number) {
            problems.push(format!("missing {field}"));
        }
    }
    problems
}

/// `POST /api/{environment}/events`.
async fn events(
    State(sandbox): State<Sandbox>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(environment) = environment(path) else {
        return api_error(StatusCode::NOT_FOUND, "not_found", "Not found");
    };
    let body = match json_body(&headers, &body) {
        Ok(body) => body,
        Err(reply) => return reply.into_response(),
    };
    let Some(Value::Array(events)) = body.get("events") else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Malformed request body: events must be an array",
        );
    };
    let problems: Vec<String> = events
        .iter()
        .enumerate()
        .flat_map(|(index, event)| {
            event_problems(event)
                .into_iter()
                .map(move |problem| format!("events[{index}]: {problem}"))
        })
        .collect();
    if !problems.is_empty() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("Events contain errors: {}", problems.join("; ")),
        );
    }
    let received_at = rfc3339_millis(now_utc());
    let stored: Vec<FroomleEvent> = events
        .iter()
        .filter_map(Value::as_object)
        .map(|event| FroomleEvent {
            environment: environment.clone(),
            event_type: text_field(event, "event_type").unwrap_or_default(),
            event: event.clone(),
            received_at: received_at.clone(),
        })
        .collect();
    sandbox.froomle_store().add_events(stored);
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_checked_per_type() {
        assert!(event_problems(&json!({"event_type": "detail_pageview", "device_id": "d"})).is_empty());
        assert_eq!(event_problems(&json!({"user_id": "u"})), ["missing event_type"]);
        assert_eq!(
            event_problems(&json!({"event_type": "page_visit"})),
            ["missing device_id or user_id"]
        );
        assert_eq!(
            event_problems(&json!({"event_type": "batch_open", "user_id": "u", "channel": "email"})),
            ["missing campaign_id"]
        );
        assert_eq!(
            event_problems(&json!({"event_type": "batch_click_on_recommendation", "user_id": "u",
                "list_name": "l", "request_id": 5})),
            ["missing action_item", "missing action_item_type"]
        );
        assert_eq!(event_problems(&json!("x")), ["must be an object"]);
    }

    #[test]
    fn lists_need_a_name_and_a_positive_size() {
        let body = |lists: Value| json!({"lists": lists}).as_object().cloned().unwrap_or_default();
        assert!(parse_lists(&body(json!([]))).is_err());
        assert!(parse_lists(&body(json!([{"list_name": "a", "list_size": 0}]))).is_err());
        assert!(parse_lists(&body(json!([{"list_size": 3}]))).is_err());
        assert!(
            parse_lists(&body(
                json!([{"list_name": "a", "list_size": 3}, {"list_name": "a", "list_size": 2}])
            ))
            .is_err()
        );
        let lists = parse_lists(&body(json!([
            {"list_name": "a", "list_size": 5, "limit": 2},
            {"list_name": "a", "list_size": 2, "alias": "b"},
        ])))
        .unwrap();
        assert_eq!((lists[0].list_size, lists[0].limit), (5, 2));
        assert_eq!(lists[1].alias.as_deref(), Some("b"));
    }

    #[test]
    fn tokens_look_like_jwts() {
        let token = new_token("client");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "client");
    }
}
