//! The per-destination budget.
//!
//! # Sizing rule
//! GCRA with burst `b` and one new cell every `τ` admits at most `b + ⌈T/τ⌉ − 1` calls in any
//! half-open window `[t, t+T)`. A naive `Quota::per_hour(N)` (burst N, τ = T/N) therefore admits about 2N
//! in the first hour. We size `τ = T / (N − b + 1)`, so `b + T/τ − 1 = N`: no window ever
//! admits more than `N`, and a steady backlog uses `(N − b + 1)/N` of the quota — all of it
//! with the default burst of 1. Each window of a multi-window budget (`10/s,5000/h`) is sized
//! this way and a call needs a cell of every one. Without a shared store each of `R` replicas
//! takes `⌊N/R⌋`; with Redis the same rule runs in one atomic script for all replicas, whose
//! state also survives restarts (a restarted replica does not get a fresh burst).

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

use crate::metrics::HttpMetrics;
use crate::shared::{Decision, SharedBudget, SharedWindow};

/// The quota that never admits more than `rate.count / replicas` calls in any window of
/// `rate.per`, with the given burst (default 1).
pub fn budget_quota(rate: Rate, burst: Option<NonZeroU32>, replicas: NonZeroU32) -> Quota {
    let (period, burst) = gcra_parameters(rate, burst, replicas);
    let quota = Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
    quota.allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

/// The emission interval τ and burst b of the sizing rule for one window.
pub fn gcra_parameters(rate: Rate, burst: Option<NonZeroU32>, replicas: NonZeroU32) -> (Duration, u32) {
    let n = (rate.count.get() / replicas.get()).max(1);
    let burst = burst.map_or(1, NonZeroU32::get).clamp(1, n);
    let cells = n - burst + 1;
    let period = rate.per / cells;
    (
        if period.is_zero() {
            Duration::from_nanos(1)
        } else {
            period
        },
        burst,
    )
}

/// Why a permit could not be had within the wait bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTooLong {
    /// How long until the destination could accept a call.
    pub retry_in: Duration,
}

type Gcra<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// How long the replica keeps to its own share after Redis failed, before asking Redis again.
const REDIS_RETRY: Duration = Duration::from_secs(1);

/// A destination's budget: one GCRA per window, a concurrency cap, a vendor-imposed pause, and
/// optionally the budget shared by every replica in Redis.
///
/// Without Redis each replica enforces `⌊N/R⌋` per window. With Redis the shared GCRA is the
/// source of truth (the local one smooths at the full quota); when Redis does not answer the
/// replica falls back to `⌊N/R⌋` until it does again, and says so in the log and in
/// `switchyard_rate_limit_fallback`.
pub struct Budget<C: Clock = DefaultClock> {
    local: Vec<Gcra<C>>,
    fallback: Vec<Gcra<C>>,
    shared: Option<SharedBudget>,
    shared_down_until: Mutex<Option<Instant>>,
    clock: C,
    concurrency: Arc<Semaphore>,
    paused_until: Mutex<Option<Instant>>,
    windows: Vec<Rate>,
    metrics: Option<(HttpMetrics, &'static str)>,
}

impl<C: Clock> std::fmt::Debug for Budget<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let windows: Vec<String> = self.windows.iter().map(ToString::to_string).collect();
        f.debug_struct("Budget")
            .field("windows", &windows)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// Held while a call is in flight.
#[derive(Debug)]
pub struct Permit {
    _concurrency: OwnedSemaphorePermit,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Budget<DefaultClock> {
    /// A budget of its own for this replica: `⌊N/R⌋` per window.
    pub fn new(limits: &ProviderLimits, replicas: NonZeroU32) -> Self {
        Self::with_clock(limits, replicas, DefaultClock::default())
    }

    /// A budget shared by every replica through Redis, falling back to `⌊N/R⌋` when Redis is
    /// unreachable.
    pub fn shared(
        limits: &ProviderLimits,
        replicas: NonZeroU32,
        connection: redis::aio::ConnectionManager,
        key: &str,
    ) -> Self {
        let mut budget = Self::with_clock(limits, NonZeroU32::MIN, DefaultClock::default());
        budget.fallback = gcras(limits, replicas, &budget.clock);
        let windows: Vec<SharedWindow> = limits
            .windows
            .iter()
            .map(|rate| {
                let (interval, burst) = gcra_parameters(*rate, limits.burst, NonZeroU32::MIN);
                SharedWindow { interval, burst }
            })
            .collect();
        budget.shared = Some(SharedBudget::new(connection, key, &windows));
        budget
    }
}

fn gcras<C: Clock + Clone>(limits: &ProviderLimits, replicas: NonZeroU32, clock: &C) -> Vec<Gcra<C>> {
    limits
        .windows
        .iter()
        .map(|rate| RateLimiter::direct_with_clock(budget_quota(*rate, limits.burst, replicas), clock.clone()))
        .collect()
}

/// Takes a cell from every limiter; on refusal, how long until all would admit.
fn take_all<C: Clock>(limiters: &[Gcra<C>], clock: &C) -> Result<(), Duration> {
    let mut wait = Duration::ZERO;
    for limiter in limiters {
        if let Err(not_until) = limiter.check() {
            wait = wait.max(not_until.wait_time_from(clock.now()));
        }
    }
    if wait.is_zero() { Ok(()) } else { Err(wait) }
}

impl<C: Clock + Clone> Budget<C> {
    /// A per-replica budget on a given clock (tests use governor's fake clock).
    pub fn with_clock(limits: &ProviderLimits, replicas: NonZeroU32, clock: C) -> Self {
        let concurrency = usize::try_from(limits.concurrency.get()).unwrap_or(1);
        Self {
            local: gcras(limits, replicas, &clock),
            fallback: Vec::new(),
            shared: None,
            shared_down_until: Mutex::new(None),
            clock,
            concurrency: Arc::new(Semaphore::new(concurrency)),
            paused_until: Mutex::new(None),
            windows: limits.windows.clone(),
            metrics: None,
        }
    }
}

impl<C: Clock> Budget<C> {
    /// Reports waits, pauses, admissions and the fallback state to `metrics` as `provider`.
    pub fn observe(mut self, metrics: HttpMetrics, provider: &'static str) -> Self {
        for rate in &self.windows {
            let window = settings::format_duration(rate.per);
            metrics
                .quota
                .with_label_values(&[provider, &window])
                .set(i64::from(rate.count.get()));
        }
        metrics.fallback.with_label_values(&[provider]).set(0);
        self.metrics = Some((metrics, provider));
        self
    }

    /// The configured windows.
    pub fn windows(&self) -> &[Rate] {
        &self.windows
    }

    /// Whether the budget is shared through Redis.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Takes one cell in every local window if they allow it now; otherwise how long until
    /// they would.
    pub fn try_take(&self) -> Result<(), Duration> {
        take_all(&self.local, &self.clock)
    }

    /// Pauses the destination for every caller of this replica until `until`. A pause only
    /// ever extends.
    pub fn pause_until(&self, until: Instant) {
        let mut guard = lock(&self.paused_until);
        if guard.is_none_or(|current| current < until) {
            *guard = Some(until);
        }
    }

    /// Pauses the destination for `wait`, for every replica when the budget is shared (vendor
    /// feedback wins).
    pub async fn pause_for(&self, wait: Duration) {
        self.pause_until(Instant::now() + wait);
        if let Some((metrics, provider)) = &self.metrics {
            metrics.pauses.with_label_values(&[provider]).inc();
        }
        if let Some(shared) = &self.shared
            && !self.redis_marked_down()
            && let Err(error) = shared.pause_for(wait).await
        {
            self.redis_failed(&error);
        }
    }

    /// How long the destination stays paused in this replica.
    pub fn paused_for(&self) -> Duration {
        lock(&self.paused_until).map_or(Duration::ZERO, |until| until.saturating_duration_since(Instant::now()))
    }

    fn redis_marked_down(&self) -> bool {
        lock(&self.shared_down_until).is_some_and(|until| Instant::now() < until)
    }

    fn redis_failed(&self, error: &str) {
        let mut down = lock(&self.shared_down_until);
        if down.is_none() {
            let provider = self.metrics.as_ref().map_or("", |(_, p)| *p);
            tracing::warn!(provider, %error, "Redis is unreachable; using this replica's share of the quota until it is back.");
            if let Some((metrics, provider)) = &self.metrics {
                metrics.fallback.with_label_values(&[provider]).set(1);
            }
        }
        *down = Some(Instant::now() + REDIS_RETRY);
    }

    fn redis_answered(&self) {
        let mut down = lock(&self.shared_down_until);
        if down.take().is_some() {
            let provider = self.metrics.as_ref().map_or("", |(_, p)| *p);
            tracing::info!(provider, "Redis is back; the shared quota applies again.");
            if let Some((metrics, provider)) = &self.metrics {
                metrics.fallback.with_label_values(&[provider]).set(0);
            }
        }
    }

    /// The shared budget's answer, or this replica's share while Redis is unreachable.
    async fn take_shared(&self) -> Result<(), Duration> {
        let Some(shared) = &self.shared else { return Ok(()) };
        if self.redis_marked_down() {
            return take_all(&self.fallback, &self.clock);
        }
        match shared.take().await {
            Ok(Decision::Go) => {
                self.redis_answered();
                Ok(())
            }
            Ok(Decision::Wait(wait)) => {
                self.redis_answered();
                Err(wait)
            }
            Err(error) => {
                self.redis_failed(&error);
                take_all(&self.fallback, &self.clock)
            }
        }
    }

    /// Waits for a concurrency slot, the end of any pause and a cell of every window (local,
    /// then shared), for at most `max_wait` in total. Cells are taken right before the caller
    /// sends and are never given back.
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
                    Err(wait) => wait,
                    Ok(()) => match self.take_shared().await {
                        Ok(()) => {
                            if let Some((metrics, provider)) = &self.metrics {
                                metrics.admitted.with_label_values(&[provider]).inc();
                            }
                            return Ok(Permit { _concurrency: permit });
                        }
                        Err(wait) => wait,
                    },
                }
            };
            if Instant::now() + wait > deadline {
                return Err(WaitTooLong { retry_in: wait });
            }
            // Up to 10% jitter (at most 50 ms) so callers sharing the budget do not stampede.
            let jitter_us = u64::try_from((wait.as_micros() / 10).min(50_000)).unwrap_or(0);
            let jitter = Duration::from_micros(rand::random_range(0..=jitter_us));
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
            windows: settings::parse_windows(rate).unwrap_or_else(|e| panic!("{e}")),
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
            let per = budget.windows()[0].per;
            let step = per / (4 * budget.windows()[0].count.get());
            let times = admissions(&budget, &clock, step, per * 3);
            let max = max_in_window(&times, per);
            let quota = budget.windows()[0].count.get() as usize;
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
    fn every_window_of_a_multi_window_budget_holds() {
        let clock = FakeClock::default();
        let budget = Budget::with_clock(&limits("10/s,100/min", None), NonZeroU32::MIN, clock.clone());
        let times = admissions(&budget, &clock, Duration::from_millis(5), Duration::from_secs(180));
        assert!(max_in_window(&times, Duration::from_secs(1)) <= 10);
        let per_minute = max_in_window(&times, Duration::from_secs(60));
        assert!(per_minute <= 100, "{per_minute} in a minute");
        assert!(per_minute >= 95, "the minute quota is still used: {per_minute}");
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
