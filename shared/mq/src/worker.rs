//! What every worker binary shares: the common settings and the `main` skeleton (configuration
//! → logging → operations endpoint → run until SIGTERM → exit code), so each `main.rs` is
//! wiring only.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::sync::Arc;

use messages::Schemas;
use prometheus::Registry;
use settings::{ConfigError, EXIT_USAGE, MqConfig, Strings};
use telemetry::{Health, LogConfig};

use crate::MqError;
use crate::consumer::{Context, Handler, WorkerSpec};
use crate::metrics::MqMetrics;

/// Settings every worker has. Its `Debug` hides the Redis URL (it may hold a password).
#[derive(Clone)]
pub struct Common {
    /// Logging (`LOG_FORMAT`, `RUST_LOG`).
    pub log: LogConfig,
    /// `/metrics`, `/healthz`, `/readyz` (`METRICS_ADDR`).
    pub metrics_addr: SocketAddr,
    /// Broker (`AMQP_URL`, `SWITCHYARD_NAMESPACE`).
    pub mq: MqConfig,
    /// Queue, retries, prefetch (`SWITCHYARD_*`).
    pub spec: WorkerSpec,
    /// Replicas sharing a quota (`SWITCHYARD_REPLICAS`).
    pub replicas: NonZeroU32,
    /// Body size limit (`SWITCHYARD_MAX_BODY_BYTES`).
    pub max_body: usize,
    /// Shared quota and idempotency store (`REDIS_URL`); `None` keeps state in the process.
    pub redis_url: Option<String>,
}

impl std::fmt::Debug for Common {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Common")
            .field("log", &self.log)
            .field("metrics_addr", &self.metrics_addr)
            .field("mq", &self.mq)
            .field("spec", &self.spec)
            .field("replicas", &self.replicas)
            .field("max_body", &self.max_body)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Common {
    /// Reads the common settings of `worker`, which consumes `routing_keys`.
    pub fn from_strings(
        strings: &dyn Strings,
        worker: &str,
        routing_keys: &[&str],
        default_prefetch: u16,
    ) -> Result<Self, ConfigError> {
        let replicas = settings::parse(strings, "SWITCHYARD_REPLICAS", |s| {
            s.parse::<NonZeroU32>().map_err(|_| "expected a whole number above 0")
        })?
        .unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            log: LogConfig::from_strings(strings)?,
            metrics_addr: telemetry::metrics_addr(strings, "127.0.0.1:9464")?,
            mq: MqConfig::from_strings(strings)?,
            spec: WorkerSpec::from_strings(strings, worker, routing_keys, default_prefetch)?,
            replicas,
            max_body: settings::parse_or(strings, "SWITCHYARD_MAX_BODY_BYTES", messages::DEFAULT_MAX_BODY_BYTES)?,
            redis_url: settings::parse(strings, "REDIS_URL", |s| {
                if s.starts_with("redis://") || s.starts_with("rediss://") || s.starts_with("redis+unix://") {
                    Ok(s.to_owned())
                } else {
                    Err("expected a URL such as `redis://127.0.0.1:6379/`")
                }
            })?,
        })
    }

    /// The Redis key prefix of shared rate budgets: `switchyard:<namespace>:budget`. Every
    /// worker calling the same provider account shares the budget under it.
    pub fn budget_key_prefix(&self) -> String {
        format!("switchyard:{}:budget", self.key_namespace())
    }

    /// The Redis key prefix of a worker's processed-effect ledger:
    /// `switchyard:<namespace>:ledger:<worker>`.
    pub fn ledger_prefix(&self, worker: &str) -> String {
        format!("switchyard:{}:ledger:{worker}", self.key_namespace())
    }

    fn key_namespace(&self) -> &str {
        if self.mq.namespace.is_empty() {
            "default"
        } else {
            &self.mq.namespace
        }
    }

    /// The longest a provider call may wait for its rate budget before the message parks:
    /// half the hold bound, so the rest of the handling fits too.
    pub fn max_budget_wait(&self) -> std::time::Duration {
        self.spec.max_hold / 2
    }
}

/// Why a worker could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Building clients, metrics or schemas failed.
    #[error("{0}")]
    Setup(String),
    /// The broker runtime gave up.
    #[error(transparent)]
    Mq(#[from] MqError),
}

/// How a worker's run error maps to the process exit code (1 unless the error says the
/// configuration is unusable, which is 64 like an invalid variable).
pub trait ExitStatus: Display {
    /// The exit code for this error.
    fn exit_code(&self) -> u8 {
        1
    }
}

impl ExitStatus for RunError {}

/// Runs `handler` with the common settings until `shutdown` completes.
pub async fn run_handler<H: Handler>(
    common: &Common,
    handler: Arc<H>,
    registry: &Registry,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let schemas = Schemas::load(common.max_body).map_err(RunError::Setup)?;
    let context = Context {
        mq: common.mq.clone(),
        spec: common.spec.clone(),
        schemas: Arc::new(schemas),
        metrics: MqMetrics::register(registry).map_err(|e| RunError::Setup(e.to_string()))?,
        health,
    };
    crate::consumer::run(context, handler, shutdown).await?;
    Ok(())
}

/// The body of every worker's `main`: reports an invalid configuration (exit 64), sets up
/// logging and the operations endpoint, runs until SIGTERM/SIGINT, and maps the result to an
/// exit code (0 after a graceful stop).
pub async fn main<C, F, Fut, E>(
    name: &str,
    config: Result<C, ConfigError>,
    common: impl Fn(&C) -> &Common,
    run: F,
) -> ExitCode
where
    F: FnOnce(C, Registry, Health) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: ExitStatus,
{
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{name}: invalid configuration: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let shared = common(&config);
    telemetry::init_logging(&shared.log);
    let registry = Registry::new();
    let health = Health::new();
    match telemetry::serve(shared.metrics_addr, registry.clone(), health.clone()).await {
        Ok(addr) => tracing::info!(%addr, worker = name, "Serving /metrics, /healthz and /readyz."),
        Err(error) => {
            tracing::error!(%error, addr = %shared.metrics_addr, "Cannot bind METRICS_ADDR.");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    match run(config, registry, health).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, worker = name, "Worker stopped with an error.");
            ExitCode::from(error.exit_code())
        }
    }
}
