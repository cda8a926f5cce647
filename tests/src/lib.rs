//! Test kit for the workspace integration tests: a unique broker namespace per test, an
//! in-process sandbox on a free port, workers run in-process (or as real binaries for
//! signal tests), and helpers to publish and observe.
//!
//! Every test gets its own `SWITCHYARD_NAMESPACE`, so tests run in parallel on the one broker
//! without seeing each other's messages; the namespace is deleted when the harness stops.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use mq::WorkerTopology;
use mq::admin::{Admin, DeadLetter};
use prometheus::Registry;
use settings::MqConfig;
use switchyard_sandbox::{RunningSandbox, SandboxConfig};
use telemetry::Health;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub mod chaos;
pub mod inbound;
pub mod loyalty;
pub mod recommendations;
pub mod voucher;

/// The name of the observer queue that collects results in tests.
pub const RESULTS: &str = "test.results";

/// A fresh namespace.
pub fn unique_namespace(prefix: &str) -> String {
    format!("t-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Environment for contact-sync pointing at `sandbox`, in `namespace`, with short retry tiers.
/// Credentials for every destination are set, but only `spotler,ecomail` are enabled (override
/// `CONTACT_SYNC_DESTINATIONS`). The start-up check of the Spotler properties is off, so the
/// call log holds only what messages cause (tests of the check turn it on).
pub fn contact_sync_env(namespace: &str, sandbox: &RunningSandbox) -> HashMap<String, String> {
    let mapping = workspace_root().join("config/field-mapping.toml");
    [
        ("SWITCHYARD_NAMESPACE", namespace.to_owned()),
        ("SPOTLER_BASE_URL", sandbox.spotler_base_url()),
        (
            "SPOTLER_CONSUMER_KEY",
            switchyard_sandbox::DEFAULT_SPOTLER_CONSUMER_KEY.to_owned(),
        ),
        (
            "SPOTLER_CONSUMER_SECRET",
            switchyard_sandbox::DEFAULT_SPOTLER_CONSUMER_SECRET.to_owned(),
        ),
        ("ECOMAIL_BASE_URL", sandbox.ecomail_base_url()),
        (
            "ECOMAIL_API_KEY",
            switchyard_sandbox::DEFAULT_ECOMAIL_API_KEY.to_owned(),
        ),
        ("ECOMAIL_LIST_ID", "7".to_owned()),
        ("SPOTLER_CHECK_PROPERTIES", "false".to_owned()),
        ("SALESMANAGO_BASE_URL", sandbox.salesmanago_base_url()),
        (
            "SALESMANAGO_CLIENT_ID",
            switchyard_sandbox::DEFAULT_SALESMANAGO_CLIENT_ID.to_owned(),
        ),
        (
            "SALESMANAGO_API_SECRET",
            switchyard_sandbox::DEFAULT_SALESMANAGO_API_SECRET.to_owned(),
        ),
        (
            "SALESMANAGO_OWNER",
            switchyard_sandbox::DEFAULT_SALESMANAGO_OWNER.to_owned(),
        ),
        ("VOUCHERIFY_BASE_URL", sandbox.voucherify_base_url()),
        (
            "VOUCHERIFY_APP_ID",
            switchyard_sandbox::DEFAULT_VOUCHERIFY_APP_ID.to_owned(),
        ),
        (
            "VOUCHERIFY_APP_TOKEN",
            switchyard_sandbox::DEFAULT_VOUCHERIFY_APP_TOKEN.to_owned(),
        ),
        (
            "VOUCHERIFY_METADATA_SCHEMA",
            workspace_root()
                .join("config/voucherify-metadata.toml")
                .display()
                .to_string(),
        ),
        ("BLOOMREACH_BASE_URL", sandbox.bloomreach_base_url()),
        (
            "BLOOMREACH_PROJECT_TOKEN",
            switchyard_sandbox::DEFAULT_BLOOMREACH_PROJECT_TOKEN.to_owned(),
        ),
        (
            "BLOOMREACH_API_KEY_ID",
            switchyard_sandbox::DEFAULT_BLOOMREACH_KEY_ID.to_owned(),
        ),
        (
            "BLOOMREACH_API_SECRET",
            switchyard_sandbox::DEFAULT_BLOOMREACH_SECRET.to_owned(),
        ),
        ("CONTACT_SYNC_MAPPING", mapping.display().to_string()),
        ("SWITCHYARD_RETRY_TIERS", "200ms,400ms,800ms".to_owned()),
        ("SWITCHYARD_MAX_ATTEMPTS", "3".to_owned()),
        ("SWITCHYARD_DRAIN_DEADLINE", "10s".to_owned()),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The workspace root (for bundled files and built binaries).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A binary built by `cargo build --workspace --bins` (which `make test` runs first).
pub fn binary(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}

/// The shutdown future handed to an in-process worker.
pub type Shutdown = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A worker running in-process (its `run(config, &registry, health, shutdown)`), stopped
/// gracefully on demand. Every harness uses it to start, restart and stop its worker.
#[derive(Debug, Default)]
pub struct InProcessWorker {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), mq::worker::RunError>>>,
}

impl InProcessWorker {
    /// Spawns `run` with a fresh health state and a shutdown future that completes on
    /// [`InProcessWorker::stop`].
    pub fn spawn<F, Fut>(registry: Registry, run: F) -> Self
    where
        F: FnOnce(Registry, Health, Shutdown) -> Fut,
        Fut: Future<Output = Result<(), mq::worker::RunError>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown: Shutdown = Box::pin(async move {
            let _stopped = rx.await;
        });
        let task = tokio::spawn(run(registry, Health::new(), shutdown));
        Self {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the worker gracefully and returns its result (`None` when it was not running).
    pub async fn stop(&mut self) -> Option<Result<(), mq::worker::RunError>> {
        if let Some(stop) = self.stop.take() {
            let _sent = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.ok(),
            None => None,
        }
    }
}

/// A running contact-sync with its sandbox, in its own namespace.
#[derive(Debug)]
pub struct Harness {
    /// The namespace.
    pub namespace: String,
    /// The sandbox.
    pub sandbox: RunningSandbox,
    /// Admin connection.
    pub admin: Admin,
    /// The worker's environment.
    pub env: HashMap<String, String>,
    /// The worker's metrics registry.
    pub registry: Registry,
    worker: crate::InProcessWorker,
}

/// The topology of contact-sync with the test tiers.
pub fn contact_sync_topology(env: &HashMap<String, String>) -> WorkerTopology {
    let spec = mq::WorkerSpec::from_strings(
        env,
        contact_sync::config::WORKER,
        contact_sync::config::ROUTING_KEYS,
        32,
    );
    spec.map(|s| s.topology)
        .unwrap_or_else(|e| panic!("test worker spec: {e}"))
}

impl Harness {
    /// Starts a sandbox and an in-process contact-sync; `overrides` change its environment.
    pub async fn start(prefix: &str, overrides: &[(&str, &str)]) -> Self {
        let namespace = unique_namespace(prefix);
        let sandbox = switchyard_sandbox::spawn(SandboxConfig::for_tests())
            .await
            .unwrap_or_else(|e| panic!("sandbox: {e}"));
        let mut env = contact_sync_env(&namespace, &sandbox);
        for (k, v) in overrides {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let mq_config = MqConfig::from_strings(&env).unwrap_or_else(|e| panic!("{e}"));
        let admin = Admin::connect(&mq_config)
            .await
            .unwrap_or_else(|e| panic!("broker at AMQP_URL: {e}"));
        admin
            .declare(&[contact_sync_topology(&env)])
            .await
            .unwrap_or_else(|e| panic!("declare: {e}"));
        admin
            .declare_observer(RESULTS, &["contact.synced", "contact.lookup.result"])
            .await
            .unwrap_or_else(|e| panic!("observer: {e}"));
        let mut harness = Self {
            namespace,
            sandbox,
            admin,
            env,
            registry: Registry::new(),
            worker: crate::InProcessWorker::default(),
        };
        harness.start_worker();
        harness
    }

    /// Starts (or restarts) the in-process worker.
    pub fn start_worker(&mut self) {
        let config = contact_sync::Config::from_strings(&self.env).unwrap_or_else(|e| panic!("config: {e}"));
        self.registry = Registry::new();
        self.worker =
            crate::InProcessWorker::spawn(self.registry.clone(), move |registry, health, shutdown| async move {
                contact_sync::run(config, &registry, health, shutdown).await
            });
    }

    /// Stops the in-process worker gracefully and returns its result.
    pub async fn stop_worker(&mut self) -> Option<Result<(), mq::worker::RunError>> {
        self.worker.stop().await
    }

    /// Publishes a JSON body as `kind` with a fresh message id, which it returns.
    pub async fn publish(&self, kind: &str, body: &serde_json::Value) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.admin
            .publish(kind, &id, None, &bytes)
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
        id
    }

    /// The contact.synced (and contact.lookup.result) messages collected so far (removed from
    /// the observer queue).
    pub async fn take_results(&self) -> Vec<serde_json::Value> {
        let queue = self.admin.names().work_queue(RESULTS);
        let messages = self
            .admin
            .drain(&queue, 10_000)
            .await
            .unwrap_or_else(|e| panic!("drain: {e}"));
        messages
            .into_iter()
            .filter_map(|(_, body)| serde_json::from_slice(&body).ok())
            .collect()
    }

    /// Waits until `want` results have arrived in total (accumulating into `seen`).
    pub async fn wait_results(&self, seen: &mut Vec<serde_json::Value>, want: usize, timeout: Duration) {
        crate::collect(seen, want, timeout, "results", || self.take_results()).await;
    }

    /// The dead letters of contact-sync (left in place).
    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.admin
            .dead_letters(contact_sync::config::WORKER, 10_000)
            .await
            .unwrap_or_else(|e| panic!("dlq: {e}"))
    }

    /// Waits until at least `want` dead letters exist.
    pub async fn wait_dead_letters(&self, want: usize, timeout: Duration) -> Vec<DeadLetter> {
        wait_for(timeout, || async {
            let letters = self.dead_letters().await;
            (letters.len() >= want).then_some(letters)
        })
        .await
        .unwrap_or_else(|| panic!("fewer than {want} dead letters within {timeout:?}"))
    }

    /// Queue depth of a queue in this namespace (name without the prefix).
    pub async fn depth(&self, queue: &str) -> u32 {
        self.admin
            .queue_depth(&self.admin.names().work_queue(queue))
            .await
            .unwrap_or(0)
    }

    /// A counter or gauge value from the worker's registry (sum over matching label sets).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        crate::registry_metric(&self.registry, name, labels)
    }

    /// Stops the worker and the sandbox and deletes the namespace.
    pub async fn finish(mut self) {
        let _stopped = self.stop_worker().await;
        let topology = contact_sync_topology(&self.env);
        let results = self.admin.names().work_queue(RESULTS);
        let _removed = self.admin.remove_namespace(&[topology], &[results]).await;
    }
}

/// A counter or gauge value from a registry, summed over the label sets matching `labels`.
pub fn registry_metric(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for family in registry.gather() {
        if family.name() != name {
            continue;
        }
        for metric in family.get_metric() {
            let matches = labels
                .iter()
                .all(|(k, v)| metric.get_label().iter().any(|l| l.name() == *k && l.value() == *v));
            if matches {
                total += metric.get_counter().get_value() + metric.get_gauge().get_value();
            }
        }
    }
    total
}

/// Polls `take` every 50 ms, adding what it returns to `seen`, until `seen` holds `want`
/// items; panics naming `what` when `timeout` passes first.
pub async fn collect<T, F, Fut>(seen: &mut Vec<T>, want: usize, timeout: Duration, what: &str, mut take: F)
where
    T: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Vec<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        seen.extend(take().await);
        if seen.len() >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {want} {what} within {timeout:?}: {seen:?}",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` every 50 ms until it yields `Some` or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
