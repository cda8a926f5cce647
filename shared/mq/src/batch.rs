//! A small batcher shared by the workers: handlers submit one item each and await its own
//! result, while one task collects items into batches (up to `max_items`, waiting at most
//! `linger` after the first) and flushes each batch with one provider call (voucher-events:
//! Bloomreach batch commands; contact-sync: Spotler `/contact/list`).
//!
//! Each flush runs in its own task, so collecting the next batch continues while a call is in
//! flight; the provider budget bounds how many calls actually run at once. A flush that
//! returns fewer results than items, or panics, leaves the missing submitters with
//! [`Stopped`], which handlers treat as retriable (the runtime redelivers the message).
//! If a handler gives up (its delivery hold ran out) after its item was taken into a batch, the
//! item may still be sent: forwarding is at-least-once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Batch size and linger of one batcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// The most items in one flush.
    pub max_items: usize,
    /// How long to wait for more items after the first one arrived.
    pub linger: Duration,
}

/// The longest a batch may wait for more items.
const MAX_LINGER: Duration = Duration::from_secs(5);

/// Reads a batch size from `name` (`default` when unset), which must be between 1 and the
/// vendor's `limit` per call; the error names `vendor`.
pub fn read_size(
    strings: &dyn settings::Strings,
    name: &str,
    default: usize,
    limit: usize,
    vendor: &str,
) -> Result<usize, settings::ConfigError> {
    let size = settings::parse_or(strings, name, default)?;
    if size == 0 || size > limit {
        return Err(settings::ConfigError::invalid(
            name,
            format!("must be between 1 and {limit} ({vendor}'s limit per call)"),
        ));
    }
    Ok(size)
}

/// Reads a batch linger from `name` (`default` when unset). It delays every `item`, so it must
/// be at most 5 s and shorter than `max_wait` (half of `SWITCHYARD_MAX_HOLD`).
pub fn read_linger(
    strings: &dyn settings::Strings,
    name: &str,
    default: Duration,
    max_wait: Duration,
    item: &str,
) -> Result<Duration, settings::ConfigError> {
    let linger = settings::duration_or(strings, name, default)?;
    if linger > MAX_LINGER || linger >= max_wait {
        return Err(settings::ConfigError::invalid(
            name,
            format!("must be at most 5s and shorter than half of SWITCHYARD_MAX_HOLD (it delays every {item})"),
        ));
    }
    Ok(linger)
}

/// The batcher is gone or its flush did not answer for this item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {0} batcher did not answer for this item")]
pub struct Stopped(pub &'static str);

struct Job<I, O> {
    item: I,
    reply: oneshot::Sender<O>,
}

/// Submits items to a batching task (see the module docs). Cloning shares the task.
pub struct Batcher<I, O> {
    name: &'static str,
    jobs: mpsc::Sender<Job<I, O>>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            jobs: self.jobs.clone(),
        }
    }
}

impl<I, O> std::fmt::Debug for Batcher<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the batching task (call within a Tokio runtime). `flush` gets each batch and
    /// must return one result per item, in order. The task ends when every `Batcher` clone
    /// is dropped, after flushing what it holds.
    pub fn spawn<F, Fut>(name: &'static str, settings: BatchSettings, flush: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        let max_items = settings.max_items.max(1);
        let (jobs, receiver) = mpsc::channel(max_items.saturating_mul(4));
        tokio::spawn(collect(
            receiver,
            BatchSettings {
                max_items,
                linger: settings.linger,
            },
            Arc::new(flush),
        ));
        Self { name, jobs }
    }

    /// Adds `item` to the next batch and waits for its result.
    pub async fn submit(&self, item: I) -> Result<O, Stopped> {
        let (reply, result) = oneshot::channel();
        self.jobs
            .send(Job { item, reply })
            .await
            .map_err(|_| Stopped(self.name))?;
        result.await.map_err(|_| Stopped(self.name))
    }
}

async fn collect<I, O, F, Fut>(mut receiver: mpsc::Receiver<Job<I, O>>, settings: BatchSettings, flush: Arc<F>)
where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<O>> + Send + 'static,
{
    while let Some(first) = receiver.recv().await {
        let mut jobs = vec![first];
        let deadline = Instant::now() + settings.linger;
        while jobs.len() < settings.max_items {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(job)) => jobs.push(job),
                // Every sender is gone, or the linger is over: flush what we have.
                Ok(None) | Err(_) => break,
            }
        }
        let flush = Arc::clone(&flush);
        tokio::spawn(async move {
            let (items, replies): (Vec<I>, Vec<oneshot::Sender<O>>) =
                jobs.into_iter().map(|job| (job.item, job.reply)).unzip();
            let results = flush(items).await;
            for (reply, result) in replies.into_iter().zip(results) {
                // A closed receiver means the handler gave up on this delivery; the broker
                // redelivers the message, so there is nothing to do here.
                if reply.send(result).is_err() {
                    tracing::debug!("A batched item's handler stopped waiting for its result.");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    type Calls = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A batcher whose flush records each batch and answers `item * 10`.
    fn recording(max_items: usize, linger: Duration) -> (Batcher<u32, u32>, Calls) {
        let calls: Calls = Arc::default();
        let seen = Arc::clone(&calls);
        let batcher = Batcher::spawn("test", BatchSettings { max_items, linger }, move |items: Vec<u32>| {
            let seen = Arc::clone(&seen);
            async move {
                if let Ok(mut calls) = seen.lock() {
                    calls.push(items.clone());
                }
                items.into_iter().map(|i| i * 10).collect::<Vec<_>>()
            }
        });
        (batcher, calls)
    }

    fn batches(calls: &Calls) -> Vec<Vec<u32>> {
        calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    #[tokio::test]
    async fn concurrent_items_share_one_flush_and_get_their_own_results() {
        let (batcher, calls) = recording(50, Duration::from_millis(50));
        let submits = (0..20).map(|i| {
            let batcher = batcher.clone();
            async move { batcher.submit(i).await }
        });
        let results = futures_join(submits).await;
        assert_eq!(results, (0..20).map(|i| Ok(i * 10)).collect::<Vec<_>>());
        assert_eq!(batches(&calls).len(), 1, "{:?}", batches(&calls));
    }

    #[tokio::test]
    async fn batches_never_exceed_the_maximum() {
        let (batcher, calls) = recording(50, Duration::from_millis(50));
        let submits = (0..120).map(|i| {
            let batcher = batcher.clone();
            async move { batcher.submit(i).await }
        });
        let results = futures_join(submits).await;
        assert!(results.iter().all(Result::is_ok));
        let sizes: Vec<usize> = batches(&calls).iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 120);
        assert!(sizes.iter().all(|n| *n <= 50), "{sizes:?}");
        assert_eq!(sizes.len(), 3, "{sizes:?}");
    }

    #[tokio::test]
    async fn a_lone_item_is_flushed_after_the_linger() {
        let (batcher, calls) = recording(50, Duration::from_millis(20));
        let started = Instant::now();
        assert_eq!(batcher.submit(7).await, Ok(70));
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert_eq!(batches(&calls), vec![vec![7]]);
    }

    #[tokio::test]
    async fn a_short_answer_leaves_the_rest_stopped() {
        let batcher = Batcher::spawn(
            "short",
            BatchSettings {
                max_items: 10,
                linger: Duration::from_millis(30),
            },
            |items: Vec<u32>| async move { items.into_iter().take(1).collect::<Vec<_>>() },
        );
        let results = futures_join((0..3).map(|i| {
            let batcher = batcher.clone();
            async move { batcher.submit(i).await }
        }))
        .await;
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        assert_eq!(results.iter().filter(|r| **r == Err(Stopped("short"))).count(), 2);
    }

    /// Runs the futures concurrently and returns their outputs in order.
    async fn futures_join<T: Send + 'static>(
        futures: impl IntoIterator<Item = impl Future<Output = T> + Send + 'static>,
    ) -> Vec<T> {
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut out = Vec::new();
        for handle in handles {
            match handle.await {
                Ok(value) => out.push(value),
                Err(error) => panic!("task failed: {error}"),
            }
        }
        out
    }
}
