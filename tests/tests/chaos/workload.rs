//! Rows about the workload rather than the broker, slow enough to stay out of `make test`: a
//! crash-inducing poison message (17) and a quota shared by three replicas (21). Both use the
//! shared broker in a namespace of their own; neither changes it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use integration_tests::chaos::{FaultProxy, Rig, SHARED_BROKER, WorkerProcess, assert_clean, check_row};
use switchyard_sandbox::{Fault, Provider, Rate};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

use crate::{LOG, SETTLE, gate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_17_crash_inducing_poison_message() {
    gate();
    let mut rig = Rig::start(
        "row17",
        SHARED_BROKER,
        SHARED_BROKER,
        &[
            ("CONTACT_SYNC_DESTINATIONS", "spotler"),
            ("SWITCHYARD_DELIVERY_LIMIT", "5"),
            ("SWITCHYARD_PREFETCH", "4"),
            // One Spotler call per contact, so the poison's call carries only the poison.
            ("CONTACT_SYNC_BULK", "false"),
            // Spotler's default 10/s would keep the poison's neighbours waiting for budget past
            // the kill 300 ms later: returned with it five times, an innocent one then hit the
            // delivery limit too (a second `poison` dead letter in one of three runs).
            ("SPOTLER_RATE", "200/s"),
        ],
    )
    .await;
    let proxy = FaultProxy::start(rig.sandbox.addr).await;
    rig.env.insert(
        "SPOTLER_BASE_URL".to_owned(),
        proxy.url(Provider::Spotler.path_prefix()),
    );
    rig.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::latency(20))
        .unwrap_or_else(|e| panic!("{e}"));
    // The first input is the poison: handling it "crashes" the worker. The crash is the
    // harness's SIGKILL when the poison's call leaves the worker (held at the proxy, so it
    // never reaches the stub), standing in for a panic-and-exit path on that payload.
    rig.publish_contacts(1).await;
    let poison = rig.oracle.confirmed[0].clone();
    rig.publish_contacts(300).await;
    // Quoted, so `<ns>-1` does not also match `<ns>-10`.
    let crashes = proxy.watch(&format!("\"{}\"", poison.contact_id), true);
    let mut restarts = 0;
    let mut logs = String::new();
    let mut results_during = 0;
    let episode = Instant::now();
    loop {
        let mark = crashes.load(Ordering::SeqCst);
        let mut worker = rig.spawn_worker(&[], LOG);
        let poisoned = integration_tests::wait_for(Duration::from_secs(15), || async {
            (crashes.load(Ordering::SeqCst) > mark).then_some(())
        })
        .await;
        if poisoned.is_none() {
            // The broker dead-lettered it: this worker runs on, undisturbed.
            logs.push_str(&worker.logs());
            let report = check_row("17", rig.settle(SETTLE).await);
            let letters = rig.dead_letters().await;
            println!(
                "row 17: {restarts} crash restarts in {:?}; {results_during} other results during the episode; \
                 dead letters: {:?}",
                episode.elapsed(),
                letters.iter().map(|l| l.class.as_str()).collect::<Vec<_>>()
            );
            assert!(restarts <= 6, "worker restarts ≤ 6: {restarts}");
            assert_eq!(report.dead_letters, 1, "DLQ = 1");
            assert_eq!(letters[0].message_id.as_deref(), Some(poison.message_id.as_str()));
            assert_eq!(letters[0].class, "poison", "dead-lettered by the delivery limit");
            assert!(results_during > 0, "throughput during the episode > 0");
            logs.push_str(&worker.finish().await);
            break;
        }
        // Let the other deliveries of this worker finish, then crash.
        tokio::time::sleep(Duration::from_millis(300)).await;
        worker.kill9().await;
        proxy.sever_all();
        restarts += 1;
        results_during += rig.take_results().await;
        logs.push_str(&worker.finish().await);
        assert!(restarts <= 10, "the poison message is never dead-lettered");
    }
    assert_clean("17", "worker logs", &logs, &[]);
    rig.finish().await;
}

/// The most calls in any window of `window` among `times` (sorted).
fn max_in_window(times: &[OffsetDateTime], window: time::Duration) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= window {
            start += 1;
        }
        best = best.max(end + 1 - start);
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_21_quota_shared_by_three_replicas() {
    gate();
    // Test-scaled quota: 20 calls per 10 s for the account, whatever the replica count.
    let quota = 20;
    let window = Duration::from_secs(10);
    let mut rig = Rig::start(
        "row21",
        SHARED_BROKER,
        SHARED_BROKER,
        &[
            ("CONTACT_SYNC_DESTINATIONS", "spotler"),
            ("SPOTLER_RATE", "20/10s"),
            // The quota counts calls: one contact per call.
            ("CONTACT_SYNC_BULK", "false"),
            ("REDIS_URL", "redis://127.0.0.1:6379/"),
            ("SWITCHYARD_REPLICAS", "3"),
        ],
    )
    .await;
    rig.sandbox.state.set_rate(
        Provider::Spotler,
        Some(Rate {
            count: quota,
            per: window,
        }),
    );
    let workers: Vec<WorkerProcess> = (0..3).map(|_| rig.spawn_worker(&[], LOG)).collect();
    let started = Instant::now();
    rig.publish_contacts(60).await;
    let report = check_row("21", rig.settle(SETTLE).await);
    let calls = rig.sandbox.state.calls(Provider::Spotler);
    let mut times: Vec<OffsetDateTime> = calls
        .iter()
        .filter_map(|c| OffsetDateTime::parse(&c.received_at, &Rfc3339).ok())
        .collect();
    times.sort();
    let busiest = max_in_window(&times, time::Duration::try_from(window).unwrap_or_default());
    let refused = calls.iter().filter(|c| c.status == 429).count();
    println!(
        "row 21: 3 replicas, quota {quota}/{window:?}: {} calls in {:?}, busiest window {busiest}, 429s {refused}",
        calls.len(),
        started.elapsed()
    );
    assert!(
        busiest <= usize::try_from(quota).unwrap_or(20),
        "max calls in any window ≤ {quota}: {busiest}"
    );
    assert_eq!(refused, 0, "429 count = 0");
    assert_eq!(report.dead_letters, 0);
    let mut logs = String::new();
    for worker in workers {
        logs.push_str(&worker.finish().await);
    }
    assert_clean("21", "worker logs", &logs, &[]);
    rig.finish().await;
}

#[test]
fn max_in_window_counts_the_busiest_window() {
    let at = |s: i64| OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s);
    let times = [at(0), at(1), at(5), at(10), at(11), at(12)];
    // [5 s, 15 s) holds 5, 10, 11 and 12.
    assert_eq!(max_in_window(&times, time::Duration::seconds(10)), 4);
    assert_eq!(max_in_window(&times, time::Duration::seconds(2)), 2);
    assert_eq!(max_in_window(&[], time::Duration::seconds(10)), 0);
}
