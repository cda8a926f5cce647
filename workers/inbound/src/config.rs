//! inbound configuration, read once from a `Strings` source and validated. Every error names
//! the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mq::worker::Common;
use provider_spotler::SpotlerConfig;
use provider_spotler::changes::MAX_PAGE_SIZE;
use secrecy::{ExposeSecret, SecretString};
use settings::{ConfigError, ProviderLimits, Rate, Strings};
use url::Url;

/// The binary's name: its connection name, ledger prefix and metrics label.
pub const WORKER: &str = "inbound";
/// The default webhook address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8081";
/// The default Spotler poll interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(300);
/// The shortest poll interval accepted.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The shortest accepted shared secret or token.
pub const MIN_SECRET_LEN: usize = 16;

/// Everything inbound needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every binary has (`METRICS_ADDR`, `AMQP_URL`, `SWITCHYARD_NAMESPACE`,
    /// `SWITCHYARD_MAX_BODY_BYTES`, `SWITCHYARD_DRAIN_DEADLINE`, `REDIS_URL`,
    /// `SWITCHYARD_REPLICAS`, `LOG_FORMAT`).
    pub common: Common,
    /// Where webhooks and callbacks are received (`INBOUND_ADDR`, default `127.0.0.1:8081`).
    pub addr: SocketAddr,
    /// The secret path segment of the Ecomail webhook URL (`INBOUND_ECOMAIL_TOKEN` or
    /// `INBOUND_ECOMAIL_TOKEN_FILE`); unset disables `POST /webhooks/ecomail/{token}`.
    pub ecomail_token: Option<SecretString>,
    /// The secret of the SALESmanago callback key (`INBOUND_SALESMANAGO_SECRET[_FILE]`); unset
    /// disables the callbacks.
    pub salesmanago_secret: Option<SecretString>,
    /// The Voucherify project's webhook secret (`INBOUND_VOUCHERIFY_SECRET[_FILE]`); unset
    /// disables `POST /webhooks/voucherify`.
    pub voucherify_secret: Option<SecretString>,
    /// How long a webhook waits for the broker's confirm before answering 503
    /// (`INBOUND_PUBLISH_TIMEOUT`, default 5s; Voucherify gives up after 10 s).
    pub publish_timeout: Duration,
    /// Where the Spotler cursor lives without Redis (`INBOUND_STATE_DIR`, default
    /// `.state/inbound`).
    pub state_dir: PathBuf,
    /// The Spotler pull; `None` when `INBOUND_SPOTLER_POLL_INTERVAL=off`.
    pub spotler: Option<SpotlerPull>,
}

/// The scheduled Spotler pull.
#[derive(Debug, Clone)]
pub struct SpotlerPull {
    /// How often (`INBOUND_SPOTLER_POLL_INTERVAL`, default `5m`).
    pub interval: Duration,
    /// Spotler base URL (`SPOTLER_BASE_URL`).
    pub base_url: Url,
    /// Rate limits (`SPOTLER_RATE` default `10/s`, `SPOTLER_BURST`, `SPOTLER_CONCURRENCY`
    /// default 4, `SPOTLER_TIMEOUT`).
    pub limits: ProviderLimits,
    /// Credentials (`SPOTLER_CONSUMER_KEY`, `SPOTLER_CONSUMER_SECRET[_FILE]`).
    pub credentials: SpotlerConfig,
    /// Records per page (`INBOUND_SPOTLER_PAGE_SIZE`, default 1000, at most 10000).
    pub page_size: u32,
    /// How far behind now a window ends, so changes Spotler records late still fall in a later
    /// window (`INBOUND_SPOTLER_LAG`, default `1m`).
    pub lag: Duration,
    /// Where the very first window starts when no cursor is stored: this long before now
    /// (`INBOUND_SPOTLER_LOOKBACK`, default `1h`).
    pub lookback: Duration,
    /// The longest window pulled in one go; a cursor further behind catches up window by
    /// window (`INBOUND_SPOTLER_MAX_WINDOW`, default `1d`).
    pub max_window: Duration,
}

/// A secret read through [`settings::secret`] that must be long enough to resist guessing.
fn strong_secret(strings: &dyn Strings, name: &str) -> Result<Option<SecretString>, ConfigError> {
    let Some(secret) = settings::secret(strings, name)? else {
        return Ok(None);
    };
    let text = secret.expose_secret();
    if text.chars().count() < MIN_SECRET_LEN {
        return Err(ConfigError::invalid(
            name,
            format!("must be at least {MIN_SECRET_LEN} characters (generate one, e.g. `openssl rand -hex 24`)"),
        ));
    }
    if text.chars().any(char::is_whitespace) {
        return Err(ConfigError::invalid(name, "must not contain whitespace"));
    }
    Ok(Some(secret))
}

/// `INBOUND_ECOMAIL_TOKEN` travels in a URL path: letters, digits, `-`, `_`, `.`, `~` only.
fn url_token(strings: &dyn Strings, name: &str) -> Result<Option<SecretString>, ConfigError> {
    let token = strong_secret(strings, name)?;
    if let Some(token) = &token
        && !token
            .expose_secret()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
    {
        return Err(ConfigError::invalid(
            name,
            "may only hold letters, digits, `-`, `_`, `.` and `~` (it is part of a URL path)",
        ));
    }
    Ok(token)
}

/// Parses `INBOUND_SPOTLER_POLL_INTERVAL`: `off`, or a duration of at least 100ms.
pub fn parse_interval(raw: &str) -> Result<Option<Duration>, String> {
    if raw.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let interval = settings::parse_duration(raw)?;
    if interval < MIN_POLL_INTERVAL {
        return Err(format!("`{raw}` is too short; use at least 100ms, or `off`"));
    }
    Ok(Some(interval))
}

fn rate(raw: &str) -> Rate {
    raw.parse()
        .unwrap_or_else(|_| unreachable!("the default rate is valid"))
}

impl SpotlerPull {
    fn from_strings(strings: &dyn Strings, interval: Duration) -> Result<Self, ConfigError> {
        let off = "or set INBOUND_SPOTLER_POLL_INTERVAL=off to disable the Spotler pull";
        let base_url = settings::base_url(strings, "SPOTLER_BASE_URL")?.ok_or_else(|| {
            ConfigError::missing(
                "SPOTLER_BASE_URL",
                &format!("e.g. `https://restapi.mailplus.nl/integrationservice-1.1.0`, {off}"),
            )
        })?;
        let consumer_key = settings::required(strings, "SPOTLER_CONSUMER_KEY", off)?;
        let consumer_secret = settings::secret(strings, "SPOTLER_CONSUMER_SECRET")?.ok_or_else(|| {
            ConfigError::missing(
                "SPOTLER_CONSUMER_SECRET",
                &format!("or SPOTLER_CONSUMER_SECRET_FILE, {off}"),
            )
        })?;
        let page_size = settings::parse(strings, "INBOUND_SPOTLER_PAGE_SIZE", |raw| match raw.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            _ => Err(format!("expected a whole number from 1 to {MAX_PAGE_SIZE}")),
        })?
        .unwrap_or(1000);
        let max_window = settings::duration_or(strings, "INBOUND_SPOTLER_MAX_WINDOW", Duration::from_secs(86_400))?;
        if max_window < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "INBOUND_SPOTLER_MAX_WINDOW",
                "must be at least 1s",
            ));
        }
        Ok(Self {
            interval,
            base_url,
            limits: ProviderLimits::from_strings(strings, "SPOTLER", rate("10/s"), 4)?,
            credentials: SpotlerConfig {
                consumer_key,
                consumer_secret,
            },
            page_size,
            lag: settings::duration_or(strings, "INBOUND_SPOTLER_LAG", Duration::from_secs(60))?,
            lookback: settings::duration_or(strings, "INBOUND_SPOTLER_LOOKBACK", Duration::from_secs(3600))?,
            max_window,
        })
    }
}

impl Config {
    /// Reads and validates the configuration.
    pub fn from_strings(strings: &dyn Strings) -> Result<Self, ConfigError> {
        let common = Common::from_strings(strings, WORKER, &[], 1)?;
        let addr = {
            let raw = strings.get("INBOUND_ADDR")?.unwrap_or_else(|| DEFAULT_ADDR.to_owned());
            raw.parse().map_err(|_| {
                ConfigError::invalid(
                    "INBOUND_ADDR",
                    format!("`{raw}`: expected host:port, e.g. `{DEFAULT_ADDR}`"),
                )
            })?
        };
        let publish_timeout = settings::duration_or(strings, "INBOUND_PUBLISH_TIMEOUT", Duration::from_secs(5))?;
        if publish_timeout.is_zero() || publish_timeout > Duration::from_secs(9) {
            return Err(ConfigError::invalid(
                "INBOUND_PUBLISH_TIMEOUT",
                "must be above 0 and at most 9s (vendors wait about 10 s for an answer)",
            ));
        }
        let interval = settings::parse(strings, "INBOUND_SPOTLER_POLL_INTERVAL", parse_interval)?
            .unwrap_or(Some(DEFAULT_POLL_INTERVAL));
        let spotler = match interval {
            Some(interval) => Some(SpotlerPull::from_strings(strings, interval)?),
            None => None,
        };
        Ok(Self {
            common,
            addr,
            ecomail_token: url_token(strings, "INBOUND_ECOMAIL_TOKEN")?,
            salesmanago_secret: strong_secret(strings, "INBOUND_SALESMANAGO_SECRET")?,
            voucherify_secret: strong_secret(strings, "INBOUND_VOUCHERIFY_SECRET")?,
            publish_timeout,
            state_dir: settings::path_or(strings, "INBOUND_STATE_DIR", ".state/inbound")?,
            spotler,
        })
    }

    /// The sources that are switched on, for the start-up log.
    pub fn enabled_sources(&self) -> Vec<&'static str> {
        [
            ("ecomail", self.ecomail_token.is_some()),
            ("salesmanago", self.salesmanago_secret.is_some()),
            ("voucherify", self.voucherify_secret.is_some()),
            ("spotler", self.spotler.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const TOKEN: &str = "tok_0123456789abcdef";

    fn base() -> HashMap<&'static str, &'static str> {
        [
            ("INBOUND_ECOMAIL_TOKEN", TOKEN),
            ("INBOUND_SALESMANAGO_SECRET", "salesmanago-secret-123"),
            ("INBOUND_VOUCHERIFY_SECRET", "voucherify-secret-123"),
            ("SPOTLER_BASE_URL", "http://127.0.0.1:1/spotler"),
            ("SPOTLER_CONSUMER_KEY", "k"),
            ("SPOTLER_CONSUMER_SECRET", "s"),
        ]
        .into_iter()
        .collect()
    }

    fn with(name: &'static str, value: &'static str) -> HashMap<&'static str, &'static str> {
        let mut strings = base();
        strings.insert(name, value);
        strings
    }

    fn variable_of(strings: &HashMap<&str, &str>) -> Option<String> {
        Config::from_strings(strings).err().map(|e| e.variable().to_owned())
    }

    #[test]
    fn validate_accepts_defaults() {
        let config = Config::from_strings(&base()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(config.publish_timeout, Duration::from_secs(5));
        assert_eq!(config.state_dir, PathBuf::from(".state/inbound"));
        let spotler = config.spotler.as_ref().unwrap_or_else(|| panic!("enabled by default"));
        assert_eq!(spotler.interval, DEFAULT_POLL_INTERVAL);
        assert_eq!((spotler.page_size, spotler.lag), (1000, Duration::from_secs(60)));
        assert_eq!(
            config.enabled_sources(),
            ["ecomail", "salesmanago", "voucherify", "spotler"]
        );
        assert!(config.common.spec.topology.routing_keys.is_empty(), "no consumer queue");
    }

    #[test]
    fn off_disables_the_pull_and_its_settings() {
        let mut strings = with("INBOUND_SPOTLER_POLL_INTERVAL", "off");
        strings.remove("SPOTLER_BASE_URL");
        strings.remove("SPOTLER_CONSUMER_SECRET");
        let config = Config::from_strings(&strings).unwrap_or_else(|e| panic!("{e}"));
        assert!(config.spotler.is_none());
    }

    #[test]
    fn unset_secrets_disable_their_sources() {
        let mut strings = base();
        strings.remove("INBOUND_ECOMAIL_TOKEN");
        strings.remove("INBOUND_VOUCHERIFY_SECRET");
        let config = Config::from_strings(&strings).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.enabled_sources(), ["salesmanago", "spotler"]);
    }

    #[test]
    fn validate_rejects_weak_or_unsafe_secrets() {
        for (name, bad) in [
            ("INBOUND_ECOMAIL_TOKEN", "short"),
            ("INBOUND_ECOMAIL_TOKEN", "has/slash/0123456789"),
            ("INBOUND_SALESMANAGO_SECRET", "tooshort"),
            ("INBOUND_VOUCHERIFY_SECRET", "with space 0123456789"),
        ] {
            assert_eq!(variable_of(&with(name, bad)).as_deref(), Some(name), "{bad}");
        }
        let error = Config::from_strings(&with("INBOUND_VOUCHERIFY_SECRET", "short"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!error.contains("short"), "the value is never echoed: {error}");
    }

    #[test]
    fn validate_rejects_bad_values() {
        for (name, bad) in [
            ("INBOUND_ADDR", "localhost"),
            ("INBOUND_PUBLISH_TIMEOUT", "0s"),
            ("INBOUND_PUBLISH_TIMEOUT", "30s"),
            ("INBOUND_SPOTLER_POLL_INTERVAL", "10ms"),
            ("INBOUND_SPOTLER_POLL_INTERVAL", "sometimes"),
            ("INBOUND_SPOTLER_PAGE_SIZE", "0"),
            ("INBOUND_SPOTLER_PAGE_SIZE", "10001"),
            ("INBOUND_SPOTLER_LAG", "soon"),
            ("INBOUND_SPOTLER_MAX_WINDOW", "0s"),
            ("SPOTLER_RATE", "fast"),
            ("SWITCHYARD_MAX_BODY_BYTES", "lots"),
        ] {
            assert_eq!(variable_of(&with(name, bad)).as_deref(), Some(name), "{bad}");
        }
    }

    #[test]
    fn missing_spotler_settings_are_named_when_the_pull_is_on() {
        for name in ["SPOTLER_BASE_URL", "SPOTLER_CONSUMER_KEY", "SPOTLER_CONSUMER_SECRET"] {
            let mut strings = base();
            strings.remove(name);
            assert_eq!(variable_of(&strings).as_deref(), Some(name));
        }
    }

    #[test]
    fn intervals_parse() {
        assert_eq!(parse_interval("OFF"), Ok(None));
        assert_eq!(parse_interval("5m"), Ok(Some(Duration::from_secs(300))));
        assert_eq!(parse_interval("250ms"), Ok(Some(Duration::from_millis(250))));
        assert!(parse_interval("50ms").is_err());
    }
}
