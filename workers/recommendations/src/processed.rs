//! The processed-message record: which tracking messages already had their events accepted by
//! Froomle, keyed by `message_id`, so a redelivery sends nothing twice (Froomle events have no
//! idempotency key of their own).
//!
//! In process, bounded in both time (TTL) and size (the oldest entries go first). A message
//! being handled is *claimed*; a second delivery of it meanwhile (a redelivery racing the
//! first) is told to come back later rather than sending in parallel. A claim that is dropped
//! without being marked done (the call failed) is released, so the retry can send.
//!
//! Limitation: with several replicas a redelivery can reach another replica, whose record does
//! not know the message; a shared record in Redis closes that gap.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    InFlight,
    Done(Instant),
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Done entries, oldest first.
    order: VecDeque<(Instant, String)>,
}

/// The record.
#[derive(Debug)]
pub struct Processed {
    inner: Mutex<Inner>,
    ttl: Duration,
    capacity: usize,
}

/// What [`Processed::claim`] found.
#[derive(Debug)]
pub enum Claim<'a> {
    /// Not seen (or forgotten): handle it, then call [`ClaimGuard::done`].
    Fresh(ClaimGuard<'a>),
    /// Already handled: do nothing.
    AlreadyDone,
    /// Another delivery of the same message is being handled right now.
    InProgress,
}

/// A claimed message; dropping it without [`done`](Self::done) releases the claim.
#[derive(Debug)]
pub struct ClaimGuard<'a> {
    owner: &'a Processed,
    id: String,
    finished: bool,
}

impl Processed {
    /// A record that remembers a done message for `ttl`, and at most `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims `message_id`.
    pub fn claim(&self, message_id: &str) -> Claim<'_> {
        let now = Instant::now();
        let mut inner = self.lock();
        self.forget_expired(&mut inner, now);
        match inner.entries.get(message_id) {
            Some(Entry::Done(_)) => Claim::AlreadyDone,
            Some(Entry::InFlight) => Claim::InProgress,
            None => {
                inner.entries.insert(message_id.to_owned(), Entry::InFlight);
                Claim::Fresh(ClaimGuard {
                    owner: self,
                    id: message_id.to_owned(),
                    finished: false,
                })
            }
        }
    }

    /// How many messages are remembered as done.
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// Whether nothing is remembered as done.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn forget_expired(&self, inner: &mut Inner, now: Instant) {
        while let Some((at, _)) = inner.order.front() {
            let expired = now.saturating_duration_since(*at) >= self.ttl;
            if !expired && inner.order.len() <= self.capacity {
                break;
            }
            if let Some((at, id)) = inner.order.pop_front()
                && inner.entries.get(&id) == Some(&Entry::Done(at))
            {
                inner.entries.remove(&id);
            }
        }
    }
}

impl ClaimGuard<'_> {
    /// Records the message as handled.
    pub fn done(mut self) {
        let now = Instant::now();
        let mut inner = self.owner.lock();
        inner.entries.insert(self.id.clone(), Entry::Done(now));
        inner.order.push_back((now, self.id.clone()));
        self.owner.forget_expired(&mut inner, now);
        self.finished = true;
    }
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut inner = self.owner.lock();
        if inner.entries.get(&self.id) == Some(&Entry::InFlight) {
            inner.entries.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_fresh(claim: &Claim<'_>) -> bool {
        matches!(claim, Claim::Fresh(_))
    }

    #[tokio::test(start_paused = true)]
    async fn a_done_message_is_not_handled_again() {
        let record = Processed::new(Duration::from_secs(60), 10);
        match record.claim("m-1") {
            Claim::Fresh(guard) => guard.done(),
            other => panic!("expected a fresh claim, got {other:?}"),
        }
        assert!(matches!(record.claim("m-1"), Claim::AlreadyDone));
        assert!(is_fresh(&record.claim("m-2")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_concurrent_delivery_is_told_to_wait_and_a_failed_one_is_released() {
        let record = Processed::new(Duration::from_secs(60), 10);
        let first = record.claim("m-1");
        assert!(is_fresh(&first));
        assert!(matches!(record.claim("m-1"), Claim::InProgress));
        drop(first);
        assert!(is_fresh(&record.claim("m-1")), "a released claim can be taken again");
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_the_ttl() {
        let record = Processed::new(Duration::from_secs(60), 10);
        if let Claim::Fresh(guard) = record.claim("m-1") {
            guard.done();
        }
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(matches!(record.claim("m-1"), Claim::AlreadyDone));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(is_fresh(&record.claim("m-1")));
        assert!(record.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_entries_go_first_when_full() {
        let record = Processed::new(Duration::from_secs(3600), 3);
        for id in ["a", "b", "c", "d"] {
            if let Claim::Fresh(guard) = record.claim(id) {
                guard.done();
            }
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(record.len(), 3);
        assert!(is_fresh(&record.claim("a")), "the oldest was forgotten");
        for id in ["b", "c", "d"] {
            assert!(matches!(record.claim(id), Claim::AlreadyDone), "{id}");
        }
    }
}
