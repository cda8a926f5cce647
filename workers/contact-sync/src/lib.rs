//! contact-sync: keeps contacts in sync with the ESPs.
//!
//! Consumes `contact.changed`, `contact.deleted`, `contact.deactivated`; calls Spotler Mail+
//! (insert with `update=true`, anonymize, inactivate) and Ecomail (subscribe with
//! `update_existing`); publishes one `contact.synced` per destination outcome.
//!
//! # Layout
//! - [`config`]: environment → validated [`config::Config`].
//! - [`mapping`]: the field-mapping file.
//! - [`handler`]: the message handler.

use std::future::Future;
use std::sync::Arc;

use api_client::{HttpMetrics, ProviderClient};
use mq::worker::RunError;
use prometheus::Registry;
use provider_ecomail::EcomailClient;
use provider_spotler::SpotlerClient;
use telemetry::Health;

pub mod config;
pub mod handler;
pub mod locks;
pub mod mapping;

pub use config::Config;
pub use handler::ContactSync;

/// Builds the handler from the configuration.
pub fn build(config: &Config, registry: &Registry) -> Result<ContactSync, RunError> {
    let http_metrics = HttpMetrics::register(registry).map_err(|e| RunError::Setup(e.to_string()))?;
    let max_wait = config.common.max_budget_wait();
    let replicas = config.common.replicas;
    let redis = config
        .common
        .redis_url
        .as_deref()
        .map(api_client::shared::connect_lazy)
        .transpose()
        .map_err(RunError::Setup)?;
    let budget_key = config.common.budget_key_prefix();
    let spotler = match &config.spotler {
        Some(d) => {
            let http = ProviderClient::new(
                "spotler",
                d.base_url.clone(),
                &d.limits,
                replicas,
                max_wait,
                http_metrics.clone(),
            )
            .map_err(RunError::Setup)?
            .shared_if(redis.as_ref(), &budget_key);
            Some(SpotlerClient::new(http, d.config.clone()))
        }
        None => None,
    };
    let ecomail = match &config.ecomail {
        Some(d) => {
            let http = ProviderClient::new(
                "ecomail",
                d.base_url.clone(),
                &d.limits,
                replicas,
                max_wait,
                http_metrics.clone(),
            )
            .map_err(RunError::Setup)?
            .shared_if(redis.as_ref(), &budget_key);
            Some(EcomailClient::new(http, d.config.clone()))
        }
        None => None,
    };
    Ok(ContactSync {
        spotler,
        ecomail,
        mapping: config.mapping.clone(),
        contacts: Default::default(),
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
