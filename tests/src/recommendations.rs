//! Harness for the recommendations worker: a sandbox (Froomle), the worker in-process in its
//! own namespace, an observer queue for `recommendation.ready`, and helpers to publish and
//! collect results by correlation id.

use std::collections::HashMap;
use std::time::Duration;

use mq::WorkerTopology;
use mq::admin::{Admin, DeadLetter};
use prometheus::Registry;
use serde_json::Value;
use settings::MqConfig;
use switchyard_sandbox::{RunningSandbox, SandboxConfig};

use crate::{unique_namespace, wait_for};

/// The observer queue that collects `recommendation.ready` in tests.
pub const READY: &str = "test.ready";

/// Environment for recommendations pointing at `sandbox`, in `namespace`, with short retry
/// tiers.
pub fn recommendations_env(namespace: &str, sandbox: &RunningSandbox) -> HashMap<String, String> {
    [
        ("SWITCHYARD_NAMESPACE", namespace.to_owned()),
        ("FROOMLE_BASE_URL", sandbox.froomle_base_url()),
        (
            "FROOMLE_CLIENT_ID",
            switchyard_sandbox::DEFAULT_FROOMLE_CLIENT_ID.to_owned(),
        ),
        (
            "FROOMLE_CLIENT_SECRET",
            switchyard_sandbox::DEFAULT_FROOMLE_CLIENT_SECRET.to_owned(),
        ),
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

/// The topology of recommendations with the test tiers.
pub fn recommendations_topology(env: &HashMap<String, String>) -> WorkerTopology {
    mq::WorkerSpec::from_strings(
        env,
        recommendations::config::WORKER,
        recommendations::config::ROUTING_KEYS,
        16,
    )
    .map(|spec| spec.topology)
    .unwrap_or_else(|e| panic!("test worker spec: {e}"))
}

/// A `recommendation.ready` as observed: its correlation id, message id and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    /// AMQP correlation id.
    pub correlation_id: Option<String>,
    /// AMQP message id.
    pub message_id: Option<String>,
    /// The body.
    pub body: Value,
}

/// A running recommendations worker with its sandbox, in its own namespace.
#[derive(Debug)]
pub struct RecommendationsHarness {
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

impl RecommendationsHarness {
    /// Starts a sandbox and an in-process recommendations worker; `overrides` change its
    /// environment.
    pub async fn start(prefix: &str, overrides: &[(&str, &str)]) -> Self {
        let namespace = unique_namespace(prefix);
        let sandbox = switchyard_sandbox::spawn(SandboxConfig::for_tests())
            .await
            .unwrap_or_else(|e| panic!("sandbox: {e}"));
        let mut env = recommendations_env(&namespace, &sandbox);
        for (k, v) in overrides {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let mq_config = MqConfig::from_strings(&env).unwrap_or_else(|e| panic!("{e}"));
        let admin = Admin::connect(&mq_config)
            .await
            .unwrap_or_else(|e| panic!("broker at AMQP_URL: {e}"));
        admin
            .declare(&[recommendations_topology(&env)])
            .await
            .unwrap_or_else(|e| panic!("declare: {e}"));
        admin
            .declare_observer(READY, &["recommendation.ready"])
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
        let config = recommendations::Config::from_strings(&self.env).unwrap_or_else(|e| panic!("config: {e}"));
        self.registry = Registry::new();
        self.worker =
            crate::InProcessWorker::spawn(self.registry.clone(), move |registry, health, shutdown| async move {
                recommendations::run(config, &registry, health, shutdown).await
            });
    }

    /// Stops the in-process worker gracefully and returns its result.
    pub async fn stop_worker(&mut self) -> Option<Result<(), mq::worker::RunError>> {
        self.worker.stop().await
    }

    /// Publishes `body` as `kind` with the given message id and correlation id.
    pub async fn publish_as(&self, kind: &str, message_id: &str, correlation_id: Option<&str>, body: &Value) {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.admin
            .publish(kind, message_id, correlation_id, &bytes)
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
    }

    /// Publishes `body` as `kind` with a fresh message id, which it returns.
    pub async fn publish(&self, kind: &str, correlation_id: Option<&str>, body: &Value) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.publish_as(kind, &id, correlation_id, body).await;
        id
    }

    /// The `recommendation.ready` results collected so far (removed from the observer queue).
    pub async fn take_ready(&self) -> Vec<Ready> {
        let queue = self.admin.names().work_queue(READY);
        let messages = self
            .admin
            .drain(&queue, 10_000)
            .await
            .unwrap_or_else(|e| panic!("drain: {e}"));
        messages
            .into_iter()
            .map(|(properties, body)| Ready {
                correlation_id: properties.correlation_id().as_ref().map(|c| c.as_str().to_owned()),
                message_id: properties.message_id().as_ref().map(|m| m.as_str().to_owned()),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            })
            .collect()
    }

    /// Waits until `want` results have arrived in total (accumulating into `seen`).
    pub async fn wait_ready(&self, seen: &mut Vec<Ready>, want: usize, timeout: Duration) {
        crate::collect(seen, want, timeout, "recommendation.ready", || self.take_ready()).await;
    }

    /// The dead letters of recommendations (left in place).
    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.admin
            .dead_letters(recommendations::config::WORKER, 10_000)
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

    /// Messages waiting in the worker's queue (ready, not unacked).
    pub async fn work_depth(&self) -> u32 {
        self.admin
            .queue_depth(&self.admin.names().work_queue(recommendations::config::WORKER))
            .await
            .unwrap_or(0)
    }

    /// A counter value from the worker's registry (sum over matching label sets).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        crate::registry_metric(&self.registry, name, labels)
    }

    /// Stops the worker and the sandbox and deletes the namespace, plus `extra_queues` (full
    /// names) a test created.
    pub async fn finish(mut self, extra_queues: &[String]) {
        let _stopped = self.stop_worker().await;
        let topology = recommendations_topology(&self.env);
        let mut queues = vec![self.admin.names().work_queue(READY)];
        queues.extend(extra_queues.iter().cloned());
        let _removed = self.admin.remove_namespace(&[topology], &queues).await;
    }
}
