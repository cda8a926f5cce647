//! The providers the sandbox emulates and the per-provider dispatch used by the shared
//! machinery (path prefix, router, authentication, error envelopes and budget headers).
//!
//! Adding a provider means: a new [`Provider`] variant, a module `src/<provider>.rs` exposing
//! `router()`, `auth_failure()` and `refusal()`, a field in [`PerProvider`] and in
//! [`crate::Limits`], and its store in `Sandbox`. The compiler points at every `match` that
//! needs the new arm.

use std::{fmt, str::FromStr};

use axum::{
    Router,
    body::Bytes,
    http::{StatusCode, request::Parts},
    response::Response,
};
use serde::{Deserialize, Serialize};

use crate::{Sandbox, bloomreach, ecomail, froomle, salesmanago, spotler, voucherify};

/// A provider API emulated by the sandbox.
///
/// Serialised in lowercase (`"spotler"`, `"voucherify-integration"`), the same spelling the
/// `/_sandbox` endpoints use in paths and query strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Provider {
    /// Spotler Mail+ (ex-MailPlus) REST API, served under `/spotler/integrationservice-1.1.0`.
    Spotler,
    /// Ecomail API v2, served under `/ecomail`.
    Ecomail,
    /// Voucherify API (`/v1/...`), served under `/voucherify`.
    Voucherify,
    /// Voucherify's Bloomreach Engagement integration endpoints (`/bloomreach-engagement/...`),
    /// served under `/voucherify-integration`; same customers as [`Provider::Voucherify`],
    /// separate credentials and rate limit.
    #[serde(rename = "voucherify-integration")]
    VoucherifyIntegration,
    /// Bloomreach Engagement Tracking API (`/track/v2/...`), served under `/bloomreach`.
    Bloomreach,
    /// SALESmanago API v2 (`/api/...`), served under `/salesmanago`.
    Salesmanago,
    /// Froomle (`/oauth/token`, `/api/{environment}/...`), served under `/froomle`.
    Froomle,
}

impl Provider {
    /// Every emulated provider, in a stable order.
    pub const ALL: [Provider; 7] = [
        Provider::Spotler,
        Provider::Ecomail,
        Provider::Voucherify,
        Provider::VoucherifyIntegration,
        Provider::Bloomreach,
        Provider::Salesmanago,
        Provider::Froomle,
    ];

    /// The lowercase name used in `/_sandbox` paths, the call log and environment variables.
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Spotler => "spotler",
            Provider::Ecomail => "ecomail",
            Provider::Voucherify => "voucherify",
            Provider::VoucherifyIntegration => "voucherify-integration",
            Provider::Bloomreach => "bloomreach",
            Provider::Salesmanago => "salesmanago",
            Provider::Froomle => "froomle",
        }
    }

    /// The path prefix the provider's real API paths are served under.
    pub const fn path_prefix(self) -> &'static str {
        match self {
            Provider::Spotler => "/spotler/integrationservice-1.1.0",
            Provider::Ecomail => "/ecomail",
            Provider::Voucherify => "/voucherify",
            Provider::VoucherifyIntegration => "/voucherify-integration",
            Provider::Bloomreach => "/bloomreach",
            Provider::Salesmanago => "/salesmanago",
            Provider::Froomle => "/froomle",
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
            Provider::Voucherify => voucherify::router(),
            Provider::VoucherifyIntegration => voucherify::integration::router(),
            Provider::Bloomreach => bloomreach::router(),
            Provider::Salesmanago => salesmanago::router(),
            Provider::Froomle => froomle::router(),
        }
    }

    /// Checks the provider's credentials on a request (SALESmanago's are in the body):
    /// `Some` is the provider's refusal (401, or what the vendor answers instead).
    pub(crate) fn auth_failure(self, sandbox: &Sandbox, parts: &Parts, body: &Bytes) -> Option<Response> {
        match self {
            Provider::Spotler => spotler::auth_failure(sandbox, parts),
            Provider::Ecomail => ecomail::auth_failure(sandbox, parts),
            Provider::Voucherify => voucherify::auth_failure(sandbox, parts),
            Provider::VoucherifyIntegration => voucherify::integration::auth_failure(sandbox, parts),
            Provider::Bloomreach => bloomreach::auth_failure(sandbox, parts),
            Provider::Salesmanago => salesmanago::auth_failure(sandbox, body),
            Provider::Froomle => froomle::auth_failure(sandbox, parts),
        }
    }

    /// The provider's answer when the shared machinery refuses a call.
    pub(crate) fn refusal(self, sandbox: &Sandbox, refusal: Refusal) -> Response {
        match self {
            Provider::Spotler => spotler::refusal(refusal),
            Provider::Ecomail => ecomail::refusal(refusal),
            Provider::Voucherify => voucherify::refusal(refusal, voucherify::LimitType::ApiCalls),
            Provider::VoucherifyIntegration => voucherify::refusal(refusal, voucherify::LimitType::WebhookCalls),
            Provider::Bloomreach => bloomreach::refusal(refusal),
            Provider::Salesmanago => salesmanago::refusal(sandbox, refusal),
            Provider::Froomle => froomle::refusal(refusal),
        }
    }

    /// Adds the headers a vendor puts on every answer (Voucherify's `X-Rate-Limit-*`).
    pub(crate) fn decorate(self, sandbox: &Sandbox, response: &mut Response) {
        match self {
            Provider::Voucherify | Provider::VoucherifyIntegration => {
                voucherify::add_budget_headers(sandbox.limit_status(self), response);
            }
            Provider::Spotler
            | Provider::Ecomail
            | Provider::Bloomreach
            | Provider::Salesmanago
            | Provider::Froomle => {}
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

    /// Case-insensitive; `_` and `-` are interchangeable (`voucherify_integration`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|provider| provider.as_str().eq_ignore_ascii_case(&wanted))
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
    voucherify: T,
    voucherify_integration: T,
    bloomreach: T,
    salesmanago: T,
    froomle: T,
}

impl<T> PerProvider<T> {
    /// Builds the table by calling `make` for each provider.
    pub(crate) fn from_fn(mut make: impl FnMut(Provider) -> T) -> Self {
        Self {
            spotler: make(Provider::Spotler),
            ecomail: make(Provider::Ecomail),
            voucherify: make(Provider::Voucherify),
            voucherify_integration: make(Provider::VoucherifyIntegration),
            bloomreach: make(Provider::Bloomreach),
            salesmanago: make(Provider::Salesmanago),
            froomle: make(Provider::Froomle),
        }
    }

    /// The value for `provider`.
    pub(crate) fn get(&self, provider: Provider) -> &T {
        match provider {
            Provider::Spotler => &self.spotler,
            Provider::Ecomail => &self.ecomail,
            Provider::Voucherify => &self.voucherify,
            Provider::VoucherifyIntegration => &self.voucherify_integration,
            Provider::Bloomreach => &self.bloomreach,
            Provider::Salesmanago => &self.salesmanago,
            Provider::Froomle => &self.froomle,
        }
    }

    /// The value for `provider`, mutably.
    pub(crate) fn get_mut(&mut self, provider: Provider) -> &mut T {
        match provider {
            Provider::Spotler => &mut self.spotler,
            Provider::Ecomail => &mut self.ecomail,
            Provider::Voucherify => &mut self.voucherify,
            Provider::VoucherifyIntegration => &mut self.voucherify_integration,
            Provider::Bloomreach => &mut self.bloomreach,
            Provider::Salesmanago => &mut self.salesmanago,
            Provider::Froomle => &mut self.froomle,
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
        assert_eq!(
            Provider::from_path("/voucherify/v1/customers"),
            Some(Provider::Voucherify)
        );
        assert_eq!(
            Provider::from_path("/voucherify-integration/bloomreach-engagement/create-event-bulk"),
            Some(Provider::VoucherifyIntegration)
        );
        assert_eq!(Provider::from_path("/_sandbox/health"), None);
    }

    #[test]
    fn provider_names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(provider.as_str().parse::<Provider>(), Ok(provider));
        }
        assert_eq!(
            "Voucherify_Integration".parse::<Provider>(),
            Ok(Provider::VoucherifyIntegration)
        );
        assert!("mailchimp".parse::<Provider>().is_err());
        assert_eq!(
            serde_json::to_value(Provider::VoucherifyIntegration).ok(),
            Some(serde_json::json!("voucherify-integration"))
        );
    }
}
