//! Voucherify's Bloomreach Engagement integration endpoints, served under
//! `/voucherify-integration` (PROVIDERS.md section 1, "Bloomreach integration endpoints"):
//! what a Bloomreach batch webhook calls to push customers and events into Voucherify.
//!
//! | method and path | answer |
//! |---|---|
//! | `POST /bloomreach-engagement/upsert-customer-bulk` | 202 `{}`; 400 if the body is not a batch |
//! | `POST /bloomreach-engagement/create-event-bulk` | 202 `{}`; 400 if the body is not a batch |
//!
//! Auth is the integration key in the `application-id` and `secret-key` headers (401 with the
//! Voucherify error envelope). The body is a bare JSON array or `{"data": [...]}` of at most
//! 1000 elements. Customer elements are `{"<hard id>": "...", name, description, email, phone,
//! birthdate, address, metadata}`, event elements `{"event": "Name", "customer": {"<hard id>":
//! "..."}, "metadata": {...}}`; the hard-ID key is configurable (default `registered`) and its
//! value is the Voucherify customer `source_id`. Only metadata keys the sandbox's metadata
//! schema defines, with the right type, are applied: others are dropped silently, and each
//! accepted call is recorded with the number dropped. Elements that cannot be applied (no hard
//! id, a wrongly typed standard field, no event name) are skipped and counted, as the vendor
//! processes the batch asynchronously and reports nothing back.

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, request::Parts},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Map, Value, json};

use super::{
    CustomerShape, VoucherifyError, json_object_or_array, parse_customer,
    store::{CustomEvent, CustomerInput, IntegrationCall, filter_metadata},
};
use crate::{
    Sandbox,
    support::{constant_time_eq, now_utc, rfc3339_millis},
};

/// The most elements one batch may carry (a Bloomreach batch webhook sends at most 1000).
const MAX_BATCH_ELEMENTS: usize = 1000;

/// The integration routes, relative to the prefix.
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/bloomreach-engagement/upsert-customer-bulk", post(upsert_customers))
        .route("/bloomreach-engagement/create-event-bulk", post(create_events))
        .fallback(|| async {
            VoucherifyError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Resource not found",
                "Cannot find the requested resource",
            )
            .into_response()
        })
        .method_not_allowed_fallback(|| async {
            VoucherifyError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method Not Allowed",
                "The method is not allowed for this resource",
            )
            .into_response()
        })
}

/// 401 if the `application-id` / `secret-key` headers are missing or wrong.
pub(crate) fn auth_failure(sandbox: &Sandbox, parts: &Parts) -> Option<Response> {
    let creds = &sandbox.config().voucherify_integration;
    let unauthorized = |details: &str| {
        Some(VoucherifyError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", details).into_response())
    };
    let (Some(app_id), Some(secret)) = (parts.headers.get("application-id"), parts.headers.get("secret-key")) else {
        return unauthorized("Missing application-id or secret-key header");
    };
    if constant_time_eq(app_id.as_bytes(), creds.application_id.as_bytes())
        && constant_time_eq(secret.as_bytes(), creds.secret_key.as_bytes())
    {
        None
    } else {
        unauthorized("Cannot authenticate: invalid integration key")
    }
}

/// The elements of a batch: a bare array or `{"data": [...]}`.
fn elements(headers: &HeaderMap, body: &Bytes) -> Result<Vec<Value>, VoucherifyError> {
    let items = match json_object_or_array(headers, body)? {
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("data") {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(VoucherifyError::invalid(
                    "Request body must be an array or an object with a data array",
                ));
            }
        },
        _ => {
            return Err(VoucherifyError::invalid(
                "Request body must be an array or an object with a data array",
            ));
        }
    };
    if items.len() > MAX_BATCH_ELEMENTS {
        return Err(VoucherifyError::invalid(format!(
            "A batch may hold at most {MAX_BATCH_ELEMENTS} elements"
        )));
    }
    Ok(items)
}

/// Counts for one call.
#[derive(Debug, Default)]
struct Tally {
    applied: usize,
    skipped: usize,
    dropped: Vec<String>,
}

impl Tally {
    /// Filters `metadata` through the schema, counting what is dropped.
    fn filter(&mut self, sandbox: &Sandbox, metadata: Option<&Map<String, Value>>) -> Option<Map<String, Value>> {
        let metadata = metadata?;
        let (kept, dropped) = filter_metadata(&sandbox.config().voucherify_metadata_schema, metadata);
        self.dropped.extend(dropped);
        Some(kept)
    }

    fn record(self, sandbox: &Sandbox, endpoint: &'static str, elements: usize, received_at: String) {
        let call = IntegrationCall {
            endpoint,
            received_at,
            elements,
            applied: self.applied,
            skipped: self.skipped,
            dropped_metadata: self.dropped.len(),
            dropped_metadata_keys: self.dropped.into_iter().collect(),
        };
        sandbox.voucherify_store().add_integration_call(call);
    }
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({}))).into_response()
}

/// `POST /bloomreach-engagement/upsert-customer-bulk`.
async fn upsert_customers(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let items = match elements(&headers, &body) {
        Ok(items) => items,
        Err(error) => return error.into_response(),
    };
    let now = rfc3339_millis(now_utc());
    let hard_id = sandbox.config().voucherify_integration.hard_id.clone();
    let mut tally = Tally::default();
    let mut inputs = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let parsed = match item {
            Value::Object(map) => parse_customer(map, &format!("[{index}]"), CustomerShape::Integration(&hard_id)).ok(),
            _ => None,
        };
        match parsed {
            Some(mut input) => {
                input.metadata = tally.filter(&sandbox, input.metadata.as_ref());
                inputs.push(input);
            }
            None => tally.skipped += 1,
        }
    }
    let mut store = sandbox.voucherify_store();
    for input in &inputs {
        match store.upsert_customer(input, &now) {
            Ok(_) => tally.applied += 1,
            Err(_) => tally.skipped += 1,
        }
    }
    drop(store);
    tally.record(&sandbox, "upsert-customer-bulk", items.len(), now);
    accepted()
}

/// `POST /bloomreach-engagement/create-event-bulk`.
async fn create_events(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let items = match elements(&headers, &body) {
        Ok(items) => items,
        Err(error) => return error.into_response(),
    };
    let now = rfc3339_millis(now_utc());
    let hard_id = sandbox.config().voucherify_integration.hard_id.clone();
    let mut tally = Tally::default();
    let mut events = Vec::with_capacity(items.len());
    for item in &items {
        let event = item
            .get("event")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|name| !name.is_empty());
        let source_id = item.get("customer").and_then(|customer| match customer.get(&hard_id) {
            Some(Value::String(id)) if !id.trim().is_empty() => Some(id.trim().to_owned()),
            Some(Value::Number(number)) => Some(number.to_string()),
            _ => None,
        });
        let metadata = match item.get("metadata") {
            None | Some(Value::Null) => Some(Map::new()),
            Some(Value::Object(metadata)) => Some(metadata.clone()),
            Some(_) => None,
        };
        match (event, source_id, metadata) {
            (Some(event), Some(source_id), Some(metadata)) => {
                let metadata = tally.filter(&sandbox, Some(&metadata)).unwrap_or_default();
                events.push((event.to_owned(), source_id, metadata));
            }
            _ => tally.skipped += 1,
        }
    }
    let mut store = sandbox.voucherify_store();
    for (event, source_id, metadata) in events {
        let input = CustomerInput {
            source_id: Some(source_id.clone()),
            ..CustomerInput::default()
        };
        match store.upsert_customer(&input, &now) {
            Ok(customer) => {
                store.add_event(CustomEvent {
                    event,
                    customer_id: customer.id,
                    customer_source_id: source_id,
                    metadata,
                    created_at: now.clone(),
                });
                tally.applied += 1;
            }
            Err(_) => tally.skipped += 1,
        }
    }
    drop(store);
    tally.record(&sandbox, "create-event-bulk", items.len(), now);
    accepted()
}
