//! Throughput scenarios: the floor (raw publish and the lapin relay), contact-sync end to end
//! with one and with two destinations, concurrency efficiency against a slow provider, and
//! memory while draining a large backlog.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use switchyard_sandbox::{Fault, Provider};
use tokio::time::Instant;

use crate::amqp::Message;
use crate::config::Scenario;
use crate::floor::{self, Relay};
use crate::harness::{self, Bench, ContactSyncRun, Drained, Drive, FAST, Namespace};
use crate::process;
use crate::series::{self, Series};
use crate::summary::{Figure, Summary};

/// The relay rate the brief measured on this kind of machine (2 cores, RabbitMQ 3.10, lapin,
/// prefetch 200): the floor code must reach it, or the ratios flatter the workers.
pub(crate) const REFERENCE_RELAY_MSGS_PER_S: f64 = 21_000.0;

/// Prefetch of every throughput run, floor and worker alike.
pub(crate) const PREFETCH: u16 = 200;

/// Raw publish with confirms, then the relay draining what was published.
pub(crate) async fn floor(bench: &Bench, summary: &mut Summary, plots: &mut Vec<Series>) -> Result<()> {
    let (publish_rate, relay_rate) = measure_floor(bench, "floor", bench.config.sizes.floor, plots).await?;
    summary.add(
        "floor_publish_msgs_per_s",
        Figure::at_least(publish_rate.round(), REFERENCE_RELAY_MSGS_PER_S, "msg/s"),
    );
    summary.add(
        "floor_relay_msgs_per_s",
        Figure::at_least(relay_rate.round(), REFERENCE_RELAY_MSGS_PER_S, "msg/s"),
    );
    summary.add_floor(relay_rate);
    Ok(())
}

/// The floor again, after the throughput scenarios: the last worker's ratio divides by the
/// mean of the floor before it and this one.
pub(crate) async fn floor_again(bench: &Bench, summary: &mut Summary, plots: &mut Vec<Series>) -> Result<()> {
    let (_, relay_rate) = measure_floor(bench, "floor-after", bench.config.sizes.floor, plots).await?;
    summary.add(
        "floor_relay_after_msgs_per_s",
        Figure::at_least(relay_rate.round(), REFERENCE_RELAY_MSGS_PER_S, "msg/s"),
    );
    summary.add_floor(relay_rate);
    Ok(())
}

/// The floor relay once more right before the worker `next` (a `snake_case` name) is measured,
/// when the floor is part of the run and a worker was measured since it last ran: each
/// worker's ratio then divides by the floors measured just before and just after it, not by
/// ones from minutes earlier on a machine whose speed drifts (a third within one run, seen).
/// It drains a backlog of the workers' size (`floor_relay_before_<next>_msgs_per_s`) and is
/// left out of the plot, which shows the first and the last floor.
pub(crate) async fn floor_before(bench: &Bench, summary: &mut Summary, next: &str) -> Result<()> {
    if !bench.config.runs(Scenario::Floor) || summary.floors().is_empty() || !summary.floor_is_stale() {
        return Ok(());
    }
    let label = format!("floor-before-{}", next.replace('_', "-"));
    let (_, relay_rate) = measure_floor(bench, &label, bench.config.sizes.worker, &mut Vec::new()).await?;
    summary.add(
        &format!("floor_relay_before_{next}_msgs_per_s"),
        Figure::at_least(relay_rate.round(), REFERENCE_RELAY_MSGS_PER_S, "msg/s"),
    );
    summary.add_floor(relay_rate);
    Ok(())
}

/// The rate figures judged against the floor: each rate's goal is this share of the floor,
/// and where a ratio key is given, the rate over the floor is that figure (goal 0.5).
const RATES: &[(&str, f64, Option<&str>)] = &[
    ("worker_msgs_per_s", 0.5, Some("throughput_ratio")),
    (
        "loyalty_events_msgs_per_s",
        0.5,
        Some("throughput_ratio_loyalty_events"),
    ),
    (
        "voucher_events_msgs_per_s",
        0.5,
        Some("throughput_ratio_voucher_events"),
    ),
    (
        "recommendations_msgs_per_s",
        0.5,
        Some("throughput_ratio_recommendations"),
    ),
    ("worker_bulk_msgs_per_s", 0.5, None),
    // Two provider calls per message: the same per-call goal is half the message rate.
    ("worker_both_destinations_msgs_per_s", 0.25, None),
];

/// Once every scenario ran: `floor_relay_mean_msgs_per_s` (of every floor measurement), and
/// each rate's goal as a share of the floors measured around it (the mean of the one just
/// before and the one just after, or the one there is), and each `throughput_ratio*` as the
/// rate divided by that. Prints each ratio with the floors it used.
pub(crate) fn ratios(summary: &mut Summary) {
    let floors = summary.floors();
    if floors.is_empty() {
        return;
    }
    let mean = floors.iter().sum::<f64>() / floors.len() as f64;
    summary.add(
        "floor_relay_mean_msgs_per_s",
        Figure::at_least(mean.round(), REFERENCE_RELAY_MSGS_PER_S, "msg/s"),
    );
    for &(rate, share, ratio) in RATES {
        let Some(figure) = summary.get(rate) else {
            continue;
        };
        let (before, after) = summary.floors_around(rate);
        let Some(floor) = mean_of(before, after) else {
            continue;
        };
        summary.add(rate, Figure::at_least(figure.value, (floor * share).round(), "msg/s"));
        if let Some(ratio) = ratio {
            let value = figure.value / floor;
            println!(
                "ratio: {ratio} = {:.0} msg/s / {floor:.0} msg/s (the floor before it {}, after it {}) = {value:.3}",
                figure.value,
                rate_or_none(before),
                rate_or_none(after),
            );
            summary.add(ratio, Figure::at_least(value, 0.5, "ratio"));
        }
    }
}

/// The mean of the floors there are.
fn mean_of(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    match (before, after) {
        (Some(before), Some(after)) => Some((before + after) / 2.0),
        (one, other) => one.or(other),
    }
}

fn rate_or_none(rate: Option<f64>) -> String {
    rate.map_or_else(|| "none".to_owned(), |rate| format!("{rate:.0} msg/s"))
}

/// Publishes a backlog of `n` with confirms (timing that) and drains it with the relay (timing
/// that); plots both under `label`.
async fn measure_floor(bench: &Bench, label: &str, n: usize, plots: &mut Vec<Series>) -> Result<(f64, f64)> {
    let mut namespace = Namespace::create(&bench.config, label, vec![harness::contact_sync_topology()?]).await?;
    let result = async {
        println!("{label}: raw publish of {n} messages with confirms");
        let started = Instant::now();
        let confirmed = namespace
            .publish_backlog((0..n).map(|i| harness::contact_changed(label, i)))
            .await?;
        let publish_rate = series::steady_rate(&confirmed).context("too few confirms to time")?;
        plots.push(Series {
            name: format!("{label}: raw publish with confirms"),
            points: series::over_time(started, &confirmed, 1.0),
            steady: publish_rate,
            reference: series::STEADY,
            per: series::PER_BUCKET,
        });

        let settled = process::broker_settled(harness::SETTLE_LIMIT).await;
        println!(
            "{label}: lapin relay draining {n} messages (prefetch {PREFETCH}; broker settled after {:.1} s)",
            settled.as_secs_f64()
        );
        let observer = namespace.observer(&[floor::RESULT_KIND]).await?;
        let started = Instant::now();
        let relay = Relay::start(
            bench.config.amqp_url(),
            &namespace.work_queue(harness::CONTACT_SYNC),
            &namespace.exchange(),
            PREFETCH,
        )
        .await?;
        let complete = observer.wait_for(n, Duration::from_secs(300)).await;
        relay.stop().await?;
        let seen = observer.take();
        observer.stop().await;
        if !complete {
            bail!("the relay moved only {} of {n} messages", seen.len());
        }
        let mut arrivals: Vec<Instant> = seen.iter().map(|s| s.at).collect();
        arrivals.sort_unstable();
        let relay_rate = series::steady_rate(&arrivals).context("too few results to time")?;
        println!("  {label}: relay {relay_rate:.0} msg/s, raw publish {publish_rate:.0} msg/s");
        plots.push(Series {
            name: format!("{label}: lapin relay (prefetch {PREFETCH})"),
            points: series::over_time(started, &arrivals, 1.0),
            steady: relay_rate,
            reference: series::STEADY,
            per: series::PER_BUCKET,
        });
        Ok::<_, anyhow::Error>((publish_rate, relay_rate))
    }
    .await;
    namespace.remove().await?;
    result
}

/// A worker and the backlog it drains in a broker namespace of its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Workload<'a> {
    /// Scenario label (namespace, log file, plot).
    pub(crate) scenario: &'a str,
    /// Binary and queue name.
    pub(crate) worker: &'static str,
    /// The message types its topology binds.
    pub(crate) keys: &'static [&'static str],
    /// Routing keys of its results.
    pub(crate) results: &'static [&'static str],
    /// Results per input message.
    pub(crate) results_per_message: usize,
    /// Messages queued before the worker starts.
    pub(crate) backlog: usize,
}

/// Drains `load.backlog` messages made by `make` with the worker run in the environment `env`
/// makes for the namespace, against the sandbox as the caller left it; prints the rate and the
/// CPU each party spent per message.
pub(crate) async fn drain(
    bench: &Bench,
    load: Workload<'_>,
    env: impl FnOnce(&str) -> BTreeMap<String, String>,
    make: impl Fn(usize) -> Message,
) -> Result<Drained> {
    let scenario = load.scenario;
    let topology = harness::topology(load.worker, load.keys)?;
    let mut namespace = Namespace::create(&bench.config, scenario, vec![topology]).await?;
    let env = env(&namespace.name);
    let drive = Drive {
        worker: load.worker,
        env: &env,
        results: load.results,
        results_per_message: load.results_per_message,
    };
    let drained = harness::drain_backlog(bench, &mut namespace, scenario, drive, load.backlog, make).await;
    namespace.remove().await?;
    let drained = drained?;
    let us = |value: Option<f64>| value.map_or_else(|| "n/a".to_owned(), |us| format!("{us:.0} µs"));
    println!(
        "  {scenario}: {:.0} msg/s; CPU per message: worker {:.0} µs ({:.0} µs in the kernel, {:.1} context \
         switches), broker {}, sandbox and bench {}; worker peak RSS {:.1} MiB",
        drained.rate,
        drained.cpu_us_per_message,
        drained.system_us_per_message,
        drained.switches_per_message,
        us(drained.broker_us_per_message),
        us(drained.bench_us_per_message),
        process::mib(drained.rss.peak_kib)
    );
    if drained.dead_letters > 0 {
        bail!(
            "{scenario}: {} messages were dead-lettered; see {}",
            drained.dead_letters,
            bench.log_path(scenario).display()
        );
    }
    Ok(drained)
}

async fn contact_sync_drain(
    bench: &Bench,
    scenario: &str,
    run: ContactSyncRun,
    backlog: usize,
    results_per_message: usize,
) -> Result<Drained> {
    let load = Workload {
        scenario,
        worker: harness::CONTACT_SYNC,
        keys: harness::CONTACT_SYNC_KEYS,
        results: &[harness::CONTACT_SYNCED],
        results_per_message,
        backlog,
    };
    bench.sandbox.state.reset();
    drain(
        bench,
        load,
        |namespace| harness::contact_sync_env(bench, namespace, run),
        |i| harness::contact_changed(scenario, i),
    )
    .await
}

/// contact-sync end to end with Spotler only (one provider call per message: the fair
/// comparison with the relay) and, as an extra figure, with both destinations.
pub(crate) async fn worker(bench: &Bench, summary: &mut Summary, plots: &mut Vec<Series>) -> Result<()> {
    let sizes = bench.config.sizes;
    floor_before(bench, summary, "worker").await?;
    println!("worker: contact-sync (spotler), backlog {}", sizes.worker);
    let one = contact_sync_drain(bench, "worker-spotler", FAST, sizes.worker, 1).await?;
    plots.push(Series {
        name: format!("contact-sync, spotler ({} backlog)", sizes.worker),
        points: one.points.clone(),
        steady: one.rate,
        reference: series::STEADY,
        per: series::PER_BUCKET,
    });
    summary.add_rate(
        "worker_msgs_per_s",
        Figure::at_least(one.rate.round(), goal_half_floor(summary), "msg/s"),
    );
    summary.add(
        "rss_load_half_backlog_mib",
        Figure::at_most(process::mib(one.rss.peak_kib), 50.0, "MiB"),
    );

    floor_before(bench, summary, "worker_both_destinations").await?;
    println!(
        "worker: contact-sync (spotler + ecomail), backlog {}",
        sizes.worker_both
    );
    let both_run = ContactSyncRun {
        destinations: "spotler,ecomail",
        ..FAST
    };
    let both = contact_sync_drain(bench, "worker-both", both_run, sizes.worker_both, 2).await?;
    plots.push(Series {
        name: format!("contact-sync, spotler + ecomail ({} backlog)", sizes.worker_both),
        points: both.points,
        steady: both.rate,
        reference: series::STEADY,
        per: series::PER_BUCKET,
    });
    // Two provider calls per message: the same per-call goal is half the message rate.
    summary.add_rate(
        "worker_both_destinations_msgs_per_s",
        Figure::at_least(both.rate.round(), goal_half_floor(summary) / 2.0, "msg/s"),
    );

    floor_before(bench, summary, "worker_bulk").await?;
    println!(
        "worker: contact-sync (spotler) with bulk calls (its default), backlog {}",
        sizes.worker
    );
    let bulk_run = ContactSyncRun { bulk: true, ..FAST };
    let bulk = contact_sync_drain(bench, "worker-bulk", bulk_run, sizes.worker, 1).await?;
    plots.push(Series {
        name: format!("contact-sync, spotler, bulk calls ({} backlog)", sizes.worker),
        points: bulk.points,
        steady: bulk.rate,
        reference: series::STEADY,
        per: series::PER_BUCKET,
    });
    summary.add_rate(
        "worker_bulk_msgs_per_s",
        Figure::at_least(bulk.rate.round(), goal_half_floor(summary), "msg/s"),
    );
    Ok(())
}

/// Half the measured floor (the reference rate when the floor did not run).
pub(crate) fn goal_half_floor(summary: &Summary) -> f64 {
    let floor = summary
        .get("floor_relay_msgs_per_s")
        .map_or(REFERENCE_RELAY_MSGS_PER_S, |f| f.value);
    (floor * 0.5).round()
}

/// Provider latency in the concurrency run.
pub(crate) const SLOW_PROVIDER_MS: u64 = 50;
/// Provider concurrency in the concurrency run.
pub(crate) const CONCURRENCY: u32 = 64;

/// Throughput against a provider that answers in 50 ms, as a share of `C / 50 ms`.
pub(crate) async fn concurrency(bench: &Bench, summary: &mut Summary, plots: &mut Vec<Series>) -> Result<()> {
    let backlog = bench.config.sizes.concurrency;
    println!("concurrency: provider latency {SLOW_PROVIDER_MS} ms, concurrency {CONCURRENCY}, backlog {backlog}");
    let run = ContactSyncRun {
        destinations: "spotler",
        prefetch: u16::try_from(CONCURRENCY * 2).unwrap_or(u16::MAX),
        concurrency: CONCURRENCY,
        bulk: false,
    };
    bench.sandbox.state.reset();
    let mut namespace =
        Namespace::create(&bench.config, "concurrency", vec![harness::contact_sync_topology()?]).await?;
    bench
        .sandbox
        .state
        .set_fault(Provider::Spotler, Fault::latency(SLOW_PROVIDER_MS))
        .map_err(anyhow::Error::msg)?;
    let env = harness::contact_sync_env(bench, &namespace.name, run);
    let drive = Drive {
        worker: harness::CONTACT_SYNC,
        env: &env,
        results: &[harness::CONTACT_SYNCED],
        results_per_message: 1,
    };
    let drained = harness::drain_backlog(bench, &mut namespace, "concurrency", drive, backlog, |i| {
        harness::contact_changed("concurrency", i)
    })
    .await;
    bench.sandbox.state.clear_fault(Provider::Spotler);
    namespace.remove().await?;
    let drained = drained?;
    let ideal = f64::from(CONCURRENCY) / (SLOW_PROVIDER_MS as f64 / 1000.0);
    plots.push(Series {
        name: format!("concurrency {CONCURRENCY}, provider latency {SLOW_PROVIDER_MS} ms (ideal {ideal:.0}/s)"),
        points: drained.points,
        steady: drained.rate,
        reference: series::STEADY,
        per: series::PER_BUCKET,
    });
    summary.add(
        "concurrency_efficiency",
        Figure::at_least(drained.rate / ideal, 0.9, "ratio"),
    );
    Ok(())
}

/// Peak memory while draining the large backlog.
pub(crate) async fn memory(bench: &Bench, summary: &mut Summary, plots: &mut Vec<Series>) -> Result<()> {
    let backlog = bench.config.sizes.memory;
    println!("memory: contact-sync (spotler) draining {backlog}");
    let drained = contact_sync_drain(bench, "memory", FAST, backlog, 1).await?;
    plots.push(Series {
        name: format!("contact-sync, spotler ({backlog} backlog, memory run)"),
        points: drained.points,
        steady: drained.rate,
        reference: series::STEADY,
        per: series::PER_BUCKET,
    });
    summary.add(
        "rss_load_mib",
        Figure::at_most(process::mib(drained.rss.peak_kib), 50.0, "MiB"),
    );
    Ok(())
}
