//! Logging and the operations endpoint shared by every binary.
//!
//! - [`init_logging`]: `tracing` subscriber, JSON in production (`LOG_FORMAT=json`), human output
//!   on a terminal; filter from `RUST_LOG` (default `info`).
//! - [`Health`]: liveness and readiness flags that the broker runtime flips.
//! - [`serve`]: `/metrics` (Prometheus text format from the registry passed in),
//!   `/healthz` and `/readyz` on `METRICS_ADDR`.
//!
//! The Prometheus `Registry` is created in `main` and passed in; nothing uses the global one.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use settings::{ConfigError, Strings};
use tokio::net::TcpListener;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// Logging configuration.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Output format (`LOG_FORMAT`).
    pub format: LogFormat,
    /// `RUST_LOG`-style filter.
    pub filter: String,
}

impl LogConfig {
    /// Reads `LOG_FORMAT` (`json`|`pretty`; default pretty on a terminal, json otherwise) and
    /// `RUST_LOG` (default `info`).
    pub fn from_strings(strings: &dyn Strings) -> Result<Self, ConfigError> {
        let format = match strings.get("LOG_FORMAT")?.as_deref() {
            None if std::io::stderr().is_terminal() => LogFormat::Pretty,
            None => LogFormat::Json,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "LOG_FORMAT",
                    format!("`{other}`: expected `json` or `pretty`"),
                ));
            }
        };
        let filter = strings.get("RUST_LOG")?.unwrap_or_else(|| "info".to_owned());
        tracing_subscriber::EnvFilter::try_new(&filter).map_err(|e| ConfigError::invalid("RUST_LOG", e))?;
        Ok(Self { format, filter })
    }
}

/// Installs the global `tracing` subscriber (logs go to stderr). Safe to call more than once;
/// later calls do nothing.
pub fn init_logging(config: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Pretty => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
    // An error only means a subscriber is already installed (tests, repeated init).
    drop(result);
}

/// Liveness and readiness, shared between the broker runtime and the HTTP endpoint.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<HealthInner>,
}

#[derive(Debug, Default)]
struct HealthInner {
    ready: AtomicBool,
    stopping: AtomicBool,
}

impl Health {
    /// A new health state: alive, not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the binary ready (connected to the broker, consumers running) or not.
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::Release);
    }

    /// Marks the binary as shutting down: no longer ready.
    pub fn set_stopping(&self) {
        self.inner.stopping.store(true, Ordering::Release);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire) && !self.inner.stopping.load(Ordering::Acquire)
    }
}

/// Where the operations endpoint listens: `METRICS_ADDR`, default `127.0.0.1:9464`.
pub fn metrics_addr(strings: &dyn Strings, default: &str) -> Result<SocketAddr, ConfigError> {
    let raw = strings.get("METRICS_ADDR")?.unwrap_or_else(|| default.to_owned());
    raw.parse().map_err(|_| {
        ConfigError::invalid(
            "METRICS_ADDR",
            format!("`{raw}`: expected host:port, e.g. `127.0.0.1:9464`"),
        )
    })
}

#[derive(Clone)]
struct OpsState {
    registry: Registry,
    health: Health,
}

/// The router of `/metrics`, `/healthz` and `/readyz`.
pub fn ops_router(registry: Registry, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(OpsState { registry, health })
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    let mut buffer = Vec::with_capacity(16 * 1024);
    match TextEncoder::new().encode(&state.registry.gather(), &mut buffer) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            buffer,
        )
            .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {error}\n"),
        )
            .into_response(),
    }
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    if state.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Binds `addr` and serves the operations endpoint in a background task. Returns the bound
/// address (useful with port 0).
pub async fn serve(addr: SocketAddr, registry: Registry, health: Health) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = ops_router(registry, health);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "Operations endpoint stopped.");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn validate_rejects_unknown_log_format() {
        let strings: HashMap<&str, &str> = [("LOG_FORMAT", "xml")].into_iter().collect();
        assert_eq!(
            LogConfig::from_strings(&strings).err().map(|e| e.variable().to_owned()),
            Some("LOG_FORMAT".into())
        );
    }

    #[test]
    fn readiness_follows_flags() {
        let health = Health::new();
        assert!(!health.is_ready());
        health.set_ready(true);
        assert!(health.is_ready());
        health.set_stopping();
        assert!(!health.is_ready());
    }

    #[test]
    fn validate_rejects_bad_metrics_addr() {
        let strings: HashMap<&str, &str> = [("METRICS_ADDR", "nowhere")].into_iter().collect();
        assert!(metrics_addr(&strings, "127.0.0.1:9464").is_err());
    }
}
