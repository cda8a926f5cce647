//! Ecomail API v2 adapter: list subscribe (with `update_existing` and custom fields),
//! subscriber lookup, custom-field updates of existing subscribers and tracker events.
//! Authentication is the `key` header.
//!
//! Only this crate knows Ecomail's JSON.

use std::collections::BTreeMap;
use std::fmt;

use api_client::client::{ErrorReply, excerpt};
use api_client::{CallError, Class, ProviderClient};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Credentials and the list contacts are synced to.
#[derive(Debug, Clone)]
pub struct EcomailConfig {
    /// API key (`ECOMAIL_API_KEY`).
    pub api_key: SecretString,
    /// List id (`ECOMAIL_LIST_ID`).
    pub list_id: u64,
}

/// Subscriber fields (`subscriber_data`). Personal data: never log it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Subscriber {
    /// E-mail (the natural key).
    pub email: String,
    /// Standard fields by Ecomail name (`name`, `surname`, `city`, `country`, `phone`, …).
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Custom fields.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_fields: BTreeMap<String, serde_json::Value>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Serialize)]
struct SubscribeRequest<'a> {
    subscriber_data: &'a Subscriber,
    update_existing: bool,
    skip_confirmation: bool,
    trigger_autoresponders: bool,
    resubscribe: bool,
}

#[derive(Serialize)]
struct UpdateSubscriberRequest<'a> {
    email: &'a str,
    subscriber_data: CustomFieldsOnly<'a>,
}

#[derive(Serialize)]
struct CustomFieldsOnly<'a> {
    custom_fields: &'a BTreeMap<String, serde_json::Value>,
}

#[derive(Serialize)]
struct TrackerRequest<'a> {
    event: &'a TrackerEvent,
}

/// A tracker event (`POST /tracker/events`): what Ecomail automations react to. Its `Debug`
/// hides the address.
#[derive(Clone, PartialEq, Serialize)]
pub struct TrackerEvent {
    /// The subscriber's e-mail; the subscriber must exist. Personal data: never log it.
    pub email: String,
    /// Category (e.g. `ellity`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Action (e.g. `change`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Label (e.g. `credit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Property.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// Value: text, or an object/array that Ecomail stores JSON-encoded (at most 20,000
    /// characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

impl fmt::Debug for TrackerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackerEvent")
            .field("email", &"<redacted>")
            .field("category", &self.category)
            .field("action", &self.action)
            .field("label", &self.label)
            .field("property", &self.property)
            .field("value", &self.value)
            .finish()
    }
}

/// A custom field value of type date (`{"value": "YYYY-MM-DD", "type": "date"}`), so Ecomail
/// can use it in date conditions.
pub fn date_value(date: &str) -> serde_json::Value {
    serde_json::json!({"value": date, "type": "date"})
}

/// Subscribers per `subscribe-bulk` call (Ecomail's limit).
pub const MAX_BULK: usize = 3000;

#[derive(Serialize)]
struct BulkSubscribeRequest<'a> {
    subscriber_data: &'a [Subscriber],
    update_existing: bool,
    resubscribe: bool,
}

#[derive(Deserialize)]
struct BulkAnswer {
    inserts: u64,
}

/// Custom fields for one existing subscriber, an entry of `update-subscriber-bulk`. Its
/// `Debug` hides the address.
#[derive(Clone, PartialEq, Serialize)]
pub struct FieldUpdate {
    /// The subscriber's e-mail. Personal data: never log it.
    pub email: String,
    /// The custom fields to set (merged key by key).
    pub custom_fields: BTreeMap<String, serde_json::Value>,
}

impl fmt::Debug for FieldUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldUpdate")
            .field("email", &"<redacted>")
            .field("custom_fields", &self.custom_fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Serialize)]
struct BulkUpdateRequest<'a> {
    subscriber_data: &'a [FieldUpdate],
    allow_resubscribe: bool,
}

#[derive(Deserialize)]
struct BulkUpdateAnswer {
    updates: u64,
}

#[derive(Deserialize)]
struct SubscriberEnvelope {
    subscriber: StoredSubscriber,
}

/// A subscriber as stored in a list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StoredSubscriber {
    /// Status: 1 subscribed, 2 unsubscribed, 4 hard bounce, 5 spam complaint, 6 unconfirmed.
    pub status: Option<i64>,
    /// Custom fields.
    #[serde(default)]
    pub custom_fields: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
    errors: Option<BTreeMap<String, serde_json::Value>>,
}

/// The Ecomail client.
#[derive(Debug, Clone)]
pub struct EcomailClient {
    http: ProviderClient,
    config: EcomailConfig,
}

/// The field names of a Laravel-style validation error body (`{"errors": {field: [...]}}`).
fn error_fields(reply: &ErrorReply) -> Vec<String> {
    serde_json::from_slice::<ErrorBody>(&reply.body)
        .ok()
        .and_then(|body| body.errors)
        .map(|errors| errors.into_keys().collect())
        .unwrap_or_default()
}

fn error(operation: &str, reply: &ErrorReply, class: Class) -> CallError {
    // Validation errors name fields; only the field names are kept, never the texts (which may
    // quote the submitted value).
    let detail = match serde_json::from_slice::<ErrorBody>(&reply.body) {
        Ok(ErrorBody { message, errors }) => {
            let fields: Vec<String> = errors.map(|e| e.into_keys().collect()).unwrap_or_default();
            let mut text = message.unwrap_or_default();
            if !fields.is_empty() {
                text.push_str(&format!(" (fields: {})", fields.join(", ")));
            }
            text
        }
        Err(_) => excerpt(&reply.body),
    };
    let text = format!("ecomail {operation}: HTTP {}: {detail}", reply.status.as_u16());
    if reply.status == StatusCode::NOT_FOUND {
        return CallError::NotFound(text);
    }
    match class {
        Class::Retriable | Class::RateLimited => CallError::Retriable(text),
        Class::Permanent => CallError::Permanent(text),
    }
}

impl EcomailClient {
    /// A client over the shared HTTP client.
    pub fn new(http: ProviderClient, config: EcomailConfig) -> Self {
        Self { http, config }
    }

    /// The list contacts go to.
    pub fn list_id(&self) -> u64 {
        self.config.list_id
    }

    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<api_client::Reply, CallError> {
        self.call_with(operation, method, path, body, |reply, class| {
            error(operation, reply, class)
        })
        .await
    }

    async fn call_with(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        on_error: impl Fn(&ErrorReply, Class) -> CallError,
    ) -> Result<api_client::Reply, CallError> {
        let key = |request: reqwest::RequestBuilder| request.header("key", self.config.api_key.expose_secret());
        self.http
            .send_json(operation, method, path, body.map(Into::into), key, on_error)
            .await
    }

    /// One bulk call to `/lists/{list}/<endpoint>` with `entries` subscribers (at most
    /// [`MAX_BULK`]: Ecomail silently ignores the rest, so more is refused here); `A` is its
    /// count answer.
    async fn bulk<A: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        endpoint: &str,
        entries: usize,
        request: &impl Serialize,
    ) -> Result<A, CallError> {
        if entries > MAX_BULK {
            return Err(CallError::Permanent(format!(
                "ecomail {operation}: {entries} subscribers, at most {MAX_BULK} per call"
            )));
        }
        let body = serde_json::to_vec(request)
            .map_err(|e| CallError::Permanent(format!("ecomail {operation}: cannot encode: {e}")))?;
        let path = format!("/lists/{}/{endpoint}", self.config.list_id);
        let reply = self.call(operation, method, &path, Some(body)).await?;
        serde_json::from_slice(&reply.body)
            .map_err(|e| CallError::Retriable(format!("ecomail {operation}: unexpected answer: {e}")))
    }

    /// `POST /lists/{list}/subscribe` with `update_existing`, skipping the double opt-in mail
    /// (the contact's consent comes from the source system).
    pub async fn subscribe(&self, subscriber: &Subscriber, update_existing: bool) -> Result<(), CallError> {
        let request = SubscribeRequest {
            subscriber_data: subscriber,
            update_existing,
            skip_confirmation: true,
            trigger_autoresponders: false,
            resubscribe: false,
        };
        let body = serde_json::to_vec(&request)
            .map_err(|e| CallError::Permanent(format!("ecomail subscribe: cannot encode: {e}")))?;
        self.call(
            "subscribe",
            Method::POST,
            &format!("/lists/{}/subscribe", self.config.list_id),
            Some(body),
        )
        .await
        .map(drop)
    }

    /// `POST /lists/{list}/subscribe-bulk` (at most [`MAX_BULK`] subscribers; Ecomail silently
    /// ignores the rest, so more is refused here). Always skips the double opt-in. Ecomail
    /// answers with a count only (`{"inserts": N}`), so the call succeeds or fails as a whole.
    pub async fn subscribe_bulk(&self, subscribers: &[Subscriber], update_existing: bool) -> Result<u64, CallError> {
        let request = BulkSubscribeRequest {
            subscriber_data: subscribers,
            update_existing,
            resubscribe: false,
        };
        let answer: BulkAnswer = self
            .bulk(
                "subscribe_bulk",
                Method::POST,
                "subscribe-bulk",
                subscribers.len(),
                &request,
            )
            .await?;
        Ok(answer.inserts)
    }

    /// `GET /lists/{list}/subscriber/{email}`; `None` when not in the list.
    pub async fn get_subscriber(&self, email: &str) -> Result<Option<StoredSubscriber>, CallError> {
        let path = format!(
            "/lists/{}/subscriber/{}",
            self.config.list_id,
            utf8_percent_encode(email, NON_ALPHANUMERIC)
        );
        match self.call("get_subscriber", Method::GET, &path, None).await {
            Ok(reply) => serde_json::from_slice::<SubscriberEnvelope>(&reply.body)
                .map(|e| Some(e.subscriber))
                .map_err(|e| CallError::Retriable(format!("ecomail get_subscriber: unexpected answer: {e}"))),
            Err(CallError::NotFound(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Sets custom fields of a subscriber already in the list (`PUT /lists/{list}/update-subscriber`),
    /// leaving every other field, its status and its consent alone. `fields` are merged key by
    /// key (Ecomail lowercases the keys). A subscriber not in the list is
    /// [`CallError::NotFound`]: unlike `subscribe` with `update_existing`, this never adds
    /// anyone to the list.
    pub async fn update_custom_fields(
        &self,
        email: &str,
        fields: &BTreeMap<String, serde_json::Value>,
    ) -> Result<(), CallError> {
        let request = UpdateSubscriberRequest {
            email,
            subscriber_data: CustomFieldsOnly { custom_fields: fields },
        };
        let body = serde_json::to_vec(&request)
            .map_err(|e| CallError::Permanent(format!("ecomail update_subscriber: cannot encode: {e}")))?;
        self.call(
            "update_subscriber",
            Method::PUT,
            &format!("/lists/{}/update-subscriber", self.config.list_id),
            Some(body),
        )
        .await
        .map(drop)
    }

    /// `PUT /lists/{list}/update-subscriber-bulk` (at most [`MAX_BULK`] entries, never
    /// resubscribing anyone): sets custom fields of subscribers already in the list and answers
    /// how many it updated. Like the single update it adds nobody to the list. Ecomail answers
    /// a count only, so a short count does not say which entries were not updated; see
    /// [`EcomailClient::update_custom_fields_each`].
    pub async fn update_custom_fields_bulk(&self, updates: &[FieldUpdate]) -> Result<u64, CallError> {
        let request = BulkUpdateRequest {
            subscriber_data: updates,
            allow_resubscribe: false,
        };
        let answer: BulkUpdateAnswer = self
            .bulk(
                "update_subscriber_bulk",
                Method::PUT,
                "update-subscriber-bulk",
                updates.len(),
                &request,
            )
            .await?;
        Ok(answer.updates)
    }

    /// Sets the custom fields of every entry and answers one result per entry, in order: one
    /// `update-subscriber-bulk` call when every entry was updated; when the count falls short
    /// (someone is not in the list), each entry again on its own (`update-subscriber`, which
    /// is idempotent), so that exactly the missing subscribers get [`CallError::NotFound`].
    /// A failed bulk call is every entry's error. One entry goes straight to the single call.
    pub async fn update_custom_fields_each(&self, updates: &[FieldUpdate]) -> Vec<Result<(), CallError>> {
        if let [single] = updates {
            return vec![self.update_custom_fields(&single.email, &single.custom_fields).await];
        }
        match self.update_custom_fields_bulk(updates).await {
            Ok(count) if usize::try_from(count).is_ok_and(|count| count >= updates.len()) => {
                vec![Ok(()); updates.len()]
            }
            Ok(_) => {
                futures_util::future::join_all(
                    updates
                        .iter()
                        .map(|update| self.update_custom_fields(&update.email, &update.custom_fields)),
                )
                .await
            }
            Err(error) => vec![Err(error); updates.len()],
        }
    }

    /// Records a tracker event (`POST /tracker/events`). Ecomail refuses events for an address
    /// that is no subscriber (422 on `event.email`); that is [`CallError::NotFound`].
    pub async fn track_event(&self, event: &TrackerEvent) -> Result<(), CallError> {
        const OPERATION: &str = "track_event";
        let body = serde_json::to_vec(&TrackerRequest { event })
            .map_err(|e| CallError::Permanent(format!("ecomail {OPERATION}: cannot encode: {e}")))?;
        self.call_with(
            OPERATION,
            Method::POST,
            "/tracker/events",
            Some(body),
            |reply, class| {
                if reply.status == StatusCode::UNPROCESSABLE_ENTITY
                    && error_fields(reply).iter().any(|f| f == "event.email")
                {
                    return CallError::NotFound(format!(
                        "ecomail {OPERATION}: HTTP 422: the address is not a subscriber (fields: event.email)"
                    ));
                }
                error(OPERATION, reply, class)
            },
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> ErrorReply {
        ErrorReply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: body.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn validation_errors_keep_field_names_but_not_values() {
        let body = r#"{"message":"The given data was invalid.","errors":{"email":["jana@example.com is invalid"]}}"#;
        let text = error("update_subscriber", &reply(422, body), Class::Permanent).to_string();
        assert!(text.contains("fields: email") && !text.contains("jana@"), "{text}");
        assert_eq!(error_fields(&reply(422, body)), ["email"]);
    }

    #[test]
    fn not_found_is_its_own_error() {
        let error = error(
            "update_subscriber",
            &reply(404, r#"{"message":"Subscriber not found"}"#),
            Class::Permanent,
        );
        assert!(matches!(error, CallError::NotFound(_)), "{error:?}");
    }

    #[test]
    fn requests_have_ecomails_shape() {
        let fields: BTreeMap<String, serde_json::Value> = [
            ("ellity_credit".to_owned(), serde_json::json!(120)),
            ("ellity_next_expiration_date".to_owned(), date_value("2026-12-31")),
        ]
        .into_iter()
        .collect();
        let update = UpdateSubscriberRequest {
            email: "a@example.com",
            subscriber_data: CustomFieldsOnly { custom_fields: &fields },
        };
        assert_eq!(
            serde_json::to_value(&update).unwrap_or_default(),
            serde_json::json!({"email": "a@example.com", "subscriber_data": {"custom_fields": {
                "ellity_credit": 120,
                "ellity_next_expiration_date": {"value": "2026-12-31", "type": "date"}
            }}})
        );
        let event = TrackerEvent {
            email: "a@example.com".into(),
            category: Some("ellity".into()),
            action: Some("change".into()),
            label: Some("pin".into()),
            property: None,
            value: None,
        };
        assert_eq!(
            serde_json::to_value(TrackerRequest { event: &event }).unwrap_or_default(),
            serde_json::json!({"event": {"email": "a@example.com", "category": "ellity", "action": "change", "label": "pin"}})
        );
        assert!(!format!("{event:?}").contains("a@example.com"));
    }

    #[test]
    fn bulk_updates_have_ecomails_shape_and_hide_the_address() {
        let update = FieldUpdate {
            email: "a@example.com".into(),
            custom_fields: [("ellity_pin".to_owned(), serde_json::json!("1234"))]
                .into_iter()
                .collect(),
        };
        let request = BulkUpdateRequest {
            subscriber_data: std::slice::from_ref(&update),
            allow_resubscribe: false,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap_or_default(),
            serde_json::json!({"subscriber_data": [{"email": "a@example.com", "custom_fields": {"ellity_pin": "1234"}}], "allow_resubscribe": false})
        );
        let shown = format!("{update:?}");
        assert!(!shown.contains("a@example.com") && !shown.contains("1234"), "{shown}");
    }
}
