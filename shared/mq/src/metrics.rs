//! Broker-runtime metrics. Labels are bounded: worker, message type (from the catalog, or
//! `unknown`), outcome, tier, class.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Metrics of the consumer loop.
#[derive(Debug, Clone)]
pub struct MqMetrics {
    /// `switchyard_messages_total{worker,type,outcome}`; outcome ∈ ok, retried, parked,
    /// dead_lettered, requeued.
    pub messages: IntCounterVec,
    /// `switchyard_retries_total{worker,tier}`.
    pub retries: IntCounterVec,
    /// `switchyard_dead_letters_total{worker,class}`.
    pub dead_letters: IntCounterVec,
    /// `switchyard_in_flight{worker}`.
    pub in_flight: IntGaugeVec,
    /// `switchyard_message_duration_seconds{worker,type}`: delivery to settlement.
    pub duration: HistogramVec,
    /// `switchyard_broker_connections_total{worker}`: sessions opened (1 + reconnects).
    pub connections: IntCounterVec,
    /// `switchyard_published_total{worker,type}`: confirmed result messages.
    pub published: IntCounterVec,
}

impl MqMetrics {
    /// Registers the metrics on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            messages: IntCounterVec::new(
                Opts::new("switchyard_messages_total", "Messages handled, by outcome."),
                &["worker", "type", "outcome"],
            )?,
            retries: IntCounterVec::new(
                Opts::new("switchyard_retries_total", "Messages sent to a delay tier."),
                &["worker", "tier"],
            )?,
            dead_letters: IntCounterVec::new(
                Opts::new("switchyard_dead_letters_total", "Messages dead-lettered, by class."),
                &["worker", "class"],
            )?,
            in_flight: IntGaugeVec::new(
                Opts::new("switchyard_in_flight", "Deliveries being handled."),
                &["worker"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "switchyard_message_duration_seconds",
                    "Time from delivery to settlement (the ack or requeue handed to the channel).",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
                &["worker", "type"],
            )?,
            connections: IntCounterVec::new(
                Opts::new(
                    "switchyard_broker_connections_total",
                    "Broker sessions opened (first connect and reconnects).",
                ),
                &["worker"],
            )?,
            published: IntCounterVec::new(
                Opts::new("switchyard_published_total", "Result messages published and confirmed."),
                &["worker", "type"],
            )?,
        };
        registry.register(Box::new(metrics.messages.clone()))?;
        registry.register(Box::new(metrics.retries.clone()))?;
        registry.register(Box::new(metrics.dead_letters.clone()))?;
        registry.register(Box::new(metrics.in_flight.clone()))?;
        registry.register(Box::new(metrics.duration.clone()))?;
        registry.register(Box::new(metrics.connections.clone()))?;
        registry.register(Box::new(metrics.published.clone()))?;
        Ok(metrics)
    }
}
