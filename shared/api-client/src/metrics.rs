//! Provider-call metrics, shared by every client of one process.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Metrics of provider calls. Labels: provider, operation (a fixed name per endpoint),
/// status class (`2xx`, `4xx`, `429`, `5xx`, `network`, `timeout`).
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    /// `switchyard_provider_requests_total{provider,operation,status_class}`.
    pub requests: IntCounterVec,
    /// `switchyard_provider_request_duration_seconds{provider,operation}`.
    pub duration: HistogramVec,
    /// `switchyard_rate_limit_wait_seconds{provider}`: time waiting for the budget.
    pub wait: HistogramVec,
    /// `switchyard_rate_limited_total{provider,source}`: `source` = `vendor` (a 429 or a
    /// remaining-0 header) or `budget` (our own limiter made the message park).
    pub rate_limited: IntCounterVec,
    /// `switchyard_provider_auth_failures_total{provider}`: 401/403, i.e. bad credentials.
    pub auth_failures: IntCounterVec,
    /// `switchyard_rate_limit_quota{provider,window}`: the configured calls per window.
    pub quota: IntGaugeVec,
    /// `switchyard_rate_limit_admitted_total{provider}`: calls the budget let through. With the
    /// quota this gives the remaining budget per window:
    /// `quota - sum(increase(admitted[window]))`.
    pub admitted: IntCounterVec,
    /// `switchyard_rate_limit_pauses_total{provider}`: vendor feedback paused the destination.
    pub pauses: IntCounterVec,
    /// `switchyard_rate_limit_fallback{provider}`: 1 while Redis is unreachable and this
    /// replica uses its own share of the quota.
    pub fallback: IntGaugeVec,
}

impl HttpMetrics {
    /// Registers the metrics on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "switchyard_provider_requests_total",
                    "Provider HTTP calls by status class.",
                ),
                &["provider", "operation", "status_class"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "switchyard_provider_request_duration_seconds",
                    "Provider HTTP call latency.",
                )
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                &["provider", "operation"],
            )?,
            wait: HistogramVec::new(
                HistogramOpts::new(
                    "switchyard_rate_limit_wait_seconds",
                    "Time spent waiting for the rate budget.",
                )
                .buckets(vec![0.0, 0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0]),
                &["provider"],
            )?,
            rate_limited: IntCounterVec::new(
                Opts::new("switchyard_rate_limited_total", "Calls held back by a rate limit."),
                &["provider", "source"],
            )?,
            auth_failures: IntCounterVec::new(
                Opts::new(
                    "switchyard_provider_auth_failures_total",
                    "401/403 answers: the credentials are wrong.",
                ),
                &["provider"],
            )?,
            quota: IntGaugeVec::new(
                Opts::new("switchyard_rate_limit_quota", "Configured calls per window."),
                &["provider", "window"],
            )?,
            admitted: IntCounterVec::new(
                Opts::new(
                    "switchyard_rate_limit_admitted_total",
                    "Calls the rate budget let through.",
                ),
                &["provider"],
            )?,
            pauses: IntCounterVec::new(
                Opts::new(
                    "switchyard_rate_limit_pauses_total",
                    "Times vendor feedback paused the destination.",
                ),
                &["provider"],
            )?,
            fallback: IntGaugeVec::new(
                Opts::new(
                    "switchyard_rate_limit_fallback",
                    "1 while Redis is unreachable and the replica uses its own share.",
                ),
                &["provider"],
            )?,
        };
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.duration.clone()))?;
        registry.register(Box::new(metrics.wait.clone()))?;
        registry.register(Box::new(metrics.rate_limited.clone()))?;
        registry.register(Box::new(metrics.auth_failures.clone()))?;
        registry.register(Box::new(metrics.quota.clone()))?;
        registry.register(Box::new(metrics.admitted.clone()))?;
        registry.register(Box::new(metrics.pauses.clone()))?;
        registry.register(Box::new(metrics.fallback.clone()))?;
        Ok(metrics)
    }
}
