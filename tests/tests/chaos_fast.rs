//! The fault-matrix rows that need no more than the shared broker (each in its own
//! namespace), the sandbox and local proxies, so they also run in `make test`: worker kills
//! at three points, unroutable results, a queue-argument mismatch, malformed and oversized
//! input, persistent 5xx, a 429 storm, a hanging API, an ambiguous failure, and the security
//! checks (secrets, the AMQP password and e-mail addresses in trace logs; `amqps://`; body
//! limits). Rows 4 and 5 are `lifecycle.rs`; the broker-altering rows are `tests/chaos/`.
//!
//! Every row prints its oracle (lost, duplicate side effects, unexpected; RELIABILITY.md 3.4)
//! and asserts its pass criterion from RELIABILITY.md section 6.

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::chaos::{
    BrokerUser, FaultProxy, Report, Rig, SHARED_BROKER, Schedule, assert_clean, check_row, local,
};
use integration_tests::{Harness, wait_for};
use serde_json::{Value, json};
use switchyard_sandbox::{CallRecord, Fault, Provider, RunningSandbox};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::process::Command;
use tokio::time::Instant;

/// Log level of the worker binaries: row 25 asks for every row to be clean at trace level.
const LOG: &str = "trace";
const SETTLE: Duration = Duration::from_secs(60);

/// The Spotler base URL through `proxy`.
fn spotler_via(proxy: &FaultProxy) -> String {
    proxy.url(Provider::Spotler.path_prefix())
}

/// Calls to `provider` that change state (POST/PUT) and mention `needle` in their body.
fn effect_calls(sandbox: &RunningSandbox, provider: Provider, needle: &str) -> Vec<CallRecord> {
    sandbox
        .state
        .calls(provider)
        .into_iter()
        .filter(|c| c.method == "POST" || c.method == "PUT")
        // Quoted, so `<ns>-1` does not also match `<ns>-10`.
        .filter(|c| {
            c.body
                .as_ref()
                .is_some_and(|b| b.to_string().contains(&format!("\"{needle}\"")))
        })
        .collect()
}

fn received(call: &CallRecord) -> OffsetDateTime {
    OffsetDateTime::parse(&call.received_at, &Rfc3339)
        .unwrap_or_else(|e| panic!("call timestamp {}: {e}", call.received_at))
}

async fn wait_ready(worker: &integration_tests::chaos::WorkerProcess) {
    assert!(
        worker.wait_ready(Duration::from_secs(30)).await.is_some(),
        "the worker did not become ready: {}",
        worker.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_01_sigkill_during_api_call() {
    // Prefetch 2 keeps each kill to two deliveries; the delivery limit is raised so 20 kills
    // do not turn into the poison-message row (17).
    let mut rig = Rig::start(
        "row01",
        SHARED_BROKER,
        SHARED_BROKER,
        &[("SWITCHYARD_PREFETCH", "2"), ("SWITCHYARD_DELIVERY_LIMIT", "50")],
    )
    .await;
    let proxy = FaultProxy::start(rig.sandbox.addr).await;
    rig.env.insert("SPOTLER_BASE_URL".to_owned(), spotler_via(&proxy));
    rig.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::latency(400))
        .unwrap_or_else(|e| panic!("{e}"));
    rig.publish_contacts(60).await;
    let mut schedule = Schedule::new(1);
    let mut logs = String::new();
    let mut kills = 0;
    for _ in 0..20 {
        let mark = proxy.bytes_up();
        let mut worker = rig.spawn_worker(&[], LOG);
        // The observation point: a Spotler call has reached the stub, which holds it 400 ms.
        let received = proxy.wait_bytes_after(mark, Duration::from_secs(20)).await;
        assert!(received, "no Spotler call within 20 s: {}", worker.logs());
        tokio::time::sleep(Duration::from_millis(schedule.next_below(300))).await;
        worker.kill9().await;
        kills += 1;
        logs.push_str(&worker.finish().await);
    }
    rig.sandbox.state.clear_fault(Provider::Spotler);
    let worker = rig.spawn_worker(&[], LOG);
    let report = check_row("01", rig.settle(SETTLE).await);
    println!("row 01: {kills} SIGKILLs, each while a Spotler call was held open at the stub");
    assert_eq!(kills, 20);
    assert_eq!(report.dead_letters, 0, "nothing dead-lettered: {report:?}");
    logs.push_str(&worker.finish().await);
    assert_clean("01", "worker logs", &logs, &[]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_02_sigkill_after_api_success_before_result_publish() {
    let mut rig = Rig::start("row02", SHARED_BROKER, SHARED_BROKER, &[]).await;
    // Spotler answers at once, Ecomail is held: the results (published together once both
    // destinations are done) cannot have gone out when Spotler's upsert has succeeded.
    rig.sandbox
        .state
        .set_fault(Provider::Ecomail, Fault::latency(5_000))
        .unwrap_or_else(|e| panic!("{e}"));
    rig.publish_contacts(3).await;
    let mut worker = rig.spawn_worker(&[], LOG);
    // (Spotler upserts may be batched: wait until every contact was in a successful call.)
    let ids: Vec<String> = rig.oracle.confirmed.iter().map(|p| p.contact_id.clone()).collect();
    let answered = wait_for(Duration::from_secs(20), || async {
        ids.iter()
            .all(|id| {
                effect_calls(&rig.sandbox, Provider::Spotler, id)
                    .iter()
                    .any(|c| (200..300).contains(&c.status))
            })
            .then_some(())
    })
    .await;
    assert!(answered.is_some(), "Spotler upserts did not succeed: {}", worker.logs());
    assert!(rig.take_results().await == 0, "no result may be out before the kill");
    worker.kill9().await;
    let mut logs = worker.finish().await;
    rig.sandbox.state.clear_fault(Provider::Ecomail);
    let worker = rig.spawn_worker(&[], LOG);
    let report = check_row("02", rig.settle(SETTLE).await);
    for input in &rig.oracle.confirmed {
        let calls = effect_calls(&rig.sandbox, Provider::Spotler, &input.contact_id).len();
        println!(
            "row 02: {} Spotler upserts for one input (redelivery repeats it)",
            calls
        );
        assert!((1..=2).contains(&calls), "raw calls per affected id ≤ 2, got {calls}");
    }
    assert_eq!(report.max_raw_calls_per_id.min(2), report.max_raw_calls_per_id);
    logs.push_str(&worker.finish().await);
    assert_clean("02", "worker logs", &logs, &[]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_03_sigkill_after_result_confirmed_before_input_ack() {
    // The worker reaches the broker through a proxy; its first connection is the consuming
    // one (the session opens it first), whose client-to-server bytes (the acks) are held.
    let broker = FaultProxy::start(local(5672)).await;
    let worker_url = format!("amqp://guest:guest@{}/%2f", broker.addr());
    let mut rig = Rig::start("row03", SHARED_BROKER, &worker_url, &[]).await;
    let mut worker = rig.spawn_worker(&[], LOG);
    wait_ready(&worker).await;
    assert_eq!(broker.connections(), 2, "a consuming and a publishing connection");
    broker.hold_upstream(0, true);
    let inputs = 3;
    rig.publish_contacts(inputs).await;
    // Results are confirmed (they reached the observer queue); the acks are stuck.
    let deadline = Instant::now() + Duration::from_secs(20);
    while rig.results().len() < inputs * 2 {
        rig.take_results().await;
        assert!(Instant::now() < deadline, "results never arrived: {}", worker.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.kill9().await;
    // The dead worker's connections close without the held acks: the broker requeues.
    broker.sever_all();
    let mut logs = worker.finish().await;
    let worker = rig.spawn_worker(&[], LOG);
    let report = check_row("03", rig.settle(SETTLE).await);
    println!(
        "row 03: {} duplicate result messages after 1 kill ({} inputs × 2 destinations were unacked)",
        report.duplicate_results, inputs
    );
    assert!(
        report.duplicate_results >= 1,
        "the redelivery republished results: {report:?}"
    );
    assert!(
        report.duplicate_results <= inputs * 2,
        "at most one duplicate per input and destination per kill: {report:?}"
    );
    logs.push_str(&worker.finish().await);
    assert_clean("03", "worker logs", &logs, &[]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_03_non_idempotent_external_event_is_sent_once_across_a_kill() {
    // SALESmanago external events have no idempotency key: contact-sync records each in the
    // processed-effect ledger (Redis here, as with several replicas). Killed after the event
    // and its result, before the ack, the redelivery must find it recorded.
    let broker = FaultProxy::start(local(5672)).await;
    let worker_url = format!("amqp://guest:guest@{}/%2f", broker.addr());
    let mut rig = Rig::start(
        "row03sm",
        SHARED_BROKER,
        &worker_url,
        &[
            ("CONTACT_SYNC_DESTINATIONS", "salesmanago"),
            ("SALESMANAGO_RATE", "100/s"),
            ("REDIS_URL", "redis://127.0.0.1:6379/"),
        ],
    )
    .await;
    let mut worker = rig.spawn_worker(&[], LOG);
    wait_ready(&worker).await;
    broker.hold_upstream(0, true);
    let (published, _) = rig.next_contact();
    let event = json!({
        "event_id": format!("order-{}", published.message_id),
        "type": "purchase",
        "email": published.email,
        "contact_id": published.contact_id,
        "value": 1290.5,
        "currency": "CZK",
        "products": ["SKU-1"],
        "occurred_at": "2026-11-21T18:30:00Z"
    });
    rig.publish_as("shop.event", published, &event).await;
    let sent = wait_for(Duration::from_secs(20), || async {
        (rig.sandbox.state.salesmanago_events().len() == 1).then_some(())
    })
    .await;
    assert!(sent.is_some(), "the external event was not sent: {}", worker.logs());
    let deadline = Instant::now() + Duration::from_secs(20);
    while rig.results().is_empty() {
        rig.take_results().await;
        assert!(Instant::now() < deadline, "no result: {}", worker.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.kill9().await;
    broker.sever_all();
    let mut logs = worker.finish().await;
    let worker = rig.spawn_worker(&[], LOG);
    let recognised = worker
        .wait_log(
            "already has this external event",
            Instant::now(),
            Duration::from_secs(30),
        )
        .await;
    let report = check_row("03", rig.settle(SETTLE).await);
    let events = rig.sandbox.state.salesmanago_events().len();
    println!(
        "row 03 (SALESmanago external event, Redis ledger): {events} event after a kill between the event and \
         the ack; the redelivery was recognised: {}",
        recognised.is_some()
    );
    assert_eq!(events, 1, "duplicate side effects = 0");
    assert!(recognised.is_some(), "the ledger answered for the redelivery");
    assert!(report.duplicate_results <= 1, "{report:?}");
    logs.push_str(&worker.finish().await);
    assert_clean("03", "worker logs", &logs, &[]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_04_sigterm_finishes_in_flight_work_and_redelivers_nothing_finished() {
    // lifecycle.rs (sigterm_mid_load_exits_0_and_loses_nothing) shows exit 0 and nothing lost;
    // this adds the row's other half: no message finished before the stop is handled again.
    let mut rig = Rig::start("row04", SHARED_BROKER, SHARED_BROKER, &[("CONTACT_SYNC_BULK", "false")]).await;
    rig.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::latency(200))
        .unwrap_or_else(|e| panic!("{e}"));
    rig.publish_contacts(100).await;
    let mut worker = rig.spawn_worker(&[], LOG);
    let deadline = Instant::now() + Duration::from_secs(30);
    while rig.results().len() < 20 {
        rig.take_results().await;
        assert!(Instant::now() < deadline, "no progress: {}", worker.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = Instant::now();
    worker.signal("TERM").await;
    let status = worker.wait_exit(Duration::from_secs(30)).await;
    let took = stopped.elapsed();
    let mut logs = worker.finish().await;
    assert_eq!(status.and_then(|s| s.code()), Some(0), "exit 0 within 30 s: {logs}");
    rig.take_results().await;
    let finished_before = rig.results().len();
    assert!(finished_before < 200, "the stop came mid-load");
    let worker = rig.spawn_worker(&[], LOG);
    let report = check_row("04", rig.settle(SETTLE).await);
    println!(
        "row 04: exit 0 {took:?} after SIGTERM; {finished_before} of 200 results out before the stop; redeliveries \
         of finished inputs: {} duplicate results, at most {} Spotler call(s) per contact",
        report.duplicate_results, report.max_raw_calls_per_id
    );
    assert_eq!(report.duplicate_results, 0, "0 redeliveries of already-finished ids");
    assert_eq!(report.max_raw_calls_per_id, 1, "nothing handled twice");
    logs.push_str(&worker.finish().await);
    assert_clean("04", "worker logs", &logs, &[]);
    rig.finish().await;
}

async fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl").args(args).output().await;
    assert!(
        status.as_ref().is_ok_and(|o| o.status.success()),
        "rabbitmqctl {args:?}: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_12_unroutable_result_is_never_acked() {
    let mut rig = Rig::start("row12", SHARED_BROKER, SHARED_BROKER, &[]).await;
    let worker = rig.spawn_worker(&[], LOG);
    wait_ready(&worker).await;
    // No queue for contact.synced any more, not even the alternate exchange's: a mandatory
    // publish of a result comes back as returned. Only this namespace's queues are deleted.
    for queue in [
        rig.queue(integration_tests::RESULTS),
        rig.queue("switchyard.unroutable"),
    ] {
        rabbitmqctl(&["delete_queue", &queue]).await;
    }
    rig.publish_contacts(3).await;
    let requeued = wait_for(Duration::from_secs(20), || async {
        let n = worker
            .metric("switchyard_messages_total", &[("outcome", "requeued")])
            .await;
        (n >= 6.0).then_some(n)
    })
    .await;
    assert!(
        requeued.is_some(),
        "returned results must requeue the input: {}",
        worker.logs()
    );
    assert_eq!(
        worker.metric("switchyard_messages_total", &[("outcome", "ok")]).await,
        0.0,
        "no input acked while its results are returned"
    );
    assert!(rig.dead_letters().await.is_empty());
    // Rebind: the observer and the alternate exchange's queue come back.
    rig.declare().await;
    let report = check_row("12", rig.settle(SETTLE).await);
    println!(
        "row 12: {} requeues while results were unroutable, then all delivered",
        requeued.unwrap_or_default()
    );
    assert_eq!(report.dead_letters, 0);
    assert!(
        report.max_raw_calls_per_id >= 2,
        "inputs were handled again, not acked: {report:?}"
    );
    let logs = worker.finish().await;
    assert_clean("12", "worker logs", &logs, &[]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_13_queue_argument_mismatch_fails_startup() {
    let mut rig = Rig::new("row13", SHARED_BROKER, SHARED_BROKER, &[]).await;
    let queue = rig.queue("contact-sync");
    {
        let admin = rig.admin().await;
        admin.declare(&[]).await.unwrap_or_else(|e| panic!("exchanges: {e}"));
        // A classic queue where contact-sync expects a quorum queue, bound like it.
        admin
            .declare_observer("contact-sync", &["contact.changed"])
            .await
            .unwrap_or_else(|e| panic!("classic queue: {e}"));
    }
    rig.publish_contacts(1).await;
    let started = Instant::now();
    let mut worker = rig.spawn_worker(&[], LOG);
    let status = worker.wait_exit(Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    let logs = worker.finish().await;
    let errors: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("\"level\":\"ERROR\"") && line.contains(&queue))
        .collect();
    let argument = errors
        .iter()
        .find_map(|line| line.find("inequivalent arg").map(|at| line.split_at(at).1))
        .map(|text| text.chars().take(40).collect::<String>())
        .unwrap_or_default();
    println!(
        "row 13: exit {:?} after {elapsed:?}; {} error lines name the queue, e.g. \"{argument}...\"",
        status.and_then(|s| s.code()),
        errors.len()
    );
    assert!(
        status.is_some_and(|s| !s.success()),
        "exit code ≠ 0 within 5 s, got {status:?}: {logs}"
    );
    assert!(!errors.is_empty(), "an error line names the queue: {logs}");
    assert!(
        errors.iter().any(|line| line.contains("inequivalent arg 'x-")),
        "and the argument that differs: {errors:?}"
    );
    assert_eq!(rig.depth("contact-sync").await, 1, "0 messages consumed");
    assert!(rig.sandbox.state.all_calls().is_empty());
    assert_clean("13", "worker logs", &logs, &[]);
    // The classic queue is not part of the topology `finish` removes.
    rabbitmqctl(&["delete_queue", &queue]).await;
    rig.finish().await;
}

/// Ten malformed inputs of different kinds, published raw (message id, body).
fn malformed() -> Vec<(Option<String>, Vec<u8>)> {
    let id = |i: usize| Some(format!("malformed-{i}"));
    let json = |v: Value| serde_json::to_vec(&v).unwrap_or_default();
    vec![
        (id(1), b"{\"contact_id\": ".to_vec()),
        (id(2), Vec::new()),
        (id(3), vec![0xff, 0xfe, 0x00, 0x7b, 0x22]),
        (id(4), b"[]".to_vec()),
        (id(5), json(json!({"email": "secret.person@example.com"}))),
        (
            id(6),
            json(json!({"contact_id": 42, "email": "secret.person@example.com", "changed_at": "2026-11-20T10:00:00Z"})),
        ),
        (
            id(7),
            json(json!({"contact_id": "m-7", "email": "secret.person", "changed_at": "2026-11-20T10:00:00Z"})),
        ),
        (
            id(8),
            json(json!({"contact_id": "m-8", "email": "secret.person@example.com", "changed_at": "yesterday"})),
        ),
        (
            id(9),
            json(
                json!({"contact_id": "m-9", "email": "secret.person@example.com", "changed_at": "2026-11-20T10:00:00Z", "ssn": "secret-number"}),
            ),
        ),
        (
            None,
            json(
                json!({"contact_id": "m-10", "email": "secret.person@example.com", "changed_at": "2026-11-20T10:00:00Z"}),
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_14_malformed_inputs_dead_letter_with_a_reason() {
    // The in-process harness: validation is the runtime's, the same in every worker.
    let h = Harness::start("row14", &[]).await;
    let inputs = malformed();
    for (id, body) in &inputs {
        let properties =
            mq::publisher::json_properties(id.as_deref().unwrap_or(""), "contact.changed", None, Default::default());
        let properties = if id.is_some() {
            properties
        } else {
            properties.with_message_id("".into())
        };
        h.admin
            .publish_raw("contact.changed", properties, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let published = Instant::now();
    let letters = h.wait_dead_letters(inputs.len(), Duration::from_secs(10)).await;
    let took = published.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let letters_after = h.dead_letters().await;
    let calls = h.sandbox.state.all_calls().len();
    let retries = h.metric("switchyard_retries_total", &[]);
    println!(
        "row 14 oracle: published={} lost={} duplicate_effects=0 unexpected=0 dead_letters={} api_calls={calls} \
         redeliveries={retries} dead_lettered_within={took:?}",
        inputs.len(),
        inputs.len().saturating_sub(letters_after.len()),
        letters_after.len()
    );
    assert_eq!(letters_after.len(), inputs.len(), "DLQ = {}", inputs.len());
    assert!(took <= Duration::from_secs(2), "DLQ filled within 2 s, took {took:?}");
    assert_eq!(calls, 0, "no API call for malformed input");
    assert_eq!(retries, 0.0, "never retried");
    for letter in &letters {
        assert_eq!(letter.class, "invalid", "{letter:?}");
        assert_eq!(letter.attempt, Some(1), "not redelivered: {letter:?}");
        let reason = &letter.error;
        assert!(
            reason.contains("at /") || reason.contains("not valid JSON") || reason.contains("message_id"),
            "the reason names a path, the JSON error or the missing id: {reason}"
        );
        assert!(!reason.contains("secret"), "the reason echoes no value: {reason}");
    }
    let reasons = letters.iter().map(|l| l.error.as_str()).collect::<Vec<_>>().join("\n");
    assert_clean("14", "dead-letter reasons", &reasons, &[]);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_15_oversized_message_is_dead_lettered_before_parsing() {
    let mut rig = Rig::start("row15", SHARED_BROKER, SHARED_BROKER, &[]).await;
    let worker = rig.spawn_worker(&[], LOG);
    wait_ready(&worker).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = worker.rss_kib().unwrap_or_default();
    // 2 MiB that is not JSON either: a parser would say so; the limit must speak first.
    let body = vec![b'{'; 2 * 1024 * 1024];
    rig.publish_raw(Some("oversized-1"), &body).await;
    let letters = rig
        .wait_dead_letters(1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("no dead letter: {}", worker.logs()));
    let after = worker.rss_kib().unwrap_or_default();
    let growth = after.saturating_sub(before);
    println!(
        "row 15 oracle: published=1 lost=0 duplicate_effects=0 unexpected=0 dead_letters={} api_calls={} \
         rss_growth_kib={growth}",
        letters.len(),
        rig.sandbox.state.all_calls().len()
    );
    assert_eq!(letters.len(), 1, "DLQ = 1");
    assert_eq!(letters[0].class, "invalid");
    assert!(
        letters[0].error.contains("over the limit"),
        "rejected by size, not by the parser: {}",
        letters[0].error
    );
    assert!(rig.sandbox.state.all_calls().is_empty(), "API calls = 0");
    assert!(growth < 10 * 1024, "RSS growth < 10 MB, got {growth} KiB");
    let logs = worker.finish().await;
    assert_clean("15", "worker logs", &logs, &[]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_16_persistent_5xx_exhausts_attempts_then_dead_letters() {
    let tiers = [
        Duration::from_millis(500),
        Duration::from_secs(1),
        Duration::from_secs(2),
    ];
    let mut rig = Rig::start(
        "row16",
        SHARED_BROKER,
        SHARED_BROKER,
        &[
            ("CONTACT_SYNC_DESTINATIONS", "spotler"),
            ("SWITCHYARD_RETRY_TIERS", "500ms,1s,2s"),
            ("SWITCHYARD_MAX_ATTEMPTS", "4"),
        ],
    )
    .await;
    rig.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::forced(503, 10_000))
        .unwrap_or_else(|e| panic!("{e}"));
    let worker = rig.spawn_worker(&[], LOG);
    rig.publish_contacts(5).await;
    let letters = rig
        .wait_dead_letters(5, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("5 dead letters expected: {}", worker.logs()));
    let report = check_row("16", rig.settle(SETTLE).await);
    assert_eq!(report.dead_letters, 5, "DLQ = 5");
    for letter in &letters {
        assert_eq!(letter.class, "exhausted", "{letter:?}");
        assert_eq!(letter.attempt, Some(4), "our own attempt header: {letter:?}");
    }
    for input in &rig.oracle.confirmed {
        let calls = effect_calls(&rig.sandbox, Provider::Spotler, &input.contact_id);
        assert_eq!(calls.len(), 4, "exactly 4 API attempts per id");
        for (i, pair) in calls.windows(2).enumerate() {
            let gap = received(&pair[1]) - received(&pair[0]);
            let floor = time::Duration::try_from(tiers[i]).unwrap_or_default() - time::Duration::milliseconds(100);
            assert!(gap >= floor, "gap {i} is {gap}, tier is {:?}", tiers[i]);
        }
    }
    println!("row 16: 5 ids × 4 attempts, gaps ≥ tier − 100 ms, then exhausted");
    let logs = worker.finish().await;
    assert_clean("16", "worker logs", &logs, &[]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_18_429_storm_delays_without_dead_letters() {
    let retry_after = 2;
    let mut rig = Rig::start(
        "row18",
        SHARED_BROKER,
        SHARED_BROKER,
        &[
            ("CONTACT_SYNC_DESTINATIONS", "spotler"),
            ("SWITCHYARD_MAX_ATTEMPTS", "1"),
            ("SPOTLER_CONCURRENCY", "4"),
        ],
    )
    .await;
    rig.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::forced(429, 12).with_retry_after(retry_after))
        .unwrap_or_else(|e| panic!("{e}"));
    let worker = rig.spawn_worker(&[], LOG);
    rig.publish_contacts(10).await;
    let report = check_row("18", rig.settle(SETTLE).await);
    assert_eq!(
        report.dead_letters, 0,
        "rate limits are not failures, even with one attempt"
    );
    let calls = rig.sandbox.state.calls(Provider::Spotler);
    let limited: Vec<OffsetDateTime> = calls.iter().filter(|c| c.status == 429).map(received).collect();
    assert_eq!(limited.len(), 12, "the storm happened");
    // A call may cross a 429 on the wire (sent before the answer came back), nothing later.
    let in_flight = time::Duration::milliseconds(150);
    let pause = time::Duration::seconds(i64::try_from(retry_after).unwrap_or(2)) - time::Duration::milliseconds(100);
    let early: Vec<String> = calls
        .iter()
        .map(|c| (received(c), c.status))
        .filter(|(at, _)| limited.iter().any(|t| *at > *t + in_flight && *at < *t + pause))
        .map(|(at, status)| format!("{at} ({status})"))
        .collect();
    println!(
        "row 18: {} calls, {} answered 429 with Retry-After {retry_after}; calls before Retry-After expired: {}",
        calls.len(),
        limited.len(),
        early.len()
    );
    assert!(early.is_empty(), "calls before Retry-After expired: {early:?}");
    let logs = worker.finish().await;
    assert_clean("18", "worker logs", &logs, &[]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_19_hanging_api_times_out_retries_and_leaks_nothing() {
    let concurrency = 2;
    let mut rig = Rig::start(
        "row19",
        SHARED_BROKER,
        SHARED_BROKER,
        &[
            ("CONTACT_SYNC_DESTINATIONS", "spotler"),
            ("SPOTLER_TIMEOUT", "1s"),
            ("SPOTLER_CONCURRENCY", "2"),
            ("SWITCHYARD_RETRY_TIERS", "500ms,1s"),
            ("SWITCHYARD_MAX_ATTEMPTS", "6"),
        ],
    )
    .await;
    let proxy = FaultProxy::start(rig.sandbox.addr).await;
    rig.env.insert("SPOTLER_BASE_URL".to_owned(), spotler_via(&proxy));
    rig.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::latency(60_000))
        .unwrap_or_else(|e| panic!("{e}"));
    let worker = rig.spawn_worker(&[], LOG);
    rig.publish_contacts(3).await;
    let seen: Vec<_> = rig
        .oracle
        .confirmed
        .iter()
        .map(|p| proxy.watch(&format!("\"{}\"", p.contact_id), false))
        .collect();
    let timed_out = wait_for(Duration::from_secs(30), || async {
        seen.iter()
            .all(|s| s.load(std::sync::atomic::Ordering::SeqCst) >= 2)
            .then_some(())
    })
    .await;
    assert!(
        timed_out.is_some(),
        "each input timed out and was tried again: {}",
        worker.logs()
    );
    rig.sandbox.state.clear_fault(Provider::Spotler);
    let report = check_row("19", rig.settle(SETTLE).await);
    assert_eq!(report.dead_letters, 0);
    let text = worker.metrics_text().await;
    let sum = |name: &str, labels: &[(&str, &str)]| integration_tests::chaos::process::sum_samples(&text, name, labels);
    let timeouts = sum(
        "switchyard_provider_requests_total",
        &[("provider", "spotler"), ("status_class", "timeout")],
    );
    let attempts = sum(
        "switchyard_provider_request_duration_seconds_count",
        &[("provider", "spotler")],
    );
    let within = sum(
        "switchyard_provider_request_duration_seconds_bucket",
        &[("provider", "spotler"), ("le", "2.5")],
    );
    let in_flight = sum("switchyard_in_flight", &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sockets = worker.sockets_to(proxy.addr().port()).await;
    println!(
        "row 19: {timeouts} timeouts of the 1 s limit, {attempts} attempts all ≤ 2.5 s: {}; \
         in flight after: {in_flight}; open sockets to the API: {sockets} (concurrency {concurrency})",
        within == attempts
    );
    assert!(timeouts >= 2.0, "the timeout fired on the hung calls: {timeouts}");
    assert_eq!(within, attempts, "each attempt ≤ timeout + 1.5 s");
    assert_eq!(in_flight, 0.0, "no task left behind");
    assert!(sockets <= concurrency, "open sockets ≤ concurrency: {sockets}");
    let logs = worker.finish().await;
    assert_clean("19", "worker logs", &logs, &[]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_20_ambiguous_failure_effect_done_response_lost() {
    let mut rig = Rig::start(
        "row20",
        SHARED_BROKER,
        SHARED_BROKER,
        &[("CONTACT_SYNC_DESTINATIONS", "spotler")],
    )
    .await;
    let proxy = FaultProxy::start(rig.sandbox.addr).await;
    rig.env.insert("SPOTLER_BASE_URL".to_owned(), spotler_via(&proxy));
    // The stub commits the first upsert call (one contact, or a batch of them), then its
    // answer is lost (connection reset).
    proxy.drop_next_responses(1);
    let worker = rig.spawn_worker(&[], LOG);
    rig.publish_contacts(3).await;
    let report = check_row("20", rig.settle(SETTLE).await);
    assert_eq!(proxy.dropped_responses(), 1, "one answer was lost");
    let per_id: BTreeMap<String, usize> = rig
        .oracle
        .confirmed
        .iter()
        .map(|p| {
            (
                p.contact_id.clone(),
                effect_calls(&rig.sandbox, Provider::Spotler, &p.contact_id).len(),
            )
        })
        .collect();
    println!("row 20: raw upserts per id after a lost answer: {per_id:?}");
    let affected = per_id.values().filter(|n| **n == 2).count();
    assert!(affected >= 1, "the lost answer's contacts were sent again: {per_id:?}");
    assert!(
        per_id.values().all(|n| *n == 1 || *n == 2),
        "raw calls = 2 per affected id, 1 for the others: {per_id:?}"
    );
    assert_eq!(report.dead_letters, 0);
    let logs = worker.finish().await;
    assert_clean("20", "worker logs", &logs, &[]);
    rig.finish().await;
}

/// Pids of the shared broker's connections opened by `user`.
async fn connections_of_user(user: &str) -> Vec<String> {
    let output = Command::new("rabbitmqctl")
        .args(["list_connections", "pid", "user", "--silent"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("rabbitmqctl: {e}"));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.split_whitespace().nth(1) == Some(user))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_25_no_secret_password_or_address_in_trace_logs_under_faults() {
    // The worker logs in as a user of its own with a password no log may contain.
    let mut rig = Rig::new("row25", SHARED_BROKER, SHARED_BROKER, &[]).await;
    let user = BrokerUser::create(&rig.namespace).await;
    rig.env.insert("AMQP_URL".to_owned(), user.amqp_url());
    rig.declare().await;
    rig.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::forced(500, 2))
        .unwrap_or_else(|e| panic!("{e}"));
    rig.sandbox
        .state
        .set_fault(Provider::Ecomail, Fault::forced(429, 2).with_retry_after(1))
        .unwrap_or_else(|e| panic!("{e}"));
    let worker = rig.spawn_worker(&[], "trace");
    wait_ready(&worker).await;
    rig.publish_contacts(5).await;
    for (id, body) in malformed().into_iter().take(6) {
        rig.publish_raw(id.as_deref(), &body).await;
    }
    let first = rig.settle(SETTLE).await;
    assert_eq!(first.lost, 0, "{first:?}");
    // A broker connection close in the middle.
    let pids = connections_of_user(&user.name).await;
    assert_eq!(pids.len(), 2, "the worker's two connections: {pids:?}");
    for pid in &pids {
        rabbitmqctl(&["close_connection", pid, "row 25"]).await;
    }
    assert!(
        worker.wait_ready(Duration::from_secs(20)).await.is_some() && connections_of_user(&user.name).await.len() == 2,
        "the worker reconnected"
    );
    rig.publish_contacts(2).await;
    let report: Report = check_row("25", rig.settle(SETTLE).await);
    assert_eq!(report.dead_letters, 6, "the malformed inputs, and only them");
    let dead = rig.dead_letters().await;
    let metrics = worker.metrics_text().await;
    let logs = worker.finish().await;
    assert!(logs.lines().count() > 1000, "trace logging was on");
    assert!(logs.contains("Broker session lost"), "the close was logged");
    assert_clean("25", "trace logs", &logs, &[&user.password]);
    let reasons = dead.iter().map(|l| l.error.as_str()).collect::<Vec<_>>().join("\n");
    assert_clean("25", "dead-letter reasons", &reasons, &[&user.password]);
    assert_clean("25", "metrics", &metrics, &[&user.password]);
    drop(user);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_urls_are_accepted_and_only_the_host_is_logged() {
    let rig = Rig::new("amqps", SHARED_BROKER, SHARED_BROKER, &[]).await;
    let port = integration_tests::chaos::free_port();
    let url = format!("amqps://tls-user:tls-pass-4c1d@127.0.0.1:{port}/%2f");
    let since = Instant::now();
    let mut worker = rig.spawn_worker(&[("AMQP_URL", &url)], "debug");
    // Nothing listens there: the worker keeps trying (no exit 64 for the scheme) and logs the
    // target as scheme://host:port only.
    let exited = worker.wait_exit(Duration::from_secs(3)).await;
    assert!(
        exited.is_none(),
        "an amqps:// URL is a valid configuration: {:?}",
        exited
    );
    let redacted = format!("amqps://127.0.0.1:{port}");
    let line = worker.wait_log(&redacted, since, Duration::from_secs(10)).await;
    let logs = worker.finish().await;
    println!(
        "amqps: accepted; the connection error names {redacted}: {}",
        line.is_some()
    );
    assert!(line.is_some(), "the log names the broker by host: {logs}");
    assert_clean("amqps", "worker logs", &logs, &["tls-pass-4c1d", "tls-user"]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_refuses_oversized_bodies_with_413() {
    let sandbox = switchyard_sandbox::spawn(switchyard_sandbox::SandboxConfig::for_tests())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let body = vec![b'{'; switchyard_sandbox::MAX_BODY_BYTES + 1];
    let response = integration_tests::chaos::http_client()
        .post(format!("{}/subscribe", sandbox.ecomail_base_url()))
        .header("key", switchyard_sandbox::DEFAULT_ECOMAIL_API_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let calls = sandbox.state.calls(Provider::Ecomail);
    println!(
        "sandbox: a {} byte body got HTTP {}",
        switchyard_sandbox::MAX_BODY_BYTES + 1,
        response.status().as_u16()
    );
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [413]);
    assert!(calls[0].body.is_none(), "the body was never parsed");
}
