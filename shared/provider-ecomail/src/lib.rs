//! Ecomail API v2 adapter: list subscribe (with `update_existing` and custom fields) and
//! subscriber lookup. Authentication is the `key` header.
//!
//! Only this crate knows Ecomail's JSON.

use std::collections::BTreeMap;

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
        let url = self.http.url(path);
        self.http
            .send(
                operation,
                |http| {
                    let request = http
                        .request(method.clone(), &url)
                        .header("key", self.config.api_key.expose_secret())
                        .header(reqwest::header::ACCEPT, "application/json");
                    match &body {
                        Some(body) => request
                            .header(reqwest::header::CONTENT_TYPE, "application/json")
                            .body(body.clone()),
                        None => request,
                    }
                },
                |reply, class| error(operation, reply, class),
            )
            .await
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
}
