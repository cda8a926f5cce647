//! contact-sync: keeps contacts in sync with the ESPs and marketing platforms.
//!
//! Consumes `contact.changed`, `contact.deleted`, `contact.deactivated`, `contact.subscribed`,
//! `shop.event`, `segment.exported` and `contact.lookup.requested`; calls Spotler Mail+
//! (insert with `update=true`, alone or up to 100 per `/contact/list` call, anonymize,
//! inactivate, subscribe, temporary lists, search), Ecomail (subscribe with
//! `update_existing`), SALESmanago (upsert with consent and tags, external events) and
//! Voucherify (customer upsert with schema-filtered metadata, optionally written back to
//! Bloomreach); publishes one `contact.synced` per destination outcome and one
//! `contact.lookup.result` per lookup. Each destination is enabled per deployment
//! (`CONTACT_SYNC_DESTINATIONS`).
//!
//! # Layout
//! - [`config`]: environment → validated [`config::Config`].
//! - [`mapping`]: the field-mapping file and its check against the Spotler account.
//! - [`startup`]: the start-up check of the Spotler account's properties.
//! - [`handler`]: the message handler and the per-destination outcome.
//! - [`spotler`], [`ecomail`], [`salesmanago`], [`voucherify`]: one module per destination.
//! - [`segments`]: segments as Spotler temporary lists; [`lookup`]: search by property.
//! - [`fields`]: source fields, purchase-date rules, names; [`locks`]: per-contact locks.

use std::future::Future;
use std::sync::Arc;

use api_client::{HttpMetrics, ProviderClient};
use mq::batch::Batcher;
use mq::worker::RunError;
use prometheus::Registry;
use provider_bloomreach::BloomreachClient;
use provider_ecomail::EcomailClient;
use provider_salesmanago::SalesmanagoClient;
use provider_spotler::SpotlerClient;
use provider_voucherify::{MetadataFilter, MetadataMetrics, VoucherifyClient};
use telemetry::Health;

pub mod config;
pub mod ecomail;
pub mod fields;
pub mod handler;
pub mod locks;
pub mod lookup;
pub mod mapping;
pub mod salesmanago;
pub mod segments;
pub mod spotler;
pub mod startup;
pub mod voucherify;

pub use config::Config;
pub use handler::ContactSync;
pub use startup::StartError;

/// Builds the handler from the configuration and registers its metrics on `registry`. Starts
/// the Spotler bulk batcher, so it must run within a Tokio runtime.
pub fn build(config: &Config, registry: &Registry) -> Result<ContactSync, RunError> {
    let setup = |e: prometheus::Error| RunError::Setup(e.to_string());
    let http_metrics = HttpMetrics::register(registry).map_err(setup)?;
    let max_wait = config.common.max_budget_wait();
    let replicas = config.common.replicas;
    let redis = api_client::shared::connect_optional(config.common.redis_url.as_deref()).map_err(RunError::Setup)?;
    let budget_key = config.common.budget_key_prefix();
    let http = |label: &'static str, base_url: &url::Url, limits: &settings::ProviderLimits| {
        ProviderClient::new(
            label,
            base_url.clone(),
            limits,
            replicas,
            max_wait,
            http_metrics.clone(),
        )
        .map(|client| client.shared_if(redis.as_ref(), &budget_key))
        .map_err(RunError::Setup)
    };
    let spotler = match &config.spotler {
        Some(d) => {
            let client = SpotlerClient::new(http("spotler", &d.base_url, &d.limits)?, d.config.clone());
            let options = &config.spotler_options;
            let bulk = options.bulk.map(|settings| {
                let batch_client = client.clone();
                Batcher::spawn("spotler", settings, move |contacts| {
                    let client = batch_client.clone();
                    async move { spotler::flush_bulk(&client, contacts).await }
                })
            });
            Some(handler::SpotlerDestination {
                client,
                templist_prefix: options.templist_prefix.clone(),
                templist_evict_oldest: options.templist_evict_oldest,
                bulk,
            })
        }
        None => None,
    };
    let ecomail = match &config.ecomail {
        Some(d) => Some(EcomailClient::new(
            http("ecomail", &d.base_url, &d.limits)?,
            d.config.clone(),
        )),
        None => None,
    };
    let ecomail_bulk = match (&ecomail, config.ecomail_bulk) {
        (Some(client), Some(settings)) => {
            let batch_client = client.clone();
            Some(Batcher::spawn("ecomail", settings, move |subscribers| {
                let client = batch_client.clone();
                async move { ecomail::flush_bulk(&client, subscribers).await }
            }))
        }
        _ => None,
    };
    let salesmanago = match &config.salesmanago {
        Some(d) => Some(SalesmanagoClient::new(
            http(provider_salesmanago::PROVIDER, &d.base_url, &d.limits)?,
            d.config.clone(),
        )),
        None => None,
    };
    let voucherify = match &config.voucherify {
        Some(v) => {
            let filter = MetadataFilter::new(
                v.metadata_schema.clone(),
                MetadataMetrics::register(registry).map_err(setup)?,
            );
            let client = VoucherifyClient::new(
                http(provider_voucherify::PROVIDER, &v.api.base_url, &v.api.limits)?,
                v.api.config.clone(),
            )
            .with_metadata_filter(filter);
            let writeback = match &v.writeback {
                Some(w) => Some((
                    BloomreachClient::new(
                        http(
                            provider_bloomreach::PROVIDER,
                            &w.bloomreach.base_url,
                            &w.bloomreach.limits,
                        )?,
                        w.bloomreach.config.clone(),
                    ),
                    w.hard_id.clone(),
                )),
                None => None,
            };
            Some(handler::VoucherifyDestination { client, writeback })
        }
        None => None,
    };
    let ledger = ledger::Ledger::from_url(
        config.common.redis_url.as_deref(),
        &config.common.ledger_prefix(config::WORKER),
    )
    .map_err(RunError::Setup)?;
    Ok(ContactSync {
        spotler,
        ecomail,
        ecomail_bulk,
        salesmanago,
        voucherify,
        mapping: config.mapping.clone(),
        contacts: Default::default(),
        ledger,
    })
}

/// Runs the worker until `shutdown` completes: builds the handler, checks the field mapping
/// against the Spotler account (when Spotler is enabled and `SPOTLER_CHECK_PROPERTIES` is on),
/// then consumes. A mapping that does not fit is [`StartError::Mapping`].
pub async fn start(
    config: Config,
    registry: &Registry,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let handler = Arc::new(build(&config, registry)?);
    let mut shutdown = Box::pin(shutdown);
    if config.spotler_options.check_properties
        && let Some(spotler) = &handler.spotler
        && !startup::check_spotler_account(&spotler.client, &config.mapping, &mut shutdown).await?
    {
        return Ok(());
    }
    mq::worker::run_handler(&config.common, handler, registry, health, shutdown).await?;
    Ok(())
}

/// [`start`] with every start-up failure as a [`RunError`] (a refused mapping is
/// `RunError::Setup` with the text naming the property).
pub async fn run(
    config: Config,
    registry: &Registry,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    start(config, registry, health, shutdown)
        .await
        .map_err(|error| match error {
            StartError::Run(error) => error,
            other => RunError::Setup(other.to_string()),
        })
}
