//! Who pulls from Spotler, and from where: the pull lease and the per-feed cursors.
//!
//! - With `REDIS_URL`, every replica shares them through Redis under
//!   `switchyard:<namespace>:inbound:spotler:`: the lease is `SET lease <token> NX PX <ttl>`,
//!   renewed while a cycle runs and released with a compare-and-delete script, so only one
//!   replica pulls at a time; a cursor is written only while the writer still holds the lease
//!   (a compare-and-set script), so a replica that lost its lease mid-cycle cannot move the
//!   cursor under the new holder.
//! - Without Redis, the cursors are files under `INBOUND_STATE_DIR/<namespace>/` (written to a
//!   temporary file and renamed, so a crash never leaves half a cursor), and the lease only
//!   keeps two cycles of this process apart: there is no guarantee across replicas (a warning
//!   says so at start when `SWITCHYARD_REPLICAS` is above 1).
//!
//! A cursor is the `toDate` of the last window whose every message the broker confirmed,
//! stored as RFC 3339.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// How long a lease lives without renewal (a crashed holder blocks others at most this long).
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often a held lease is renewed.
pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(10);
/// How long one Redis command may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

const STORE_CURSOR: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0";

/// The lease and the cursors.
#[derive(Debug, Clone)]
pub struct Coordinator {
    store: Store,
    /// Keeps two cycles of this process apart.
    local: Arc<Mutex<()>>,
}

#[derive(Clone)]
enum Store {
    Redis {
        connection: ConnectionManager,
        prefix: String,
    },
    Files {
        dir: PathBuf,
    },
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Redis { prefix, .. } => f.debug_struct("Redis").field("prefix", prefix).finish(),
            Self::Files { dir } => f.debug_struct("Files").field("dir", dir).finish(),
        }
    }
}

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    token: String,
    _local: OwnedMutexGuard<()>,
}

impl Lease {
    /// The token that identifies this holder in Redis.
    pub fn token(&self) -> &str {
        &self.token
    }
}

fn namespace_or_default(namespace: &str) -> &str {
    if namespace.is_empty() { "default" } else { namespace }
}

async fn within<T>(what: &str, future: impl Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(REDIS_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("redis {what}: {error}")),
        Err(_) => Err(format!("redis {what}: no answer within {REDIS_TIMEOUT:?}")),
    }
}

fn parse_cursor(text: &str, origin: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map_err(|_| format!("the cursor in {origin} is not an RFC 3339 time; fix or delete it"))
}

fn format_cursor(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.unix_timestamp().to_string())
}

impl Coordinator {
    /// Shared through Redis, under `switchyard:<namespace>:inbound:spotler`.
    pub fn redis(connection: ConnectionManager, namespace: &str) -> Self {
        Self {
            store: Store::Redis {
                connection,
                prefix: format!("switchyard:{}:inbound:spotler", namespace_or_default(namespace)),
            },
            local: Arc::default(),
        }
    }

    /// Cursor files under `<state_dir>/<namespace>/`; no lease across processes.
    pub fn files(state_dir: &Path, namespace: &str) -> Self {
        Self {
            store: Store::Files {
                dir: state_dir.join(namespace_or_default(namespace)),
            },
            local: Arc::default(),
        }
    }

    /// Whether replicas share the lease and cursors.
    pub fn is_shared(&self) -> bool {
        matches!(self.store, Store::Redis { .. })
    }

    /// Takes the lease; `Ok(None)` when someone else holds it.
    pub async fn acquire(&self) -> Result<Option<Lease>, String> {
        let Ok(local) = self.local.clone().try_lock_owned() else {
            return Ok(None);
        };
        let token = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
        if let Store::Redis { connection, prefix } = &self.store {
            let mut connection = connection.clone();
            let ttl_ms = u64::try_from(LEASE_TTL.as_millis()).unwrap_or(u64::MAX);
            let answer: Option<String> = within(
                "lease",
                redis::cmd("SET")
                    .arg(format!("{prefix}:lease"))
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut connection),
            )
            .await?;
            if answer.is_none() {
                return Ok(None);
            }
        }
        Ok(Some(Lease { token, _local: local }))
    }

    /// Extends the lease with `token` (see [`Lease::token`]); `Ok(false)` when it was lost
    /// (expired and taken by another).
    pub async fn renew(&self, token: &str) -> Result<bool, String> {
        let Store::Redis { connection, prefix } = &self.store else {
            return Ok(true);
        };
        let mut connection = connection.clone();
        let ttl_ms = u64::try_from(LEASE_TTL.as_millis()).unwrap_or(u64::MAX);
        let renewed: i64 = within(
            "lease renewal",
            redis::Script::new(RENEW)
                .key(format!("{prefix}:lease"))
                .arg(token)
                .arg(ttl_ms)
                .invoke_async(&mut connection),
        )
        .await?;
        Ok(renewed == 1)
    }

    /// Gives the lease up (only if still ours).
    pub async fn release(&self, lease: Lease) {
        if let Store::Redis { connection, prefix } = &self.store {
            let mut connection = connection.clone();
            let released: Result<i64, String> = within(
                "lease release",
                redis::Script::new(RELEASE)
                    .key(format!("{prefix}:lease"))
                    .arg(&lease.token)
                    .invoke_async(&mut connection),
            )
            .await;
            if let Err(error) = released {
                tracing::warn!(%error, "Could not release the Spotler pull lease; it expires by itself.");
            }
        }
        drop(lease);
    }

    fn cursor_file(dir: &Path, feed: &str) -> PathBuf {
        dir.join(format!("spotler-{feed}.cursor"))
    }

    /// The stored cursor of `feed`, if any.
    pub async fn load_cursor(&self, feed: &str) -> Result<Option<OffsetDateTime>, String> {
        match &self.store {
            Store::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                let key = format!("{prefix}:cursor:{feed}");
                let text: Option<String> =
                    within("cursor read", redis::cmd("GET").arg(&key).query_async(&mut connection)).await?;
                text.map(|t| parse_cursor(&t, &format!("Redis key {key}"))).transpose()
            }
            Store::Files { dir } => {
                let path = Self::cursor_file(dir, feed);
                match tokio::fs::read_to_string(&path).await {
                    Ok(text) => parse_cursor(&text, &path.display().to_string()).map(Some),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(error) => Err(format!("cannot read {}: {error}", path.display())),
                }
            }
        }
    }

    /// Stores the cursor of `feed`; `Ok(false)` when the lease was lost (nothing written).
    pub async fn store_cursor(&self, lease: &Lease, feed: &str, at: OffsetDateTime) -> Result<bool, String> {
        let text = format_cursor(at);
        match &self.store {
            Store::Redis { connection, prefix } => {
                let mut connection = connection.clone();
                let stored: i64 = within(
                    "cursor write",
                    redis::Script::new(STORE_CURSOR)
                        .key(format!("{prefix}:lease"))
                        .key(format!("{prefix}:cursor:{feed}"))
                        .arg(&lease.token)
                        .arg(&text)
                        .invoke_async(&mut connection),
                )
                .await?;
                Ok(stored == 1)
            }
            Store::Files { dir } => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let path = Self::cursor_file(dir, feed);
                let temporary = path.with_extension("cursor.tmp");
                tokio::fs::write(&temporary, format!("{text}\n"))
                    .await
                    .map_err(|e| format!("cannot write {}: {e}", temporary.display()))?;
                tokio::fs::rename(&temporary, &path)
                    .await
                    .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("inbound-coordination-{name}-{}", rand::random::<u64>()))
    }

    fn redis(namespace: &str) -> Coordinator {
        let connection = api_client::shared::connect_lazy("redis://127.0.0.1:6379/").unwrap_or_else(|e| panic!("{e}"));
        Coordinator::redis(connection, namespace)
    }

    #[tokio::test]
    async fn file_cursors_survive_a_new_coordinator() {
        let dir = temp_dir("files");
        let first = Coordinator::files(&dir, "ns");
        assert_eq!(first.load_cursor("bounces").await, Ok(None));
        let lease = first.acquire().await.ok().flatten().unwrap_or_else(|| panic!("free"));
        assert!(first.acquire().await.ok().flatten().is_none(), "one cycle at a time");
        let at = datetime!(2026-05-04 10:00:00 UTC);
        assert_eq!(first.store_cursor(&lease, "bounces", at).await, Ok(true));
        first.release(lease).await;
        let second = Coordinator::files(&dir, "ns");
        assert_eq!(second.load_cursor("bounces").await, Ok(Some(at)));
        assert_eq!(second.load_cursor("updates").await, Ok(None));
        tokio::fs::write(dir.join("ns/spotler-updates.cursor"), "garbage")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let error = second.load_cursor("updates").await.err().unwrap_or_default();
        assert!(error.contains("spotler-updates.cursor"), "{error}");
        let _removed = tokio::fs::remove_dir_all(&dir).await;
    }

    #[tokio::test]
    async fn one_redis_lease_for_all_replicas_and_fenced_cursors() {
        let namespace = format!("t-lease-{}", rand::random::<u64>());
        let (a, b) = (redis(&namespace), redis(&namespace));
        let lease = a
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("free"));
        assert!(
            b.acquire().await.unwrap_or_else(|e| panic!("{e}")).is_none(),
            "held by a"
        );
        assert_eq!(a.renew(lease.token()).await, Ok(true));
        let at = datetime!(2026-05-04 10:00:00 UTC);
        assert_eq!(a.store_cursor(&lease, "bounces", at).await, Ok(true));
        assert_eq!(b.load_cursor("bounces").await, Ok(Some(at)), "shared");
        a.release(lease).await;
        let taken = b
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("free again"));
        // A stale holder (a's old token) can neither renew nor move the cursor.
        let stale = Lease {
            token: "stale".to_owned(),
            _local: Arc::new(Mutex::new(()))
                .try_lock_owned()
                .unwrap_or_else(|_| unreachable!()),
        };
        assert_eq!(a.renew(stale.token()).await, Ok(false));
        assert_eq!(
            a.store_cursor(&stale, "bounces", at + time::Duration::hours(1)).await,
            Ok(false)
        );
        assert_eq!(b.load_cursor("bounces").await, Ok(Some(at)));
        b.release(taken).await;
        let mut connection =
            api_client::shared::connect_lazy("redis://127.0.0.1:6379/").unwrap_or_else(|e| panic!("{e}"));
        let _deleted: redis::RedisResult<i64> = redis::cmd("DEL")
            .arg(format!("switchyard:{namespace}:inbound:spotler:cursor:bounces"))
            .query_async(&mut connection)
            .await;
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_an_error_not_a_lease() {
        let connection = api_client::shared::connect_lazy("redis://127.0.0.1:1/").unwrap_or_else(|e| panic!("{e}"));
        let coordinator = Coordinator::redis(connection, "t");
        assert!(coordinator.acquire().await.is_err());
    }
}
