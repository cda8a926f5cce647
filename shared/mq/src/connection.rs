//! Connecting to the broker: failover across the URLs of a cluster, backoff between rounds,
//! an explicit heartbeat so a half-open connection is noticed in seconds.

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use settings::{ExposeSecret, Secret};

use crate::MqError;

/// Heartbeat (seconds) added to URLs that do not set one: a dead peer is detected in about
/// 2 × this, instead of the 60 s the broker suggests.
pub const DEFAULT_HEARTBEAT_SECS: u16 = 10;

/// The URL with `heartbeat=10` added unless it sets one.
pub(crate) fn with_heartbeat(url: &str) -> String {
    with_default(url, "heartbeat", DEFAULT_HEARTBEAT_SECS)
}

/// The frame size connections ask for unless the URL sets `frame_max`. lapin keeps a buffer of
/// 32 frames per direction and connection: at RabbitMQ's default of 128 KiB that is 16 MiB for
/// a worker's two connections, most of an idle worker's memory. Messages are small (the body
/// limit is 256 KiB by default), and a body larger than a frame is simply sent in several, so
/// 16 KiB frames cost nothing and keep the buffers at 2 MiB in all.
pub const DEFAULT_FRAME_MAX: u32 = 16_384;

/// `url` with the query parameter `key=value` added unless it sets `key` itself.
fn with_default(url: &str, key: &str, value: impl std::fmt::Display) -> String {
    if url.contains(&format!("{key}=")) {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&{key}={value}")
    } else {
        format!("{url}?{key}={value}")
    }
}

/// The URL a connection is opened with: our heartbeat and frame size unless it sets them.
fn tuned(url: &str) -> String {
    with_default(&with_heartbeat(url), "frame_max", DEFAULT_FRAME_MAX)
}

/// The host part of a URL for logs (never the user or password).
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("amqp", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{host}")
}

/// Tries each URL once, in order, and returns the first connection that opens.
pub async fn connect_once(urls: &[Secret], name: &str) -> Result<Connection, MqError> {
    let mut errors = Vec::new();
    for url in urls {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let attempt = tokio::time::timeout(
            Duration::from_secs(15),
            Connection::connect(&tuned(url.expose_secret()), properties),
        )
        .await;
        match attempt {
            Ok(Ok(connection)) => return Ok(connection),
            Ok(Err(error)) => errors.push(format!("{}: {error}", redact(url.expose_secret()))),
            Err(_) => errors.push(format!("{}: timed out after 15s", redact(url.expose_secret()))),
        }
    }
    Err(MqError::Connect(errors.join("; ")))
}

/// The longest pause between two connection rounds, jitter included.
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(4);

/// Backoff between connection rounds: 200 ms doubling to 2 s, plus up to as much again in
/// jitter, so never more than [`MAX_RECONNECT_DELAY`]. A connection attempt is one cheap TCP
/// connect per URL, and a short cap means a worker is back within seconds of the broker (or
/// the network) returning: the fault matrix asks for a reconnect within 5 s of a cut ending
/// (row 8). backon's jitter adds up to 100% on top of the capped delay, so the cap handed to
/// it is half the bound.
pub fn reconnect_delays() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(MAX_RECONNECT_DELAY / 2)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .map(|delay| delay.min(MAX_RECONNECT_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_credentials_and_path() {
        assert_eq!(
            redact("amqp://guest:s3cret@rabbit:5672/%2f?heartbeat=5"),
            "amqp://rabbit:5672"
        );
        assert_eq!(redact("amqps://host"), "amqps://host");
    }

    #[test]
    fn heartbeat_is_added_once() {
        assert_eq!(with_heartbeat("amqp://h/%2f"), "amqp://h/%2f?heartbeat=10");
        assert_eq!(
            with_heartbeat("amqp://h/%2f?frame_max=8192"),
            "amqp://h/%2f?frame_max=8192&heartbeat=10"
        );
        assert_eq!(with_heartbeat("amqp://h/%2f?heartbeat=5"), "amqp://h/%2f?heartbeat=5");
        assert_eq!(tuned("amqp://h/%2f"), "amqp://h/%2f?heartbeat=10&frame_max=16384");
        assert_eq!(
            tuned("amqp://h/%2f?frame_max=4096"),
            "amqp://h/%2f?frame_max=4096&heartbeat=10"
        );
    }

    #[test]
    fn reconnect_delays_are_capped_jitter_included() {
        let delays: Vec<Duration> = reconnect_delays().take(200).collect();
        assert!(delays.iter().all(|d| *d <= MAX_RECONNECT_DELAY), "{delays:?}");
        assert!(delays[0] >= Duration::from_millis(200), "{delays:?}");
        assert!(delays[20..].iter().all(|d| *d >= MAX_RECONNECT_DELAY / 2), "{delays:?}");
    }
}
