//! Fault injection, per provider.
//!
//! A [`Fault`] is set with `PUT /_sandbox/faults/{provider}` or [`crate::Sandbox::set_fault`]
//! and applies to every later call to that provider, in this order:
//!
//! 1. `latency_ms` is waited before anything else (use it to provoke client timeouts);
//! 2. `reset_connection`: the next N calls get their TCP connection closed (with a reset)
//!    without any answer;
//! 3. `force`: the next `count` calls get `status` with the provider's error envelope
//!    (`Retry-After` on 429, default 1 s, or when `retry_after_secs` is set);
//! 4. `error_rate`: each remaining call fails with a 500 with that probability.
//!
//! Injected failures make no state change and do not count against the rate limit; they do
//! appear in the call log (a reset connection with status 0).

use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::provider::Refusal;

/// The longest latency that can be injected (five minutes).
pub const MAX_LATENCY_MS: u64 = 300_000;

/// The fault configuration of one provider. The default injects nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fault {
    /// Probability (0..=1) that a call is answered with a 500 and the provider's error body.
    pub error_rate: f64,
    /// Delay added before answering every call, in milliseconds (at most [`MAX_LATENCY_MS`]).
    pub latency_ms: u64,
    /// A forced response for the next calls; cleared once its count is used up.
    pub force: Option<ForcedResponse>,
    /// Number of upcoming calls whose connection is closed without an answer.
    pub reset_connection: u32,
}

/// A response forced on the next `count` calls of a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForcedResponse {
    /// HTTP status to answer with, 400..=599 (e.g. 429, 500, 503, 400).
    pub status: u16,
    /// How many calls get it (default 1).
    #[serde(default = "one")]
    pub count: u32,
    /// `Retry-After` seconds to send; a forced 429 without it sends `Retry-After: 1`.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// Forces `status` on the next `count` calls.
    pub fn forced(status: u16, count: u32) -> Self {
        Self {
            force: Some(ForcedResponse {
                status,
                count,
                retry_after_secs: None,
            }),
            ..Self::default()
        }
    }

    /// Fails each call with a 500 with probability `error_rate`.
    pub fn error_rate(error_rate: f64) -> Self {
        Self {
            error_rate,
            ..Self::default()
        }
    }

    /// Delays every call by `latency_ms` milliseconds.
    pub fn latency(latency_ms: u64) -> Self {
        Self {
            latency_ms,
            ..Self::default()
        }
    }

    /// Closes the connection of the next `count` calls without answering.
    pub fn reset_connections(count: u32) -> Self {
        Self {
            reset_connection: count,
            ..Self::default()
        }
    }

    /// Sets `Retry-After` on the forced response (no effect without one).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        if let Some(force) = self.force.as_mut() {
            force.retry_after_secs = Some(secs);
        }
        self
    }

    /// Checks the ranges: `error_rate` in 0..=1, `latency_ms` at most [`MAX_LATENCY_MS`],
    /// forced `status` in 400..=599.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!("error_rate must be between 0 and 1, got {}", self.error_rate));
        }
        if self.latency_ms > MAX_LATENCY_MS {
            return Err(format!(
                "latency_ms must be at most {MAX_LATENCY_MS}, got {}",
                self.latency_ms
            ));
        }
        if let Some(force) = &self.force
            && !(400..=599).contains(&force.status)
        {
            return Err(format!(
                "force.status must be an error status between 400 and 599, got {}",
                force.status
            ));
        }
        Ok(())
    }

    /// Decides what happens to one call and uses up one unit of any counted fault.
    pub(crate) fn take(&mut self) -> FaultPlan {
        let latency = Duration::from_millis(self.latency_ms);
        if self.reset_connection > 0 {
            self.reset_connection -= 1;
            return FaultPlan {
                latency,
                action: FaultAction::ResetConnection,
            };
        }
        if let Some(force) = self.force.as_mut()
            && force.count > 0
        {
            force.count -= 1;
            let status = StatusCode::from_u16(force.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let retry_after_secs = match (status, force.retry_after_secs) {
                (StatusCode::TOO_MANY_REQUESTS, None) => Some(1),
                (_, retry_after) => retry_after,
            };
            if force.count == 0 {
                self.force = None;
            }
            return FaultPlan {
                latency,
                action: FaultAction::Respond(Refusal::Forced {
                    status,
                    retry_after_secs,
                }),
            };
        }
        if self.force.as_ref().is_some_and(|force| force.count == 0) {
            self.force = None;
        }
        if self.error_rate > 0.0 && rand::random::<f64>() < self.error_rate {
            return FaultPlan {
                latency,
                action: FaultAction::Respond(Refusal::InjectedError),
            };
        }
        FaultPlan {
            latency,
            action: FaultAction::Proceed,
        }
    }
}

/// What fault injection decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FaultPlan {
    /// Delay before acting.
    pub(crate) latency: Duration,
    /// What to do after the delay.
    pub(crate) action: FaultAction,
}

/// The fault outcome of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultAction {
    /// No fault: authenticate, rate-limit and emulate as usual.
    Proceed,
    /// Close the connection without answering.
    ResetConnection,
    /// Answer with the provider's error response.
    Respond(Refusal),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_response_applies_to_exactly_count_calls() {
        let mut fault = Fault::forced(503, 2).with_retry_after(7);
        let expected = FaultAction::Respond(Refusal::Forced {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after_secs: Some(7),
        });
        assert_eq!(fault.take().action, expected);
        assert_eq!(fault.take().action, expected);
        assert_eq!(fault.take().action, FaultAction::Proceed);
        assert_eq!(fault, Fault::default());
    }

    #[test]
    fn forced_429_defaults_to_retry_after_one_second() {
        let mut fault = Fault::forced(429, 1);
        assert_eq!(
            fault.take().action,
            FaultAction::Respond(Refusal::Forced {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after_secs: Some(1),
            })
        );
    }

    #[test]
    fn resets_come_before_forced_responses() {
        let mut fault = Fault {
            reset_connection: 1,
            ..Fault::forced(500, 1)
        };
        assert_eq!(fault.take().action, FaultAction::ResetConnection);
        assert!(matches!(fault.take().action, FaultAction::Respond(_)));
        assert_eq!(fault.take().action, FaultAction::Proceed);
    }

    #[test]
    fn error_rate_one_always_fails_and_zero_never_does() {
        let mut always = Fault::error_rate(1.0);
        let mut never = Fault::error_rate(0.0);
        for _ in 0..100 {
            assert_eq!(always.take().action, FaultAction::Respond(Refusal::InjectedError));
            assert_eq!(never.take().action, FaultAction::Proceed);
        }
    }

    #[test]
    fn latency_is_reported_on_every_call() {
        let mut fault = Fault::latency(250);
        assert_eq!(fault.take().latency, Duration::from_millis(250));
        assert_eq!(fault.take().latency, Duration::from_millis(250));
    }

    #[test]
    fn validation_rejects_out_of_range_values() {
        assert!(Fault::error_rate(1.5).validate().is_err());
        assert!(Fault::error_rate(f64::NAN).validate().is_err());
        assert!(Fault::latency(MAX_LATENCY_MS + 1).validate().is_err());
        assert!(Fault::forced(200, 1).validate().is_err());
        assert!(Fault::forced(503, 1).validate().is_ok());
    }

    #[test]
    fn fault_json_uses_the_documented_field_names() {
        let fault: Fault = serde_json::from_str(
            r#"{"error_rate":0.5,"latency_ms":10,"force":{"status":429,"count":3,"retry_after_secs":2},"reset_connection":1}"#,
        )
        .unwrap();
        assert_eq!(fault.force.as_ref().map(|f| f.count), Some(3));
        assert!(serde_json::from_str::<Fault>(r#"{"eror_rate":0.5}"#).is_err());
        let defaulted: ForcedResponse = serde_json::from_str(r#"{"status":500}"#).unwrap();
        assert_eq!(defaulted.count, 1);
    }
}
