//! The webhook and callback endpoints.
//!
//! | method and path | source | publishes |
//! |---|---|---|
//! | `POST /webhooks/ecomail/{token}` | Ecomail list webhook | `loyalty.subscription.changed` |
//! | `GET /callbacks/salesmanago/opt-in?email=…&key=…` | SALESmanago opt-in callback | `contact.consent.changed` (`opt_in`) |
//! | `GET /callbacks/salesmanago/opt-out?email=…&key=…` | SALESmanago opt-out callback | `contact.consent.changed` (`opt_out`) |
//! | `POST /webhooks/voucherify` | Voucherify project webhook (`x-voucherify-signature`) | `voucher.redeemed` |
//!
//! Answers (JSON): `200 {"status": "published" | "duplicate", "message_id"}` only after the
//! broker confirmed the message (or confirmed it on an earlier delivery), `200 {"status":
//! "ignored", "reason"}` for valid calls Switchyard does not act on, `401` without a
//! credential, `403` with a wrong one, `404` for a source that is not configured, `413` over
//! `SWITCHYARD_MAX_BODY_BYTES` (checked on `Content-Length` before reading, and while
//! reading), `400 {"error"}` naming what is malformed (never echoing values), and `503` with
//! `Retry-After` when the broker did not confirm in time, so the vendor's retry delivers it
//! later. Credentials are checked before the body is parsed.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use futures_util::StreamExt;
use messages::Outgoing;
use messages::inbound::Consent;
use secrecy::SecretString;
use serde_json::json;
use time::OffsetDateTime;

use crate::deliver::{DeliverError, Deliverer};
use crate::metrics::InboundMetrics;
use crate::sources::{self, Parsed};
use crate::verify::{self, SignatureError};

/// Seconds a vendor is asked to wait after a 503.
const RETRY_AFTER_SECS: u32 = 5;

/// The state behind the webhook routes.
#[derive(Debug)]
pub struct Webhooks {
    /// Publishes with confirms and the processed-event ledger.
    pub deliverer: Deliverer,
    /// Request metrics.
    pub metrics: InboundMetrics,
    /// `SWITCHYARD_MAX_BODY_BYTES`.
    pub max_body: usize,
    /// `INBOUND_ECOMAIL_TOKEN`.
    pub ecomail_token: Option<SecretString>,
    /// `INBOUND_SALESMANAGO_SECRET`.
    pub salesmanago_secret: Option<SecretString>,
    /// `INBOUND_VOUCHERIFY_SECRET`.
    pub voucherify_secret: Option<SecretString>,
}

/// The webhook routes.
pub fn router(webhooks: Arc<Webhooks>) -> Router {
    Router::new()
        .route("/webhooks/ecomail/{token}", post(ecomail))
        .route("/webhooks/ecomail", post(ecomail_without_token))
        .route("/callbacks/salesmanago/opt-in", get(salesmanago_opt_in))
        .route("/callbacks/salesmanago/opt-out", get(salesmanago_opt_out))
        .route("/webhooks/voucherify", post(voucherify))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .with_state(webhooks)
}

/// A refusal: status, metric outcome, and a message for the caller.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    outcome: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, outcome: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            outcome,
            message: message.into(),
        }
    }

    fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    fn disabled() -> Self {
        Self::new(StatusCode::NOT_FOUND, "disabled", "this source is not enabled")
    }
}

/// What a handled call comes to.
#[derive(Debug)]
enum Answer {
    Published(String),
    Duplicate(String),
    Ignored(&'static str),
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

impl Webhooks {
    /// Answers and counts the result of handling one call from `source`.
    fn respond(&self, source: &'static str, result: Result<Answer, Refusal>) -> Response {
        let (outcome, response) = match result {
            Ok(Answer::Published(id)) => (
                "published",
                Json(json!({"status": "published", "message_id": id})).into_response(),
            ),
            Ok(Answer::Duplicate(id)) => (
                "duplicate",
                Json(json!({"status": "duplicate", "message_id": id})).into_response(),
            ),
            Ok(Answer::Ignored(reason)) => (
                "ignored",
                Json(json!({"status": "ignored", "reason": reason})).into_response(),
            ),
            Err(refusal) => {
                match refusal.status {
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                        tracing::warn!(
                            source,
                            status = refusal.status.as_u16(),
                            "Refused an unauthenticated call."
                        );
                    }
                    StatusCode::SERVICE_UNAVAILABLE => {
                        tracing::warn!(source, error = %refusal.message, "Answered 503: the broker did not confirm.");
                    }
                    _ => {
                        tracing::info!(
                            source,
                            status = refusal.status.as_u16(),
                            reason = %refusal.message,
                            "Refused a call."
                        );
                    }
                }
                let mut response = error(refusal.status, &refusal.message);
                if refusal.status == StatusCode::SERVICE_UNAVAILABLE {
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                }
                (refusal.outcome, response)
            }
        };
        self.metrics.requests.with_label_values(&[source, outcome]).inc();
        response
    }

    /// Reads the body, refusing more than `max_body` bytes: first by `Content-Length`, then
    /// while reading (a chunked body is never buffered past the limit).
    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, Refusal> {
        let too_large = || {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body is larger than {} bytes", self.max_body),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_body as u64) {
            return Err(too_large());
        }
        let mut bytes = Vec::with_capacity(declared.map_or(0, |d| usize::try_from(d).unwrap_or(0)));
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| Refusal::invalid("the body could not be read"))?;
            if bytes.len() + chunk.len() > self.max_body {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Publishes `message` unless it was confirmed before.
    async fn publish(&self, source: &'static str, message: Outgoing) -> Result<Answer, Refusal> {
        let id = message.message_id.clone();
        match self.deliverer.deliver(std::slice::from_ref(&message)).await {
            Ok(delivered) if delivered.published > 0 => {
                tracing::info!(source, kind = %message.kind, message_id = %id, "Published an inbound event.");
                Ok(Answer::Published(id))
            }
            Ok(_) => {
                tracing::debug!(source, message_id = %id, "Skipped a duplicate inbound event.");
                Ok(Answer::Duplicate(id))
            }
            Err(invalid @ DeliverError::Invalid { .. }) => Err(Refusal::invalid(invalid.to_string())),
            Err(DeliverError::Unavailable(reason)) => Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("not accepted, retry later: {reason}"),
            )),
        }
    }

    async fn publish_parsed(&self, source: &'static str, parsed: Result<Parsed, String>) -> Result<Answer, Refusal> {
        match parsed.map_err(Refusal::invalid)? {
            Parsed::Message(message) => self.publish(source, message).await,
            Parsed::Ignored(reason) => Ok(Answer::Ignored(reason)),
        }
    }

    async fn handle_ecomail(&self, token: Option<&str>, headers: &HeaderMap, body: Body) -> Result<Answer, Refusal> {
        let expected = self.ecomail_token.as_ref().ok_or_else(Refusal::disabled)?;
        let token = token.ok_or_else(|| Refusal::unauthorized("the URL has no token"))?;
        if !verify::token_matches(token, expected) {
            return Err(Refusal::forbidden("wrong token"));
        }
        let body = self.read_body(headers, body).await?;
        self.publish_parsed("ecomail", sources::ecomail::parse(&body, OffsetDateTime::now_utc()))
            .await
    }

    async fn handle_salesmanago(&self, consent: Consent, query: Option<&str>) -> Result<Answer, Refusal> {
        let secret = self.salesmanago_secret.as_ref().ok_or_else(Refusal::disabled)?;
        let query = sources::salesmanago::parse_query(query).map_err(Refusal::invalid)?;
        let key = query
            .key
            .as_deref()
            .ok_or_else(|| Refusal::unauthorized("key is required"))?;
        let email = query
            .email
            .as_deref()
            .ok_or_else(|| Refusal::invalid("email is required"))?;
        if !verify::salesmanago_key_matches(email, key, secret) {
            return Err(Refusal::forbidden("wrong key"));
        }
        let message =
            sources::salesmanago::message(email, consent, OffsetDateTime::now_utc()).map_err(Refusal::invalid)?;
        self.publish("salesmanago", message).await
    }

    async fn handle_voucherify(&self, headers: &HeaderMap, body: Body) -> Result<Answer, Refusal> {
        let secret = self.voucherify_secret.as_ref().ok_or_else(Refusal::disabled)?;
        let signature = headers
            .get("x-voucherify-signature")
            .ok_or_else(|| Refusal::unauthorized("x-voucherify-signature is required"))?
            .to_str()
            .map_err(|_| Refusal::forbidden("x-voucherify-signature is not hex"))?;
        let body = self.read_body(headers, body).await?;
        match verify::voucherify_signature(&body, signature, secret) {
            Ok(signed) => tracing::debug!(form = signed.as_str(), "Verified a Voucherify signature."),
            Err(SignatureError::Malformed) => {
                return Err(Refusal::forbidden("x-voucherify-signature is not a hex HMAC-SHA256"));
            }
            Err(SignatureError::Mismatch) => return Err(Refusal::forbidden("signature mismatch")),
        }
        self.publish_parsed(
            "voucherify",
            sources::voucherify::parse(&body, OffsetDateTime::now_utc()),
        )
        .await
    }
}

async fn ecomail(
    State(webhooks): State<Arc<Webhooks>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = webhooks.handle_ecomail(Some(&token), &headers, body).await;
    webhooks.respond("ecomail", result)
}

async fn ecomail_without_token(State(webhooks): State<Arc<Webhooks>>, headers: HeaderMap, body: Body) -> Response {
    let result = webhooks.handle_ecomail(None, &headers, body).await;
    webhooks.respond("ecomail", result)
}

async fn salesmanago_opt_in(State(webhooks): State<Arc<Webhooks>>, RawQuery(query): RawQuery) -> Response {
    let result = webhooks.handle_salesmanago(Consent::OptIn, query.as_deref()).await;
    webhooks.respond("salesmanago", result)
}

async fn salesmanago_opt_out(State(webhooks): State<Arc<Webhooks>>, RawQuery(query): RawQuery) -> Response {
    let result = webhooks.handle_salesmanago(Consent::OptOut, query.as_deref()).await;
    webhooks.respond("salesmanago", result)
}

async fn voucherify(State(webhooks): State<Arc<Webhooks>>, headers: HeaderMap, body: Body) -> Response {
    let result = webhooks.handle_voucherify(&headers, body).await;
    webhooks.respond("voucherify", result)
}
