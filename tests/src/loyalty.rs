//! Harness for loyalty-events: a sandbox, an in-process worker in its own namespace, an
//! observer queue for `loyalty.notified` and `loyalty.points.adjust.requested`, and helpers to
//! seed Ecomail subscribers and read what reached the sandbox.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use mq::WorkerTopology;
use mq::admin::{Admin, DeadLetter};
use prometheus::Registry;
use settings::MqConfig;
use switchyard_sandbox::{EcomailEvent, RunningSandbox, SandboxConfig};

use crate::{unique_namespace, wait_for};

/// The Ecomail list the tests use.
pub const LIST_ID: u64 = 7;
/// The observer queue for loyalty results.
pub const LOYALTY_RESULTS: &str = "test.loyalty-results";

/// Environment for loyalty-events pointing at `sandbox`, in `namespace`, with short retry tiers.
pub fn loyalty_env(namespace: &str, sandbox: &RunningSandbox) -> HashMap<String, String> {
    [
        ("SWITCHYARD_NAMESPACE", namespace.to_owned()),
        ("ECOMAIL_BASE_URL", sandbox.ecomail_base_url()),
        (
            "ECOMAIL_API_KEY",
            switchyard_sandbox::DEFAULT_ECOMAIL_API_KEY.to_owned(),
        ),
        ("ECOMAIL_LIST_ID", LIST_ID.to_string()),
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

/// The topology of loyalty-events with the test tiers.
pub fn loyalty_topology(env: &HashMap<String, String>) -> WorkerTopology {
    mq::WorkerSpec::from_strings(
        env,
        loyalty_events::config::WORKER,
        loyalty_events::config::ROUTING_KEYS,
        16,
    )
    .map(|s| s.topology)
    .unwrap_or_else(|e| panic!("test worker spec: {e}"))
}

/// A result seen on the observer queue.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Message type (routing key).
    pub kind: String,
    /// AMQP message id.
    pub message_id: String,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// A running loyalty-events with its sandbox, in its own namespace.
#[derive(Debug)]
pub struct LoyaltyHarness {
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

impl LoyaltyHarness {
    /// Starts a sandbox and an in-process loyalty-events; `overrides` change its environment.
    pub async fn start(prefix: &str, overrides: &[(&str, &str)]) -> Self {
        let namespace = unique_namespace(prefix);
        let sandbox = switchyard_sandbox::spawn(SandboxConfig::for_tests())
            .await
            .unwrap_or_else(|e| panic!("sandbox: {e}"));
        let mut env = loyalty_env(&namespace, &sandbox);
        for (k, v) in overrides {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let mq_config = MqConfig::from_strings(&env).unwrap_or_else(|e| panic!("{e}"));
        let admin = Admin::connect(&mq_config)
            .await
            .unwrap_or_else(|e| panic!("broker at AMQP_URL: {e}"));
        admin
            .declare(&[loyalty_topology(&env)])
            .await
            .unwrap_or_else(|e| panic!("declare: {e}"));
        admin
            .declare_observer(
                LOYALTY_RESULTS,
                &["loyalty.notified", "loyalty.points.adjust.requested"],
            )
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
        let config = loyalty_events::Config::from_strings(&self.env).unwrap_or_else(|e| panic!("config: {e}"));
        self.registry = Registry::new();
        self.worker =
            crate::InProcessWorker::spawn(self.registry.clone(), move |registry, health, shutdown| async move {
                loyalty_events::run(config, &registry, health, shutdown).await
            });
    }

    /// Stops the in-process worker gracefully and returns its result.
    pub async fn stop_worker(&mut self) -> Option<Result<(), mq::worker::RunError>> {
        self.worker.stop().await
    }

    /// Adds `email` to the test list in the sandbox over HTTP, as contact-sync would. Plain
    /// HTTP/1.1 on a blocking socket: the sandbox is on loopback, and a TLS-capable client would
    /// need a process-wide crypto provider installed first.
    pub async fn seed_subscriber(&self, email: &str) {
        let body = serde_json::to_vec(&serde_json::json!({
            "subscriber_data": {"email": email},
            "update_existing": true,
            "skip_confirmation": true,
        }))
        .unwrap_or_default();
        let addr = self.sandbox.addr;
        let prefix = self
            .sandbox
            .ecomail_base_url()
            .trim_start_matches(&format!("http://{addr}"))
            .to_owned();
        let head = format!(
            "POST {prefix}/lists/{LIST_ID}/subscribe HTTP/1.1\r\nHost: {addr}\r\nkey: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            switchyard_sandbox::DEFAULT_ECOMAIL_API_KEY,
            body.len()
        );
        let answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect(addr)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(head.as_bytes())?;
            stream.write_all(&body)?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer)
        })
        .await
        .unwrap_or_else(|e| panic!("seed subscriber: {e}"))
        .unwrap_or_else(|e| panic!("seed subscriber: {e}"));
        assert!(answer.starts_with("HTTP/1.1 200"), "seed subscriber: {answer}");
    }

    /// Publishes `body` as `kind` with the given message id (to simulate redeliveries).
    pub async fn publish_with_id(&self, kind: &str, id: &str, body: &serde_json::Value) {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.admin
            .publish(kind, id, None, &bytes)
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
    }

    /// Publishes `body` as `kind` with a fresh message id, which it returns.
    pub async fn publish(&self, kind: &str, body: &serde_json::Value) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.publish_with_id(kind, &id, body).await;
        id
    }

    /// The results collected so far (removed from the observer queue).
    pub async fn take_results(&self) -> Vec<Observed> {
        let queue = self.admin.names().work_queue(LOYALTY_RESULTS);
        let messages = self
            .admin
            .drain(&queue, 10_000)
            .await
            .unwrap_or_else(|e| panic!("drain: {e}"));
        messages
            .into_iter()
            .filter_map(|(properties, body)| {
                Some(Observed {
                    kind: properties.kind().as_ref().map(ToString::to_string).unwrap_or_default(),
                    message_id: properties
                        .message_id()
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    body: serde_json::from_slice(&body).ok()?,
                })
            })
            .collect()
    }

    /// Waits until `want` results have arrived in total (accumulating into `seen`).
    pub async fn wait_results(&self, seen: &mut Vec<Observed>, want: usize, timeout: Duration) {
        crate::collect(seen, want, timeout, "results", || self.take_results()).await;
    }

    /// Waits until the work queue is empty and nothing more arrives for a moment, then returns
    /// every result that came (so a test can assert that no more than expected appeared).
    pub async fn settle(&self, seen: &mut Vec<Observed>) {
        let queue = loyalty_events::config::WORKER;
        let mut quiet = 0;
        while quiet < 6 {
            let new = self.take_results().await;
            let idle = new.is_empty() && self.depth(queue).await == 0;
            seen.extend(new);
            quiet = if idle { quiet + 1 } else { 0 };
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ecomail tracker events recorded by the sandbox for `email`.
    pub fn events_for(&self, email: &str) -> Vec<EcomailEvent> {
        self.sandbox
            .state
            .ecomail_events()
            .into_iter()
            .filter(|e| e.email.eq_ignore_ascii_case(email))
            .collect()
    }

    /// Custom fields of `email` in the test list.
    pub fn custom_fields(&self, email: &str) -> serde_json::Map<String, serde_json::Value> {
        self.sandbox
            .state
            .ecomail_subscriber(LIST_ID, email)
            .map(|s| s.custom_fields)
            .unwrap_or_default()
    }

    /// The dead letters of loyalty-events (left in place).
    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.admin
            .dead_letters(loyalty_events::config::WORKER, 10_000)
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

    /// Stops the worker and the sandbox and deletes the namespace.
    pub async fn finish(mut self) {
        let _stopped = self.stop_worker().await;
        let topology = loyalty_topology(&self.env);
        let results = self.admin.names().work_queue(LOYALTY_RESULTS);
        let _removed = self.admin.remove_namespace(&[topology], &[results]).await;
    }
}
