//! The Redis-shared budget against a real Redis server: the atomic script under concurrent
//! callers from several "replicas", the shared pause, and the fallback while Redis is down.

use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use api_client::{Budget, HttpMetrics};
use settings::ProviderLimits;
use tokio::sync::Mutex;
use tokio::time::Instant;

fn limits(windows: &str, concurrency: u32) -> ProviderLimits {
    ProviderLimits {
        windows: settings::parse_windows(windows).unwrap_or_else(|e| panic!("{e}")),
        burst: None,
        concurrency: NonZeroU32::new(concurrency).unwrap_or(NonZeroU32::MIN),
        timeout: Duration::from_secs(5),
    }
}

fn key() -> String {
    format!(
        "switchyard:test-{}:budget",
        std::process::id() as u64 * 1_000_000 + rand_suffix()
    )
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0)
}

const REDIS_URL: &str = "redis://127.0.0.1:6379/";

fn replicas(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn shared_budget(url: &str, windows: &str, n_replicas: u32, key: &str) -> Budget {
    let connection = api_client::shared::connect_lazy(url).unwrap_or_else(|e| panic!("{e}"));
    Budget::shared(&limits(windows, 64), replicas(n_replicas), connection, key)
}

fn max_in_window(times: &mut [Duration], window: Duration) -> usize {
    times.sort();
    let (mut best, mut start) = (0, 0);
    for end in 0..times.len() {
        while times[end] - times[start] >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_never_exceed_the_shared_quota_and_use_it() {
    let key = key();
    let replicas: Vec<Arc<Budget>> = (0..3)
        .map(|_| Arc::new(shared_budget(REDIS_URL, "40/s", 3, &key)))
        .collect();
    let started = Instant::now();
    let times = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for budget in &replicas {
        for _ in 0..8 {
            let (budget, times) = (Arc::clone(budget), Arc::clone(&times));
            tasks.push(tokio::spawn(async move {
                while started.elapsed() < Duration::from_secs(3) {
                    if let Ok(permit) = budget.acquire(Duration::from_millis(500)).await {
                        times.lock().await.push(started.elapsed());
                        drop(permit);
                    }
                }
            }));
        }
    }
    for task in tasks {
        assert!(task.await.is_ok());
    }
    let mut times = times.lock().await.clone();
    // Admission times are seen by the clients, a few ms after Redis decided; a slightly shorter
    // window keeps that jitter from counting as an overshoot (a broken share would be far over).
    let max = max_in_window(&mut times, Duration::from_millis(950));
    assert!(max <= 40, "{max} calls in one second across replicas, quota 40/s");
    // A backlog uses nearly the whole quota (not just a third of it, as a per-replica split would).
    let total = times.len();
    assert!(
        total >= 100,
        "only {total} calls in 3 s with a 40/s quota shared by 3 replicas"
    );
}

#[tokio::test]
async fn a_pause_in_one_replica_holds_every_replica() {
    let key = key();
    let a = shared_budget(REDIS_URL, "1000/s", 2, &key);
    let b = shared_budget(REDIS_URL, "1000/s", 2, &key);
    assert!(a.acquire(Duration::from_secs(1)).await.is_ok());
    a.pause_for(Duration::from_millis(1500)).await;
    let started = Instant::now();
    let early = b.acquire(Duration::from_millis(300)).await;
    assert!(early.is_err(), "replica b must respect a's pause");
    assert!(b.acquire(Duration::from_secs(3)).await.is_ok());
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "waited {:?}",
        started.elapsed()
    );
}

struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server must be installed (scripts/setup.sh does): {e}"));
        Self { child, port }
    }

    async fn wait_up(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    fn stop(mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn fallback(registry: &prometheus::Registry) -> i64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == "switchyard_rate_limit_fallback")
        .flat_map(|f| {
            f.get_metric()
                .iter()
                .map(|m| m.get_gauge().get_value() as i64)
                .collect::<Vec<_>>()
        })
        .sum()
}

#[tokio::test]
async fn falls_back_to_the_replica_share_while_redis_is_down_and_recovers() {
    let port = free_port();
    let server = RedisServer::start(port);
    server.wait_up().await;
    let registry = prometheus::Registry::new();
    let metrics = HttpMetrics::register(&registry).unwrap_or_else(|e| panic!("{e}"));
    let url = format!("redis://127.0.0.1:{port}/");
    let budget = shared_budget(&url, "100/s", 4, &key()).observe(metrics, "acme");
    assert!(budget.acquire(Duration::from_secs(1)).await.is_ok());
    assert_eq!(fallback(&registry), 0);

    server.stop();
    // Redis is gone: calls still go, at this replica's share (25/s), and the state says so.
    let started = Instant::now();
    for _ in 0..10 {
        assert!(
            budget.acquire(Duration::from_secs(2)).await.is_ok(),
            "fallback must admit calls"
        );
    }
    assert_eq!(fallback(&registry), 1);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "10 calls at 25/s take about 0.36 s: {:?}",
        started.elapsed()
    );

    let server = RedisServer::start(port);
    server.wait_up().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut recovered = false;
    for _ in 0..40 {
        assert!(budget.acquire(Duration::from_secs(2)).await.is_ok());
        if fallback(&registry) == 0 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the budget goes back to Redis once it answers");
    server.stop();
}

/// A provider answering 429 to one replica pauses every replica through Redis.
#[tokio::test]
async fn a_429_seen_by_one_replica_pauses_the_others() {
    use api_client::ProviderClient;
    use switchyard_sandbox::{Fault, Provider, SandboxConfig};

    let sandbox = switchyard_sandbox::spawn(SandboxConfig::for_tests())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sandbox
        .state
        .set_fault(Provider::Ecomail, Fault::forced(429, 1).with_retry_after(2))
        .unwrap_or_else(|e| panic!("{e}"));
    let prefix = key();
    let base: url::Url = sandbox.ecomail_base_url().parse().unwrap_or_else(|e| panic!("{e}"));
    let client = |registry: &prometheus::Registry| {
        let metrics = HttpMetrics::register(registry).unwrap_or_else(|e| panic!("{e}"));
        let connection = api_client::shared::connect_lazy(REDIS_URL).unwrap_or_else(|e| panic!("{e}"));
        ProviderClient::new(
            "ecomail",
            base.clone(),
            &limits("1000/s", 4),
            replicas(2),
            Duration::from_secs(10),
            metrics,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .with_shared_budget(connection, &prefix)
    };
    let (a, b) = (
        client(&prometheus::Registry::new()),
        client(&prometheus::Registry::new()),
    );
    let get = |c: &ProviderClient| {
        let c = c.clone();
        async move {
            c.send_json(
                "events",
                reqwest::Method::GET,
                "/subscribers/x@example.com/events",
                None,
                |r| r.header("key", "sandbox-ecomail-key"),
                |reply, class| api_client::client::vendor_error("ecomail", "events", reply, class, ""),
            )
            .await
        }
    };
    // Replica a meets the 429 (and waits it out itself).
    let started = Instant::now();
    let first = tokio::spawn(get(&a));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Replica b has seen no 429, yet must not call before the shared pause ends.
    let second = get(&b).await;
    assert!(
        second.is_ok() || matches!(second, Err(api_client::CallError::NotFound(_))),
        "{second:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "b called during a's pause: {:?}",
        started.elapsed()
    );
    assert!(first.await.is_ok());
    let statuses: Vec<u16> = sandbox
        .state
        .calls(Provider::Ecomail)
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1, "{statuses:?}");
}
