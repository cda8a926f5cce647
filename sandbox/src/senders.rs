//! The vendors' calls back to you: the sandbox fires Ecomail's list webhook, SALESmanago's
//! opt-in / opt-out callback and Voucherify's signed webhook at a URL of your choice, shaped
//! and signed like the vendor does (PROVIDERS.md), and reports the receiver's answer. This is
//! how the `inbound` binary is tested end to end, and how you can try your own receiver.
//!
//! | method and path | body | sends |
//! |---|---|---|
//! | `POST /_sandbox/send/ecomail-webhook` | `{url, email, status: SUBSCRIBED\|UNSUBSCRIBED, list_id, campaign_id?}` | `POST url` `{"payload": {email, status, listId, campaignId}}` |
//! | `POST /_sandbox/send/salesmanago-callback` | `{url_template, email, kind: opt-in\|opt-out, secret}` | `GET` the template with `$email$` replaced by the percent-encoded address and the key (hex SHA-1 of e-mail + secret) in place of `$key$`, or appended as `key=` when the template has no `$key$` |
//! | `POST /_sandbox/send/voucherify-webhook` | `{url, secret, type, data, id?, pretty?}` | `POST url` with the envelope `{id: "whs_…", project_id, created_at, type, data, source, event}` and `x-voucherify-signature` = hex HMAC-SHA256 of the compact JSON with the secret |
//!
//! Each answers `{"status": <receiver's status>, "body": "<receiver's body>"}` (the Voucherify
//! sender adds the envelope `id`, so a test can send the same webhook again as a vendor retry
//! would), or 502 `{"error": …}` when the receiver cannot be reached. With `pretty: true` the
//! Voucherify body goes out indented while the signature stays over the compact form, which is
//! what Voucherify signs ("the JSON body with whitespace removed").

use std::sync::OnceLock;
use std::time::Duration;

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::{
    Sandbox, inspect,
    support::{displayable_id, hex, is_plausible_email, now_utc, random_id, rfc3339_millis},
};

/// How long a sender waits for the receiver (Voucherify's own deadline is 10 s).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// An Ecomail list webhook to send.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EcomailWebhook {
    /// The receiver.
    pub url: String,
    /// The subscriber's address.
    pub email: String,
    /// `SUBSCRIBED` or `UNSUBSCRIBED`.
    pub status: String,
    /// The list.
    pub list_id: u64,
    /// The campaign, if the change came from one.
    #[serde(default)]
    pub campaign_id: Option<u64>,
}

/// A SALESmanago opt-in / opt-out callback to send.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SalesmanagoCallback {
    /// The configured callback URL, with `$email$` (and optionally `$key$`).
    pub url_template: String,
    /// The contact's address.
    pub email: String,
    /// `opt-in` or `opt-out` (informational: the template decides where it goes).
    pub kind: String,
    /// The secret shared with the receiver.
    pub secret: String,
}

/// A Voucherify project webhook to send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VoucherifyWebhook {
    /// The receiver.
    pub url: String,
    /// The project's webhook secret.
    pub secret: String,
    /// The event type, e.g. `redemption.succeeded`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event data.
    pub data: Value,
    /// The envelope id (`whs_…`); a fresh one when absent. Reuse one to imitate a retry.
    #[serde(default)]
    pub id: Option<String>,
    /// Send the body indented (the signature still covers the compact form).
    #[serde(default)]
    pub pretty: bool,
}

/// The receiver's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentWebhook {
    /// Its HTTP status.
    pub status: u16,
    /// Its body, as text.
    pub body: String,
    /// The Voucherify envelope id, for a resend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The `/_sandbox/send/...` routes.
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/_sandbox/send/ecomail-webhook", post(send_ecomail))
        .route("/_sandbox/send/salesmanago-callback", post(send_salesmanago))
        .route("/_sandbox/send/voucherify-webhook", post(send_voucherify))
}

/// The HTTP client of every sender (plain HTTP needs no TLS, but the client still needs a
/// crypto provider installed to be built).
fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // An error means a provider was installed first, which is fine.
            let _installed = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .timeout(SEND_TIMEOUT)
                .user_agent("switchyard-sandbox")
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn check_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => Ok(()),
        _ => Err("url must be an http(s) URL with a host".to_owned()),
    }
}

async fn deliver(request: reqwest::RequestBuilder, id: Option<String>) -> Result<SentWebhook, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot reach the receiver: {}", e.without_url()))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| format!("cannot read the receiver's answer: {}", e.without_url()))?;
    Ok(SentWebhook { status, body, id })
}

/// The hex SHA-1 of `email` followed by `secret`: the key SALESmanago's recommended callback
/// template carries.
pub fn salesmanago_callback_key(email: &str, secret: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(email.as_bytes());
    hasher.update(secret.as_bytes());
    hex(&hasher.finalize())
}

/// The hex HMAC-SHA256 of `body` keyed with `secret`: Voucherify's `x-voucherify-signature`.
pub fn voucherify_signature(secret: &str, body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            hex(&mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; this arm cannot happen.
        Err(_) => String::new(),
    }
}

/// The URL SALESmanago calls for `callback`.
fn salesmanago_url(callback: &SalesmanagoCallback) -> Result<String, String> {
    if !callback.url_template.contains("$email$") {
        return Err("url_template must contain $email$".to_owned());
    }
    let email: String = url::form_urlencoded::byte_serialize(callback.email.as_bytes()).collect();
    let key = salesmanago_callback_key(&callback.email, &callback.secret);
    let mut url = callback
        .url_template
        .replace("$email$", &email)
        .replace("$kind$", &callback.kind);
    if url.contains("$key$") {
        url = url.replace("$key$", &key);
    } else {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("key=");
        url.push_str(&key);
    }
    check_url(&url)?;
    Ok(url)
}

/// The envelope Voucherify sends for `webhook` (`id` is the envelope id).
fn voucherify_envelope(webhook: &VoucherifyWebhook, id: &str) -> Value {
    let now = rfc3339_millis(now_utc());
    let entity_id = webhook
        .data
        .pointer("/redemption/id")
        .or_else(|| webhook.data.pointer("/publication/id"))
        .or_else(|| webhook.data.pointer("/customer/id"))
        .and_then(Value::as_str)
        .map_or_else(|| random_id("ent_", 16), str::to_owned);
    json!({
        "id": id,
        "project_id": "proj_sandbox",
        "created_at": now,
        "type": webhook.event_type,
        "data": webhook.data,
        "source": {"id": "wh_sandbox", "object": "webhook", "target_url": webhook.url},
        "event": {
            "id": format!("evcus_{}", id.trim_start_matches("whs_")),
            "type": webhook.event_type,
            "created_at": now,
            "entity_id": entity_id,
            "group_id": random_id("v-", 20),
            "event_source": {"channel": "API"},
        },
    })
}

impl Sandbox {
    /// Sends an Ecomail list webhook (see the module table).
    pub async fn send_ecomail_webhook(&self, webhook: &EcomailWebhook) -> Result<SentWebhook, String> {
        check_url(&webhook.url)?;
        if webhook.status != "SUBSCRIBED" && webhook.status != "UNSUBSCRIBED" {
            return Err("status must be SUBSCRIBED or UNSUBSCRIBED".to_owned());
        }
        let body = json!({"payload": {
            "email": webhook.email,
            "status": webhook.status,
            "listId": webhook.list_id,
            "campaignId": webhook.campaign_id,
        }});
        let body = serde_json::to_vec(&body).map_err(|e| format!("cannot encode the payload: {e}"))?;
        let request = client()?
            .post(&webhook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        deliver(request, None).await
    }

    /// Sends a SALESmanago opt-in or opt-out callback (see the module table).
    pub async fn send_salesmanago_callback(&self, callback: &SalesmanagoCallback) -> Result<SentWebhook, String> {
        if callback.kind != "opt-in" && callback.kind != "opt-out" {
            return Err("kind must be opt-in or opt-out".to_owned());
        }
        if !is_plausible_email(&callback.email) {
            return Err(format!("email {} is not an address", displayable_id(&callback.email)));
        }
        let url = salesmanago_url(callback)?;
        deliver(client()?.get(url), None).await
    }

    /// Sends a signed Voucherify webhook (see the module table).
    pub async fn send_voucherify_webhook(&self, webhook: &VoucherifyWebhook) -> Result<SentWebhook, String> {
        check_url(&webhook.url)?;
        if webhook.event_type.trim().is_empty() {
            return Err("type must not be empty".to_owned());
        }
        let id = webhook.id.clone().unwrap_or_else(|| random_id("whs_", 24));
        let envelope = voucherify_envelope(webhook, &id);
        let compact = serde_json::to_vec(&envelope).map_err(|e| format!("cannot encode the envelope: {e}"))?;
        let signature = voucherify_signature(&webhook.secret, &compact);
        let body = if webhook.pretty {
            serde_json::to_vec_pretty(&envelope).map_err(|e| format!("cannot encode the envelope: {e}"))?
        } else {
            compact
        };
        let request = client()?
            .post(&webhook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-voucherify-signature", signature)
            .body(body);
        deliver(request, Some(id)).await
    }
}

fn answer(result: Result<SentWebhook, String>) -> Response {
    match result {
        Ok(sent) => Json(sent).into_response(),
        Err(message) if message.starts_with("cannot reach") || message.starts_with("cannot read") => {
            inspect::error(StatusCode::BAD_GATEWAY, &message)
        }
        Err(message) => inspect::error(StatusCode::BAD_REQUEST, &message),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid request: {e}"))
}

async fn send_ecomail(State(sandbox): State<Sandbox>, body: axum::body::Bytes) -> Response {
    match parse::<EcomailWebhook>(&body) {
        Ok(webhook) => answer(sandbox.send_ecomail_webhook(&webhook).await),
        Err(message) => inspect::error(StatusCode::BAD_REQUEST, &message),
    }
}

async fn send_salesmanago(State(sandbox): State<Sandbox>, body: axum::body::Bytes) -> Response {
    match parse::<SalesmanagoCallback>(&body) {
        Ok(callback) => answer(sandbox.send_salesmanago_callback(&callback).await),
        Err(message) => inspect::error(StatusCode::BAD_REQUEST, &message),
    }
}

async fn send_voucherify(State(sandbox): State<Sandbox>, body: axum::body::Bytes) -> Response {
    match parse::<VoucherifyWebhook>(&body) {
        Ok(webhook) => answer(sandbox.send_voucherify_webhook(&webhook).await),
        Err(message) => inspect::error(StatusCode::BAD_REQUEST, &message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(template: &str) -> SalesmanagoCallback {
        SalesmanagoCallback {
            url_template: template.to_owned(),
            email: "a+b@example.com".to_owned(),
            kind: "opt-in".to_owned(),
            secret: "s3cret".to_owned(),
        }
    }

    #[test]
    fn salesmanago_urls_carry_the_encoded_address_and_the_key() {
        let key = salesmanago_callback_key("a+b@example.com", "s3cret");
        assert_eq!(key.len(), 40);
        assert_eq!(
            salesmanago_url(&callback("http://h/optin?email=$email$")),
            Ok(format!("http://h/optin?email=a%2Bb%40example.com&key={key}"))
        );
        assert_eq!(
            salesmanago_url(&callback("http://h/optin?k=$key$&email=$email$")),
            Ok(format!("http://h/optin?k={key}&email=a%2Bb%40example.com"))
        );
        assert!(salesmanago_url(&callback("http://h/optin")).is_err());
    }

    #[test]
    fn signatures_are_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            voucherify_signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // SHA-1("abc") with an empty secret.
        assert_eq!(
            salesmanago_callback_key("abc", ""),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn envelopes_have_the_documented_fields() {
        let webhook = VoucherifyWebhook {
            url: "http://h/w".to_owned(),
            secret: "s".to_owned(),
            event_type: "redemption.succeeded".to_owned(),
            data: json!({"redemption": {"id": "r_1"}}),
            id: None,
            pretty: false,
        };
        let envelope = voucherify_envelope(&webhook, "whs_1");
        for field in ["id", "project_id", "created_at", "type", "data", "source", "event"] {
            assert!(envelope.get(field).is_some(), "{field}");
        }
        assert_eq!(envelope["event"]["entity_id"], "r_1");
        assert_eq!(envelope["source"]["object"], "webhook");
    }
}
