//! loyalty-events configuration, read once from a `Strings` source and validated.

use std::fmt;
use std::num::NonZeroU32;

use std::time::Duration;

use mq::batch::{self, BatchSettings};
use mq::worker::Common;
use provider_ecomail::EcomailConfig;
use secrecy::{ExposeSecret, SecretString};
use settings::{ConfigError, ProviderLimits, Rate, Strings};
use time::UtcOffset;
use time::macros::format_description;
use url::Url;

use crate::notice::NoticePolicy;
use crate::record;

/// Worker name: its queue and metrics label.
pub const WORKER: &str = "loyalty-events";
/// Message types it consumes.
pub const ROUTING_KEYS: &[&str] = &[
    "points.changed",
    "points.expiring",
    "pin.changed",
    "loyalty.subscription.changed",
];

/// Default days before expiry when the notice goes out.
pub const DEFAULT_NOTICE_DAYS: u32 = 7;
/// The longest notice window accepted (a year).
pub const MAX_NOTICE_DAYS: u32 = 366;
/// Default points for joining and for leaving the list.
pub const DEFAULT_SUBSCRIPTION_POINTS: u32 = 50;
/// The largest award or deduction accepted.
pub const MAX_SUBSCRIPTION_POINTS: u32 = 1_000_000;
/// Default subscribers per `update-subscriber-bulk` call.
pub const DEFAULT_BULK_SIZE: usize = 50;
/// Default time a field update waits for others to share its bulk call.
pub const DEFAULT_BULK_LINGER: Duration = Duration::from_millis(20);

/// Everything loyalty-events needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every worker has.
    pub common: Common,
    /// Ecomail base URL (`ECOMAIL_BASE_URL`).
    pub ecomail_base_url: Url,
    /// Ecomail rate limits (`ECOMAIL_RATE` default `1000/min`, `ECOMAIL_BURST`,
    /// `ECOMAIL_CONCURRENCY` default 8, `ECOMAIL_TIMEOUT`).
    pub ecomail_limits: ProviderLimits,
    /// Ecomail credentials and list (`ECOMAIL_API_KEY` or `ECOMAIL_API_KEY_FILE`, `ECOMAIL_LIST_ID`).
    pub ecomail: EcomailConfig,
    /// When expiry notices go out (`LOYALTY_EXPIRY_NOTICE_DAYS`, `LOYALTY_TIMEZONE_OFFSET`).
    pub notice: NoticePolicy,
    /// Points awarded for joining the list (`LOYALTY_SUBSCRIBE_POINTS`, default 50; 0 = none).
    pub subscribe_points: u32,
    /// Points taken for leaving the list (`LOYALTY_UNSUBSCRIBE_POINTS`, default 50; 0 = none).
    pub unsubscribe_points: u32,
    /// Where the once-a-day and processed-message records live (`REDIS_URL`; unset = in process).
    pub redis: Option<RedisUrl>,
    /// The most records kept in process when `REDIS_URL` is unset (`LOYALTY_RECORDS_CAPACITY`,
    /// default [`record::DEFAULT_CAPACITY`]); beyond it the ones nearest to expiry go first.
    pub records_capacity: usize,
    /// Batching of the notices' field updates into `update-subscriber-bulk` calls
    /// (`LOYALTY_EVENTS_BULK`, `LOYALTY_EVENTS_BULK_SIZE`, `LOYALTY_EVENTS_BULK_LINGER`); `None`
    /// when off (one `update-subscriber` call per notice).
    pub bulk: Option<BatchSettings>,
}

/// A validated `redis://` URL. It may hold a password, so `Debug` shows only the host.
#[derive(Clone)]
pub struct RedisUrl(SecretString);

impl RedisUrl {
    /// The URL, for the Redis client only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = Url::parse(self.expose())
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        write!(f, "RedisUrl({host})")
    }
}

fn parse_redis_url(raw: &str) -> Result<RedisUrl, String> {
    let url = Url::parse(raw).map_err(|_| "not a URL; expected e.g. `redis://127.0.0.1:6379/0`".to_owned())?;
    match url.scheme() {
        "redis" if url.host().is_some() => Ok(RedisUrl(SecretString::from(raw.to_owned()))),
        "rediss" => {
            Err("TLS (`rediss://`) is not supported by this build; use `redis://` over a secure network".into())
        }
        _ => Err("expected a `redis://host:port/db` URL, e.g. `redis://127.0.0.1:6379/0`".into()),
    }
}

/// Parses `LOYALTY_EXPIRY_NOTICE_DAYS`: `off`, or whole days before the expiry.
pub fn parse_notice_days(raw: &str) -> Result<Option<u32>, String> {
    if raw.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    match raw.parse::<u32>() {
        Ok(days) if days <= MAX_NOTICE_DAYS => Ok(Some(days)),
        _ => Err(format!(
            "expected `off` or a whole number of days from 0 to {MAX_NOTICE_DAYS} (e.g. `7`)"
        )),
    }
}

/// Parses `LOYALTY_TIMEZONE_OFFSET`: `+01:00`, `-05:30` or `Z`.
pub fn parse_offset(raw: &str) -> Result<UtcOffset, String> {
    if raw == "Z" || raw == "z" {
        return Ok(UtcOffset::UTC);
    }
    let format = format_description!("[offset_hour sign:mandatory]:[offset_minute]");
    UtcOffset::parse(raw, format)
        .ok()
        .filter(|offset| offset.whole_hours().abs() <= 14)
        .ok_or_else(|| "expected a UTC offset such as `+01:00`, `-05:30` or `+00:00`".to_owned())
}

/// The field-update batching, or `None` when `LOYALTY_EVENTS_BULK` is off. The linger delays
/// every notice, so it must stay well inside the time a delivery may be held.
fn bulk(strings: &dyn Strings, max_wait: Duration) -> Result<Option<BatchSettings>, ConfigError> {
    if !settings::flag(strings, "LOYALTY_EVENTS_BULK", true)? {
        return Ok(None);
    }
    let max_items = batch::read_size(
        strings,
        "LOYALTY_EVENTS_BULK_SIZE",
        DEFAULT_BULK_SIZE,
        provider_ecomail::MAX_BULK,
        "Ecomail",
    )?;
    let linger = batch::read_linger(
        strings,
        "LOYALTY_EVENTS_BULK_LINGER",
        DEFAULT_BULK_LINGER,
        max_wait,
        "notice",
    )?;
    Ok(Some(BatchSettings { max_items, linger }))
}

fn points(strings: &dyn Strings, name: &str) -> Result<u32, ConfigError> {
    Ok(settings::parse(strings, name, |raw| match raw.parse::<u32>() {
        Ok(n) if n <= MAX_SUBSCRIPTION_POINTS => Ok(n),
        _ => Err(format!(
            "expected a whole number of points from 0 (none) to {MAX_SUBSCRIPTION_POINTS}"
        )),
    })?
    .unwrap_or(DEFAULT_SUBSCRIPTION_POINTS))
}

impl Config {
    /// Reads and validates the configuration.
    pub fn from_strings(strings: &dyn Strings) -> Result<Self, ConfigError> {
        let ecomail_base_url = settings::base_url(strings, "ECOMAIL_BASE_URL")?
            .ok_or_else(|| ConfigError::missing("ECOMAIL_BASE_URL", "e.g. `https://api2.ecomailapp.cz`"))?;
        let default_rate = Rate {
            count: NonZeroU32::new(1000).unwrap_or(NonZeroU32::MIN),
            per: std::time::Duration::from_secs(60),
        };
        let ecomail_limits = ProviderLimits::from_strings(strings, "ECOMAIL", default_rate, 8)?;
        let list_id = settings::parse(strings, "ECOMAIL_LIST_ID", |s| match s.parse::<u64>() {
            Ok(id) if id > 0 => Ok(id),
            _ => Err("expected a numeric list id above 0"),
        })?
        .ok_or_else(|| ConfigError::missing("ECOMAIL_LIST_ID", "the id of the list that holds the loyalty fields"))?;
        let api_key = settings::required_secret(strings, "ECOMAIL_API_KEY")?;
        let days = settings::parse(strings, "LOYALTY_EXPIRY_NOTICE_DAYS", parse_notice_days)?
            .unwrap_or(Some(DEFAULT_NOTICE_DAYS));
        let offset = settings::parse(strings, "LOYALTY_TIMEZONE_OFFSET", parse_offset)?.unwrap_or(UtcOffset::UTC);
        let redis = settings::parse(strings, "REDIS_URL", parse_redis_url)?;
        let records_capacity = settings::parse_or(strings, "LOYALTY_RECORDS_CAPACITY", record::DEFAULT_CAPACITY)?;
        if records_capacity == 0 {
            return Err(ConfigError::invalid(
                "LOYALTY_RECORDS_CAPACITY",
                "must be at least 1 (it bounds the once-a-day and processed-message records kept in process)",
            ));
        }
        let common = Common::from_strings(strings, WORKER, ROUTING_KEYS, 16)?;
        let bulk = bulk(strings, common.max_budget_wait())?;
        Ok(Self {
            common,
            ecomail_base_url,
            ecomail_limits,
            ecomail: EcomailConfig { api_key, list_id },
            notice: NoticePolicy { days, offset },
            subscribe_points: points(strings, "LOYALTY_SUBSCRIBE_POINTS")?,
            unsubscribe_points: points(strings, "LOYALTY_UNSUBSCRIBE_POINTS")?,
            redis,
            records_capacity,
            bulk,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn base() -> HashMap<&'static str, &'static str> {
        [
            ("ECOMAIL_BASE_URL", "http://127.0.0.1:1/ecomail"),
            ("ECOMAIL_API_KEY", "e"),
            ("ECOMAIL_LIST_ID", "7"),
        ]
        .into_iter()
        .collect()
    }

    fn variable_of(strings: &HashMap<&str, &str>) -> Option<String> {
        Config::from_strings(strings).err().map(|e| e.variable().to_owned())
    }

    fn with(name: &'static str, value: &'static str) -> HashMap<&'static str, &'static str> {
        let mut strings = base();
        strings.insert(name, value);
        strings
    }

    #[test]
    fn validate_accepts_defaults() {
        let config = Config::from_strings(&base()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.notice.days, Some(7));
        assert_eq!(config.notice.offset, UtcOffset::UTC);
        assert_eq!((config.subscribe_points, config.unsubscribe_points), (50, 50));
        assert_eq!(config.ecomail_limits.concurrency.get(), 8);
        assert_eq!(config.ecomail.list_id, 7);
        assert!(config.redis.is_none());
        assert_eq!(config.records_capacity, record::DEFAULT_CAPACITY);
        assert_eq!(config.common.spec.topology.routing_keys.len(), 4);
        assert_eq!(
            config.bulk,
            Some(BatchSettings {
                max_items: DEFAULT_BULK_SIZE,
                linger: DEFAULT_BULK_LINGER
            })
        );
    }

    #[test]
    fn bulk_can_be_sized_or_switched_off() {
        let config = Config::from_strings(&with("LOYALTY_EVENTS_BULK", "off"));
        assert!(config.is_ok_and(|c| c.bulk.is_none()));
        let mut strings = with("LOYALTY_EVENTS_BULK_SIZE", "3000");
        strings.insert("LOYALTY_EVENTS_BULK_LINGER", "5ms");
        let bulk = Config::from_strings(&strings).map(|c| c.bulk);
        assert!(
            bulk.as_ref().is_ok_and(|b| *b
                == Some(BatchSettings {
                    max_items: 3000,
                    linger: Duration::from_millis(5)
                })),
            "{bulk:?}"
        );
    }

    #[test]
    fn the_record_capacity_is_a_positive_count() {
        let config = Config::from_strings(&with("LOYALTY_RECORDS_CAPACITY", "2500"));
        assert!(config.is_ok_and(|c| c.records_capacity == 2500));
        for bad in ["0", "-1", "lots", "1e6"] {
            assert_eq!(
                variable_of(&with("LOYALTY_RECORDS_CAPACITY", bad)).as_deref(),
                Some("LOYALTY_RECORDS_CAPACITY"),
                "{bad}"
            );
        }
    }

    #[test]
    fn validate_rejects_bad_bulk_settings() {
        for (name, bad) in [
            ("LOYALTY_EVENTS_BULK", "maybe"),
            ("LOYALTY_EVENTS_BULK_SIZE", "0"),
            ("LOYALTY_EVENTS_BULK_SIZE", "3001"),
            ("LOYALTY_EVENTS_BULK_SIZE", "many"),
            ("LOYALTY_EVENTS_BULK_LINGER", "10 minutes"),
            ("LOYALTY_EVENTS_BULK_LINGER", "6s"),
        ] {
            assert_eq!(variable_of(&with(name, bad)).as_deref(), Some(name), "{bad}");
        }
    }

    #[test]
    fn validate_accepts_off_zero_and_offsets() {
        let config = Config::from_strings(&with("LOYALTY_EXPIRY_NOTICE_DAYS", "OFF"));
        assert!(config.is_ok_and(|c| c.notice.days.is_none()));
        let config = Config::from_strings(&with("LOYALTY_EXPIRY_NOTICE_DAYS", "0"));
        assert!(config.is_ok_and(|c| c.notice.days == Some(0)));
        for (raw, seconds) in [("+01:00", 3600), ("-05:30", -19_800), ("Z", 0), ("+00:00", 0)] {
            assert_eq!(parse_offset(raw).map(UtcOffset::whole_seconds), Ok(seconds), "{raw}");
        }
    }

    #[test]
    fn validate_rejects_bad_notice_days() {
        for bad in ["-1", "seven", "367", "7d", "1.5"] {
            let strings = with("LOYALTY_EXPIRY_NOTICE_DAYS", bad);
            assert_eq!(
                variable_of(&strings).as_deref(),
                Some("LOYALTY_EXPIRY_NOTICE_DAYS"),
                "{bad}"
            );
        }
    }

    #[test]
    fn validate_rejects_bad_timezone_offsets() {
        for bad in ["01:00", "+1", "CET", "+25:00", "+01:60", "Europe/Prague"] {
            let strings = with("LOYALTY_TIMEZONE_OFFSET", bad);
            assert_eq!(
                variable_of(&strings).as_deref(),
                Some("LOYALTY_TIMEZONE_OFFSET"),
                "{bad}"
            );
        }
    }

    #[test]
    fn validate_rejects_bad_points() {
        for (name, bad) in [
            ("LOYALTY_SUBSCRIBE_POINTS", "-50"),
            ("LOYALTY_SUBSCRIBE_POINTS", "lots"),
            ("LOYALTY_UNSUBSCRIBE_POINTS", "2000000"),
        ] {
            assert_eq!(variable_of(&with(name, bad)).as_deref(), Some(name), "{bad}");
        }
    }

    #[test]
    fn validate_rejects_missing_or_bad_ecomail_settings() {
        for name in ["ECOMAIL_BASE_URL", "ECOMAIL_API_KEY", "ECOMAIL_LIST_ID"] {
            let mut strings = base();
            strings.remove(name);
            assert_eq!(variable_of(&strings).as_deref(), Some(name));
        }
        assert_eq!(
            variable_of(&with("ECOMAIL_LIST_ID", "list-7")).as_deref(),
            Some("ECOMAIL_LIST_ID")
        );
        assert_eq!(
            variable_of(&with("ECOMAIL_LIST_ID", "0")).as_deref(),
            Some("ECOMAIL_LIST_ID")
        );
        assert_eq!(
            variable_of(&with("ECOMAIL_RATE", "fast")).as_deref(),
            Some("ECOMAIL_RATE")
        );
        assert_eq!(
            variable_of(&with("ECOMAIL_CONCURRENCY", "0")).as_deref(),
            Some("ECOMAIL_CONCURRENCY")
        );
        assert_eq!(
            variable_of(&with("ECOMAIL_BASE_URL", "ftp://x")).as_deref(),
            Some("ECOMAIL_BASE_URL")
        );
    }

    #[test]
    fn validate_rejects_bad_redis_urls_without_echoing_them() {
        for bad in ["127.0.0.1:6379", "http://h:6379", "rediss://:hunter2@h:6380"] {
            let error = Config::from_strings(&with("REDIS_URL", bad)).err();
            assert_eq!(error.as_ref().map(ConfigError::variable), Some("REDIS_URL"), "{bad}");
            assert!(!error.map(|e| e.to_string()).unwrap_or_default().contains("hunter2"));
        }
    }

    #[test]
    fn redis_url_debug_hides_the_password() {
        let config =
            Config::from_strings(&with("REDIS_URL", "redis://:hunter2@cache:6379/0")).unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{:?}", config.redis);
        assert_eq!(shown, "Some(RedisUrl(cache))");
    }
}
