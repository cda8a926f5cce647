//! The access-token cache: fetched lazily, shared by every call, refreshed before it expires,
//! and dropped on a 401 so exactly one caller fetches a new one.
//!
//! One `tokio::sync::Mutex` guards the cached token and is held while a token is fetched, so
//! concurrent callers that find no valid token queue behind the one fetch instead of each
//! asking Froomle (which rate-limits authentication). Every token carries a generation number;
//! [`TokenCache::invalidate`] only drops the token a caller actually used, so a burst of 401s
//! answered to the same stale token causes one refresh, not one per caller.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use api_client::CallError;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token as fetched from the token endpoint.
#[derive(Debug)]
pub struct Fetched {
    /// The bearer token.
    pub access_token: SecretString,
    /// How long Froomle says it is valid.
    pub expires_in: Duration,
}

/// A cached bearer token (cheap to clone).
#[derive(Clone)]
pub struct Token {
    secret: Arc<SecretString>,
    generation: u64,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// The token text for the `Authorization: Bearer` header.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// Which fetch produced it (1 for the first).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

struct Cached {
    token: Token,
    refresh_at: Instant,
}

struct State {
    cached: Option<Cached>,
    generation: u64,
}

/// The token cache of one client (shared by its clones).
pub struct TokenCache {
    state: Mutex<State>,
    max_age: Duration,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// How long a token with lifetime `expires_in` is used before it is refreshed: a safety margin
/// (a tenth of the lifetime, at least 30 s, at most half of it) before it expires, and never
/// longer than `max_age` (Froomle recommends refreshing every 10 minutes).
pub fn refresh_after(expires_in: Duration, max_age: Duration) -> Duration {
    let margin = (expires_in / 10).max(Duration::from_secs(30)).min(expires_in / 2);
    expires_in.saturating_sub(margin).min(max_age)
}

impl TokenCache {
    /// An empty cache; tokens are used for at most `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Self {
            state: Mutex::new(State {
                cached: None,
                generation: 0,
            }),
            max_age,
        }
    }

    /// The cached token if it is still fresh; otherwise fetches one with `fetch` (one fetch at a
    /// time: concurrent callers wait for it and share its result).
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<Token, CallError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, CallError>>,
    {
        let mut state = self.state.lock().await;
        if let Some(cached) = &state.cached
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let fetched = fetch().await?;
        state.generation += 1;
        let token = Token {
            secret: Arc::new(fetched.access_token),
            generation: state.generation,
        };
        state.cached = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + refresh_after(fetched.expires_in, self.max_age),
        });
        Ok(token)
    }

    /// Drops `used` if it is still the cached token (Froomle refused it), so the next
    /// [`get`](Self::get) fetches a new one. A newer token is kept.
    pub async fn invalidate(&self, used: &Token) {
        let mut state = self.state.lock().await;
        if state
            .cached
            .as_ref()
            .is_some_and(|cached| cached.token.generation == used.generation)
        {
            state.cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    async fn fetcher(count: &AtomicU32, expires_in: Duration) -> Result<Fetched, CallError> {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        // A fetch takes a while, so concurrent callers really overlap.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(Fetched {
            access_token: SecretString::from(format!("token-{n}")),
            expires_in,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_fetch() {
        let cache = Arc::new(TokenCache::new(Duration::from_secs(600)));
        let count = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let cache = Arc::clone(&cache);
            let count = Arc::clone(&count);
            tasks.push(tokio::spawn(async move {
                cache
                    .get(|| fetcher(&count, Duration::from_secs(3600)))
                    .await
                    .map(|t| t.expose().to_owned())
            }));
        }
        for task in tasks {
            let token = task.await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(token.ok().as_deref(), Some("token-1"));
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn token_is_refreshed_before_it_expires() {
        let cache = TokenCache::new(Duration::from_secs(3600));
        let count = AtomicU32::new(0);
        let first = cache.get(|| fetcher(&count, Duration::from_secs(300))).await;
        assert_eq!(first.map(|t| t.generation()).ok(), Some(1));
        // 300 s lifetime → refreshed after 270 s, i.e. 30 s before it expires.
        tokio::time::advance(Duration::from_secs(260)).await;
        let same = cache.get(|| fetcher(&count, Duration::from_secs(300))).await;
        assert_eq!(same.map(|t| t.generation()).ok(), Some(1));
        tokio::time::advance(Duration::from_secs(15)).await;
        let fresh = cache.get(|| fetcher(&count, Duration::from_secs(300))).await;
        assert_eq!(fresh.map(|t| t.generation()).ok(), Some(2));
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn max_age_caps_a_long_lifetime() {
        let cache = TokenCache::new(Duration::from_secs(600));
        let count = AtomicU32::new(0);
        let _first = cache.get(|| fetcher(&count, Duration::from_secs(86_400))).await;
        tokio::time::advance(Duration::from_secs(601)).await;
        let second = cache.get(|| fetcher(&count, Duration::from_secs(86_400))).await;
        assert_eq!(second.map(|t| t.generation()).ok(), Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn invalidating_a_stale_token_keeps_the_newer_one() {
        let cache = TokenCache::new(Duration::from_secs(600));
        let count = AtomicU32::new(0);
        let stale = cache
            .get(|| fetcher(&count, Duration::from_secs(3600)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Two callers were refused with the same token: only the first drop counts.
        cache.invalidate(&stale).await;
        let fresh = cache
            .get(|| fetcher(&count, Duration::from_secs(3600)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        cache.invalidate(&stale).await;
        let still = cache
            .get(|| fetcher(&count, Duration::from_secs(3600)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((fresh.generation(), still.generation()), (2, 2));
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_caches_nothing() {
        let cache = TokenCache::new(Duration::from_secs(600));
        let refused = cache
            .get(|| async { Err(CallError::Permanent("froomle token: HTTP 401".into())) })
            .await;
        assert!(matches!(refused, Err(CallError::Permanent(_))));
        let count = AtomicU32::new(0);
        let token = cache.get(|| fetcher(&count, Duration::from_secs(3600))).await;
        assert_eq!(token.map(|t| t.generation()).ok(), Some(1));
    }

    #[test]
    fn refresh_margin_rules() {
        let day = Duration::from_secs(86_400);
        assert_eq!(refresh_after(day, day), Duration::from_secs(86_400 - 8_640));
        assert_eq!(refresh_after(day, Duration::from_secs(600)), Duration::from_secs(600));
        assert_eq!(refresh_after(Duration::from_secs(40), day), Duration::from_secs(20));
        assert_eq!(refresh_after(Duration::ZERO, day), Duration::ZERO);
    }
}
