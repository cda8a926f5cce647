//! Operations artifacts checked against the code and against real tools: the container and
//! compose files, the Kubernetes manifests (kubernetes-validate), the RabbitMQ definitions, the
//! Prometheus rules (promtool), every binary's live `/metrics` (promtool), a real Prometheus
//! server scraping a worker, the Grafana dashboard's metric names, the AsyncAPI document, and
//! the CLI's help texts and `dlq list --since/--until`.
//!
//! External tools come from `scripts/setup.sh`: `promtool` and `prometheus` (Debian package
//! `prometheus`), PyYAML (`python3-yaml`, used to read YAML), `kubernetes-validate` (PyPI).
//! Binaries come from `cargo build --workspace --bins` (which `make test` runs first). Each test
//! that starts processes uses its own namespace and free ports and stops what it started.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use integration_tests::{Harness, binary, unique_namespace, wait_for, workspace_root};
use mq::admin::Admin;
use mq::{Names, WorkerSpec, WorkerTopology};
use serde_json::{Value, json};
use settings::MqConfig;
use switchyard_sandbox::Provider;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Every queue-consuming worker crate with its queue name and routing keys. A worker binary
/// missing here (or in [`NON_CONSUMING`]) fails `worker_table_covers_every_worker_binary`.
const WORKERS: &[(&str, &[&str])] = &[
    (contact_sync::config::WORKER, contact_sync::config::ROUTING_KEYS),
    (loyalty_events::config::WORKER, loyalty_events::config::ROUTING_KEYS),
    (voucher_events::config::WORKER, voucher_events::config::ROUTING_KEYS),
    (recommendations::config::WORKER, recommendations::config::ROUTING_KEYS),
];

/// Worker binaries that consume no queue (inbound: webhooks and a scheduled pull): no KEDA
/// scaling on a queue; a Service for the webhooks instead.
const NON_CONSUMING: &[&str] = &["inbound"];

/// The drain deadline the workers default to (`SWITCHYARD_DRAIN_DEADLINE`).
const DEFAULT_DRAIN: Duration = Duration::from_secs(20);

/// RabbitMQ metrics (rabbitmq_prometheus plugin, `/metrics/per-object`) the dashboard and the
/// rules may use. They come from the broker, not from our binaries.
const RABBITMQ_METRICS: &[&str] = &[
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_queue_consumers",
];

/// How long a started process may take to show something.
const T: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Helpers: files, YAML, tools, cargo metadata.

fn root() -> PathBuf {
    workspace_root()
}

fn deploy(path: &str) -> PathBuf {
    root().join("deploy").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file, as JSON (PyYAML's safe loader: anchors and `<<` merges
/// resolved).
fn yaml_docs(path: &Path) -> Vec<Value> {
    const SCRIPT: &str = "import json, sys, yaml\n\
                          with open(sys.argv[1]) as f:\n    \
                          print(json.dumps([d for d in yaml.safe_load_all(f) if d is not None], default=str))";
    let output = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("python3 with PyYAML reads YAML here (scripts/setup.sh installs it): {e}"));
    assert!(
        output.status.success(),
        "{} is not valid YAML: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{} should hold one YAML document", path.display());
    docs.pop().unwrap_or_default()
}

/// Runs a tool and returns its output; a missing tool names the package that provides it.
fn tool(program: &str, args: &[&str], package: &str) -> Output {
    std::process::Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("`{program}` is needed ({package}; scripts/setup.sh installs it): {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `(package manifest, binary name)` of every `[[bin]]` target in the workspace.
fn bin_targets() -> Vec<(PathBuf, String)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = root().join("Cargo.toml");
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .unwrap_or_else(|e| panic!("cargo metadata: {e}"));
    assert!(output.status.success(), "cargo metadata: {}", text(&output));
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let mut out = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap_or_default());
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_bin = target["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin"));
            if is_bin {
                out.push((manifest.clone(), target["name"].as_str().unwrap_or_default().to_owned()));
            }
        }
    }
    assert!(!out.is_empty(), "cargo metadata lists no binaries");
    out
}

fn bin_names() -> BTreeSet<String> {
    bin_targets().into_iter().map(|(_, name)| name).collect()
}

/// Binaries of the crates under `workers/`.
fn worker_bins() -> BTreeSet<String> {
    let workers_dir = root().join("workers");
    bin_targets()
        .into_iter()
        .filter(|(manifest, _)| {
            manifest
                .canonicalize()
                .unwrap_or_else(|_| manifest.clone())
                .starts_with(workers_dir.canonicalize().unwrap_or_else(|_| workers_dir.clone()))
        })
        .map(|(_, name)| name)
        .collect()
}

fn default_topologies() -> Vec<WorkerTopology> {
    let defaults: HashMap<&str, &str> = HashMap::new();
    WORKERS
        .iter()
        .map(|(worker, keys)| {
            WorkerSpec::from_strings(&defaults, worker, keys, 32)
                .map(|s| s.topology)
                .unwrap_or_else(|e| panic!("{worker}: {e}"))
        })
        .collect()
}

fn str_of<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn duration(raw: &str) -> Duration {
    settings::parse_duration(raw).unwrap_or_else(|e| panic!("{e}"))
}

/// GitHub's anchor for a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn readme_anchors() -> BTreeSet<String> {
    read(&root().join("README.md"))
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|rest| anchor(rest.trim_start_matches('#')))
        .collect()
}

/// Metric names (`switchyard_*`, `rabbitmq_*`) in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let at_word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == '_');
        if at_word_start && bytes[i].is_ascii_alphabetic() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '_') {
                i += 1;
            }
            let word: String = bytes[start..i].iter().collect();
            if word.starts_with("switchyard_") || word.starts_with("rabbitmq_") {
                out.insert(word);
            }
        } else {
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Helpers: processes, HTTP.

/// reqwest is built with `rustls-no-provider`: a process-wide provider must exist first.
fn http() -> reqwest::Client {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::ring::default_provider().install_default().is_err() {
            // Another part of this test binary installed one; that one serves as well.
        }
    });
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_else(|e| panic!("http client: {e}"))
}

async fn get_text(url: &str) -> Option<String> {
    let response = http().get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()
}

/// A binary started by a test: stderr collected line by line; killed when dropped.
struct Proc {
    name: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

fn lock(log: &Mutex<Vec<String>>) -> std::sync::MutexGuard<'_, Vec<String>> {
    log.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Proc {
    fn spawn(name: &str, program: &Path, args: &[&str], env: &HashMap<String, String>) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    lock(&log).push(line);
                }
            });
        }
        Self {
            name: name.to_owned(),
            child,
            log,
        }
    }

    fn logs(&self) -> String {
        let log = lock(&self.log);
        let skip = log.len().saturating_sub(30);
        log.iter().skip(skip).cloned().collect::<Vec<_>>().join("\n")
    }

    /// The first log line satisfying `pick`, within [`T`].
    async fn find_line<R>(&mut self, pick: impl Fn(&str) -> Option<R>) -> R {
        let deadline = Instant::now() + T;
        loop {
            if let Some(found) = lock(&self.log).iter().find_map(|line| pick(line)) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) early:\n{}", self.name, self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "{} logged nothing expected:\n{}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Where `/metrics` listens, from the "Serving /metrics" log line (`METRICS_ADDR=…:0`).
    async fn metrics_url(&mut self) -> String {
        let addr = self
            .find_line(|line| {
                let entry: Value = serde_json::from_str(line).ok()?;
                let message = entry["message"].as_str()?;
                if !message.starts_with("Serving /metrics") {
                    return None;
                }
                entry["addr"]
                    .as_str()
                    .or_else(|| entry["bound"].as_str())
                    .map(str::to_owned)
            })
            .await;
        format!("http://{addr}/metrics")
    }

    async fn stop(mut self) {
        if let Err(error) = self.child.start_kill() {
            panic!("stopping {}: {error}", self.name);
        }
        let _exited = tokio::time::timeout(T, self.child.wait()).await;
    }
}

/// The sandbox binary on free ports; returns it with its base URL.
async fn start_sandbox() -> (Proc, String) {
    let env: HashMap<String, String> = [
        ("SANDBOX_ADDR", "127.0.0.1:0"),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut sandbox = Proc::spawn("switchyard-sandbox", &binary("switchyard-sandbox"), &[], &env);
    let base = sandbox
        .find_line(|line| {
            line.strip_prefix("switchyard-sandbox listening on ")
                .map(|url| url.trim().to_owned())
        })
        .await;
    (sandbox, base)
}

fn env_of(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// The environment of worker binary `worker` against the sandbox at `sandbox`, in `namespace`.
fn worker_env(worker: &str, namespace: &str, sandbox: &str) -> HashMap<String, String> {
    let url = |provider: Provider| format!("{sandbox}{}", provider.path_prefix());
    let config = |file: &str| root().join("config").join(file).display().to_string();
    let mut env = env_of(&[
        ("SWITCHYARD_NAMESPACE", namespace.to_owned()),
        ("SWITCHYARD_RETRY_TIERS", "200ms,400ms,800ms".to_owned()),
        ("SWITCHYARD_MAX_ATTEMPTS", "3".to_owned()),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]);
    let specific = match worker {
        "contact-sync" => env_of(&[
            ("SPOTLER_BASE_URL", url(Provider::Spotler)),
            (
                "SPOTLER_CONSUMER_KEY",
                switchyard_sandbox::DEFAULT_SPOTLER_CONSUMER_KEY.to_owned(),
            ),
            (
                "SPOTLER_CONSUMER_SECRET",
                switchyard_sandbox::DEFAULT_SPOTLER_CONSUMER_SECRET.to_owned(),
            ),
            ("ECOMAIL_BASE_URL", url(Provider::Ecomail)),
            (
                "ECOMAIL_API_KEY",
                switchyard_sandbox::DEFAULT_ECOMAIL_API_KEY.to_owned(),
            ),
            ("ECOMAIL_LIST_ID", "7".to_owned()),
            ("CONTACT_SYNC_MAPPING", config("field-mapping.toml")),
        ]),
        "loyalty-events" => env_of(&[
            ("ECOMAIL_BASE_URL", url(Provider::Ecomail)),
            (
                "ECOMAIL_API_KEY",
                switchyard_sandbox::DEFAULT_ECOMAIL_API_KEY.to_owned(),
            ),
            ("ECOMAIL_LIST_ID", "7".to_owned()),
        ]),
        "recommendations" => env_of(&[
            ("FROOMLE_BASE_URL", url(Provider::Froomle)),
            (
                "FROOMLE_CLIENT_ID",
                switchyard_sandbox::DEFAULT_FROOMLE_CLIENT_ID.to_owned(),
            ),
            (
                "FROOMLE_CLIENT_SECRET",
                switchyard_sandbox::DEFAULT_FROOMLE_CLIENT_SECRET.to_owned(),
            ),
        ]),
        "voucher-events" => env_of(&[
            ("VOUCHERIFY_BASE_URL", url(Provider::Voucherify)),
            (
                "VOUCHERIFY_APP_ID",
                switchyard_sandbox::DEFAULT_VOUCHERIFY_APP_ID.to_owned(),
            ),
            (
                "VOUCHERIFY_APP_TOKEN",
                switchyard_sandbox::DEFAULT_VOUCHERIFY_APP_TOKEN.to_owned(),
            ),
            ("VOUCHERIFY_INTEGRATION_BASE_URL", url(Provider::VoucherifyIntegration)),
            (
                "VOUCHERIFY_INTEGRATION_APP_ID",
                switchyard_sandbox::DEFAULT_VOUCHERIFY_INTEGRATION_APP_ID.to_owned(),
            ),
            (
                "VOUCHERIFY_INTEGRATION_SECRET_KEY",
                switchyard_sandbox::DEFAULT_VOUCHERIFY_INTEGRATION_SECRET_KEY.to_owned(),
            ),
            ("VOUCHERIFY_METADATA_SCHEMA", config("voucherify-metadata.toml")),
            ("BLOOMREACH_BASE_URL", url(Provider::Bloomreach)),
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
        ]),
        "inbound" => env_of(&[
            ("INBOUND_ADDR", "127.0.0.1:0".to_owned()),
            (
                "INBOUND_STATE_DIR",
                std::env::temp_dir()
                    .join(format!("switchyard-inbound-{namespace}"))
                    .display()
                    .to_string(),
            ),
            ("INBOUND_ECOMAIL_TOKEN", "ops-test-ecomail-token-0123".to_owned()),
            (
                "INBOUND_SALESMANAGO_SECRET",
                "ops-test-salesmanago-secret-0123".to_owned(),
            ),
            (
                "INBOUND_VOUCHERIFY_SECRET",
                "ops-test-voucherify-secret-0123".to_owned(),
            ),
            ("SPOTLER_BASE_URL", url(Provider::Spotler)),
            (
                "SPOTLER_CONSUMER_KEY",
                switchyard_sandbox::DEFAULT_SPOTLER_CONSUMER_KEY.to_owned(),
            ),
            (
                "SPOTLER_CONSUMER_SECRET",
                switchyard_sandbox::DEFAULT_SPOTLER_CONSUMER_SECRET.to_owned(),
            ),
        ]),
        other => panic!("add the environment of worker `{other}` to worker_env in tests/tests/ops.rs"),
    };
    env.extend(specific);
    env
}

fn topology_of(worker: &str, env: &HashMap<String, String>) -> WorkerTopology {
    let keys = match WORKERS.iter().find(|(name, _)| *name == worker) {
        Some((_, keys)) => *keys,
        None if NON_CONSUMING.contains(&worker) => &[],
        None => panic!("`{worker}` is not in WORKERS"),
    };
    WorkerSpec::from_strings(env, worker, keys, 32)
        .map(|s| s.topology)
        .unwrap_or_else(|e| panic!("{worker}: {e}"))
}

async fn admin(namespace: &str) -> Admin {
    let env: HashMap<&str, &str> = [("SWITCHYARD_NAMESPACE", namespace)].into();
    let config = MqConfig::from_strings(&env).unwrap_or_else(|e| panic!("{e}"));
    Admin::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("broker at AMQP_URL: {e}"))
}

/// Deletes what the given workers declared in `namespace`.
async fn remove_namespace(namespace: &str, topologies: &[WorkerTopology]) {
    let admin = admin(namespace).await;
    let _removed = admin.remove_namespace(topologies, &[]).await;
    admin.close().await;
}

async fn set_fault(sandbox: &str, provider: &str, fault: &Value) {
    let response = http()
        .put(format!("{sandbox}/_sandbox/faults/{provider}"))
        .header("content-type", "application/json")
        .body(fault.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("set fault: {e}"));
    assert!(response.status().is_success(), "set fault: {}", response.status());
}

/// The sum of `name`'s samples whose label text contains every `label="value"` in `labels`.
fn sample_sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name && labels.iter().all(|l| series.contains(l)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Sample names in Prometheus text.
fn sample_names(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next().map(str::to_owned))
        .collect()
}

async fn wait_metric(url: &str, what: &str, check: impl Fn(&str) -> bool) {
    let found = wait_for(T, || async {
        let metrics = get_text(url).await?;
        check(&metrics).then_some(())
    })
    .await;
    assert!(found.is_some(), "{what} never showed in {url}");
}

/// A contact-sync binary and a sandbox binary, driven through every outcome the dashboard and
/// the rules look at: ok, a retry (503), invalid (dead letter), bad credentials (401), a vendor
/// 429 and a budget that parks (Spotler at 1/min).
struct Traffic {
    sandbox: Proc,
    sandbox_base: String,
    sandbox_metrics: String,
    worker: Proc,
    worker_metrics: String,
    namespace: String,
    topology: WorkerTopology,
}

impl Traffic {
    async fn run(prefix: &str) -> Self {
        let (mut sandbox, base) = start_sandbox().await;
        let sandbox_metrics = sandbox.metrics_url().await;
        let namespace = unique_namespace(prefix);
        let mut env = worker_env("contact-sync", &namespace, &base);
        env.insert("SPOTLER_RATE".into(), "1/min".into());
        env.insert("SWITCHYARD_MAX_HOLD".into(), "2s".into());
        let topology = topology_of("contact-sync", &env);
        let mut worker = Proc::spawn("contact-sync", &binary("contact-sync"), &[], &env);
        let worker_metrics = worker.metrics_url().await;
        let ready = worker_metrics.replace("/metrics", "/readyz");
        let became_ready = wait_for(T, || async { get_text(&ready).await.map(drop) }).await;
        assert!(became_ready.is_some(), "contact-sync not ready:\n{}", worker.logs());

        let admin = admin(&namespace).await;
        let publish = |body: Value| {
            let admin = &admin;
            async move {
                let id = uuid::Uuid::new_v4().to_string();
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                admin
                    .publish("contact.changed", &id, None, &bytes)
                    .await
                    .unwrap_or_else(|e| panic!("publish: {e}"));
            }
        };
        let contact = |n: u32| {
            json!({
                "contact_id": format!("ops-{n}"),
                "email": format!("ops-{n}@example.com"),
                "first_name": "Ops",
                "changed_at": "2026-11-20T10:00:00Z"
            })
        };
        let m = worker_metrics.clone();
        set_fault(&base, "ecomail", &json!({"force": {"status": 503, "count": 1}})).await;
        publish(contact(1)).await;
        wait_metric(&m, "a retried then delivered Ecomail call", |t| {
            sample_sum(t, "switchyard_retries_total", &[]) >= 1.0
                && sample_sum(
                    t,
                    "switchyard_provider_requests_total",
                    &["provider=\"ecomail\"", "status_class=\"2xx\""],
                ) >= 1.0
        })
        .await;
        publish(json!({"contact_id": "ops-invalid"})).await;
        wait_metric(&m, "an invalid dead letter", |t| {
            sample_sum(t, "switchyard_dead_letters_total", &["class=\"invalid\""]) >= 1.0
        })
        .await;
        set_fault(&base, "ecomail", &json!({"force": {"status": 401, "count": 1}})).await;
        publish(contact(2)).await;
        wait_metric(&m, "an auth failure and a budget park", |t| {
            sample_sum(t, "switchyard_provider_auth_failures_total", &[]) >= 1.0
                && sample_sum(t, "switchyard_rate_limited_total", &["source=\"budget\""]) >= 1.0
        })
        .await;
        set_fault(
            &base,
            "ecomail",
            &json!({"force": {"status": 429, "count": 1, "retry_after_secs": 1}}),
        )
        .await;
        publish(contact(3)).await;
        wait_metric(&m, "a vendor 429", |t| {
            sample_sum(t, "switchyard_rate_limited_total", &["source=\"vendor\""]) >= 1.0
        })
        .await;
        admin.close().await;
        Self {
            sandbox,
            sandbox_base: base,
            sandbox_metrics,
            worker,
            worker_metrics,
            namespace,
            topology,
        }
    }

    async fn finish(self) {
        self.worker.stop().await;
        self.sandbox.stop().await;
        remove_namespace(&self.namespace, &[self.topology]).await;
    }
}

fn promtool_check_metrics(name: &str, metrics: &str) {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("`promtool` is needed (Debian package prometheus): {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, metrics.as_bytes()).unwrap_or_else(|e| panic!("promtool stdin: {e}"));
    }
    let output = child.wait_with_output().unwrap_or_else(|e| panic!("promtool: {e}"));
    assert!(
        output.status.success(),
        "{name}'s /metrics fails `promtool check metrics`:\n{}",
        text(&output)
    );
}

// ---------------------------------------------------------------------------------------------
// Container image and docker-compose.

#[test]
fn worker_table_covers_every_worker_binary() {
    let table: BTreeSet<String> = WORKERS
        .iter()
        .map(|(w, _)| *w)
        .chain(NON_CONSUMING.iter().copied())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        table,
        worker_bins(),
        "WORKERS / NON_CONSUMING in tests/tests/ops.rs must list every binary under workers/ (and the deploy \
         files must run it)"
    );
}

#[test]
fn dockerfile_builds_every_binary_and_runs_as_non_root() {
    let dockerfile = read(&deploy("Dockerfile"));
    assert!(
        dockerfile.contains("cargo build --release --locked --workspace --bins"),
        "one build of every binary"
    );
    let stages = dockerfile.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(stages >= 2, "multi-stage build");
    assert!(
        dockerfile.contains("FROM debian:${DEBIAN_RELEASE}-slim"),
        "small runtime image"
    );
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap_or_default();
    assert!(
        !user.is_empty() && !user.starts_with('0') && !user.starts_with("root"),
        "runs as a non-root user, not `{user}`"
    );
    assert!(dockerfile.contains("docker-entrypoint.sh"), "WORKER selects the binary");
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let source = line.split_whitespace().nth(1).unwrap_or_default();
        assert!(
            source == "." || root().join(source).exists(),
            "Dockerfile copies `{source}`, which does not exist"
        );
    }
    let ignore = read(&deploy("Dockerfile.dockerignore"));
    assert!(
        ignore.lines().any(|l| l.trim() == "target/"),
        "target/ stays out of the build context"
    );
}

#[test]
fn entrypoint_refuses_a_missing_or_unknown_worker() {
    let script = deploy("docker-entrypoint.sh");
    let syntax = tool("sh", &["-n", &script.display().to_string()], "dash");
    assert!(syntax.status.success(), "{}", text(&syntax));
    let mode = std::fs::metadata(&script).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    assert!(mode.is_ok_and(|m| m & 0o111 != 0), "the entrypoint is executable");
    for (worker, why) in [
        (None, "set WORKER"),
        (Some("no-such-binary"), "is not a Switchyard binary"),
        (Some("../../bin/sh"), "must be a binary name"),
    ] {
        let mut command = std::process::Command::new("sh");
        command.arg(&script).env_remove("WORKER");
        if let Some(worker) = worker {
            command.env("WORKER", worker);
        }
        let output = command.output().unwrap_or_else(|e| panic!("sh: {e}"));
        assert_eq!(output.status.code(), Some(64), "{worker:?}: {}", text(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(why),
            "{}",
            text(&output)
        );
    }
}

#[test]
fn compose_file_parses_and_references_existing_files_and_binaries() {
    let compose = yaml(&deploy("docker-compose.yml"));
    let services = compose["services"].as_object().cloned().unwrap_or_default();
    for needed in ["rabbitmq", "redis", "sandbox", "prometheus", "grafana"] {
        assert!(services.contains_key(needed), "compose has no `{needed}` service");
    }
    let bins = bin_names();
    let mut started = BTreeSet::new();
    for (name, service) in &services {
        assert!(
            service.get("image").is_some() || service.get("build").is_some(),
            "service {name} has neither image nor build"
        );
        if let Some(build) = service.get("build") {
            let context = deploy(str_of(build, "/context"));
            assert!(
                context.join("Cargo.toml").exists(),
                "{name}: build context is not the workspace"
            );
            assert!(
                context.join(str_of(build, "/dockerfile")).exists(),
                "{name}: dockerfile missing"
            );
        }
        if let Some(worker) = service.pointer("/environment/WORKER").and_then(Value::as_str) {
            assert!(
                bins.contains(worker),
                "{name}: WORKER={worker} is not a [[bin]] ({bins:?})"
            );
            started.insert(worker.to_owned());
        }
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume.as_str().and_then(|v| v.split(':').next()).unwrap_or_default();
            if source.starts_with('.') {
                assert!(deploy(source).exists(), "{name}: volume source {source} does not exist");
            }
        }
    }
    let prometheus = yaml(&deploy("prometheus/prometheus.yml"));
    let targets: BTreeSet<String> = prometheus["scrape_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|job| job["job_name"] == "switchyard")
        .flat_map(|job| job["static_configs"].as_array().cloned().unwrap_or_default())
        .flat_map(|config| config["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    for worker in worker_bins() {
        assert!(started.contains(&worker), "compose does not run worker `{worker}`");
        let service = &services[&worker];
        assert_eq!(str_of(service, "/environment/METRICS_ADDR"), "0.0.0.0:9464", "{worker}");
        assert!(
            targets.contains(&format!("{worker}:9464")),
            "Prometheus does not scrape {worker}"
        );
        let grace = duration(str_of(service, "/stop_grace_period"));
        assert!(
            grace > DEFAULT_DRAIN,
            "{worker}: stop_grace_period must exceed the drain deadline"
        );
    }
    assert!(started.contains("switchyard-sandbox"), "compose runs the sandbox");
    assert!(targets.contains("sandbox:9470"), "Prometheus scrapes the sandbox");
    let grafana = &services["grafana"];
    let mounts: Vec<&str> = grafana["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        mounts.iter().any(|m| m.starts_with("./grafana/switchyard.json:")),
        "dashboard provisioned"
    );
    let provider = yaml(&deploy("grafana/provisioning/dashboards/switchyard.yml"));
    let path = str_of(&provider, "/providers/0/options/path");
    assert!(
        mounts.iter().any(|m| m.contains(&format!(":{path}/"))),
        "the dashboard is mounted where the provider reads ({path})"
    );
}

// ---------------------------------------------------------------------------------------------
// Kubernetes.

fn k8s_resources() -> Vec<(PathBuf, Value)> {
    let base = deploy("kubernetes/base");
    let kustomization = yaml(&base.join("kustomization.yaml"));
    let mut out = Vec::new();
    for file in kustomization["resources"].as_array().into_iter().flatten() {
        let path = base.join(file.as_str().unwrap_or_default());
        for doc in yaml_docs(&path) {
            out.push((path.clone(), doc));
        }
    }
    out
}

fn find_kind<'a>(resources: &'a [(PathBuf, Value)], kind: &str, name: &str) -> Option<&'a Value> {
    resources
        .iter()
        .map(|(_, doc)| doc)
        .find(|doc| doc["kind"] == kind && doc["metadata"]["name"] == name)
}

#[test]
fn kubernetes_base_lists_every_manifest_and_ships_the_config_files() {
    let base = deploy("kubernetes/base");
    let kustomization = yaml(&base.join("kustomization.yaml"));
    let mut listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    for generator in kustomization["configMapGenerator"].as_array().into_iter().flatten() {
        for file in generator["files"].as_array().into_iter().flatten() {
            let file = file.as_str().unwrap_or_default();
            assert_eq!(
                read(&base.join(file)),
                read(&root().join("config").join(file)),
                "deploy/kubernetes/base/{file} must be a copy of config/{file}"
            );
            listed.insert(file.to_owned());
        }
    }
    listed.insert("kustomization.yaml".to_owned());
    let present: BTreeSet<String> = std::fs::read_dir(&base)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert_eq!(
        present, listed,
        "every file in the base is a resource or a generator input"
    );
}

#[test]
fn kubernetes_manifests_have_what_each_worker_needs() {
    let resources = k8s_resources();
    for (path, doc) in &resources {
        for field in ["/apiVersion", "/kind", "/metadata/name"] {
            assert!(
                !str_of(doc, field).is_empty(),
                "{}: a document has no {field}",
                path.display()
            );
        }
    }
    let config = find_kind(&resources, "ConfigMap", "switchyard-config")
        .cloned()
        .unwrap_or_default();
    let drain = config["data"]["SWITCHYARD_DRAIN_DEADLINE"]
        .as_str()
        .map_or(DEFAULT_DRAIN, duration);
    let secret = find_kind(&resources, "Secret", "switchyard-credentials")
        .cloned()
        .unwrap_or_default();
    let secret_keys: BTreeSet<String> = secret["stringData"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for (key, value) in secret["stringData"].as_object().into_iter().flatten() {
        let value = value.as_str().unwrap_or_default();
        assert!(
            value.contains("REPLACE") || value.contains(".example."),
            "secret {key} must be a placeholder"
        );
    }
    let names = Names::new("");
    for worker in worker_bins() {
        let deployment =
            find_kind(&resources, "Deployment", &worker).unwrap_or_else(|| panic!("no Deployment for {worker}"));
        let pod = &deployment["spec"]["template"];
        let grace = pod["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
        assert!(
            Duration::from_secs(grace) > drain,
            "{worker}: terminationGracePeriodSeconds {grace}s must exceed the drain deadline {drain:?}"
        );
        let container = &pod["spec"]["containers"][0];
        assert!(!str_of(container, "/image").is_empty(), "{worker}: image");
        let env = container["env"].as_array().cloned().unwrap_or_default();
        let env_value = |name: &str| {
            env.iter()
                .find(|e| e["name"] == name)
                .and_then(|e| e["value"].as_str())
                .map(str::to_owned)
        };
        assert_eq!(env_value("WORKER").as_deref(), Some(worker.as_str()));
        assert_eq!(env_value("METRICS_ADDR").as_deref(), Some("0.0.0.0:9464"));
        for e in &env {
            if let Some(key) = e.pointer("/valueFrom/secretKeyRef/key").and_then(Value::as_str) {
                assert!(
                    secret_keys.contains(key),
                    "{worker}: secret key {key} is not in the Secret template"
                );
            }
        }
        let port = &container["ports"][0];
        assert_eq!(
            (str_of(port, "/name"), port["containerPort"].as_u64()),
            ("metrics", Some(9464))
        );
        for (probe, path) in [
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/healthz"),
        ] {
            assert_eq!(
                str_of(container, &format!("/{probe}/httpGet/path")),
                path,
                "{worker} {probe}"
            );
            assert_eq!(
                str_of(container, &format!("/{probe}/httpGet/port")),
                "metrics",
                "{worker} {probe}"
            );
        }
        for resource in ["cpu", "memory"] {
            assert!(
                container.pointer(&format!("/resources/requests/{resource}")).is_some(),
                "{worker}: resource request {resource}"
            );
        }
        assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
        let labels = pod["metadata"]["labels"].clone();
        let pdb = find_kind(&resources, "PodDisruptionBudget", &worker)
            .unwrap_or_else(|| panic!("no PodDisruptionBudget for {worker}"));
        for (key, value) in pdb["spec"]["selector"]["matchLabels"].as_object().into_iter().flatten() {
            assert_eq!(&labels[key], value, "{worker}: the PDB selects its pods");
        }
        let monitor = find_kind(&resources, "PodMonitor", "switchyard")
            .cloned()
            .unwrap_or_default();
        let mut with_common = pod["metadata"]["labels"].as_object().cloned().unwrap_or_default();
        with_common.insert("app.kubernetes.io/part-of".into(), json!("switchyard"));
        for (key, value) in monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .into_iter()
            .flatten()
        {
            assert_eq!(with_common.get(key), Some(value), "the PodMonitor selects {worker}");
        }
        assert_eq!(str_of(&monitor, "/spec/podMetricsEndpoints/0/port"), "metrics");
        if NON_CONSUMING.contains(&worker.as_str()) {
            let service = find_kind(&resources, "Service", &worker)
                .unwrap_or_else(|| panic!("no Service for the webhooks of {worker}"));
            let target = str_of(service, "/spec/ports/0/targetPort");
            let ports = container["ports"].as_array().cloned().unwrap_or_default();
            assert!(
                ports.iter().any(|p| p["name"] == target),
                "{worker}: the Service targets port {target}"
            );
            assert!(
                find_kind(&resources, "ScaledObject", &worker).is_none(),
                "{worker} consumes no queue"
            );
            continue;
        }
        let scaled = find_kind(&resources, "ScaledObject", &worker)
            .unwrap_or_else(|| panic!("no KEDA ScaledObject for {worker}"));
        assert_eq!(str_of(scaled, "/spec/scaleTargetRef/name"), worker);
        let trigger = &scaled["spec"]["triggers"][0];
        assert_eq!(str_of(trigger, "/type"), "rabbitmq");
        assert_eq!(
            str_of(trigger, "/metadata/queueName"),
            names.work_queue(&worker),
            "{worker}: KEDA scales on the work queue"
        );
        let auth = str_of(trigger, "/authenticationRef/name");
        let trigger_auth = find_kind(&resources, "TriggerAuthentication", auth)
            .unwrap_or_else(|| panic!("{worker}: TriggerAuthentication {auth} missing"));
        let auth_key = str_of(trigger_auth, "/spec/secretTargetRef/0/key");
        assert!(secret_keys.contains(auth_key), "KEDA reads {auth_key} from the Secret");
        let replicas = env_value("SWITCHYARD_REPLICAS").and_then(|r| r.parse::<u64>().ok());
        assert_eq!(
            replicas,
            scaled["spec"]["maxReplicaCount"].as_u64(),
            "{worker}: SWITCHYARD_REPLICAS is the fallback quota share of maxReplicaCount replicas"
        );
    }
    let rule = find_kind(&resources, "PrometheusRule", "switchyard")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        rule["spec"]["groups"],
        yaml(&deploy("prometheus/rules.yml"))["groups"],
        "prometheusrule.yaml must carry the groups of deploy/prometheus/rules.yml (regenerate it: see its header)"
    );
}

#[test]
fn kubernetes_manifests_pass_kubernetes_validate() {
    let base = deploy("kubernetes/base");
    let kustomization = yaml(&base.join("kustomization.yaml"));
    let files: Vec<String> = kustomization["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(|f| base.join(f).display().to_string()))
        .collect();
    let mut args = vec!["-m", "kubernetes_validate", "--strict", "--quiet", "--no-warn"];
    args.extend(files.iter().map(String::as_str));
    let output = tool("python3", &args, "PyPI package kubernetes-validate");
    assert!(
        output.status.success(),
        "kubernetes-validate (core kinds; KEDA and Prometheus Operator kinds are checked above; \
         scripts/setup.sh installs it):\n{}",
        text(&output)
    );
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ definitions.

#[test]
fn rabbitmq_definitions_match_the_topology_the_code_declares() {
    let committed = read(&deploy("rabbitmq/definitions.json"));
    let generated = mq::definitions::definitions_text(&Names::new(""), &default_topologies());
    assert!(
        committed == generated,
        "deploy/rabbitmq/definitions.json differs from the topology of every worker; regenerate it with \
         `cargo run -p switchyard-cli -- topology export --namespace '' --out deploy/rabbitmq/definitions.json`"
    );
    let output = std::process::Command::new(binary("switchyard"))
        .args(["topology", "export", "--namespace", ""])
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("switchyard: {e}"));
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout) == committed,
        "`switchyard topology export` must print the committed definitions (is every worker in the CLI's KNOWN_WORKERS?)"
    );
    let doc: Value = serde_json::from_str(&committed).unwrap_or_default();
    let entities = mq::topology::entities(&Names::new(""), &default_topologies());
    let queues = doc["queues"].as_array().map_or(0, Vec::len);
    let expected = entities
        .iter()
        .filter(|e| matches!(e, mq::topology::Entity::Queue { .. }))
        .count();
    assert_eq!(queues, expected);
}

// ---------------------------------------------------------------------------------------------
// Prometheus: rules, live metrics, a real server.

#[test]
fn alert_rules_pass_promtool_and_point_at_the_runbook() {
    let rules = deploy("prometheus/rules.yml").display().to_string();
    let check = tool("promtool", &["check", "rules", &rules], "Debian package prometheus");
    assert!(check.status.success(), "promtool check rules:\n{}", text(&check));
    let tests = deploy("prometheus/rules.test.yml").display().to_string();
    let unit = tool("promtool", &["test", "rules", &tests], "Debian package prometheus");
    assert!(unit.status.success(), "promtool test rules:\n{}", text(&unit));
    let config = deploy("prometheus/prometheus.yml").display().to_string();
    let config_check = tool("promtool", &["check", "config", &config], "Debian package prometheus");
    assert!(
        config_check.status.success(),
        "promtool check config:\n{}",
        text(&config_check)
    );

    let anchors = readme_anchors();
    let doc = yaml(&deploy("prometheus/rules.yml"));
    let mut alerts = BTreeSet::new();
    for rule in doc["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
    {
        let alert = str_of(&rule, "/alert").to_owned();
        let runbook = str_of(&rule, "/annotations/runbook");
        let target = runbook.strip_prefix("README.md#").unwrap_or_default();
        assert!(
            anchors.contains(target),
            "{alert}: runbook `{runbook}` is no README heading"
        );
        assert!(!str_of(&rule, "/labels/severity").is_empty(), "{alert}: severity");
        alerts.insert(alert);
    }
    for needed in [
        "SwitchyardDeadLettersGrowing",
        "SwitchyardProviderAuthFailures",
        "SwitchyardQuotaExhausted",
        "SwitchyardConsumersAbsent",
        "SwitchyardBacklogOld",
        "SwitchyardRedisFallback",
    ] {
        assert!(alerts.contains(needed), "rules.yml lacks {needed}");
    }
    let text = read(&deploy("prometheus/rules.yml"));
    for (worker, _) in WORKERS {
        assert!(
            text.contains(&format!("|{worker}")) || text.contains(&format!("({worker}|")),
            "the queue patterns in rules.yml must name {worker}"
        );
    }
}

#[tokio::test]
async fn every_binary_serves_metrics_that_pass_promtool() {
    let traffic = Traffic::run("ops-promtool").await;
    for (name, url) in [
        ("contact-sync", &traffic.worker_metrics),
        ("switchyard-sandbox", &traffic.sandbox_metrics),
    ] {
        let metrics = get_text(url).await.unwrap_or_default();
        assert!(metrics.contains("# TYPE"), "{name} serves metrics: {metrics}");
        promtool_check_metrics(name, &metrics);
    }
    // The other workers, idle, against the same sandbox: their registries are checked too.
    let base = traffic.sandbox_base.clone();
    let namespace = unique_namespace("ops-promtool-idle");
    let mut topologies = Vec::new();
    for worker in worker_bins().into_iter().filter(|w| w != "contact-sync") {
        let env = worker_env(&worker, &namespace, &base);
        topologies.push(topology_of(&worker, &env));
        let mut process = Proc::spawn(&worker, &binary(&worker), &[], &env);
        let url = process.metrics_url().await;
        let ready = url.replace("/metrics", "/readyz");
        let became_ready = wait_for(T, || async { get_text(&ready).await.map(drop) }).await;
        assert!(became_ready.is_some(), "{worker} not ready:\n{}", process.logs());
        let metrics = get_text(&url).await.unwrap_or_default();
        promtool_check_metrics(&worker, &metrics);
        process.stop().await;
        if let Some(state) = env.get("INBOUND_STATE_DIR") {
            let _removed = std::fs::remove_dir_all(state);
        }
    }
    remove_namespace(&namespace, &topologies).await;
    traffic.finish().await;
}

#[tokio::test]
async fn dashboard_and_rules_reference_only_metrics_the_binaries_serve() {
    let traffic = Traffic::run("ops-dashboard").await;
    let mut live = sample_names(&get_text(&traffic.worker_metrics).await.unwrap_or_default());
    live.extend(sample_names(
        &get_text(&traffic.sandbox_metrics).await.unwrap_or_default(),
    ));
    traffic.finish().await;
    let known = |name: &str| live.contains(name) || RABBITMQ_METRICS.contains(&name);

    let dashboard: Value = serde_json::from_str(&read(&deploy("grafana/switchyard.json")))
        .unwrap_or_else(|e| panic!("deploy/grafana/switchyard.json is not JSON: {e}"));
    let mut expressions = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            expressions.push((str_of(panel, "/title").to_owned(), str_of(target, "/expr").to_owned()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if variable["type"] == "query" {
            expressions.push((
                format!("variable {}", str_of(variable, "/name")),
                str_of(variable, "/query/query").to_owned(),
            ));
        }
    }
    assert!(expressions.len() >= 15, "the dashboard has its panels");
    let mut used = BTreeSet::new();
    for (where_, expr) in &expressions {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{where_}: `{expr}` names no metric");
        for name in names {
            assert!(
                known(&name),
                "dashboard {where_}: `{name}` is not served (live: {live:?})"
            );
            used.insert(name);
        }
    }
    for family in [
        "switchyard_messages_total",
        "switchyard_provider_requests_total",
        "switchyard_provider_request_duration_seconds_bucket",
        "switchyard_rate_limit_admitted_total",
        "switchyard_rate_limit_wait_seconds_bucket",
        "switchyard_retries_total",
        "switchyard_dead_letters_total",
        "rabbitmq_queue_messages_ready",
    ] {
        assert!(used.contains(family), "the dashboard shows {family}");
    }

    let rules = yaml(&deploy("prometheus/rules.yml"));
    for rule in rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
    {
        for name in metric_names(str_of(&rule, "/expr")) {
            assert!(known(&name), "rule {}: `{name}` is not served", str_of(&rule, "/alert"));
        }
    }
}

#[tokio::test]
async fn prometheus_server_scrapes_a_worker_and_answers_a_query() {
    let namespace = unique_namespace("ops-prometheus");
    // No provider is called: nothing is published and the start-up property check is off.
    let mut env = worker_env("contact-sync", &namespace, "http://127.0.0.1:9");
    env.insert("SPOTLER_CHECK_PROPERTIES".into(), "false".into());
    let topology = topology_of("contact-sync", &env);
    let mut worker = Proc::spawn("contact-sync", &binary("contact-sync"), &[], &env);
    let metrics = worker.metrics_url().await;
    let target = metrics
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();

    let dir = std::env::temp_dir().join(format!("switchyard-prometheus-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("data")).unwrap_or_else(|e| panic!("{e}"));
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: switchyard\n    \
         static_configs:\n      - targets: ['{target}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"));
    let listen = format!("127.0.0.1:{port}");
    let args = [
        format!("--config.file={}", dir.join("prometheus.yml").display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address={listen}"),
        "--log.level=warn".to_owned(),
    ];
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let prometheus_bin = PathBuf::from("prometheus");
    let path_env: HashMap<String, String> = std::env::var("PATH")
        .map(|p| [("PATH".to_owned(), p)].into_iter().collect())
        .unwrap_or_default();
    let mut prometheus = Proc::spawn("prometheus", &prometheus_bin, &arg_refs, &path_env);

    let query =
        format!("http://{listen}/api/v1/query?query=switchyard_broker_connections_total%7Bjob%3D%22switchyard%22%7D");
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        if let Some(body) = get_text(&query).await {
            let answer: Value = serde_json::from_str(&body).unwrap_or_default();
            if answer["status"] == "success" && answer["data"]["result"].as_array().is_some_and(|r| !r.is_empty()) {
                break answer;
            }
        }
        if let Ok(Some(status)) = prometheus.child.try_wait() {
            panic!("prometheus exited ({status}):\n{}", prometheus.logs());
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never returned the worker's metric:\n{}",
            prometheus.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let sample = &answer["data"]["result"][0];
    assert_eq!(sample["metric"]["worker"], "contact-sync");
    assert_eq!(sample["metric"]["job"], "switchyard");
    let value: f64 = sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!(value >= 1.0, "one broker session at least: {answer}");
    let up = get_text(&format!("http://{listen}/api/v1/query?query=up"))
        .await
        .unwrap_or_default();
    assert!(up.contains("\"1\""), "the target is up: {up}");

    prometheus.stop().await;
    worker.stop().await;
    let _removed = std::fs::remove_dir_all(&dir);
    remove_namespace(&namespace, &[topology]).await;
}

// ---------------------------------------------------------------------------------------------
// AsyncAPI.

/// Every local `$ref` (`#/...`) in `value`.
fn local_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                if key == "$ref"
                    && let Some(target) = inner.as_str()
                {
                    out.push(target.to_owned());
                }
                local_refs(inner, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| local_refs(item, out)),
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    // JSON pointer escapes; our keys contain dots but no `/` or `~`.
    doc.pointer(pointer)
}

#[test]
fn asyncapi_documents_every_message_channel_and_worker() {
    let path = root().join("schemas/asyncapi.yaml");
    let doc = yaml(&path);
    assert_eq!(str_of(&doc, "/asyncapi"), "3.0.0");
    let mut refs = Vec::new();
    local_refs(&doc, &mut refs);
    for reference in refs.iter().filter(|r| r.starts_with('#')) {
        assert!(
            resolve(&doc, reference).is_some(),
            "asyncapi.yaml: `{reference}` resolves to nothing"
        );
    }
    let channels = doc["channels"].as_object().cloned().unwrap_or_default();
    let operations = doc["operations"].as_object().cloned().unwrap_or_default();
    let catalog: BTreeSet<&str> = messages::CATALOG.iter().map(|s| s.kind).collect();
    for spec in messages::CATALOG.iter() {
        let channel = channels
            .get(spec.kind)
            .unwrap_or_else(|| panic!("asyncapi.yaml has no channel for {}", spec.kind));
        assert_eq!(str_of(channel, "/address"), spec.kind);
        let message = &doc["components"]["messages"][spec.kind];
        let payload = str_of(message, "/payload/$ref");
        let expected = format!("./{}.v{}.json", spec.kind, spec.version);
        assert_eq!(payload, expected, "{}: payload", spec.kind);
        assert!(root().join("schemas").join(&expected).exists(), "{expected} missing");
        assert_eq!(
            str_of(channel, &format!("/messages/{}/$ref", spec.kind)),
            format!("#/components/messages/{}", spec.kind)
        );
        if spec.direction == messages::catalog::Direction::Result {
            let sent = operations
                .values()
                .any(|op| op["action"] == "send" && str_of(op, "/channel/$ref") == format!("#/channels/{}", spec.kind));
            assert!(sent, "asyncapi.yaml: no send operation publishes result {}", spec.kind);
        }
    }
    for (id, channel) in &channels {
        if str_of(channel, "/bindings/$ref") == "#/components/channelBindings/switchyardRoutingKey" {
            assert!(
                catalog.contains(id.as_str()),
                "asyncapi channel {id} is no message type of the catalog"
            );
        }
    }
    let mut received = BTreeSet::new();
    for (worker, keys) in WORKERS {
        let dead = format!("{worker}.dead");
        assert_eq!(
            channels.get(&dead).map(|c| str_of(c, "/address").to_owned()),
            Some(dead.clone()),
            "dead-letter channel of {worker}"
        );
        for key in *keys {
            let op = operations
                .get(&format!("{worker}.receive.{key}"))
                .unwrap_or_else(|| panic!("asyncapi.yaml: no operation {worker}.receive.{key}"));
            assert_eq!(op["action"], "receive");
            assert_eq!(str_of(op, "/channel/$ref"), format!("#/channels/{key}"));
            received.insert(format!("{worker}.receive.{key}"));
        }
    }
    for (id, op) in &operations {
        if op["action"] == "receive" {
            assert!(
                received.contains(id),
                "asyncapi operation {id} is no routing key of its worker"
            );
        }
    }
    let headers = &doc["components"]["schemas"]["deadLetterHeaders"]["properties"];
    for header in [
        mq::headers::ATTEMPT,
        mq::headers::ERROR_CLASS,
        mq::headers::ERROR,
        mq::headers::WORKER,
        mq::headers::ORIGINAL_ROUTING_KEY,
        mq::headers::FAILED_AT,
        mq::headers::SCOPE,
    ] {
        assert!(
            headers.get(header).is_some(),
            "asyncapi.yaml: dead-letter header {header}"
        );
    }
    assert_eq!(
        str_of(
            &doc,
            "/components/channelBindings/switchyardRoutingKey/amqp/exchange/name"
        ),
        Names::new("").exchange()
    );
}

// ---------------------------------------------------------------------------------------------
// README.

/// The `.rs` files under `dir`, without `tests/` folders.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests" && n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Upper-case string literals (`"NAME"`) in `code`, with the byte offset after each.
fn upper_literals(code: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (start, _) in code.match_indices('"') {
        let rest = code.get(start + 1..).unwrap_or_default();
        let len = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        let name = rest.get(..len).unwrap_or_default();
        if len >= 3
            && rest.get(len..).is_some_and(|r| r.starts_with('"'))
            && name.starts_with(|c: char| c.is_ascii_uppercase())
        {
            out.push((name.to_owned(), start + len + 2));
        }
    }
    out
}

#[test]
fn readme_documents_every_environment_variable() {
    const PREFIXES: &[&str] = &[
        "SWITCHYARD_",
        "SANDBOX_",
        "SPOTLER_",
        "ECOMAIL_",
        "VOUCHERIFY_",
        "BLOOMREACH_",
        "FROOMLE_",
        "SALESMANAGO_",
        "LOYALTY_",
        "RECOMMENDATIONS_",
        "CONTACT_SYNC_",
        "VOUCHER_EVENTS_",
        "INBOUND_",
        "AMQP_",
        "REDIS_",
        "METRICS_",
        "LOG_",
    ];
    let mut files = Vec::new();
    for dir in ["shared", "workers", "sandbox", "cli"] {
        rust_files(&root().join(dir), &mut files);
    }
    let mut variables = BTreeSet::from(["RUST_LOG".to_owned()]);
    let mut limit_prefixes = BTreeSet::new();
    for file in &files {
        let code = read(file);
        // Production code only: unit tests sit after `#[cfg(test)]`.
        let code = code.split("#[cfg(test)]").next().unwrap_or_default();
        for (start, _) in code.match_indices("ProviderLimits::from_strings(") {
            let window = code.get(start..(start + 120).min(code.len())).unwrap_or_default();
            if let Some((prefix, _)) = upper_literals(window).into_iter().next() {
                limit_prefixes.insert(prefix);
            }
        }
        for (name, _) in upper_literals(code) {
            if PREFIXES.iter().any(|p| name.starts_with(p)) && !name.ends_with("_FILE") {
                variables.insert(name);
            }
        }
    }
    let readme = read(&root().join("README.md"));
    let mut missing: Vec<String> = variables
        .iter()
        .filter(|v| !limit_prefixes.contains(*v) && !readme.contains(&format!("`{v}`")))
        .cloned()
        .collect();
    for prefix in &limit_prefixes {
        if !readme.contains(&format!("`{prefix}_RATE`")) {
            missing.push(format!("{prefix}_RATE (and its _BURST, _CONCURRENCY, _TIMEOUT)"));
        }
    }
    for generic in ["`<P>_RATE`", "`<P>_BURST`", "`<P>_CONCURRENCY`", "`<P>_TIMEOUT`"] {
        assert!(readme.contains(generic), "README: {generic}");
    }
    assert!(
        missing.is_empty(),
        "README.md's configuration reference lacks {missing:?} (found {} variables in the code)",
        variables.len()
    );
}

// ---------------------------------------------------------------------------------------------
// CLI.

/// `switchyard <args> --help`, checked: exit 0, a usage line, and every option and argument
/// explained. Returns the subcommands it lists.
fn check_help(args: &[&str]) -> Vec<String> {
    let mut all = args.to_vec();
    all.push("--help");
    let output = std::process::Command::new(binary("switchyard"))
        .args(&all)
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("switchyard: {e}"));
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    let shown = args.join(" ");
    assert!(output.status.success(), "switchyard {shown} --help: {}", text(&output));
    assert!(help.contains("Usage: switchyard"), "switchyard {shown} --help:\n{help}");
    assert!(
        help.lines().next().is_some_and(|l| l.split_whitespace().count() >= 3),
        "switchyard {shown} --help starts with a description:\n{help}"
    );
    let mut section = "";
    let mut subcommands = Vec::new();
    let lines: Vec<&str> = help.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with(' ') {
            // A heading (`Options:`) opens a section; any other text (about, after-help) ends it.
            section = if line.ends_with(':') { line } else { "" };
            continue;
        }
        let entry = line.trim_start();
        let indent = line.len() - entry.len();
        if entry.is_empty() || indent > 6 {
            continue;
        }
        match section {
            "Commands:" => {
                let name = entry.split_whitespace().next().unwrap_or_default();
                let described = entry.split_whitespace().count() >= 2;
                assert!(described, "switchyard {shown}: command `{name}` has no description");
                if name != "help" {
                    subcommands.push(name.to_owned());
                }
            }
            "Options:" | "Arguments:" => {
                // `--flag <V>  Text` on one line, or the text on the next, indented further.
                let same_line = entry.contains("  ");
                let next_line = lines.get(i + 1).is_some_and(|next| {
                    let trimmed = next.trim_start();
                    !trimmed.is_empty() && next.len() - trimmed.len() > indent + 2
                });
                assert!(
                    same_line || next_line,
                    "switchyard {shown}: `{entry}` has no description:\n{help}"
                );
            }
            _ => {}
        }
    }
    subcommands
}

#[test]
fn every_cli_command_has_helpful_help() {
    let mut pending: Vec<Vec<String>> = vec![vec![]];
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        for sub in check_help(&args) {
            let mut next = path.clone();
            next.push(sub);
            pending.push(next);
        }
        seen += 1;
    }
    assert!(seen >= 12, "help was checked for {seen} commands only");
}

#[tokio::test]
async fn dlq_list_filters_on_the_failure_time() {
    let h = Harness::start("ops-dlq-time", &[]).await;
    h.publish("contact.changed", &json!({"contact_id": "no-email"})).await;
    h.wait_dead_letters(1, T).await;
    let list = |extra: &[&str]| {
        let mut args = vec![
            "--namespace",
            h.namespace.as_str(),
            "dlq",
            "list",
            "--worker",
            "contact-sync",
        ];
        args.extend_from_slice(extra);
        std::process::Command::new(binary("switchyard"))
            .args(&args)
            .env_clear()
            .output()
            .unwrap_or_else(|e| panic!("switchyard: {e}"))
    };
    let count = |output: &Output| -> usize {
        assert!(output.status.success(), "{}", text(output));
        serde_json::from_slice::<Vec<Value>>(&output.stdout)
            .map(|letters| letters.len())
            .unwrap_or_else(|e| panic!("{e}: {}", text(output)))
    };
    assert_eq!(
        count(&list(&["--json", "--since", "1h"])),
        1,
        "failed within the last hour"
    );
    assert_eq!(
        count(&list(&["--json", "--until", "1h"])),
        0,
        "nothing failed before an hour ago"
    );
    assert_eq!(
        count(&list(&[
            "--json",
            "--since",
            "2000-01-01T00:00:00Z",
            "--until",
            "2999-01-01T00:00:00Z"
        ])),
        1
    );
    assert_eq!(count(&list(&["--json", "--since", "2999-01-01T00:00:00+02:00"])), 0);
    let table = list(&["--since", "1h"]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("invalid"),
        "{}",
        text(&table)
    );
    let bad = list(&["--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(64), "{}", text(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"),
        "{}",
        text(&bad)
    );
    let reversed = list(&["--since", "1h", "--until", "2h"]);
    assert_eq!(reversed.status.code(), Some(64), "{}", text(&reversed));
    assert!(
        String::from_utf8_lossy(&reversed.stderr).contains("--since must be earlier"),
        "{}",
        text(&reversed)
    );
    h.finish().await;
}
