//! [`ProviderClient`]: one reqwest client per provider, every call through the budget.

use std::num::NonZeroU32;
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use settings::ProviderLimits;
use tokio::time::Instant;
use tracing::{debug, warn};
use url::Url;

use crate::classify::{Class, classify_status, parse_retry_after};
use crate::limiter::Budget;
use crate::metrics::HttpMetrics;

/// A successful (2xx) answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// A non-2xx answer, for the provider crate to turn into a message.
#[derive(Debug, Clone)]
pub struct ErrorReply {
    /// Status.
    pub status: StatusCode,
    /// Body (vendor error envelope).
    pub body: Bytes,
}

/// Why a call did not succeed, already classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The budget (or a vendor pause) would make the caller wait longer than the hold bound.
    #[error("rate limited for {retry_in:?}")]
    RateLimited {
        /// How long until a call could be made.
        retry_in: Duration,
    },
    /// Worth retrying later: network error, timeout, 408, 5xx.
    #[error("{0}")]
    Retriable(String),
    /// Retrying cannot help: 4xx, or a provider error body.
    #[error("{0}")]
    Permanent(String),
    /// The resource does not exist (404); callers decide whether that is a failure.
    #[error("{0}")]
    NotFound(String),
}

/// A provider's HTTP client: base URL, timeouts, budget and metrics.
#[derive(Debug, Clone)]
pub struct ProviderClient {
    provider: &'static str,
    http: reqwest::Client,
    base: Url,
    budget: Arc<Budget>,
    metrics: HttpMetrics,
    max_wait: Duration,
    limits: ProviderLimits,
    replicas: NonZeroU32,
}

static CRYPTO: Once = Once::new();

/// Installs the process-wide rustls crypto provider (ring) once.
pub fn init_crypto() {
    CRYPTO.call_once(|| {
        // An error means another provider was installed first, which is fine.
        let _installed = rustls::crypto::ring::default_provider().install_default();
    });
}

impl ProviderClient {
    /// A client for `provider` (a lowercase label such as `spotler`) at `base`.
    /// `max_wait` bounds how long one call may wait for the budget before the message parks.
    pub fn new(
        provider: &'static str,
        base: Url,
        limits: &ProviderLimits,
        replicas: NonZeroU32,
        max_wait: Duration,
        metrics: HttpMetrics,
    ) -> Result<Self, String> {
        init_crypto();
        let http = reqwest::Client::builder()
            .timeout(limits.timeout)
            .connect_timeout(limits.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(usize::try_from(limits.concurrency.get()).unwrap_or(16))
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            // Vendor APIs do not redirect. Following one would resend vendor credentials in
            // custom headers (`key`, `X-App-Token`, which reqwest only strips for standard
            // auth headers) to whatever host the redirect names, and turn a POST into a GET
            // that drops the body; a 3xx is a misconfigured base URL and fails loudly instead.
            // (It also spares the redirect layer's URL work on every call.)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client for {provider}: {}", e.without_url()))?;
        let budget = Budget::new(limits, replicas).observe(metrics.clone(), provider);
        let mut base = base;
        if !base.path().ends_with('/') {
            let directory = format!("{}/", base.path());
            base.set_path(&directory);
        }
        Ok(Self {
            provider,
            http,
            base,
            budget: Arc::new(budget),
            metrics,
            max_wait,
            limits: limits.clone(),
            replicas,
        })
    }

    /// Shares this destination's budget with every replica through Redis, under
    /// `<key_prefix>:<provider>` (e.g. `switchyard:<namespace>:budget:voucherify`). Every
    /// client of the same provider account must use the same prefix.
    pub fn with_shared_budget(mut self, connection: redis::aio::ConnectionManager, key_prefix: &str) -> Self {
        let key = format!("{key_prefix}:{}", self.provider);
        let budget =
            Budget::shared(&self.limits, self.replicas, connection, &key).observe(self.metrics.clone(), self.provider);
        self.budget = Arc::new(budget);
        self
    }

    /// Shares the budget through Redis when a connection is given, else keeps it per replica.
    pub fn shared_if(self, connection: Option<&redis::aio::ConnectionManager>, key_prefix: &str) -> Self {
        match connection {
            Some(connection) => self.with_shared_budget(connection.clone(), key_prefix),
            None => self,
        }
    }

    /// The provider label.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The budget (shared by every clone of this client).
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// `base` + `path` (path starts with `/`, its segments already escaped; it may carry a
    /// query). Resolved against the base as a directory (`…/prefix/` + `./contact`), which keeps
    /// the base's path prefix and, unlike parsing the concatenated text, never parses the host
    /// again (host parsing runs IDNA and was a tenth of a worker's CPU per message).
    pub fn url(&self, path: &str) -> Result<Url, CallError> {
        self.base
            .join(&format!("./{}", path.trim_start_matches('/')))
            .map_err(|e| CallError::Permanent(format!("{}: bad URL for `{path}`: {e}", self.provider)))
    }

    /// Sends a request built by `build` (called once per try, so a 429 can be retried with a
    /// fresh signature) through the budget. 429s pause the destination and are waited out
    /// within the hold bound without counting as a failure. Non-2xx answers go through
    /// `on_error`, which may refine the classification from the vendor's error body.
    pub async fn send(
        &self,
        operation: &'static str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
        on_error: impl Fn(&ErrorReply, Class) -> CallError,
    ) -> Result<Reply, CallError> {
        let deadline = Instant::now() + self.max_wait;
        loop {
            let waited_from = Instant::now();
            let remaining = deadline.saturating_duration_since(waited_from);
            let permit = match self.budget.acquire(remaining).await {
                Ok(permit) => permit,
                Err(too_long) => {
                    self.metrics
                        .rate_limited
                        .with_label_values(&[self.provider, "budget"])
                        .inc();
                    return Err(CallError::RateLimited {
                        retry_in: too_long.retry_in,
                    });
                }
            };
            self.metrics
                .wait
                .with_label_values(&[self.provider])
                .observe(waited_from.elapsed().as_secs_f64());
            let started = Instant::now();
            let result = build(&self.http).send().await;
            let elapsed = started.elapsed().as_secs_f64();
            self.metrics
                .duration
                .with_label_values(&[self.provider, operation])
                .observe(elapsed);
            let mut response = match result {
                Ok(response) => response,
                Err(error) => {
                    drop(permit);
                    let class = if error.is_timeout() { "timeout" } else { "network" };
                    self.metrics
                        .requests
                        .with_label_values(&[self.provider, operation, class])
                        .inc();
                    let error = error.without_url();
                    return Err(if error.is_builder() {
                        CallError::Permanent(format!(
                            "{} {operation}: cannot build the request: {error}",
                            self.provider
                        ))
                    } else {
                        CallError::Retriable(format!("{} {operation}: {class} error: {error}", self.provider))
                    });
                }
            };
            let status = response.status();
            // Taken, not cloned: the body is read without them, and a clone would copy every
            // header name and value on every call.
            let headers = std::mem::take(response.headers_mut());
            self.observe_vendor_budget(&headers).await;
            let body = match response.bytes().await {
                Ok(body) => body,
                Err(error) => {
                    self.metrics
                        .requests
                        .with_label_values(&[self.provider, operation, "network"])
                        .inc();
                    return Err(CallError::Retriable(format!(
                        "{} {operation}: reading the answer failed: {}",
                        self.provider,
                        error.without_url()
                    )));
                }
            };
            drop(permit);
            let status_class = status_class(status);
            self.metrics
                .requests
                .with_label_values(&[self.provider, operation, status_class])
                .inc();
            if status.is_success() {
                debug!(
                    provider = self.provider,
                    operation,
                    status = status.as_u16(),
                    "Provider call succeeded."
                );
                return Ok(Reply { status, headers, body });
            }
            let class = classify_status(status);
            if class == Class::RateLimited {
                let now_unix = time::OffsetDateTime::now_utc().unix_timestamp();
                let after = headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, now_unix))
                    .unwrap_or(Duration::from_secs(1));
                self.budget.pause_for(after).await;
                self.metrics
                    .rate_limited
                    .with_label_values(&[self.provider, "vendor"])
                    .inc();
                warn!(
                    provider = self.provider,
                    operation,
                    retry_after_ms = after.as_millis() as u64,
                    "Provider answered 429; pausing the destination."
                );
                continue;
            }
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                self.metrics.auth_failures.with_label_values(&[self.provider]).inc();
            }
            return Err(on_error(&ErrorReply { status, body }, class));
        }
    }

    /// Sends a JSON request (`Accept: application/json`, and the body, if any, as
    /// `application/json`) to `base + path`, with `auth` adding the vendor's credentials to
    /// every try. See [`ProviderClient::send`].
    pub async fn send_json(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<Bytes>,
        auth: impl Fn(RequestBuilder) -> RequestBuilder,
        on_error: impl Fn(&ErrorReply, Class) -> CallError,
    ) -> Result<Reply, CallError> {
        let url = self.url(path)?;
        self.send(
            operation,
            |http| {
                let request =
                    auth(http.request(method.clone(), url.clone())).header(reqwest::header::ACCEPT, "application/json");
                match &body {
                    Some(body) => request
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone()),
                    None => request,
                }
            },
            on_error,
        )
        .await
    }

    /// Voucherify-style `X-Rate-Limit-Remaining: 0` + `X-Rate-Limit-Retry: <epoch s>` pauses
    /// the destination before the vendor has to refuse a call.
    async fn observe_vendor_budget(&self, headers: &HeaderMap) {
        let remaining = headers
            .get("x-rate-limit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok());
        if remaining != Some(0) {
            return;
        }
        let retry_at = headers
            .get("x-rate-limit-retry")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok());
        if let Some(retry_at) = retry_at {
            let now_unix = time::OffsetDateTime::now_utc().unix_timestamp();
            let wait = Duration::from_secs(u64::try_from(retry_at - now_unix).unwrap_or(0));
            self.budget.pause_for(wait).await;
            self.metrics
                .rate_limited
                .with_label_values(&[self.provider, "vendor"])
                .inc();
        }
    }
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "2xx",
        429 => "429",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The [`CallError`] for a vendor's non-2xx answer: `<provider> <operation>: HTTP <status>:
/// <detail>`, where `detail` is what the provider crate extracted from the vendor's error
/// envelope (codes and messages, never submitted values). 404 is [`CallError::NotFound`];
/// otherwise the class decides.
pub fn vendor_error(provider: &str, operation: &str, reply: &ErrorReply, class: Class, detail: &str) -> CallError {
    let text = format!("{provider} {operation}: HTTP {}: {detail}", reply.status.as_u16());
    if reply.status == StatusCode::NOT_FOUND {
        return CallError::NotFound(text);
    }
    match class {
        Class::Retriable | Class::RateLimited => CallError::Retriable(text),
        Class::Permanent => CallError::Permanent(text),
    }
}

/// A short, single-line excerpt of an error body for messages (vendor error envelopes only
/// hold codes and texts, but cap the length anyway).
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > 300 {
        let mut cut = 300;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> ProviderClient {
        let limits = ProviderLimits {
            windows: settings::parse_windows("10/s").unwrap_or_else(|e| panic!("{e}")),
            burst: None,
            concurrency: NonZeroU32::MIN,
            timeout: Duration::from_secs(5),
        };
        let metrics = HttpMetrics::register(&prometheus::Registry::new()).unwrap_or_else(|e| panic!("{e}"));
        let base = Url::parse(base).unwrap_or_else(|e| panic!("{e}"));
        ProviderClient::new("test", base, &limits, NonZeroU32::MIN, Duration::from_secs(1), metrics)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn url(base: &str, path: &str) -> String {
        client(base)
            .url(path)
            .map(String::from)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn paths_join_the_base_and_keep_its_prefix_and_query() {
        let spotler = "https://restapi.mailplus.nl/integrationservice-1.1.0";
        assert_eq!(
            url(spotler, "/contact"),
            "https://restapi.mailplus.nl/integrationservice-1.1.0/contact"
        );
        assert_eq!(
            url(&format!("{spotler}/"), "/contact/a%2Fb?update=true"),
            "https://restapi.mailplus.nl/integrationservice-1.1.0/contact/a%2Fb?update=true"
        );
        assert_eq!(
            url("http://127.0.0.1:9000", "/api/v2/x"),
            "http://127.0.0.1:9000/api/v2/x"
        );
        // A first segment with a colon stays a path, not a scheme.
        assert_eq!(url("http://127.0.0.1:9000/v1", "/c:1"), "http://127.0.0.1:9000/v1/c:1");
    }

    /// A server answering every request with `answer`; counts the connections it accepted.
    async fn answering(answer: String) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buffer = [0_u8; 4096];
                // One read holds the whole small request.
                if stream.read(&mut buffer).await.is_ok() {
                    let _written = stream.write_all(answer.as_bytes()).await;
                }
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_and_fails_naming_the_status() {
        let (elsewhere, visits) = answering("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_owned()).await;
        let (api, _) = answering(format!(
            "HTTP/1.1 302 Found\r\nLocation: http://{elsewhere}/stolen\r\nContent-Length: 0\r\n\r\n"
        ))
        .await;
        let result = client(&format!("http://{api}/v1"))
            .send_json(
                "upsert",
                reqwest::Method::POST,
                "/contacts",
                Some(Bytes::from_static(b"{}")),
                |request| request.header("key", "secret"),
                |reply, _| CallError::Permanent(format!("HTTP {}", reply.status.as_u16())),
            )
            .await;
        assert_eq!(
            result.map(|r| r.status),
            Err(CallError::Permanent("HTTP 302".to_owned()))
        );
        assert_eq!(
            visits.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "the credentials went elsewhere"
        );
    }
}
