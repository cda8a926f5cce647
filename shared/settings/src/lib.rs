//! Configuration from the environment: a `Strings` source, typed parse helpers and the
//! configuration pieces every binary shares.
//!
//! Nothing but `main.rs` reads the real environment: binaries pass [`Env`], tests pass a
//! `HashMap` (see [`Strings`]). An invalid value yields a [`ConfigError`] naming the variable;
//! binaries exit with [`EXIT_USAGE`] (64, `EX_USAGE`) on it.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

pub use secrecy::{ExposeSecret, SecretString as Secret};

/// Exit code for an invalid configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_USAGE: u8 = 64;

/// A source of configuration strings: the process environment or a map in tests.
pub trait Strings {
    /// The value of `name`, or `None` when unset. Empty values count as unset.
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy)]
pub struct Env;

impl Strings for Env {
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match std::env::var(name) {
            Ok(value) if value.trim().is_empty() => Ok(None),
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::invalid(name, "is not valid UTF-8")),
        }
    }
}

impl<S: std::hash::BuildHasher> Strings for HashMap<&str, &str, S> {
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        Ok(HashMap::get(self, name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (*v).to_owned()))
    }
}

impl<S: std::hash::BuildHasher> Strings for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        Ok(HashMap::get(self, name).filter(|v| !v.trim().is_empty()).cloned())
    }
}

/// A configuration variable that is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{name} is required but not set{hint}")]
    Missing {
        /// The variable.
        name: String,
        /// Extra guidance, starting with `; ` or empty.
        hint: String,
    },
    /// A variable is set to a value that does not parse.
    #[error("{name} is not valid: {why}")]
    Invalid {
        /// The variable.
        name: String,
        /// What is wrong, with an example of a valid value where useful.
        why: String,
    },
}

impl ConfigError {
    /// An invalid variable.
    pub fn invalid(name: &str, why: impl fmt::Display) -> Self {
        Self::Invalid {
            name: name.to_owned(),
            why: why.to_string(),
        }
    }

    /// A missing variable, with a hint such as an example value.
    pub fn missing(name: &str, hint: &str) -> Self {
        let hint = if hint.is_empty() {
            String::new()
        } else {
            format!("; {hint}")
        };
        Self::Missing {
            name: name.to_owned(),
            hint,
        }
    }

    /// The variable this error is about.
    pub fn variable(&self) -> &str {
        match self {
            Self::Missing { name, .. } | Self::Invalid { name, .. } => name,
        }
    }
}

/// Reads `name` and parses it with `parse`, turning a parse error into a [`ConfigError`].
pub fn parse<T, E: fmt::Display>(
    strings: &dyn Strings,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, ConfigError> {
    match strings.get(name)? {
        None => Ok(None),
        Some(raw) => parse(raw.trim()).map(Some).map_err(|e| ConfigError::invalid(name, e)),
    }
}

/// Reads `name` as a `FromStr` value, or `default` when unset.
pub fn parse_or<T: FromStr>(strings: &dyn Strings, name: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    Ok(parse(strings, name, str::parse::<T>)?.unwrap_or(default))
}

/// Reads a required string.
pub fn required(strings: &dyn Strings, name: &str, hint: &str) -> Result<String, ConfigError> {
    strings.get(name)?.ok_or_else(|| ConfigError::missing(name, hint))
}

/// Reads a duration such as `250ms`, `10s`, `5m`, `1h`, or `default` when unset.
pub fn duration_or(strings: &dyn Strings, name: &str, default: Duration) -> Result<Duration, ConfigError> {
    Ok(parse(strings, name, parse_duration)?.unwrap_or(default))
}

/// Reads an on/off switch (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case), or
/// `default` when unset.
pub fn flag(strings: &dyn Strings, name: &str, default: bool) -> Result<bool, ConfigError> {
    Ok(parse(strings, name, |raw| match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected `true` or `false`"),
    })?
    .unwrap_or(default))
}

/// Reads a secret: `NAME` itself, or the contents of the file named by `NAME_FILE`
/// (trailing newline trimmed). Setting both is an error.
pub fn secret(strings: &dyn Strings, name: &str) -> Result<Option<SecretString>, ConfigError> {
    let file_var = format!("{name}_FILE");
    match (strings.get(name)?, strings.get(&file_var)?) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            name,
            format!("set either {name} or {file_var}, not both"),
        )),
        (Some(value), None) => Ok(Some(SecretString::from(value))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::invalid(&file_var, format!("cannot read {path}: {e}")))?;
            let text = text.trim_end_matches(['\r', '\n']).to_owned();
            if text.is_empty() {
                return Err(ConfigError::invalid(&file_var, format!("{path} is empty")));
            }
            Ok(Some(SecretString::from(text)))
        }
        (None, None) => Ok(None),
    }
}

/// Reads a required secret (see [`secret`]).
pub fn required_secret(strings: &dyn Strings, name: &str) -> Result<SecretString, ConfigError> {
    secret(strings, name)?
        .ok_or_else(|| ConfigError::missing(name, &format!("or set {name}_FILE to a file holding it")))
}

/// Reads an `http(s)` base URL; a trailing slash is removed so paths can be appended.
pub fn base_url(strings: &dyn Strings, name: &str) -> Result<Option<Url>, ConfigError> {
    parse(strings, name, parse_base_url)
}

/// Parses an `http(s)` base URL.
pub fn parse_base_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim_end_matches('/'))
        .map_err(|e| format!("{e}; expected a URL such as `https://api.example.com/v1`"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err("expected an http or https URL with a host, e.g. `https://api.example.com/v1`".to_owned()),
    }
}

/// Parses `250ms`, `10s`, `5m`, `1h` or `2d` into a duration.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        format!("`{raw}` is not a duration; expected a number and a unit, e.g. `500ms`, `10s`, `5m`, `1h`")
    })?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        "d" => Duration::from_secs(n * 86_400),
        other => return Err(format!("unknown unit `{other}` in `{raw}`; use ms, s, m, h or d")),
    };
    Ok(d)
}

/// Formats a duration the way [`parse_duration`] reads it, in the largest exact unit.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Broker settings shared by every binary.
#[derive(Clone)]
pub struct MqConfig {
    /// Broker URLs in order of preference (`AMQP_URL`, comma-separated). They may hold a password,
    /// so this type has no `Debug` that prints them.
    pub urls: Vec<SecretString>,
    /// Prefix for every exchange and queue name (`SWITCHYARD_NAMESPACE`).
    pub namespace: String,
}

impl fmt::Debug for MqConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqConfig")
            .field("urls", &format_args!("[{} redacted]", self.urls.len()))
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// The default broker URL.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

impl MqConfig {
    /// Reads `AMQP_URL` and `SWITCHYARD_NAMESPACE`.
    pub fn from_strings(strings: &dyn Strings) -> Result<Self, ConfigError> {
        let raw = strings.get("AMQP_URL")?.unwrap_or_else(|| DEFAULT_AMQP_URL.to_owned());
        let mut urls = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if !(part.starts_with("amqp://") || part.starts_with("amqps://")) {
                return Err(ConfigError::invalid(
                    "AMQP_URL",
                    "each URL must start with amqp:// or amqps://, e.g. `amqp://user:pass@host:5672/%2f`",
                ));
            }
            urls.push(SecretString::from(part.to_owned()));
        }
        if urls.is_empty() {
            return Err(ConfigError::invalid("AMQP_URL", "no URL given"));
        }
        let namespace = strings.get("SWITCHYARD_NAMESPACE")?.unwrap_or_default();
        if !namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ConfigError::invalid(
                "SWITCHYARD_NAMESPACE",
                "use only letters, digits, `-`, `_` and `.`",
            ));
        }
        Ok(Self { urls, namespace })
    }
}

/// A rate such as `10/s`, `100/min` or `5000/h`: `count` calls per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Calls allowed per window.
    pub count: NonZeroU32,
    /// The window.
    pub per: Duration,
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let example = "expected `<count>/<unit>` such as `10/s`, `100/min` or `5000/h`";
        let (count, unit) = raw
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("`{raw}`: {example}"))?;
        let count: NonZeroU32 = count
            .trim()
            .parse()
            .map_err(|_| format!("`{raw}`: the count must be a whole number above 0; {example}"))?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other => parse_duration(other).map_err(|_| format!("`{raw}`: unknown unit `{other}`; {example}"))?,
        };
        if per.is_zero() {
            return Err(format!("`{raw}`: the window must be longer than 0"));
        }
        Ok(Self { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s".to_owned(),
            60 => "min".to_owned(),
            3600 => "h".to_owned(),
            86_400 => "d".to_owned(),
            _ => format_duration(self.per),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Parses one or more comma-separated windows, e.g. `10/s,5000/h`.
pub fn parse_windows(raw: &str) -> Result<Vec<Rate>, String> {
    let mut windows: Vec<Rate> = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let rate: Rate = part.parse()?;
        if windows.iter().any(|w| w.per == rate.per) {
            return Err(format!("`{raw}` names the {} window twice", format_duration(rate.per)));
        }
        windows.push(rate);
    }
    if windows.is_empty() {
        return Err("no window given; e.g. `10/s` or `10/s,5000/h`".to_owned());
    }
    windows.sort_by_key(|w| w.per);
    Ok(windows)
}

/// Per-provider HTTP and rate-limit settings: `<P>_RATE`, `<P>_BURST`, `<P>_CONCURRENCY`,
/// `<P>_TIMEOUT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderLimits {
    /// The quota: one or more windows (`10/s,5000/h`), shortest first. A call must fit in all.
    pub windows: Vec<Rate>,
    /// Burst size; `None` lets the limiter pick the largest safe burst.
    pub burst: Option<NonZeroU32>,
    /// Maximum calls in flight.
    pub concurrency: NonZeroU32,
    /// Timeout of one HTTP call.
    pub timeout: Duration,
}

impl ProviderLimits {
    /// Reads the limits of `prefix` (e.g. `SPOTLER`), falling back to the provider's defaults.
    pub fn from_strings(
        strings: &dyn Strings,
        prefix: &str,
        default_rate: Rate,
        default_concurrency: u32,
    ) -> Result<Self, ConfigError> {
        let windows = parse(strings, &format!("{prefix}_RATE"), parse_windows)?.unwrap_or_else(|| vec![default_rate]);
        let burst = parse(strings, &format!("{prefix}_BURST"), |s| {
            s.parse::<NonZeroU32>().map_err(|_| "expected a whole number above 0")
        })?;
        let concurrency = parse(strings, &format!("{prefix}_CONCURRENCY"), |s| {
            s.parse::<NonZeroU32>().map_err(|_| "expected a whole number above 0")
        })?
        .unwrap_or(NonZeroU32::new(default_concurrency).unwrap_or(NonZeroU32::MIN));
        let timeout = duration_or(strings, &format!("{prefix}_TIMEOUT"), Duration::from_secs(10))?;
        if let Some(burst) = burst
            && let Some(rate) = windows.iter().find(|w| burst > w.count)
        {
            return Err(ConfigError::invalid(
                &format!("{prefix}_BURST"),
                format!("{burst} is larger than the quota {rate}; a burst can never exceed a window's quota"),
            ));
        }
        Ok(Self {
            windows,
            burst,
            concurrency,
            timeout,
        })
    }
}

/// A path from the environment, or `default`.
pub fn path_or(strings: &dyn Strings, name: &str, default: &str) -> Result<PathBuf, ConfigError> {
    Ok(PathBuf::from(strings.get(name)?.unwrap_or_else(|| default.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn rate_parses_common_forms() {
        assert_eq!(
            "10/s".parse::<Rate>().map(|r| (r.count.get(), r.per)),
            Ok((10, Duration::from_secs(1)))
        );
        assert_eq!("100/min".parse::<Rate>().map(|r| r.per), Ok(Duration::from_secs(60)));
        assert_eq!("5000/h".parse::<Rate>().map(|r| r.to_string()), Ok("5000/h".to_owned()));
        assert_eq!("600/10m".parse::<Rate>().map(|r| r.per), Ok(Duration::from_secs(600)));
    }

    #[test]
    fn validate_rejects_bad_rates() {
        for bad in ["10", "0/s", "x/s", "10/fortnight", "-1/s"] {
            let err = bad.parse::<Rate>().err();
            assert!(err.is_some(), "{bad} must be rejected");
        }
    }

    #[test]
    fn validate_rejects_burst_above_quota() {
        let strings = env(&[("ACME_RATE", "10/s"), ("ACME_BURST", "11")]);
        let err =
            ProviderLimits::from_strings(&strings, "ACME", "1/s".parse().unwrap_or_else(|_| unreachable!()), 1).err();
        assert_eq!(err.map(|e| e.variable().to_owned()), Some("ACME_BURST".to_owned()));
    }

    #[test]
    fn validate_accepts_provider_defaults() {
        let default: Rate = "10/s".parse().unwrap_or_else(|_| unreachable!());
        let limits = ProviderLimits::from_strings(&env(&[]), "ACME", default, 4);
        assert_eq!(limits.map(|l| (l.windows, l.concurrency.get())), Ok((vec![default], 4)));
    }

    #[test]
    fn windows_parse_sorted_and_reject_duplicates() {
        let windows = parse_windows("5000/h, 10/s");
        assert_eq!(
            windows.map(|w| w.iter().map(ToString::to_string).collect::<Vec<_>>()),
            Ok(vec!["10/s".to_owned(), "5000/h".to_owned()])
        );
        assert!(parse_windows("10/s,20/s").is_err());
        assert!(parse_windows("").is_err());
    }

    #[test]
    fn durations_round_trip() {
        for raw in ["250ms", "1s", "10s", "1m", "10m", "1h"] {
            assert_eq!(parse_duration(raw).map(format_duration), Ok(raw.to_owned()));
        }
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn validate_rejects_non_amqp_url() {
        let err = MqConfig::from_strings(&env(&[("AMQP_URL", "http://x")])).err();
        assert_eq!(err.map(|e| e.variable().to_owned()), Some("AMQP_URL".to_owned()));
    }

    #[test]
    fn mq_config_debug_hides_password() {
        let config = MqConfig::from_strings(&env(&[("AMQP_URL", "amqp://u:hunter2@h:5672/%2f")]));
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn secret_reads_file_variant() {
        let dir = std::env::temp_dir().join(format!("settings-secret-{}", std::process::id()));
        assert!(std::fs::create_dir_all(&dir).is_ok());
        let path = dir.join("token");
        assert!(std::fs::write(&path, "s3cret\n").is_ok());
        let path_str = path.to_string_lossy().into_owned();
        let map: HashMap<String, String> = [("TOKEN_FILE".to_owned(), path_str)].into_iter().collect();
        let secret = secret(&map, "TOKEN")
            .ok()
            .flatten()
            .map(|s| s.expose_secret().to_owned());
        assert_eq!(secret.as_deref(), Some("s3cret"));
    }
}
