//! Voucherify API emulation, served under `/voucherify` (PROVIDERS.md section 1). The
//! Bloomreach integration endpoints, which share its customers, are in [`integration`].
//!
//! | method and path | answer |
//! |---|---|
//! | `POST /v1/publications[?join_once=true]` | 200 publication; 400 `missing_vouchers`, `duplicate_source_id`, `voucher_already_published`, `invalid_payload`; 404 campaign / voucher / customer |
//! | `GET /v1/publications?source_id&customer&campaign&voucher&page&limit` | 200 `{object: "list", data_ref: "publications", publications, total}` |
//! | `POST /v1/customers` | 200 customer (upsert by `id`, else `source_id`); 400 `invalid_payload`, `invalid_metadata` |
//! | `GET /v1/customers/{id or source_id}` | 200 customer; 404 |
//!
//! Auth is `X-App-Id` + `X-App-Token` (401 `unauthorized`). Every error is
//! `{code, key, message, details, request_id}` (plus `resource_type` on 404s). Every answer
//! carries `X-Rate-Limit-Limit` and `X-Rate-Limit-Remaining` while a limit is configured, and
//! `X-Rate-Limit-Retry` (Unix seconds when a call is next admitted) once nothing remains; over
//! the limit the answer is 429 `too_many_requests` with `Retry-After` and
//! `X-Rate-Limit-Type: api_calls`.
//!
//! The campaign catalog: "Discount code campaign" (codes `DC-XXXX-XXXX`, 5.00 off) and
//! "Welcome 10" (codes `W10-XXXX-XXXX`, 10.00 off), each with three unpublished codes at start
//! and further codes generated as needed.

pub(crate) mod integration;
pub(crate) mod store;

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State, rejection::PathRejection},
    http::{
        HeaderMap, HeaderName, HeaderValue, StatusCode,
        header::{CONTENT_TYPE, RETRY_AFTER},
        request::Parts,
    },
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Map, Value, json};
use time::{Date, macros::format_description};

use self::store::{CustomerInput, PublicationFilter, PublishRequest, StoreError, Target, customer_view};
use crate::{
    MAX_BODY_BYTES, Sandbox,
    limits::LimitStatus,
    provider::Refusal,
    support::{constant_time_eq, displayable_id, has_json_content_type, is_plausible_email, now_utc, random_id},
};

/// The most vouchers one publication may ask for with `campaign.count`.
const MAX_PUBLICATION_COUNT: u64 = 100;
/// The largest page of `GET /v1/publications`.
const MAX_PAGE_LIMIT: usize = 100;
/// The address fields Voucherify knows.
const ADDRESS_FIELDS: [&str; 6] = ["city", "state", "line_1", "line_2", "country", "postal_code"];

/// Which Voucherify bucket a limit belongs to (`X-Rate-Limit-Type` on a 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitType {
    /// The API quota (`api_calls`).
    ApiCalls,
    /// The integration (webhook) bucket (`webhook_calls`).
    WebhookCalls,
}

impl LimitType {
    const fn as_str(self) -> &'static str {
        match self {
            LimitType::ApiCalls => "api_calls",
            LimitType::WebhookCalls => "webhook_calls",
        }
    }
}

/// The Voucherify routes, relative to the prefix.
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/v1/publications", post(create_publication).get(list_publications))
        .route("/v1/customers", post(upsert_customer))
        .route("/v1/customers/{customer_id}", get(get_customer))
        .fallback(|| async { not_found_route() })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method Not Allowed",
                "The method is not allowed for this resource",
            )
        })
}

/// A Voucherify error answer: `{code, key, message, details, request_id}`.
#[derive(Debug)]
pub(crate) struct VoucherifyError {
    status: StatusCode,
    key: &'static str,
    message: String,
    details: String,
    resource_type: Option<&'static str>,
}

impl VoucherifyError {
    pub(crate) fn new(status: StatusCode, key: &'static str, message: &str, details: impl Into<String>) -> Self {
        Self {
            status,
            key,
            message: message.to_owned(),
            details: details.into(),
            resource_type: None,
        }
    }

    /// 400 `invalid_payload` with `details`.
    pub(crate) fn invalid(details: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_payload", "Invalid payload", details)
    }

    fn not_found(resource_type: &'static str, id: &str) -> Self {
        Self {
            resource_type: Some(resource_type),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Resource not found",
                format!("Cannot find {resource_type} with id {}", displayable_id(id)),
            )
        }
    }
}

impl IntoResponse for VoucherifyError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "code": self.status.as_u16(),
            "key": self.key,
            "message": self.message,
            "details": self.details,
            "request_id": random_id("v-", 18),
        });
        if let (Some(resource_type), Some(object)) = (self.resource_type, body.as_object_mut()) {
            object.insert("resource_type".to_owned(), Value::String(resource_type.to_owned()));
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for VoucherifyError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { resource_type, id } => VoucherifyError::not_found(resource_type, &id),
            StoreError::DuplicateSourceId(source_id) => {
                let text = format!(
                    "Publication with source_id: '{}' already exists",
                    displayable_id(&source_id)
                );
                VoucherifyError::new(StatusCode::BAD_REQUEST, "duplicate_source_id", &text, text.clone())
            }
            StoreError::VoucherAlreadyPublished(code) => VoucherifyError::new(
                StatusCode::BAD_REQUEST,
                "voucher_already_published",
                "Voucher already published",
                format!("Voucher {} has already been published", displayable_id(&code)),
            ),
        }
    }
}

fn error(status: StatusCode, key: &'static str, message: &str, details: &str) -> Response {
    VoucherifyError::new(status, key, message, details).into_response()
}

fn not_found_route() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "Resource not found",
        "Cannot find the requested resource",
    )
}

/// The 429 of a Voucherify bucket.
fn too_many_requests(kind: LimitType, retry_after_secs: Option<u64>) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "Too Many Requests",
        match kind {
            LimitType::ApiCalls => "API calls limit reached",
            LimitType::WebhookCalls => "Webhook calls limit reached",
        },
    );
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("x-rate-limit-type"),
        HeaderValue::from_static(kind.as_str()),
    );
    if let Some(secs) = retry_after_secs {
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Voucherify's answer to a refusal by the shared machinery (`kind` names the bucket).
pub(crate) fn refusal(refusal: Refusal, kind: LimitType) -> Response {
    match refusal {
        Refusal::RateLimited { retry_after_secs } => too_many_requests(kind, Some(retry_after_secs)),
        Refusal::Forced {
            status,
            retry_after_secs,
        } => {
            if status == StatusCode::TOO_MANY_REQUESTS {
                return too_many_requests(kind, retry_after_secs);
            }
            let (key, message) = match status.as_u16() {
                400 => ("invalid_payload", "Invalid payload"),
                401 => ("unauthorized", "Unauthorized"),
                402 => ("payment_required", "Plan limit exceeded"),
                403 => ("forbidden", "Forbidden"),
                404 => ("not_found", "Resource not found"),
                409 => ("duplicate_resource", "Duplicated resource"),
                502 => ("bad_gateway", "Bad Gateway"),
                503 => ("service_unavailable", "Service Unavailable"),
                _ if status.is_client_error() => ("bad_request", "Bad request"),
                _ => ("internal_server_error", "Internal Server Error"),
            };
            let mut response = error(status, key, message, "Forced failure");
            if let Some(secs) = retry_after_secs {
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        Refusal::InjectedError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "Internal Server Error",
            "Injected failure",
        ),
        Refusal::PayloadTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({
                "statusCode": 413,
                "error": "Request Entity Too Large",
                "message": format!("Payload content length greater than maximum allowed: {MAX_BODY_BYTES}"),
            })),
        )
            .into_response(),
    }
}

/// Adds `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and, when nothing remains,
/// `X-Rate-Limit-Retry` (Unix seconds when a call is next admitted). Nothing when unlimited.
pub(crate) fn add_budget_headers(status: Option<LimitStatus>, response: &mut Response) {
    let Some(status) = status else {
        return;
    };
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("x-rate-limit-limit"),
        HeaderValue::from(status.limit),
    );
    headers.insert(
        HeaderName::from_static("x-rate-limit-remaining"),
        HeaderValue::from(status.remaining),
    );
    if let Some(secs) = status.retry_after_secs {
        let retry_at = now_utc()
            .unix_timestamp()
            .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX));
        headers.insert(
            HeaderName::from_static("x-rate-limit-retry"),
            HeaderValue::from(retry_at),
        );
    }
}

/// Voucherify's 401 if `X-App-Id` / `X-App-Token` are missing or wrong.
pub(crate) fn auth_failure(sandbox: &Sandbox, parts: &Parts) -> Option<Response> {
    let creds = &sandbox.config().voucherify;
    let unauthorized = |details: &str| Some(error(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", details));
    let (Some(app_id), Some(token)) = (parts.headers.get("x-app-id"), parts.headers.get("x-app-token")) else {
        return unauthorized("Missing X-App-Id or X-App-Token header");
    };
    if constant_time_eq(app_id.as_bytes(), creds.app_id.as_bytes())
        && constant_time_eq(token.as_bytes(), creds.app_token.as_bytes())
    {
        None
    } else {
        unauthorized("Cannot authenticate: invalid X-App-Id or X-App-Token")
    }
}

/// Checks the content type and decodes a JSON body.
pub(crate) fn json_object_or_array(headers: &HeaderMap, body: &Bytes) -> Result<Value, VoucherifyError> {
    if !has_json_content_type(headers) {
        let declared = headers.get(CONTENT_TYPE).is_some();
        return Err(VoucherifyError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported Media Type",
            if declared {
                "Content-Type must be application/json"
            } else {
                "Missing Content-Type: application/json"
            },
        ));
    }
    serde_json::from_slice::<Value>(body).map_err(|_| VoucherifyError::invalid("Request body is not valid JSON"))
}

/// Checks the content type and decodes a JSON object body.
fn json_object(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, VoucherifyError> {
    match json_object_or_array(headers, body)? {
        Value::Object(map) => Ok(map),
        _ => Err(VoucherifyError::invalid("Request body must be a JSON object")),
    }
}

/// An optional string property at `path` (`null` counts as absent).
fn optional_string(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, VoucherifyError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(VoucherifyError::invalid(format!(
            "Property {path}.{key} should be a string"
        ))),
    }
}

/// How a customer object is read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CustomerShape<'a> {
    /// The API: `id`, `source_id`, and unknown properties are refused.
    Api,
    /// An integration element: the hard id (this key) is the `source_id`; unknown properties
    /// are ignored.
    Integration(&'a str),
}

/// Reads a customer object. `path` prefixes property names in errors (`.customer`).
pub(crate) fn parse_customer(
    map: &Map<String, Value>,
    path: &str,
    shape: CustomerShape<'_>,
) -> Result<CustomerInput, VoucherifyError> {
    const API_FIELDS: [&str; 12] = [
        "id",
        "source_id",
        "name",
        "description",
        "email",
        "phone",
        "birthdate",
        "birthday",
        "address",
        "metadata",
        "object",
        "system_metadata",
    ];
    let mut input = CustomerInput::default();
    match shape {
        CustomerShape::Api => {
            if let Some(unknown) = map.keys().find(|key| !API_FIELDS.contains(&key.as_str())) {
                return Err(VoucherifyError::invalid(format!(
                    "Property {path}.{unknown} is not allowed"
                )));
            }
            input.id = optional_string(map, "id", path)?.filter(|id| !id.trim().is_empty());
            input.source_id = optional_string(map, "source_id", path)?.filter(|id| !id.trim().is_empty());
        }
        CustomerShape::Integration(hard_id) => {
            input.source_id = match map.get(hard_id) {
                Some(Value::String(id)) if !id.trim().is_empty() => Some(id.trim().to_owned()),
                Some(Value::Number(number)) => Some(number.to_string()),
                _ => {
                    return Err(VoucherifyError::invalid(format!(
                        "Property {path}.{hard_id} is required"
                    )));
                }
            };
        }
    }
    input.name = optional_string(map, "name", path)?;
    input.description = optional_string(map, "description", path)?;
    input.phone = optional_string(map, "phone", path)?;
    input.email = optional_string(map, "email", path)?;
    if let Some(email) = &input.email
        && !is_plausible_email(email.trim())
    {
        return Err(VoucherifyError::invalid(format!(
            "Property {path}.email should match format \"email\""
        )));
    }
    let birthdate = match optional_string(map, "birthdate", path)? {
        Some(date) => Some(date),
        None => optional_string(map, "birthday", path)?,
    };
    if let Some(date) = &birthdate
        && Date::parse(date, format_description!("[year]-[month]-[day]")).is_err()
    {
        return Err(VoucherifyError::invalid(format!(
            "Property {path}.birthdate should match format \"date\" (YYYY-MM-DD)"
        )));
    }
    input.birthdate = birthdate;
    input.address = match map.get("address") {
        None | Some(Value::Null) => None,
        Some(Value::Object(address)) => {
            for (key, value) in address {
                if !ADDRESS_FIELDS.contains(&key.as_str()) {
                    return Err(VoucherifyError::invalid(format!(
                        "Property {path}.address.{key} is not allowed"
                    )));
                }
                if !(value.is_string() || value.is_null()) {
                    return Err(VoucherifyError::invalid(format!(
                        "Property {path}.address.{key} should be a string"
                    )));
                }
            }
            Some(address.clone())
        }
        Some(_) => {
            return Err(VoucherifyError::invalid(format!(
                "Property {path}.address should be an object"
            )));
        }
    };
    input.metadata = match map.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(metadata)) => Some(metadata.clone()),
        Some(_) => {
            return Err(VoucherifyError::invalid(format!(
                "Property {path}.metadata should be an object"
            )));
        }
    };
    Ok(input)
}

/// Refuses metadata whose key the schema defines with another type.
fn check_metadata(schema: &BTreeMap<String, String>, input: &CustomerInput) -> Result<(), VoucherifyError> {
    let Some(metadata) = &input.metadata else {
        return Ok(());
    };
    match store::mistyped_metadata(schema, metadata) {
        None => Ok(()),
        Some((key, kind)) => Err(VoucherifyError::new(
            StatusCode::BAD_REQUEST,
            "invalid_metadata",
            "Invalid metadata",
            format!("Property metadata.{key} should be of type {kind}"),
        )),
    }
}

/// Parses `join_once` from the query string.
fn join_once(query: Option<&str>) -> Result<bool, VoucherifyError> {
    let mut join_once = false;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name == "join_once" {
            join_once = match value.as_ref() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(VoucherifyError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_query_params",
                        "Invalid query params",
                        "Query parameter join_once should be true or false",
                    ));
                }
            };
        }
    }
    Ok(join_once)
}

/// Validates a `POST /v1/publications` body.
fn parse_publication(body: &Map<String, Value>, join_once: bool) -> Result<PublishRequest, VoucherifyError> {
    const FIELDS: [&str; 6] = ["campaign", "voucher", "customer", "source_id", "metadata", "channel"];
    if let Some(unknown) = body.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(VoucherifyError::invalid(format!("Property .{unknown} is not allowed")));
    }
    let source_id = match body.get("source_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.trim().is_empty() => Some(id.clone()),
        Some(_) => {
            return Err(VoucherifyError::invalid(
                "Property .source_id should be a non-empty string",
            ));
        }
    };
    let campaign = body.get("campaign").filter(|value| !value.is_null());
    let voucher = body.get("voucher").filter(|value| !value.is_null());
    let target = match (campaign, voucher) {
        (None, None) => {
            return Err(VoucherifyError::new(
                StatusCode::BAD_REQUEST,
                "missing_vouchers",
                "Either Campaign or Voucher is required",
                "Provide campaign.name or voucher",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(VoucherifyError::invalid(
                "Only one of .campaign and .voucher may be given",
            ));
        }
        (None, Some(Value::String(code))) if !code.trim().is_empty() => Target::Voucher(code.clone()),
        (None, Some(_)) => {
            return Err(VoucherifyError::invalid(
                "Property .voucher should be a non-empty string",
            ));
        }
        (Some(Value::String(name)), None) if !name.trim().is_empty() => Target::Campaign {
            name: name.clone(),
            count: None,
        },
        (Some(Value::Object(campaign)), None) => {
            let name = match campaign.get("name") {
                Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
                _ => return Err(VoucherifyError::invalid("Property .campaign.name is required")),
            };
            let count = match campaign.get("count") {
                None | Some(Value::Null) => None,
                Some(value) => match value.as_u64() {
                    Some(count @ 1..=MAX_PUBLICATION_COUNT) => u32::try_from(count).ok(),
                    _ => {
                        return Err(VoucherifyError::invalid(format!(
                            "Property .campaign.count should be an integer between 1 and {MAX_PUBLICATION_COUNT}"
                        )));
                    }
                },
            };
            if let Some(unknown) = campaign.keys().find(|key| !["name", "count"].contains(&key.as_str())) {
                return Err(VoucherifyError::invalid(format!(
                    "Property .campaign.{unknown} is not allowed"
                )));
            }
            if source_id.is_some() && count.is_some_and(|count| count > 1) {
                return Err(VoucherifyError::invalid(
                    "Only one voucher can be published per request when source_id is given",
                ));
            }
            Target::Campaign { name, count }
        }
        (Some(_), None) => {
            return Err(VoucherifyError::invalid(
                "Property .campaign should be an object with a name",
            ));
        }
    };
    let customer = match body.get("customer") {
        Some(Value::Object(customer)) => parse_customer(customer, ".customer", CustomerShape::Api)?,
        None | Some(Value::Null) => return Err(VoucherifyError::invalid("Property .customer is required")),
        Some(_) => return Err(VoucherifyError::invalid("Property .customer should be an object")),
    };
    if customer.id.is_none() && customer.source_id.is_none() {
        return Err(VoucherifyError::invalid(
            "Property .customer should have an id or a source_id",
        ));
    }
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(metadata)) => metadata.clone(),
        Some(_) => return Err(VoucherifyError::invalid("Property .metadata should be an object")),
    };
    let channel = optional_string(body, "channel", "")?.unwrap_or_else(|| "API".to_owned());
    Ok(PublishRequest {
        target,
        customer,
        source_id,
        metadata,
        channel,
        join_once,
    })
}

fn now() -> String {
    crate::support::rfc3339_millis(now_utc())
}

/// `POST /v1/publications`.
async fn create_publication(
    State(sandbox): State<Sandbox>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = (|| {
        let join_once = join_once(query.as_deref())?;
        let body = json_object(&headers, &body)?;
        let request = parse_publication(&body, join_once)?;
        check_metadata(&sandbox.config().voucherify_metadata_schema, &request.customer)?;
        let view = sandbox.voucherify_store().publish(&request, &now())?;
        Ok::<_, VoucherifyError>(view)
    })();
    match result {
        Ok(view) => Json(view).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /v1/publications`.
async fn list_publications(State(sandbox): State<Sandbox>, RawQuery(query): RawQuery) -> Response {
    let mut filter = PublicationFilter::default();
    let mut limit = 10;
    let mut page = 1;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        match name.as_ref() {
            "source_id" => filter.source_id = Some(value),
            "customer" => filter.customer = Some(value),
            "campaign" => filter.campaign = Some(value),
            "voucher" => filter.voucher = Some(value),
            "limit" => match value.parse::<usize>() {
                Ok(n @ 1..=MAX_PAGE_LIMIT) => limit = n,
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_query_params",
                        "Invalid query params",
                        "Query parameter limit should be an integer between 1 and 100",
                    );
                }
            },
            "page" => match value.parse::<usize>() {
                Ok(n) if n >= 1 => page = n,
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_query_params",
                        "Invalid query params",
                        "Query parameter page should be a positive integer",
                    );
                }
            },
            _ => {}
        }
    }
    let all = sandbox.voucherify_store().find_publications(&filter);
    let total = all.len();
    let publications: Vec<Value> = all
        .into_iter()
        .skip(limit.saturating_mul(page - 1))
        .take(limit)
        .collect();
    Json(json!({
        "object": "list",
        "data_ref": "publications",
        "publications": publications,
        "total": total,
    }))
    .into_response()
}

/// `POST /v1/customers`.
async fn upsert_customer(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let result = (|| {
        let body = json_object(&headers, &body)?;
        let input = parse_customer(&body, "", CustomerShape::Api)?;
        check_metadata(&sandbox.config().voucherify_metadata_schema, &input)?;
        let customer = sandbox.voucherify_store().upsert_customer(&input, &now())?;
        Ok::<_, VoucherifyError>(customer_view(&customer))
    })();
    match result {
        Ok(view) => Json(view).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /v1/customers/{customerId}` (the id or the source id).
async fn get_customer(State(sandbox): State<Sandbox>, path: Result<Path<String>, PathRejection>) -> Response {
    let Ok(Path(id)) = path else {
        return not_found_route();
    };
    let store = sandbox.voucherify_store();
    let view = store.customer(&id).map(customer_view);
    drop(store);
    match view {
        Some(view) => Json(view).into_response(),
        None => VoucherifyError::not_found("customer", &id).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn publication_needs_a_campaign_or_a_voucher_but_not_both() {
        let missing = parse_publication(&object(json!({"customer": {"source_id": "c"}})), false).unwrap_err();
        assert_eq!(missing.key, "missing_vouchers");
        let both = parse_publication(
            &object(json!({"customer": {"source_id": "c"}, "campaign": {"name": "x"}, "voucher": "V"})),
            false,
        )
        .unwrap_err();
        assert_eq!(both.key, "invalid_payload");
    }

    #[test]
    fn publication_needs_a_customer_with_an_id() {
        for body in [
            json!({"campaign": {"name": "x"}}),
            json!({"campaign": {"name": "x"}, "customer": {"name": "Ann"}}),
            json!({"campaign": {"name": "x"}, "customer": "c-1"}),
        ] {
            let error = parse_publication(&object(body.clone()), false).unwrap_err();
            assert_eq!(error.key, "invalid_payload", "{body}");
            assert!(error.details.contains(".customer"), "{}", error.details);
        }
    }

    #[test]
    fn campaign_may_be_a_name_or_an_object_with_count() {
        let by_name = parse_publication(
            &object(json!({"campaign": "Welcome 10", "customer": {"id": "cust_1"}})),
            true,
        )
        .unwrap();
        assert_eq!(
            by_name.target,
            Target::Campaign {
                name: "Welcome 10".to_owned(),
                count: None
            }
        );
        assert!(by_name.join_once);
        assert_eq!(by_name.channel, "API");
        let counted = parse_publication(
            &object(json!({"campaign": {"name": "Welcome 10", "count": 3}, "customer": {"source_id": "c"}})),
            false,
        )
        .unwrap();
        assert_eq!(
            counted.target,
            Target::Campaign {
                name: "Welcome 10".to_owned(),
                count: Some(3)
            }
        );
        let with_source_id = parse_publication(
            &object(json!({"campaign": {"name": "W", "count": 3}, "customer": {"source_id": "c"}, "source_id": "m"})),
            false,
        );
        assert!(with_source_id.is_err());
    }

    #[test]
    fn customer_validation_names_the_property_but_not_the_value() {
        let error = parse_customer(
            &object(json!({"source_id": "c", "email": "ann.example.com"})),
            "",
            CustomerShape::Api,
        )
        .unwrap_err();
        assert_eq!(error.details, "Property .email should match format \"email\"");
        let error = parse_customer(&object(json!({"surname": "x"})), "", CustomerShape::Api).unwrap_err();
        assert_eq!(error.details, "Property .surname is not allowed");
        let error = parse_customer(
            &object(json!({"birthdate": "31.01.1990"})),
            ".customer",
            CustomerShape::Api,
        )
        .unwrap_err();
        assert!(error.details.starts_with("Property .customer.birthdate"));
    }

    #[test]
    fn integration_customers_take_the_hard_id_as_source_id() {
        let input = parse_customer(
            &object(json!({"registered": "c-9", "name": "Ann", "unknown": 1})),
            "[0]",
            CustomerShape::Integration("registered"),
        )
        .unwrap();
        assert_eq!(input.source_id.as_deref(), Some("c-9"));
        assert!(
            parse_customer(
                &object(json!({"name": "Ann"})),
                "[0]",
                CustomerShape::Integration("registered")
            )
            .is_err()
        );
    }

    #[test]
    fn join_once_must_be_a_boolean() {
        assert_eq!(join_once(Some("join_once=true")).ok(), Some(true));
        assert_eq!(join_once(None).ok(), Some(false));
        assert!(join_once(Some("join_once=yes")).is_err());
    }
}
