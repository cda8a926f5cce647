//! Added latency and idle memory.
//!
//! contact-sync (Spotler only, the throughput configuration) is started on an empty queue and
//! left idle for a few seconds: its resident memory then is `rss_idle_mib`. Then messages are
//! published at half the measured maximum rate for a few seconds, each stamped with its
//! publish time; a message's latency is from its publish to the arrival of its
//! `contact.synced` on the observer queue (the result is routed, hence confirmable, by then).
//! The sandbox injects no latency, so nothing is subtracted for it: its own handling time (well
//! under a millisecond) counts as added, which makes the figure conservative. The first second
//! is warm-up (HTTP connections) and is left out. The lapin relay is measured the same way at
//! the same rate through the same queues: its latency is the broker's own (a quorum queue
//! commits to disk before it delivers or confirms), and what the worker adds on top of it,
//! percentile by percentile, is `latency_p50_added_ms` / `latency_p99_added_ms`. Both are then
//! measured again at a quarter of the maximum rate (`latency_quarter_rate_*`): at half the
//! maximum, the paced publisher, the broker, the worker and the sandbox keep the two cores
//! nearly busy, and both distributions are then mostly the machine's queueing.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::time::Instant;

use crate::amqp::{self, Observer, Seen};
use crate::floor::Relay;
use crate::harness::{self, Bench, FAST, Namespace};
use crate::process::{self, WorkerProcess};
use crate::series::{self, Series};
use crate::summary::{Figure, Summary};
use crate::throughput::PREFETCH;

/// The latency the sandbox injects in this scenario (subtracted from every measurement).
const SANDBOX_LATENCY_MS: f64 = 0.0;
/// The most a worker may add to a message's p99 latency.
const ADDED_P99_GOAL_MS: f64 = 2.0;
/// Rate used when the worker throughput scenario did not run.
const FALLBACK_RATE: f64 = 2_000.0;
/// Publishes in the first second are warm-up.
const WARM_UP: Duration = Duration::from_secs(1);
/// How long the idle worker is left alone before its memory is read.
const IDLE: Duration = Duration::from_secs(3);

/// One paced run's latencies in ms, sorted, and its results over time.
#[derive(Debug)]
struct Paced {
    latencies_ms: Vec<f64>,
    points: Vec<(f64, f64)>,
}

/// Latencies of the results in `seen` for the messages `prefix-<index>` published at
/// `published[index]`.
fn latencies(prefix: &str, published: &[Instant], seen: &[Seen]) -> Vec<f64> {
    let Some(first) = published.first() else {
        return Vec::new();
    };
    let warm = *first + WARM_UP;
    let mut by_index: HashMap<usize, Instant> = HashMap::with_capacity(seen.len());
    for result in seen {
        let index = result
            .message_id
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.split(':').next())
            .and_then(|index| index.parse::<usize>().ok());
        if let Some(index) = index {
            // Several results per message (destinations): the message is done at the last.
            let at = by_index.entry(index).or_insert(result.at);
            *at = (*at).max(result.at);
        }
    }
    let mut latencies: Vec<f64> = by_index
        .into_iter()
        .filter_map(|(index, at)| {
            let sent = published.get(index)?;
            (*sent >= warm).then(|| at.saturating_duration_since(*sent).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_unstable_by(f64::total_cmp);
    latencies
}

async fn paced_run(namespace: &Namespace, observer: &Observer, prefix: &str, rate: f64, secs: u64) -> Result<Paced> {
    let n = (rate * secs as f64).round().max(1.0) as usize;
    let messages: Vec<_> = (0..n).map(|i| harness::contact_changed(prefix, i)).collect();
    let channel = amqp::confirm_channel(&namespace.publish).await?;
    let started = Instant::now();
    let published = amqp::publish_paced(&channel, &namespace.exchange(), messages, rate).await?;
    channel.close(200, "published".into()).await?;
    let complete = observer.wait_for(n, Duration::from_secs(60)).await;
    let seen = observer.take();
    if !complete {
        bail!("{prefix}: only {} of {n} results arrived", seen.len());
    }
    let mut arrivals: Vec<Instant> = seen.iter().map(|s| s.at).collect();
    arrivals.sort_unstable();
    Ok(Paced {
        latencies_ms: latencies(prefix, &published, &seen),
        points: series::over_time(started, &arrivals, 1.0),
    })
}

/// CPU seconds used so far by the worker (if one runs), the broker and the bench, and when.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    worker: Option<f64>,
    broker: Option<f64>,
    bench: Option<f64>,
}

/// What each party used between two readings, in cores, over `wall` seconds.
#[derive(Debug, Clone, Copy)]
struct Usage {
    wall: f64,
    worker: Option<f64>,
    broker: Option<f64>,
    bench: Option<f64>,
}

impl Reading {
    fn now(worker: Option<&WorkerProcess>) -> Result<Self> {
        let worker = match worker {
            Some(worker) => {
                let cpu = worker.cpu_times()?;
                Some(cpu.user + cpu.system)
            }
            None => None,
        };
        Ok(Self {
            at: Instant::now(),
            worker,
            broker: process::broker_cpu_seconds(),
            bench: process::own_cpu_seconds(),
        })
    }

    /// Cores each party used since `before`.
    fn since(&self, before: &Self) -> Usage {
        let wall = self.at.duration_since(before.at).as_secs_f64().max(f64::EPSILON);
        let cores = |now: Option<f64>, then: Option<f64>| now.zip(then).map(|(a, b)| (a - b) / wall);
        Usage {
            wall,
            worker: cores(self.worker, before.worker),
            broker: cores(self.broker, before.broker),
            bench: cores(self.bench, before.bench),
        }
    }
}

/// Cores in use, for printing.
fn cores(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |cores| format!("{cores:.2}"))
}

fn percentile(latencies: &[f64], q: f64) -> Result<f64> {
    series::quantile(latencies, q).context("no latency measured")
}

/// Idle memory, then latency at half (and at a quarter of) the max rate for contact-sync and
/// for the relay.
pub(crate) async fn latency(bench: &Bench, summary: &mut Summary, plots: &mut Vec<Series>) -> Result<()> {
    let rate = bench.config.latency_rate.unwrap_or_else(|| {
        summary
            .get("worker_msgs_per_s")
            .map_or(FALLBACK_RATE, |f| (f.value * 0.5).round().max(1.0))
    });
    let quarter = (rate / 2.0).round().max(1.0);
    let secs = bench.config.sizes.latency_secs;
    bench.sandbox.state.reset();
    let mut namespace = Namespace::create(&bench.config, "latency", vec![harness::contact_sync_topology()?]).await?;
    let result = async {
        let observer = namespace.observer(&[harness::CONTACT_SYNCED]).await?;
        let env = harness::contact_sync_env(bench, &namespace.name, FAST);
        let mut worker = WorkerProcess::start(
            "latency",
            &bench.binary(harness::CONTACT_SYNC),
            &env,
            &bench.log_path("latency"),
        )?;
        let queue = namespace.work_queue(harness::CONTACT_SYNC);
        amqp::wait_for_consumers(&namespace.publish, &queue, 1, Duration::from_secs(30)).await?;
        tokio::time::sleep(IDLE).await;
        let idle = worker.rss()?;
        println!(
            "latency: contact-sync idle at {:.1} MiB; publishing {rate:.0} msg/s for {secs} s",
            process::mib(idle.current_kib)
        );
        let before = Reading::now(Some(&worker))?;
        let worker_run = paced_run(&namespace, &observer, "lat", rate, secs).await;
        worker.check_alive()?;
        let used = Reading::now(Some(&worker))?.since(&before);
        let worker_run = worker_run?;
        println!("latency: contact-sync at a quarter of the maximum rate ({quarter:.0} msg/s)");
        let worker_quarter = paced_run(&namespace, &observer, "latq", quarter, secs).await;
        worker.check_alive()?;
        worker.stop(Duration::from_secs(20)).await?;
        let worker_quarter = worker_quarter?;

        println!("latency: the lapin relay at the same rate");
        let relay = Relay::start(bench.config.amqp_url(), &queue, &namespace.exchange(), PREFETCH).await?;
        let relay_before = Reading::now(None)?;
        let floor_run = paced_run(&namespace, &observer, "flat", rate, secs).await;
        let relay_used = Reading::now(None)?.since(&relay_before);
        let floor_quarter = paced_run(&namespace, &observer, "flatq", quarter, secs).await;
        relay.stop().await?;
        observer.stop().await;
        let floor_run = floor_run?;
        let floor_quarter = floor_quarter?;
        let messages = (rate * secs as f64).round().max(1.0);
        println!(
            "latency: CPU use during the paced runs (cores): contact-sync run: worker {}, broker {}, \
             bench and sandbox {}; relay run: broker {}, bench and relay {}",
            cores(used.worker),
            cores(used.broker),
            cores(used.bench),
            cores(relay_used.broker),
            cores(relay_used.bench),
        );
        if let Some(worker_cores) = used.worker {
            println!(
                "latency: worker CPU per message while paced: {:.0} µs",
                worker_cores * used.wall * 1e6 / messages
            );
        }
        Ok::<_, anyhow::Error>((idle, worker_run, floor_run, worker_quarter, floor_quarter))
    }
    .await;
    namespace.remove().await?;
    let (idle, worker_run, floor_run, worker_quarter, floor_quarter) = result?;

    let p50 = percentile(&worker_run.latencies_ms, 0.50)? - SANDBOX_LATENCY_MS;
    let p99 = percentile(&worker_run.latencies_ms, 0.99)? - SANDBOX_LATENCY_MS;
    let floor_p50 = percentile(&floor_run.latencies_ms, 0.50)?;
    let floor_p99 = percentile(&floor_run.latencies_ms, 0.99)?;
    println!(
        "latency: publish → result, contact-sync p50 {p50:.2} ms, p99 {p99:.2} ms; \
         relay p50 {floor_p50:.2} ms, p99 {floor_p99:.2} ms"
    );
    // What the worker adds on top of the broker's own path (a negative difference is noise).
    let added_p50 = (p50 - floor_p50).max(0.0);
    let added_p99 = (p99 - floor_p99).max(0.0);
    summary.add(
        "rss_idle_mib",
        Figure::at_most(process::mib(idle.current_kib), 20.0, "MiB"),
    );
    summary.add(
        "latency_p99_added_ms",
        Figure::at_most(added_p99, ADDED_P99_GOAL_MS, "ms"),
    );
    summary.add(
        "latency_p50_added_ms",
        Figure::at_most(added_p50, ADDED_P99_GOAL_MS, "ms"),
    );
    summary.add(
        "latency_p99_ms",
        Figure::at_most(p99, floor_p99 + ADDED_P99_GOAL_MS, "ms"),
    );
    // The same at half that rate, where the two cores are not near saturation: what the worker
    // itself adds, with less of the machine's queueing in both distributions.
    let quarter_p99 = percentile(&worker_quarter.latencies_ms, 0.99)? - SANDBOX_LATENCY_MS;
    let quarter_floor_p99 = percentile(&floor_quarter.latencies_ms, 0.99)?;
    let quarter_p50 = percentile(&worker_quarter.latencies_ms, 0.50)? - SANDBOX_LATENCY_MS;
    let quarter_floor_p50 = percentile(&floor_quarter.latencies_ms, 0.50)?;
    println!(
        "latency: at {quarter:.0} msg/s, contact-sync p50 {quarter_p50:.2} ms, p99 {quarter_p99:.2} ms; \
         relay p50 {quarter_floor_p50:.2} ms, p99 {quarter_floor_p99:.2} ms"
    );
    summary.add(
        "latency_quarter_rate_p99_added_ms",
        Figure::at_most((quarter_p99 - quarter_floor_p99).max(0.0), ADDED_P99_GOAL_MS, "ms"),
    );
    summary.add(
        "latency_quarter_rate_p50_added_ms",
        Figure::at_most((quarter_p50 - quarter_floor_p50).max(0.0), ADDED_P99_GOAL_MS, "ms"),
    );
    plots.push(Series {
        name: "latency run: contact-sync".to_owned(),
        points: worker_run.points,
        steady: rate,
        reference: "paced rate",
        per: series::PER_BUCKET,
    });
    plots.push(Series {
        name: "latency run: lapin relay".to_owned(),
        points: floor_run.points,
        steady: rate,
        reference: "paced rate",
        per: series::PER_BUCKET,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_measured_to_the_last_result_after_warm_up() {
        let start = Instant::now();
        let published = vec![start, start + Duration::from_secs(2)];
        let seen = vec![
            Seen {
                at: start + Duration::from_millis(5),
                message_id: "lat-0:spotler".to_owned(),
            },
            Seen {
                at: start + Duration::from_millis(2003),
                message_id: "lat-1:spotler".to_owned(),
            },
            Seen {
                at: start + Duration::from_millis(2004),
                message_id: "lat-1:ecomail".to_owned(),
            },
            Seen {
                at: start + Duration::from_millis(2004),
                message_id: "other-1:spotler".to_owned(),
            },
        ];
        let latencies = latencies("lat", &published, &seen);
        assert_eq!(latencies.len(), 1, "message 0 is warm-up: {latencies:?}");
        assert!((latencies[0] - 4.0).abs() < 0.01, "{latencies:?}");
    }
}
