//! What every scenario shares: a throwaway broker namespace (declared up front, deleted
//! afterwards), the in-process sandbox, worker environments, message bodies, and the
//! "publish a backlog, start the worker, time the results" run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use lapin::Connection;
use mq::WorkerTopology;
use mq::admin::Admin;
use settings::{MqConfig, Secret};
use switchyard_sandbox::{Provider, RunningSandbox};
use tokio::time::Instant;

use crate::amqp::{self, Message, Observer};
use crate::config::Config;
use crate::process::{self, Rss, WorkerProcess};
use crate::series;

/// The observer queue results are collected in (under the namespace).
pub(crate) const RESULTS: &str = "bench.results";

/// Everything a scenario needs: the settings, the sandbox and where outputs go.
#[derive(Debug)]
pub(crate) struct Bench {
    /// Settings.
    pub(crate) config: Config,
    /// The provider emulator, in this process.
    pub(crate) sandbox: RunningSandbox,
}

impl Bench {
    /// Where worker logs go.
    pub(crate) fn log_path(&self, name: &str) -> PathBuf {
        self.config.out.join("logs").join(format!("{name}.log"))
    }

    /// A release worker binary.
    pub(crate) fn binary(&self, name: &str) -> PathBuf {
        self.config.bin_dir.join(name)
    }
}

/// A broker namespace of one scenario, with the bench's own connections.
#[derive(Debug)]
pub(crate) struct Namespace {
    /// `SWITCHYARD_NAMESPACE` of the scenario.
    pub(crate) name: String,
    /// Declaration, inspection and clean-up.
    pub(crate) admin: Admin,
    /// The bench's publishing connection.
    pub(crate) publish: Connection,
    /// The observer's connection (its own, so results never queue behind publishes).
    pub(crate) observe: Connection,
    topologies: Vec<WorkerTopology>,
    extra_queues: Vec<String>,
}

impl Namespace {
    /// A fresh namespace `bench-<scenario>-<random>` with `topologies` declared.
    pub(crate) async fn create(config: &Config, scenario: &str, topologies: Vec<WorkerTopology>) -> Result<Self> {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("bench-{scenario}-{}", suffix.get(..8).unwrap_or(&suffix));
        let mq = MqConfig {
            urls: vec![Secret::from(config.amqp_url().to_owned())],
            namespace: name.clone(),
        };
        let admin = Admin::connect(&mq).await.context("the bench's admin connection")?;
        admin
            .declare(&topologies)
            .await
            .context("declaring the scenario's topology")?;
        let publish = amqp::connect(config.amqp_url(), "bench publish").await?;
        let observe = amqp::connect(config.amqp_url(), "bench observe").await?;
        Ok(Self {
            name,
            admin,
            publish,
            observe,
            topologies,
            extra_queues: Vec::new(),
        })
    }

    /// The main exchange.
    pub(crate) fn exchange(&self) -> String {
        self.admin.names().exchange()
    }

    /// A worker's work queue.
    pub(crate) fn work_queue(&self, worker: &str) -> String {
        self.admin.names().work_queue(worker)
    }

    /// Declares the results observer queue bound to `routing_keys` and starts observing it.
    pub(crate) async fn observer(&mut self, routing_keys: &[&str]) -> Result<Observer> {
        let queue = self.admin.declare_observer(RESULTS, routing_keys).await?;
        self.extra_queues.push(queue.clone());
        Observer::start(&self.observe, &queue).await
    }

    /// Publishes `messages` to the main exchange with confirms; returns the confirm instants.
    pub(crate) async fn publish_backlog(&self, messages: impl IntoIterator<Item = Message>) -> Result<Vec<Instant>> {
        let channel = amqp::confirm_channel(&self.publish).await?;
        let confirmed = amqp::publish_all(&channel, &self.exchange(), messages).await?;
        channel.close(200, "published".into()).await?;
        Ok(confirmed)
    }

    /// Messages in a worker's dead-letter queue.
    pub(crate) async fn dead_letters(&self, worker: &str) -> Result<u32> {
        Ok(self.admin.queue_depth(&self.admin.names().dead_queue(worker)).await?)
    }

    /// Deletes every queue and exchange of the namespace.
    pub(crate) async fn remove(self) -> Result<()> {
        let _closed = self.publish.close(200, "bench done".into()).await;
        let _closed = self.observe.close(200, "bench done".into()).await;
        let removed = self.admin.remove_namespace(&self.topologies, &self.extra_queues).await;
        self.admin.close().await;
        removed.with_context(|| format!("cannot remove namespace {}", self.name))
    }
}

/// contact-sync's queue name. The bench drives the workers as black boxes (their release
/// binaries), so it names their queues and routing keys itself instead of linking their code;
/// a drifted name fails loudly (no results, or a topology mismatch at the worker's start).
pub(crate) const CONTACT_SYNC: &str = "contact-sync";
/// contact-sync's result type.
pub(crate) const CONTACT_SYNCED: &str = "contact.synced";
/// The message types contact-sync consumes that the bench declares for it.
pub(crate) const CONTACT_SYNC_KEYS: &[&str] = &["contact.changed", "contact.deleted", "contact.deactivated"];

/// A worker's topology with the default tiers and delivery limit, as the worker declares it.
pub(crate) fn topology(worker: &str, routing_keys: &[&str]) -> Result<WorkerTopology> {
    let defaults: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    Ok(mq::WorkerSpec::from_strings(&defaults, worker, routing_keys, 1)?.topology)
}

/// contact-sync's topology.
pub(crate) fn contact_sync_topology() -> Result<WorkerTopology> {
    topology(CONTACT_SYNC, CONTACT_SYNC_KEYS)
}

/// How contact-sync runs in a scenario.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ContactSyncRun {
    /// `CONTACT_SYNC_DESTINATIONS`.
    pub(crate) destinations: &'static str,
    /// `SWITCHYARD_PREFETCH`.
    pub(crate) prefetch: u16,
    /// `SPOTLER_CONCURRENCY` and `ECOMAIL_CONCURRENCY`.
    pub(crate) concurrency: u32,
    /// `CONTACT_SYNC_BULK`: batch contacts into bulk calls (off: one call per message and
    /// destination, the fair comparison with the relay).
    pub(crate) bulk: bool,
}

/// The throughput configuration: prefetch 200, provider concurrency and rates out of the way.
pub(crate) const FAST: ContactSyncRun = ContactSyncRun {
    destinations: "spotler",
    prefetch: 200,
    concurrency: 200,
    bulk: false,
};

/// contact-sync's environment in `namespace`, pointed at the sandbox, with no effective rate
/// limit (the sandbox has none either in these scenarios). Logging is pinned to the documented
/// production default (`info`, JSON), whatever the caller's shell has set.
pub(crate) fn contact_sync_env(bench: &Bench, namespace: &str, run: ContactSyncRun) -> BTreeMap<String, String> {
    let mapping = bench.config.workspace.join("config/field-mapping.toml");
    let mut env = with_providers(bench, namespace, &[Provider::Spotler, Provider::Ecomail]);
    env.extend(
        [
            ("SWITCHYARD_PREFETCH", run.prefetch.to_string()),
            ("CONTACT_SYNC_DESTINATIONS", run.destinations.to_owned()),
            ("CONTACT_SYNC_MAPPING", mapping.display().to_string()),
            ("CONTACT_SYNC_BULK", run.bulk.to_string()),
            ("ECOMAIL_LIST_ID", "1".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    unlimited(&mut env, "SPOTLER", run.concurrency);
    unlimited(&mut env, "ECOMAIL", run.concurrency);
    env
}

/// [`base_env`] plus what points the worker at the sandbox's `providers`.
pub(crate) fn with_providers(bench: &Bench, namespace: &str, providers: &[Provider]) -> BTreeMap<String, String> {
    let mut env = base_env(bench, namespace);
    for provider in providers {
        env.extend(
            bench
                .sandbox
                .worker_env(*provider)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v)),
        );
    }
    env
}

/// Takes the worker's own limiter for `provider` (the variables' prefix, e.g. `SPOTLER`) out
/// of the way, with `concurrency` calls in flight.
pub(crate) fn unlimited(env: &mut BTreeMap<String, String>, provider: &str, concurrency: u32) {
    env.insert(format!("{provider}_RATE"), "1000000/s".to_owned());
    env.insert(format!("{provider}_BURST"), "1000".to_owned());
    env.insert(format!("{provider}_CONCURRENCY"), concurrency.to_string());
}

/// What every worker runs with in a scenario: the broker and namespace, metrics on a free
/// port, and the documented production log settings (`info`, JSON).
pub(crate) fn base_env(bench: &Bench, namespace: &str) -> BTreeMap<String, String> {
    [
        ("AMQP_URL", bench.config.amqp_url().to_owned()),
        ("SWITCHYARD_NAMESPACE", namespace.to_owned()),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A `contact.changed` for a distinct contact (one provider call per destination: no order,
/// so no read before the write).
pub(crate) fn contact_changed(prefix: &str, index: usize) -> Message {
    let body = serde_json::json!({
        "contact_id": format!("{prefix}-{index}"),
        "email": format!("{prefix}.{index}@example.com"),
        "first_name": "Jana",
        "last_name": "Nováková",
        "city": "Brno",
        "country": "CZ",
        "language": "cs - eshop-cz - b2c",
        "permissions": { "newsletter": true, "offers": false },
        "attributes": { "loyalty_tier": "gold" },
        "changed_at": "2026-11-20T10:00:00Z",
    });
    Message {
        id: format!("{prefix}-{index}"),
        kind: "contact.changed",
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// What a drained backlog showed.
#[derive(Debug, Clone)]
pub(crate) struct Drained {
    /// Steady-state input messages per second.
    pub(crate) rate: f64,
    /// Input messages per second over time since the worker started.
    pub(crate) points: Vec<(f64, f64)>,
    /// The worker's memory once the backlog was drained (`peak_kib` covers the whole run).
    pub(crate) rss: Rss,
    /// Dead letters left behind (should be 0).
    pub(crate) dead_letters: u32,
    /// The worker's CPU time per input message, in µs (robust to a busy machine, unlike rates).
    pub(crate) cpu_us_per_message: f64,
    /// The part of `cpu_us_per_message` spent in the kernel (system calls), in µs.
    pub(crate) system_us_per_message: f64,
    /// The worker's context switches per input message (start-up included).
    pub(crate) switches_per_message: f64,
    /// The local broker's CPU time per input message, in µs (`None` when it runs elsewhere).
    pub(crate) broker_us_per_message: Option<f64>,
    /// The bench process's CPU time per input message, in µs: mostly the sandbox answering
    /// the provider calls, plus the observer counting results.
    pub(crate) bench_us_per_message: Option<f64>,
}

/// The worker a backlog is drained by, driven as a black box: its release binary, its
/// environment, and the results it publishes per input message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Drive<'a> {
    /// Binary and queue name.
    pub(crate) worker: &'a str,
    /// The environment it runs with.
    pub(crate) env: &'a BTreeMap<String, String>,
    /// Routing keys of its results (the observer queue is bound to them).
    pub(crate) results: &'a [&'a str],
    /// Results per input message (one per destination, for contact-sync).
    pub(crate) results_per_message: usize,
}

/// The longest a scenario waits for the broker to settle before it starts timing.
pub(crate) const SETTLE_LIMIT: Duration = Duration::from_secs(20);

/// Publishes `backlog` messages made by `make`, then starts the worker and times the
/// `results_per_message × backlog` results until all arrived.
pub(crate) async fn drain_backlog(
    bench: &Bench,
    namespace: &mut Namespace,
    label: &str,
    drive: Drive<'_>,
    backlog: usize,
    make: impl Fn(usize) -> Message,
) -> Result<Drained> {
    let observer = namespace.observer(drive.results).await?;
    namespace.publish_backlog((0..backlog).map(make)).await?;
    let settled = process::broker_settled(SETTLE_LIMIT).await;
    println!(
        "  {label}: {backlog} messages queued (broker settled after {:.1} s); starting {}",
        settled.as_secs_f64(),
        drive.worker
    );
    let started = Instant::now();
    let broker_before = process::broker_cpu_seconds();
    let bench_before = process::own_cpu_seconds();
    let mut worker = WorkerProcess::start(label, &bench.binary(drive.worker), drive.env, &bench.log_path(label))?;
    let want = backlog * drive.results_per_message;
    let timeout = Duration::from_secs(120) + Duration::from_secs_f64(want as f64 / 500.0);
    let complete = observer.wait_for(want, timeout).await;
    worker.check_alive()?;
    let rss = worker.rss()?;
    let cpu = worker.cpu_times()?;
    let switches = worker.context_switches()?;
    let broker_seconds = process::broker_cpu_seconds()
        .zip(broker_before)
        .map(|(after, before)| after - before);
    let bench_seconds = process::own_cpu_seconds()
        .zip(bench_before)
        .map(|(after, before)| after - before);
    worker.stop(Duration::from_secs(20)).await?;
    let seen = observer.take();
    observer.stop().await;
    if !complete {
        bail!(
            "{label}: only {} of {want} results arrived; see {}",
            seen.len(),
            bench.log_path(label).display()
        );
    }
    let dead_letters = namespace.dead_letters(drive.worker).await?;
    let mut arrivals: Vec<Instant> = seen.iter().map(|s| s.at).collect();
    arrivals.sort_unstable();
    let per = drive.results_per_message as f64;
    let rate = series::steady_rate(&arrivals).context("too few results to time")? / per;
    Ok(Drained {
        rate,
        points: series::over_time(started, &arrivals, per),
        rss,
        dead_letters,
        cpu_us_per_message: (cpu.user + cpu.system) * 1e6 / backlog as f64,
        system_us_per_message: cpu.system * 1e6 / backlog as f64,
        switches_per_message: switches as f64 / backlog as f64,
        broker_us_per_message: broker_seconds.map(|s| s * 1e6 / backlog as f64),
        bench_us_per_message: bench_seconds.map(|s| s * 1e6 / backlog as f64),
    })
}
