//! Added latency and idle memory.
//!
//! contact-sync (Spotler only, the throughput configuration) is started on an empty queue and
//! left idle for a few seconds: its resident memory then is `rss_idle_mib`. Then its maximum
//! rate *with publishing going on* is measured (`worker_sustained_msgs_per_s`): messages are
//! published at the backlog-drain rate of the throughput scenario, then at a little above what
//! that showed, and the rate of results while publishing lasts is the maximum. The drain rate
//! itself is no basis for "half the maximum": it leaves out the publishing, which costs the
//! broker about as much again, and half of it kept the two cores about 97% busy. Then
//! messages are published at half the sustained maximum for a few seconds, each stamped with its
//! publish time; a message's latency is from its publish to the arrival of its
//! `contact.synced` on the observer queue (the result is routed, hence confirmable, by then).
//! The sandbox injects no latency, so nothing is subtracted for it: its own handling time (well
//! under a millisecond) counts as added, which makes the figure conservative. The first second
//! is warm-up (HTTP connections) and is left out.
//!
//! What the worker adds is measured against the broker's own path, **in the same run**: every
//! [`RELAY_EVERY`]th paced message goes to a second quorum queue drained by the lapin relay
//! (the floor's relay, which publishes a `contact.synced` per input), interleaved with the
//! worker's messages. A quorum queue commits to disk before it delivers or confirms, and the
//! broker stalls now and then (WAL and segment writes, garbage collection); with separate runs
//! those stalls fell into one distribution or the other and decided the p99 difference. With
//! interleaved streams every stall hits both, so the percentile-by-percentile difference,
//! `latency_p50_added_ms` / `latency_p99_added_ms`, is what the worker adds. Both are then
//! measured again at a quarter of the maximum rate (`latency_quarter_rate_*`).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::time::Instant;

use crate::amqp::{self, Message, Observer, Seen};
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
/// Offered rate of the sustained-rate run when the worker throughput scenario did not run.
const FALLBACK_OFFERED: f64 = 8_000.0;
/// How long each step of the sustained-rate run publishes.
const SUSTAIN_SECS: f64 = 4.0;
/// Every this many paced messages, one goes to the relay instead of the worker.
const RELAY_EVERY: usize = 8;
/// The relay's queue (a worker topology of its own in the scenario's namespace) and routing key.
const RELAY_QUEUE: &str = "latency-relay";
const RELAY_KEY: &str = "bench.latency.relay";
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

/// One interleaved run: the worker's stream at `rate` and the relay's beside it.
#[derive(Debug)]
struct Paired {
    worker: Paced,
    relay: Paced,
}

/// The paced messages of one run: `worker_prefix-<i>` for the worker, every [`RELAY_EVERY`]th
/// one `relay_prefix-<j>` for the relay.
fn interleaved(worker_prefix: &str, relay_prefix: &str, total: usize) -> Vec<Message> {
    let (mut worker, mut relay) = (0, 0);
    (0..total)
        .map(|i| {
            if i % RELAY_EVERY == RELAY_EVERY - 1 {
                let mut message = harness::contact_changed(relay_prefix, relay);
                message.kind = RELAY_KEY;
                relay += 1;
                message
            } else {
                worker += 1;
                harness::contact_changed(worker_prefix, worker - 1)
            }
        })
        .collect()
}

/// What one paced run published and what arrived.
struct Collected {
    /// When publishing began.
    started: Instant,
    /// When each message was published, in order.
    published: Vec<Instant>,
    /// Every result the observer saw.
    seen: Vec<Seen>,
}

/// Publishes `messages` at `rate` on a channel of its own, then waits up to `timeout` for one
/// result each on the observer (the run fails if any is missing).
async fn publish_and_collect(
    namespace: &Namespace,
    observer: &Observer,
    prefix: &str,
    messages: Vec<Message>,
    rate: f64,
    timeout: Duration,
) -> Result<Collected> {
    let n = messages.len();
    let channel = amqp::confirm_channel(&namespace.publish).await?;
    let started = Instant::now();
    let published = amqp::publish_paced(&channel, &namespace.exchange(), messages, rate).await?;
    channel.close(200, "published".into()).await?;
    let complete = observer.wait_for(n, timeout).await;
    let seen = observer.take();
    if !complete {
        bail!("{prefix}: only {} of {n} results arrived", seen.len());
    }
    Ok(Collected {
        started,
        published,
        seen,
    })
}

/// Publishes the worker's messages at `rate` for `secs` with the relay's interleaved, and
/// collects both streams' latencies.
async fn paired_run(namespace: &Namespace, observer: &Observer, prefix: &str, rate: f64, secs: u64) -> Result<Paired> {
    let total_rate = rate * RELAY_EVERY as f64 / (RELAY_EVERY - 1) as f64;
    let n = (total_rate * secs as f64).round().max(RELAY_EVERY as f64) as usize;
    let relay_prefix = format!("{prefix}relay");
    let messages = interleaved(prefix, &relay_prefix, n);
    let Collected {
        started,
        published,
        seen,
    } = publish_and_collect(
        namespace,
        observer,
        prefix,
        messages,
        total_rate,
        Duration::from_secs(60),
    )
    .await?;
    let (mut worker_published, mut relay_published) = (Vec::new(), Vec::new());
    for (i, at) in published.into_iter().enumerate() {
        if i % RELAY_EVERY == RELAY_EVERY - 1 {
            relay_published.push(at);
        } else {
            worker_published.push(at);
        }
    }
    let arrivals = |wanted: &str| {
        let mut arrivals: Vec<Instant> = seen
            .iter()
            .filter(|s| {
                s.message_id
                    .strip_prefix(wanted)
                    .is_some_and(|rest| rest.starts_with('-'))
            })
            .map(|s| s.at)
            .collect();
        arrivals.sort_unstable();
        series::over_time(started, &arrivals, 1.0)
    };
    Ok(Paired {
        worker: Paced {
            latencies_ms: latencies(prefix, &worker_published, &seen),
            points: arrivals(prefix),
        },
        relay: Paced {
            latencies_ms: latencies(&relay_prefix, &relay_published, &seen),
            points: arrivals(&relay_prefix),
        },
    })
}

/// CPU seconds used so far by the worker (if one runs), the broker and the bench, and when.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    worker: Option<f64>,
    broker: Option<f64>,
    bench: Option<f64>,
    machine: Option<process::MachineCpu>,
}

/// What each party used between two readings, in cores, over `wall` seconds.
#[derive(Debug, Clone, Copy)]
struct Usage {
    wall: f64,
    worker: Option<f64>,
    broker: Option<f64>,
    bench: Option<f64>,
    /// The share of the whole machine's CPU time that was busy (every process and the kernel).
    machine_busy: Option<f64>,
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
            machine: process::machine_cpu(),
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
            machine_busy: self
                .machine
                .zip(before.machine)
                .and_then(|(now, then)| now.busy_share_since(&then)),
        }
    }
}

/// A share as a percentage, for printing.
fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "n/a".to_owned(), |share| format!("{:.0}%", share * 100.0))
}

/// Cores in use, for printing.
fn cores(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |cores| format!("{cores:.2}"))
}

fn percentile(latencies: &[f64], q: f64) -> Result<f64> {
    series::quantile(latencies, q).context("no latency measured")
}

/// What one paired run showed, in ms.
#[derive(Debug, Clone, Copy)]
struct Compared {
    added_p50: f64,
    added_p99: f64,
    p99: f64,
    relay_p99: f64,
}

/// The worker's and the relay's p50 and p99 in one run, printed, and the worker's additions.
fn compare(label: &str, rate: f64, run: &Paired) -> Result<Compared> {
    let p50 = percentile(&run.worker.latencies_ms, 0.50)? - SANDBOX_LATENCY_MS;
    let p99 = percentile(&run.worker.latencies_ms, 0.99)? - SANDBOX_LATENCY_MS;
    let relay_p50 = percentile(&run.relay.latencies_ms, 0.50)?;
    let relay_p99 = percentile(&run.relay.latencies_ms, 0.99)?;
    println!(
        "latency: {label} ({rate:.0} msg/s to the worker, {:.0} to the relay): publish → result, \
         contact-sync p50 {p50:.2} ms, p99 {p99:.2} ms; relay p50 {relay_p50:.2} ms, p99 {relay_p99:.2} ms",
        rate / (RELAY_EVERY - 1) as f64
    );
    // What the worker adds on top of the broker's own path (a negative difference is noise).
    Ok(Compared {
        added_p50: (p50 - relay_p50).max(0.0),
        added_p99: (p99 - relay_p99).max(0.0),
        p99,
        relay_p99,
    })
}

/// Publishes to the worker at `offered` msg/s for [`SUSTAIN_SECS`] and returns the rate at
/// which its results arrived while publishing went on (after the warm-up second): what the
/// worker keeps up with while messages are being published, which costs the broker as much
/// again as delivering them. Waits until every result arrived, so the queue is empty after.
/// Also answers how busy the machine was meanwhile.
async fn sustained(namespace: &Namespace, observer: &Observer, prefix: &str, offered: f64) -> Result<Sustained> {
    let n = (offered * SUSTAIN_SECS).round().max(1.0) as usize;
    let messages: Vec<Message> = (0..n).map(|i| harness::contact_changed(prefix, i)).collect();
    let before = process::machine_cpu();
    let Collected { published, seen, .. } =
        publish_and_collect(namespace, observer, prefix, messages, offered, Duration::from_secs(120)).await?;
    let machine_busy = process::machine_cpu()
        .zip(before)
        .and_then(|(after, before)| after.busy_share_since(&before));
    let (Some(first), Some(last)) = (published.first(), published.last()) else {
        bail!("{prefix}: nothing was published");
    };
    let from = *first + WARM_UP;
    let window = last.saturating_duration_since(from).as_secs_f64();
    if window <= 0.0 {
        bail!("{prefix}: publishing took no longer than the warm-up");
    }
    let arrived = seen.iter().filter(|s| s.at >= from && s.at <= *last).count();
    Ok(Sustained {
        rate: arrived as f64 / window,
        machine_busy,
    })
}

/// What a sustained-rate step showed.
#[derive(Debug, Clone, Copy)]
struct Sustained {
    /// Results per second while publishing lasted (after the warm-up second).
    rate: f64,
    /// The share of the machine's CPU time that was busy from the first publish to the last
    /// result.
    machine_busy: Option<f64>,
}

/// The sustained maximum: offered at the backlog-drain rate first, then at a little above what
/// that showed, so the publisher's own cost is close to what it is at the worker's pace. If
/// the worker kept up with the first offer (only when the drain rate was not measured and the
/// fallback offer is low), the second offers half as much again.
async fn sustained_max(namespace: &Namespace, observer: &Observer, drain: f64) -> Result<f64> {
    let Sustained {
        rate: first,
        machine_busy: first_busy,
    } = sustained(namespace, observer, "sus", drain).await?;
    let offered = if first >= drain * 0.95 {
        drain * 1.5
    } else {
        (first * 1.15).min(drain)
    }
    .round()
    .max(1.0);
    let Sustained {
        rate: second,
        machine_busy: second_busy,
    } = sustained(namespace, observer, "sus2", offered).await?;
    println!(
        "latency: results while publishing at {drain:.0} msg/s: {first:.0} msg/s (machine {} busy); \
         at {offered:.0} msg/s: {second:.0} msg/s (machine {} busy)",
        percent(first_busy),
        percent(second_busy),
    );
    Ok(first.max(second))
}

/// Idle memory, the sustained maximum rate, then latency at half (and at a quarter of) it for
/// contact-sync, each run with the relay's stream interleaved.
pub(crate) async fn latency(bench: &Bench, summary: &mut Summary, plots: &mut Vec<Series>) -> Result<()> {
    let drain = summary.get("worker_msgs_per_s").map_or(FALLBACK_OFFERED, |f| f.value);
    let secs = bench.config.sizes.latency_secs;
    bench.sandbox.state.reset();
    let topologies = vec![
        harness::contact_sync_topology()?,
        harness::topology(RELAY_QUEUE, &[RELAY_KEY])?,
    ];
    let mut namespace = Namespace::create(&bench.config, "latency", topologies).await?;
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
        let rate = match bench.config.latency_rate {
            Some(rate) => rate,
            None => {
                println!(
                    "latency: contact-sync idle at {:.1} MiB; its sustained maximum with publishing going on:",
                    process::mib(idle.current_kib)
                );
                let max = sustained_max(&namespace, &observer, drain).await?;
                summary.add(
                    "worker_sustained_msgs_per_s",
                    Figure::at_least(max.round(), (drain * 0.5).round(), "msg/s"),
                );
                (max * 0.5).round().max(1.0)
            }
        };
        let quarter = (rate / 2.0).round().max(1.0);
        // The paced runs start from an empty sandbox and a quiet broker, like the idle worker.
        bench.sandbox.state.reset();
        process::broker_settled(harness::SETTLE_LIMIT).await;
        let relay = Relay::start(
            bench.config.amqp_url(),
            &namespace.work_queue(RELAY_QUEUE),
            &namespace.exchange(),
            PREFETCH,
        )
        .await?;
        println!(
            "latency: contact-sync idle at {:.1} MiB; publishing {rate:.0} msg/s to it for {secs} s, \
             one message in {RELAY_EVERY} to the lapin relay beside it",
            process::mib(idle.current_kib)
        );
        let before = Reading::now(Some(&worker))?;
        let half = paired_run(&namespace, &observer, "lat", rate, secs).await;
        worker.check_alive()?;
        let used = Reading::now(Some(&worker))?.since(&before);
        let half = half?;
        println!("latency: the same at a quarter of the maximum rate ({quarter:.0} msg/s)");
        let quarter_run = paired_run(&namespace, &observer, "latq", quarter, secs).await;
        worker.check_alive()?;
        worker.stop(Duration::from_secs(20)).await?;
        relay.stop().await?;
        observer.stop().await;
        let quarter_run = quarter_run?;
        let messages = (rate * secs as f64).round().max(1.0);
        println!(
            "latency: CPU use during the half-rate run (cores): worker {}, broker {}, bench, sandbox and relay {}; \
             the machine was {} busy",
            cores(used.worker),
            cores(used.broker),
            cores(used.bench),
            percent(used.machine_busy),
        );
        if let Some(worker_cores) = used.worker {
            println!(
                "latency: worker CPU per message while paced: {:.0} µs",
                worker_cores * used.wall * 1e6 / messages
            );
        }
        Ok::<_, anyhow::Error>((idle, rate, quarter, half, quarter_run))
    }
    .await;
    namespace.remove().await?;
    let (idle, rate, quarter, half, quarter_run) = result?;

    let at_half = compare("half the maximum rate", rate, &half)?;
    summary.add(
        "rss_idle_mib",
        Figure::at_most(process::mib(idle.current_kib), 20.0, "MiB"),
    );
    summary.add(
        "latency_p99_added_ms",
        Figure::at_most(at_half.added_p99, ADDED_P99_GOAL_MS, "ms"),
    );
    summary.add(
        "latency_p50_added_ms",
        Figure::at_most(at_half.added_p50, ADDED_P99_GOAL_MS, "ms"),
    );
    summary.add(
        "latency_p99_ms",
        Figure::at_most(at_half.p99, at_half.relay_p99 + ADDED_P99_GOAL_MS, "ms"),
    );
    let at_quarter = compare("a quarter of the maximum rate", quarter, &quarter_run)?;
    summary.add(
        "latency_quarter_rate_p99_added_ms",
        Figure::at_most(at_quarter.added_p99, ADDED_P99_GOAL_MS, "ms"),
    );
    summary.add(
        "latency_quarter_rate_p50_added_ms",
        Figure::at_most(at_quarter.added_p50, ADDED_P99_GOAL_MS, "ms"),
    );
    plots.push(Series {
        name: "latency run: contact-sync".to_owned(),
        points: half.worker.points,
        steady: rate,
        reference: "paced rate",
        per: series::PER_BUCKET,
    });
    plots.push(Series {
        name: "latency run: lapin relay beside it".to_owned(),
        points: half.relay.points,
        steady: rate / (RELAY_EVERY - 1) as f64,
        reference: "paced rate",
        per: series::PER_BUCKET,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nth_paced_message_goes_to_the_relay() {
        let messages = interleaved("lat", "latrelay", 2 * RELAY_EVERY);
        let relayed: Vec<(usize, &str)> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.kind == RELAY_KEY)
            .map(|(i, m)| (i, m.id.as_str()))
            .collect();
        assert_eq!(
            relayed,
            [(RELAY_EVERY - 1, "latrelay-0"), (2 * RELAY_EVERY - 1, "latrelay-1")]
        );
        let worker: Vec<&str> = messages
            .iter()
            .filter(|m| m.kind == "contact.changed")
            .map(|m| m.id.as_str())
            .collect();
        let expected: Vec<String> = (0..2 * (RELAY_EVERY - 1)).map(|i| format!("lat-{i}")).collect();
        assert_eq!(worker, expected);
    }

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
