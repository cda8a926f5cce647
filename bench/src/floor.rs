//! The floor every worker figure is divided by: a no-op relay written directly with lapin.
//!
//! This is the one place besides `shared/mq` that uses lapin, on purpose: the floor must not
//! depend on our runtime, or a slow runtime would lower the floor with it and the ratio would
//! flatter the workers. The relay does what a worker does minus the work: consume from the same
//! quorum work queue at the same prefetch, publish a result (`mandatory`, persistent) on a
//! second connection, and ack the input as soon as that publish is confirmed. Acks run
//! concurrently with consuming, in a task of their own: confirms arrive in publish order, so
//! that task awaits them in order and acks every confirmed run of deliveries with one
//! `multiple` ack as soon as it has caught up (at least every [`ACK_BATCH`] deliveries). A
//! publish that is not confirmed gets its input nacked (requeued) on its own.

use anyhow::{Context as _, Result};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Acker, BasicProperties, Connection, PublisherConfirm};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::amqp;

/// The routing key the relay publishes its results with (the observer queue is bound to it).
pub(crate) const RESULT_KIND: &str = crate::harness::CONTACT_SYNCED;

/// A running relay; dropping it without [`Relay::stop`] leaves its connections to the broker.
#[derive(Debug)]
pub(crate) struct Relay {
    consume: Connection,
    publish: Connection,
    task: JoinHandle<Result<()>>,
    acks: JoinHandle<()>,
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
        let (settle, settled) = mpsc::unbounded_channel();
        let acks = tokio::spawn(settle_in_order(settled));
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
                if settle.send((confirm, delivery.acker)).is_err() {
                    break;
                }
            }
            Ok(())
        });
        Ok(Self {
            consume,
            publish,
            task,
            acks,
        })
    }

    /// Stops relaying and closes both connections (unacked deliveries go back to the queue).
    pub(crate) async fn stop(self) -> Result<()> {
        self.task.abort();
        self.acks.abort();
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

/// The most deliveries one `multiple` ack covers.
pub(crate) const ACK_BATCH: usize = 64;

/// Awaits each confirm in publish (= delivery) order and acks what was confirmed. Every tag
/// below an acked one is settled already (acked before, or nacked on its own), so a `multiple`
/// ack never covers a delivery whose result was not confirmed.
async fn settle_in_order(mut settled: mpsc::UnboundedReceiver<(PublisherConfirm, Acker)>) {
    let mut last_confirmed: Option<Acker> = None;
    let mut batched = 0;
    while let Some((confirm, acker)) = settled.recv().await {
        let confirmed = match confirm.await {
            Ok(confirmation) => amqp::check_confirmation(confirmation).is_ok(),
            Err(_) => false,
        };
        // An ack or nack that fails means the channel is gone; the broker requeues.
        if confirmed {
            last_confirmed = Some(acker);
            batched += 1;
        } else {
            if let Some(previous) = last_confirmed.take() {
                let _acked = previous.ack(BasicAckOptions { multiple: true }).await;
            }
            batched = 0;
            let _nacked = acker
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                })
                .await;
        }
        if (settled.is_empty() || batched >= ACK_BATCH)
            && let Some(last) = last_confirmed.take()
        {
            let _acked = last.ack(BasicAckOptions { multiple: true }).await;
            batched = 0;
        }
    }
}
