//! loyalty-events: the Ellity × Ecomail loyalty flow.
//!
//! Consumes `points.changed`, `points.expiring`, `pin.changed` and
//! `loyalty.subscription.changed`. Keeps the loyalty custom fields (`ellity_credit`,
//! `ellity_pin`, `ellity_next_expiration_value`, `ellity_next_expiration_date`) on the Ecomail
//! subscriber and sends tracker events (category `ellity`, action `change`, label `credit`,
//! `expiry` or `pin`); the expiry notice goes out N days before the expiry, at most once per
//! customer per local day, and only when more than 0 points expire. Publishes
//! `loyalty.notified` per customer message and `loyalty.points.adjust.requested` (award or
//! deduction) per subscription change.
//!
//! # Layout
//! - [`config`]: environment → validated [`config::Config`].
//! - [`notice`]: the notice window and "today" arithmetic.
//! - [`record`]: the once-a-day / processed-message records (in process or in Redis).
//! - [`handler`]: the message handler.

use std::future::Future;
use std::sync::Arc;

use api_client::{HttpMetrics, ProviderClient};
use mq::batch::Batcher;
use mq::worker::RunError;
use prometheus::Registry;
use provider_ecomail::EcomailClient;
use telemetry::Health;

pub mod config;
pub mod handler;
pub mod notice;
pub mod record;

pub use config::Config;
pub use handler::LoyaltyEvents;

use crate::handler::LoyaltyMetrics;
use crate::record::{MemoryStore, RedisStore, Store};

/// Builds the handler from the configuration (within a Tokio runtime: the field-update batcher
/// is a task). With `REDIS_URL` the records live in Redis (connected lazily, so an outage makes
/// messages retry instead of stopping the worker).
pub fn build(config: &Config, registry: &Registry) -> Result<LoyaltyEvents, RunError> {
    let setup = |e: &dyn std::fmt::Display| RunError::Setup(e.to_string());
    let http_metrics = HttpMetrics::register(registry).map_err(|e| setup(&e))?;
    let http = ProviderClient::new(
        "ecomail",
        config.ecomail_base_url.clone(),
        &config.ecomail_limits,
        config.common.replicas,
        config.common.max_budget_wait(),
        http_metrics,
    )
    .map_err(RunError::Setup)?;
    // With REDIS_URL every replica (and contact-sync) draws from one Ecomail budget.
    let http = match &config.redis {
        Some(url) => {
            let connection = api_client::shared::connect_lazy(url.expose()).map_err(RunError::Setup)?;
            http.with_shared_budget(connection, &config.common.budget_key_prefix())
        }
        None => http,
    };
    let store = match &config.redis {
        Some(url) => Store::Redis(RedisStore::open(url.expose()).map_err(|e| setup(&e))?),
        None => Store::Memory(MemoryStore::with_capacity(config.records_capacity)),
    };
    let namespace = &config.common.mq.namespace;
    let key_prefix = if namespace.is_empty() {
        format!("switchyard:{}:", config::WORKER)
    } else {
        format!("switchyard:{namespace}:{}:", config::WORKER)
    };
    let ecomail = EcomailClient::new(http, config.ecomail.clone());
    let fields_bulk = config.bulk.map(|settings| {
        let batch_client = ecomail.clone();
        Batcher::spawn("ecomail", settings, move |updates: Vec<_>| {
            let client = batch_client.clone();
            async move { client.update_custom_fields_each(&updates).await }
        })
    });
    Ok(LoyaltyEvents {
        ecomail,
        fields_bulk,
        store,
        notice: config.notice,
        subscribe_points: config.subscribe_points,
        unsubscribe_points: config.unsubscribe_points,
        key_prefix,
        // A claim outlives the longest a handler may hold a delivery.
        claim_hold: config.common.spec.max_hold * 2,
        metrics: LoyaltyMetrics::register(registry).map_err(|e| setup(&e))?,
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
