//! contact-sync configuration, read once from a `Strings` source and validated.

use std::num::NonZeroU32;
use std::path::Path;

use mq::worker::Common;
use provider_ecomail::EcomailConfig;
use provider_spotler::SpotlerConfig;
use settings::{ConfigError, ProviderLimits, Rate, Strings};
use url::Url;

use crate::mapping::FieldMapping;

/// Worker name: its queue and metrics label.
pub const WORKER: &str = "contact-sync";
/// Message types it consumes.
pub const ROUTING_KEYS: &[&str] = &["contact.changed", "contact.deleted", "contact.deactivated"];

/// Everything contact-sync needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every worker has.
    pub common: Common,
    /// The field mapping (`CONTACT_SYNC_MAPPING`).
    pub mapping: FieldMapping,
    /// Spotler, when enabled.
    pub spotler: Option<Destination<SpotlerConfig>>,
    /// Ecomail, when enabled.
    pub ecomail: Option<Destination<EcomailConfig>>,
}

/// One enabled destination.
#[derive(Debug, Clone)]
pub struct Destination<C> {
    /// Base URL.
    pub base_url: Url,
    /// Rate limits and timeout.
    pub limits: ProviderLimits,
    /// Credentials and provider settings.
    pub config: C,
}

fn rate(raw: &str) -> Rate {
    raw.parse().unwrap_or(Rate {
        count: NonZeroU32::MIN,
        per: std::time::Duration::from_secs(1),
    })
}

fn base_url(strings: &dyn Strings, name: &str, example: &str) -> Result<Url, ConfigError> {
    settings::base_url(strings, name)?.ok_or_else(|| ConfigError::missing(name, &format!("e.g. `{example}`")))
}

impl Config {
    /// Reads and validates the configuration.
    pub fn from_strings(strings: &dyn Strings) -> Result<Self, ConfigError> {
        let destinations = strings
            .get("CONTACT_SYNC_DESTINATIONS")?
            .unwrap_or_else(|| "spotler,ecomail".to_owned());
        let destinations: Vec<&str> = destinations
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect();
        if let Some(unknown) = destinations.iter().find(|d| !["spotler", "ecomail"].contains(*d)) {
            return Err(ConfigError::invalid(
                "CONTACT_SYNC_DESTINATIONS",
                format!("unknown destination `{unknown}`; use a comma-separated subset of `spotler,ecomail`"),
            ));
        }
        if destinations.is_empty() {
            return Err(ConfigError::invalid(
                "CONTACT_SYNC_DESTINATIONS",
                "enable at least one of `spotler,ecomail`",
            ));
        }
        let spotler = if destinations.contains(&"spotler") {
            Some(Destination {
                base_url: base_url(
                    strings,
                    "SPOTLER_BASE_URL",
                    "https://restapi.mailplus.nl/integrationservice-1.1.0",
                )?,
                limits: ProviderLimits::from_strings(strings, "SPOTLER", rate("10/s"), 4)?,
                config: SpotlerConfig {
                    consumer_key: settings::required(
                        strings,
                        "SPOTLER_CONSUMER_KEY",
                        "the OAuth consumer key of the Spotler account",
                    )?,
                    consumer_secret: settings::required_secret(strings, "SPOTLER_CONSUMER_SECRET")?,
                },
            })
        } else {
            None
        };
        let ecomail = if destinations.contains(&"ecomail") {
            let list_id = settings::parse(strings, "ECOMAIL_LIST_ID", |s| {
                s.parse::<u64>().map_err(|_| "expected a numeric list id")
            })?
            .ok_or_else(|| ConfigError::missing("ECOMAIL_LIST_ID", "the id of the list contacts are synced to"))?;
            Some(Destination {
                base_url: base_url(strings, "ECOMAIL_BASE_URL", "https://api2.ecomailapp.cz")?,
                limits: ProviderLimits::from_strings(strings, "ECOMAIL", rate("1000/min"), 8)?,
                config: EcomailConfig {
                    api_key: settings::required_secret(strings, "ECOMAIL_API_KEY")?,
                    list_id,
                },
            })
        } else {
            None
        };
        let mapping_path = settings::path_or(strings, "CONTACT_SYNC_MAPPING", "config/field-mapping.toml")?;
        let mapping = load_mapping(&mapping_path)?;
        // Prefetch follows the providers' concurrency: a message holds a call slot at each
        // destination, so more deliveries than the widest destination admits would only wait.
        let widest = [
            spotler.as_ref().map(|d| d.limits.concurrency),
            ecomail.as_ref().map(|d| d.limits.concurrency),
        ]
        .into_iter()
        .flatten()
        .max()
        .map_or(8, NonZeroU32::get);
        let default_prefetch = u16::try_from(widest).unwrap_or(u16::MAX);
        Ok(Self {
            common: Common::from_strings(strings, WORKER, ROUTING_KEYS, default_prefetch)?,
            mapping,
            spotler,
            ecomail,
        })
    }
}

fn load_mapping(path: &Path) -> Result<FieldMapping, ConfigError> {
    FieldMapping::load(path).map_err(|e| ConfigError::invalid("CONTACT_SYNC_MAPPING", e))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn base() -> HashMap<&'static str, &'static str> {
        [
            ("SPOTLER_BASE_URL", "http://127.0.0.1:1/spotler"),
            ("SPOTLER_CONSUMER_KEY", "k"),
            ("SPOTLER_CONSUMER_SECRET", "s"),
            ("ECOMAIL_BASE_URL", "http://127.0.0.1:1/ecomail"),
            ("ECOMAIL_API_KEY", "e"),
            ("ECOMAIL_LIST_ID", "1"),
            (
                "CONTACT_SYNC_MAPPING",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/field-mapping.toml"),
            ),
        ]
        .into_iter()
        .collect()
    }

    fn variable_of(strings: &HashMap<&str, &str>) -> Option<String> {
        Config::from_strings(strings).err().map(|e| e.variable().to_owned())
    }

    #[test]
    fn validate_accepts_a_full_configuration() {
        let config = Config::from_strings(&base());
        assert!(
            config
                .as_ref()
                .is_ok_and(|c| c.spotler.is_some() && c.ecomail.is_some()),
            "{:?}",
            config.err()
        );
    }

    #[test]
    fn validate_rejects_missing_credentials() {
        let mut strings = base();
        strings.remove("ECOMAIL_API_KEY");
        assert_eq!(variable_of(&strings), Some("ECOMAIL_API_KEY".into()));
    }

    #[test]
    fn validate_rejects_unknown_destination() {
        let mut strings = base();
        strings.insert("CONTACT_SYNC_DESTINATIONS", "spotler,mailchimp");
        assert_eq!(variable_of(&strings), Some("CONTACT_SYNC_DESTINATIONS".into()));
    }

    #[test]
    fn disabled_destination_needs_no_settings() {
        let mut strings = base();
        strings.insert("CONTACT_SYNC_DESTINATIONS", "spotler");
        strings.remove("ECOMAIL_API_KEY");
        strings.remove("ECOMAIL_LIST_ID");
        assert!(Config::from_strings(&strings).is_ok_and(|c| c.ecomail.is_none()));
    }

    #[test]
    fn validate_rejects_a_missing_mapping_file() {
        let mut strings = base();
        strings.insert("CONTACT_SYNC_MAPPING", "/nonexistent/mapping.toml");
        assert_eq!(variable_of(&strings), Some("CONTACT_SYNC_MAPPING".into()));
    }

    #[test]
    fn prefetch_follows_the_widest_destination() {
        let mut strings = base();
        strings.insert("ECOMAIL_CONCURRENCY", "3");
        strings.insert("SPOTLER_CONCURRENCY", "5");
        assert_eq!(
            Config::from_strings(&strings).map(|c| c.common.spec.prefetch).ok(),
            Some(5)
        );
        strings.insert("SWITCHYARD_PREFETCH", "50");
        assert_eq!(
            Config::from_strings(&strings).map(|c| c.common.spec.prefetch).ok(),
            Some(50)
        );
    }

    #[test]
    fn validate_rejects_a_non_redis_url() {
        let mut strings = base();
        strings.insert("REDIS_URL", "http://127.0.0.1:6379");
        assert_eq!(variable_of(&strings), Some("REDIS_URL".into()));
    }

    #[test]
    fn validate_rejects_a_bad_rate() {
        let mut strings = base();
        strings.insert("SPOTLER_RATE", "fast");
        assert_eq!(variable_of(&strings), Some("SPOTLER_RATE".into()));
    }
}
