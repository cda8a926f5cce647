//! Per-provider rate limits.
//!
//! A [`Rate`] is "N calls per window" (`10/s`, `1000/min`, `5000/h`). The sandbox enforces it
//! with a sliding-window log: a call is admitted only if fewer than N calls were admitted in the
//! preceding window, so no window of that length ever holds more than N admitted calls. This is
//! deliberately strict (stricter than a token bucket with a burst of N, which admits up to
//! about 2N in some windows): the sandbox is the judge of the workers' own limiters.
//! Refused calls are not logged, so they do not extend the lockout. Memory is one timestamp per
//! admitted call inside the window.

use std::{collections::VecDeque, fmt, str::FromStr, time::Duration};

use tokio::time::Instant;

/// A quota: at most `count` calls in any window of length `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Calls allowed per window (at least 1).
    pub count: u32,
    /// The window length.
    pub per: Duration,
}

impl Rate {
    /// `count` calls per second.
    pub const fn per_second(count: u32) -> Self {
        Self {
            count,
            per: Duration::from_secs(1),
        }
    }

    /// `count` calls per minute.
    pub const fn per_minute(count: u32) -> Self {
        Self {
            count,
            per: Duration::from_secs(60),
        }
    }

    /// `count` calls per hour.
    pub const fn per_hour(count: u32) -> Self {
        Self {
            count,
            per: Duration::from_secs(3600),
        }
    }

    /// `count` calls per day.
    pub const fn per_day(count: u32) -> Self {
        Self {
            count,
            per: Duration::from_secs(86_400),
        }
    }
}

impl FromStr for Rate {
    type Err = String;

    /// Parses `N/s`, `N/min`, `N/h` or `N/d` (also `sec`, `second`, `m`, `minute`, `hour`, `d`, `day`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "expected N/s, N/min, N/h or N/d, e.g. 10/s, 1000/min, 5000/h";
        let (count, unit) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a rate: {expected}"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a rate: the count must be a whole number; {expected}"))?;
        if count == 0 {
            return Err(format!("{s:?} is not a rate: the count must be at least 1"));
        }
        let seconds = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hr" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(format!("{s:?} is not a rate: unknown unit; {expected}")),
        };
        Ok(Self {
            count,
            per: Duration::from_secs(seconds),
        })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.per.as_secs() {
            1 => write!(f, "{}/s", self.count),
            60 => write!(f, "{}/min", self.count),
            3600 => write!(f, "{}/h", self.count),
            86_400 => write!(f, "{}/d", self.count),
            _ => write!(f, "{}/{}s", self.count, self.per.as_secs_f64()),
        }
    }
}

/// Parses a rate setting where `off`, `none`, `unlimited` (and JSON `null` upstream) disable
/// the limit.
pub(crate) fn parse_rate_setting(value: &str) -> Result<Option<Rate>, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "unlimited" => Ok(None),
        _ => value.parse().map(Some),
    }
}

/// What a limiter reports to vendors that announce their budget in headers (Voucherify).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LimitStatus {
    /// Calls allowed per window.
    pub(crate) limit: u32,
    /// Calls that would still be admitted now.
    pub(crate) remaining: u32,
    /// When nothing remains: whole seconds (at least 1) until a call would be admitted.
    pub(crate) retry_after_secs: Option<u64>,
}

/// The sliding-window limiter of one provider.
#[derive(Debug, Clone, Default)]
pub(crate) struct Limiter {
    rate: Option<Rate>,
    admitted: VecDeque<Instant>,
}

impl Limiter {
    /// A limiter enforcing `rate` (`None`: unlimited).
    pub(crate) fn new(rate: Option<Rate>) -> Self {
        Self {
            rate,
            admitted: VecDeque::new(),
        }
    }

    /// The configured rate.
    pub(crate) fn rate(&self) -> Option<Rate> {
        self.rate
    }

    /// The budget at `now`, or `None` when unlimited.
    pub(crate) fn status(&mut self, now: Instant) -> Option<LimitStatus> {
        let rate = self.rate?;
        self.expire(rate, now);
        let count = usize::try_from(rate.count).unwrap_or(usize::MAX);
        let remaining = count.saturating_sub(self.admitted.len());
        Some(LimitStatus {
            limit: rate.count,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            retry_after_secs: (remaining == 0).then(|| self.wait_secs(rate, now)),
        })
    }

    /// Forgets admitted calls that have left the window.
    fn expire(&mut self, rate: Rate, now: Instant) {
        while let Some(&oldest) = self.admitted.front() {
            if now.saturating_duration_since(oldest) >= rate.per {
                self.admitted.pop_front();
            } else {
                break;
            }
        }
    }

    /// Whole seconds (at least 1) until the oldest admitted call leaves the window.
    fn wait_secs(&self, rate: Rate, now: Instant) -> u64 {
        let oldest = self.admitted.front().copied().unwrap_or(now);
        let wait = rate.per.saturating_sub(now.saturating_duration_since(oldest));
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        secs.max(1)
    }

    /// Admits a call at `now`, or refuses it with the whole seconds (at least 1) until the
    /// oldest admitted call leaves the window.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> Result<(), u64> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        self.expire(rate, now);
        let count = usize::try_from(rate.count).unwrap_or(usize::MAX);
        if self.admitted.len() < count {
            self.admitted.push_back(now);
            return Ok(());
        }
        Err(self.wait_secs(rate, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_the_documented_formats() {
        assert_eq!("10/s".parse(), Ok(Rate::per_second(10)));
        assert_eq!("1000/min".parse(), Ok(Rate::per_minute(1000)));
        assert_eq!(" 5000/h ".parse(), Ok(Rate::per_hour(5000)));
        assert_eq!("144000/d".parse(), Ok(Rate::per_day(144_000)));
        assert_eq!("7/second".parse(), Ok(Rate::per_second(7)));
    }

    #[test]
    fn malformed_rates_are_rejected_with_an_example() {
        for bad in ["", "10", "0/s", "-1/s", "ten/s", "10/week", "10/"] {
            let error = bad.parse::<Rate>().unwrap_err();
            assert!(error.contains("10/s") || error.contains("at least 1"), "{error}");
        }
    }

    #[test]
    fn rates_display_in_the_parsed_format() {
        for text in ["10/s", "1000/min", "5000/h", "3/d"] {
            assert_eq!(text.parse::<Rate>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn off_disables_the_limit() {
        assert_eq!(parse_rate_setting("off"), Ok(None));
        assert_eq!(parse_rate_setting("10/s"), Ok(Some(Rate::per_second(10))));
    }

    #[test]
    fn limiter_admits_exactly_the_quota_per_window() {
        let start = Instant::now();
        let mut limiter = Limiter::new(Some(Rate::per_second(3)));
        for _ in 0..3 {
            assert_eq!(limiter.try_acquire(start), Ok(()));
        }
        assert_eq!(limiter.try_acquire(start), Err(1));
        assert_eq!(limiter.try_acquire(start + Duration::from_millis(999)), Err(1));
        assert_eq!(limiter.try_acquire(start + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn limiter_retry_after_counts_whole_seconds_until_the_oldest_call_expires() {
        let start = Instant::now();
        let mut limiter = Limiter::new(Some(Rate::per_minute(2)));
        assert_eq!(limiter.try_acquire(start), Ok(()));
        assert_eq!(limiter.try_acquire(start + Duration::from_secs(30)), Ok(()));
        assert_eq!(limiter.try_acquire(start + Duration::from_millis(40_500)), Err(20));
        // The first call leaves the window at 60 s; the second one at 90 s.
        assert_eq!(limiter.try_acquire(start + Duration::from_secs(60)), Ok(()));
        assert_eq!(limiter.try_acquire(start + Duration::from_secs(61)), Err(29));
    }

    #[test]
    fn status_reports_the_remaining_budget_and_the_wait_when_none_is_left() {
        let start = Instant::now();
        let mut limiter = Limiter::new(Some(Rate::per_minute(2)));
        assert_eq!(
            limiter.status(start),
            Some(LimitStatus {
                limit: 2,
                remaining: 2,
                retry_after_secs: None
            })
        );
        assert_eq!(limiter.try_acquire(start), Ok(()));
        assert_eq!(limiter.try_acquire(start + Duration::from_secs(10)), Ok(()));
        let status = limiter.status(start + Duration::from_secs(15));
        assert_eq!(status.map(|s| (s.remaining, s.retry_after_secs)), Some((0, Some(45))));
        assert_eq!(
            limiter.status(start + Duration::from_secs(60)).map(|s| s.remaining),
            Some(1)
        );
        assert_eq!(Limiter::new(None).status(start), None);
    }

    #[test]
    fn unlimited_limiter_admits_everything() {
        let now = Instant::now();
        let mut limiter = Limiter::new(None);
        for _ in 0..10_000 {
            assert_eq!(limiter.try_acquire(now), Ok(()));
        }
    }
}
