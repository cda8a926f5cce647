//! The consumer loop: one session (a consuming and a publishing connection) at a time,
//! reconnecting with backoff when it is lost; deliveries handled concurrently up to the
//! prefetch; validation before the handler; every outcome published with confirms before the
//! input is acked; graceful drain on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use messages::{Invalid, Schemas};
use settings::{ConfigError, MqConfig, Strings};
use telemetry::Health;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::MqError;
use crate::acks::Settler;
use crate::connection::{connect_once, reconnect_delays};
use crate::headers;
use crate::metrics::MqMetrics;
use crate::outcome::{Action, ErrorClass, FailureKind, Outcome, RetryPolicy, plan};
use crate::publisher::{Publication, Publisher};
use crate::topology::{self, Names, WorkerTopology};

/// A validated message handed to a handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// AMQP `message_id`: the idempotency key.
    pub message_id: String,
    /// Message type (routing key).
    pub kind: String,
    /// Correlation id to carry to results.
    pub correlation_id: Option<String>,
    /// Attempt number, starting at 1.
    pub attempt: u32,
    /// Destinations still to do; empty means all.
    pub scope: Vec<String>,
    /// Whether the broker flagged it as possibly seen before.
    pub redelivered: bool,
    /// Whether a retriable failure of this attempt will be dead-lettered as `exhausted`
    /// (handlers publish their final failure results then).
    pub last_attempt: bool,
    /// The body, already validated against the schema of `kind`.
    pub body: serde_json::Value,
}

impl Incoming {
    /// Whether `destination` is still to do.
    pub fn wants(&self, destination: &str) -> bool {
        self.scope.is_empty() || self.scope.iter().any(|s| s == destination)
    }

    /// The body as `T`, read from the parsed JSON in place (no copy of the tree).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.body)
    }
}

/// A worker's message handler. It never acks; it returns an [`Outcome`].
pub trait Handler: Send + Sync + 'static {
    /// Handles one validated message.
    fn handle(&self, message: Incoming) -> impl Future<Output = Outcome> + Send;
}

/// What a worker consumes and how it retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSpec {
    /// Queues and bindings.
    pub topology: WorkerTopology,
    /// Attempts before `exhausted`.
    pub max_attempts: u32,
    /// Prefetch (unacked deliveries in flight), which is also the handling concurrency.
    pub prefetch: u16,
    /// How long shutdown waits for in-flight work.
    pub drain_deadline: Duration,
    /// The longest a handler may hold a delivery (well under the broker's consumer timeout).
    pub max_hold: Duration,
}

/// How long a session's end waits for the last acks to be written.
const ACK_FLUSH_DEADLINE: Duration = Duration::from_secs(5);

/// Default delay tiers.
pub const DEFAULT_TIERS: &str = "1s,10s,1m,10m,1h";

impl WorkerSpec {
    /// Reads `SWITCHYARD_RETRY_TIERS` (default `1s,10s,1m,10m,1h`), `SWITCHYARD_MAX_ATTEMPTS`
    /// (5), `SWITCHYARD_DELIVERY_LIMIT` (10), `SWITCHYARD_PREFETCH` (`default_prefetch`),
    /// `SWITCHYARD_DRAIN_DEADLINE` (20s) and `SWITCHYARD_MAX_HOLD` (60s).
    pub fn from_strings(
        strings: &dyn Strings,
        worker: &str,
        routing_keys: &[&str],
        default_prefetch: u16,
    ) -> Result<Self, ConfigError> {
        let tiers = settings::parse(strings, "SWITCHYARD_RETRY_TIERS", parse_tiers)?
            .unwrap_or_else(|| parse_tiers(DEFAULT_TIERS).unwrap_or_default());
        let max_attempts = settings::parse_or(strings, "SWITCHYARD_MAX_ATTEMPTS", 5u32)?;
        if max_attempts == 0 {
            return Err(ConfigError::invalid("SWITCHYARD_MAX_ATTEMPTS", "must be at least 1"));
        }
        let delivery_limit = settings::parse_or(strings, "SWITCHYARD_DELIVERY_LIMIT", 10u32)?;
        if delivery_limit == 0 {
            return Err(ConfigError::invalid("SWITCHYARD_DELIVERY_LIMIT", "must be at least 1"));
        }
        let prefetch = settings::parse_or(strings, "SWITCHYARD_PREFETCH", default_prefetch)?;
        if prefetch == 0 {
            return Err(ConfigError::invalid(
                "SWITCHYARD_PREFETCH",
                "must be at least 1 (0 would mean unbounded)",
            ));
        }
        let drain_deadline = settings::duration_or(strings, "SWITCHYARD_DRAIN_DEADLINE", Duration::from_secs(20))?;
        let max_hold = settings::duration_or(strings, "SWITCHYARD_MAX_HOLD", Duration::from_secs(60))?;
        if max_hold > Duration::from_secs(25 * 60) {
            return Err(ConfigError::invalid(
                "SWITCHYARD_MAX_HOLD",
                "must stay well under the broker's consumer timeout (30 min by default); use at most 25m",
            ));
        }
        Ok(Self {
            topology: WorkerTopology {
                worker: worker.to_owned(),
                routing_keys: routing_keys.iter().map(|k| (*k).to_owned()).collect(),
                tiers,
                delivery_limit,
            },
            max_attempts,
            prefetch,
            drain_deadline,
            max_hold,
        })
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            tiers: self.topology.tiers.clone(),
            max_attempts: self.max_attempts,
        }
    }
}

/// Parses `1s,10s,1m`: strictly increasing, at least one.
pub fn parse_tiers(raw: &str) -> Result<Vec<Duration>, String> {
    let mut tiers = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let delay = settings::parse_duration(part)?;
        if delay.is_zero() {
            return Err(format!("tier `{part}` must be longer than 0"));
        }
        if tiers.last().is_some_and(|last| *last >= delay) {
            return Err(format!(
                "tiers must grow strictly, `{part}` does not; e.g. `1s,10s,1m,10m,1h`"
            ));
        }
        tiers.push(delay);
    }
    if tiers.is_empty() {
        return Err("at least one delay tier is needed, e.g. `1s,10s,1m,10m,1h`".to_owned());
    }
    Ok(tiers)
}

/// Everything the loop needs besides the handler.
#[derive(Debug, Clone)]
pub struct Context {
    /// Broker settings.
    pub mq: MqConfig,
    /// The worker.
    pub spec: WorkerSpec,
    /// Compiled schemas.
    pub schemas: Arc<Schemas>,
    /// Metrics.
    pub metrics: MqMetrics,
    /// Health flags for `/readyz`.
    pub health: Health,
}

/// Waits for SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ctrl_c = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ctrl_c = tokio::signal::ctrl_c().await;
    }
}

enum SessionEnd {
    Shutdown,
    Lost(String),
}

/// Runs the worker until `shutdown` completes: consumes, handles, publishes, acks; reconnects
/// after connection loss. Returns `Ok` after a graceful stop, `Err` only for what retrying
/// cannot fix (a topology mismatch).
pub async fn run<H: Handler>(
    context: Context,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MqError> {
    // The sessions run as a task of the runtime, not on the thread awaiting `run` (in a
    // worker's `main`, the thread blocked in `block_on`, outside the runtime's workers): then
    // a delivery's task starts on the worker thread that received it and its completion wakes
    // nobody else, instead of a wake-up of the main thread for every delivery and every
    // finished task.
    match tokio::spawn(sessions(context, handler, shutdown)).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Cancelled: the runtime is shutting down.
        Err(_) => Ok(()),
    }
}

async fn sessions<H: Handler>(
    context: Context,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MqError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _sent = stop_tx.send(true);
    });
    let names = Names::new(&context.mq.namespace);
    let worker = context.spec.topology.worker.clone();
    let mut delays = reconnect_delays();
    loop {
        if *stop_rx.borrow() {
            return Ok(());
        }
        match session(&context, &names, &handler, stop_rx.clone()).await {
            Ok(SessionEnd::Shutdown) => {
                info!(worker, "Worker stopped.");
                return Ok(());
            }
            Ok(SessionEnd::Lost(_)) => {
                // The loss itself was logged by the session when it happened.
                debug!(worker, "Reconnecting after a lost session.");
                delays = reconnect_delays();
            }
            Err(MqError::TopologyMismatch(text)) => {
                error!(worker, error = %text, "Broker topology differs from what this worker declares.");
                return Err(MqError::TopologyMismatch(text));
            }
            Err(error) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(30));
                warn!(worker, %error, retry_in_ms = delay.as_millis() as u64, "Cannot start a broker session.");
                let mut stop = stop_rx.clone();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                }
            }
        }
    }
}

async fn session<H: Handler>(
    context: &Context,
    names: &Names,
    handler: &Arc<H>,
    mut stop: watch::Receiver<bool>,
) -> Result<SessionEnd, MqError> {
    let worker = &context.spec.topology.worker;
    // Separate connections: flow control on the publishing one must not stall consumer acks.
    let label = if context.mq.namespace.is_empty() {
        worker.clone()
    } else {
        format!("{worker} [{}]", context.mq.namespace)
    };
    let consume_conn = connect_once(&context.mq.urls, &format!("{label} consume")).await?;
    let publish_conn = connect_once(&context.mq.urls, &format!("{label} publish")).await?;
    topology::declare(&publish_conn, names, std::slice::from_ref(&context.spec.topology)).await?;
    let publisher = Publisher::open(&publish_conn).await?;
    let channel = consume_conn.create_channel().await?;
    channel
        .basic_qos(context.spec.prefetch, BasicQosOptions::default())
        .await?;
    let queue = names.work_queue(worker);
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            worker.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    context.metrics.connections.with_label_values(&[worker]).inc();
    context.health.set_ready(true);
    info!(worker, queue, prefetch = context.spec.prefetch, "Consuming.");

    let (settler, settling) = Settler::start(context.spec.prefetch);
    let shared = Arc::new(Shared {
        context: context.clone(),
        settler: settler.clone(),
        policy: context.spec.retry_policy(),
        exchange: names.exchange(),
        dead_exchange: names.dead_exchange(),
        tier_queues: context
            .spec
            .topology
            .tiers
            .iter()
            .map(|d| names.tier_queue(worker, *d))
            .collect(),
        publisher,
        lost: Notify::new(),
    });
    let mut tasks = JoinSet::new();
    let end = loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break SessionEnd::Shutdown,
            () = shared.lost.notified() => break SessionEnd::Lost("publishing channel closed".to_owned()),
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            next = consumer.next() => match next {
                Some(Ok(delivery)) => {
                    settler.delivered(delivery.delivery_tag);
                    let shared = Arc::clone(&shared);
                    let handler = Arc::clone(handler);
                    tasks.spawn(async move { process(&shared, handler.as_ref(), delivery).await });
                }
                Some(Err(error)) => break SessionEnd::Lost(error.to_string()),
                None => break SessionEnd::Lost("consumer cancelled by the broker".to_owned()),
            },
        }
    };
    context.health.set_ready(false);
    if let SessionEnd::Lost(reason) = &end {
        // Logged when it happens, not after the drain below: a hung handler can hold the drain
        // for up to SWITCHYARD_DRAIN_DEADLINE, and operators need to see the loss at once.
        warn!(
            worker,
            error = %reason,
            in_flight = tasks.len(),
            "Broker session lost; finishing in-flight work, then reconnecting."
        );
    }
    if matches!(end, SessionEnd::Shutdown) {
        // Stop new deliveries; what was prefetched but not started is requeued on close.
        let _cancelled = channel
            .basic_cancel(worker.as_str().into(), BasicCancelOptions::default())
            .await;
        info!(worker, in_flight = tasks.len(), "Draining in-flight work.");
    }
    let deadline = Instant::now() + context.spec.drain_deadline;
    while !tasks.is_empty() {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(_) => {}
            Err(_) => {
                warn!(
                    worker,
                    left = tasks.len(),
                    "Drain deadline passed; unfinished deliveries go back to the queue."
                );
                tasks.abort_all();
                break;
            }
        }
    }
    // Acks what finished before the channel closes; the rest goes back to the queue. Bounded:
    // on a channel that died without telling, an ack could wait for nothing.
    let flushed = tokio::time::timeout(ACK_FLUSH_DEADLINE, settler.finish()).await;
    if flushed.is_err() {
        warn!(
            worker,
            "Acks not flushed in time; the broker redelivers what they covered."
        );
    }
    settling.abort();
    close(&consume_conn).await;
    close(&publish_conn).await;
    Ok(end)
}

async fn close(connection: &Connection) {
    if connection.status().connected() {
        let _closed = tokio::time::timeout(Duration::from_secs(5), connection.close(200, "bye".into())).await;
    }
}

struct Shared {
    context: Context,
    policy: RetryPolicy,
    /// Names resolved once per session so publishing allocates none.
    exchange: String,
    dead_exchange: String,
    tier_queues: Vec<String>,
    publisher: Publisher,
    settler: Settler,
    lost: Notify,
}

/// What a delivery says about itself before validation.
struct Envelope {
    message_id: Option<String>,
    kind: String,
    attempt: u32,
    scope: Vec<String>,
    original_routing_key: String,
}

fn envelope(delivery: &Delivery) -> Envelope {
    let props = &delivery.properties;
    let table = props.headers().as_ref();
    let kind = props
        .kind()
        .as_ref()
        .map(|k| k.as_str().to_owned())
        .unwrap_or_else(|| delivery.routing_key.as_str().to_owned());
    let attempt = headers::get_int(table, headers::ATTEMPT)
        .and_then(|a| u32::try_from(a).ok())
        .filter(|a| *a > 0);
    let scope = headers::get_str(table, headers::SCOPE)
        .map(|s| s.split(',').filter(|p| !p.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    Envelope {
        message_id: props
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_owned())
            .filter(|m| !m.is_empty()),
        original_routing_key: headers::get_str(table, headers::ORIGINAL_ROUTING_KEY)
            .unwrap_or_else(|| delivery.routing_key.as_str().to_owned()),
        kind,
        attempt: attempt.unwrap_or(1),
        scope,
    }
}

fn type_label(kind: &str) -> &str {
    messages::catalog::find(kind).map_or("unknown", |spec| spec.kind)
}

async fn process<H: Handler>(shared: &Shared, handler: &H, delivery: Delivery) {
    let envelope = envelope(&delivery);
    let span = info_span!(
        "delivery",
        message_id = envelope.message_id.as_deref().unwrap_or("-"),
        r#type = %envelope.kind,
        attempt = envelope.attempt,
    );
    async {
        let context = &shared.context;
        let worker = context.spec.topology.worker.as_str();
        let started = Instant::now();
        let in_flight = context.metrics.in_flight.with_label_values(&[worker]);
        in_flight.inc();
        let outcome = validate_and_handle(shared, handler, &delivery, &envelope).await;
        let actions = plan(&outcome, envelope.attempt, &shared.policy);
        let publications = publications(shared, &delivery, &envelope, &actions);
        let label = outcome_label(&actions);
        match shared.publisher.publish_all(publications).await {
            Ok(()) => {
                shared.settler.ack(delivery.delivery_tag, delivery.acker);
                record(shared, &envelope, &outcome, &actions);
                context
                    .metrics
                    .messages
                    .with_label_values(&[worker, type_label(&envelope.kind), label])
                    .inc();
            }
            Err(error) => {
                warn!(%error, "Outcome not confirmed by the broker; requeueing the input.");
                if !shared.publisher.is_connected() {
                    shared.lost.notify_one();
                }
                // A pause keeps a broker in trouble (alarm, unroutable results) from a hot loop.
                tokio::time::sleep(Duration::from_secs(1)).await;
                shared.settler.requeue(delivery.delivery_tag, delivery.acker);
                context
                    .metrics
                    .messages
                    .with_label_values(&[worker, type_label(&envelope.kind), "requeued"])
                    .inc();
            }
        }
        context
            .metrics
            .duration
            .with_label_values(&[worker, type_label(&envelope.kind)])
            .observe(started.elapsed().as_secs_f64());
        in_flight.dec();
    }
    .instrument(span)
    .await;
}

async fn validate_and_handle<H: Handler>(
    shared: &Shared,
    handler: &H,
    delivery: &Delivery,
    envelope: &Envelope,
) -> Outcome {
    let Some(message_id) = envelope.message_id.clone() else {
        return Outcome::failed(FailureKind::Invalid, Invalid::MissingMessageId.to_string());
    };
    let body = match shared.context.schemas.check(&envelope.kind, &delivery.data) {
        Ok(body) => body,
        Err(invalid) => return Outcome::failed(FailureKind::Invalid, invalid.to_string()),
    };
    if !shared
        .context
        .spec
        .topology
        .routing_keys
        .iter()
        .any(|k| k == &envelope.kind)
    {
        return Outcome::failed(
            FailureKind::Invalid,
            format!("message type `{}` is not handled by this worker", envelope.kind),
        );
    }
    let incoming = Incoming {
        message_id,
        kind: envelope.kind.clone(),
        correlation_id: delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(|c| c.as_str().to_owned()),
        attempt: envelope.attempt,
        scope: envelope.scope.clone(),
        redelivered: delivery.redelivered,
        last_attempt: envelope.attempt >= shared.policy.max_attempts,
        body,
    };
    let hold = shared.context.spec.max_hold;
    // Boxed: a handler's future (HTTP calls and all) runs to many kilobytes, and unboxed it
    // would be copied by value through the task, the span and the timeout on every delivery.
    match tokio::time::timeout(hold, Box::pin(handler.handle(incoming))).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::failed(
            FailureKind::Retriable,
            format!("handler held the delivery longer than {hold:?}"),
        ),
    }
}

fn outcome_label(actions: &[Action<'_>]) -> &'static str {
    if actions.iter().any(|a| matches!(a, Action::DeadLetter { .. })) {
        "dead_lettered"
    } else if actions.iter().any(|a| matches!(a, Action::Retry { .. })) {
        "retried"
    } else if actions.iter().any(|a| matches!(a, Action::Park { .. })) {
        "parked"
    } else {
        "ok"
    }
}

fn copy_properties(delivery: &Delivery, envelope: &Envelope, headers: FieldTable) -> BasicProperties {
    delivery
        .properties
        .clone()
        .with_headers(headers)
        .with_type(envelope.kind.as_str().into())
        .with_delivery_mode(2)
}

fn base_headers(delivery: &Delivery, envelope: &Envelope, scope: &[String]) -> FieldTable {
    let mut table = headers::carry_over(delivery.properties.headers().as_ref());
    headers::set_str(
        &mut table,
        headers::ORIGINAL_ROUTING_KEY,
        &envelope.original_routing_key,
    );
    if !scope.is_empty() {
        headers::set_str(&mut table, headers::SCOPE, &scope.join(","));
    }
    table
}

fn publications<'a>(
    shared: &'a Shared,
    delivery: &'a Delivery,
    envelope: &Envelope,
    actions: &[Action<'a>],
) -> Vec<Publication<'a>> {
    let worker = shared.context.spec.topology.worker.as_str();
    let mut out = Vec::with_capacity(actions.len());
    for action in actions {
        match action {
            Action::Publish(message) => {
                let mut table = FieldTable::default();
                headers::set_str(&mut table, "x-switchyard-source-worker", worker);
                let properties = crate::publisher::json_properties(
                    &message.message_id,
                    &message.kind,
                    message.correlation_id.as_deref(),
                    table,
                );
                out.push(Publication {
                    exchange: &shared.exchange,
                    routing_key: message.kind.as_str(),
                    body: &message.body,
                    properties,
                });
            }
            Action::Retry {
                tier,
                attempt,
                scope,
                reason,
            }
            | Action::Park {
                tier,
                attempt,
                scope,
                reason,
            } => {
                let mut table = base_headers(delivery, envelope, scope);
                headers::set_int(&mut table, headers::ATTEMPT, i64::from(*attempt));
                headers::set_str(&mut table, headers::ERROR, reason);
                out.push(Publication {
                    exchange: "",
                    routing_key: &shared.tier_queues[*tier],
                    body: &delivery.data,
                    properties: copy_properties(delivery, envelope, table),
                });
            }
            Action::DeadLetter {
                class,
                attempt,
                scope,
                reason,
            } => {
                let mut table = base_headers(delivery, envelope, scope);
                headers::set_int(&mut table, headers::ATTEMPT, i64::from(*attempt));
                headers::set_str(&mut table, headers::ERROR_CLASS, class.as_str());
                headers::set_str(&mut table, headers::ERROR, reason);
                headers::set_str(&mut table, headers::WORKER, worker);
                headers::set_str(&mut table, headers::FAILED_AT, &now_rfc3339());
                out.push(Publication {
                    exchange: &shared.dead_exchange,
                    routing_key: worker,
                    body: &delivery.data,
                    properties: copy_properties(delivery, envelope, table),
                });
            }
        }
    }
    out
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn record(shared: &Shared, envelope: &Envelope, outcome: &Outcome, actions: &[Action<'_>]) {
    let metrics = &shared.context.metrics;
    let worker = shared.context.spec.topology.worker.as_str();
    for message in &outcome.results {
        metrics
            .published
            .with_label_values(&[worker, type_label(&message.kind)])
            .inc();
    }
    for action in actions {
        match action {
            Action::Publish(_) => {}
            Action::Retry {
                tier,
                attempt,
                scope,
                reason,
            } => {
                let tier_name = settings::format_duration(shared.policy.tiers[*tier]);
                metrics.retries.with_label_values(&[worker, &tier_name]).inc();
                warn!(error = %reason, next_attempt = attempt, tier = tier_name, scope = %scope.join(","), "Retrying through a delay tier.");
            }
            Action::Park {
                tier, scope, reason, ..
            } => {
                let tier_name = settings::format_duration(shared.policy.tiers[*tier]);
                info!(reason = %reason, tier = tier_name, scope = %scope.join(","), "Rate limited; parked without spending an attempt.");
            }
            Action::DeadLetter {
                class, scope, reason, ..
            } => {
                metrics.dead_letters.with_label_values(&[worker, class.as_str()]).inc();
                let class_name = class.as_str();
                if *class == ErrorClass::Invalid {
                    warn!(class = class_name, error = %reason, original_routing_key = %envelope.original_routing_key, "Dead-lettered an invalid message.");
                } else {
                    error!(class = class_name, error = %reason, scope = %scope.join(","), "Dead-lettered.");
                }
            }
        }
    }
    if actions.iter().all(|a| matches!(a, Action::Publish(_))) {
        debug!("Handled.");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn validate_rejects_shrinking_tiers() {
        assert!(parse_tiers("10s,1s").is_err());
        assert!(parse_tiers("").is_err());
        assert!(parse_tiers("0s").is_err());
        assert_eq!(parse_tiers("1s, 10s ,1m").map(|t| t.len()), Ok(3));
    }

    #[test]
    fn validate_rejects_zero_prefetch() {
        let strings: HashMap<&str, &str> = [("SWITCHYARD_PREFETCH", "0")].into_iter().collect();
        let err = WorkerSpec::from_strings(&strings, "w", &["a"], 10).err();
        assert_eq!(
            err.map(|e| e.variable().to_owned()),
            Some("SWITCHYARD_PREFETCH".to_owned())
        );
    }

    #[test]
    fn validate_accepts_defaults() {
        let strings: HashMap<&str, &str> = HashMap::new();
        let spec = WorkerSpec::from_strings(&strings, "w", &["a"], 16);
        assert_eq!(
            spec.map(|s| (s.prefetch, s.max_attempts, s.topology.tiers.len())),
            Ok((16, 5, 5))
        );
    }
}
