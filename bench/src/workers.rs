//! End-to-end throughput of the other consuming workers, each against the floor: every worker
//! pays the same consume → validate → provider call → confirmed result → ack path, but each
//! with its own payloads, provider adapter and idempotency records.
//!
//! Like contact-sync's run, each drains a backlog of distinct messages with prefetch 200 and
//! the provider's rate and concurrency out of the way (the sandbox enforces no limit here).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use switchyard_sandbox::Provider;

use crate::amqp::Message;
use crate::harness::{self, Bench, Drained};
use crate::series::{self, Series};
use crate::summary::{Figure, Summary};
use crate::throughput::{self, PREFETCH, Workload};

/// Provider concurrency of the throughput runs (as contact-sync's).
const CONCURRENCY: u32 = 200;

/// loyalty-events' message types.
const LOYALTY_EVENTS_KEYS: &[&str] = &[
    "points.changed",
    "points.expiring",
    "pin.changed",
    "loyalty.subscription.changed",
];

/// voucher-events' message types.
pub(crate) const VOUCHER_EVENTS_KEYS: &[&str] = &[
    "voucher.publish.requested",
    "voucher.redeemed",
    "bloomreach.customer.updated",
    "bloomreach.event.exported",
];

/// recommendations' message types.
const RECOMMENDATIONS_KEYS: &[&str] = &["recommendation.requested", "recommendation.tracked"];

/// voucher-events' environment with every credential it requires, pointed at the sandbox.
pub(crate) fn voucher_events_env(bench: &Bench, namespace: &str) -> BTreeMap<String, String> {
    let schema: PathBuf = bench.config.workspace.join("config/voucherify-metadata.toml");
    let mut env = harness::with_providers(bench, namespace, &[Provider::Voucherify, Provider::Bloomreach]);
    env.insert("VOUCHERIFY_METADATA_SCHEMA".to_owned(), schema.display().to_string());
    env
}

/// Adds the throughput settings: prefetch 200 and `provider`'s limiter out of the way.
fn fast(mut env: BTreeMap<String, String>, provider: &str) -> BTreeMap<String, String> {
    env.insert("SWITCHYARD_PREFETCH".to_owned(), PREFETCH.to_string());
    harness::unlimited(&mut env, provider, CONCURRENCY);
    env
}

fn loyalty_events_env(bench: &Bench, namespace: &str) -> BTreeMap<String, String> {
    let mut env = harness::with_providers(bench, namespace, &[Provider::Ecomail]);
    env.insert("ECOMAIL_LIST_ID".to_owned(), LOYALTY_LIST_ID.to_string());
    fast(env, "ECOMAIL")
}

fn recommendations_env(bench: &Bench, namespace: &str) -> BTreeMap<String, String> {
    fast(
        harness::with_providers(bench, namespace, &[Provider::Froomle]),
        "FROOMLE",
    )
}

fn json_message(id: String, kind: &'static str, body: &serde_json::Value) -> Message {
    Message {
        id,
        kind,
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

/// The Ecomail list loyalty-events keeps its fields in.
const LOYALTY_LIST_ID: u64 = 1;

/// The e-mail of customer `index`.
fn email(prefix: &str, index: usize) -> String {
    format!("{prefix}.{index}@example.com")
}

/// A `points.expiring` inside the notice window, for a distinct customer (an Ecomail field
/// update and a tracker event each).
fn points_expiring(prefix: &str, index: usize) -> Message {
    let body = serde_json::json!({
        "customer_id": format!("{prefix}-{index}"),
        "customer_email": email(prefix, index),
        "points": 300,
        "expires_on": "2026-12-31",
        "balance": 1250,
        "as_of": "2026-12-24T02:00:00+01:00",
    });
    json_message(format!("{prefix}-{index}"), "points.expiring", &body)
}

/// A `voucher.publish.requested` for a distinct customer (one Voucherify publication each).
pub(crate) fn voucher_publish_requested(prefix: &str, index: usize) -> Message {
    let body = serde_json::json!({
        "campaign": "Welcome 10",
        "customer": { "source_id": format!("{prefix}-{index}") },
    });
    json_message(format!("{prefix}-{index}"), "voucher.publish.requested", &body)
}

/// A `recommendation.requested` for a distinct user (one Froomle request each).
fn recommendation_requested(prefix: &str, index: usize) -> Message {
    let body = serde_json::json!({
        "environment": "bench",
        "user_id": format!("{prefix}-{index}"),
        "list_name": "newsletter_top",
        "list_size": 3,
        "page_type": "newsletter",
        "campaign_id": "weekly-2026-47",
    });
    json_message(format!("{prefix}-{index}"), "recommendation.requested", &body)
}

/// Drains one backlog per worker and adds `<worker>_msgs_per_s` for each (its
/// `throughput_ratio_<worker>` follows from it in `throughput::ratios`).
pub(crate) async fn each(bench: &Bench, summary: &mut Summary, plots: &mut Vec<Series>) -> Result<()> {
    let backlog = bench.config.sizes.worker;
    let load = |worker: &'static str, keys, result: &'static [&'static str]| Workload {
        scenario: worker,
        worker,
        keys,
        results: result,
        results_per_message: 1,
        backlog,
    };

    throughput::floor_before(bench, summary, "loyalty_events").await?;
    println!("worker: loyalty-events (points.expiring → Ecomail fields + tracker event), backlog {backlog}");
    bench.sandbox.state.reset();
    // The notices update subscribers of the loyalty list, which must exist.
    bench
        .sandbox
        .state
        .seed_ecomail_subscribers(LOYALTY_LIST_ID, (0..backlog).map(|i| email("loyalty-events", i)));
    let loyalty = load("loyalty-events", LOYALTY_EVENTS_KEYS, &["loyalty.notified"]);
    measure(bench, summary, plots, loyalty, loyalty_events_env, points_expiring).await?;

    throughput::floor_before(bench, summary, "voucher_events").await?;
    println!("worker: voucher-events (voucher.publish.requested → Voucherify publication), backlog {backlog}");
    bench.sandbox.state.reset();
    let vouchers = load("voucher-events", VOUCHER_EVENTS_KEYS, &["voucher.published"]);
    let env = |bench: &Bench, ns: &str| fast(voucher_events_env(bench, ns), "VOUCHERIFY");
    measure(bench, summary, plots, vouchers, env, voucher_publish_requested).await?;

    throughput::floor_before(bench, summary, "recommendations").await?;
    println!("worker: recommendations (recommendation.requested → Froomle), backlog {backlog}");
    bench.sandbox.state.reset();
    let recommendations = load("recommendations", RECOMMENDATIONS_KEYS, &["recommendation.ready"]);
    measure(
        bench,
        summary,
        plots,
        recommendations,
        recommendations_env,
        recommendation_requested,
    )
    .await
}

/// Drains `load` against the sandbox as it is, with the environment `env` makes and the
/// messages `make(scenario, index)` makes, then adds its plot and figures.
async fn measure(
    bench: &Bench,
    summary: &mut Summary,
    plots: &mut Vec<Series>,
    load: Workload<'_>,
    env: impl FnOnce(&Bench, &str) -> BTreeMap<String, String>,
    make: impl Fn(&str, usize) -> Message,
) -> Result<()> {
    let drained = throughput::drain(bench, load, |ns| env(bench, ns), |i| make(load.scenario, i)).await?;
    report(summary, plots, load, drained);
    Ok(())
}

/// The plot and the two figures of one worker's run.
fn report(summary: &mut Summary, plots: &mut Vec<Series>, load: Workload<'_>, drained: Drained) {
    let key = load.worker.replace('-', "_");
    plots.push(Series {
        name: format!("{} ({} backlog)", load.worker, load.backlog),
        points: drained.points,
        steady: drained.rate,
        reference: series::STEADY,
        per: series::PER_BUCKET,
    });
    // The ratio to the floor is added once every scenario ran (`throughput::ratios`).
    summary.add_rate(
        &format!("{key}_msgs_per_s"),
        Figure::at_least(drained.rate.round(), throughput::goal_half_floor(summary), "msg/s"),
    );
}
