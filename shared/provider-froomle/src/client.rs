//! Typed Froomle client: token handling, recommendations and events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api_client::client::{ErrorReply, excerpt};
use api_client::{CallError, Class, ProviderClient, Reply};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};

use crate::model::{Event, Recommendations, Request};
use crate::token::{Fetched, Token, TokenCache};
use crate::wire;

/// Froomle's default token lifetime when the answer does not say.
const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(86_400);

/// Path segments keep RFC 3986 unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Credentials and request settings.
#[derive(Debug, Clone)]
pub struct FroomleConfig {
    /// OAuth2 client id (`FROOMLE_CLIENT_ID`).
    pub client_id: String,
    /// OAuth2 client secret (`FROOMLE_CLIENT_SECRET`).
    pub client_secret: SecretString,
    /// Channel sent with every request and event (`FROOMLE_CHANNEL`, e.g. `email`).
    pub channel: String,
    /// Longest a token is used before it is refreshed (`FROOMLE_TOKEN_MAX_AGE`).
    pub token_max_age: Duration,
}

/// The Froomle client. Clones share the HTTP client, its budget and the token cache.
#[derive(Debug, Clone)]
pub struct FroomleClient {
    http: ProviderClient,
    config: FroomleConfig,
    tokens: Arc<TokenCache>,
}

/// Replaces every quoted part of a vendor text (`'…'` or `"…"`) with `…`: Froomle's
/// validation messages may quote submitted values (user ids), which must not reach logs.
pub fn mask_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut open: Option<char> = None;
    for c in text.chars() {
        match open {
            Some(quote) if c == quote => {
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None if c == '"' || c == '\'' => {
                out.push(c);
                out.push('…');
                open = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}

fn detail(body: &[u8]) -> String {
    let text = serde_json::from_slice::<wire::ErrorBody>(body)
        .ok()
        .and_then(wire::ErrorBody::text)
        .unwrap_or_else(|| excerpt(body));
    mask_quoted(&text)
}

fn error(operation: &str, reply: &ErrorReply, class: Class) -> CallError {
    let text = format!(
        "froomle {operation}: HTTP {}: {}",
        reply.status.as_u16(),
        detail(&reply.body)
    );
    if reply.status == StatusCode::NOT_FOUND {
        return CallError::NotFound(text);
    }
    match class {
        Class::Retriable | Class::RateLimited => CallError::Retriable(text),
        Class::Permanent => CallError::Permanent(text),
    }
}

fn token_error(reply: &ErrorReply, class: Class) -> CallError {
    match reply.status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => CallError::Permanent(format!(
            "froomle token: HTTP {}: the client credentials were refused (check FROOMLE_CLIENT_ID and \
             FROOMLE_CLIENT_SECRET): {}",
            reply.status.as_u16(),
            detail(&reply.body)
        )),
        // A 404 on the token endpoint means a wrong base URL, not a missing resource.
        StatusCode::NOT_FOUND => CallError::Permanent(format!(
            "froomle token: HTTP 404: no token endpoint under FROOMLE_BASE_URL: {}",
            detail(&reply.body)
        )),
        _ => error("token", reply, class),
    }
}

impl FroomleClient {
    /// A client over the shared HTTP client (label `froomle`).
    pub fn new(http: ProviderClient, config: FroomleConfig) -> Self {
        let tokens = Arc::new(TokenCache::new(config.token_max_age));
        Self { http, config, tokens }
    }

    /// The channel sent with requests and events.
    pub fn channel(&self) -> &str {
        &self.config.channel
    }

    /// `POST /oauth/token` with the client credentials, form-urlencoded (no scope, no
    /// audience, as Froomle's current documentation asks).
    async fn fetch_token(&self) -> Result<Fetched, CallError> {
        let url = self.http.url("/oauth/token")?;
        let form = SecretString::from(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &self.config.client_id)
                .append_pair("client_secret", self.config.client_secret.expose_secret())
                .finish(),
        );
        let reply = self
            .http
            .send(
                "token",
                |http| {
                    http.post(url.clone())
                        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .header(ACCEPT, "application/json")
                        .body(form.expose_secret().to_owned())
                },
                token_error,
            )
            .await?;
        let answer: wire::TokenResponse = serde_json::from_slice(&reply.body)
            .map_err(|e| CallError::Retriable(format!("froomle token: unexpected answer: {e}")))?;
        if let Some(kind) = &answer.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(CallError::Permanent(format!(
                "froomle token: token_type `{}` is not Bearer",
                mask_quoted(kind)
            )));
        }
        if answer.access_token.is_empty() {
            return Err(CallError::Retriable("froomle token: empty access_token".to_owned()));
        }
        Ok(Fetched {
            access_token: SecretString::from(answer.access_token),
            expires_in: answer.expires_in.map_or(DEFAULT_EXPIRES_IN, Duration::from_secs),
        })
    }

    async fn token(&self) -> Result<Token, CallError> {
        self.tokens.get(|| self.fetch_token()).await
    }

    /// POSTs `body` (JSON) to `path` with the bearer token. A 401 drops the token and the call
    /// is retried once with a fresh one; a second 401 is a permanent error (bad credentials).
    async fn authorized(&self, operation: &'static str, path: &str, body: Vec<u8>) -> Result<Reply, CallError> {
        let url = self.http.url(path)?;
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let unauthorized = AtomicBool::new(false);
            let result = self
                .http
                .send(
                    operation,
                    |http| {
                        http.post(url.clone())
                            .bearer_auth(token.expose())
                            .header(CONTENT_TYPE, "application/json")
                            .header(ACCEPT, "application/json")
                            .body(body.clone())
                    },
                    |reply, class| {
                        if reply.status == StatusCode::UNAUTHORIZED {
                            unauthorized.store(true, Ordering::Relaxed);
                        }
                        error(operation, reply, class)
                    },
                )
                .await;
            match result {
                Err(_) if unauthorized.load(Ordering::Relaxed) => {
                    if refreshed {
                        return Err(CallError::Permanent(format!(
                            "froomle {operation}: HTTP 401 with a freshly issued token: the client \
                             credentials are not accepted for this environment"
                        )));
                    }
                    self.tokens.invalidate(&token).await;
                    refreshed = true;
                }
                other => return other,
            }
        }
    }

    /// `POST /api/{environment}/recommendations/requests`.
    pub async fn recommendations(&self, environment: &str, request: &Request) -> Result<Recommendations, CallError> {
        let body = serde_json::to_vec(&wire::RecommendationsRequest::new(&self.config.channel, request))
            .map_err(|e| CallError::Permanent(format!("froomle recommendations: cannot encode: {e}")))?;
        let path = format!(
            "/api/{}/recommendations/requests",
            utf8_percent_encode(environment, SEGMENT)
        );
        let reply = self.authorized("recommendations", &path, body).await?;
        let answer: wire::RecommendationsResponse = serde_json::from_slice(&reply.body)
            .map_err(|e| CallError::Retriable(format!("froomle recommendations: unexpected answer: {e}")))?;
        Ok(answer.into())
    }

    /// `POST /api/{environment}/events` with all `events` in one call. Froomle has no
    /// idempotency key for events: callers must not send the same events twice.
    pub async fn events(&self, environment: &str, events: &[Event]) -> Result<(), CallError> {
        if events.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(&wire::EventsRequest::new(&self.config.channel, events))
            .map_err(|e| CallError::Permanent(format!("froomle events: cannot encode: {e}")))?;
        let path = format!("/api/{}/events", utf8_percent_encode(environment, SEGMENT));
        self.authorized("events", &path, body).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_masked() {
        assert_eq!(
            mask_quoted("Events contain errors: unknown user 'jana@example.com' in event 0"),
            "Events contain errors: unknown user '…' in event 0"
        );
        assert_eq!(mask_quoted(r#"bad "x" and "y""#), r#"bad "…" and "…""#);
        assert_eq!(mask_quoted("missing field campaign_id"), "missing field campaign_id");
        assert_eq!(mask_quoted("unterminated 'secret"), "unterminated '…");
    }

    #[test]
    fn error_mapping_follows_the_status_table() {
        let reply = |status: u16, body: &str| ErrorReply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
            body: bytes_of(body),
        };
        let bad = error(
            "events",
            &reply(400, "Events contain errors: missing campaign_id"),
            Class::Permanent,
        );
        assert_eq!(
            bad,
            CallError::Permanent("froomle events: HTTP 400: Events contain errors: missing campaign_id".into())
        );
        assert!(matches!(
            error("events", &reply(503, ""), Class::Retriable),
            CallError::Retriable(_)
        ));
        assert!(matches!(
            error("events", &reply(404, "{}"), Class::Permanent),
            CallError::NotFound(_)
        ));
        let refused = token_error(&reply(401, r#"{"error":"invalid_client"}"#), Class::Permanent);
        assert!(
            matches!(&refused, CallError::Permanent(text) if text.contains("FROOMLE_CLIENT_SECRET") && text.contains("invalid_client")),
            "{refused:?}"
        );
    }

    fn bytes_of(text: &str) -> bytes::Bytes {
        bytes::Bytes::copy_from_slice(text.as_bytes())
    }
}
