//! voucher-events: the Voucherify × Bloomreach flow.
//!
//! Consumes `voucher.publish.requested` (→ Voucherify publication, idempotent by `source_id` =
//! message id → `voucher.published` with the code), `voucher.redeemed` (every Voucherify
//! customer event → a Bloomreach customer event through the batch endpoint →
//! `voucher.event.forwarded`), and `bloomreach.customer.updated` / `bloomreach.event.exported`
//! (→ Voucherify's Bloomreach integration bulk endpoints with only defined, well-typed metadata
//! → `voucher.event.forwarded`).
//!
//! # Layout
//! - [`config`]: environment → validated [`config::Config`].
//! - [`batch`]: the batcher that lets many deliveries share one provider call.
//! - [`handler`]: the message handler.

use std::future::Future;
use std::sync::Arc;

use api_client::{HttpMetrics, ProviderClient};
use mq::worker::RunError;
use prometheus::Registry;
use provider_bloomreach::BloomreachClient;
use provider_voucherify::{MetadataFilter, MetadataMetrics, VoucherifyClient, VoucherifyIntegrationClient};
use telemetry::Health;

pub mod batch;
pub mod config;
pub mod handler;

pub use config::Config;
pub use handler::VoucherEvents;

/// Builds the handler from the configuration and registers its metrics on `registry`. Starts
/// the batching tasks, so it must run within a Tokio runtime.
pub fn build(config: &Config, registry: &Registry) -> Result<VoucherEvents, RunError> {
    let setup = |e: prometheus::Error| RunError::Setup(e.to_string());
    let http_metrics = HttpMetrics::register(registry).map_err(setup)?;
    let metadata = MetadataFilter::new(
        config.metadata_schema.clone(),
        MetadataMetrics::register(registry).map_err(setup)?,
    );
    let max_wait = config.common.max_budget_wait();
    let replicas = config.common.replicas;
    // With REDIS_URL every replica draws from one budget per provider account.
    let redis = api_client::shared::connect_optional(config.common.redis_url.as_deref()).map_err(RunError::Setup)?;
    let budget_key = config.common.budget_key_prefix();
    let http = |label: &'static str, endpoint_url: &url::Url, limits: &settings::ProviderLimits| {
        ProviderClient::new(
            label,
            endpoint_url.clone(),
            limits,
            replicas,
            max_wait,
            http_metrics.clone(),
        )
        .map(|client| client.shared_if(redis.as_ref(), &budget_key))
        .map_err(RunError::Setup)
    };
    let voucherify = VoucherifyClient::new(
        http(
            provider_voucherify::PROVIDER,
            &config.voucherify.base_url,
            &config.voucherify.limits,
        )?,
        config.voucherify.config.clone(),
    )
    .with_metadata_filter(metadata.clone());
    let integration = VoucherifyIntegrationClient::new(
        http(
            provider_voucherify::INTEGRATION_PROVIDER,
            &config.integration.base_url,
            &config.integration.limits,
        )?,
        config.integration.config.clone(),
        metadata,
    );
    let bloomreach = BloomreachClient::new(
        http(
            provider_bloomreach::PROVIDER,
            &config.bloomreach.base_url,
            &config.bloomreach.limits,
        )?,
        config.bloomreach.config.clone(),
    );
    Ok(VoucherEvents::new(
        voucherify,
        bloomreach,
        integration,
        config.hard_id.clone(),
        handler::Batching {
            bloomreach: config.bloomreach_batch,
            integration: config.integration_batch,
        },
    ))
}

/// Runs the worker until `shutdown` completes.
pub async fn run(
    config: Config,
    registry: &Registry,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let handler = Arc::new(build(&config, registry)?);
    mq::worker::run_handler(&config.common, handler, registry, health, shutdown).await
}
