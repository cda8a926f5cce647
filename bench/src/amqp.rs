//! Broker plumbing of the load generator: connections, fast publishing with pipelined
//! publisher confirms, an observer that timestamps every result as it arrives, and queue
//! inspection.
//!
//! The load generator must never be the bottleneck: publishes are pipelined (a window of
//! unconfirmed messages, not one round trip each), and the observer consumes with `no_ack` on
//! its own connection and only records `(instant, message id)`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongLongInt, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How many publishes may wait for their confirm at once.
pub(crate) const CONFIRM_WINDOW: usize = 2_000;

/// Opens a connection named `name` (shown in the management UI).
pub(crate) async fn connect(url: &str, name: &str) -> Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, properties)
        .await
        .with_context(|| format!("cannot connect to the broker ({})", mq::connection::redact(url)))
}

/// A channel in confirm mode.
pub(crate) async fn confirm_channel(connection: &Connection) -> Result<Channel> {
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(channel)
}

/// One message for the load generator.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// AMQP `message_id`.
    pub(crate) id: String,
    /// Routing key and `type`.
    pub(crate) kind: &'static str,
    /// JSON body.
    pub(crate) body: Vec<u8>,
}

/// Header carrying the publish time (µs since the Unix epoch) of latency probes.
pub(crate) const PUBLISHED_AT_HEADER: &str = "x-bench-published-at-us";

/// Properties like those of an upstream system: persistent JSON with id, type and timestamp.
pub(crate) fn properties(message: &Message, published_at_us: Option<i64>) -> BasicProperties {
    let now = time::OffsetDateTime::now_utc();
    let mut headers = FieldTable::default();
    if let Some(us) = published_at_us {
        headers.insert(
            ShortString::from(PUBLISHED_AT_HEADER),
            AMQPValue::LongLongInt(LongLongInt::from(us)),
        );
    }
    BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_delivery_mode(2)
        .with_message_id(ShortString::from(message.id.as_str()))
        .with_type(ShortString::from(message.kind))
        .with_timestamp(u64::try_from(now.unix_timestamp()).unwrap_or_default())
        .with_headers(headers)
}

/// Microseconds since the Unix epoch, now.
pub(crate) fn unix_micros() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// Fails unless the broker acked the message and did not return it.
pub(crate) fn check_confirmation(confirmation: Confirmation) -> Result<()> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => bail!("a publish was returned as unroutable: {}", returned.reply_text),
        Confirmation::Nack(_) => bail!("a publish was nacked by the broker"),
        Confirmation::NotRequested => bail!("confirms are not enabled on the channel"),
    }
}

/// Publishes `message` with `mandatory` (stamped with `published_at_us` if given); the future
/// resolves once lapin has written it, with the confirm to wait for.
fn publish<'a>(
    channel: &'a Channel,
    exchange: &str,
    message: &'a Message,
    published_at_us: Option<i64>,
) -> impl Future<Output = lapin::Result<PublisherConfirm>> + 'a {
    channel.basic_publish(
        exchange.into(),
        message.kind.into(),
        BasicPublishOptions {
            mandatory: true,
            immediate: false,
        },
        &message.body,
        properties(message, published_at_us),
    )
}

/// Publishes with `mandatory` and a window of [`CONFIRM_WINDOW`] unconfirmed messages.
/// Returns the instant each confirm arrived, in order (the raw-publish floor plots them).
pub(crate) async fn publish_all(
    channel: &Channel,
    exchange: &str,
    messages: impl IntoIterator<Item = Message>,
) -> Result<Vec<Instant>> {
    let mut pending: VecDeque<PublisherConfirm> = VecDeque::with_capacity(CONFIRM_WINDOW);
    let mut confirmed = Vec::new();
    for message in messages {
        if pending.len() >= CONFIRM_WINDOW
            && let Some(oldest) = pending.pop_front()
        {
            check_confirmation(oldest.await?)?;
            confirmed.push(Instant::now());
        }
        pending.push_back(publish(channel, exchange, &message, None).await?);
    }
    for confirm in pending {
        check_confirmation(confirm.await?)?;
        confirmed.push(Instant::now());
    }
    Ok(confirmed)
}

/// The end (exclusive) of the run of messages from `index` on that are due at `now` when
/// message `i` is due at `start + i × interval`: at least one, at most `total`.
fn due_through(start: Instant, interval: Duration, index: usize, total: usize, now: Instant) -> usize {
    let mut end = index + 1;
    while end < total && start + interval.mul_f64(end as f64) <= now {
        end += 1;
    }
    end.min(total)
}

/// One message seen by an [`Observer`].
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// When it arrived.
    pub(crate) at: Instant,
    /// Its `message_id` (empty when it had none).
    pub(crate) message_id: String,
}

/// Consumes a queue with `no_ack` and records when each message arrived.
#[derive(Debug)]
pub(crate) struct Observer {
    channel: Channel,
    seen: Arc<Mutex<Vec<Seen>>>,
    count: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Observer {
    /// Starts consuming `queue` on `connection` (use a connection of its own).
    pub(crate) async fn start(connection: &Connection, queue: &str) -> Result<Self> {
        let channel = connection.create_channel().await?;
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                "bench-observer".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("cannot consume the observer queue `{queue}`"))?;
        let seen = Arc::new(Mutex::new(Vec::with_capacity(1 << 16)));
        let count = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let seen = Arc::clone(&seen);
            let count = Arc::clone(&count);
            async move {
                while let Some(Ok(delivery)) = consumer.next().await {
                    let at = Instant::now();
                    let message_id = delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|id| id.as_str().to_owned())
                        .unwrap_or_default();
                    seen.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Seen { at, message_id });
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(Self {
            channel,
            seen,
            count,
            task,
        })
    }

    /// Messages seen so far.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Waits until `want` messages were seen, or `timeout` passed (then returns `false`). It
    /// gives up early when nothing arrived for 30 s.
    pub(crate) async fn wait_for(&self, want: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut last = self.count();
        let mut last_change = Instant::now();
        loop {
            let now = self.count();
            if now >= want {
                return true;
            }
            if now != last {
                last = now;
                last_change = Instant::now();
            }
            if Instant::now() >= deadline || last_change.elapsed() > Duration::from_secs(30) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Takes what was seen so far (the observer keeps running).
    pub(crate) fn take(&self) -> Vec<Seen> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        self.count.store(0, Ordering::Relaxed);
        // The next run starts with as much room, so the observer does not stop to grow it.
        let room = Vec::with_capacity(seen.capacity());
        std::mem::replace(&mut *seen, room)
    }

    /// Stops consuming and closes the channel, so no later observer of the queue competes
    /// with a leftover consumer.
    pub(crate) async fn stop(self) {
        self.task.abort();
        if self.channel.status().connected() {
            let _closed = self.channel.close(200, "observed".into()).await;
        }
    }
}

/// `(ready messages, consumers)` of a queue; `None` when it does not exist.
pub(crate) async fn queue_state(connection: &Connection, queue: &str) -> Result<Option<(u32, u32)>> {
    let channel = connection.create_channel().await?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let state = match channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
    {
        Ok(queue) => Some((queue.message_count(), queue.consumer_count())),
        Err(_) => None,
    };
    if channel.status().connected() {
        channel.close(200, "inspected".into()).await?;
    }
    Ok(state)
}

/// Waits until `queue` has at least `consumers` consumers.
pub(crate) async fn wait_for_consumers(
    connection: &Connection,
    queue: &str,
    consumers: u32,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some((_, n)) = queue_state(connection, queue).await?
            && n >= consumers
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("`{queue}` did not get {consumers} consumer(s) within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes `messages` at `rate` per second (each stamped with [`PUBLISHED_AT_HEADER`]) and
/// returns the instant each was handed to the broker, in order. Confirms are awaited in a
/// window so the pacing never waits on the broker.
pub(crate) async fn publish_paced(
    channel: &Channel,
    exchange: &str,
    messages: Vec<Message>,
    rate: f64,
) -> Result<Vec<Instant>> {
    if rate <= 0.0 {
        bail!("the publish rate must be above 0, got {rate}");
    }
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let total = messages.len();
    let mut published = Vec::with_capacity(total);
    let mut pending: VecDeque<PublisherConfirm> = VecDeque::with_capacity(CONFIRM_WINDOW);
    let mut messages = messages.into_iter();
    let mut index = 0usize;
    while index < total {
        let due = start + interval.mul_f64(index as f64);
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        // Every message due by now goes out together: each publish is handed to lapin's I/O
        // thread, and one hand-off for the messages of a timer tick (the timer's resolution is
        // a millisecond) instead of one each keeps the load generator's cost off the machine
        // the workers share with it. Each message's publish time is still its own.
        let end = due_through(start, interval, index, total, Instant::now());
        let batch: Vec<Message> = messages.by_ref().take(end - index).collect();
        index = end;
        while pending.len() + batch.len() > CONFIRM_WINDOW
            && let Some(oldest) = pending.pop_front()
        {
            check_confirmation(oldest.await?)?;
        }
        let publishes: Vec<_> = batch
            .iter()
            .map(|message| {
                published.push(Instant::now());
                publish(channel, exchange, message, Some(unix_micros()))
            })
            .collect();
        for confirm in futures_util::future::join_all(publishes).await {
            pending.push_back(confirm?);
        }
    }
    for confirm in pending {
        check_confirmation(confirm.await?)?;
    }
    Ok(published)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_timer_tick_publishes_every_message_due_by_then() {
        let start = Instant::now();
        let interval = Duration::from_micros(250);
        // At the start only the first is due; the one waited for always goes.
        assert_eq!(due_through(start, interval, 0, 100, start), 1);
        // A millisecond later, messages 1 to 4 (due at 0.25 … 1.0 ms).
        assert_eq!(
            due_through(start, interval, 1, 100, start + Duration::from_millis(1)),
            5
        );
        // Never past the last message.
        assert_eq!(
            due_through(start, interval, 98, 100, start + Duration::from_secs(1)),
            100
        );
        // A late wake-up catches up on everything due, in one batch.
        assert_eq!(
            due_through(start, interval, 5, 100, start + Duration::from_millis(5)),
            21
        );
    }
}
