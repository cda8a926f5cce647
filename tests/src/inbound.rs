//! Harness for `inbound`: a sandbox (the vendors' senders and Spotler's change lists), the
//! inbound app in-process on a free port in its own namespace, an observer queue for
//! everything inbound publishes, raw HTTP for the calls a vendor would never make, Spotler
//! pollers built from the same configuration, and a switchable TCP proxy in front of the
//! broker to take it away and bring it back.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inbound::Poller;
use mq::admin::Admin;
use prometheus::Registry;
use settings::MqConfig;
use switchyard_sandbox::{RunningSandbox, SandboxConfig};
use telemetry::Health;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::unique_namespace;

/// The Ecomail URL token the tests configure.
pub const ECOMAIL_TOKEN: &str = "ecomail-token-0123456789";
/// The SALESmanago callback secret the tests configure.
pub const SALESMANAGO_SECRET: &str = "salesmanago-secret-0123456789";
/// The Voucherify webhook secret the tests configure.
pub const VOUCHERIFY_SECRET: &str = "voucherify-secret-0123456789";
/// The observer queue for inbound's messages.
pub const OBSERVED: &str = "test.inbound";
/// Every type inbound publishes.
pub const KINDS: &[&str] = &[
    "loyalty.subscription.changed",
    "contact.consent.changed",
    "voucher.redeemed",
    "contact.bounced",
    "contact.updated",
];
/// The broker the tests use.
pub const BROKER: &str = "127.0.0.1:5672";

/// A message seen on the observer queue.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Type (routing key).
    pub kind: String,
    /// AMQP message id.
    pub message_id: String,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body text.
    pub body: String,
}

impl Answer {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// Environment for inbound pointing at `sandbox`, in `namespace`, with the Spotler pull off
/// and cursor files under `state_dir`.
pub fn inbound_env(namespace: &str, sandbox: &RunningSandbox, state_dir: &std::path::Path) -> HashMap<String, String> {
    [
        ("SWITCHYARD_NAMESPACE", namespace.to_owned()),
        ("INBOUND_ECOMAIL_TOKEN", ECOMAIL_TOKEN.to_owned()),
        ("INBOUND_SALESMANAGO_SECRET", SALESMANAGO_SECRET.to_owned()),
        ("INBOUND_VOUCHERIFY_SECRET", VOUCHERIFY_SECRET.to_owned()),
        ("INBOUND_SPOTLER_POLL_INTERVAL", "off".to_owned()),
        ("INBOUND_STATE_DIR", state_dir.display().to_string()),
        ("INBOUND_PUBLISH_TIMEOUT", "3s".to_owned()),
        ("SPOTLER_BASE_URL", sandbox.spotler_base_url()),
        (
            "SPOTLER_CONSUMER_KEY",
            switchyard_sandbox::DEFAULT_SPOTLER_CONSUMER_KEY.to_owned(),
        ),
        (
            "SPOTLER_CONSUMER_SECRET",
            switchyard_sandbox::DEFAULT_SPOTLER_CONSUMER_SECRET.to_owned(),
        ),
        ("INBOUND_SPOTLER_LAG", "0s".to_owned()),
        ("INBOUND_SPOTLER_LOOKBACK", "1h".to_owned()),
        ("SWITCHYARD_DRAIN_DEADLINE", "5s".to_owned()),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ("INBOUND_ADDR", "127.0.0.1:0".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The inbound app with its sandbox, in its own namespace.
#[derive(Debug)]
pub struct InboundHarness {
    /// The namespace.
    pub namespace: String,
    /// The sandbox.
    pub sandbox: RunningSandbox,
    /// Admin connection (straight to the broker).
    pub admin: Admin,
    /// inbound's environment.
    pub env: HashMap<String, String>,
    /// Where cursor files go.
    pub state_dir: PathBuf,
    /// The running app's metrics registry.
    pub registry: Registry,
    /// The running app's health.
    pub health: Health,
    /// Where the running app receives webhooks.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    app: Option<JoinHandle<Result<(), mq::worker::RunError>>>,
}

impl InboundHarness {
    /// Starts a sandbox, declares the observer and starts the app; `overrides` change its
    /// environment.
    pub async fn start(prefix: &str, overrides: &[(&str, &str)]) -> Self {
        let namespace = unique_namespace(prefix);
        let sandbox = switchyard_sandbox::spawn(SandboxConfig::for_tests())
            .await
            .unwrap_or_else(|e| panic!("sandbox: {e}"));
        let state_dir = std::env::temp_dir().join(format!("switchyard-{namespace}"));
        let mut env = inbound_env(&namespace, &sandbox, &state_dir);
        for (k, v) in overrides {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let admin_strings: HashMap<&str, &str> = [("SWITCHYARD_NAMESPACE", namespace.as_str())].into_iter().collect();
        let mq_config = MqConfig::from_strings(&admin_strings).unwrap_or_else(|e| panic!("{e}"));
        let admin = Admin::connect(&mq_config)
            .await
            .unwrap_or_else(|e| panic!("broker: {e}"));
        admin.declare(&[]).await.unwrap_or_else(|e| panic!("declare: {e}"));
        admin
            .declare_observer(OBSERVED, KINDS)
            .await
            .unwrap_or_else(|e| panic!("observer: {e}"));
        let mut harness = Self {
            namespace,
            sandbox,
            admin,
            env,
            state_dir,
            registry: Registry::new(),
            health: Health::new(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            stop: None,
            app: None,
        };
        harness.start_app().await;
        harness
    }

    /// The configuration of the app, with `overrides` on top of the harness environment.
    pub fn config(&self, overrides: &[(&str, &str)]) -> inbound::Config {
        let mut env = self.env.clone();
        for (k, v) in overrides {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        inbound::Config::from_strings(&env).unwrap_or_else(|e| panic!("config: {e}"))
    }

    /// Starts (or restarts) the app on a fresh port.
    pub async fn start_app(&mut self) {
        let config = self.config(&[]);
        let registry = Registry::new();
        let health = Health::new();
        let app = inbound::build(&config, &registry).unwrap_or_else(|e| panic!("build: {e}"));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        self.addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = oneshot::channel::<()>();
        let serving_health = health.clone();
        self.app = Some(tokio::spawn(async move {
            let shutdown = async move {
                let _stopped = rx.await;
            };
            app.serve(listener, serving_health, shutdown).await
        }));
        self.stop = Some(tx);
        self.registry = registry;
        self.health = health;
    }

    /// Stops the app gracefully and returns its result.
    pub async fn stop_app(&mut self) -> Option<Result<(), mq::worker::RunError>> {
        if let Some(stop) = self.stop.take() {
            let _sent = stop.send(());
        }
        match self.app.take() {
            Some(app) => app.await.ok(),
            None => None,
        }
    }

    /// `http://<app>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A Spotler poller built like the app builds it (own registry), with the pull switched
    /// on and `overrides` applied. Its loop is not started: call `run_once` or `run`.
    pub fn poller(&self, overrides: &[(&str, &str)]) -> Arc<Poller> {
        let mut all = vec![("INBOUND_SPOTLER_POLL_INTERVAL", "1h")];
        all.extend_from_slice(overrides);
        let config = self.config(&all);
        let app = inbound::build(&config, &Registry::new()).unwrap_or_else(|e| panic!("build: {e}"));
        app.poller().unwrap_or_else(|| panic!("the pull is on"))
    }

    /// Everything on the observer queue so far (removed from it).
    pub async fn take(&self) -> Vec<Observed> {
        let queue = self.admin.names().work_queue(OBSERVED);
        self.admin
            .drain(&queue, 10_000)
            .await
            .unwrap_or_else(|e| panic!("drain: {e}"))
            .into_iter()
            .map(|(properties, body)| Observed {
                kind: properties.kind().as_ref().map(|k| k.to_string()).unwrap_or_default(),
                message_id: properties
                    .message_id()
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                body: serde_json::from_slice(&body).unwrap_or_default(),
            })
            .collect()
    }

    /// Waits until `want` messages have arrived in total (accumulating into `seen`).
    pub async fn wait_observed(&self, seen: &mut Vec<Observed>, want: usize, timeout: Duration) {
        crate::collect(seen, want, timeout, "messages", || self.take()).await;
    }

    /// Collects what arrives within `quiet` (to show nothing more comes).
    pub async fn settle(&self, quiet: Duration) -> Vec<Observed> {
        tokio::time::sleep(quiet).await;
        self.take().await
    }

    /// A counter value from the running app's registry (sum over matching label sets).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        crate::registry_metric(&self.registry, name, labels)
    }

    /// Stops the app, deletes the namespace, its Redis keys and its cursor files.
    pub async fn finish(mut self) {
        let _stopped = self.stop_app().await;
        let observed = self.admin.names().work_queue(OBSERVED);
        let _removed = self.admin.remove_namespace(&[], &[observed]).await;
        let _files = tokio::fs::remove_dir_all(&self.state_dir).await;
        delete_redis_keys(&format!("switchyard:{}:*", self.namespace)).await;
    }
}

/// Deletes every Redis key matching `pattern` (test namespaces only).
pub async fn delete_redis_keys(pattern: &str) {
    let Ok(client) = redis::Client::open("redis://127.0.0.1:6379/") else {
        return;
    };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut connection)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _deleted: redis::RedisResult<i64> = redis::cmd("DEL").arg(&keys).query_async(&mut connection).await;
    }
}

/// Sends raw HTTP/1.1 bytes to `addr` (the request must say `Connection: close`) and reads the
/// answer: for the calls no vendor client would make (tampered bodies, chunked oversize).
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    stream.write_all(request).await.unwrap_or_else(|e| panic!("write: {e}"));
    let mut text = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut text)).await;
    assert!(read.is_ok(), "no answer within 10s");
    let text = String::from_utf8_lossy(&text).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Answer { status, body }
}

/// A `POST` with a body and extra header lines (`Name: value\r\n` each).
pub async fn post(addr: SocketAddr, path: &str, extra_headers: &str, body: &[u8]) -> Answer {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{extra_headers}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    raw_http(addr, &request).await
}

/// A `GET` of `path_and_query`.
pub async fn get(addr: SocketAddr, path_and_query: &str) -> Answer {
    let request = format!("GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    raw_http(addr, request.as_bytes()).await
}

/// A TCP proxy in front of the broker that can refuse new connections and cut live ones: the
/// broker outage, as inbound's publisher sees it.
#[derive(Debug)]
pub struct BrokerProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl BrokerProxy {
    /// Starts a proxy to [`BROKER`], up.
    pub async fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap_or_else(|e| panic!("proxy bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (up, links) = (up.clone(), links.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let link = tokio::spawn(async move {
                        if let Ok(mut broker) = TcpStream::connect(BROKER).await {
                            let _copied = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                        }
                    });
                    links
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(link);
                }
            }
        });
        Self {
            addr,
            up,
            links,
            accept,
        }
    }

    /// `amqp://guest:guest@<proxy>/%2f`.
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// Refuses new connections and cuts every live one.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self
            .links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
        {
            link.abort();
        }
    }

    /// Accepts connections again.
    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for BrokerProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.down();
    }
}

/// The message ids in `seen`, with how often each came.
pub fn id_counts(seen: &[Observed]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in seen {
        *counts.entry(message.message_id.clone()).or_insert(0) += 1;
    }
    counts
}

/// The distinct message ids in `seen`.
pub fn distinct_ids(seen: &[Observed]) -> HashSet<String> {
    seen.iter().map(|m| m.message_id.clone()).collect()
}
