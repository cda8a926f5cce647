//! voucher-events configuration, read once from a `Strings` source and validated; every error
//! names its variable.

use std::num::NonZeroU32;
use std::time::Duration;

use mq::worker::Common;
use provider_bloomreach::{BloomreachConfig, MAX_BATCH};
use provider_voucherify::{IntegrationConfig, MetadataSchema, VoucherifyConfig};
use settings::{ConfigError, ProviderLimits, Rate, Strings};
use url::Url;

use crate::batch::BatchSettings;

/// Worker name: its queue and metrics label.
pub const WORKER: &str = "voucher-events";
/// Message types it consumes.
pub const ROUTING_KEYS: &[&str] = &[
    "voucher.publish.requested",
    "voucher.redeemed",
    "bloomreach.customer.updated",
    "bloomreach.event.exported",
];

/// Default prefetch: room for a full Bloomreach batch (50) and then some.
pub const DEFAULT_PREFETCH: u16 = 64;

/// The most elements one integration call may carry (a Bloomreach batch webhook's limit).
pub const MAX_INTEGRATION_BATCH: usize = 1000;

/// Everything voucher-events needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every worker has.
    pub common: Common,
    /// Voucherify API (`VOUCHERIFY_*`): publications. Default quota `100/h` (a sandbox
    /// project's), concurrency 1.
    pub voucherify: Endpoint<VoucherifyConfig>,
    /// Voucherify's Bloomreach integration endpoints (`VOUCHERIFY_INTEGRATION_*`): webhook
    /// limits, default `144000/d` (Business plan bucket), concurrency 2.
    pub integration: Endpoint<IntegrationConfig>,
    /// Bloomreach Tracking API (`BLOOMREACH_*`): default `6000/min`, concurrency 8.
    pub bloomreach: Endpoint<BloomreachConfig>,
    /// The Voucherify metadata schema (`VOUCHERIFY_METADATA_FIELDS` inline, else the file
    /// `VOUCHERIFY_METADATA_SCHEMA`, default `config/voucherify-metadata.toml`).
    pub metadata_schema: MetadataSchema,
    /// The Bloomreach main hard id name (`BLOOMREACH_MAIN_HARD_ID`, default `registered`): the
    /// Bloomreach `customer_ids` key and the integration payloads' id key.
    pub hard_id: String,
    /// Bloomreach event batches (`BLOOMREACH_BATCH_SIZE`, 1-50, default 50;
    /// `VOUCHER_EVENTS_BATCH_LINGER`, default `50ms`).
    pub bloomreach_batch: BatchSettings,
    /// Integration batches (`VOUCHERIFY_INTEGRATION_BATCH_SIZE`, 1-1000, default 100; same
    /// linger).
    pub integration_batch: BatchSettings,
}

/// One provider endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint<C> {
    /// Base URL.
    pub base_url: Url,
    /// Rate limits and timeout.
    pub limits: ProviderLimits,
    /// Credentials and provider settings.
    pub config: C,
}

fn rate(count: u32, per: Duration) -> Rate {
    Rate {
        count: NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN),
        per,
    }
}

fn base_url(strings: &dyn Strings, name: &str, example: &str) -> Result<Url, ConfigError> {
    settings::base_url(strings, name)?.ok_or_else(|| ConfigError::missing(name, &format!("e.g. `{example}`")))
}

fn batch_size(strings: &dyn Strings, name: &str, default: usize, max: usize) -> Result<usize, ConfigError> {
    let size = settings::parse_or(strings, name, default)?;
    if size == 0 || size > max {
        return Err(ConfigError::invalid(name, format!("must be between 1 and {max}")));
    }
    Ok(size)
}

impl Config {
    /// Reads and validates the configuration.
    pub fn from_strings(strings: &dyn Strings) -> Result<Self, ConfigError> {
        let hard_id = strings
            .get("BLOOMREACH_MAIN_HARD_ID")?
            .unwrap_or_else(|| "registered".to_owned());
        if !hard_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ConfigError::invalid(
                "BLOOMREACH_MAIN_HARD_ID",
                "use letters, digits and `_` (the id name, e.g. `registered`)",
            ));
        }
        let voucherify = Endpoint {
            base_url: base_url(strings, "VOUCHERIFY_BASE_URL", "https://api.voucherify.io")?,
            limits: ProviderLimits::from_strings(strings, "VOUCHERIFY", rate(100, Duration::from_secs(3600)), 1)?,
            config: VoucherifyConfig {
                app_id: settings::required_secret(strings, "VOUCHERIFY_APP_ID")?,
                app_token: settings::required_secret(strings, "VOUCHERIFY_APP_TOKEN")?,
            },
        };
        let integration = Endpoint {
            base_url: base_url(
                strings,
                "VOUCHERIFY_INTEGRATION_BASE_URL",
                "https://bloomreach.voucherify.io",
            )?,
            limits: ProviderLimits::from_strings(
                strings,
                "VOUCHERIFY_INTEGRATION",
                rate(144_000, Duration::from_secs(86_400)),
                2,
            )?,
            config: IntegrationConfig {
                application_id: settings::required_secret(strings, "VOUCHERIFY_INTEGRATION_APP_ID")?,
                secret_key: settings::required_secret(strings, "VOUCHERIFY_INTEGRATION_SECRET_KEY")?,
                hard_id: hard_id.clone(),
            },
        };
        let bloomreach = Endpoint {
            base_url: base_url(strings, "BLOOMREACH_BASE_URL", "https://api.exponea.com")?,
            limits: ProviderLimits::from_strings(strings, "BLOOMREACH", rate(6000, Duration::from_secs(60)), 8)?,
            config: BloomreachConfig {
                project_token: settings::required(
                    strings,
                    "BLOOMREACH_PROJECT_TOKEN",
                    "the project token from Project settings → Access management → API",
                )?,
                api_key_id: settings::required_secret(strings, "BLOOMREACH_API_KEY_ID")?,
                api_secret: settings::required_secret(strings, "BLOOMREACH_API_SECRET")?,
            },
        };
        let metadata_schema = match strings.get("VOUCHERIFY_METADATA_FIELDS")? {
            Some(inline) => MetadataSchema::from_pairs(&inline)
                .map_err(|e| ConfigError::invalid("VOUCHERIFY_METADATA_FIELDS", e))?,
            None => {
                let path = settings::path_or(strings, "VOUCHERIFY_METADATA_SCHEMA", "config/voucherify-metadata.toml")?;
                MetadataSchema::load(&path).map_err(|e| ConfigError::invalid("VOUCHERIFY_METADATA_SCHEMA", e))?
            }
        };
        let linger = settings::duration_or(strings, "VOUCHER_EVENTS_BATCH_LINGER", Duration::from_millis(50))?;
        if linger > Duration::from_secs(5) {
            return Err(ConfigError::invalid(
                "VOUCHER_EVENTS_BATCH_LINGER",
                "must be at most 5s (it delays every forwarded event)",
            ));
        }
        let common = Common::from_strings(strings, WORKER, ROUTING_KEYS, DEFAULT_PREFETCH)?;
        if linger >= common.max_budget_wait() {
            return Err(ConfigError::invalid(
                "VOUCHER_EVENTS_BATCH_LINGER",
                "must be shorter than half of SWITCHYARD_MAX_HOLD",
            ));
        }
        Ok(Self {
            bloomreach_batch: BatchSettings {
                max_items: batch_size(strings, "BLOOMREACH_BATCH_SIZE", MAX_BATCH, MAX_BATCH)?,
                linger,
            },
            integration_batch: BatchSettings {
                max_items: batch_size(strings, "VOUCHERIFY_INTEGRATION_BATCH_SIZE", 100, MAX_INTEGRATION_BATCH)?,
                linger,
            },
            common,
            voucherify,
            integration,
            bloomreach,
            metadata_schema,
            hard_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use settings::ExposeSecret;

    use super::*;

    fn base() -> HashMap<&'static str, &'static str> {
        [
            ("VOUCHERIFY_BASE_URL", "http://127.0.0.1:1/voucherify"),
            ("VOUCHERIFY_APP_ID", "app"),
            ("VOUCHERIFY_APP_TOKEN", "token"),
            (
                "VOUCHERIFY_INTEGRATION_BASE_URL",
                "http://127.0.0.1:1/voucherify-integration",
            ),
            ("VOUCHERIFY_INTEGRATION_APP_ID", "int-app"),
            ("VOUCHERIFY_INTEGRATION_SECRET_KEY", "int-secret"),
            ("BLOOMREACH_BASE_URL", "http://127.0.0.1:1/bloomreach"),
            ("BLOOMREACH_PROJECT_TOKEN", "project"),
            ("BLOOMREACH_API_KEY_ID", "key"),
            ("BLOOMREACH_API_SECRET", "secret"),
            (
                "VOUCHERIFY_METADATA_SCHEMA",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/voucherify-metadata.toml"),
            ),
        ]
        .into_iter()
        .collect()
    }

    fn windows(limits: &ProviderLimits) -> Vec<String> {
        limits.windows.iter().map(ToString::to_string).collect()
    }

    fn variable_of(strings: &HashMap<&str, &str>) -> Option<String> {
        Config::from_strings(strings).err().map(|e| e.variable().to_owned())
    }

    #[test]
    fn validate_accepts_a_full_configuration_with_documented_defaults() {
        let config = Config::from_strings(&base()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(windows(&config.voucherify.limits), ["100/h"]);
        assert_eq!(config.voucherify.limits.concurrency.get(), 1);
        assert_eq!(windows(&config.bloomreach.limits), ["6000/min"]);
        assert_eq!(config.bloomreach_batch.max_items, 50);
        assert_eq!(config.bloomreach_batch.linger, Duration::from_millis(50));
        assert_eq!(config.hard_id, "registered");
        assert_eq!(config.integration.config.hard_id, "registered");
        assert_eq!(config.voucherify.config.app_token.expose_secret(), "token");
        assert!(!config.metadata_schema.is_empty());
        assert_eq!(config.common.spec.prefetch, DEFAULT_PREFETCH);
    }

    #[test]
    fn validate_rejects_missing_settings_by_name() {
        for name in [
            "VOUCHERIFY_BASE_URL",
            "VOUCHERIFY_APP_TOKEN",
            "VOUCHERIFY_INTEGRATION_SECRET_KEY",
            "BLOOMREACH_PROJECT_TOKEN",
            "BLOOMREACH_API_SECRET",
        ] {
            let mut strings = base();
            strings.remove(name);
            assert_eq!(variable_of(&strings).as_deref(), Some(name));
        }
    }

    #[test]
    fn validate_rejects_bad_values_by_name() {
        let cases = [
            ("BLOOMREACH_BATCH_SIZE", "51"),
            ("BLOOMREACH_BATCH_SIZE", "0"),
            ("VOUCHERIFY_INTEGRATION_BATCH_SIZE", "1001"),
            ("VOUCHER_EVENTS_BATCH_LINGER", "10s"),
            ("VOUCHERIFY_RATE", "lots"),
            ("VOUCHERIFY_BURST", "101"),
            ("BLOOMREACH_CONCURRENCY", "0"),
            ("BLOOMREACH_MAIN_HARD_ID", "main hard id"),
            ("VOUCHERIFY_METADATA_SCHEMA", "/nonexistent/schema.toml"),
            ("VOUCHERIFY_METADATA_FIELDS", "segment=text"),
        ];
        for (name, value) in cases {
            let mut strings = base();
            strings.insert(name, value);
            assert_eq!(variable_of(&strings).as_deref(), Some(name), "{name}={value}");
        }
    }

    #[test]
    fn inline_metadata_fields_replace_the_file() {
        let mut strings = base();
        strings.insert("VOUCHERIFY_METADATA_FIELDS", "tier=string");
        strings.insert("VOUCHERIFY_METADATA_SCHEMA", "/nonexistent/schema.toml");
        let config = Config::from_strings(&strings).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.metadata_schema.len(), 1);
    }
}
