//! Sandbox configuration: the credentials each emulated provider accepts and the rate limits
//! it enforces, from code ([`SandboxConfig::for_tests`]) or from the environment
//! ([`SandboxConfig::from_env`]). Unset or empty variables take their defaults.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SANDBOX_SPOTLER_CONSUMER_KEY` | `sandbox-spotler-key` | OAuth consumer key Spotler accepts |
//! | `SANDBOX_SPOTLER_CONSUMER_SECRET` | `sandbox-spotler-secret` | OAuth consumer secret |
//! | `SANDBOX_ECOMAIL_API_KEY` | `sandbox-ecomail-key` | value of the Ecomail `key` header |
//! | `SANDBOX_SPOTLER_RATE` | `10/s` | Spotler quota (`N/s`, `N/min`, `N/h`, or `off`) |
//! | `SANDBOX_ECOMAIL_RATE` | `1000/min` | Ecomail quota |

use crate::{
    Provider,
    limits::{Rate, parse_rate_setting},
};

/// Default Spotler consumer key.
pub const DEFAULT_SPOTLER_CONSUMER_KEY: &str = "sandbox-spotler-key";
/// Default Spotler consumer secret.
pub const DEFAULT_SPOTLER_CONSUMER_SECRET: &str = "sandbox-spotler-secret";
/// Default Ecomail API key.
pub const DEFAULT_ECOMAIL_API_KEY: &str = "sandbox-ecomail-key";

/// Everything the sandbox needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The OAuth 1.0a consumer credentials Spotler accepts.
    pub spotler: SpotlerCreds,
    /// The API key Ecomail accepts in the `key` header.
    pub ecomail_api_key: String,
    /// The rate limit of each provider.
    pub limits: Limits,
}

/// Spotler Mail+ OAuth 1.0a consumer credentials (one-legged: no token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotlerCreds {
    /// `oauth_consumer_key`.
    pub consumer_key: String,
    /// The consumer secret the signature is keyed with.
    pub consumer_secret: String,
}

/// Per-provider rate limits; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Spotler quota, by default `10/s` (PROVIDERS.md emulator assumption).
    pub spotler: Option<Rate>,
    /// Ecomail quota, by default `1000/min` (per API key).
    pub ecomail: Option<Rate>,
}

impl Default for Limits {
    /// Spotler 10/s, Ecomail 1000/min.
    fn default() -> Self {
        Self {
            spotler: Some(Rate::per_second(10)),
            ecomail: Some(Rate::per_minute(1000)),
        }
    }
}

impl Limits {
    /// No limit for any provider.
    pub const fn unlimited() -> Self {
        Self {
            spotler: None,
            ecomail: None,
        }
    }

    /// The quota of `provider`.
    pub fn get(&self, provider: Provider) -> Option<Rate> {
        match provider {
            Provider::Spotler => self.spotler,
            Provider::Ecomail => self.ecomail,
        }
    }
}

impl SandboxConfig {
    /// The default credentials with rate limits off, for tests that are not about limits.
    pub fn for_tests() -> Self {
        Self {
            spotler: SpotlerCreds {
                consumer_key: DEFAULT_SPOTLER_CONSUMER_KEY.to_owned(),
                consumer_secret: DEFAULT_SPOTLER_CONSUMER_SECRET.to_owned(),
            },
            ecomail_api_key: DEFAULT_ECOMAIL_API_KEY.to_owned(),
            limits: Limits::unlimited(),
        }
    }

    /// Reads the `SANDBOX_*` variables (see the module docs); unset ones take their defaults.
    /// The error names the offending variable.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var_os(name).map(|value| value.to_string_lossy().into_owned()))
    }

    /// Like [`SandboxConfig::from_env`], reading variables through `lookup` (tests pass a map
    /// instead of touching the process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        // As everywhere in the workspace, an empty value counts as unset.
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let text = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_owned());
        let rate = |name: &str, default: Option<Rate>| -> Result<Option<Rate>, String> {
            match get(name) {
                None => Ok(default),
                Some(value) => {
                    parse_rate_setting(&value).map_err(|why| format!("{name}={value:?} is not valid: {why}"))
                }
            }
        };
        let defaults = Limits::default();
        Ok(Self {
            spotler: SpotlerCreds {
                consumer_key: text("SANDBOX_SPOTLER_CONSUMER_KEY", DEFAULT_SPOTLER_CONSUMER_KEY),
                consumer_secret: text("SANDBOX_SPOTLER_CONSUMER_SECRET", DEFAULT_SPOTLER_CONSUMER_SECRET),
            },
            ecomail_api_key: text("SANDBOX_ECOMAIL_API_KEY", DEFAULT_ECOMAIL_API_KEY),
            limits: Limits {
                spotler: rate("SANDBOX_SPOTLER_RATE", defaults.spotler)?,
                ecomail: rate("SANDBOX_ECOMAIL_RATE", defaults.ecomail)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from_map(vars: &[(&str, &str)]) -> Result<SandboxConfig, String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        SandboxConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn empty_environment_gives_default_credentials_and_limits() {
        let config = from_map(&[]).unwrap();
        assert_eq!(config.spotler.consumer_key, DEFAULT_SPOTLER_CONSUMER_KEY);
        assert_eq!(config.spotler.consumer_secret, DEFAULT_SPOTLER_CONSUMER_SECRET);
        assert_eq!(config.ecomail_api_key, DEFAULT_ECOMAIL_API_KEY);
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.limits.spotler, Some(Rate::per_second(10)));
        assert_eq!(config.limits.ecomail, Some(Rate::per_minute(1000)));
    }

    #[test]
    fn variables_override_defaults() {
        let config = from_map(&[
            ("SANDBOX_SPOTLER_CONSUMER_KEY", "k"),
            ("SANDBOX_SPOTLER_CONSUMER_SECRET", "s"),
            ("SANDBOX_ECOMAIL_API_KEY", "e"),
            ("SANDBOX_SPOTLER_RATE", "5000/h"),
            ("SANDBOX_ECOMAIL_RATE", "off"),
        ])
        .unwrap();
        assert_eq!(config.spotler.consumer_key, "k");
        assert_eq!(config.spotler.consumer_secret, "s");
        assert_eq!(config.ecomail_api_key, "e");
        assert_eq!(config.limits.spotler, Some(Rate::per_hour(5000)));
        assert_eq!(config.limits.ecomail, None);
    }

    #[test]
    fn invalid_rate_error_names_the_variable() {
        let error = from_map(&[("SANDBOX_ECOMAIL_RATE", "lots")]).unwrap_err();
        assert!(
            error.starts_with("SANDBOX_ECOMAIL_RATE=\"lots\" is not valid"),
            "{error}"
        );
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = from_map(&[("SANDBOX_ECOMAIL_API_KEY", " "), ("SANDBOX_SPOTLER_RATE", "")]).unwrap();
        assert_eq!(config.ecomail_api_key, DEFAULT_ECOMAIL_API_KEY);
        assert_eq!(config.limits.spotler, Some(Rate::per_second(10)));
    }

    #[test]
    fn test_config_has_no_limits() {
        assert_eq!(SandboxConfig::for_tests().limits, Limits::unlimited());
    }
}
