//! The processed-effect ledger: remembers which side effects of which message were done, so a
//! redelivery (after a crash between the vendor call and the ack, or a broker redelivery) does
//! not repeat an effect the vendor cannot deduplicate (tracker events, external events,
//! recommendation events).
//!
//! Keys are `<message_id>:<effect>`; entries expire after a retention (default 7 days, longer
//! than any retry schedule). With `REDIS_URL` the ledger is shared by every replica; otherwise
//! it lives in the process (bounded). Use the vendor's own idempotency key where one exists
//! (Voucherify publication `source_id`, upserts by external id); the ledger is for the rest.
//!
//! The check happens before the call and the record right after the vendor accepted it, so the
//! only window left is between the vendor's answer and the record (milliseconds). If Redis does
//! not answer, the ledger says "not done" (the effect may repeat: at-least-once) and logs it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::time::Instant;

/// How long an effect is remembered by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Entries the in-process ledger keeps at most (oldest forgotten first).
pub const MEMORY_CAPACITY: usize = 200_000;

/// Where the ledger lives.
#[derive(Clone)]
pub struct Ledger {
    store: Store,
    prefix: String,
    retention: Duration,
}

#[derive(Clone)]
enum Store {
    Memory(Arc<Mutex<Memory>>),
    Redis(ConnectionManager),
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.store {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        };
        f.debug_struct("Ledger")
            .field("store", &kind)
            .field("prefix", &self.prefix)
            .finish()
    }
}

#[derive(Debug, Default)]
struct Memory {
    expires: HashMap<String, Instant>,
    order: VecDeque<String>,
}

impl Memory {
    fn is_done(&mut self, key: &str) -> bool {
        match self.expires.get(key) {
            Some(expiry) if *expiry > Instant::now() => true,
            Some(_) => {
                self.expires.remove(key);
                false
            }
            None => false,
        }
    }

    fn mark(&mut self, key: String, retention: Duration) {
        while self.order.len() >= MEMORY_CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.expires.remove(&oldest);
            }
        }
        if self.expires.insert(key.clone(), Instant::now() + retention).is_none() {
            self.order.push_back(key);
        }
    }
}

impl Ledger {
    /// An in-process ledger.
    pub fn in_memory(prefix: &str) -> Self {
        Self {
            store: Store::Memory(Arc::default()),
            prefix: prefix.to_owned(),
            retention: DEFAULT_RETENTION,
        }
    }

    /// A ledger shared through Redis.
    pub fn redis(connection: ConnectionManager, prefix: &str) -> Self {
        Self {
            store: Store::Redis(connection),
            prefix: prefix.to_owned(),
            retention: DEFAULT_RETENTION,
        }
    }

    /// Redis when `redis_url` is given, in process otherwise. `prefix` is e.g.
    /// `switchyard:<namespace>:ledger:<worker>`.
    pub fn from_url(redis_url: Option<&str>, prefix: &str) -> Result<Self, String> {
        match redis_url {
            Some(url) => Ok(Self::redis(api_client::shared::connect_lazy(url)?, prefix)),
            None => Ok(Self::in_memory(prefix)),
        }
    }

    /// Keeps entries for `retention` instead of the default.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    fn key(&self, message_id: &str, effect: &str) -> String {
        format!("{}:{message_id}:{effect}", self.prefix)
    }

    /// Whether `effect` of `message_id` was already done.
    pub async fn is_done(&self, message_id: &str, effect: &str) -> bool {
        let key = self.key(message_id, effect);
        match &self.store {
            Store::Memory(memory) => memory
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_done(&key),
            Store::Redis(connection) => {
                let mut connection = connection.clone();
                let answer =
                    tokio::time::timeout(api_client::shared::REDIS_TIMEOUT, connection.exists::<_, bool>(&key)).await;
                match answer {
                    Ok(Ok(done)) => done,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, effect, "Ledger lookup failed; the effect may be repeated.");
                        false
                    }
                    Err(_) => {
                        tracing::warn!(effect, "Ledger lookup timed out; the effect may be repeated.");
                        false
                    }
                }
            }
        }
    }

    /// Records that `effect` of `message_id` was done.
    pub async fn mark_done(&self, message_id: &str, effect: &str) {
        let key = self.key(message_id, effect);
        match &self.store {
            Store::Memory(memory) => {
                memory
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .mark(key, self.retention);
            }
            Store::Redis(connection) => {
                let mut connection = connection.clone();
                let seconds = self.retention.as_secs().max(1);
                let answer = tokio::time::timeout(
                    api_client::shared::REDIS_TIMEOUT,
                    connection.set_ex::<_, _, ()>(&key, 1u8, seconds),
                )
                .await;
                if !matches!(answer, Ok(Ok(()))) {
                    tracing::warn!(effect, "Ledger record failed; a redelivery may repeat the effect.");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn check(ledger: &Ledger) {
        let id = format!("m-{}", std::process::id());
        assert!(!ledger.is_done(&id, "event").await);
        ledger.mark_done(&id, "event").await;
        assert!(ledger.is_done(&id, "event").await);
        assert!(!ledger.is_done(&id, "other").await, "effects are separate");
    }

    #[tokio::test]
    async fn memory_ledger_remembers_effects() {
        check(&Ledger::in_memory("t")).await;
    }

    #[tokio::test]
    async fn redis_ledger_remembers_effects_across_instances() {
        let prefix = format!("switchyard:test-ledger-{}", std::process::id());
        let a = Ledger::from_url(Some("redis://127.0.0.1:6379/"), &prefix).unwrap_or_else(|e| panic!("{e}"));
        check(&a).await;
        let b = Ledger::from_url(Some("redis://127.0.0.1:6379/"), &prefix).unwrap_or_else(|e| panic!("{e}"));
        let id = format!("m-{}", std::process::id());
        assert!(b.is_done(&id, "event").await, "another replica sees the record");
    }

    #[tokio::test]
    async fn entries_expire_after_the_retention() {
        let ledger = Ledger::in_memory("t").with_retention(Duration::from_millis(30));
        ledger.mark_done("m", "e").await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!ledger.is_done("m", "e").await);
    }

    #[tokio::test]
    async fn unreachable_redis_says_not_done_without_failing() {
        let ledger = Ledger::from_url(Some("redis://127.0.0.1:1/"), "t").unwrap_or_else(|e| panic!("{e}"));
        ledger.mark_done("m", "e").await;
        assert!(!ledger.is_done("m", "e").await);
    }
}
