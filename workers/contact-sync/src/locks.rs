//! Per-key mutual exclusion inside one process: two messages about the same contact are
//! handled one after the other, so a read-modify-write (the purchase dates) sees the other's
//! write. Across replicas the broker gives no such order; see ARCHITECTURE.md.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// A set of async locks, one per key, created on demand and dropped when unused.
#[derive(Debug, Default)]
pub struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// Held while the key is locked; releasing it forgets the key when nobody else waits.
#[derive(Debug)]
pub struct KeyGuard<'a> {
    owner: &'a KeyedLocks,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    /// Waits until `key` is free and locks it.
    pub async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(locks.entry(key.to_owned()).or_default())
        };
        let guard = lock.lock_owned().await;
        KeyGuard {
            owner: self,
            key: key.to_owned(),
            guard: Some(guard),
        }
    }

    /// How many keys are tracked (for tests).
    pub fn len(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self
            .owner
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Only the map holds the Arc now: nobody waits for this key, forget it.
        if locks.get(&self.key).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn same_key_is_serialized_and_forgotten_after() {
        let locks = Arc::new(KeyedLocks::default());
        let first = locks.lock("c-1").await;
        let other = Arc::clone(&locks);
        let waiter = tokio::spawn(async move {
            let _guard = other.lock("c-1").await;
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the second lock of the same key waits");
        let _unrelated = locks.lock("c-2").await;
        drop(first);
        assert!(waiter.await.is_ok());
        drop(_unrelated);
        assert!(locks.is_empty());
    }
}
