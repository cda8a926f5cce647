//! The start-up check of the Spotler account: fetch its contact properties
//! (`GET /contact/properties/list`) and refuse a field mapping that names a property the
//! account lacks or has with another type (see [`FieldMapping::check_spotler_account`]).
//!
//! While Spotler cannot be reached (network errors, 5xx, rate limits) the fetch is retried with
//! a growing delay (1 s doubling up to 1 min) until it answers or the worker is asked to stop;
//! then the mapping is validated. A refused mapping is [`StartError::Mapping`] (the binary
//! exits 64); Spotler refusing the call itself (e.g. 401 for wrong credentials) is
//! [`StartError::Spotler`].

use std::future::Future;
use std::time::Duration;

use api_client::CallError;
use provider_spotler::SpotlerClient;

use crate::mapping::FieldMapping;

/// The first delay between fetches.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay between fetches.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// Why the worker did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The field mapping does not fit the Spotler account (a usage error: exit 64).
    #[error("CONTACT_SYNC_MAPPING does not fit the Spotler account: {0}")]
    Mapping(String),
    /// Spotler refused the property list for good.
    #[error("cannot read the Spotler account's properties: {0}")]
    Spotler(String),
    /// The broker runtime or the setup failed.
    #[error(transparent)]
    Run(#[from] mq::worker::RunError),
}

/// Fetches the account's properties (retrying while Spotler is unreachable) and checks the
/// mapping against them. `Ok(false)` when `stop` completed first.
pub async fn check_spotler_account(
    client: &SpotlerClient,
    mapping: &FieldMapping,
    stop: impl Future<Output = ()>,
) -> Result<bool, StartError> {
    let fetch = async {
        let mut delay = FIRST_DELAY;
        loop {
            match client.properties().await {
                Ok(properties) => return Ok(properties),
                Err(CallError::Permanent(reason) | CallError::NotFound(reason)) => {
                    return Err(StartError::Spotler(reason));
                }
                Err(error @ (CallError::Retriable(_) | CallError::RateLimited { .. })) => {
                    tracing::warn!(
                        %error,
                        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "Spotler's property list is unavailable; retrying before the mapping can be checked."
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_DELAY);
                }
            }
        }
    };
    let properties = tokio::select! {
        fetched = fetch => fetched?,
        () = stop => return Ok(false),
    };
    mapping
        .check_spotler_account(&properties)
        .map_err(StartError::Mapping)?;
    tracing::info!(
        properties = properties.len(),
        "The field mapping fits the Spotler account's properties."
    );
    Ok(true)
}

impl mq::worker::ExitStatus for StartError {
    /// A mapping that does not fit the Spotler account is a configuration error (64).
    fn exit_code(&self) -> u8 {
        match self {
            Self::Mapping(_) => settings::EXIT_USAGE,
            _ => 1,
        }
    }
}
