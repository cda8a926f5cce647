//! inbound: what vendors send back, and what must be pulled from them, published to the broker.
//!
//! - Webhooks and callbacks on `INBOUND_ADDR` ([`http`]): Ecomail's list webhook →
//!   `loyalty.subscription.changed`; SALESmanago's opt-in / opt-out callbacks →
//!   `contact.consent.changed`; Voucherify's signed webhooks → `voucher.redeemed`. Each is
//!   authenticated in constant time before its body is parsed ([`verify`]), answered 2xx only
//!   after the broker confirmed the message, and published once per vendor event id
//!   ([`sources`] derives the ids, [`deliver`] keeps the processed-event ledger).
//! - A scheduled Spotler pull ([`poller`]): bounces → `contact.bounced`, changed contacts →
//!   `contact.updated`, with a cursor that survives restarts and a lease so that one replica
//!   pulls at a time ([`coordination`]).
//!
//! It has no consumer queue: [`Inbound::serve`] runs the HTTP server, the poller and a broker
//! readiness watch until shutdown. `/metrics`, `/healthz` and `/readyz` (ready while the
//! broker connection is up) are served on `METRICS_ADDR` by `mq::worker::main`.
//!
//! # Layout
//! - [`config`]: environment → validated [`Config`].
//! - [`http`]: the routes and their answers.
//! - [`verify`] and [`canonical`]: token, key and signature checks.
//! - [`sources`]: each vendor's payload → messages (pure functions).
//! - [`deliver`]: schema check, ledger, confirmed publish.
//! - [`poller`], [`coordination`]: the Spotler pull, its lease and cursors.
//! - [`metrics`]: the `switchyard_inbound_*` metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use api_client::{HttpMetrics, ProviderClient};
use ledger::Ledger;
use messages::Schemas;
use mq::outbox::Outbox;
use mq::worker::RunError;
use prometheus::Registry;
use provider_spotler::SpotlerClient;
use telemetry::Health;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub mod canonical;
pub mod config;
pub mod coordination;
pub mod deliver;
pub mod http;
pub mod metrics;
pub mod poller;
pub mod sources;
pub mod verify;

pub use config::Config;
pub use poller::{CycleReport, Poller};

use crate::config::SpotlerPull;
use crate::coordination::Coordinator;
use crate::deliver::Deliverer;
use crate::http::Webhooks;
use crate::metrics::InboundMetrics;

/// How often readiness follows the broker connection (and a lost one is re-established).
const BROKER_WATCH_EVERY: Duration = Duration::from_secs(2);

/// The assembled binary: webhook routes, the optional poller, the outbox.
#[derive(Debug)]
pub struct Inbound {
    webhooks: Arc<Webhooks>,
    poller: Option<Arc<Poller>>,
    outbox: Outbox,
    drain_deadline: Duration,
}

fn setup(error: impl std::fmt::Display) -> RunError {
    RunError::Setup(error.to_string())
}

/// `switchyard:<namespace>` (or `switchyard:default`), the root of inbound's Redis keys.
fn key_root(namespace: &str) -> String {
    if namespace.is_empty() {
        "switchyard:default".to_owned()
    } else {
        format!("switchyard:{namespace}")
    }
}

/// Builds everything from the configuration; connects to nothing yet (Redis and the broker
/// are connected lazily).
pub fn build(config: &Config, registry: &Registry) -> Result<Inbound, RunError> {
    let common = &config.common;
    let schemas = Arc::new(Schemas::load(common.max_body).map_err(setup)?);
    let outbox = Outbox::new(&common.mq, config::WORKER);
    let ledger = Ledger::from_url(
        common.redis_url.as_deref(),
        &format!("{}:ledger:{}", key_root(&common.mq.namespace), config::WORKER),
    )
    .map_err(setup)?;
    let deliverer = Deliverer::new(outbox.clone(), ledger, schemas, config.publish_timeout);
    let metrics = InboundMetrics::register(registry).map_err(setup)?;
    let poller = match &config.spotler {
        Some(pull) => Some(Arc::new(build_poller(
            config,
            pull,
            deliverer.clone(),
            metrics.clone(),
            registry,
        )?)),
        None => None,
    };
    let webhooks = Webhooks {
        deliverer,
        metrics,
        max_body: common.max_body,
        ecomail_token: config.ecomail_token.clone(),
        salesmanago_secret: config.salesmanago_secret.clone(),
        voucherify_secret: config.voucherify_secret.clone(),
    };
    Ok(Inbound {
        webhooks: Arc::new(webhooks),
        poller,
        outbox,
        drain_deadline: common.spec.drain_deadline,
    })
}

fn build_poller(
    config: &Config,
    pull: &SpotlerPull,
    deliverer: Deliverer,
    metrics: InboundMetrics,
    registry: &Registry,
) -> Result<Poller, RunError> {
    let common = &config.common;
    let redis = api_client::shared::connect_optional(common.redis_url.as_deref()).map_err(setup)?;
    let http = ProviderClient::new(
        "spotler",
        pull.base_url.clone(),
        &pull.limits,
        common.replicas,
        common.max_budget_wait(),
        HttpMetrics::register(registry).map_err(setup)?,
    )
    .map_err(setup)?
    .shared_if(redis.as_ref(), &common.budget_key_prefix());
    let coordinator = match redis {
        Some(connection) => Coordinator::redis(connection, &common.mq.namespace),
        None => {
            if common.replicas.get() > 1 {
                tracing::warn!(
                    replicas = common.replicas.get(),
                    "SWITCHYARD_REPLICAS is above 1 but REDIS_URL is unset: every replica pulls Spotler on its \
                     own, with its own cursor file. Set REDIS_URL so one replica pulls at a time."
                );
            }
            Coordinator::files(&config.state_dir, &common.mq.namespace)
        }
    };
    Ok(Poller::new(
        SpotlerClient::new(http, pull.credentials.clone()),
        deliverer,
        coordinator,
        pull.clone(),
        metrics,
    ))
}

impl Inbound {
    /// The webhook routes (for serving elsewhere, e.g. behind another router).
    pub fn router(&self) -> axum::Router {
        http::router(self.webhooks.clone())
    }

    /// The Spotler poller, when the pull is on.
    pub fn poller(&self) -> Option<Arc<Poller>> {
        self.poller.clone()
    }

    /// Serves webhooks on `listener`, runs the poller and keeps readiness in line with the
    /// broker connection, until `shutdown` completes; then finishes open requests, lets a
    /// running pull cycle end (within `SWITCHYARD_DRAIN_DEADLINE`) and closes the broker
    /// connection.
    pub async fn serve(
        self,
        listener: TcpListener,
        health: Health,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RunError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let watcher = tokio::spawn(watch_broker(self.outbox.clone(), health.clone(), stop_rx.clone()));
        let poller = self.poller.clone().map(|poller| {
            let stop = stop_rx.clone();
            tokio::spawn(async move { poller.run(stop).await })
        });
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        health.set_stopping();
        if stop_tx.send(true).is_err() {
            tracing::debug!("Nothing was listening for the stop signal.");
        }
        if let Some(mut poller) = poller
            && tokio::time::timeout(self.drain_deadline, &mut poller).await.is_err()
        {
            tracing::warn!("The Spotler pull did not finish within the drain deadline; it resumes from its cursor.");
            poller.abort();
        }
        watcher.abort();
        self.outbox.close().await;
        served.map_err(|e| RunError::Setup(format!("the webhook server failed: {e}")))
    }
}

/// Keeps `/readyz` true only while the broker connection is up, reconnecting when it is not.
async fn watch_broker(outbox: Outbox, health: Health, mut stop: watch::Receiver<bool>) {
    loop {
        if !outbox.is_connected()
            && let Err(error) = outbox.connect().await
        {
            tracing::debug!(%error, "The broker is still unreachable.");
        }
        health.set_ready(outbox.is_connected());
        tokio::select! {
            () = tokio::time::sleep(BROKER_WATCH_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Runs inbound until `shutdown` completes: binds `INBOUND_ADDR` and serves.
pub async fn run(
    config: Config,
    registry: &Registry,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let inbound = build(&config, registry)?;
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|e| RunError::Setup(format!("cannot bind INBOUND_ADDR {}: {e}", config.addr)))?;
    let addr = listener.local_addr().map_err(setup)?;
    tracing::info!(%addr, sources = ?config.enabled_sources(), "Receiving webhooks and callbacks.");
    inbound.serve(listener, health, shutdown).await
}
