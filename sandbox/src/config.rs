//! Sandbox configuration: the credentials each emulated provider accepts and the rate limits
//! it enforces, from code ([`SandboxConfig::for_tests`]) or from the environment
//! ([`SandboxConfig::from_env`]). Unset or empty variables take their defaults.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SANDBOX_SPOTLER_CONSUMER_KEY` | `sandbox-spotler-key` | OAuth consumer key Spotler accepts |
//! | `SANDBOX_SPOTLER_CONSUMER_SECRET` | `sandbox-spotler-secret` | OAuth consumer secret |
//! | `SANDBOX_ECOMAIL_API_KEY` | `sandbox-ecomail-key` | value of the Ecomail `key` header |
//! | `SANDBOX_VOUCHERIFY_APP_ID` | `sandbox-voucherify-app` | Voucherify `X-App-Id` |
//! | `SANDBOX_VOUCHERIFY_APP_TOKEN` | `sandbox-voucherify-token` | Voucherify `X-App-Token` |
//! | `SANDBOX_VOUCHERIFY_INTEGRATION_APP_ID` | `sandbox-vf-integration-app` | integration `application-id` header |
//! | `SANDBOX_VOUCHERIFY_INTEGRATION_SECRET_KEY` | `sandbox-vf-integration-secret` | integration `secret-key` header |
//! | `SANDBOX_VOUCHERIFY_HARD_ID` | `registered` | the "Main Hard ID" key of the integration payloads |
//! | `SANDBOX_VOUCHERIFY_METADATA_SCHEMA` | `segment:string,loyalty_points:number,vip:boolean,consent:string,last_order_at:date` | the customer metadata schema (`key:type`, types `string`, `number`, `boolean`, `date`) |
//! | `SANDBOX_BLOOMREACH_KEY_ID` | `sandbox-bloomreach-key` | Bloomreach API key id (Basic auth user) |
//! | `SANDBOX_BLOOMREACH_SECRET` | `sandbox-bloomreach-secret` | Bloomreach API secret (Basic auth password) |
//! | `SANDBOX_BLOOMREACH_PROJECT_TOKEN` | `sandbox-project` | the one project token Bloomreach knows |
//! | `SANDBOX_SALESMANAGO_CLIENT_ID` | `sandbox-sm-client` | SALESmanago `clientId` |
//! | `SANDBOX_SALESMANAGO_API_SECRET` | `sandbox-sm-secret` | the secret `sha` is computed with |
//! | `SANDBOX_SALESMANAGO_OWNER` | `owner@example.com` | the account user `owner` must name |
//! | `SANDBOX_SALESMANAGO_LIMIT_MODE` | `http429` | over the limit: `http429` or `success_false` |
//! | `SANDBOX_FROOMLE_CLIENT_ID` | `sandbox-froomle-client` | Froomle OAuth2 client id |
//! | `SANDBOX_FROOMLE_CLIENT_SECRET` | `sandbox-froomle-secret` | Froomle OAuth2 client secret |
//! | `SANDBOX_SPOTLER_RATE` | `10/s` | Spotler quota (`N/s`, `N/min`, `N/h`, `N/d`, or `off`) |
//! | `SANDBOX_ECOMAIL_RATE` | `1000/min` | Ecomail quota |
//! | `SANDBOX_VOUCHERIFY_RATE` | `100/h` | Voucherify API quota (the sandbox project's) |
//! | `SANDBOX_VOUCHERIFY_INTEGRATION_RATE` | `144000/d` | Voucherify integration (webhook) bucket |
//! | `SANDBOX_BLOOMREACH_RATE` | `6000/min` | Bloomreach Tracking API quota |
//! | `SANDBOX_SALESMANAGO_RATE` | `1000/h` | SALESmanago quota |
//! | `SANDBOX_FROOMLE_RATE` | `off` | Froomle quota |

use std::{collections::BTreeMap, fmt, str::FromStr};

use serde::{Deserialize, Serialize};

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
/// Default Voucherify `X-App-Id`.
pub const DEFAULT_VOUCHERIFY_APP_ID: &str = "sandbox-voucherify-app";
/// Default Voucherify `X-App-Token`.
pub const DEFAULT_VOUCHERIFY_APP_TOKEN: &str = "sandbox-voucherify-token";
/// Default `application-id` of the Voucherify Bloomreach integration endpoints.
pub const DEFAULT_VOUCHERIFY_INTEGRATION_APP_ID: &str = "sandbox-vf-integration-app";
/// Default `secret-key` of the Voucherify Bloomreach integration endpoints.
pub const DEFAULT_VOUCHERIFY_INTEGRATION_SECRET_KEY: &str = "sandbox-vf-integration-secret";
/// Default "Main Hard ID" key name in the integration payloads.
pub const DEFAULT_VOUCHERIFY_HARD_ID: &str = "registered";
/// Default Bloomreach API key id.
pub const DEFAULT_BLOOMREACH_KEY_ID: &str = "sandbox-bloomreach-key";
/// Default Bloomreach API secret.
pub const DEFAULT_BLOOMREACH_SECRET: &str = "sandbox-bloomreach-secret";
/// Default Bloomreach project token.
pub const DEFAULT_BLOOMREACH_PROJECT_TOKEN: &str = "sandbox-project";
/// Default SALESmanago `clientId`.
pub const DEFAULT_SALESMANAGO_CLIENT_ID: &str = "sandbox-sm-client";
/// Default SALESmanago API secret.
pub const DEFAULT_SALESMANAGO_API_SECRET: &str = "sandbox-sm-secret";
/// Default SALESmanago `owner` (the account user).
pub const DEFAULT_SALESMANAGO_OWNER: &str = "owner@example.com";
/// Default Froomle OAuth2 client id.
pub const DEFAULT_FROOMLE_CLIENT_ID: &str = "sandbox-froomle-client";
/// Default Froomle OAuth2 client secret.
pub const DEFAULT_FROOMLE_CLIENT_SECRET: &str = "sandbox-froomle-secret";

/// The metadata types a Voucherify metadata schema entry can have.
pub const VOUCHERIFY_METADATA_TYPES: [&str; 4] = ["string", "number", "boolean", "date"];

/// The default Voucherify customer metadata schema: `segment` (string), `loyalty_points`
/// (number), `vip` (boolean), `consent` (string), `last_order_at` (date).
pub fn default_voucherify_metadata_schema() -> BTreeMap<String, String> {
    [
        ("segment", "string"),
        ("loyalty_points", "number"),
        ("vip", "boolean"),
        ("consent", "string"),
        ("last_order_at", "date"),
    ]
    .into_iter()
    .map(|(key, kind)| (key.to_owned(), kind.to_owned()))
    .collect()
}

/// Everything the sandbox needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The OAuth 1.0a consumer credentials Spotler accepts.
    pub spotler: SpotlerCreds,
    /// The API key Ecomail accepts in the `key` header.
    pub ecomail_api_key: String,
    /// The Voucherify API credentials (`X-App-Id` / `X-App-Token`).
    pub voucherify: VoucherifyCreds,
    /// The Voucherify Bloomreach integration key and hard-ID name.
    pub voucherify_integration: VoucherifyIntegrationCreds,
    /// The Voucherify customer metadata schema: key → `string` | `number` | `boolean` | `date`.
    /// The integration endpoints apply only these keys, with these types; the API refuses a
    /// defined key with the wrong type and stores undefined keys (a non-strict schema).
    pub voucherify_metadata_schema: BTreeMap<String, String>,
    /// The Bloomreach Tracking API credentials and project token.
    pub bloomreach: BloomreachCreds,
    /// The SALESmanago API v2 account.
    pub salesmanago: SalesmanagoCreds,
    /// The Froomle OAuth2 client credentials.
    pub froomle: FroomleCreds,
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

/// Voucherify server-side API keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherifyCreds {
    /// The Application ID, sent as `X-App-Id`.
    pub app_id: String,
    /// The Secret Key, sent as `X-App-Token`.
    pub app_token: String,
}

/// The Voucherify integration key for Bloomreach Engagement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherifyIntegrationCreds {
    /// Sent as the `application-id` header.
    pub application_id: String,
    /// Sent as the `secret-key` header.
    pub secret_key: String,
    /// The "Main Hard ID" key whose value is the Voucherify customer `source_id`.
    pub hard_id: String,
}

/// Bloomreach Engagement private API access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BloomreachCreds {
    /// The API key id (Basic auth user name).
    pub key_id: String,
    /// The API secret (Basic auth password).
    pub secret: String,
    /// The project token the paths must name (any other is 403).
    pub project_token: String,
}

/// A SALESmanago account (API v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesmanagoCreds {
    /// The `clientId` every body must carry.
    pub client_id: String,
    /// The API secret: `sha` = hex SHA-1 of `apiKey + clientId + apiSecret`.
    pub api_secret: String,
    /// The account user every body must name as `owner` (case-insensitive).
    pub owner: String,
    /// How a call over the rate limit is answered.
    pub limit_mode: SalesmanagoLimitMode,
}

/// How SALESmanago answers a call over its rate limit (the vendor's behaviour is not
/// documented, so both plausible ones are available).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SalesmanagoLimitMode {
    /// HTTP 429 with `Retry-After` and a `success: false` body.
    #[default]
    Http429,
    /// HTTP 200 `{"success": false, "message": ["API limit exceeded"]}`.
    SuccessFalse,
}

impl SalesmanagoLimitMode {
    /// `http429` or `success_false`, as in `SANDBOX_SALESMANAGO_LIMIT_MODE`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SalesmanagoLimitMode::Http429 => "http429",
            SalesmanagoLimitMode::SuccessFalse => "success_false",
        }
    }
}

impl fmt::Display for SalesmanagoLimitMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SalesmanagoLimitMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "http429" | "429" => Ok(SalesmanagoLimitMode::Http429),
            "success_false" | "success-false" => Ok(SalesmanagoLimitMode::SuccessFalse),
            _ => Err("expected http429 or success_false".to_owned()),
        }
    }
}

/// Froomle OAuth2 client credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FroomleCreds {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: String,
}

/// Per-provider rate limits; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Spotler quota, by default `10/s` (PROVIDERS.md emulator assumption).
    pub spotler: Option<Rate>,
    /// Ecomail quota, by default `1000/min` (per API key).
    pub ecomail: Option<Rate>,
    /// Voucherify API quota, by default `100/h` (the fixed quota of a Voucherify sandbox project).
    pub voucherify: Option<Rate>,
    /// Voucherify integration (webhook) bucket, by default `144000/d` (Business plan).
    pub voucherify_integration: Option<Rate>,
    /// Bloomreach Tracking API quota, by default `6000/min` (per IP).
    pub bloomreach: Option<Rate>,
    /// SALESmanago quota, by default `1000/h`.
    pub salesmanago: Option<Rate>,
    /// Froomle quota, by default none.
    pub froomle: Option<Rate>,
}

impl Default for Limits {
    /// Spotler 10/s, Ecomail 1000/min, Voucherify 100/h, Voucherify integration 144000/d,
    /// Bloomreach 6000/min, SALESmanago 1000/h, Froomle unlimited.
    fn default() -> Self {
        Self {
            spotler: Some(Rate::per_second(10)),
            ecomail: Some(Rate::per_minute(1000)),
            voucherify: Some(Rate::per_hour(100)),
            voucherify_integration: Some(Rate::per_day(144_000)),
            bloomreach: Some(Rate::per_minute(6000)),
            salesmanago: Some(Rate::per_hour(1000)),
            froomle: None,
        }
    }
}

impl Limits {
    /// No limit for any provider.
    pub const fn unlimited() -> Self {
        Self {
            spotler: None,
            ecomail: None,
            voucherify: None,
            voucherify_integration: None,
            bloomreach: None,
            salesmanago: None,
            froomle: None,
        }
    }

    /// The quota of `provider`.
    pub fn get(&self, provider: Provider) -> Option<Rate> {
        match provider {
            Provider::Spotler => self.spotler,
            Provider::Ecomail => self.ecomail,
            Provider::Voucherify => self.voucherify,
            Provider::VoucherifyIntegration => self.voucherify_integration,
            Provider::Bloomreach => self.bloomreach,
            Provider::Salesmanago => self.salesmanago,
            Provider::Froomle => self.froomle,
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
            voucherify: VoucherifyCreds {
                app_id: DEFAULT_VOUCHERIFY_APP_ID.to_owned(),
                app_token: DEFAULT_VOUCHERIFY_APP_TOKEN.to_owned(),
            },
            voucherify_integration: VoucherifyIntegrationCreds {
                application_id: DEFAULT_VOUCHERIFY_INTEGRATION_APP_ID.to_owned(),
                secret_key: DEFAULT_VOUCHERIFY_INTEGRATION_SECRET_KEY.to_owned(),
                hard_id: DEFAULT_VOUCHERIFY_HARD_ID.to_owned(),
            },
            voucherify_metadata_schema: default_voucherify_metadata_schema(),
            bloomreach: BloomreachCreds {
                key_id: DEFAULT_BLOOMREACH_KEY_ID.to_owned(),
                secret: DEFAULT_BLOOMREACH_SECRET.to_owned(),
                project_token: DEFAULT_BLOOMREACH_PROJECT_TOKEN.to_owned(),
            },
            salesmanago: SalesmanagoCreds {
                client_id: DEFAULT_SALESMANAGO_CLIENT_ID.to_owned(),
                api_secret: DEFAULT_SALESMANAGO_API_SECRET.to_owned(),
                owner: DEFAULT_SALESMANAGO_OWNER.to_owned(),
                limit_mode: SalesmanagoLimitMode::Http429,
            },
            froomle: FroomleCreds {
                client_id: DEFAULT_FROOMLE_CLIENT_ID.to_owned(),
                client_secret: DEFAULT_FROOMLE_CLIENT_SECRET.to_owned(),
            },
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
        let schema = match get("SANDBOX_VOUCHERIFY_METADATA_SCHEMA") {
            None => default_voucherify_metadata_schema(),
            Some(value) => parse_metadata_schema(&value)
                .map_err(|why| format!("SANDBOX_VOUCHERIFY_METADATA_SCHEMA={value:?} is not valid: {why}"))?,
        };
        let limit_mode = match get("SANDBOX_SALESMANAGO_LIMIT_MODE") {
            None => SalesmanagoLimitMode::default(),
            Some(value) => value
                .parse()
                .map_err(|why| format!("SANDBOX_SALESMANAGO_LIMIT_MODE={value:?} is not valid: {why}"))?,
        };
        let defaults = Limits::default();
        Ok(Self {
            spotler: SpotlerCreds {
                consumer_key: text("SANDBOX_SPOTLER_CONSUMER_KEY", DEFAULT_SPOTLER_CONSUMER_KEY),
                consumer_secret: text("SANDBOX_SPOTLER_CONSUMER_SECRET", DEFAULT_SPOTLER_CONSUMER_SECRET),
            },
            ecomail_api_key: text("SANDBOX_ECOMAIL_API_KEY", DEFAULT_ECOMAIL_API_KEY),
            voucherify: VoucherifyCreds {
                app_id: text("SANDBOX_VOUCHERIFY_APP_ID", DEFAULT_VOUCHERIFY_APP_ID),
                app_token: text("SANDBOX_VOUCHERIFY_APP_TOKEN", DEFAULT_VOUCHERIFY_APP_TOKEN),
            },
            voucherify_integration: VoucherifyIntegrationCreds {
                application_id: text(
                    "SANDBOX_VOUCHERIFY_INTEGRATION_APP_ID",
                    DEFAULT_VOUCHERIFY_INTEGRATION_APP_ID,
                ),
                secret_key: text(
                    "SANDBOX_VOUCHERIFY_INTEGRATION_SECRET_KEY",
                    DEFAULT_VOUCHERIFY_INTEGRATION_SECRET_KEY,
                ),
                hard_id: text("SANDBOX_VOUCHERIFY_HARD_ID", DEFAULT_VOUCHERIFY_HARD_ID)
                    .trim()
                    .to_owned(),
            },
            voucherify_metadata_schema: schema,
            bloomreach: BloomreachCreds {
                key_id: text("SANDBOX_BLOOMREACH_KEY_ID", DEFAULT_BLOOMREACH_KEY_ID),
                secret: text("SANDBOX_BLOOMREACH_SECRET", DEFAULT_BLOOMREACH_SECRET),
                project_token: text("SANDBOX_BLOOMREACH_PROJECT_TOKEN", DEFAULT_BLOOMREACH_PROJECT_TOKEN),
            },
            salesmanago: SalesmanagoCreds {
                client_id: text("SANDBOX_SALESMANAGO_CLIENT_ID", DEFAULT_SALESMANAGO_CLIENT_ID),
                api_secret: text("SANDBOX_SALESMANAGO_API_SECRET", DEFAULT_SALESMANAGO_API_SECRET),
                owner: text("SANDBOX_SALESMANAGO_OWNER", DEFAULT_SALESMANAGO_OWNER),
                limit_mode,
            },
            froomle: FroomleCreds {
                client_id: text("SANDBOX_FROOMLE_CLIENT_ID", DEFAULT_FROOMLE_CLIENT_ID),
                client_secret: text("SANDBOX_FROOMLE_CLIENT_SECRET", DEFAULT_FROOMLE_CLIENT_SECRET),
            },
            limits: Limits {
                spotler: rate("SANDBOX_SPOTLER_RATE", defaults.spotler)?,
                ecomail: rate("SANDBOX_ECOMAIL_RATE", defaults.ecomail)?,
                voucherify: rate("SANDBOX_VOUCHERIFY_RATE", defaults.voucherify)?,
                voucherify_integration: rate("SANDBOX_VOUCHERIFY_INTEGRATION_RATE", defaults.voucherify_integration)?,
                bloomreach: rate("SANDBOX_BLOOMREACH_RATE", defaults.bloomreach)?,
                salesmanago: rate("SANDBOX_SALESMANAGO_RATE", defaults.salesmanago)?,
                froomle: rate("SANDBOX_FROOMLE_RATE", defaults.froomle)?,
            },
        })
    }
}

/// Parses `key:type,key:type` (types `string`, `number`, `boolean`, `date`).
fn parse_metadata_schema(value: &str) -> Result<BTreeMap<String, String>, String> {
    let mut schema = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let (key, kind) = entry
            .split_once(':')
            .ok_or_else(|| format!("entry {entry:?} is not key:type, e.g. loyalty_points:number"))?;
        let (key, kind) = (key.trim(), kind.trim().to_ascii_lowercase());
        if key.is_empty() {
            return Err(format!("entry {entry:?} has an empty key"));
        }
        if !VOUCHERIFY_METADATA_TYPES.contains(&kind.as_str()) {
            return Err(format!(
                "entry {entry:?} has an unknown type; expected one of {}",
                VOUCHERIFY_METADATA_TYPES.join(", ")
            ));
        }
        if schema.insert(key.to_owned(), kind).is_some() {
            return Err(format!("key {key:?} is defined twice"));
        }
    }
    Ok(schema)
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
    fn new_providers_default_to_the_documented_credentials_and_quotas() {
        let config = from_map(&[]).unwrap();
        assert_eq!(config.voucherify.app_id, DEFAULT_VOUCHERIFY_APP_ID);
        assert_eq!(config.voucherify.app_token, DEFAULT_VOUCHERIFY_APP_TOKEN);
        assert_eq!(config.voucherify_integration.hard_id, "registered");
        assert_eq!(config.voucherify_metadata_schema, default_voucherify_metadata_schema());
        assert_eq!(
            config
                .voucherify_metadata_schema
                .get("last_order_at")
                .map(String::as_str),
            Some("date")
        );
        assert_eq!(config.bloomreach.project_token, DEFAULT_BLOOMREACH_PROJECT_TOKEN);
        assert_eq!(config.salesmanago.owner, DEFAULT_SALESMANAGO_OWNER);
        assert_eq!(config.salesmanago.limit_mode, SalesmanagoLimitMode::Http429);
        assert_eq!(config.froomle.client_id, DEFAULT_FROOMLE_CLIENT_ID);
        assert_eq!(config.limits.voucherify, Some(Rate::per_hour(100)));
        assert_eq!(config.limits.voucherify_integration, Some(Rate::per_day(144_000)));
        assert_eq!(config.limits.bloomreach, Some(Rate::per_minute(6000)));
        assert_eq!(config.limits.salesmanago, Some(Rate::per_hour(1000)));
        assert_eq!(config.limits.froomle, None);
        assert_eq!(SandboxConfig::for_tests().voucherify, config.voucherify);
    }

    #[test]
    fn new_provider_variables_override_defaults() {
        let config = from_map(&[
            ("SANDBOX_VOUCHERIFY_APP_ID", "app"),
            ("SANDBOX_VOUCHERIFY_INTEGRATION_SECRET_KEY", "int-secret"),
            ("SANDBOX_VOUCHERIFY_HARD_ID", " customer_id "),
            ("SANDBOX_VOUCHERIFY_METADATA_SCHEMA", "tier:string, points:NUMBER"),
            ("SANDBOX_BLOOMREACH_PROJECT_TOKEN", "p-1"),
            ("SANDBOX_SALESMANAGO_API_SECRET", "sm"),
            ("SANDBOX_SALESMANAGO_LIMIT_MODE", "success_false"),
            ("SANDBOX_FROOMLE_CLIENT_SECRET", "fs"),
            ("SANDBOX_VOUCHERIFY_RATE", "600/min"),
            ("SANDBOX_FROOMLE_RATE", "50/s"),
            ("SANDBOX_BLOOMREACH_RATE", "off"),
        ])
        .unwrap();
        assert_eq!(config.voucherify.app_id, "app");
        assert_eq!(config.voucherify_integration.secret_key, "int-secret");
        assert_eq!(config.voucherify_integration.hard_id, "customer_id");
        assert_eq!(
            config.voucherify_metadata_schema.into_iter().collect::<Vec<_>>(),
            [
                ("points".to_owned(), "number".to_owned()),
                ("tier".to_owned(), "string".to_owned())
            ]
        );
        assert_eq!(config.bloomreach.project_token, "p-1");
        assert_eq!(config.salesmanago.api_secret, "sm");
        assert_eq!(config.salesmanago.limit_mode, SalesmanagoLimitMode::SuccessFalse);
        assert_eq!(config.froomle.client_secret, "fs");
        assert_eq!(config.limits.voucherify, Some(Rate::per_minute(600)));
        assert_eq!(config.limits.froomle, Some(Rate::per_second(50)));
        assert_eq!(config.limits.bloomreach, None);
    }

    #[test]
    fn invalid_new_settings_name_the_variable() {
        for (name, value) in [
            ("SANDBOX_VOUCHERIFY_METADATA_SCHEMA", "points"),
            ("SANDBOX_VOUCHERIFY_METADATA_SCHEMA", "points:integer"),
            ("SANDBOX_VOUCHERIFY_METADATA_SCHEMA", "a:string,a:number"),
            ("SANDBOX_VOUCHERIFY_METADATA_SCHEMA", ":string"),
            ("SANDBOX_SALESMANAGO_LIMIT_MODE", "drop"),
            ("SANDBOX_VOUCHERIFY_INTEGRATION_RATE", "many/d"),
        ] {
            let error = from_map(&[(name, value)]).unwrap_err();
            assert!(error.starts_with(&format!("{name}=")), "{error}");
        }
    }

    #[test]
    fn limit_modes_round_trip() {
        for mode in [SalesmanagoLimitMode::Http429, SalesmanagoLimitMode::SuccessFalse] {
            assert_eq!(mode.as_str().parse::<SalesmanagoLimitMode>(), Ok(mode));
            assert_eq!(
                serde_json::to_value(mode).ok(),
                Some(serde_json::Value::String(mode.to_string()))
            );
        }
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
