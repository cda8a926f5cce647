//! The `/_sandbox/...` endpoints: inspection and control for tests and demos. No auth; JSON in
//! and out; errors are `{"error": "..."}`.
//!
//! | method and path | effect |
//! |---|---|
//! | `GET /_sandbox/health` | `{"status":"ok","providers":[...]}` |
//! | `POST /_sandbox/reset` | clears provider data, calls and faults; restores configured limits |
//! | `GET /_sandbox/calls?provider=spotler` | the call log (all providers without `provider`) |
//! | `GET /_sandbox/spotler/contacts` | every Spotler contact (aliases, anonymized/inactive flags) |
//! | `GET /_sandbox/ecomail/subscribers` | `{"<list_id>": [subscriber, ...]}` |
//! | `GET /_sandbox/ecomail/events` | every tracker event |
//! | `GET /_sandbox/voucherify/publications` | every publication, as the API returned it |
//! | `GET /_sandbox/voucherify/customers` | every customer, as the API returns it |
//! | `GET /_sandbox/voucherify/vouchers` | every voucher of the catalog (published or not) |
//! | `GET /_sandbox/voucherify/events` | custom events from `create-event-bulk` |
//! | `GET /_sandbox/voucherify/integration-calls` | accepted integration calls with `dropped_metadata` |
//! | `GET /_sandbox/bloomreach/customers` | customers with ids, properties and timestamps |
//! | `GET /_sandbox/bloomreach/events` | every accepted event |
//! | `GET /_sandbox/salesmanago/contacts` | contacts with tags, properties and opt-in state |
//! | `GET /_sandbox/salesmanago/events` | external events |
//! | `GET`/`PUT /_sandbox/salesmanago/limit-mode` | read / set `{"mode": "http429" \| "success_false"}` |
//! | `GET /_sandbox/froomle/requests` | recommendation requests with the items answered |
//! | `GET /_sandbox/froomle/events` | every accepted event |
//! | `POST /_sandbox/froomle/expire-tokens` | invalidates every issued token; `{"tokens_issued": N}` |
//! | `GET`/`PUT`/`DELETE /_sandbox/faults/{provider}` | read / replace / clear the [`crate::Fault`] |
//! | `GET`/`PUT /_sandbox/limits/{provider}` | read / set `{"rate": "10/s"}` (`null` disables) |

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Fault, Provider, SalesmanagoLimitMode, Sandbox};

/// The inspection routes (absolute paths).
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/_sandbox/health", get(health))
        .route("/_sandbox/reset", post(reset))
        .route("/_sandbox/calls", get(calls))
        .route("/_sandbox/spotler/contacts", get(spotler_contacts))
        .route("/_sandbox/ecomail/subscribers", get(ecomail_subscribers))
        .route("/_sandbox/ecomail/events", get(ecomail_events))
        .route(
            "/_sandbox/voucherify/publications",
            get(|State(s): State<Sandbox>| async move { Json(s.voucherify_publications()) }),
        )
        .route(
            "/_sandbox/voucherify/customers",
            get(|State(s): State<Sandbox>| async move { Json(s.voucherify_customers()) }),
        )
        .route(
            "/_sandbox/voucherify/vouchers",
            get(|State(s): State<Sandbox>| async move { Json(s.voucherify_vouchers()) }),
        )
        .route(
            "/_sandbox/voucherify/events",
            get(|State(s): State<Sandbox>| async move { Json(s.voucherify_events()) }),
        )
        .route(
            "/_sandbox/voucherify/integration-calls",
            get(|State(s): State<Sandbox>| async move { Json(s.voucherify_integration_calls()) }),
        )
        .route(
            "/_sandbox/bloomreach/customers",
            get(|State(s): State<Sandbox>| async move { Json(s.bloomreach_customers()) }),
        )
        .route(
            "/_sandbox/bloomreach/events",
            get(|State(s): State<Sandbox>| async move { Json(s.bloomreach_events()) }),
        )
        .route(
            "/_sandbox/salesmanago/contacts",
            get(|State(s): State<Sandbox>| async move { Json(s.salesmanago_contacts()) }),
        )
        .route(
            "/_sandbox/salesmanago/events",
            get(|State(s): State<Sandbox>| async move { Json(s.salesmanago_events()) }),
        )
        .route(
            "/_sandbox/salesmanago/limit-mode",
            get(get_limit_mode).put(put_limit_mode),
        )
        .route(
            "/_sandbox/froomle/requests",
            get(|State(s): State<Sandbox>| async move { Json(s.froomle_requests()) }),
        )
        .route(
            "/_sandbox/froomle/events",
            get(|State(s): State<Sandbox>| async move { Json(s.froomle_events()) }),
        )
        .route("/_sandbox/froomle/expire-tokens", post(expire_froomle_tokens))
        .route(
            "/_sandbox/faults/{provider}",
            get(get_fault).put(put_fault).delete(delete_fault),
        )
        .route("/_sandbox/limits/{provider}", get(get_limit).put(put_limit))
}

/// A `{"error": ...}` response.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

fn provider(name: &str) -> Result<Provider, String> {
    name.parse()
}

async fn health() -> Response {
    let providers: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
    Json(json!({"status": "ok", "providers": providers})).into_response()
}

async fn reset(State(sandbox): State<Sandbox>) -> Response {
    sandbox.reset();
    Json(json!({"status": "reset"})).into_response()
}

async fn calls(State(sandbox): State<Sandbox>, RawQuery(query): RawQuery) -> Response {
    let mut filter = None;
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name == "provider" {
            match value.parse::<Provider>() {
                Ok(p) => filter = Some(p),
                Err(why) => return error(StatusCode::BAD_REQUEST, &why),
            }
        }
    }
    let calls = match filter {
        Some(p) => sandbox.calls(p),
        None => sandbox.all_calls(),
    };
    Json(calls).into_response()
}

async fn spotler_contacts(State(sandbox): State<Sandbox>) -> Response {
    Json(sandbox.spotler_contacts()).into_response()
}

async fn ecomail_subscribers(State(sandbox): State<Sandbox>) -> Response {
    let lists: serde_json::Map<String, Value> = sandbox
        .ecomail_subscribers()
        .into_iter()
        .map(|(list_id, subscribers)| (list_id.to_string(), json!(subscribers)))
        .collect();
    Json(Value::Object(lists)).into_response()
}

async fn ecomail_events(State(sandbox): State<Sandbox>) -> Response {
    Json(sandbox.ecomail_events()).into_response()
}

fn fault_view(sandbox: &Sandbox, provider: Provider) -> Response {
    Json(json!({"provider": provider, "fault": sandbox.fault(provider)})).into_response()
}

async fn get_fault(State(sandbox): State<Sandbox>, Path(name): Path<String>) -> Response {
    match provider(&name) {
        Ok(p) => fault_view(&sandbox, p),
        Err(why) => error(StatusCode::NOT_FOUND, &why),
    }
}

async fn put_fault(State(sandbox): State<Sandbox>, Path(name): Path<String>, body: Bytes) -> Response {
    let p = match provider(&name) {
        Ok(p) => p,
        Err(why) => return error(StatusCode::NOT_FOUND, &why),
    };
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(fault) => fault,
        Err(why) => return error(StatusCode::BAD_REQUEST, &format!("invalid fault: {why}")),
    };
    match sandbox.set_fault(p, fault) {
        Ok(()) => fault_view(&sandbox, p),
        Err(why) => error(StatusCode::BAD_REQUEST, &why),
    }
}

async fn delete_fault(State(sandbox): State<Sandbox>, Path(name): Path<String>) -> Response {
    match provider(&name) {
        Ok(p) => {
            sandbox.clear_fault(p);
            fault_view(&sandbox, p)
        }
        Err(why) => error(StatusCode::NOT_FOUND, &why),
    }
}

/// `{"rate": "10/s"}`, or `{"rate": null}` to disable.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitRequest {
    rate: Option<String>,
}

fn limit_view(sandbox: &Sandbox, provider: Provider) -> Response {
    let rate = sandbox.limit(provider).map(|rate| rate.to_string());
    Json(json!({"provider": provider, "rate": rate})).into_response()
}

async fn get_limit(State(sandbox): State<Sandbox>, Path(name): Path<String>) -> Response {
    match provider(&name) {
        Ok(p) => limit_view(&sandbox, p),
        Err(why) => error(StatusCode::NOT_FOUND, &why),
    }
}

async fn put_limit(State(sandbox): State<Sandbox>, Path(name): Path<String>, body: Bytes) -> Response {
    let p = match provider(&name) {
        Ok(p) => p,
        Err(why) => return error(StatusCode::NOT_FOUND, &why),
    };
    let request: LimitRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(why) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"rate\": \"10/s\"}} or {{\"rate\": null}}: {why}"),
            );
        }
    };
    match sandbox.set_limit(p, request.rate.as_deref()) {
        Ok(()) => limit_view(&sandbox, p),
        Err(why) => error(StatusCode::BAD_REQUEST, &why),
    }
}

async fn get_limit_mode(State(sandbox): State<Sandbox>) -> Response {
    Json(json!({"mode": sandbox.salesmanago_limit_mode()})).into_response()
}

/// `{"mode": "http429"}` or `{"mode": "success_false"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitModeRequest {
    mode: SalesmanagoLimitMode,
}

async fn put_limit_mode(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    match serde_json::from_slice::<LimitModeRequest>(&body) {
        Ok(request) => {
            sandbox.set_salesmanago_limit_mode(request.mode);
            get_limit_mode(State(sandbox)).await
        }
        Err(why) => error(
            StatusCode::BAD_REQUEST,
            &format!("expected {{\"mode\": \"http429\"}} or {{\"mode\": \"success_false\"}}: {why}"),
        ),
    }
}

async fn expire_froomle_tokens(State(sandbox): State<Sandbox>) -> Response {
    sandbox.expire_froomle_tokens();
    Json(json!({"status": "expired", "tokens_issued": sandbox.froomle_tokens_issued()})).into_response()
}
