//! The "done once" records: the once-a-day expiry notice (keyed by customer + local date) and
//! the processed-message record of the other tracker events (keyed by message id), so a
//! redelivery makes no second Ecomail event.
//!
//! A record goes through two states. [`OnceStore::claim`] marks a key `pending` for a short
//! time before the side effect (so two deliveries handled at once cannot both send);
//! [`OnceStore::complete`] writes `done` only after Ecomail accepted the event;
//! [`OnceStore::release`] drops a claim whose side effect failed, so a retry can try again.
//! Both states remember which message made them, so the redelivery of the message that sent a
//! notice can republish the same result.
//!
//! [`MemoryStore`] keeps records in the process (one replica, at most
//! `LOYALTY_RECORDS_CAPACITY` of them, so memory stays bounded however many customers a day
//! brings); [`RedisStore`] keeps them in Redis (`REDIS_URL`), shared by every replica, with
//! atomic scripts.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::aio::ConnectionManagerConfig;
use tokio::time::Instant;
use tracing::warn;

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free and is now pending for the caller.
    Claimed,
    /// Already done, by the message with this id.
    Done {
        /// The message that did it.
        by: String,
    },
    /// Another delivery holds the key right now: try again later.
    Busy,
}

/// The record store is unreachable or answered nonsense. The text names no key, e-mail or URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record store: {0}")]
pub struct StoreError(String);

/// Where "done once" records live.
pub trait OnceStore: Send + Sync + 'static {
    /// Claims `key` for `owner` (a message id) for at most `hold`, unless it is pending or done.
    fn claim(&self, key: &str, owner: &str, hold: Duration) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Marks `key` done by `owner`, kept for `keep`.
    fn complete(&self, key: &str, owner: &str, keep: Duration) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Drops `owner`'s pending claim on `key` (a done record or another owner's claim stays).
    fn release(&self, key: &str, owner: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One record of the in-process store.
#[derive(Debug)]
struct Entry {
    /// The message that claimed (pending) or did (done) it.
    owner: Box<str>,
    /// Claimed but not done yet.
    pending: bool,
    expires: Instant,
}

#[derive(Debug)]
struct Entries {
    /// Records by a 128-bit digest of their key: a key (namespace, worker, customer, date)
    /// runs to ~70 bytes and was kept as a heap string per record; with the digest a record
    /// takes ~130 bytes in all instead of ~220 (measured over 100,000 records).
    map: HashMap<u128, Entry>,
    /// The two keyed hashes whose outputs make the digest.
    digest: (RandomState, RandomState),
    /// The most records kept: beyond it the done records nearest to expiry are forgotten early.
    capacity: usize,
    prune_at: usize,
}

/// Entries kept before expired ones are pruned (then the mark doubles with the live count).
const PRUNE_MARK: usize = 4096;

/// Default `LOYALTY_RECORDS_CAPACITY`: the most records [`MemoryStore`] keeps (~13 MiB).
pub const DEFAULT_CAPACITY: usize = 100_000;

impl Entries {
    fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            digest: (RandomState::new(), RandomState::new()),
            capacity: capacity.max(1),
            prune_at: 0,
        }
    }

    /// Two differently keyed 64-bit SipHashes of `key`: a collision between two of 100,000
    /// live keys has a chance of about 10^-29.
    fn digest(&self, key: &str) -> u128 {
        (u128::from(self.digest.0.hash_one(key)) << 64) | u128::from(self.digest.1.hash_one(key))
    }

    /// Before a new record: drops the expired ones once the map has grown enough to be worth
    /// a pass, and at capacity forgets the done records nearest to expiry (a tenth of the
    /// capacity at a time, so the pass is rare). Pending claims are never forgotten early:
    /// they belong to deliveries in flight and lapse within the claim hold anyway. Answers how
    /// many unexpired records were forgotten (the caller warns, outside the lock).
    fn make_room(&mut self, now: Instant) -> usize {
        if self.map.len() < self.prune_at.max(PRUNE_MARK).min(self.capacity) {
            return 0;
        }
        self.map.retain(|_, entry| entry.expires > now);
        let forgotten = if self.map.len() >= self.capacity {
            self.forget_nearest_expiry()
        } else {
            0
        };
        self.prune_at = self.map.len().saturating_mul(2);
        forgotten
    }

    /// Puts `entry` under `digest`, making room first if the digest is new.
    fn insert(&mut self, digest: u128, entry: Entry, now: Instant) -> Option<Forgotten> {
        let forgotten = if self.map.contains_key(&digest) {
            0
        } else {
            self.make_room(now)
        };
        self.map.insert(digest, entry);
        (forgotten > 0).then_some(Forgotten {
            count: forgotten,
            capacity: self.capacity,
        })
    }

    /// Forgets a tenth of the capacity (or every done record, if fewer): the done records that
    /// expire first (ties broken by digest, so exactly that many go). Answers how many went.
    fn forget_nearest_expiry(&mut self) -> usize {
        let mut done: Vec<(Instant, u128)> = self
            .map
            .iter()
            .filter(|(_, entry)| !entry.pending)
            .map(|(digest, entry)| (entry.expires, *digest))
            .collect();
        if done.is_empty() {
            return 0;
        }
        let last = (self.capacity / 10).clamp(1, done.len()) - 1;
        let cutoff = *done.select_nth_unstable(last).1;
        self.map
            .retain(|digest, entry| entry.pending || (entry.expires, *digest) > cutoff);
        last + 1
    }
}

/// Unexpired records forgotten to make room, reported after the lock is released.
#[derive(Debug, Clone, Copy)]
struct Forgotten {
    count: usize,
    capacity: usize,
}

impl Forgotten {
    fn warn(self) {
        warn!(
            forgotten = self.count,
            capacity = self.capacity,
            "In-process records full: the ones nearest to expiry were forgotten early, so a \
             redelivery of their messages could send again; set REDIS_URL (or raise \
             LOYALTY_RECORDS_CAPACITY) to keep every record for its full time."
        );
    }
}

/// Records in this process: right for a single replica, lost on restart, at most `capacity`
/// of them (the done records nearest to expiry are forgotten first beyond it).
#[derive(Debug, Clone)]
pub struct MemoryStore {
    entries: Arc<Mutex<Entries>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl MemoryStore {
    /// A store that keeps at most `capacity` records (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Arc::new(Mutex::new(Entries::new(capacity))),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Entries, Instant) -> T) -> T {
        // A poisoned lock only means another task panicked mid-update of plain data; the map
        // is still usable.
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut entries, Instant::now())
    }
}

impl OnceStore for MemoryStore {
    async fn claim(&self, key: &str, owner: &str, hold: Duration) -> Result<Claim, StoreError> {
        let (claim, forgotten) = self.with(|entries, now| {
            let digest = entries.digest(key);
            match entries.map.get(&digest) {
                Some(entry) if entry.expires > now && entry.pending => (Claim::Busy, None),
                Some(entry) if entry.expires > now => {
                    let by = entry.owner.to_string();
                    (Claim::Done { by }, None)
                }
                _ => {
                    let entry = Entry {
                        owner: owner.into(),
                        pending: true,
                        expires: now + hold,
                    };
                    (Claim::Claimed, entries.insert(digest, entry, now))
                }
            }
        });
        if let Some(forgotten) = forgotten {
            forgotten.warn();
        }
        Ok(claim)
    }

    async fn complete(&self, key: &str, owner: &str, keep: Duration) -> Result<(), StoreError> {
        let forgotten = self.with(|entries, now| {
            let entry = Entry {
                owner: owner.into(),
                pending: false,
                expires: now + keep,
            };
            entries.insert(entries.digest(key), entry, now)
        });
        if let Some(forgotten) = forgotten {
            forgotten.warn();
        }
        Ok(())
    }

    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        self.with(|entries, _| {
            let digest = entries.digest(key);
            if entries
                .map
                .get(&digest)
                .is_some_and(|entry| entry.pending && *entry.owner == *owner)
            {
                entries.map.remove(&digest);
            }
        });
        Ok(())
    }
}

const CLAIM: &str = r"
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], 'pending:' .. ARGV[1], 'PX', ARGV[2])
  return 'claimed'
end
return current
";

/// Deletes the key only if it is still the caller's pending claim.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == 'pending:' .. ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Records in Redis, shared by every replica. Keys expire by themselves.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    claim: Arc<redis::Script>,
    release: Arc<redis::Script>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

/// How long one Redis call may take before it counts as failed (and the message retries).
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

fn store_error(error: &redis::RedisError) -> StoreError {
    // The category and kind only: a full Redis error text can quote the command (and so a key).
    StoreError(format!("redis {} error ({:?})", error.category(), error.kind()))
}

impl RedisStore {
    /// A store over `url` (validated by the configuration). It connects lazily, so a Redis
    /// outage at start shows up as retriable failures, not as a crash loop.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| store_error(&e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2);
        let connection = ConnectionManager::new_lazy_with_config(client, config).map_err(|e| store_error(&e))?;
        Ok(Self {
            connection,
            claim: Arc::new(redis::Script::new(CLAIM)),
            release: Arc::new(redis::Script::new(RELEASE)),
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl OnceStore for RedisStore {
    async fn claim(&self, key: &str, owner: &str, hold: Duration) -> Result<Claim, StoreError> {
        let mut connection = self.connection.clone();
        let answer: String = self
            .claim
            .key(key)
            .arg(owner)
            .arg(millis(hold))
            .invoke_async(&mut connection)
            .await
            .map_err(|e| store_error(&e))?;
        if answer == "claimed" {
            return Ok(Claim::Claimed);
        }
        if let Some(by) = answer.strip_prefix("done:") {
            return Ok(Claim::Done { by: by.to_owned() });
        }
        if answer.starts_with("pending:") {
            return Ok(Claim::Busy);
        }
        Err(StoreError("redis record holds an unexpected value".to_owned()))
    }

    async fn complete(&self, key: &str, owner: &str, keep: Duration) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("SET")
            .arg(key)
            .arg(format!("done:{owner}"))
            .arg("PX")
            .arg(millis(keep))
            .query_async::<()>(&mut connection)
            .await
            .map_err(|e| store_error(&e))
    }

    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        self.release
            .key(key)
            .arg(owner)
            .invoke_async::<i64>(&mut connection)
            .await
            .map(drop)
            .map_err(|e| store_error(&e))
    }
}

/// The store chosen by the configuration.
#[derive(Debug, Clone)]
pub enum Store {
    /// In process (`REDIS_URL` unset).
    Memory(MemoryStore),
    /// In Redis.
    Redis(RedisStore),
}

impl OnceStore for Store {
    async fn claim(&self, key: &str, owner: &str, hold: Duration) -> Result<Claim, StoreError> {
        match self {
            Self::Memory(store) => store.claim(key, owner, hold).await,
            Self::Redis(store) => store.claim(key, owner, hold).await,
        }
    }

    async fn complete(&self, key: &str, owner: &str, keep: Duration) -> Result<(), StoreError> {
        match self {
            Self::Memory(store) => store.complete(key, owner, keep).await,
            Self::Redis(store) => store.complete(key, owner, keep).await,
        }
    }

    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        match self {
            Self::Memory(store) => store.release(key, owner).await,
            Self::Redis(store) => store.release(key, owner).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_secs(60);
    const KEEP: Duration = Duration::from_secs(3600);

    async fn lifecycle(store: &impl OnceStore, key: &str) {
        assert_eq!(store.claim(key, "m1", HOLD).await, Ok(Claim::Claimed));
        assert_eq!(store.claim(key, "m2", HOLD).await, Ok(Claim::Busy));
        assert_eq!(store.claim(key, "m1", HOLD).await, Ok(Claim::Busy));
        // Releasing someone else's claim does nothing.
        assert_eq!(store.release(key, "m2").await, Ok(()));
        assert_eq!(store.claim(key, "m2", HOLD).await, Ok(Claim::Busy));
        assert_eq!(store.release(key, "m1").await, Ok(()));
        assert_eq!(store.claim(key, "m2", HOLD).await, Ok(Claim::Claimed));
        assert_eq!(store.complete(key, "m2", KEEP).await, Ok(()));
        let done = Ok(Claim::Done { by: "m2".into() });
        assert_eq!(store.claim(key, "m3", HOLD).await, done);
        // A done record is not released by its owner's release.
        assert_eq!(store.release(key, "m2").await, Ok(()));
        assert_eq!(store.claim(key, "m2", HOLD).await, done);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_store_claims_completes_and_releases() {
        lifecycle(&MemoryStore::default(), "k").await;
    }

    #[tokio::test(start_paused = true)]
    async fn memory_records_expire() {
        let store = MemoryStore::default();
        assert_eq!(store.claim("k", "m1", HOLD).await, Ok(Claim::Claimed));
        tokio::time::advance(HOLD + Duration::from_millis(1)).await;
        // A crashed holder's claim lapses.
        assert_eq!(store.claim("k", "m2", HOLD).await, Ok(Claim::Claimed));
        assert_eq!(store.complete("k", "m2", KEEP).await, Ok(()));
        tokio::time::advance(KEEP + Duration::from_millis(1)).await;
        assert_eq!(store.claim("k", "m3", HOLD).await, Ok(Claim::Claimed));
    }

    #[tokio::test(start_paused = true)]
    async fn memory_store_prunes_expired_entries() {
        let store = MemoryStore::default();
        for i in 0..PRUNE_MARK {
            assert_eq!(store.claim(&format!("k{i}"), "m", HOLD).await, Ok(Claim::Claimed));
        }
        tokio::time::advance(HOLD * 2).await;
        assert_eq!(store.claim("fresh", "m", HOLD).await, Ok(Claim::Claimed));
        assert_eq!(store.with(|entries, _| entries.map.len()), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_store_keeps_at_most_its_capacity() {
        let store = MemoryStore::with_capacity(100);
        for i in 0..1_000 {
            let key = format!("customer-{i}:2026-12-05");
            assert_eq!(store.claim(&key, &format!("m{i}"), HOLD).await, Ok(Claim::Claimed));
            assert_eq!(store.complete(&key, &format!("m{i}"), KEEP).await, Ok(()));
            assert!(store.with(|entries, _| entries.map.len()) <= 100, "after {i}");
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        // The newest records are still there, and still say who made them.
        let done = store.claim("customer-999:2026-12-05", "again", HOLD).await;
        assert_eq!(done, Ok(Claim::Done { by: "m999".into() }));
        // The oldest (here: nearest to expiry) went first.
        let early = store.claim("customer-0:2026-12-05", "again", HOLD).await;
        assert_eq!(early, Ok(Claim::Claimed));
    }

    #[tokio::test(start_paused = true)]
    async fn at_capacity_the_records_nearest_to_expiry_go_first() {
        let store = MemoryStore::with_capacity(20);
        // Ten long-kept records first (a processed message, 7 days), then ten short-kept ones
        // (a notice, 3 days): at capacity the short-kept ones expire first, so they go first
        // although they are newer; a tenth of the capacity (2) goes at a time.
        for i in 0..10 {
            assert_eq!(store.complete(&format!("long{i}"), "m", KEEP * 7).await, Ok(()));
        }
        for i in 0..10 {
            assert_eq!(store.complete(&format!("short{i}"), "m", KEEP * 3).await, Ok(()));
        }
        assert_eq!(store.complete("one-more", "m", KEEP * 3).await, Ok(()));
        let kept = |prefix: &'static str| {
            store.with(move |entries, _| {
                (0..10)
                    .filter(|i| entries.map.contains_key(&entries.digest(&format!("{prefix}{i}"))))
                    .count()
            })
        };
        assert_eq!((kept("long"), kept("short")), (10, 8));
        let done = Ok(Claim::Done { by: "m".into() });
        assert_eq!(store.claim("one-more", "x", HOLD).await, done);
    }

    #[tokio::test(start_paused = true)]
    async fn pending_claims_are_never_forgotten_early() {
        let store = MemoryStore::with_capacity(10);
        for i in 0..5 {
            assert_eq!(
                store.claim(&format!("busy{i}"), "holder", HOLD).await,
                Ok(Claim::Claimed)
            );
        }
        for i in 0..50 {
            assert_eq!(store.complete(&format!("done{i}"), "m", KEEP).await, Ok(()));
        }
        for i in 0..5 {
            assert_eq!(
                store.claim(&format!("busy{i}"), "other", HOLD).await,
                Ok(Claim::Busy),
                "busy{i}"
            );
        }
        assert!(store.with(|entries, _| entries.map.len()) <= 10);
    }

    /// Runs against the local Redis that `make setup` starts (as RabbitMQ); the keys are unique
    /// to this run and expire by themselves.
    #[tokio::test]
    async fn redis_store_claims_completes_and_releases() {
        let store = RedisStore::open("redis://127.0.0.1:6379/0").unwrap_or_else(|e| panic!("{e}"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        lifecycle(
            &store,
            &format!("switchyard:test:loyalty-record:{}:{nanos}", std::process::id()),
        )
        .await;
    }

    #[tokio::test]
    async fn redis_outage_is_an_error_not_a_hang() {
        // Nothing listens on port 1.
        let store = RedisStore::open("redis://127.0.0.1:1/0").unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let claim = store.claim("k", "m", HOLD).await;
        assert!(claim.is_err(), "{claim:?}");
        assert!(
            !claim
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("127.0.0.1")
        );
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
