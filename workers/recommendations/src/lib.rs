//! recommendations: the Froomle × Selligent batch-recommendation flow.
//!
//! Consumes `recommendation.requested` (one user, one list) and `recommendation.tracked`
//! (newsletter opens and recommendation clicks); calls Froomle (OAuth2 client-credentials
//! token, recommendations requests, events); publishes `recommendation.ready` with the items,
//! their metadata (title, url, image url, description) and the request id / user group that
//! attribution needs.
//!
//! # Layout
//! - [`config`]: environment → validated [`config::Config`].
//! - [`processed`]: the processed-message record that keeps tracking events from being sent
//!   twice.
//! - [`handler`]: the message handler and the message ↔ Froomle mapping.

use std::future::Future;
use std::sync::Arc;

use api_client::{HttpMetrics, ProviderClient};
use mq::worker::RunError;
use prometheus::Registry;
use provider_froomle::FroomleClient;
use telemetry::Health;

pub mod config;
pub mod handler;
pub mod processed;

pub use config::Config;
pub use handler::RecommendationsWorker;

use crate::handler::RecommendationMetrics;
use crate::processed::Processed;

/// Builds the handler from the configuration. With `REDIS_URL` the Froomle rate budget is
/// shared by every replica.
pub fn build(config: &Config, registry: &Registry) -> Result<RecommendationsWorker, RunError> {
    let setup = |e: prometheus::Error| RunError::Setup(e.to_string());
    let http_metrics = HttpMetrics::register(registry).map_err(setup)?;
    let redis = api_client::shared::connect_optional(config.common.redis_url.as_deref()).map_err(RunError::Setup)?;
    let http = ProviderClient::new(
        "froomle",
        config.froomle_base_url.clone(),
        &config.froomle_limits,
        config.common.replicas,
        config.common.max_budget_wait(),
        http_metrics,
    )
    .map_err(RunError::Setup)?
    .shared_if(redis.as_ref(), &config.common.budget_key_prefix());
    let ledger = ledger::Ledger::from_url(
        config.common.redis_url.as_deref(),
        &config.common.ledger_prefix("recommendations"),
    )
    .map_err(RunError::Setup)?
    .with_retention(config.processed_ttl);
    Ok(RecommendationsWorker {
        froomle: FroomleClient::new(http, config.froomle.clone()),
        processed: Processed::new(config.processed_ttl, config.processed_capacity),
        ledger,
        metrics: RecommendationMetrics::register(registry).map_err(setup)?,
    })
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
