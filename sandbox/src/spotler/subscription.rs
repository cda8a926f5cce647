//! Spotler `POST /subscription/subscribe`: a subscriber from a sign-up form. The body is a
//! `Contact` whose `externalId` is optional; the properties must hold a valid `email` and at
//! least one permission. An existing contact (by external id, else by e-mail) is updated,
//! otherwise a new one is created.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use super::{ContactBody, error, parse_body, stamp, validate_contact};
use crate::Sandbox;

/// `POST /subscription/subscribe`.
pub(super) async fn subscribe(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let contact: ContactBody = match parse_body(&headers, &body) {
        Ok(contact) => contact,
        Err(rejected) => return rejected.into_response(),
    };
    let external_id = contact.external_id.clone().filter(|id| !id.trim().is_empty());
    let properties = contact.properties.clone().unwrap_or_default();
    if !properties.get("email").is_some_and(Value::is_string) {
        return error(StatusCode::BAD_REQUEST, "INVALID_PARAMS", "Email is required");
    }
    let has_permission = properties
        .get("permissions")
        .and_then(Value::as_array)
        .is_some_and(|permissions| !permissions.is_empty());
    if !has_permission {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMS",
            "At least one permission is required",
        );
    }
    let input = match validate_contact(contact) {
        Ok(input) => input,
        Err(invalid) => return invalid.into_response(),
    };
    sandbox
        .spotler_store()
        .subscribe(external_id.as_deref(), &input, &stamp());
    StatusCode::NO_CONTENT.into_response()
}
