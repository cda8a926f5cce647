//! inbound's metrics. Labels are bounded: source, feed, outcome.

use prometheus::{GaugeVec, IntCounterVec, IntGauge, Opts, Registry};

/// The metrics of webhooks, callbacks and pulls.
#[derive(Debug, Clone)]
pub struct InboundMetrics {
    /// `switchyard_inbound_requests_total{source,outcome}`: webhook and callback requests by
    /// source (`ecomail`, `salesmanago`, `voucherify`) and outcome (`published`, `duplicate`,
    /// `ignored`, `unauthorized`, `forbidden`, `disabled`, `too_large`, `invalid`,
    /// `unavailable`).
    pub requests: IntCounterVec,
    /// `switchyard_inbound_pulled_total{feed,outcome}`: pulled Spotler records by feed
    /// (`bounces`, `updates`) and outcome (`published`, `duplicate`, `invalid`).
    pub pulled: IntCounterVec,
    /// `switchyard_inbound_polls_total{feed,outcome}`: pull cycles per feed by outcome (`ok`,
    /// `failed`), plus `feed="all"` with `not_leader` when another replica holds the lease.
    pub polls: IntCounterVec,
    /// `switchyard_inbound_cursor_lag_seconds{feed}`: how far the stored cursor is behind now.
    pub cursor_lag: GaugeVec,
    /// `switchyard_inbound_lease_held`: 1 while this replica holds the Spotler pull lease.
    pub lease_held: IntGauge,
}

impl InboundMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "switchyard_inbound_requests_total",
                "Webhook and callback requests by source and outcome.",
            ),
            &["source", "outcome"],
        )?;
        let pulled = IntCounterVec::new(
            Opts::new(
                "switchyard_inbound_pulled_total",
                "Records pulled from Spotler by feed and outcome.",
            ),
            &["feed", "outcome"],
        )?;
        let polls = IntCounterVec::new(
            Opts::new(
                "switchyard_inbound_polls_total",
                "Spotler pull cycles by feed and outcome.",
            ),
            &["feed", "outcome"],
        )?;
        let cursor_lag = GaugeVec::new(
            Opts::new(
                "switchyard_inbound_cursor_lag_seconds",
                "How far the stored Spotler cursor is behind now.",
            ),
            &["feed"],
        )?;
        let lease_held = IntGauge::new(
            "switchyard_inbound_lease_held",
            "1 while this replica holds the Spotler pull lease.",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(pulled.clone()))?;
        registry.register(Box::new(polls.clone()))?;
        registry.register(Box::new(cursor_lag.clone()))?;
        registry.register(Box::new(lease_held.clone()))?;
        Ok(Self {
            requests,
            pulled,
            polls,
            cursor_lag,
            lease_held,
        })
    }
}
