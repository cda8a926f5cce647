//! Turning arrival instants into figures: a steady-state rate that ignores warm-up and tail,
//! a throughput-over-time series for the plot, and percentiles.

use std::time::Duration;

use tokio::time::Instant;

/// Width of one bucket of the throughput-over-time series.
pub(crate) const BUCKET: Duration = Duration::from_millis(250);

/// Throughput over time of one scenario, for the plot.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Panel title.
    pub(crate) name: String,
    /// `(seconds since the scenario started, messages per second)`.
    pub(crate) points: Vec<(f64, f64)>,
    /// The rate drawn as a reference line (the steady-state rate, or a quota).
    pub(crate) steady: f64,
    /// Legend of the reference line.
    pub(crate) reference: &'static str,
    /// Legend of the measured line (its bucket width).
    pub(crate) per: &'static str,
}

/// Legend of the measured line for [`over_time`] series.
pub(crate) const PER_BUCKET: &str = "per 250 ms";
/// Legend of a steady-state reference line.
pub(crate) const STEADY: &str = "steady rate";

/// The rate between the 5th and the 95th percentile of arrivals: the first and last few
/// percent are warm-up (connections, the first prefetch) and tail (the last in-flight window),
/// which say nothing about the steady state. `None` with fewer than 20 arrivals.
pub(crate) fn steady_rate(sorted: &[Instant]) -> Option<f64> {
    if sorted.len() < 20 {
        return None;
    }
    let low = sorted.len() / 20;
    let high = sorted.len() - 1 - sorted.len() / 20;
    let span = sorted[high].duration_since(sorted[low]).as_secs_f64();
    (span > 0.0).then(|| (high - low) as f64 / span)
}

/// Counts per [`BUCKET`] since `start`, as a rate; `per_unit` divides counts (2 results per
/// message when a message has two destinations).
pub(crate) fn over_time(start: Instant, sorted: &[Instant], per_unit: f64) -> Vec<(f64, f64)> {
    let Some(last) = sorted.last() else {
        return Vec::new();
    };
    let width = BUCKET.as_secs_f64();
    let buckets = (last.saturating_duration_since(start).as_secs_f64() / width) as usize + 1;
    let mut counts = vec![0_u64; buckets];
    for at in sorted {
        let index = (at.saturating_duration_since(start).as_secs_f64() / width) as usize;
        if let Some(count) = counts.get_mut(index) {
            *count += 1;
        }
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, count)| ((i as f64 + 0.5) * width, *count as f64 / width / per_unit))
        .collect()
}

/// The `q`-quantile (0..=1) of sorted values, nearest rank.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The most timestamps (milliseconds) inside any window `[t, t + window_ms)`.
pub(crate) fn max_in_window(sorted_ms: &[i64], window_ms: i64) -> usize {
    let mut best = 0;
    let mut start = 0;
    for (end, at) in sorted_ms.iter().enumerate() {
        while sorted_ms[start] <= at - window_ms {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// How many timestamps (milliseconds) filled their window: the calls after which the window
/// `(t - window_ms, t]` held `limit` calls, i.e. the vendor answered "nothing remains".
pub(crate) fn window_filled(sorted_ms: &[i64], window_ms: i64, limit: usize) -> usize {
    let mut filled = 0;
    let mut start = 0;
    for (end, at) in sorted_ms.iter().enumerate() {
        while sorted_ms[start] <= at - window_ms {
            start += 1;
        }
        if end - start + 1 >= limit {
            filled += 1;
        }
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_filled_counts_the_calls_that_exhaust_a_window() {
        // Limit 3 per 1,000 ms: the third call of a burst fills the window; after the burst
        // has aged out, two calls do not fill it again.
        let calls = [0, 10, 20, 1_500, 1_510, 2_600, 2_610, 2_620];
        assert_eq!(window_filled(&calls, 1_000, 3), 2);
        assert_eq!(window_filled(&calls, 1_000, 4), 0);
        assert_eq!(window_filled(&[], 1_000, 1), 0);
    }

    #[test]
    fn steady_rate_ignores_warm_up_and_tail() {
        let start = Instant::now();
        // 100 arrivals 10 ms apart, plus a straggler 5 s later.
        let mut arrivals: Vec<Instant> = (0..100).map(|i| start + Duration::from_millis(10 * i)).collect();
        arrivals.push(start + Duration::from_secs(6));
        let rate = steady_rate(&arrivals).unwrap_or_default();
        assert!((rate - 100.0).abs() < 1.0, "{rate}");
        assert_eq!(steady_rate(&arrivals[..10]), None);
    }

    #[test]
    fn over_time_buckets_counts_as_rates() {
        let start = Instant::now();
        let arrivals = [
            start + Duration::from_millis(10),
            start + Duration::from_millis(20),
            start + Duration::from_millis(300),
        ];
        let points = over_time(start, &arrivals, 1.0);
        assert_eq!(points.len(), 2);
        assert!((points[0].1 - 8.0).abs() < 1e-9);
        assert!((points[1].1 - 4.0).abs() < 1e-9);
        assert!((over_time(start, &arrivals, 2.0)[0].1 - 4.0).abs() < 1e-9);
    }

    #[test]
    fn quantile_is_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), Some(50.0));
        assert_eq!(quantile(&values, 0.99), Some(99.0));
        assert_eq!(quantile(&values, 1.0), Some(100.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn max_in_window_counts_a_half_open_window() {
        // 0, 500, 1000: a 1000 ms window holds two of them at most.
        assert_eq!(max_in_window(&[0, 500, 1000], 1000), 2);
        assert_eq!(max_in_window(&[0, 1, 2, 2000], 1000), 3);
        assert_eq!(max_in_window(&[], 1000), 0);
    }
}
