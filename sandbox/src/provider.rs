//! The providers the sandbox emulates and the per-provider dispatch used by the shared
//! machinery (path prefix, router, authentication and error envelopes).
//!
//! Adding a provider (Voucherify, Bloomreach, SALESmanago, Froomle are planned) means: a new
//! [`Provider`] variant, a module `src/<provider>.rs` exposing `router()`, `auth_failure()` and
//! `refusal()`, a field in [`PerProvider`], and its store in `Sandbox`. The compiler points at
//! every `match` that needs the new arm.

use std::{fmt, str::FromStr};

use axum::{
    Router,
    http::{StatusCode, request::Parts},
    response::Response,
};
use serde::{Deserialize, Serialize};

use crate::{Sandbox, ecomail, spotler};

/// A provider API emulated by the sandbox.
///
/// Serialised in lowercase (`"spotler"`, `"ecomail"`), the same spelling the `/_sandbox`
/// endpoints use in paths and query strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Provider {
    /// Spotler Mail+ (ex-MailPlus) REST API, served under `/spotler/integrationservice-1.1.0`.
    Spotler,
    /// Ecomail API v2, served under `/ecomail`.
    Ecomail,
}

impl Provider {
    /// Every emulated provider, in a stable order.
    pub const ALL: [Provider; 2] = [Provider::Spotler, Provider::Ecomail];

    /// The lowercase name used in `/_sandbox` paths, the call log and environment variables.
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Spotler => "spotler",
            Provider::Ecomail => "ecomail",
        }
    }

    /// The path prefix the provider's real API paths are served under.
    pub const fn path_prefix(self) -> &'static str {
        match self {
            Provider::Spotler => "/spotler/integrationservice-1.1.0",
            Provider::Ecomail => "/ecomail",
        }
    }

    /// The provider whose prefix `path` falls under, if any.
    pub(crate) fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|provider| {
            path.strip_prefix(provider.path_prefix())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    /// The provider's routes, relative to its prefix.
    pub(crate) fn router(self) -> Router<Sandbox> {
        match self {
            Provider::Spotler => spotler::router(),
            Provider::Ecomail => ecomail::router(),
        }
    }

    /// Checks the provider's credentials on a request: `Some` is the provider's 401 answer.
    pub(crate) fn auth_failure(self, sandbox: &Sandbox, parts: &Parts) -> Option<Response> {
        match self {
            Provider::Spotler => spotler::auth_failure(sandbox, parts),
            Provider::Ecomail => ecomail::auth_failure(sandbox, parts),
        }
    }

    /// The provider's answer when the shared machinery refuses a call.
    pub(crate) fn refusal(self, refusal: Refusal) -> Response {
        match self {
            Provider::Spotler => spotler::refusal(refusal),
            Provider::Ecomail => ecomail::refusal(refusal),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|provider| provider.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown provider {s:?}, expected one of: {}", known.join(", "))
            })
    }
}

/// Why the shared machinery (limits, faults, body limit) answers instead of the emulation.
/// Each provider turns it into its own status, headers and error envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Over the rate limit: 429 with `Retry-After`.
    RateLimited {
        /// Seconds until a call would be admitted (at least 1).
        retry_after_secs: u64,
    },
    /// A forced response from fault injection.
    Forced {
        /// The status to answer with (400..=599).
        status: StatusCode,
        /// `Retry-After` to send, if any.
        retry_after_secs: Option<u64>,
    },
    /// A random 500 from the fault `error_rate`.
    InjectedError,
    /// The request body is larger than 1 MiB.
    PayloadTooLarge,
}

/// One value per provider; the sandbox keeps faults and limiters in it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PerProvider<T> {
    spotler: T,
    ecomail: T,
}

impl<T> PerProvider<T> {
    /// Builds the table by calling `make` for each provider.
    pub(crate) fn from_fn(mut make: impl FnMut(Provider) -> T) -> Self {
        Self {
            spotler: make(Provider::Spotler),
            ecomail: make(Provider::Ecomail),
        }
    }

    /// The value for `provider`.
    pub(crate) fn get(&self, provider: Provider) -> &T {
        match provider {
            Provider::Spotler => &self.spotler,
            Provider::Ecomail => &self.ecomail,
        }
    }

    /// The value for `provider`, mutably.
    pub(crate) fn get_mut(&mut self, provider: Provider) -> &mut T {
        match provider {
            Provider::Spotler => &mut self.spotler,
            Provider::Ecomail => &mut self.ecomail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_is_found_from_its_prefix_only_on_segment_boundaries() {
        assert_eq!(
            Provider::from_path("/spotler/integrationservice-1.1.0/contact"),
            Some(Provider::Spotler)
        );
        assert_eq!(Provider::from_path("/ecomail"), Some(Provider::Ecomail));
        assert_eq!(
            Provider::from_path("/ecomail/lists/1/subscribe"),
            Some(Provider::Ecomail)
        );
        assert_eq!(Provider::from_path("/ecomailx/lists"), None);
        assert_eq!(Provider::from_path("/_sandbox/health"), None);
    }

    #[test]
    fn provider_names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(provider.as_str().parse::<Provider>(), Ok(provider));
        }
        assert!("voucherify".parse::<Provider>().is_err());
    }
}
