//! The per-destination budget.
//!
//! # Sizing rule
//! GCRA with burst `b` and one new cell every `τ` admits at most `b + ⌈T/τ⌉ − 1` calls in any
//! half-open window `[t, t+T)`. A naive `Quota::per_hour(N)` (burst N, τ = T/N) therefore admits about 2N
//! in the first hour. We size `τ = T / (N − b + 1)`, so `b + T/τ − 1 = N`: no window ever
//! admits more than `N`, and a steady backlog uses `(N − b + 1)/N` of the quota — all of it
//! with the default burst of 1. Without a shared store each of `R` replicas takes `⌊N/R⌋`.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use settings::{ProviderLimits, Rate};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The quota that never admits more than `rate.count / replicas` calls in any window of
/// `rate.per`, with the given burst (default 1).
pub fn budget_quota(rate: Rate, burst: Option<NonZeroU32>, replicas: NonZeroU32) -> Quota {
    let n = (rate.count.get() / replicas.get()).max(1);
    let burst = burst.map_or(1, NonZeroU32::get).clamp(1, n);
    let cells = n - burst + 1;
    let period = rate.per / cells;
    let period = if period.is_zero() {
        Duration::from_nanos(1)
    } else {
        period
    };
    let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
    quota.allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

/// Why a permit could not be had within the wait bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTooLong {
    /// How long until the destination could accept a call.
    pub retry_in: Duration,
}

/// A destination's budget: GCRA rate, concurrency cap and vendor-imposed pause.
pub struct Budget<C: Clock = DefaultClock> {
    rate: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    concurrency: Arc<Semaphore>,
    paused_until: Mutex<Option<Instant>>,
    quota: Rate,
}

impl<C: Clock> std::fmt::Debug for Budget<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("quota", &self.quota.to_string())
            .finish_non_exhaustive()
    }
}

/// Held while a call is in flight.
#[derive(Debug)]
pub struct Permit {
    _concurrency: OwnedSemaphorePermit,
}

impl Budget<DefaultClock> {
    /// A budget from provider limits, splitting the quota across `replicas`.
    pub fn new(limits: &ProviderLimits, replicas: NonZeroU32) -> Self {
        Self::with_clock(limits, replicas, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Budget<C> {
    /// A budget on a given clock (tests use governor's fake clock).
    pub fn with_clock(limits: &ProviderLimits, replicas: NonZeroU32, clock: C) -> Self {
        let quota = budget_quota(limits.rate, limits.burst, replicas);
        let concurrency = usize::try_from(limits.concurrency.get()).unwrap_or(1);
        Self {
            rate: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            concurrency: Arc::new(Semaphore::new(concurrency)),
            paused_until: Mutex::new(None),
            quota: limits.rate,
        }
    }

    /// The configured quota.
    pub fn quota(&self) -> Rate {
        self.quota
    }

    /// Takes one cell if the rate allows it now; otherwise how long until it would.
    pub fn try_take(&self) -> Result<(), Duration> {
        self.rate
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Pauses the destination for every caller until `until` (vendor feedback wins). A pause
    /// only ever extends.
    pub fn pause_until(&self, until: Instant) {
        let mut guard = match self.paused_until.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if guard.is_none_or(|current| current < until) {
            *guard = Some(until);
        }
    }

    /// How long the destination stays paused.
    pub fn paused_for(&self) -> Duration {
        let guard = match self.paused_until.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.map_or(Duration::ZERO, |until| until.saturating_duration_since(Instant::now()))
    }

    /// Waits for a concurrency slot, the end of any pause and a rate cell, in that order,
    /// for at most `max_wait` in total. The cell is taken right before the caller sends and is
    /// never given back.
    pub async fn acquire(&self, max_wait: Duration) -> Result<Permit, WaitTooLong> {
        let deadline = Instant::now() + max_wait;
        let permit = match tokio::time::timeout_at(deadline, Arc::clone(&self.concurrency).acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            // Closed never happens (we never close it); a timeout means saturated.
            _ => {
                return Err(WaitTooLong {
                    retry_in: Duration::from_secs(1),
                });
            }
        };
        loop {
            let paused = self.paused_for();
            let wait = if paused > Duration::ZERO {
                paused
            } else {
                match self.try_take() {
                    Ok(()) => return Ok(Permit { _concurrency: permit }),
                    Err(wait) => wait,
                }
            };
            let now = Instant::now();
            if now + wait > deadline {
                return Err(WaitTooLong { retry_in: wait });
            }
            // Up to 10% jitter (at most 50 ms) so callers sharing the budget do not stampede.
            let jitter = Duration::from_micros(rand::random_range(0..=(wait.as_micros() / 10).min(50_000) as u64));
            tokio::time::sleep(wait + jitter).await;
        }
    }
}

/// Re-export for tests.
pub type FakeClock = governor::clock::FakeRelativeClock;

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: &str, burst: Option<u32>) -> ProviderLimits {
        ProviderLimits {
            rate: rate.parse().unwrap_or_else(|e| panic!("{e}")),
            burst: burst.and_then(NonZeroU32::new),
            concurrency: NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN),
            timeout: Duration::from_secs(10),
        }
    }

    /// Drives the budget on the fake clock in `step` increments for `total`, taking every
    /// cell offered, and returns the admission times.
    fn admissions(budget: &Budget<FakeClock>, clock: &FakeClock, step: Duration, total: Duration) -> Vec<Duration> {
        let mut at = Duration::ZERO;
        let mut out = Vec::new();
        while at <= total {
            while budget.try_take().is_ok() {
                out.push(at);
            }
            clock.advance(step);
            at += step;
        }
        out
    }

    fn max_in_window(times: &[Duration], window: Duration) -> usize {
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end] - times[start] >= window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    #[test]
    fn naive_governor_quota_admits_double_in_first_hour() {
        let clock = FakeClock::default();
        let naive = RateLimiter::direct_with_clock(
            Quota::per_hour(NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN)),
            clock.clone(),
        );
        let mut n = 0;
        for _ in 0..3600 {
            while naive.check().is_ok() {
                n += 1;
            }
            clock.advance(Duration::from_secs(1));
        }
        assert!(
            n >= 190,
            "the naive quota admitted {n}; the point of budget_quota is that this is about 2N"
        );
    }

    #[test]
    fn no_window_exceeds_the_quota_from_a_cold_start() {
        for (rate, burst) in [
            ("100/h", None),
            ("100/h", Some(10)),
            ("600/min", None),
            ("10/s", Some(3)),
            ("5000/h", Some(50)),
        ] {
            let clock = FakeClock::default();
            let budget = Budget::with_clock(&limits(rate, burst), NonZeroU32::MIN, clock.clone());
            let per = budget.quota().per;
            let step = per / (4 * budget.quota().count.get());
            let times = admissions(&budget, &clock, step, per * 3);
            let max = max_in_window(&times, per);
            let quota = budget.quota().count.get() as usize;
            assert!(
                max <= quota,
                "{rate} burst {burst:?}: {max} calls in one window, quota {quota}"
            );
            // Utilisation under a permanent backlog: (N - b + 1) / N of the quota.
            let expected = quota - burst.unwrap_or(1) as usize + 1;
            assert!(
                max >= expected - 1,
                "{rate} burst {burst:?}: only {max} in the busiest window"
            );
        }
    }

    #[test]
    fn replicas_split_the_quota() {
        let clock = FakeClock::default();
        let budget = Budget::with_clock(
            &limits("600/min", None),
            NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN),
            clock.clone(),
        );
        let times = admissions(&budget, &clock, Duration::from_millis(10), Duration::from_secs(120));
        assert!(max_in_window(&times, Duration::from_secs(60)) <= 200);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_blocks_every_caller_until_it_ends() {
        let budget = Budget::new(&limits("1000/s", None), NonZeroU32::MIN);
        budget.pause_until(Instant::now() + Duration::from_secs(3));
        assert_eq!(
            budget
                .acquire(Duration::from_secs(1))
                .await
                .err()
                .map(|w| w.retry_in > Duration::from_secs(2)),
            Some(true)
        );
        let started = Instant::now();
        assert!(budget.acquire(Duration::from_secs(5)).await.is_ok());
        assert!(started.elapsed() >= Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_cap_holds() {
        // A rate that never binds: this test is about the concurrency cap alone.
        let mut l = limits("1000000/s", Some(1000));
        l.concurrency = NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN);
        let budget = Budget::new(&l, NonZeroU32::MIN);
        let a = budget.acquire(Duration::from_secs(1)).await;
        let b = budget.acquire(Duration::from_secs(1)).await;
        assert!(a.is_ok() && b.is_ok());
        assert!(budget.acquire(Duration::from_millis(100)).await.is_err());
        drop(a);
        assert!(budget.acquire(Duration::from_millis(100)).await.is_ok());
    }
}
