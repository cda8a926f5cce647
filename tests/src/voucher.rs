//! Test kit for voucher-events: a sandbox, an in-process worker in its own broker namespace,
//! an observer queue for `voucher.published` / `voucher.event.forwarded`, and dead-letter and
//! metric helpers. Same shape as the contact-sync [`crate::Harness`].

use std::collections::HashMap;
use std::time::Duration;

use mq::WorkerTopology;
use mq::admin::{Admin, DeadLetter};
use prometheus::Registry;
use serde_json::Value;
use settings::MqConfig;
use switchyard_sandbox::{RunningSandbox, SandboxConfig};
use voucher_events::config::{DEFAULT_PREFETCH, ROUTING_KEYS, WORKER};

use crate::{RESULTS, unique_namespace, wait_for, workspace_root};

/// The result types the observer collects.
pub const RESULT_TYPES: &[&str] = &["voucher.published", "voucher.event.forwarded"];

/// Environment for voucher-events pointing at `sandbox`, in `namespace`, with short retry
/// tiers and a Voucherify budget that does not slow tests down (`100/s`).
pub fn voucher_events_env(namespace: &str, sandbox: &RunningSandbox) -> HashMap<String, String> {
    let schema = workspace_root().join("config/voucherify-metadata.toml");
    [
        ("SWITCHYARD_NAMESPACE", namespace.to_owned()),
        ("VOUCHERIFY_BASE_URL", sandbox.voucherify_base_url()),
        (
            "VOUCHERIFY_APP_ID",
            switchyard_sandbox::DEFAULT_VOUCHERIFY_APP_ID.to_owned(),
        ),
        (
            "VOUCHERIFY_APP_TOKEN",
            switchyard_sandbox::DEFAULT_VOUCHERIFY_APP_TOKEN.to_owned(),
        ),
        ("VOUCHERIFY_RATE", "100/s".to_owned()),
        (
            "VOUCHERIFY_INTEGRATION_BASE_URL",
            sandbox.voucherify_integration_base_url(),
        ),
        (
            "VOUCHERIFY_INTEGRATION_APP_ID",
            switchyard_sandbox::DEFAULT_VOUCHERIFY_INTEGRATION_APP_ID.to_owned(),
        ),
        (
            "VOUCHERIFY_INTEGRATION_SECRET_KEY",
            switchyard_sandbox::DEFAULT_VOUCHERIFY_INTEGRATION_SECRET_KEY.to_owned(),
        ),
        (
            "BLOOMREACH_MAIN_HARD_ID",
            switchyard_sandbox::DEFAULT_VOUCHERIFY_HARD_ID.to_owned(),
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
        ("VOUCHERIFY_METADATA_SCHEMA", schema.display().to_string()),
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

/// The topology of voucher-events with the test tiers.
pub fn voucher_events_topology(env: &HashMap<String, String>) -> WorkerTopology {
    mq::WorkerSpec::from_strings(env, WORKER, ROUTING_KEYS, DEFAULT_PREFETCH)
        .map(|s| s.topology)
        .unwrap_or_else(|e| panic!("test worker spec: {e}"))
}

/// A result taken from the observer queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Message type.
    pub kind: String,
    /// AMQP message id.
    pub message_id: String,
    /// Body.
    pub body: Value,
}

/// A running voucher-events with its sandbox, in its own namespace.
#[derive(Debug)]
pub struct VoucherHarness {
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

impl VoucherHarness {
    /// Starts a sandbox and an in-process voucher-events; `overrides` change its environment.
    pub async fn start(prefix: &str, overrides: &[(&str, &str)]) -> Self {
        let harness = Self::prepare(prefix, overrides).await;
        harness.started()
    }

    /// Like [`Self::start`], but the worker is not started yet: publish first, then call
    /// [`Self::start_worker`] to have a backlog waiting.
    pub async fn prepare(prefix: &str, overrides: &[(&str, &str)]) -> Self {
        let namespace = unique_namespace(prefix);
        let sandbox = switchyard_sandbox::spawn(SandboxConfig::for_tests())
            .await
            .unwrap_or_else(|e| panic!("sandbox: {e}"));
        let mut env = voucher_events_env(&namespace, &sandbox);
        for (k, v) in overrides {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let mq_config = MqConfig::from_strings(&env).unwrap_or_else(|e| panic!("{e}"));
        let admin = Admin::connect(&mq_config)
            .await
            .unwrap_or_else(|e| panic!("broker at AMQP_URL: {e}"));
        admin
            .declare(&[voucher_events_topology(&env)])
            .await
            .unwrap_or_else(|e| panic!("declare: {e}"));
        admin
            .declare_observer(RESULTS, RESULT_TYPES)
            .await
            .unwrap_or_else(|e| panic!("observer: {e}"));
        Self {
            namespace,
            sandbox,
            admin,
            env,
            registry: Registry::new(),
            worker: crate::InProcessWorker::default(),
        }
    }

    fn started(mut self) -> Self {
        self.start_worker();
        self
    }

    /// Starts (or restarts) the in-process worker.
    pub fn start_worker(&mut self) {
        let config = voucher_events::Config::from_strings(&self.env).unwrap_or_else(|e| panic!("config: {e}"));
        self.registry = Registry::new();
        self.worker =
            crate::InProcessWorker::spawn(self.registry.clone(), move |registry, health, shutdown| async move {
                voucher_events::run(config, &registry, health, shutdown).await
            });
    }

    /// Stops the in-process worker gracefully and returns its result.
    pub async fn stop_worker(&mut self) -> Option<Result<(), mq::worker::RunError>> {
        self.worker.stop().await
    }

    /// Publishes a JSON body as `kind` with a fresh message id, which it returns.
    pub async fn publish(&self, kind: &str, body: &Value) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.publish_with_id(kind, &id, body).await;
        id
    }

    /// Publishes a JSON body as `kind` with the given message id (a redelivery, when reused).
    pub async fn publish_with_id(&self, kind: &str, id: &str, body: &Value) {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.admin
            .publish(kind, id, None, &bytes)
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
    }

    /// The results collected so far (removed from the observer queue).
    pub async fn take_results(&self) -> Vec<Observed> {
        let queue = self.admin.names().work_queue(RESULTS);
        let messages = self
            .admin
            .drain(&queue, 10_000)
            .await
            .unwrap_or_else(|e| panic!("drain: {e}"));
        messages
            .into_iter()
            .map(|(properties, body)| Observed {
                kind: properties
                    .kind()
                    .as_ref()
                    .map(|k| k.as_str().to_owned())
                    .unwrap_or_default(),
                message_id: properties
                    .message_id()
                    .as_ref()
                    .map(|m| m.as_str().to_owned())
                    .unwrap_or_default(),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            })
            .collect()
    }

    /// Waits until `want` results have arrived in total (accumulating into `seen`).
    pub async fn wait_results(&self, seen: &mut Vec<Observed>, want: usize, timeout: Duration) {
        crate::collect(seen, want, timeout, "results", || self.take_results()).await;
    }

    /// The dead letters of voucher-events (left in place).
    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.admin
            .dead_letters(WORKER, 10_000)
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

    /// Messages waiting in the work queue and its delay tiers.
    pub async fn backlog(&self) -> u32 {
        let topology = voucher_events_topology(&self.env);
        let names = self.admin.names();
        let mut total = self.admin.queue_depth(&names.work_queue(WORKER)).await.unwrap_or(0);
        for tier in &topology.tiers {
            total += self
                .admin
                .queue_depth(&names.tier_queue(WORKER, *tier))
                .await
                .unwrap_or(0);
        }
        total
    }

    /// A counter or gauge value from the worker's registry (sum over matching label sets).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        crate::registry_metric(&self.registry, name, labels)
    }

    /// Stops the worker and the sandbox and deletes the namespace.
    pub async fn finish(mut self) {
        let _stopped = self.stop_worker().await;
        let topology = voucher_events_topology(&self.env);
        let results = self.admin.names().work_queue(RESULTS);
        let _removed = self.admin.remove_namespace(&[topology], &[results]).await;
    }
}
