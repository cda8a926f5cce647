//! The budget shared by every replica: one GCRA state per window in Redis, checked and updated
//! atomically by a Lua script on the server's clock, plus a shared pause set by vendor
//! feedback. Each replica still smooths locally with `governor`; Redis is the source of truth.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The GCRA check of every window at once. KEYS: one TAT key per window, then the pause key.
/// ARGV: per window the emission interval τ and the burst, in microseconds and cells.
/// Returns `{1, 0}` when the call may go now (every window updated), or `{0, wait_us}`.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS - 1
local paused = tonumber(redis.call('GET', KEYS[n + 1]) or '0')
if paused > now then return {0, paused - now} end
local wait = 0
local tats = {}
for i = 1, n do
  local tau = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local new_tat = tat + tau
  local allow_at = new_tat - burst * tau
  if allow_at > now and allow_at - now > wait then wait = allow_at - now end
  tats[i] = new_tat
end
if wait > 0 then return {0, wait} end
for i = 1, n do
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + 1000)
end
return {1, 0}
";

/// Extends the shared pause to `now + ARGV[1]` microseconds (never shortens it).
const PAUSE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untl = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > current then
  redis.call('SET', KEYS[1], string.format('%.0f', untl), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
end
return 1
";

/// One window of the shared budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedWindow {
    /// Emission interval τ.
    pub interval: Duration,
    /// Burst (cells).
    pub burst: u32,
}

/// A destination's budget in Redis.
#[derive(Clone)]
pub struct SharedBudget {
    connection: ConnectionManager,
    window_keys: Vec<String>,
    pause_key: String,
    args: Vec<u64>,
    take: redis::Script,
    pause: redis::Script,
}

impl std::fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBudget")
            .field("keys", &self.window_keys)
            .finish_non_exhaustive()
    }
}

/// The answer of the shared budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send now.
    Go,
    /// Not before this long.
    Wait(Duration),
}

/// How long one Redis round trip may take before the replica falls back to its own share.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// [`connect_lazy`] when `REDIS_URL` is set (`None` keeps shared state in the process).
pub fn connect_optional(url: Option<&str>) -> Result<Option<ConnectionManager>, String> {
    url.map(connect_lazy).transpose()
}

/// A lazily connecting, self-reconnecting Redis connection for budgets (and other shared state).
pub fn connect_lazy(url: &str) -> Result<ConnectionManager, String> {
    let client = redis::Client::open(url).map_err(|e| format!("invalid REDIS_URL: {e}"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| format!("cannot set up the Redis connection: {e}"))
}

impl SharedBudget {
    /// The budget named `key` (e.g. `switchyard:<namespace>:budget:voucherify`) with the given
    /// windows.
    pub fn new(connection: ConnectionManager, key: &str, windows: &[SharedWindow]) -> Self {
        let window_keys = windows
            .iter()
            .map(|w| format!("{key}:w{}", w.interval.as_micros()))
            .collect();
        let args = windows
            .iter()
            .flat_map(|w| {
                [
                    u64::try_from(w.interval.as_micros()).unwrap_or(u64::MAX).max(1),
                    u64::from(w.burst),
                ]
            })
            .collect();
        Self {
            connection,
            window_keys,
            pause_key: format!("{key}:paused_until"),
            args,
            take: redis::Script::new(TAKE),
            pause: redis::Script::new(PAUSE),
        }
    }

    /// Takes one cell in every window, or says how long to wait.
    pub async fn take(&self) -> Result<Decision, String> {
        let mut invocation = self.take.prepare_invoke();
        for key in &self.window_keys {
            invocation.key(key);
        }
        invocation.key(&self.pause_key);
        for arg in &self.args {
            invocation.arg(*arg);
        }
        let mut connection = self.connection.clone();
        let answer: Result<Result<(i64, i64), redis::RedisError>, _> =
            tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async(&mut connection)).await;
        match answer {
            Ok(Ok((1, _))) => Ok(Decision::Go),
            Ok(Ok((_, wait_us))) => Ok(Decision::Wait(Duration::from_micros(
                u64::try_from(wait_us).unwrap_or(0),
            ))),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {REDIS_TIMEOUT:?}")),
        }
    }

    /// Pauses the destination for every replica for `wait`.
    pub async fn pause_for(&self, wait: Duration) -> Result<(), String> {
        let mut invocation = self.pause.prepare_invoke();
        invocation
            .key(&self.pause_key)
            .arg(u64::try_from(wait.as_micros()).unwrap_or(u64::MAX));
        let mut connection = self.connection.clone();
        match tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async::<i64>(&mut connection)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {REDIS_TIMEOUT:?}")),
        }
    }
}
