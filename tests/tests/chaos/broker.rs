//! Rows that change the broker itself, each on a private node: soft restart (6), hard crash
//! (7), memory and disk alarms (10, 11), the consumer (ack) timeout (22) and a broker that
//! stalls mid-publish (23).

use std::time::Duration;

use integration_tests::chaos::{PrivateNode, Rig, assert_clean, check_row};
use switchyard_sandbox::{Fault, Provider};
use tokio::time::Instant;

use crate::{LOG, PER_CONTACT, SETTLE, assert_mid_load, gate, wait_ready, wait_results};

/// Keeps work in flight: every Spotler call takes this long.
fn slow_spotler(rig: &Rig, ms: u64) {
    rig.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::latency(ms))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_06_broker_soft_restart() {
    gate();
    let node = PrivateNode::start("row06").await;
    let url = node.amqp_url();
    let mut rig = Rig::start("row06", &url, &url, &[PER_CONTACT]).await;
    slow_spotler(&rig, 20);
    rig.publish_contacts(150).await;
    let mut worker = rig.spawn_worker(&[], LOG);
    wait_results(&mut rig, 20, Duration::from_secs(60)).await;
    assert_mid_load(&rig);
    node.must(&["stop_app"]).await;
    rig.reconnect();
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        worker.wait_exit(Duration::ZERO).await.is_none(),
        "no crash while the broker is away"
    );
    node.must(&["start_app"]).await;
    let started = Instant::now();
    let before = rig.results().len();
    wait_ready(&worker, Duration::from_secs(30)).await;
    wait_results(&mut rig, before + 1, Duration::from_secs(30)).await;
    let resumed = started.elapsed();
    let report = check_row("06", rig.settle(SETTLE).await);
    let attempts = worker.logs().matches("Cannot start a broker session").count();
    println!("row 06: processing resumed {resumed:?} after start_app; {attempts} reconnect attempts during 20 s away");
    assert!(resumed <= Duration::from_secs(30), "resumed within 30 s: {resumed:?}");
    assert!(attempts <= 40, "backoff, not a hot loop: {attempts} attempts");
    assert_eq!(report.dead_letters, 0);
    let logs = worker.finish().await;
    assert_clean("06", "worker logs", &logs, &[]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_07_broker_hard_crash() {
    gate();
    let node = PrivateNode::start("row07").await;
    let url = node.amqp_url();
    let mut rig = Rig::start("row07", &url, &url, &[PER_CONTACT]).await;
    slow_spotler(&rig, 20);
    rig.publish_contacts(100).await;
    let worker = rig.spawn_worker(&[], LOG);
    wait_results(&mut rig, 20, Duration::from_secs(60)).await;
    assert_mid_load(&rig);
    node.kill9().await;
    // Publishing into the crash (on the connection the crash broke): no confirm, so the
    // outcome is unknown.
    let unknown = rig.publish_one().await;
    assert!(unknown.is_none(), "a publish to a crashed broker cannot be confirmed");
    tokio::time::sleep(Duration::from_secs(5)).await;
    node.restart().await;
    rig.reconnect();
    rig.publish_contacts(50).await;
    let report = check_row("07", rig.settle(SETTLE).await);
    println!(
        "row 07: {} confirmed survived the crash; {} publishes without a confirm; {} duplicate results",
        report.published, report.indeterminate, report.duplicate_results
    );
    assert_eq!(report.indeterminate, 1, "the crash hit a publish: {report:?}");
    assert_eq!(report.dead_letters, 0);
    let logs = worker.finish().await;
    assert_clean("07", "worker logs", &logs, &[]);
    rig.finish().await;
}

/// Rows 10 and 11: a resource alarm blocks publishers for `hold`; nothing may be acked
/// without its confirmed result, memory must not balloon, and the backlog drains afterwards.
async fn alarm_row(row: &str, raise: &[&str], clear: &[&str]) {
    gate();
    let hold = Duration::from_secs(35);
    let node = PrivateNode::start(&format!("row{row}")).await;
    let url = node.amqp_url();
    let mut rig = Rig::start(&format!("row{row}"), &url, &url, &[PER_CONTACT]).await;
    slow_spotler(&rig, 20);
    rig.publish_contacts(300).await;
    let worker = rig.spawn_worker(&[], LOG);
    wait_results(&mut rig, 20, Duration::from_secs(60)).await;
    let rss_before = worker.rss_kib().unwrap_or_default();
    assert_mid_load(&rig);
    node.must(raise).await;
    let raised = Instant::now();
    let mut rss_peak = rss_before;
    let mut acked_at_start = None;
    while raised.elapsed() < hold {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_peak = rss_peak.max(worker.rss_kib().unwrap_or_default());
        // Give in-flight publishes that beat the alarm a moment, then count acks.
        if acked_at_start.is_none() && raised.elapsed() >= Duration::from_secs(3) {
            acked_at_start = Some(worker.metric("switchyard_messages_total", &[("outcome", "ok")]).await);
        }
    }
    let acked_at_end = worker.metric("switchyard_messages_total", &[("outcome", "ok")]).await;
    let requeued = worker
        .metric("switchyard_messages_total", &[("outcome", "requeued")])
        .await;
    node.must(clear).await;
    let cleared = Instant::now();
    let report = check_row(row, rig.settle(SETTLE).await);
    let drained = cleared.elapsed();
    let growth_kib = rss_peak.saturating_sub(rss_before);
    println!(
        "row {row}: alarm held {hold:?}; inputs acked during the alarm: {}; requeued after a confirm timeout: \
         {}; RSS growth {growth_kib} KiB; backlog drained {drained:?} after clearing",
        acked_at_end - acked_at_start.unwrap_or(acked_at_end),
        requeued.max(0.0)
    );
    assert_eq!(
        acked_at_start,
        Some(acked_at_end),
        "0 inputs acked without a confirmed result while publishing was blocked"
    );
    assert!(growth_kib < 50 * 1024, "RSS growth < 50 MB: {growth_kib} KiB");
    assert!(drained <= Duration::from_secs(120), "drained within 120 s: {drained:?}");
    assert_eq!(report.dead_letters, 0);
    let logs = worker.finish().await;
    assert_clean(row, "worker logs", &logs, &[]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_10_memory_alarm_blocks_publishing() {
    alarm_row(
        "10",
        &["set_vm_memory_high_watermark", "0.00001"],
        &["set_vm_memory_high_watermark", "0.4"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_11_disk_alarm_blocks_publishing() {
    alarm_row(
        "11",
        &["set_disk_free_limit", "100000GB"],
        &["set_disk_free_limit", "50MB"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_22_consumer_ack_timeout() {
    gate();
    let node = PrivateNode::start("row22").await;
    // Scaled down: a 5 s ack timeout checked every second (3.10 checks on the channel tick),
    // set before the worker opens its channels.
    node.eval("application:set_env(rabbit, consumer_timeout, 5000).").await;
    node.eval("application:set_env(rabbit, channel_tick_interval, 1000).")
        .await;
    let url = node.amqp_url();
    let mut rig = Rig::start(
        "row22",
        &url,
        &url,
        &[
            ("CONTACT_SYNC_DESTINATIONS", "spotler"),
            ("SWITCHYARD_MAX_HOLD", "2m"),
            ("SPOTLER_TIMEOUT", "90s"),
            // After a lost session the runtime waits this long for in-flight handlers (so
            // their effects are recorded before the redelivery) before it reconnects.
            ("SWITCHYARD_DRAIN_DEADLINE", "5s"),
        ],
    )
    .await;
    slow_spotler(&rig, 60_000);
    let worker = rig.spawn_worker(&[], LOG);
    wait_ready(&worker, Duration::from_secs(30)).await;
    let since = Instant::now();
    rig.publish_contacts(1).await;
    // The broker's 406 on the consuming channel (lapin logs it as it arrives).
    let closed = worker
        .wait_log("PRECONDITION_FAILED", since, Duration::from_secs(120))
        .await
        .unwrap_or_else(|| panic!("the broker never timed the delivery out: {}", worker.logs()));
    let hit = closed.at.duration_since(since);
    // The handler's call is still hanging; the next attempt gets a prompt answer.
    rig.sandbox.state.clear_fault(Provider::Spotler);
    let recovered = worker
        .wait_log("Consuming.", closed.at, Duration::from_secs(60))
        .await
        .map(|line| line.at.duration_since(closed.at));
    let report = check_row("22", rig.settle(SETTLE).await);
    println!(
        "row 22: ack timeout hit after {hit:?} (406 PRECONDITION_FAILED on the consuming channel); consuming \
         again {recovered:?} after the closure (in-flight handlers get SWITCHYARD_DRAIN_DEADLINE=5s first)"
    );
    assert!(hit <= Duration::from_secs(120), "timeout hit ≤ 120 s: {hit:?}");
    assert!(
        recovered.is_some_and(|r| r <= Duration::from_secs(10)),
        "channel recovered ≤ 10 s after the closure: {recovered:?}"
    );
    assert_eq!(report.dead_letters, 0);
    let logs = worker.finish().await;
    assert_clean("22", "worker logs", &logs, &[]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_23_broker_stalls_mid_publish() {
    gate();
    let node = PrivateNode::start("row23").await;
    let url = node.amqp_url();
    let prefetch = 8;
    let mut rig = Rig::start("row23", &url, &url, &[("SWITCHYARD_PREFETCH", "8"), PER_CONTACT]).await;
    slow_spotler(&rig, 20);
    rig.publish_contacts(200).await;
    let worker = rig.spawn_worker(&[], LOG);
    wait_results(&mut rig, 20, Duration::from_secs(60)).await;
    assert_mid_load(&rig);
    node.freeze().await;
    let frozen = Instant::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    node.thaw().await;
    let acked_before = worker.metric("switchyard_messages_total", &[("outcome", "ok")]).await;
    let report = check_row("23", rig.settle(SETTLE).await);
    let lost_sessions = worker.logs().matches("Broker session lost").count();
    println!(
        "row 23: broker frozen 20 s; {lost_sessions} sessions lost; {} duplicate results (inputs in flight at the \
         stall are re-handled); {acked_before} acked before settling",
        report.duplicate_results
    );
    assert!(frozen.elapsed() >= Duration::from_secs(20));
    assert!(
        report.duplicate_results <= 2 * prefetch * (lost_sessions + 1),
        "duplicates bounded by what was in flight: {report:?}"
    );
    assert_eq!(report.dead_letters, 0);
    let logs = worker.finish().await;
    assert_clean("23", "worker logs", &logs, &[]);
    rig.finish().await;
}
