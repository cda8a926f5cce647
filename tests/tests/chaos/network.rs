//! Network faults between the worker and a private node, through `socat`: a cut (8) and a
//! half-open connection that only heartbeats can detect (9).

use std::time::Duration;

use integration_tests::chaos::{PrivateNode, Rig, Socat, assert_clean, check_row, free_port};
use switchyard_sandbox::{Fault, Provider};
use tokio::time::Instant;

use crate::{LOG, PER_CONTACT, SETTLE, assert_mid_load, gate, wait_ready, wait_results};

/// A private node, `socat` in front of it, and a rig whose worker connects through socat.
async fn behind_socat(row: &str) -> (PrivateNode, Socat, Rig) {
    let node = PrivateNode::start(&format!("row{row}")).await;
    let socat = Socat::start(free_port(), node.port()).await;
    let worker_url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", socat.port());
    let rig = Rig::start(&format!("row{row}"), &node.amqp_url(), &worker_url, &[PER_CONTACT]).await;
    rig.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::latency(20))
        .unwrap_or_else(|e| panic!("{e}"));
    (node, socat, rig)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_08_network_cut() {
    gate();
    let (_node, mut socat, mut rig) = behind_socat("08").await;
    rig.publish_contacts(150).await;
    let worker = rig.spawn_worker(&[], LOG);
    wait_results(&mut rig, 20, Duration::from_secs(60)).await;
    assert_mid_load(&rig);
    let cut = Instant::now();
    socat.cut().await;
    let noticed = worker
        .wait_log("Broker session lost", cut, Duration::from_secs(10))
        .await
        .map(|line| line.at.duration_since(cut));
    tokio::time::sleep(Duration::from_secs(15).saturating_sub(cut.elapsed())).await;
    assert!(!worker.is_ready().await, "not ready while the network is cut");
    socat.restart().await;
    let restarted = Instant::now();
    wait_ready(&worker, Duration::from_secs(30)).await;
    let reconnect = restarted.elapsed();
    let report = check_row("08", rig.settle(SETTLE).await);
    println!("row 08: loss noticed after {noticed:?}; reconnected {reconnect:?} after the proxy came back");
    assert!(noticed.is_some(), "the cut was noticed");
    assert!(
        reconnect <= Duration::from_secs(5),
        "reconnect ≤ 5 s after the proxy restart: {reconnect:?}"
    );
    assert_eq!(report.dead_letters, 0);
    let logs = worker.finish().await;
    assert_clean("08", "worker logs", &logs, &[]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_09_half_open_connection() {
    gate();
    // Scaled from 60 s: 30 s is well past the 2 × 10 s heartbeat the worker asks for.
    let black_hole = Duration::from_secs(30);
    let (_node, socat, mut rig) = behind_socat("09").await;
    rig.publish_contacts(150).await;
    let worker = rig.spawn_worker(&[], LOG);
    wait_results(&mut rig, 20, Duration::from_secs(60)).await;
    assert_mid_load(&rig);
    let frozen = Instant::now();
    socat.freeze().await;
    let noticed = worker
        .wait_log("Broker session lost", frozen, Duration::from_secs(25))
        .await
        .map(|line| line.at.duration_since(frozen));
    tokio::time::sleep(black_hole.saturating_sub(frozen.elapsed())).await;
    socat.thaw().await;
    let thawed = Instant::now();
    wait_ready(&worker, Duration::from_secs(60)).await;
    let reconnect = thawed.elapsed();
    let report = check_row("09", rig.settle(SETTLE).await);
    let in_flight = worker.metric("switchyard_in_flight", &[]).await;
    println!(
        "row 09: black hole of {black_hole:?}; loss logged after {noticed:?}; ready {reconnect:?} after it ended; \
         in flight after draining: {in_flight}"
    );
    assert!(
        noticed.is_some_and(|n| n <= Duration::from_secs(25)),
        "connection loss logged within 25 s: {noticed:?}"
    );
    assert_eq!(in_flight, 0.0, "no stuck tasks");
    assert_eq!(report.dead_letters, 0);
    let logs = worker.finish().await;
    assert_clean("09", "worker logs", &logs, &[]);
    rig.finish().await;
}
