//! A long-lived confirmed publisher for binaries that publish without consuming (`inbound`):
//! it connects on first use, declares the shared exchanges, publishes with `mandatory` and
//! publisher confirms, and after any failure drops the session so the next publish connects
//! afresh (across the cluster URLs, in order).
//!
//! Callers learn per publish whether the broker confirmed every message; that is what lets a
//! webhook answer 2xx only after the confirm and 503 otherwise, so the vendor's own retry covers
//! a broker outage. While the broker is unreachable, connection attempts are spaced at least
//! [`RECONNECT_PAUSE`] apart: publishes in between fail at once instead of piling up on a
//! connect that is bound to fail.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lapin::Connection;
use lapin::types::FieldTable;
use messages::Outgoing;
use settings::MqConfig;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::MqError;
use crate::connection::connect_once;
use crate::publisher::{Publication, Publisher, json_properties};
use crate::topology::{self, Names};

/// The least time between two connection attempts while the broker is unreachable.
pub const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// A reconnecting, confirmed publisher to the main exchange. Cheap to clone; clones share the
/// session.
#[derive(Debug, Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: MqConfig,
    names: Names,
    connection_name: String,
    session: Mutex<Session>,
    connected: AtomicBool,
    generation: AtomicU64,
}

#[derive(Debug)]
enum Session {
    /// Never connected, or closed.
    Idle,
    /// Connected: the publisher's channel is in confirm mode.
    Up(Box<Live>),
    /// The last attempt failed; the next one waits until `retry_at`.
    Down { retry_at: Instant, error: String },
}

/// An open session.
#[derive(Debug)]
struct Live {
    connection: Connection,
    publisher: Publisher,
    generation: u64,
}

impl Outbox {
    /// An outbox for `config`'s broker and namespace. It does not connect until the first
    /// publish (or [`Outbox::connect`]); `connection_name` shows in the broker's UI.
    pub fn new(config: &MqConfig, connection_name: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                names: Names::new(&config.namespace),
                config: config.clone(),
                connection_name: connection_name.to_owned(),
                session: Mutex::new(Session::Idle),
                connected: AtomicBool::new(false),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// The names in use.
    pub fn names(&self) -> &Names {
        &self.inner.names
    }

    /// Whether the last publish (or connect) left a usable session.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// Connects now if there is no session (ignoring the reconnect pause), e.g. at start so
    /// readiness reflects the broker before the first webhook.
    pub async fn connect(&self) -> Result<(), MqError> {
        self.publisher(true).await.map(drop)
    }

    /// Publishes every message to the main exchange (routing key = its kind, `mandatory`,
    /// persistent) and waits for every confirm. On any failure the session is dropped and the
    /// error returned; nothing says which messages, if any, the broker kept, so callers
    /// republish all of them with the same message ids.
    pub async fn publish(&self, messages: &[Outgoing]) -> Result<(), MqError> {
        if messages.is_empty() {
            return Ok(());
        }
        let (publisher, generation) = self.publisher(false).await?;
        let exchange = self.inner.names.exchange();
        let publications = messages
            .iter()
            .map(|message| Publication {
                exchange: &exchange,
                routing_key: &message.kind,
                body: &message.body,
                properties: json_properties(
                    &message.message_id,
                    &message.kind,
                    message.correlation_id.as_deref(),
                    FieldTable::default(),
                ),
            })
            .collect();
        match publisher.publish_all(publications).await {
            Ok(()) => Ok(()),
            Err(error) => {
                self.drop_session(generation, &error).await;
                Err(error)
            }
        }
    }

    /// Drops the session, if any, so the next publish connects afresh. For callers that gave
    /// up waiting on a publish (a hung connection keeps its channel "connected" until the
    /// heartbeat notices, which takes seconds).
    /// Never waits for a connect in progress (that one replaces the session anyway).
    pub async fn reset(&self) {
        let Ok(mut session) = self.inner.session.try_lock() else {
            return;
        };
        if let Session::Up(live) = std::mem::replace(&mut *session, Session::Idle) {
            self.inner.connected.store(false, Ordering::Release);
            let _closed =
                tokio::time::timeout(Duration::from_secs(1), live.connection.close(200, "reset".into())).await;
        }
    }

    /// Closes the session, if any.
    pub async fn close(&self) {
        let mut session = self.inner.session.lock().await;
        if let Session::Up(live) = std::mem::replace(&mut *session, Session::Idle) {
            let _closed = live.connection.close(200, "bye".into()).await;
        }
        self.inner.connected.store(false, Ordering::Release);
    }

    /// The current publisher, connecting if needed. The lock is held only while connecting,
    /// never while publishing, so concurrent publishes share one channel.
    async fn publisher(&self, ignore_pause: bool) -> Result<(Publisher, u64), MqError> {
        let mut session = self.inner.session.lock().await;
        match &*session {
            Session::Up(live) if live.publisher.is_connected() => return Ok((live.publisher.clone(), live.generation)),
            Session::Down { retry_at, error } if !ignore_pause && Instant::now() < *retry_at => {
                return Err(MqError::Connect(format!(
                    "broker unavailable (retrying shortly): {error}"
                )));
            }
            _ => {}
        }
        self.inner.connected.store(false, Ordering::Release);
        match self.open().await {
            Ok((connection, publisher)) => {
                let generation = self.inner.generation.fetch_add(1, Ordering::AcqRel) + 1;
                *session = Session::Up(Box::new(Live {
                    connection,
                    publisher: publisher.clone(),
                    generation,
                }));
                self.inner.connected.store(true, Ordering::Release);
                tracing::info!(connection = %self.inner.connection_name, "Connected the outbox to the broker.");
                Ok((publisher, generation))
            }
            Err(error) => {
                *session = Session::Down {
                    retry_at: Instant::now() + RECONNECT_PAUSE,
                    error: error.to_string(),
                };
                tracing::warn!(%error, "Cannot connect the outbox to the broker.");
                Err(error)
            }
        }
    }

    async fn open(&self) -> Result<(Connection, Publisher), MqError> {
        let connection = connect_once(&self.inner.config.urls, &self.inner.connection_name).await?;
        topology::declare(&connection, &self.inner.names, &[]).await?;
        let publisher = Publisher::open(&connection).await?;
        Ok((connection, publisher))
    }

    /// Drops the session `generation` after a failed publish (unless another task already
    /// replaced it), so the next publish reconnects.
    async fn drop_session(&self, generation: u64, error: &MqError) {
        let mut session = self.inner.session.lock().await;
        let current = matches!(&*session, Session::Up(live) if live.generation == generation);
        if !current {
            return;
        }
        if let Session::Up(live) = std::mem::replace(&mut *session, Session::Idle) {
            tracing::warn!(%error, "Publish failed; the outbox reconnects on the next publish.");
            self.inner.connected.store(false, Ordering::Release);
            // Closing may hang on a dead socket; the connection is dropped either way.
            let _closed =
                tokio::time::timeout(Duration::from_secs(1), live.connection.close(200, "reconnect".into())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(url: &str, namespace: &str) -> MqConfig {
        let strings: HashMap<&str, &str> = [("AMQP_URL", url), ("SWITCHYARD_NAMESPACE", namespace)]
            .into_iter()
            .collect();
        MqConfig::from_strings(&strings).unwrap_or_else(|e| panic!("{e}"))
    }

    fn message(id: &str) -> Outgoing {
        Outgoing {
            kind: "outbox.test".into(),
            message_id: id.into(),
            correlation_id: None,
            body: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn an_unreachable_broker_fails_fast_and_pauses_reconnects() {
        let outbox = Outbox::new(&config("amqp://guest:guest@127.0.0.1:1/%2f", "t-outbox"), "test");
        assert!(outbox.publish(&[message("m-1")]).await.is_err());
        assert!(!outbox.is_connected());
        let started = Instant::now();
        let second = outbox.publish(&[message("m-2")]).await;
        let text = second.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("retrying shortly"), "{text}");
        assert!(started.elapsed() < RECONNECT_PAUSE, "a paused reconnect fails at once");
        assert!(!text.contains("guest"), "no credentials in errors: {text}");
    }

    #[tokio::test]
    async fn publishes_with_confirms_to_the_real_broker() {
        let namespace = format!("t-outbox-{}", std::process::id());
        let outbox = Outbox::new(&config(settings::DEFAULT_AMQP_URL, &namespace), "test");
        outbox.connect().await.unwrap_or_else(|e| panic!("broker: {e}"));
        assert!(outbox.is_connected());
        // Nothing is bound: the alternate exchange keeps it, and the broker confirms.
        outbox
            .publish(&[message("m-1"), message("m-2")])
            .await
            .unwrap_or_else(|e| panic!("publish: {e}"));
        outbox.close().await;
        assert!(!outbox.is_connected());
        let admin = crate::admin::Admin::connect(&outbox.inner.config)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let unroutable = admin.names().unroutable();
        let kept = admin.drain(&unroutable, 10).await.unwrap_or_default();
        assert_eq!(kept.len(), 2);
        let _removed = admin.remove_namespace(&[], &[]).await;
        admin.close().await;
    }
}
