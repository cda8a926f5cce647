//! recommendations configuration, read once from a `Strings` source and validated.

use std::num::NonZeroU32;
use std::time::Duration;

use mq::worker::Common;
use provider_froomle::FroomleConfig;
use settings::{ConfigError, ProviderLimits, Rate, Strings};
use url::Url;

/// Worker name: its queue and metrics label.
pub const WORKER: &str = "recommendations";
/// Message types it consumes.
pub const ROUTING_KEYS: &[&str] = &["recommendation.requested", "recommendation.tracked"];

/// Default `FROOMLE_RATE` (Froomle documents no quota; this keeps a batch run polite).
pub const DEFAULT_RATE: &str = "50/s";
/// Default `FROOMLE_CONCURRENCY`.
pub const DEFAULT_CONCURRENCY: u32 = 8;
/// Default `FROOMLE_CHANNEL`.
pub const DEFAULT_CHANNEL: &str = "email";
/// Default `FROOMLE_TOKEN_MAX_AGE` (Froomle recommends refreshing every 10 minutes).
pub const DEFAULT_TOKEN_MAX_AGE: Duration = Duration::from_secs(600);
/// Default `RECOMMENDATIONS_PROCESSED_TTL`: how long a sent tracking message is remembered.
pub const DEFAULT_PROCESSED_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default `RECOMMENDATIONS_PROCESSED_CAPACITY`: how many sent tracking messages are remembered.
pub const DEFAULT_PROCESSED_CAPACITY: usize = 100_000;

/// Everything recommendations needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every worker has.
    pub common: Common,
    /// Froomle base URL (`FROOMLE_BASE_URL`); the client appends `/oauth/token` and `/api/…`.
    pub froomle_base_url: Url,
    /// Froomle rate limits and timeout (`FROOMLE_RATE`, `FROOMLE_BURST`, `FROOMLE_CONCURRENCY`,
    /// `FROOMLE_TIMEOUT`).
    pub froomle_limits: ProviderLimits,
    /// Froomle credentials and channel.
    pub froomle: FroomleConfig,
    /// How long the processed-message record keeps a sent tracking message
    /// (`RECOMMENDATIONS_PROCESSED_TTL`).
    pub processed_ttl: Duration,
    /// How many sent tracking messages the record keeps at most
    /// (`RECOMMENDATIONS_PROCESSED_CAPACITY`); the oldest are forgotten first.
    pub processed_capacity: usize,
}

fn default_rate() -> Rate {
    DEFAULT_RATE.parse().unwrap_or(Rate {
        count: NonZeroU32::MIN,
        per: Duration::from_secs(1),
    })
}

fn channel(raw: &str) -> Result<String, &'static str> {
    if !raw.is_empty() && raw.len() <= 64 && raw.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
        Ok(raw.to_owned())
    } else {
        Err("expected a Froomle channel name such as `email` or `www-desktop` (letters, digits, `-`, `_`)")
    }
}

impl Config {
    /// Reads and validates the configuration.
    pub fn from_strings(strings: &dyn Strings) -> Result<Self, ConfigError> {
        let froomle_base_url = settings::base_url(strings, "FROOMLE_BASE_URL")?
            .ok_or_else(|| ConfigError::missing("FROOMLE_BASE_URL", "e.g. `https://<tenant>.froomle.com`"))?;
        let client_id = settings::required(
            strings,
            "FROOMLE_CLIENT_ID",
            "the OAuth2 client id Froomle issued for this integration",
        )?;
        if client_id.trim().is_empty() {
            return Err(ConfigError::invalid("FROOMLE_CLIENT_ID", "must not be empty"));
        }
        let client_secret = settings::required_secret(strings, "FROOMLE_CLIENT_SECRET")?;
        let channel =
            settings::parse(strings, "FROOMLE_CHANNEL", channel)?.unwrap_or_else(|| DEFAULT_CHANNEL.to_owned());
        let token_max_age = settings::duration_or(strings, "FROOMLE_TOKEN_MAX_AGE", DEFAULT_TOKEN_MAX_AGE)?;
        if token_max_age < Duration::from_secs(1) {
            return Err(ConfigError::invalid("FROOMLE_TOKEN_MAX_AGE", "must be at least 1s"));
        }
        let processed_ttl = settings::duration_or(strings, "RECOMMENDATIONS_PROCESSED_TTL", DEFAULT_PROCESSED_TTL)?;
        if processed_ttl.is_zero() {
            return Err(ConfigError::invalid(
                "RECOMMENDATIONS_PROCESSED_TTL",
                "must be longer than 0 (it is what keeps a redelivery from sending events twice)",
            ));
        }
        let processed_capacity = settings::parse_or(
            strings,
            "RECOMMENDATIONS_PROCESSED_CAPACITY",
            DEFAULT_PROCESSED_CAPACITY,
        )?;
        if processed_capacity == 0 {
            return Err(ConfigError::invalid(
                "RECOMMENDATIONS_PROCESSED_CAPACITY",
                "must be at least 1",
            ));
        }
        Ok(Self {
            common: Common::from_strings(strings, WORKER, ROUTING_KEYS, 16)?,
            froomle_base_url,
            froomle_limits: ProviderLimits::from_strings(strings, "FROOMLE", default_rate(), DEFAULT_CONCURRENCY)?,
            froomle: FroomleConfig {
                client_id,
                client_secret,
                channel,
                token_max_age,
            },
            processed_ttl,
            processed_capacity,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn base() -> HashMap<&'static str, &'static str> {
        [
            ("FROOMLE_BASE_URL", "http://127.0.0.1:1/froomle"),
            ("FROOMLE_CLIENT_ID", "client"),
            ("FROOMLE_CLIENT_SECRET", "secret"),
        ]
        .into_iter()
        .collect()
    }

    fn variable_of(strings: &HashMap<&str, &str>) -> Option<String> {
        Config::from_strings(strings).err().map(|e| e.variable().to_owned())
    }

    #[test]
    fn validate_accepts_the_minimal_configuration_with_defaults() {
        let config = Config::from_strings(&base()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.froomle.channel, "email");
        assert_eq!(config.froomle_limits.windows, vec![default_rate()]);
        assert_eq!(config.froomle_limits.concurrency.get(), DEFAULT_CONCURRENCY);
        assert_eq!(config.froomle.token_max_age, DEFAULT_TOKEN_MAX_AGE);
        assert_eq!(config.processed_capacity, DEFAULT_PROCESSED_CAPACITY);
        assert_eq!(config.common.spec.topology.worker, WORKER);
    }

    #[test]
    fn validate_rejects_each_missing_required_variable() {
        for name in ["FROOMLE_BASE_URL", "FROOMLE_CLIENT_ID", "FROOMLE_CLIENT_SECRET"] {
            let mut strings = base();
            strings.remove(name);
            assert_eq!(variable_of(&strings).as_deref(), Some(name));
        }
    }

    #[test]
    fn validate_rejects_bad_values() {
        for (name, value) in [
            ("FROOMLE_BASE_URL", "ftp://froomle"),
            ("FROOMLE_RATE", "fast"),
            ("FROOMLE_CONCURRENCY", "0"),
            ("FROOMLE_CHANNEL", "e mail"),
            ("FROOMLE_TOKEN_MAX_AGE", "0s"),
            ("RECOMMENDATIONS_PROCESSED_TTL", "0s"),
            ("RECOMMENDATIONS_PROCESSED_CAPACITY", "0"),
        ] {
            let mut strings = base();
            strings.insert(name, value);
            assert_eq!(variable_of(&strings).as_deref(), Some(name), "{name}={value}");
        }
    }

    #[test]
    fn validate_accepts_the_secret_from_a_file() {
        let path = std::env::temp_dir().join(format!("froomle-secret-{}", std::process::id()));
        std::fs::write(&path, "from-file\n").unwrap_or_else(|e| panic!("{e}"));
        let path_text = path.display().to_string();
        let mut strings = base();
        strings.remove("FROOMLE_CLIENT_SECRET");
        strings.insert("FROOMLE_CLIENT_SECRET_FILE", &path_text);
        let config = Config::from_strings(&strings);
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(config.is_ok(), "{:?}", config.err());
    }
}
