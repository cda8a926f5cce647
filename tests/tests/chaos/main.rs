//! The broker-altering and slow rows of the fault matrix (RELIABILITY.md section 6), run by
//! `make chaos` only: `cargo test -p integration-tests --features chaos --test chaos --
//! --test-threads=1` with `SWITCHYARD_CHAOS=1`. Without the `chaos` feature this binary is
//! not built at all, so `make test` neither runs nor counts these rows.
//!
//! Rows that change broker state (restarts, crashes, alarms, consumer timeout, stalls, a
//! cluster) run against private RabbitMQ nodes started for the row; network faults go through
//! `socat` between the worker and that node. The shared broker on 127.0.0.1:5672 is only used,
//! in a namespace of the row's own, by rows that do not change it (17, 21).
//!
//! One module per area; each row prints its oracle and asserts its pass criterion.

mod broker;
mod cluster;
mod network;
mod tls;
mod workload;

use std::time::Duration;

use integration_tests::chaos::WorkerProcess;

/// Log level of the worker binaries (row 25 asks for every row at trace level).
const LOG: &str = "trace";
/// How long a row waits for everything to be accounted for after its fault ends.
const SETTLE: Duration = Duration::from_secs(120);

/// One Spotler call per contact (no bulk batching): with Spotler's 10/s default budget the
/// load lasts long enough for a fault to hit it mid-way.
const PER_CONTACT: (&str, &str) = ("CONTACT_SYNC_BULK", "false");

/// Asserts that the fault is about to hit a running load (not an idle worker).
fn assert_mid_load(rig: &integration_tests::chaos::Rig) {
    let expected = rig.oracle.confirmed.len() * rig.oracle.destinations.len();
    assert!(
        rig.results().len() < expected,
        "the load finished before the fault: {} of {expected} results",
        rig.results().len()
    );
}

/// Refuses to run outside `make chaos`: these rows start RabbitMQ nodes and need root.
fn gate() {
    assert!(
        std::env::var("SWITCHYARD_CHAOS").is_ok_and(|v| v == "1"),
        "the chaos rows run under `make chaos` (SWITCHYARD_CHAOS=1): they start private RabbitMQ nodes"
    );
}

/// Waits until the worker is ready or fails the row with its log.
async fn wait_ready(worker: &WorkerProcess, timeout: Duration) {
    assert!(
        worker.wait_ready(timeout).await.is_some(),
        "the worker did not become ready within {timeout:?}: {}",
        worker.logs()
    );
}

/// Waits until at least `n` results have arrived (accumulated in the rig).
async fn wait_results(rig: &mut integration_tests::chaos::Rig, n: usize, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while rig.results().len() < n {
        rig.take_results().await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} results within {timeout:?}",
            rig.results().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
