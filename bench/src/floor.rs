//! The floor every worker figure is divided by: a no-op relay written directly with lapin.
//!
//! This is the one place besides `shared/mq` that uses lapin, on purpose: the floor must not
//! depend on our runtime, or a slow runtime would lower the floor with it and the ratio would
//! flatter the workers. The relay does what a worker does minus the work: consume from the same
//! quorum work queue at the same prefetch, publish a result (`mandatory`, persistent) on a
//! second connection, and ack the input as soon as that publish is confirmed. Acks run
//! concurrently (one small task per delivery), so a slow confirm never holds up the next
//! delivery.

use anyhow::{Context as _, Result};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Connection};
use tokio::task::JoinHandle;

use crate::amqp;

/// The routing key the relay publishes its results with (the observer queue is bound to it).
pub(crate) const RESULT_KIND: &str = "contact.synced";

/// A running relay; dropping it without [`Relay::stop`] leaves its connections to the broker.
#[derive(Debug)]
pub(crate) struct Relay {
    consume: Connection,
    publish: Connection,
    task: JoinHandle<Result<()>>,
}

impl Relay {
    /// Starts relaying `queue` to `exchange` with `prefetch` unacked deliveries.
    pub(crate) async fn start(url: &str, queue: &str, exchange: &str, prefetch: u16) -> Result<Self> {
        let consume = amqp::connect(url, "bench floor consume").await?;
        let publish = amqp::connect(url, "bench floor publish").await?;
        let input = consume.create_channel().await?;
        input.basic_qos(prefetch, BasicQosOptions::default()).await?;
        let output = amqp::confirm_channel(&publish).await?;
        let mut consumer = input
            .basic_consume(
                queue.into(),
                "bench-floor".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("cannot consume `{queue}`"))?;
        let exchange = ShortString::from(exchange);
        let task = tokio::spawn(async move {
            // Holds the consuming channel open while the relay runs.
            let _input = input;
            while let Some(delivery) = consumer.next().await {
                let delivery = delivery?;
                let id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| format!("{}:floor", id.as_str()))
                    .unwrap_or_default();
                let properties = BasicProperties::default()
                    .with_content_type(ShortString::from("application/json"))
                    .with_delivery_mode(2)
                    .with_message_id(ShortString::from(id))
                    .with_type(ShortString::from(RESULT_KIND));
                let confirm = output
                    .basic_publish(
                        exchange.clone(),
                        RESULT_KIND.into(),
                        BasicPublishOptions {
                            mandatory: true,
                            immediate: false,
                        },
                        &delivery.data,
                        properties,
                    )
                    .await?;
                tokio::spawn(async move {
                    let confirmed = match confirm.await {
                        Ok(confirmation) => amqp::check_confirmation(confirmation).is_ok(),
                        Err(_) => false,
                    };
                    // An ack or nack that fails means the channel is gone; the broker requeues.
                    let _settled = if confirmed {
                        delivery.acker.ack(BasicAckOptions::default()).await
                    } else {
                        delivery
                            .acker
                            .nack(BasicNackOptions {
                                multiple: false,
                                requeue: true,
                            })
                            .await
                    };
                });
            }
            Ok(())
        });
        Ok(Self { consume, publish, task })
    }

    /// Stops relaying and closes both connections (unacked deliveries go back to the queue).
    pub(crate) async fn stop(self) -> Result<()> {
        self.task.abort();
        let finished = self.task.await;
        let _closed = self.consume.close(200, "bench done".into()).await;
        let _closed = self.publish.close(200, "bench done".into()).await;
        match finished {
            Ok(result) => result,
            // Aborted while running: the normal way to stop.
            Err(error) if error.is_cancelled() => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}
