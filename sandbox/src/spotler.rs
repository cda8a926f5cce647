//! Spotler Mail+ (ex-MailPlus) REST API emulation, served under
//! `/spotler/integrationservice-1.1.0` (PROVIDERS.md section 3).
//!
//! | method and path | answer |
//! |---|---|
//! | `POST /contact` | 204; 400 `CONTACT_ALREADY_EXISTS`, `INVALID_PARAMS`, `INVALID_PROPERTY` |
//! | `POST /contact/list` (max 100) | 200 `[{externalId, code, message}]` |
//! | `PUT /contact/{externalId}` | 204; 404 `CONTACT_NOT_FOUND` |
//! | `GET /contact/{externalId}` | 200 contact; 404 |
//! | `PUT /contact/anonymize/{externalId}` | 204; 404 |
//! | `PUT /contact/inactivate/{externalId}` | 204; 404 |
//! | `GET /contact/properties/list` | 200 the default property set |
//! | `GET /contact/bounces/list`, `GET /contact/updates/list` | 200 `{paging, bounces \| contacts}` ([`changes`]) |
//! | `GET /contact/search?MPSearchQuery=<property>=<value>` | 200 `{paging, contacts}` ([`search`]) |
//! | `POST /subscription/subscribe` | 204; 400 without e-mail or permission ([`subscription`]) |
//! | `POST /templist`, `GET /templist` | 204 / 200 list; 400 `Too many temporary lists` over 30 ([`templist`]) |
//! | `POST /templist/{id}`, `DELETE /templist/{id}` | 204; 404 `Templist not found` |
//!
//! Every call needs a valid OAuth 1.0a one-legged HMAC-SHA1 `Authorization` header (see
//! [`oauth`]); request bodies must be JSON (415 otherwise). Errors are always
//! `{"errorType": "...", "message": "..."}`.

pub(crate) mod changes;
pub(crate) mod oauth;
pub(crate) mod search;
pub(crate) mod store;
pub(crate) mod subscription;
pub(crate) mod templist;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State, rejection::PathRejection},
    http::{
        HeaderMap, HeaderValue, StatusCode,
        header::{AUTHORIZATION, HOST, RETRY_AFTER},
        request::Parts,
    },
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use self::store::{ContactInput, InsertError, InsertOutcome, SpotlerChannel, Stamp};
use crate::{
    Sandbox,
    provider::Refusal,
    support::{has_json_content_type, is_plausible_email, iso_seconds, now_utc},
};

/// The most contacts `POST /contact/list` accepts.
const MAX_CONTACTS_PER_LIST_CALL: usize = 100;

/// The Spotler routes, relative to the prefix.
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/contact", post(insert_contact))
        .route("/contact/list", post(insert_contacts))
        .route("/contact/properties/list", get(list_properties))
        .route("/contact/anonymize/{external_id}", put(anonymize_contact))
        .route("/contact/inactivate/{external_id}", put(inactivate_contact))
        .route("/contact/{external_id}", get(get_contact).put(update_contact))
        .route("/contact/search", get(search::search))
        .route("/subscription/subscribe", post(subscription::subscribe))
        .route("/templist", post(templist::create).get(templist::list))
        .route("/templist/{external_id}", post(templist::add).delete(templist::delete))
        .merge(changes::router())
        .fallback(unknown_resource)
        .method_not_allowed_fallback(method_not_allowed)
}

/// A Spotler error response.
fn error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (status, Json(json!({"errorType": error_type, "message": message}))).into_response()
}

fn with_retry_after(mut response: Response, retry_after_secs: Option<u64>) -> Response {
    if let Some(secs) = retry_after_secs {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Spotler's answer to a refusal by the shared machinery.
pub(crate) fn refusal(refusal: Refusal) -> Response {
    match refusal {
        Refusal::RateLimited { retry_after_secs } => with_retry_after(
            error(StatusCode::TOO_MANY_REQUESTS, "BACKEND_EXCEPTION", "Too many requests"),
            Some(retry_after_secs),
        ),
        Refusal::Forced {
            status,
            retry_after_secs,
        } => {
            let (error_type, message) = match status.as_u16() {
                401 | 403 => ("NOT_AUTHORIZED", "Forced failure"),
                404 => ("RESOURCE_NOT_FOUND", "Forced failure"),
                429 => ("BACKEND_EXCEPTION", "Too many requests"),
                400..=499 => ("INVALID_PARAMS", "Forced failure"),
                _ => ("BACKEND_EXCEPTION", "Forced failure"),
            };
            with_retry_after(error(status, error_type, message), retry_after_secs)
        }
        Refusal::InjectedError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "BACKEND_EXCEPTION",
            "Injected failure",
        ),
        Refusal::PayloadTooLarge => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "INVALID_PARAMS",
            "Request body too large (max 1 MiB)",
        ),
    }
}

/// A Spotler error answer: a status with `{"errorType": ..., "message": ...}`.
#[derive(Debug)]
struct SpotlerError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl SpotlerError {
    fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
        }
    }
}

impl IntoResponse for SpotlerError {
    fn into_response(self) -> Response {
        error(self.status, self.error_type, &self.message)
    }
}

/// Spotler's 401 answer if the request's OAuth 1.0a signature is missing or wrong.
pub(crate) fn auth_failure(sandbox: &Sandbox, parts: &Parts) -> Option<Response> {
    verify_signature(sandbox, parts).err().map(IntoResponse::into_response)
}

fn verify_signature(sandbox: &Sandbox, parts: &Parts) -> Result<(), SpotlerError> {
    let unauthorized = |message: &str| SpotlerError::new(StatusCode::UNAUTHORIZED, "NOT_AUTHORIZED", message);
    let authorization = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthorized("Missing Authorization header"))?
        .to_str()
        .map_err(|_| unauthorized("Authorization header is not valid text"))?;
    let host = parts
        .headers
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
        .ok_or_else(|| unauthorized("Missing Host header"))?;
    let forwarded_https = parts
        .headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let request = oauth::SignedRequest {
        method: parts.method.as_str(),
        scheme: if forwarded_https { "https" } else { "http" },
        host: &host,
        path: parts.uri.path(),
        query: parts.uri.query(),
        authorization,
    };
    let creds = &sandbox.config().spotler;
    oauth::verify(
        &request,
        &creds.consumer_key,
        &creds.consumer_secret,
        now_utc().unix_timestamp(),
    )
    .map_err(|message| unauthorized(&message))
}

/// `ContactRequest` and the contacts of `AddContactsRequest`.
#[derive(Debug, Deserialize)]
struct ContactRequest {
    #[serde(default)]
    update: bool,
    #[serde(default)]
    purge: bool,
    contact: ContactBody,
}

#[derive(Debug, Deserialize)]
struct ContactListRequest {
    #[serde(default)]
    update: bool,
    #[serde(default)]
    purge: bool,
    contacts: Vec<ContactBody>,
}

/// The writable part of a Spotler `Contact` (read-only fields are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContactBody {
    external_id: Option<String>,
    properties: Option<Map<String, Value>>,
    channels: Option<Vec<SpotlerChannel>>,
    test_group: Option<bool>,
}

/// A contact that failed validation: `(errorType for single calls, code for list calls,
/// message)`.
#[derive(Debug)]
struct Invalid {
    error_type: &'static str,
    code: &'static str,
    message: String,
}

impl Invalid {
    fn into_response(self) -> Response {
        error(StatusCode::BAD_REQUEST, self.error_type, &self.message)
    }
}

fn invalid_property(message: &str) -> Invalid {
    Invalid {
        error_type: "INVALID_PROPERTY",
        code: "PROPERTY_INVALID",
        message: message.to_owned(),
    }
}

/// Validates the properties and channels of a contact.
fn validate_contact(body: ContactBody) -> Result<ContactInput, Invalid> {
    let properties = body.properties.unwrap_or_default();
    match properties.get("email") {
        None | Some(Value::Null) => {}
        Some(Value::String(email)) if is_plausible_email(email.trim()) => {}
        Some(_) => return Err(invalid_property("Email is invalid")),
    }
    if let Some(permissions) = properties.get("permissions")
        && !permissions.is_null()
        && !is_valid_permissions(permissions)
    {
        return Err(invalid_property("Property is invalid"));
    }
    if let Some(channels) = &body.channels
        && let Some(bad) = channels.iter().find(|c| c.name != "EMAIL" && c.name != "SMS")
    {
        return Err(Invalid {
            error_type: "INVALID_PARAMS",
            code: "ERROR",
            message: format!("Unknown channel {}", bad.name),
        });
    }
    Ok(ContactInput {
        properties,
        channels: body.channels,
        test_group: body.test_group,
    })
}

/// `permissions` must be an array of `{bit: integer, enabled: bool}`.
fn is_valid_permissions(value: &Value) -> bool {
    value.as_array().is_some_and(|entries| {
        entries.iter().all(|entry| {
            entry.as_object().is_some_and(|object| {
                object.get("bit").is_some_and(Value::is_i64) && object.get("enabled").is_some_and(Value::is_boolean)
            })
        })
    })
}

/// Checks the content type and decodes a JSON body.
fn parse_body<T: for<'de> Deserialize<'de>>(headers: &HeaderMap, body: &Bytes) -> Result<T, SpotlerError> {
    if !has_json_content_type(headers) {
        return Err(SpotlerError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "INVALID_PARAMS",
            "Content-Type must be application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        SpotlerError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMS",
            format!("Invalid request body: {e}"),
        )
    })
}

fn stamp() -> Stamp {
    Stamp {
        now: iso_seconds(now_utc()),
        encrypted_id: format!("{:032x}", rand::random::<u128>()),
    }
}

fn external_id_of(path: Result<Path<String>, PathRejection>) -> Result<String, SpotlerError> {
    path.map(|Path(id)| id)
        .map_err(|_| SpotlerError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMS", "Invalid externalId in path"))
}

fn contact_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "CONTACT_NOT_FOUND", "Given contact not found")
}

/// `POST /contact`.
async fn insert_contact(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let request: ContactRequest = match parse_body(&headers, &body) {
        Ok(request) => request,
        Err(rejected) => return rejected.into_response(),
    };
    let Some(external_id) = request.contact.external_id.clone().filter(|id| !id.trim().is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMS",
            "Contact without externalId found",
        );
    };
    let input = match validate_contact(request.contact) {
        Ok(input) => input,
        Err(invalid) => return invalid.into_response(),
    };
    let outcome = sandbox
        .spotler_store()
        .insert(&external_id, &input, request.update, request.purge, &stamp());
    match outcome {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(InsertError::AlreadyExists) => error(
            StatusCode::BAD_REQUEST,
            "CONTACT_ALREADY_EXISTS",
            "Contact already exists",
        ),
    }
}

/// `POST /contact/list`.
async fn insert_contacts(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let request: ContactListRequest = match parse_body(&headers, &body) {
        Ok(request) => request,
        Err(rejected) => return rejected.into_response(),
    };
    if request.contacts.len() > MAX_CONTACTS_PER_LIST_CALL {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMS",
            "Too many contacts provided (max is 100)",
        );
    }
    if request
        .contacts
        .iter()
        .any(|c| c.external_id.as_deref().is_none_or(|id| id.trim().is_empty()))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMS",
            "Contact without externalId found",
        );
    }
    let stamp = stamp();
    let mut results = Vec::with_capacity(request.contacts.len());
    let mut store = sandbox.spotler_store();
    for contact in request.contacts {
        let external_id = contact.external_id.clone().unwrap_or_default();
        let (code, message) = match validate_contact(contact) {
            Err(invalid) => (invalid.code, invalid.message),
            Ok(input) => match store.insert(&external_id, &input, request.update, request.purge, &stamp) {
                Ok(InsertOutcome::Inserted) => ("OK", "Contact inserted".to_owned()),
                Ok(InsertOutcome::Updated) => ("OK", "Contact updated".to_owned()),
                Ok(InsertOutcome::MergedByEmail { into }) => (
                    "OK",
                    format!("Contact merged into existing contact {into} with the same email"),
                ),
                Err(InsertError::AlreadyExists) => ("CONTACT_ALREADY_EXISTS", "Contact already exists".to_owned()),
            },
        };
        results.push(json!({"externalId": external_id, "code": code, "message": message}));
    }
    drop(store);
    Json(Value::Array(results)).into_response()
}

/// `PUT /contact/{externalId}`.
async fn update_contact(
    State(sandbox): State<Sandbox>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let external_id = match external_id_of(path) {
        Ok(id) => id,
        Err(rejected) => return rejected.into_response(),
    };
    let request: ContactRequest = match parse_body(&headers, &body) {
        Ok(request) => request,
        Err(rejected) => return rejected.into_response(),
    };
    let input = match validate_contact(request.contact) {
        Ok(input) => input,
        Err(invalid) => return invalid.into_response(),
    };
    let now = iso_seconds(now_utc());
    if sandbox
        .spotler_store()
        .update(&external_id, &input, request.purge, &now)
    {
        StatusCode::NO_CONTENT.into_response()
    } else {
        contact_not_found()
    }
}

/// `GET /contact/{externalId}`.
async fn get_contact(State(sandbox): State<Sandbox>, path: Result<Path<String>, PathRejection>) -> Response {
    let external_id = match external_id_of(path) {
        Ok(id) => id,
        Err(rejected) => return rejected.into_response(),
    };
    let Some(contact) = sandbox.spotler_contact(&external_id) else {
        return contact_not_found();
    };
    Json(contact_json(&contact)).into_response()
}

/// A contact as Spotler's API shows it.
fn contact_json(contact: &store::SpotlerContact) -> Value {
    json!({
        "externalId": contact.external_id,
        "properties": contact.properties,
        "channels": contact.channels,
        "created": contact.created,
        "lastChanged": contact.last_changed,
        "encryptedId": contact.encrypted_id,
        "temporary": false,
        "testGroup": contact.test_group,
    })
}

/// `PUT /contact/anonymize/{externalId}` (any body is ignored).
async fn anonymize_contact(State(sandbox): State<Sandbox>, path: Result<Path<String>, PathRejection>) -> Response {
    let external_id = match external_id_of(path) {
        Ok(id) => id,
        Err(rejected) => return rejected.into_response(),
    };
    let now = iso_seconds(now_utc());
    if sandbox.spotler_store().anonymize(&external_id, &now) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        contact_not_found()
    }
}

/// `PUT /contact/inactivate/{externalId}` (any body is ignored).
async fn inactivate_contact(State(sandbox): State<Sandbox>, path: Result<Path<String>, PathRejection>) -> Response {
    let external_id = match external_id_of(path) {
        Ok(id) => id,
        Err(rejected) => return rejected.into_response(),
    };
    let now = iso_seconds(now_utc());
    if sandbox.spotler_store().inactivate(&external_id, &now) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        contact_not_found()
    }
}

/// `GET /contact/properties/list`: the sandbox account's property definitions.
async fn list_properties() -> Response {
    Json(json!([
        {"name": "email", "description": "Email address", "type": "email"},
        {"name": "firstName", "description": "First name", "type": "string"},
        {"name": "lastName", "description": "Last name", "type": "string"},
        {"name": "language", "description": "Language", "type": "string"},
        {"name": "firstPurchaseDate", "description": "First purchase date", "type": "date"},
        {"name": "lastPurchaseDate", "description": "Last purchase date", "type": "date"},
        {"name": "permissions", "description": "Permissions", "type": "set", "entries": [
            {"bit": 1, "description": "Newsletter", "rank": 1},
            {"bit": 2, "description": "Offers", "rank": 2},
        ]},
        {"name": "loyaltyTier", "description": "Loyalty tier", "type": "string"},
        {"name": "phone", "description": "Mobile number", "type": "mobNr"},
        {"name": "city", "description": "City", "type": "string"},
    ]))
    .into_response()
}

async fn unknown_resource() -> Response {
    error(StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND", "Resource not found")
}

async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "INVALID_PARAMS", "Method not allowed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_must_be_bit_and_enabled_pairs() {
        assert!(is_valid_permissions(&json!([{"bit": 1, "enabled": true}])));
        assert!(is_valid_permissions(&json!([])));
        assert!(!is_valid_permissions(&json!({"bit": 1, "enabled": true})));
        assert!(!is_valid_permissions(&json!([{"bit": "1", "enabled": true}])));
        assert!(!is_valid_permissions(&json!([{"bit": 1, "enabled": "yes"}])));
        assert!(!is_valid_permissions(&json!([{"bit": 1}])));
    }

    #[test]
    fn invalid_email_is_an_invalid_property() {
        let body = ContactBody {
            external_id: Some("1".to_owned()),
            properties: json!({"email": "not-an-email"}).as_object().cloned(),
            channels: None,
            test_group: None,
        };
        let invalid = validate_contact(body).unwrap_err();
        assert_eq!(invalid.error_type, "INVALID_PROPERTY");
        assert_eq!(invalid.message, "Email is invalid");
    }
}
