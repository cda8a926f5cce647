//! contact-sync configuration, read once from a `Strings` source and validated; every error
//! names its variable.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `CONTACT_SYNC_DESTINATIONS` | enabled destinations, a subset of `spotler,ecomail,salesmanago,voucherify` | `spotler,ecomail` |
//! | `CONTACT_SYNC_MAPPING` | the field-mapping file | `config/field-mapping.toml` |
//! | `SPOTLER_BASE_URL`, `SPOTLER_CONSUMER_KEY`, `SPOTLER_CONSUMER_SECRET` | Spotler account | required when enabled |
//! | `SPOTLER_CHECK_PROPERTIES` | check the mapping against the account's properties at start | `true` |
//! | `SPOTLER_TEMPLIST_PREFIX` | prefix of the temporary lists contact-sync creates (how it knows its own) | `sy-` |
//! | `SPOTLER_TEMPLIST_EVICT_OLDEST` | at the 30-list cap, delete the oldest list of ours instead of failing | `false` |
//! | `CONTACT_SYNC_BULK` | batch contacts without an order into Spotler `/contact/list` calls | `true` |
//! | `SPOTLER_BULK_SIZE` | contacts per `/contact/list` call (1-100) | `100` |
//! | `CONTACT_SYNC_BULK_LINGER` | how long a batch waits for more contacts | `50ms` |
//! | `ECOMAIL_BASE_URL`, `ECOMAIL_API_KEY`, `ECOMAIL_LIST_ID` | Ecomail account and list | required when enabled |
//! | `SALESMANAGO_BASE_URL`, `SALESMANAGO_CLIENT_ID`, `SALESMANAGO_API_SECRET`, `SALESMANAGO_OWNER` | SALESmanago account | required when enabled |
//! | `SALESMANAGO_LIMIT_PAUSE` | pause after an "API limit exceeded" answer | `60s` |
//! | `VOUCHERIFY_BASE_URL`, `VOUCHERIFY_APP_ID`, `VOUCHERIFY_APP_TOKEN` | Voucherify project | required when enabled |
//! | `VOUCHERIFY_METADATA_FIELDS` or `VOUCHERIFY_METADATA_SCHEMA` | the metadata schema (inline pairs, or a file) | `config/voucherify-metadata.toml` |
//! | `CONTACT_SYNC_VOUCHERIFY_WRITEBACK` | `bloomreach`: write the Voucherify customer id back to Bloomreach | unset (off) |
//! | `BLOOMREACH_BASE_URL`, `BLOOMREACH_PROJECT_TOKEN`, `BLOOMREACH_API_KEY_ID`, `BLOOMREACH_API_SECRET`, `BLOOMREACH_MAIN_HARD_ID` | Bloomreach, for the write-back | required with it; hard id `registered` |
//!
//! Every provider also reads `<P>_RATE`, `<P>_BURST`, `<P>_CONCURRENCY`, `<P>_TIMEOUT`.

use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use mq::batch::{self, BatchSettings};
use mq::worker::Common;
use provider_bloomreach::BloomreachConfig;
use provider_ecomail::EcomailConfig;
use provider_salesmanago::SalesmanagoConfig;
use provider_spotler::{MAX_CONTACTS_PER_CALL, SpotlerConfig};
use provider_voucherify::{MetadataSchema, VoucherifyConfig};
use settings::{ConfigError, ProviderLimits, Rate, Strings};
use url::Url;

use crate::mapping::FieldMapping;

/// Worker name: its queue and metrics label.
pub const WORKER: &str = "contact-sync";
/// Message types it consumes.
pub const ROUTING_KEYS: &[&str] = &[
    "contact.changed",
    "contact.deleted",
    "contact.deactivated",
    "contact.subscribed",
    "shop.event",
    "segment.exported",
    "contact.lookup.requested",
];
/// Every destination contact-sync knows.
pub const DESTINATIONS: &[&str] = &["spotler", "ecomail", "salesmanago", "voucherify"];

/// Everything contact-sync needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every worker has.
    pub common: Common,
    /// The field mapping (`CONTACT_SYNC_MAPPING`).
    pub mapping: FieldMapping,
    /// Spotler, when enabled.
    pub spotler: Option<Destination<SpotlerConfig>>,
    /// Spotler features (property check, temporary lists, bulk inserts).
    pub spotler_options: SpotlerOptions,
    /// Ecomail, when enabled.
    pub ecomail: Option<Destination<EcomailConfig>>,
    /// Batching of Ecomail subscribers of contacts without an order into `subscribe-bulk`
    /// calls (`CONTACT_SYNC_BULK`, `ECOMAIL_BULK_SIZE`, `CONTACT_SYNC_BULK_LINGER`); `None`
    /// when off or Ecomail is disabled.
    pub ecomail_bulk: Option<BatchSettings>,
    /// SALESmanago, when enabled.
    pub salesmanago: Option<Destination<SalesmanagoConfig>>,
    /// Voucherify, when enabled.
    pub voucherify: Option<VoucherifySettings>,
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

/// Spotler features beyond contact upserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpotlerOptions {
    /// Check the mapping against the account's properties at start (`SPOTLER_CHECK_PROPERTIES`).
    pub check_properties: bool,
    /// Prefix of the temporary lists contact-sync creates (`SPOTLER_TEMPLIST_PREFIX`).
    pub templist_prefix: String,
    /// At the list cap, delete the oldest list of ours (`SPOTLER_TEMPLIST_EVICT_OLDEST`).
    pub templist_evict_oldest: bool,
    /// Batching of contacts without an order into `/contact/list` calls (`CONTACT_SYNC_BULK`,
    /// `SPOTLER_BULK_SIZE`, `CONTACT_SYNC_BULK_LINGER`); `None` when off.
    pub bulk: Option<BatchSettings>,
}

/// The Voucherify destination and what goes with it.
#[derive(Debug, Clone)]
pub struct VoucherifySettings {
    /// The API.
    pub api: Destination<VoucherifyConfig>,
    /// The metadata schema customer metadata is filtered by.
    pub metadata_schema: MetadataSchema,
    /// Where the Voucherify customer id is written back, if anywhere.
    pub writeback: Option<Writeback>,
}

/// The Bloomreach write-back of Voucherify customer ids.
#[derive(Debug, Clone)]
pub struct Writeback {
    /// Bloomreach Tracking API.
    pub bloomreach: Destination<BloomreachConfig>,
    /// The `customer_ids` key the contact id goes under (`BLOOMREACH_MAIN_HARD_ID`).
    pub hard_id: String,
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

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), or `default` when unset.
fn destinations(strings: &dyn Strings) -> Result<Vec<String>, ConfigError> {
    const NAME: &str = "CONTACT_SYNC_DESTINATIONS";
    let raw = strings.get(NAME)?.unwrap_or_else(|| "spotler,ecomail".to_owned());
    let list: Vec<String> = raw
        .split(',')
        .map(|d| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    if let Some(unknown) = list.iter().find(|d| !DESTINATIONS.contains(&d.as_str())) {
        return Err(ConfigError::invalid(
            NAME,
            format!(
                "unknown destination `{unknown}`; use a comma-separated subset of `{}`",
                DESTINATIONS.join(",")
            ),
        ));
    }
    if list.is_empty() {
        return Err(ConfigError::invalid(
            NAME,
            format!("enable at least one of `{}`", DESTINATIONS.join(",")),
        ));
    }
    Ok(list)
}

fn spotler(strings: &dyn Strings) -> Result<Destination<SpotlerConfig>, ConfigError> {
    Ok(Destination {
        base_url: base_url(
            strings,
            "SPOTLER_BASE_URL",
            "https://restapi.mailplus.nl/integrationservice-1.1.0",
        )?,
        limits: ProviderLimits::from_strings(strings, "SPOTLER", rate(10, Duration::from_secs(1)), 4)?,
        config: SpotlerConfig {
            consumer_key: settings::required(
                strings,
                "SPOTLER_CONSUMER_KEY",
                "the OAuth consumer key of the Spotler account",
            )?,
            consumer_secret: settings::required_secret(strings, "SPOTLER_CONSUMER_SECRET")?,
        },
    })
}

fn spotler_options(strings: &dyn Strings, max_wait: Duration) -> Result<SpotlerOptions, ConfigError> {
    let templist_prefix = strings
        .get("SPOTLER_TEMPLIST_PREFIX")?
        .unwrap_or_else(|| "sy-".to_owned());
    if templist_prefix.is_empty()
        || templist_prefix.len() > 32
        || !templist_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        return Err(ConfigError::invalid(
            "SPOTLER_TEMPLIST_PREFIX",
            "use 1-32 letters, digits, `-`, `_`, `.` or `:` (e.g. `sy-`)",
        ));
    }
    let bulk = if settings::flag(strings, "CONTACT_SYNC_BULK", true)? {
        Some(BatchSettings {
            max_items: batch::read_size(
                strings,
                "SPOTLER_BULK_SIZE",
                MAX_CONTACTS_PER_CALL,
                MAX_CONTACTS_PER_CALL,
                "Spotler",
            )?,
            linger: batch::read_linger(
                strings,
                "CONTACT_SYNC_BULK_LINGER",
                Duration::from_millis(50),
                max_wait,
                "contact",
            )?,
        })
    } else {
        None
    };
    Ok(SpotlerOptions {
        check_properties: settings::flag(strings, "SPOTLER_CHECK_PROPERTIES", true)?,
        templist_prefix,
        templist_evict_oldest: settings::flag(strings, "SPOTLER_TEMPLIST_EVICT_OLDEST", false)?,
        bulk,
    })
}

fn ecomail(strings: &dyn Strings) -> Result<Destination<EcomailConfig>, ConfigError> {
    let list_id = settings::parse(strings, "ECOMAIL_LIST_ID", |s| {
        s.parse::<u64>().map_err(|_| "expected a numeric list id")
    })?
    .ok_or_else(|| ConfigError::missing("ECOMAIL_LIST_ID", "the id of the list contacts are synced to"))?;
    Ok(Destination {
        base_url: base_url(strings, "ECOMAIL_BASE_URL", "https://api2.ecomailapp.cz")?,
        limits: ProviderLimits::from_strings(strings, "ECOMAIL", rate(1000, Duration::from_secs(60)), 8)?,
        config: EcomailConfig {
            api_key: settings::required_secret(strings, "ECOMAIL_API_KEY")?,
            list_id,
        },
    })
}

fn salesmanago(strings: &dyn Strings) -> Result<Destination<SalesmanagoConfig>, ConfigError> {
    let owner = settings::required(
        strings,
        "SALESMANAGO_OWNER",
        "the e-mail of the SALESmanago account user (Integrations > API)",
    )?;
    if !owner.contains('@') {
        return Err(ConfigError::invalid("SALESMANAGO_OWNER", "expected an e-mail address"));
    }
    let limit_pause = settings::duration_or(strings, "SALESMANAGO_LIMIT_PAUSE", Duration::from_secs(60))?;
    if limit_pause.is_zero() {
        return Err(ConfigError::invalid("SALESMANAGO_LIMIT_PAUSE", "must be above 0"));
    }
    Ok(Destination {
        base_url: base_url(strings, "SALESMANAGO_BASE_URL", "https://app3.salesmanago.com")?,
        limits: ProviderLimits::from_strings(strings, "SALESMANAGO", rate(1000, Duration::from_secs(3600)), 2)?,
        config: SalesmanagoConfig {
            client_id: settings::required(
                strings,
                "SALESMANAGO_CLIENT_ID",
                "the client id from SALESmanago Integrations > API",
            )?,
            api_secret: settings::required_secret(strings, "SALESMANAGO_API_SECRET")?,
            owner,
            limit_pause,
        },
    })
}

fn voucherify(strings: &dyn Strings) -> Result<VoucherifySettings, ConfigError> {
    let api = Destination {
        base_url: base_url(strings, "VOUCHERIFY_BASE_URL", "https://api.voucherify.io")?,
        limits: ProviderLimits::from_strings(strings, "VOUCHERIFY", rate(100, Duration::from_secs(3600)), 1)?,
        config: VoucherifyConfig {
            app_id: settings::required_secret(strings, "VOUCHERIFY_APP_ID")?,
            app_token: settings::required_secret(strings, "VOUCHERIFY_APP_TOKEN")?,
        },
    };
    let metadata_schema = match strings.get("VOUCHERIFY_METADATA_FIELDS")? {
        Some(inline) => {
            MetadataSchema::from_pairs(&inline).map_err(|e| ConfigError::invalid("VOUCHERIFY_METADATA_FIELDS", e))?
        }
        None => {
            let path = settings::path_or(strings, "VOUCHERIFY_METADATA_SCHEMA", "config/voucherify-metadata.toml")?;
            MetadataSchema::load(&path).map_err(|e| ConfigError::invalid("VOUCHERIFY_METADATA_SCHEMA", e))?
        }
    };
    Ok(VoucherifySettings {
        api,
        metadata_schema,
        writeback: writeback(strings)?,
    })
}

fn writeback(strings: &dyn Strings) -> Result<Option<Writeback>, ConfigError> {
    const NAME: &str = "CONTACT_SYNC_VOUCHERIFY_WRITEBACK";
    match strings.get(NAME)?.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "none" | "off") => return Ok(None),
        Some("bloomreach") => {}
        Some(_) => {
            return Err(ConfigError::invalid(
                NAME,
                "use `bloomreach` (write the Voucherify customer id to Bloomreach) or leave it unset",
            ));
        }
    }
    let hard_id = strings
        .get("BLOOMREACH_MAIN_HARD_ID")?
        .unwrap_or_else(|| "registered".to_owned());
    if hard_id.is_empty() || !hard_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ConfigError::invalid(
            "BLOOMREACH_MAIN_HARD_ID",
            "use letters, digits and `_` (the id name, e.g. `registered`)",
        ));
    }
    Ok(Some(Writeback {
        bloomreach: Destination {
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
        },
        hard_id,
    }))
}

impl Config {
    /// Reads and validates the configuration.
    pub fn from_strings(strings: &dyn Strings) -> Result<Self, ConfigError> {
        let enabled = destinations(strings)?;
        let on = |name: &str| enabled.iter().any(|d| d == name);
        let spotler = on("spotler").then(|| spotler(strings)).transpose()?;
        let ecomail = on("ecomail").then(|| ecomail(strings)).transpose()?;
        let salesmanago = on("salesmanago").then(|| salesmanago(strings)).transpose()?;
        let voucherify = on("voucherify").then(|| voucherify(strings)).transpose()?;
        if voucherify.is_none()
            && strings
                .get("CONTACT_SYNC_VOUCHERIFY_WRITEBACK")?
                .is_some_and(|v| !v.trim().is_empty())
        {
            return Err(ConfigError::invalid(
                "CONTACT_SYNC_VOUCHERIFY_WRITEBACK",
                "needs the `voucherify` destination in CONTACT_SYNC_DESTINATIONS",
            ));
        }
        let mapping_path = settings::path_or(strings, "CONTACT_SYNC_MAPPING", "config/field-mapping.toml")?;
        let mapping = load_mapping(&mapping_path)?;
        // The spec is read twice: once with a provisional prefetch for the hold bound the bulk
        // linger must fit in, then with the prefetch that follows the destinations.
        let provisional = Common::from_strings(strings, WORKER, ROUTING_KEYS, 1)?;
        let spotler_options = spotler_options(strings, provisional.max_budget_wait())?;
        // Prefetch follows the providers' concurrency: a message holds a call slot at each
        // destination, so more deliveries than the widest destination admits would only wait.
        // With bulk inserts a delivery holds only a share of a call, so prefetch covers a full
        // batch.
        let widest = [
            spotler.as_ref().map(|d| d.limits.concurrency.get()),
            ecomail.as_ref().map(|d| d.limits.concurrency.get()),
            salesmanago.as_ref().map(|d| d.limits.concurrency.get()),
            voucherify.as_ref().map(|v| v.api.limits.concurrency.get()),
            spotler
                .as_ref()
                .and(spotler_options.bulk)
                .map(|b| u32::try_from(b.max_items).unwrap_or(u32::MAX)),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(8);
        let default_prefetch = u16::try_from(widest).unwrap_or(u16::MAX);
        let ecomail_bulk = match (&ecomail, spotler_options.bulk) {
            (Some(_), Some(spotler_bulk)) => {
                let max = provider_ecomail::MAX_BULK;
                Some(BatchSettings {
                    max_items: batch::read_size(strings, "ECOMAIL_BULK_SIZE", max, max, "Ecomail")?,
                    linger: spotler_bulk.linger,
                })
            }
            _ => None,
        };
        Ok(Self {
            common: Common::from_strings(strings, WORKER, ROUTING_KEYS, default_prefetch)?,
            mapping,
            spotler,
            spotler_options,
            ecomail,
            ecomail_bulk,
            salesmanago,
            voucherify,
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
            ("SALESMANAGO_BASE_URL", "http://127.0.0.1:1/salesmanago"),
            ("SALESMANAGO_CLIENT_ID", "client"),
            ("SALESMANAGO_API_SECRET", "secret"),
            ("SALESMANAGO_OWNER", "owner@example.com"),
            ("VOUCHERIFY_BASE_URL", "http://127.0.0.1:1/voucherify"),
            ("VOUCHERIFY_APP_ID", "app"),
            ("VOUCHERIFY_APP_TOKEN", "token"),
            ("VOUCHERIFY_METADATA_FIELDS", "segment=string,vip=boolean"),
            ("BLOOMREACH_BASE_URL", "http://127.0.0.1:1/bloomreach"),
            ("BLOOMREACH_PROJECT_TOKEN", "project"),
            ("BLOOMREACH_API_KEY_ID", "key"),
            ("BLOOMREACH_API_SECRET", "secret"),
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
                .is_ok_and(|c| c.spotler.is_some() && c.ecomail.is_some() && c.salesmanago.is_none()),
            "{:?}",
            config.err()
        );
    }

    #[test]
    fn validate_accepts_every_destination_with_the_writeback() {
        let mut strings = base();
        strings.insert("CONTACT_SYNC_DESTINATIONS", "spotler,ecomail,salesmanago,voucherify");
        strings.insert("CONTACT_SYNC_VOUCHERIFY_WRITEBACK", "bloomreach");
        let config = Config::from_strings(&strings);
        assert!(
            config.as_ref().is_ok_and(|c| c.salesmanago.is_some()
                && c.voucherify
                    .as_ref()
                    .is_some_and(|v| v.writeback.as_ref().is_some_and(|w| w.hard_id == "registered"))),
            "{:?}",
            config.err()
        );
    }

    #[test]
    fn validate_rejects_missing_credentials() {
        let mut strings = base();
        strings.remove("ECOMAIL_API_KEY");
        assert_eq!(variable_of(&strings), Some("ECOMAIL_API_KEY".into()));
        let mut strings = base();
        strings.insert("CONTACT_SYNC_DESTINATIONS", "salesmanago");
        strings.remove("SALESMANAGO_API_SECRET");
        assert_eq!(variable_of(&strings), Some("SALESMANAGO_API_SECRET".into()));
        let mut strings = base();
        strings.insert("CONTACT_SYNC_DESTINATIONS", "voucherify");
        strings.remove("VOUCHERIFY_APP_TOKEN");
        assert_eq!(variable_of(&strings), Some("VOUCHERIFY_APP_TOKEN".into()));
    }

    #[test]
    fn validate_rejects_unknown_destination() {
        let mut strings = base();
        strings.insert("CONTACT_SYNC_DESTINATIONS", "spotler,mailchimp");
        assert_eq!(variable_of(&strings), Some("CONTACT_SYNC_DESTINATIONS".into()));
    }

    #[test]
    fn validate_rejects_a_writeback_without_voucherify_or_with_an_unknown_target() {
        let mut strings = base();
        strings.insert("CONTACT_SYNC_VOUCHERIFY_WRITEBACK", "bloomreach");
        assert_eq!(variable_of(&strings), Some("CONTACT_SYNC_VOUCHERIFY_WRITEBACK".into()));
        strings.insert("CONTACT_SYNC_DESTINATIONS", "voucherify");
        strings.insert("CONTACT_SYNC_VOUCHERIFY_WRITEBACK", "segment");
        assert_eq!(variable_of(&strings), Some("CONTACT_SYNC_VOUCHERIFY_WRITEBACK".into()));
        strings.insert("CONTACT_SYNC_VOUCHERIFY_WRITEBACK", "bloomreach");
        strings.remove("BLOOMREACH_API_SECRET");
        assert_eq!(variable_of(&strings), Some("BLOOMREACH_API_SECRET".into()));
    }

    #[test]
    fn validate_rejects_a_bad_owner_and_metadata_schema() {
        let mut strings = base();
        strings.insert("CONTACT_SYNC_DESTINATIONS", "salesmanago");
        strings.insert("SALESMANAGO_OWNER", "owner");
        assert_eq!(variable_of(&strings), Some("SALESMANAGO_OWNER".into()));
        let mut strings = base();
        strings.insert("CONTACT_SYNC_DESTINATIONS", "voucherify");
        strings.insert("VOUCHERIFY_METADATA_FIELDS", "segment=colour");
        assert_eq!(variable_of(&strings), Some("VOUCHERIFY_METADATA_FIELDS".into()));
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
    fn prefetch_follows_the_widest_destination_or_a_bulk_batch() {
        let mut strings = base();
        strings.insert("CONTACT_SYNC_BULK", "false");
        strings.insert("ECOMAIL_CONCURRENCY", "3");
        strings.insert("SPOTLER_CONCURRENCY", "5");
        let prefetch = |s: &HashMap<&str, &str>| Config::from_strings(s).map(|c| c.common.spec.prefetch).ok();
        assert_eq!(prefetch(&strings), Some(5));
        strings.insert("CONTACT_SYNC_BULK", "true");
        strings.insert("SPOTLER_BULK_SIZE", "40");
        assert_eq!(prefetch(&strings), Some(40));
        strings.insert("SWITCHYARD_PREFETCH", "50");
        assert_eq!(prefetch(&strings), Some(50));
    }

    #[test]
    fn spotler_options_have_defaults_and_are_validated() {
        let config = Config::from_strings(&base());
        let options = config.map(|c| c.spotler_options).ok();
        assert_eq!(
            options,
            Some(SpotlerOptions {
                check_properties: true,
                templist_prefix: "sy-".to_owned(),
                templist_evict_oldest: false,
                bulk: Some(BatchSettings {
                    max_items: 100,
                    linger: Duration::from_millis(50)
                }),
            })
        );
        for (name, value) in [
            ("SPOTLER_TEMPLIST_PREFIX", "has space"),
            ("SPOTLER_TEMPLIST_EVICT_OLDEST", "maybe"),
            ("SPOTLER_BULK_SIZE", "101"),
            ("CONTACT_SYNC_BULK_LINGER", "10s"),
            ("SPOTLER_CHECK_PROPERTIES", "2"),
        ] {
            let mut strings = base();
            strings.insert(name, value);
            assert_eq!(variable_of(&strings), Some(name.to_owned()), "{name}={value}");
        }
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
