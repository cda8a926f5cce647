//! Settling deliveries: coalesced `multiple` acks, requeueing nacks.
//!
//! Deliveries are handled concurrently and finish out of order, but every `basic.ack` costs the
//! broker a frame and, on a quorum queue, a settle command in the Raft log. So the consumer does
//! not ack each delivery itself: it hands the settlement to one task per session, which acks
//! every run of finished deliveries with a single `multiple` ack.
//!
//! A `multiple` ack of tag T settles every unacked delivery of the channel up to T, so the task
//! only ever acks up to the lowest delivery still being handled (`low`): everything below it is
//! finished, and tags above it wait. A delivery that holds `low` for long (a slow call, a
//! parked retry) must not hold back the prefetch window, so finished deliveries above `low`
//! that waited [`LINGER`] are acked one by one. Nacks (requeue after an unconfirmed outcome)
//! go out at once, on their own.
//!
//! Invariants: a tag is registered ([`Settler::delivered`]) before its handling starts, in
//! delivery order, by the consuming loop, so when the task acks up to T it knows every tag
//! below T; a tag is acked at most once; a tag that is never settled (its task was aborted at
//! the drain deadline) is never covered by a `multiple` ack and goes back to the queue when
//! the channel closes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use lapin::Acker;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::warn;

/// How long a finished delivery waits for the deliveries before it to finish, so that one
/// `multiple` ack covers them all, before it is acked on its own.
pub const LINGER: Duration = Duration::from_millis(10);

/// The most events applied before the acks they allow are sent.
const MAX_EVENTS_PER_ROUND: usize = 1024;

enum Event {
    Delivered(u64),
    Ack(u64, Acker),
    Nack(u64, Acker),
    Finish(oneshot::Sender<()>),
}

/// The handle the consuming loop and the handling tasks settle through.
#[derive(Debug, Clone)]
pub struct Settler {
    events: mpsc::UnboundedSender<Event>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Delivered(tag) => write!(f, "Delivered({tag})"),
            Self::Ack(tag, _) => write!(f, "Ack({tag})"),
            Self::Nack(tag, _) => write!(f, "Nack({tag})"),
            Self::Finish(_) => f.write_str("Finish"),
        }
    }
}

impl Settler {
    /// Starts the settling task of one consuming channel.
    pub fn start() -> (Self, JoinHandle<()>) {
        let (events, receiver) = mpsc::unbounded_channel();
        (Self { events }, tokio::spawn(settle(receiver)))
    }

    /// Registers a delivery before its handling starts (in delivery order).
    pub fn delivered(&self, tag: u64) {
        // The task outlives every handle's use within a session; a send can fail only after
        // `finish`, when nothing is acked any more and the broker requeues on close.
        let _sent = self.events.send(Event::Delivered(tag));
    }

    /// Acks a finished delivery (coalesced with its neighbours).
    pub fn ack(&self, tag: u64, acker: Acker) {
        let _sent = self.events.send(Event::Ack(tag, acker));
    }

    /// Nacks a delivery with requeue, at once.
    pub fn requeue(&self, tag: u64, acker: Acker) {
        let _sent = self.events.send(Event::Nack(tag, acker));
    }

    /// Acks everything finished so far and stops the task.
    pub async fn finish(&self) {
        let (done, finished) = oneshot::channel();
        if self.events.send(Event::Finish(done)).is_ok() {
            let _finished = finished.await;
        }
    }
}

/// The settling state of one channel.
#[derive(Debug)]
struct Ledger<A> {
    /// Delivered and not yet settled.
    handling: BTreeSet<u64>,
    /// Finished, waiting for a `multiple` ack, with when they finished.
    finished: BTreeMap<u64, (A, Instant)>,
}

impl<A> Default for Ledger<A> {
    fn default() -> Self {
        Self {
            handling: BTreeSet::new(),
            finished: BTreeMap::new(),
        }
    }
}

/// What to send now.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    /// One `multiple` ack up to this tag.
    multiple: Option<u64>,
    /// Single acks.
    single: Vec<u64>,
}

impl<A: Clone> Ledger<A> {
    fn apply_delivered(&mut self, tag: u64) {
        self.handling.insert(tag);
    }

    fn apply_finished(&mut self, tag: u64, acker: A, at: Instant) {
        self.handling.remove(&tag);
        self.finished.insert(tag, (acker, at));
    }

    fn forget(&mut self, tag: u64) {
        self.handling.remove(&tag);
    }

    /// Takes what can be acked now: everything finished below the lowest tag still being
    /// handled as one `multiple` ack, and what finished before `linger_since` one by one.
    fn take(&mut self, linger_since: Instant) -> (Plan, Vec<(u64, A)>) {
        let low = self.handling.first().copied().unwrap_or(u64::MAX);
        let above = self.finished.split_off(&low);
        let below = std::mem::replace(&mut self.finished, above);
        let mut plan = Plan::default();
        let mut ackers = Vec::new();
        if let Some((&tag, (acker, _))) = below.last_key_value() {
            plan.multiple = Some(tag);
            ackers.push((tag, acker.clone()));
        }
        let waited: Vec<u64> = self
            .finished
            .iter()
            .filter(|(_, (_, at))| *at <= linger_since)
            .map(|(tag, _)| *tag)
            .collect();
        for tag in waited {
            if let Some((acker, _)) = self.finished.remove(&tag) {
                plan.single.push(tag);
                ackers.push((tag, acker));
            }
        }
        (plan, ackers)
    }

    /// When the oldest finished delivery that waits will have lingered enough.
    fn next_deadline(&self) -> Option<Instant> {
        self.finished.values().map(|(_, at)| *at + LINGER).min()
    }
}

async fn settle(mut events: mpsc::UnboundedReceiver<Event>) {
    let mut ledger: Ledger<Acker> = Ledger::default();
    loop {
        let event = match ledger.next_deadline() {
            Some(deadline) => tokio::select! {
                event = events.recv() => event,
                () = tokio::time::sleep_until(deadline) => {
                    send(&mut ledger, Instant::now() - LINGER).await;
                    continue;
                }
            },
            None => events.recv().await,
        };
        let Some(event) = event else { break };
        let mut finish = None;
        // What is already queued (up to a bound, so acks go out under any load) is applied
        // before acking, so one ack covers it all.
        let mut next = Some(event);
        let mut applied = 0;
        while let Some(event) = next {
            applied += 1;
            match event {
                Event::Delivered(tag) => ledger.apply_delivered(tag),
                Event::Ack(tag, acker) => ledger.apply_finished(tag, acker, Instant::now()),
                Event::Nack(tag, acker) => {
                    ledger.forget(tag);
                    let requeue = BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    };
                    if let Err(error) = acker.nack(requeue).await {
                        warn!(%error, "Nack failed; the broker requeues the message when the channel closes.");
                    }
                }
                Event::Finish(done) => finish = Some(done),
            }
            next = if applied < MAX_EVENTS_PER_ROUND {
                events.try_recv().ok()
            } else {
                None
            };
        }
        match finish {
            Some(done) => {
                // Whatever finished is acked now, whether or not it lingered.
                send(&mut ledger, Instant::now()).await;
                let _done = done.send(());
                break;
            }
            None => send(&mut ledger, Instant::now() - LINGER).await,
        }
    }
}

async fn send(ledger: &mut Ledger<Acker>, linger_since: Instant) {
    let (plan, ackers) = ledger.take(linger_since);
    for (tag, acker) in ackers {
        let multiple = plan.multiple == Some(tag);
        match acker.ack(BasicAckOptions { multiple }).await {
            Ok(true) => {}
            Ok(false) => warn!("Ack not sent (channel gone); the broker redelivers."),
            Err(error) => warn!(%error, "Ack failed; the broker redelivers."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finished_deliveries_below_the_lowest_in_handling_share_one_multiple_ack() {
        let mut ledger: Ledger<()> = Ledger::default();
        let now = Instant::now();
        for tag in 1..=5 {
            ledger.apply_delivered(tag);
        }
        ledger.apply_finished(2, (), now);
        ledger.apply_finished(1, (), now);
        ledger.apply_finished(4, (), now);
        // 3 is still being handled: 1 and 2 go in one ack up to 2; 4 waits.
        let (plan, _) = ledger.take(now - LINGER);
        assert_eq!(
            plan,
            Plan {
                multiple: Some(2),
                single: vec![]
            }
        );
        ledger.apply_finished(3, (), now);
        ledger.apply_finished(5, (), now);
        let (plan, ackers) = ledger.take(now - LINGER);
        assert_eq!(
            plan,
            Plan {
                multiple: Some(5),
                single: vec![]
            }
        );
        assert_eq!(ackers.len(), 1);
        assert!(ledger.finished.is_empty() && ledger.handling.is_empty());
    }

    #[tokio::test]
    async fn a_slow_delivery_holds_the_others_only_for_the_linger() {
        let mut ledger: Ledger<()> = Ledger::default();
        let start = Instant::now();
        for tag in 10..=13 {
            ledger.apply_delivered(tag);
        }
        ledger.apply_finished(11, (), start);
        ledger.apply_finished(12, (), start + Duration::from_millis(5));
        // 10 is slow: before the linger nothing is acked.
        assert_eq!(ledger.take(start - Duration::from_millis(1)).0, Plan::default());
        assert_eq!(ledger.next_deadline(), Some(start + LINGER));
        // 11 lingered long enough; 12 not yet.
        let (plan, _) = ledger.take(start);
        assert_eq!(
            plan,
            Plan {
                multiple: None,
                single: vec![11]
            }
        );
        // Once 10 is requeued, 12 is below the lowest in handling (13) and goes as a multiple.
        ledger.forget(10);
        let (plan, _) = ledger.take(start - LINGER);
        assert_eq!(
            plan,
            Plan {
                multiple: Some(12),
                single: vec![]
            }
        );
        assert_eq!(ledger.handling.iter().copied().collect::<Vec<_>>(), vec![13]);
    }

    #[tokio::test]
    async fn nothing_is_acked_while_everything_below_is_in_handling() {
        let mut ledger: Ledger<()> = Ledger::default();
        let now = Instant::now();
        ledger.apply_delivered(1);
        ledger.apply_delivered(2);
        assert_eq!(ledger.take(now).0, Plan::default());
        assert_eq!(ledger.next_deadline(), None);
    }
}
