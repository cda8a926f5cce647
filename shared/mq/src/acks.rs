//! Settling deliveries: coalesced `multiple` acks, requeueing nacks.
//!
//! Deliveries are handled concurrently and finish out of order, but every `basic.ack` costs the
//! broker a frame and, on a quorum queue, a settle command in the Raft log. So the consumer does
//! not ack each delivery itself: it hands the settlement to one task per session, which acks
//! every run of finished deliveries with a single `multiple` ack.
//!
//! A `multiple` ack of tag T settles every unacked delivery of the channel up to T, so the task
//! only ever acks up to the lowest delivery still being handled (`low`): everything below it is
//! finished, and tags above it wait. The run below `low` goes out once a batch is ready
//! ([`ACK_BATCH`], at most half the prefetch) or its oldest waited [`COALESCE`] (5 ms): under
//! a backlog runs form by themselves, but in a paced stream each delivery finishes before the
//! next arrives and would be acked alone. A delivery that holds `low` for long (a slow call, a
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

/// How long finished deliveries below the lowest one still being handled wait for more to
/// join their `multiple` ack, unless [`ACK_BATCH`] are ready first. Under a paced stream every
/// delivery finishes before the next arrives, and acking each at once costs the broker one
/// settle command per message.
pub const COALESCE: Duration = Duration::from_millis(5);

/// How many finished deliveries make a `multiple` ack go out without waiting for [`COALESCE`]:
/// at most this many, and never more than half the prefetch, so waiting acks never fill the
/// window the broker delivers into (with a prefetch of 1 every ack goes at once).
pub const ACK_BATCH: usize = 64;

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
    /// Starts the settling task of one consuming channel whose prefetch is `prefetch`.
    pub fn start(prefetch: u16) -> (Self, JoinHandle<()>) {
        let (events, receiver) = mpsc::unbounded_channel();
        (Self { events }, tokio::spawn(settle(receiver, Ledger::new(prefetch))))
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
    /// Finished deliveries that make a `multiple` ack go out at once.
    batch: usize,
    /// Delivered and not yet settled.
    handling: BTreeSet<u64>,
    /// Finished, waiting for a `multiple` ack, with when they finished.
    finished: BTreeMap<u64, (A, Instant)>,
}

impl<A> Ledger<A> {
    fn new(prefetch: u16) -> Self {
        Self {
            batch: (usize::from(prefetch) / 2).clamp(1, ACK_BATCH),
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

    /// Takes what can be acked at `now`: everything finished below the lowest tag still being
    /// handled as one `multiple` ack once a batch is ready or the oldest of them waited
    /// [`COALESCE`], and what finished [`LINGER`] ago above it one by one.
    fn take(&mut self, now: Instant) -> (Plan, Vec<(u64, A)>) {
        let linger_since = now.checked_sub(LINGER).unwrap_or(now);
        let coalesce_since = now.checked_sub(COALESCE).unwrap_or(now);
        let low = self.handling.first().copied().unwrap_or(u64::MAX);
        let mut plan = Plan::default();
        let mut ackers = Vec::new();
        let mut below = self.finished.range(..low);
        let ready = below.clone().nth(self.batch - 1).is_some() || below.any(|(_, (_, at))| *at <= coalesce_since);
        if ready {
            let above = self.finished.split_off(&low);
            let below = std::mem::replace(&mut self.finished, above);
            if let Some((&tag, (acker, _))) = below.last_key_value() {
                plan.multiple = Some(tag);
                ackers.push((tag, acker.clone()));
            }
        }
        let waited: Vec<u64> = self
            .finished
            .iter()
            .filter(|(tag, (_, at))| **tag > low && *at <= linger_since)
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

    /// When the oldest finished delivery that waits may be acked: after [`COALESCE`] if it is
    /// below the lowest delivery still being handled, else after [`LINGER`].
    fn next_deadline(&self) -> Option<Instant> {
        let low = self.handling.first().copied().unwrap_or(u64::MAX);
        self.finished
            .iter()
            .map(|(tag, (_, at))| *at + if *tag < low { COALESCE } else { LINGER })
            .min()
    }
}

async fn settle(mut events: mpsc::UnboundedReceiver<Event>, mut ledger: Ledger<Acker>) {
    loop {
        let event = match ledger.next_deadline() {
            Some(deadline) => tokio::select! {
                event = events.recv() => event,
                () = tokio::time::sleep_until(deadline) => {
                    send(&mut ledger, Instant::now()).await;
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
                // Whatever finished is acked now, whether or not it waited.
                send(&mut ledger, Instant::now() + LINGER).await;
                let _done = done.send(());
                break;
            }
            None => send(&mut ledger, Instant::now()).await,
        }
    }
}

async fn send(ledger: &mut Ledger<Acker>, now: Instant) {
    let (plan, ackers) = ledger.take(now);
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
        let mut ledger: Ledger<()> = Ledger::new(200);
        let now = Instant::now();
        for tag in 1..=5 {
            ledger.apply_delivered(tag);
        }
        ledger.apply_finished(2, (), now);
        ledger.apply_finished(1, (), now);
        ledger.apply_finished(4, (), now);
        // 3 is still being handled: 1 and 2 go in one ack up to 2 once they waited; 4 waits.
        let (plan, _) = ledger.take(now + COALESCE);
        assert_eq!(
            plan,
            Plan {
                multiple: Some(2),
                single: vec![]
            }
        );
        ledger.apply_finished(3, (), now);
        ledger.apply_finished(5, (), now);
        let (plan, ackers) = ledger.take(now + COALESCE);
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
    async fn a_multiple_ack_waits_for_more_unless_a_batch_is_ready() {
        let mut ledger: Ledger<()> = Ledger::new(200);
        let start = Instant::now();
        ledger.apply_delivered(1);
        ledger.apply_finished(1, (), start);
        // Alone and fresh: it waits for company, and the task wakes when it waited enough.
        assert_eq!(ledger.take(start).0, Plan::default());
        assert_eq!(ledger.next_deadline(), Some(start + COALESCE));
        let later = start + Duration::from_millis(1);
        for tag in 2..=u64::try_from(ACK_BATCH).unwrap_or(u64::MAX) {
            ledger.apply_delivered(tag);
            ledger.apply_finished(tag, (), later);
        }
        // A full batch goes at once, one ack for all of it.
        let (plan, ackers) = ledger.take(later);
        assert_eq!(plan.multiple, u64::try_from(ACK_BATCH).ok());
        assert!(plan.single.is_empty());
        assert_eq!(ackers.len(), 1);
        assert_eq!(ledger.next_deadline(), None);
    }

    #[tokio::test]
    async fn waiting_acks_never_fill_a_small_prefetch_window() {
        let now = Instant::now();
        // Prefetch 1: the broker delivers nothing more until the ack, so it goes at once.
        let mut ledger: Ledger<()> = Ledger::new(1);
        ledger.apply_delivered(1);
        ledger.apply_finished(1, (), now);
        assert_eq!(ledger.take(now).0.multiple, Some(1));
        // Prefetch 6: three finished deliveries are half the window and go at once.
        let mut ledger: Ledger<()> = Ledger::new(6);
        for tag in 1..=3 {
            ledger.apply_delivered(tag);
            ledger.apply_finished(tag, (), now);
            let expected = (tag == 3).then_some(3);
            assert_eq!(ledger.take(now).0.multiple, expected, "after {tag}");
        }
    }

    #[tokio::test]
    async fn a_slow_delivery_holds_the_others_only_for_the_linger() {
        let mut ledger: Ledger<()> = Ledger::new(200);
        let start = Instant::now();
        for tag in 10..=13 {
            ledger.apply_delivered(tag);
        }
        ledger.apply_finished(11, (), start);
        ledger.apply_finished(12, (), start + Duration::from_millis(5));
        // 10 is slow: before the linger nothing is acked.
        assert_eq!(
            ledger.take(start + LINGER - Duration::from_millis(1)).0,
            Plan::default()
        );
        assert_eq!(ledger.next_deadline(), Some(start + LINGER));
        // 11 lingered long enough; 12 not yet.
        let (plan, _) = ledger.take(start + LINGER);
        assert_eq!(
            plan,
            Plan {
                multiple: None,
                single: vec![11]
            }
        );
        // Once 10 is requeued, 12 is below the lowest in handling (13) and goes as a multiple.
        ledger.forget(10);
        let (plan, _) = ledger.take(start + LINGER);
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
        let mut ledger: Ledger<()> = Ledger::new(200);
        let now = Instant::now();
        ledger.apply_delivered(1);
        ledger.apply_delivered(2);
        assert_eq!(ledger.take(now + LINGER).0, Plan::default());
        assert_eq!(ledger.next_deadline(), None);
    }
}
