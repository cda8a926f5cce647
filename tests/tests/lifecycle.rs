//! Process lifecycle against the real broker: SIGTERM drain of the real binary, and a broker
//! that force-closes the worker's connections. Both count every message:
//! delivered + dead-lettered = published.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use integration_tests::{Harness, binary, wait_for};
use serde_json::{Value, json};
use switchyard_sandbox::{Fault, Provider};
use tokio::process::Command;

const N: usize = 150;

fn contact(i: usize) -> Value {
    json!({
        "contact_id": format!("load-{i}"),
        "email": format!("load-{i}@example.com"),
        "first_name": "Load",
        "changed_at": "2026-11-20T10:00:00Z"
    })
}

/// Distinct (source message, destination) pairs among the results.
fn delivered(results: &[Value]) -> HashSet<(String, String)> {
    results
        .iter()
        .map(|r| {
            (
                r["source_message_id"].as_str().unwrap_or_default().to_owned(),
                r["destination"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn publish_load(h: &Harness) -> Vec<String> {
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        ids.push(h.publish("contact.changed", &contact(i)).await);
    }
    ids
}

/// Waits until every published message has both destination results, or a dead letter.
async fn account_for_everything(h: &Harness, ids: &[String], results: &mut Vec<Value>) {
    let want = ids.len() * 2;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (got, dead) = loop {
        results.extend(h.take_results().await);
        let dead = h.dead_letters().await.len();
        let got = delivered(results).len();
        if got + 2 * dead >= want {
            break (got, dead);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lost messages: only {got} of {want} destination results"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead, 0, "nothing should be dead-lettered");
    assert_eq!(got, want, "delivered + dead-lettered = published");
    let published: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert!(
        delivered(results).iter().all(|(id, _)| published.contains(id.as_str())),
        "unexpected results"
    );
}

#[tokio::test]
async fn sigterm_mid_load_exits_0_and_loses_nothing() {
    // One call per message (no bulk batching), so 150 messages take long enough to stop mid-load.
    let mut h = Harness::start("sigterm", &[("CONTACT_SYNC_BULK", "false")]).await;
    let _stopped = h.stop_worker().await;
    h.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::latency(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let ids = publish_load(&h).await;
    let mut child = Command::new(binary("contact-sync"))
        .env_clear()
        .envs(&h.env)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn contact-sync: {e}"));
    let mut results = Vec::new();
    h.wait_results(&mut results, 20, Duration::from_secs(30)).await;
    let pid = child.id().unwrap_or_default().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await;
    assert!(killed.is_ok_and(|s| s.success()));
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    let status = status
        .unwrap_or_else(|_| panic!("no exit within 30 s of SIGTERM"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.code(), Some(0), "graceful stop exits 0");
    assert!(delivered(&results).len() < N * 2, "the stop came mid-load");
    // A new worker drains what the stopped one left in the queue.
    h.start_worker();
    account_for_everything(&h, &ids, &mut results).await;
    h.finish().await;
}

/// Pids of the broker connections whose name mentions `namespace`.
async fn connections_of(namespace: &str) -> Vec<String> {
    let output = Command::new("rabbitmqctl")
        .args(["list_connections", "pid", "client_properties", "--silent"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("rabbitmqctl: {e}"));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(namespace))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn broker_closing_the_connections_is_survived_with_nothing_lost() {
    let h = Harness::start("close", &[]).await;
    h.sandbox
        .state
        .set_fault(Provider::Ecomail, Fault::latency(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let ids = publish_load(&h).await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 10, Duration::from_secs(30)).await;
    let pids = connections_of(&h.namespace).await;
    assert_eq!(
        pids.len(),
        2,
        "the worker has a consuming and a publishing connection: {pids:?}"
    );
    for pid in &pids {
        let closed = Command::new("rabbitmqctl")
            .args(["close_connection", pid, "chaos test"])
            .status()
            .await;
        assert!(closed.is_ok_and(|s| s.success()), "close_connection {pid}");
    }
    account_for_everything(&h, &ids, &mut results).await;
    let reconnected = wait_for(Duration::from_secs(20), || async {
        (h.metric("switchyard_broker_connections_total", &[]) >= 2.0).then_some(())
    })
    .await;
    assert!(reconnected.is_some(), "the worker opened a new session");
    h.finish().await;
}
