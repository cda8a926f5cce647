//! Quota precision (the rate-limiting issue's acceptance scenario).
//!
//! Three replicas of a worker share one budget in Redis. The sandbox enforces the vendor quota
//! with a strict sliding window and records every call; the figures come from its call log, so
//! they judge the workers from the vendor's side:
//!
//! - **Matched**: sandbox and workers both at the quota (600/min), a backlog of
//!   `voucher.publish.requested`: the most accepted calls in any rolling 60 s window (≤ 600),
//!   429s (0), utilisation of the quota from the first to the last call (≥ 97%), dead letters
//!   (0) and lost messages (0: every published message has a result or a dead letter).
//! - **Vendor lower than configured**: the sandbox allows 5/6 of the configured rate over a
//!   6 s window (the 500 vs 600/min mismatch, ten times faster so it shows within seconds):
//!   the vendor must push back (a 429, or `X-Rate-Limit-Remaining: 0` on the call that fills
//!   its window, which the workers honour before a 429 is needed) and pause the destination,
//!   no window may hold more than the vendor's limit, and still nothing is dead-lettered or lost.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{Result, bail};
use mq::WorkerTopology;
use switchyard_sandbox::{Provider, Rate};
use tokio::time::Instant;

use crate::amqp::Message;
use crate::harness::{self, Bench, Namespace};
use crate::process::WorkerProcess;
use crate::series::{self, Series};
use crate::summary::{Figure, Summary};
use crate::workers;

/// Replicas sharing the budget.
const REPLICAS: usize = 3;
/// The quota configured in the workers and, in the matched run, enforced by the sandbox.
const QUOTA_PER_MIN: u32 = 600;
/// The vendor quota of the mismatched run: 50 per 6 s, i.e. 500/min over a shorter window.
const LOW_QUOTA: Rate = Rate {
    count: 50,
    per: Duration::from_secs(6),
};

/// The worker and provider the scenario drives.
#[derive(Debug, Clone, Copy)]
struct Target {
    worker: &'static str,
    provider: Provider,
    result: &'static str,
}

/// voucher-events publishing vouchers through Voucherify (`POST /v1/publications`).
const VOUCHER_EVENTS: Target = Target {
    worker: "voucher-events",
    provider: Provider::Voucherify,
    result: "voucher.published",
};

fn topology(target: Target) -> Result<WorkerTopology> {
    harness::topology(target.worker, workers::VOUCHER_EVENTS_KEYS)
}

fn message(prefix: &str, index: usize) -> Message {
    workers::voucher_publish_requested(prefix, index)
}

fn env(bench: &Bench, namespace: &str) -> BTreeMap<String, String> {
    let mut env = workers::voucher_events_env(bench, namespace);
    env.extend(
        [
            ("SWITCHYARD_REPLICAS", REPLICAS.to_string()),
            // A small prefetch spreads the backlog over every replica instead of the first one
            // to connect taking most of it.
            ("SWITCHYARD_PREFETCH", "8".to_owned()),
            ("REDIS_URL", bench.config.redis_url.clone()),
            ("VOUCHERIFY_RATE", format!("{QUOTA_PER_MIN}/min")),
            ("VOUCHERIFY_CONCURRENCY", "4".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env
}

/// What one quota run showed.
#[derive(Debug)]
struct QuotaRun {
    /// Calls the sandbox accepted (anything but a 429), as ms since the epoch, sorted.
    accepted_ms: Vec<i64>,
    /// 429s the sandbox answered.
    refused: usize,
    /// Dead letters.
    dead_letters: u32,
    /// Published messages with neither a result nor a dead letter.
    lost: usize,
    /// Accepted calls per second over time.
    points: Vec<(f64, f64)>,
}

/// Milliseconds since the epoch of an RFC 3339 timestamp.
fn epoch_ms(rfc3339: &str) -> Option<i64> {
    let at = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

async fn run_once(bench: &Bench, label: &str, sandbox_limit: Rate, backlog: usize) -> Result<QuotaRun> {
    let target = VOUCHER_EVENTS;
    bench.sandbox.state.reset();
    bench.sandbox.state.set_rate(target.provider, Some(sandbox_limit));
    let mut namespace = Namespace::create(&bench.config, label, vec![topology(target)?]).await?;
    let result = async {
        let observer = namespace.observer(&[target.result]).await?;
        namespace.publish_backlog((0..backlog).map(|i| message(label, i))).await?;
        println!(
            "  {label}: {backlog} messages queued; {REPLICAS} replicas of {} at {QUOTA_PER_MIN}/min, sandbox {sandbox_limit}",
            target.worker
        );
        let env = env(bench, &namespace.name);
        let mut workers = Vec::with_capacity(REPLICAS);
        for replica in 0..REPLICAS {
            let name = format!("{label}-{replica}");
            workers.push(WorkerProcess::start(
                &name,
                &bench.binary(target.worker),
                &env,
                &bench.log_path(&name),
            )?);
        }
        let queue = namespace.work_queue(target.worker);
        let dead_queue = namespace.admin.names().dead_queue(target.worker);
        // Done when every message has a result or a dead letter, or nothing moved for a while.
        let per_second = f64::from(sandbox_limit.count) / sandbox_limit.per.as_secs_f64();
        let deadline = Instant::now() + Duration::from_secs_f64(backlog as f64 / per_second * 2.0 + 120.0);
        loop {
            let dead = namespace.admin.queue_depth(&dead_queue).await?;
            if observer.count() + dead as usize >= backlog || Instant::now() >= deadline {
                break;
            }
            for worker in &mut workers {
                worker.check_alive()?;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for worker in workers {
            worker.stop(Duration::from_secs(20)).await?;
        }
        let seen = observer.take();
        observer.stop().await;
        let letters = namespace.admin.dead_letters(target.worker, backlog + 10).await?;
        let mut done: HashSet<String> = seen
            .iter()
            .filter_map(|s| s.message_id.split(':').next().map(str::to_owned))
            .collect();
        done.extend(letters.iter().filter_map(|l| l.message_id.clone()));
        let lost = (0..backlog)
            .filter(|i| !done.contains(&format!("{label}-{i}")))
            .count();
        let left = namespace.admin.queue_depth(&queue).await?;
        if lost > 0 {
            eprintln!("  {label}: {lost} messages without a result or dead letter ({left} still queued)");
        }
        Ok::<_, anyhow::Error>((u32::try_from(letters.len()).unwrap_or(u32::MAX), lost))
    }
    .await;
    namespace.remove().await?;
    let (dead_letters, lost) = result?;
    let calls = bench.sandbox.state.calls(target.provider);
    let refused = calls.iter().filter(|c| c.status == 429).count();
    let mut accepted_ms: Vec<i64> = calls
        .iter()
        .filter(|c| c.status != 429 && c.status != 0)
        .filter_map(|c| epoch_ms(&c.received_at))
        .collect();
    accepted_ms.sort_unstable();
    let points = match accepted_ms.first() {
        Some(first) => per_second_points(*first, &accepted_ms),
        None => bail!(
            "{label}: the sandbox accepted no call; see {}",
            bench.log_path(label).display()
        ),
    };
    Ok(QuotaRun {
        accepted_ms,
        refused,
        dead_letters,
        lost,
        points,
    })
}

/// Accepted calls per second (1 s buckets: the quota is ten a second).
fn per_second_points(first_ms: i64, sorted_ms: &[i64]) -> Vec<(f64, f64)> {
    let Some(last) = sorted_ms.last() else {
        return Vec::new();
    };
    let buckets = usize::try_from((last - first_ms) / 1000 + 1).unwrap_or(0);
    let mut counts = vec![0_u32; buckets];
    for at in sorted_ms {
        if let Some(count) = usize::try_from((at - first_ms) / 1000)
            .ok()
            .and_then(|i| counts.get_mut(i))
        {
            *count += 1;
        }
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| (i as f64 + 0.5, f64::from(*c)))
        .collect()
}

/// Share of the quota used from the first to the last accepted call: 1.0 when the calls are
/// exactly one emission interval apart.
fn utilisation(sorted_ms: &[i64], quota: Rate) -> f64 {
    match (sorted_ms.first(), sorted_ms.last()) {
        (Some(first), Some(last)) if last > first => {
            let allowed_per_ms = f64::from(quota.count) / quota.per.as_millis() as f64;
            (sorted_ms.len() - 1) as f64 / ((last - first) as f64 * allowed_per_ms)
        }
        _ => 0.0,
    }
}

/// Both quota runs.
pub(crate) async fn quota(bench: &Bench, summary: &mut Summary, plots: &mut Vec<Series>) -> Result<()> {
    let sizes = bench.config.sizes;
    let matched = Rate::per_minute(QUOTA_PER_MIN);
    println!("quota: sandbox limit = configured limit ({matched})");
    let run = run_once(bench, "quota", matched, sizes.quota).await?;
    let window_ms = i64::try_from(matched.per.as_millis()).unwrap_or(i64::MAX);
    let max_in_window = series::max_in_window(&run.accepted_ms, window_ms);
    let used = utilisation(&run.accepted_ms, matched);
    summary.add(
        "quota_limit_per_window",
        Figure::at_most(f64::from(matched.count), f64::from(matched.count), "calls/60s"),
    );
    summary.add(
        "quota_max_calls_in_window",
        Figure::at_most(max_in_window as f64, f64::from(matched.count), "calls/60s"),
    );
    summary.add("quota_utilisation", Figure::at_least(used, 0.97, "ratio"));
    summary.add("quota_429s", Figure::at_most(run.refused as f64, 0.0, "count"));
    summary.add(
        "quota_dead_letters",
        Figure::at_most(f64::from(run.dead_letters), 0.0, "count"),
    );
    summary.add("quota_lost", Figure::at_most(run.lost as f64, 0.0, "count"));
    plots.push(Series {
        name: format!("quota: 3 replicas, {} msgs, accepted calls", sizes.quota),
        points: run.points,
        steady: f64::from(matched.count) / 60.0,
        reference: "quota",
        per: "per second",
    });

    println!("quota: sandbox limit below the configured one ({LOW_QUOTA} vs {QUOTA_PER_MIN}/min)");
    let low = run_once(bench, "quota-low", LOW_QUOTA, sizes.quota_low).await?;
    let low_window_ms = i64::try_from(LOW_QUOTA.per.as_millis()).unwrap_or(i64::MAX);
    summary.add(
        "quota_low_max_calls_in_window",
        Figure::at_most(
            series::max_in_window(&low.accepted_ms, low_window_ms) as f64,
            f64::from(LOW_QUOTA.count),
            "calls/6s",
        ),
    );
    // The vendor pushes back either with a 429 or, first, with `X-Rate-Limit-Remaining: 0` on
    // the call that fills its window; the workers pause on both (shared through Redis), so
    // with the budget shared the 429s themselves usually never come.
    let limit = usize::try_from(LOW_QUOTA.count).unwrap_or(usize::MAX);
    let filled = series::window_filled(&low.accepted_ms, low_window_ms, limit);
    summary.add(
        "quota_low_vendor_pushbacks",
        Figure::at_least((low.refused + filled) as f64, 1.0, "count"),
    );
    summary.add("quota_low_429s", Figure::at_least(low.refused as f64, 0.0, "count"));
    summary.add(
        "quota_low_dead_letters",
        Figure::at_most(f64::from(low.dead_letters), 0.0, "count"),
    );
    summary.add("quota_low_lost", Figure::at_most(low.lost as f64, 0.0, "count"));
    plots.push(Series {
        name: format!("quota, vendor below config ({LOW_QUOTA}): accepted calls"),
        points: low.points,
        steady: f64::from(LOW_QUOTA.count) / LOW_QUOTA.per.as_secs_f64(),
        reference: "quota",
        per: "per second",
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilisation_is_one_at_exact_spacing() {
        let spaced: Vec<i64> = (0..601).map(|i| i * 100).collect();
        assert!((utilisation(&spaced, Rate::per_minute(600)) - 1.0).abs() < 1e-9);
        let slow: Vec<i64> = (0..301).map(|i| i * 200).collect();
        assert!((utilisation(&slow, Rate::per_minute(600)) - 0.5).abs() < 1e-9);
        assert!(utilisation(&[5], Rate::per_minute(600)).abs() < f64::EPSILON);
    }

    #[test]
    fn timestamps_parse_to_epoch_ms() {
        assert_eq!(epoch_ms("1970-01-01T00:00:01.250Z"), Some(1250));
        assert_eq!(epoch_ms("yesterday"), None);
    }

    #[test]
    fn accepted_calls_are_counted_per_second() {
        let points = per_second_points(1000, &[1000, 1500, 2999]);
        assert_eq!(points, vec![(0.5, 2.0), (1.5, 1.0)]);
    }
}
