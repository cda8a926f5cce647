//! Handler outcomes and the one mapping from an outcome to broker actions.

use std::time::Duration;

use messages::Outgoing;

/// What a handler returns for one message. Handlers never ack: the runtime turns this into
/// actions with [`plan`], publishes them with confirms and only then acks the input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Results to publish (each confirmed before the input is acked).
    pub results: Vec<Outgoing>,
    /// Parts of the work that did not succeed.
    pub failures: Vec<Failure>,
}

impl Outcome {
    /// Success with these results.
    pub fn ok(results: Vec<Outgoing>) -> Self {
        Self {
            results,
            failures: Vec::new(),
        }
    }

    /// A single failure of the whole message.
    pub fn failed(kind: FailureKind, reason: impl Into<String>) -> Self {
        Self {
            results: Vec::new(),
            failures: vec![Failure {
                scope: Vec::new(),
                kind,
                reason: reason.into(),
            }],
        }
    }
}

/// A part of the work that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The destinations this failure covers; empty means the whole message. A retry copy or
    /// dead letter carries it so only this part is redone.
    pub scope: Vec<String>,
    /// How it failed.
    pub kind: FailureKind,
    /// Why, for humans (no secrets, no personal data).
    pub reason: String,
}

/// How a part failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The message itself is invalid (schema, missing id): dead-letter now, never retry.
    Invalid,
    /// Retrying cannot help (4xx, provider error body): dead-letter now.
    Permanent,
    /// May succeed later (network, timeout, 408, 5xx): retry through a delay tier.
    Retriable,
    /// Rate limited: park for at least this long without spending an attempt.
    RateLimited {
        /// How long until the destination accepts calls again.
        retry_in: Duration,
    },
}

/// Dead-letter classes (`x-switchyard-error-class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Schema violation, bad JSON, too large, no message id.
    Invalid,
    /// The provider refused the request for good.
    Permanent,
    /// Retriable failures until the attempts ran out.
    Exhausted,
    /// Dead-lettered by the broker after the delivery limit (crash loop).
    Poison,
}

impl ErrorClass {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Permanent => "permanent",
            Self::Exhausted => "exhausted",
            Self::Poison => "poison",
        }
    }
}

/// Retry settings of a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay tiers, shortest first; attempt n waits in tier min(n-1, last).
    pub tiers: Vec<Duration>,
    /// Attempts before a retriable failure is dead-lettered as `exhausted`.
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// The tier a retriable failure of `attempt` waits in.
    pub fn tier_for_attempt(&self, attempt: u32) -> Option<usize> {
        if self.tiers.is_empty() {
            return None;
        }
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        Some(index.min(self.tiers.len() - 1))
    }

    /// The shortest tier at least `wait` long (or the longest tier).
    pub fn tier_for_wait(&self, wait: Duration) -> Option<usize> {
        if self.tiers.is_empty() {
            return None;
        }
        Some(
            self.tiers
                .iter()
                .position(|tier| *tier >= wait)
                .unwrap_or(self.tiers.len() - 1),
        )
    }
}

/// One thing the runtime must do (and have confirmed) before acking the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Action<'a> {
    /// Publish a result to the main exchange.
    Publish(&'a Outgoing),
    /// Publish a copy to a delay tier with the next attempt number.
    Retry {
        /// Tier index.
        tier: usize,
        /// Attempt number the copy will carry.
        attempt: u32,
        /// Destinations still to do.
        scope: &'a [String],
        /// Why.
        reason: &'a str,
    },
    /// Park a copy in a delay tier without spending an attempt (rate limited).
    Park {
        /// Tier index.
        tier: usize,
        /// Attempt number, unchanged.
        attempt: u32,
        /// Destinations still to do.
        scope: &'a [String],
        /// Why.
        reason: &'a str,
    },
    /// Publish a dead letter.
    DeadLetter {
        /// Class.
        class: ErrorClass,
        /// Attempt number it failed on.
        attempt: u32,
        /// Destinations that failed.
        scope: &'a [String],
        /// Why.
        reason: &'a str,
    },
}

/// Maps an outcome of attempt `attempt` to broker actions. The single place that decides
/// between ack (no failure actions), delay tier and dead letter.
pub fn plan<'a>(outcome: &'a Outcome, attempt: u32, policy: &RetryPolicy) -> Vec<Action<'a>> {
    let mut actions: Vec<Action<'a>> = outcome.results.iter().map(Action::Publish).collect();
    for failure in &outcome.failures {
        let scope = failure.scope.as_slice();
        let reason = failure.reason.as_str();
        let action = match failure.kind {
            FailureKind::Invalid => Action::DeadLetter {
                class: ErrorClass::Invalid,
                attempt,
                scope,
                reason,
            },
            FailureKind::Permanent => Action::DeadLetter {
                class: ErrorClass::Permanent,
                attempt,
                scope,
                reason,
            },
            FailureKind::Retriable => match policy.tier_for_attempt(attempt) {
                Some(tier) if attempt < policy.max_attempts => Action::Retry {
                    tier,
                    attempt: attempt + 1,
                    scope,
                    reason,
                },
                _ => Action::DeadLetter {
                    class: ErrorClass::Exhausted,
                    attempt,
                    scope,
                    reason,
                },
            },
            FailureKind::RateLimited { retry_in } => match policy.tier_for_wait(retry_in) {
                Some(tier) => Action::Park {
                    tier,
                    attempt,
                    scope,
                    reason,
                },
                // No tiers at all: the only safe place left is a retry of the same attempt,
                // which cannot exist, so treat it as exhausted rather than drop it.
                None => Action::DeadLetter {
                    class: ErrorClass::Exhausted,
                    attempt,
                    scope,
                    reason,
                },
            },
        };
        actions.push(action);
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            tiers: vec![Duration::from_secs(1), Duration::from_secs(10), Duration::from_secs(60)],
            max_attempts: 4,
        }
    }

    fn check(kind: FailureKind, attempt: u32) -> Action<'static> {
        let outcome: &'static Outcome = Box::leak(Box::new(Outcome::failed(kind, "boom")));
        let mut actions = plan(outcome, attempt, &policy());
        assert_eq!(actions.len(), 1);
        actions.remove(0)
    }

    #[test]
    fn success_publishes_results_only() {
        let outcome = Outcome::ok(vec![Outgoing {
            kind: "contact.synced".into(),
            message_id: "m:1".into(),
            correlation_id: None,
            body: b"{}".to_vec(),
        }]);
        assert!(matches!(plan(&outcome, 1, &policy()).as_slice(), [Action::Publish(_)]));
    }

    #[test]
    fn retriable_climbs_the_tiers_then_exhausts() {
        assert!(matches!(
            check(FailureKind::Retriable, 1),
            Action::Retry {
                tier: 0,
                attempt: 2,
                ..
            }
        ));
        assert!(matches!(
            check(FailureKind::Retriable, 2),
            Action::Retry {
                tier: 1,
                attempt: 3,
                ..
            }
        ));
        assert!(matches!(
            check(FailureKind::Retriable, 3),
            Action::Retry {
                tier: 2,
                attempt: 4,
                ..
            }
        ));
        assert!(matches!(
            check(FailureKind::Retriable, 4),
            Action::DeadLetter {
                class: ErrorClass::Exhausted,
                attempt: 4,
                ..
            }
        ));
    }

    #[test]
    fn permanent_and_invalid_dead_letter_at_once() {
        assert!(matches!(
            check(FailureKind::Permanent, 1),
            Action::DeadLetter {
                class: ErrorClass::Permanent,
                ..
            }
        ));
        assert!(matches!(
            check(FailureKind::Invalid, 1),
            Action::DeadLetter {
                class: ErrorClass::Invalid,
                ..
            }
        ));
    }

    #[test]
    fn rate_limited_parks_without_spending_an_attempt() {
        let wait = FailureKind::RateLimited {
            retry_in: Duration::from_secs(5),
        };
        assert!(matches!(
            check(wait, 4),
            Action::Park {
                tier: 1,
                attempt: 4,
                ..
            }
        ));
        let long = FailureKind::RateLimited {
            retry_in: Duration::from_secs(3600),
        };
        assert!(matches!(
            check(long, 1),
            Action::Park {
                tier: 2,
                attempt: 1,
                ..
            }
        ));
    }
}
