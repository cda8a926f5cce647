//! [`Rig`]: one row's world: a unique namespace, a sandbox, contact-sync's environment, two
//! admin connections (one publishes, one only reads, so a broker that blocks publishers does
//! not block the harness's reads), the inputs it published and the results it saw.

use std::collections::HashMap;
use std::time::Duration;

use mq::WorkerTopology;
use mq::admin::{Admin, DeadLetter};
use serde_json::{Value, json};
use settings::MqConfig;
use switchyard_sandbox::{RunningSandbox, SandboxConfig};
use tokio::time::Instant;

use super::oracle::{Oracle, Published, Report};
use super::process::WorkerProcess;
use crate::{RESULTS, contact_sync_env, contact_sync_topology, unique_namespace};

/// How long one admin operation may take before the rig treats the broker as unreachable.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(35);

/// One row's namespace, sandbox, worker environment and oracle.
#[derive(Debug)]
pub struct Rig {
    /// The namespace (also in every contact id, so rows never share data).
    pub namespace: String,
    /// The sandbox the worker calls.
    pub sandbox: RunningSandbox,
    /// contact-sync's environment (`AMQP_URL` is the worker's URL).
    pub env: HashMap<String, String>,
    /// What was published.
    pub oracle: Oracle,
    admin_config: MqConfig,
    admin: Option<Admin>,
    reader: Option<Admin>,
    results: Vec<Value>,
    next: usize,
}

impl Rig {
    /// A rig whose harness talks to `broker` (one URL or a comma-separated cluster) and whose
    /// worker gets `worker_url` as `AMQP_URL` (the same broker, or a proxy in front of it).
    /// `overrides` change contact-sync's environment. Nothing is declared yet.
    pub async fn new(prefix: &str, broker: &str, worker_url: &str, overrides: &[(&str, &str)]) -> Self {
        let namespace = unique_namespace(prefix);
        let sandbox = switchyard_sandbox::spawn(SandboxConfig::for_tests())
            .await
            .unwrap_or_else(|e| panic!("sandbox: {e}"));
        let mut env = contact_sync_env(&namespace, &sandbox);
        env.insert("AMQP_URL".to_owned(), worker_url.to_owned());
        for (key, value) in overrides {
            env.insert((*key).to_owned(), (*value).to_owned());
        }
        let admin_env: HashMap<&str, &str> = [("AMQP_URL", broker), ("SWITCHYARD_NAMESPACE", namespace.as_str())]
            .into_iter()
            .collect();
        let admin_config = MqConfig::from_strings(&admin_env).unwrap_or_else(|e| panic!("{e}"));
        let destinations: Vec<String> = env
            .get("CONTACT_SYNC_DESTINATIONS")
            .map_or("spotler,ecomail", String::as_str)
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned)
            .collect();
        let destinations: Vec<&str> = destinations.iter().map(String::as_str).collect();
        let list = env.get("ECOMAIL_LIST_ID").and_then(|l| l.parse().ok()).unwrap_or(7);
        Self {
            namespace,
            sandbox,
            env,
            oracle: Oracle::new(&destinations, list),
            admin_config,
            admin: None,
            reader: None,
            results: Vec::new(),
            next: 0,
        }
    }

    /// [`Rig::new`], then declares contact-sync's topology and the results observer.
    pub async fn start(prefix: &str, broker: &str, worker_url: &str, overrides: &[(&str, &str)]) -> Self {
        let mut rig = Self::new(prefix, broker, worker_url, overrides).await;
        rig.declare().await;
        rig
    }

    /// Declares contact-sync's topology and the observer queue for `contact.synced`.
    pub async fn declare(&mut self) {
        let topology = self.topology();
        let admin = self.admin().await;
        // When the exchange already exists (a re-declare after a fault), bind the observer first:
        // otherwise a result published between the two declarations would be kept by the
        // alternate exchange's queue, where the oracle does not look. On a fresh namespace this
        // fails (no exchange yet) and the observer is bound below.
        let _observer_first = admin.declare_observer(RESULTS, &["contact.synced"]).await;
        admin
            .declare(&[topology])
            .await
            .unwrap_or_else(|e| panic!("declare: {e}"));
        admin
            .declare_observer(RESULTS, &["contact.synced"])
            .await
            .unwrap_or_else(|e| panic!("observer: {e}"));
    }

    /// contact-sync's topology in this namespace.
    pub fn topology(&self) -> WorkerTopology {
        contact_sync_topology(&self.env)
    }

    /// The full name of `queue` in this namespace.
    pub fn queue(&self, queue: &str) -> String {
        mq::Names::new(&self.namespace).work_queue(queue)
    }

    async fn connect(&self) -> Admin {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match tokio::time::timeout(ADMIN_TIMEOUT, Admin::connect(&self.admin_config)).await {
                Ok(Ok(admin)) => return admin,
                Ok(Err(error)) if Instant::now() >= deadline => panic!("broker unreachable: {error}"),
                Err(_) if Instant::now() >= deadline => panic!("broker unreachable: connect timed out"),
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// The publishing admin connection (reconnected after [`Rig::reconnect`]).
    pub async fn admin(&mut self) -> &Admin {
        if self.admin.is_none() {
            self.admin = Some(self.connect().await);
        }
        self.admin.as_ref().unwrap_or_else(|| unreachable!("connected above"))
    }

    async fn reader(&mut self) -> &Admin {
        if self.reader.is_none() {
            self.reader = Some(self.connect().await);
        }
        self.reader.as_ref().unwrap_or_else(|| unreachable!("connected above"))
    }

    /// Forgets both admin connections; the next use connects again (after a broker restart).
    pub fn reconnect(&mut self) {
        self.admin = None;
        self.reader = None;
    }

    /// Starts contact-sync (the real binary) with this rig's environment plus `extra`.
    pub fn spawn_worker(&self, extra: &[(&str, &str)], log_level: &str) -> WorkerProcess {
        let mut env = self.env.clone();
        for (key, value) in extra {
            env.insert((*key).to_owned(), (*value).to_owned());
        }
        WorkerProcess::spawn("contact-sync", &env, log_level)
    }

    /// The next contact: a fresh id and address in this namespace.
    pub fn next_contact(&mut self) -> (Published, Value) {
        self.next += 1;
        let contact_id = format!("{}-{}", self.namespace, self.next);
        let email = format!("{contact_id}@example.com");
        let body = json!({
            "contact_id": contact_id,
            "email": email,
            "first_name": "Chaos",
            "changed_at": "2026-11-20T10:00:00Z"
        });
        let message_id = uuid::Uuid::new_v4().to_string();
        (
            Published {
                message_id,
                contact_id,
                email,
            },
            body,
        )
    }

    /// Publishes one `contact.changed`; returns its id when the broker confirmed it, `None`
    /// when the outcome is unknown (recorded as indeterminate; the admin reconnects next time).
    pub async fn publish_one(&mut self) -> Option<String> {
        let (published, body) = self.next_contact();
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let id = published.message_id.clone();
        let admin = self.admin().await;
        let sent = tokio::time::timeout(ADMIN_TIMEOUT, admin.publish("contact.changed", &id, None, &bytes)).await;
        if matches!(sent, Ok(Ok(()))) {
            self.oracle.confirmed.push(published);
            Some(id)
        } else {
            self.oracle.indeterminate.push(published);
            self.admin = None;
            None
        }
    }

    /// Publishes `body` as `kind` for `published` (its id and contact); panics unless the broker
    /// confirms it.
    pub async fn publish_as(&mut self, kind: &str, published: Published, body: &Value) {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let admin = self.admin().await;
        admin
            .publish(kind, &published.message_id, None, &bytes)
            .await
            .unwrap_or_else(|e| panic!("publish {kind}: {e}"));
        self.oracle.confirmed.push(published);
    }

    /// Publishes `n` contacts; panics unless every one is confirmed.
    pub async fn publish_contacts(&mut self, n: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            match self.publish_one().await {
                Some(id) => ids.push(id),
                None => panic!("publish not confirmed on a healthy broker"),
            }
        }
        ids
    }

    /// Publishes raw bytes as a `contact.changed` (for invalid input), with `message_id` or
    /// without one.
    pub async fn publish_raw(&mut self, message_id: Option<&str>, body: &[u8]) {
        let properties =
            mq::publisher::json_properties(message_id.unwrap_or(""), "contact.changed", None, Default::default());
        let properties = match message_id {
            Some(_) => properties,
            None => properties.with_message_id("".into()),
        };
        let admin = self.admin().await;
        admin
            .publish_raw("contact.changed", properties, body)
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
    }

    /// Moves the results waiting in the observer queue into the rig; returns how many came.
    pub async fn take_results(&mut self) -> usize {
        let queue = self.queue(RESULTS);
        let reader = self.reader().await;
        match tokio::time::timeout(ADMIN_TIMEOUT, reader.drain(&queue, 100_000)).await {
            Ok(Ok(messages)) => {
                let before = self.results.len();
                self.results.extend(
                    messages
                        .into_iter()
                        .filter_map(|(_, body)| serde_json::from_slice::<Value>(&body).ok()),
                );
                self.results.len() - before
            }
            _ => {
                self.reader = None;
                0
            }
        }
    }

    /// The results seen so far.
    pub fn results(&self) -> &[Value] {
        &self.results
    }

    /// contact-sync's dead letters (left in place); empty when the broker is unreachable.
    pub async fn dead_letters(&mut self) -> Vec<DeadLetter> {
        let reader = self.reader().await;
        match tokio::time::timeout(
            ADMIN_TIMEOUT,
            reader.dead_letters(contact_sync::config::WORKER, 100_000),
        )
        .await
        {
            Ok(Ok(letters)) => letters,
            _ => {
                self.reader = None;
                Vec::new()
            }
        }
    }

    /// Waits up to `timeout` until there are at least `n` dead letters.
    pub async fn wait_dead_letters(&mut self, n: usize, timeout: Duration) -> Option<Vec<DeadLetter>> {
        let deadline = Instant::now() + timeout;
        loop {
            let letters = self.dead_letters().await;
            if letters.len() >= n {
                return Some(letters);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Messages ready in `queue` (name without the namespace).
    pub async fn depth(&mut self, queue: &str) -> u32 {
        let name = self.queue(queue);
        let reader = self.reader().await;
        reader.queue_depth(&name).await.unwrap_or(0)
    }

    /// The oracle's counts now.
    pub async fn report(&mut self) -> Report {
        self.take_results().await;
        let dead = self.dead_letters().await;
        self.oracle.evaluate(&self.results, &dead, &self.sandbox.state)
    }

    /// Waits up to `timeout` until nothing confirmed is unaccounted for, then a quiet second
    /// more (late duplicates show up), and returns the final counts.
    pub async fn settle(&mut self, timeout: Duration) -> Report {
        let deadline = Instant::now() + timeout;
        loop {
            let report = self.report().await;
            if report.lost == 0 || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.report().await
    }

    /// Deletes the namespace (best effort: a private node may already be gone).
    pub async fn finish(mut self) {
        let topology = self.topology();
        let extra = vec![self.queue(RESULTS)];
        if let Some(admin) = self.admin.take() {
            let _removed =
                tokio::time::timeout(Duration::from_secs(10), admin.remove_namespace(&[topology], &extra)).await;
            let _closed = tokio::time::timeout(Duration::from_secs(5), admin.close()).await;
        } else if let Ok(Ok(admin)) =
            tokio::time::timeout(Duration::from_secs(10), Admin::connect(&self.admin_config)).await
        {
            let _removed =
                tokio::time::timeout(Duration::from_secs(10), admin.remove_namespace(&[topology], &extra)).await;
            let _closed = tokio::time::timeout(Duration::from_secs(5), admin.close()).await;
        }
        if let Some(reader) = self.reader.take() {
            let _closed = tokio::time::timeout(Duration::from_secs(5), reader.close()).await;
        }
    }
}
