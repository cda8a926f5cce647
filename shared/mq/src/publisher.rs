//! Confirmed publishing: `mandatory`, persistent, and a publish counts only once the broker
//! acked it and did not return it.

use std::time::Duration;

use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};

use crate::MqError;

/// How long to wait for a confirm before treating the outcome as unknown.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// A channel in confirm mode.
#[derive(Debug, Clone)]
pub struct Publisher {
    channel: Channel,
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Publication<'a> {
    /// Exchange (`""` for the default exchange).
    pub exchange: &'a str,
    /// Routing key.
    pub routing_key: &'a str,
    /// Body.
    pub body: &'a [u8],
    /// Properties (headers, message id, type, …).
    pub properties: BasicProperties,
}

impl Publisher {
    /// Opens a channel on `connection` and enables publisher confirms.
    pub async fn open(connection: &Connection) -> Result<Self, MqError> {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Self { channel })
    }

    /// Whether the channel is still usable.
    pub fn is_connected(&self) -> bool {
        self.channel.status().connected()
    }

    /// Publishes all messages, then waits for every confirm. Fails if any is nacked, returned
    /// (unroutable) or not confirmed within [`CONFIRM_TIMEOUT`].
    pub async fn publish_all(&self, publications: Vec<Publication<'_>>) -> Result<(), MqError> {
        let mut pending = Vec::with_capacity(publications.len());
        for publication in publications {
            let confirm = self
                .channel
                .basic_publish(
                    publication.exchange.into(),
                    publication.routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    publication.body,
                    publication.properties,
                )
                .await?;
            pending.push((publication.routing_key, confirm));
        }
        for (routing_key, confirm) in pending {
            let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await.map_err(|_| {
                MqError::NotConfirmed(format!("no confirm for `{routing_key}` within {CONFIRM_TIMEOUT:?}"))
            })??;
            match confirmation {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(returned)) => {
                    return Err(MqError::NotConfirmed(format!(
                        "`{routing_key}` returned as unroutable: {}",
                        returned.reply_text
                    )));
                }
                Confirmation::Nack(_) => {
                    return Err(MqError::NotConfirmed(format!("`{routing_key}` nacked by the broker")));
                }
                Confirmation::NotRequested => {
                    return Err(MqError::NotConfirmed(
                        "confirms are not enabled on the channel".to_owned(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Properties of a JSON message: persistent, with id, type, timestamp and headers.
pub fn json_properties(
    message_id: &str,
    kind: &str,
    correlation_id: Option<&str>,
    headers: FieldTable,
) -> BasicProperties {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut properties = BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(message_id))
        .with_type(ShortString::from(kind))
        .with_timestamp(u64::try_from(now).unwrap_or_default())
        .with_headers(headers);
    if let Some(correlation_id) = correlation_id {
        properties = properties.with_correlation_id(ShortString::from(correlation_id));
    }
    properties
}
