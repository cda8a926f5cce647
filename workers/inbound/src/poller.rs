//! The scheduled Spotler pull: bounces (`contact.bounced`) and changed contacts
//! (`contact.updated`), every `INBOUND_SPOTLER_POLL_INTERVAL`.
//!
//! A cycle takes the pull lease (see [`crate::coordination`]; a replica without it skips the
//! cycle), then for each feed pulls the windows from its cursor up to `now − lag`, at most
//! `max_window` long each, following every page. Each page's messages are published and
//! confirmed before the next page is fetched; the cursor moves to a window's `toDate` only after
//! every message of the window was confirmed. A failure (Spotler, broker, lease lost) ends the
//! feed's cycle without moving its cursor, so the next cycle pulls the same window again: no
//! gap, and the messages already published come back with the same ids (derived from the
//! Spotler records), which the processed-event ledger skips and consumers dedup on. Failed
//! cycles are retried sooner than the interval (5 s, doubling up to it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api_client::CallError;
use messages::Outgoing;
use provider_spotler::{SpotlerClient, Window};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::SpotlerPull;
use crate::coordination::{Coordinator, LEASE_RENEW_EVERY, Lease};
use crate::deliver::{DeliverError, Deliverer};
use crate::metrics::InboundMetrics;
use crate::sources::{self, spotler};

/// The first retry delay after a failed cycle.
const FIRST_RETRY: Duration = Duration::from_secs(5);

/// A pulled feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// `GET /contact/bounces/list` → `contact.bounced`.
    Bounces,
    /// `GET /contact/updates/list` → `contact.updated`.
    Updates,
}

impl Feed {
    /// Both feeds, in pull order.
    pub const ALL: [Self; 2] = [Self::Bounces, Self::Updates];

    /// The feed's name (cursor key, metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bounces => "bounces",
            Self::Updates => "updates",
        }
    }
}

/// What one cycle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Whether this replica held the lease (otherwise it did nothing).
    pub leader: bool,
    /// Windows completed (cursor moved).
    pub windows: usize,
    /// Messages published and confirmed.
    pub published: usize,
    /// Messages skipped as already confirmed.
    pub duplicates: usize,
    /// Records skipped because no valid message could be made of them.
    pub invalid: usize,
}

/// Why a cycle failed. Nothing after the failure point was acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Spotler refused or did not answer.
    #[error("spotler: {0}")]
    Spotler(#[from] CallError),
    /// The broker did not confirm.
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    /// The lease or cursor store failed.
    #[error("coordination: {0}")]
    Coordination(String),
    /// Another replica took the lease during the cycle.
    #[error("the pull lease was lost during the cycle")]
    LeaseLost,
}

/// The Spotler poller.
#[derive(Debug)]
pub struct Poller {
    client: SpotlerClient,
    deliverer: Deliverer,
    coordinator: Coordinator,
    pull: SpotlerPull,
    metrics: InboundMetrics,
}

/// Second precision: Spotler's dates have no fractions.
fn truncate(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

fn saturating(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::MAX)
}

impl Poller {
    /// A poller over `client`, publishing through `deliverer`.
    pub fn new(
        client: SpotlerClient,
        deliverer: Deliverer,
        coordinator: Coordinator,
        pull: SpotlerPull,
        metrics: InboundMetrics,
    ) -> Self {
        Self {
            client,
            deliverer,
            coordinator,
            pull,
            metrics,
        }
    }

    /// Whether replicas share the lease and cursors (Redis).
    pub fn is_shared(&self) -> bool {
        self.coordinator.is_shared()
    }

    /// Runs cycles until `stop` turns true: one at once, then every interval (sooner after a
    /// failure). A cycle in progress is finished, not abandoned.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let mut retry = FIRST_RETRY.min(self.pull.interval);
        loop {
            if *stop.borrow() {
                return;
            }
            let wait = match self.run_once().await {
                Ok(report) => {
                    if report.leader && (report.published > 0 || report.invalid > 0) {
                        tracing::info!(
                            published = report.published,
                            duplicates = report.duplicates,
                            invalid = report.invalid,
                            windows = report.windows,
                            "Pulled Spotler changes."
                        );
                    }
                    retry = FIRST_RETRY.min(self.pull.interval);
                    self.pull.interval
                }
                Err(error) => {
                    let wait = retry;
                    tracing::warn!(
                        %error,
                        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "Spotler pull failed; it resumes from the stored cursor."
                    );
                    retry = (retry * 2).min(self.pull.interval);
                    wait
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// One cycle: take the lease, pull every feed up to now, give the lease back. Returns the
    /// first error after trying both feeds.
    pub async fn run_once(&self) -> Result<CycleReport, PollError> {
        let lease = match self.coordinator.acquire().await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                self.metrics.polls.with_label_values(&["all", "not_leader"]).inc();
                return Ok(CycleReport::default());
            }
            Err(error) => {
                self.metrics.polls.with_label_values(&["all", "failed"]).inc();
                return Err(PollError::Coordination(error));
            }
        };
        self.metrics.lease_held.set(1);
        let lost = Arc::new(AtomicBool::new(false));
        let (renewing, renewal) = self.renew_while_held(&lease, lost.clone());
        let end = truncate(OffsetDateTime::now_utc() - saturating(self.pull.lag));
        let mut report = CycleReport {
            leader: true,
            ..CycleReport::default()
        };
        let mut first_error = None;
        for feed in Feed::ALL {
            match self.pull_feed(feed, end, &lease, &lost, &mut report).await {
                Ok(()) => self.metrics.polls.with_label_values(&[feed.as_str(), "ok"]).inc(),
                Err(error) => {
                    self.metrics.polls.with_label_values(&[feed.as_str(), "failed"]).inc();
                    first_error.get_or_insert(error);
                }
            }
        }
        drop(renewing);
        if let Err(error) = renewal.await {
            tracing::warn!(%error, "The lease renewal task failed.");
        }
        self.coordinator.release(lease).await;
        self.metrics.lease_held.set(0);
        match first_error {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    /// Renews the lease every [`LEASE_RENEW_EVERY`] in a task that ends when the returned
    /// sender is dropped; a failed renewal sets `lost`, which ends the cycle before its next
    /// page and before any cursor write (the cursor write is fenced by the lease as well).
    fn renew_while_held(&self, lease: &Lease, lost: Arc<AtomicBool>) -> (watch::Sender<()>, JoinHandle<()>) {
        let (done_tx, mut done_rx) = watch::channel(());
        let token = lease.token().to_owned();
        let coordinator = self.coordinator.clone();
        let renewal = tokio::spawn(async move {
            if !coordinator.is_shared() {
                return;
            }
            loop {
                tokio::select! {
                    () = tokio::time::sleep(LEASE_RENEW_EVERY) => {}
                    _ = done_rx.changed() => return,
                }
                let renewed = coordinator.renew(&token).await;
                if !matches!(renewed, Ok(true)) {
                    if let Err(error) = renewed {
                        tracing::warn!(%error, "Could not renew the Spotler pull lease; ending the cycle.");
                    }
                    lost.store(true, Ordering::Release);
                    return;
                }
            }
        });
        (done_tx, renewal)
    }

    async fn pull_feed(
        &self,
        feed: Feed,
        end: OffsetDateTime,
        lease: &Lease,
        lost: &AtomicBool,
        report: &mut CycleReport,
    ) -> Result<(), PollError> {
        loop {
            let from = match self
                .coordinator
                .load_cursor(feed.as_str())
                .await
                .map_err(PollError::Coordination)?
            {
                Some(cursor) => cursor,
                None => truncate(end - saturating(self.pull.lookback)),
            };
            let behind = (OffsetDateTime::now_utc() - from).as_seconds_f64().max(0.0);
            self.metrics.cursor_lag.with_label_values(&[feed.as_str()]).set(behind);
            if from >= end {
                return Ok(());
            }
            let to = (from + saturating(self.pull.max_window)).min(end);
            let window = Window { from, to };
            self.pull_window(feed, &window, lost, report).await?;
            if lost.load(Ordering::Acquire) {
                return Err(PollError::LeaseLost);
            }
            let stored = self
                .coordinator
                .store_cursor(lease, feed.as_str(), to)
                .await
                .map_err(PollError::Coordination)?;
            if !stored {
                return Err(PollError::LeaseLost);
            }
            report.windows += 1;
        }
    }

    async fn pull_window(
        &self,
        feed: Feed,
        window: &Window,
        lost: &AtomicBool,
        report: &mut CycleReport,
    ) -> Result<(), PollError> {
        let mut after = 0;
        loop {
            if lost.load(Ordering::Acquire) {
                return Err(PollError::LeaseLost);
            }
            let (built, next) = match feed {
                Feed::Bounces => {
                    let page = self.client.bounces(window, after, self.pull.page_size).await?;
                    let built: Vec<_> = page
                        .items
                        .iter()
                        .map(|b| (b.contact.external_id.as_str(), spotler::bounced(b, window.to)))
                        .map(|(id, m)| (id.to_owned(), m))
                        .collect();
                    (built, page.next_after)
                }
                Feed::Updates => {
                    let page = self.client.updates(window, after, self.pull.page_size).await?;
                    let built: Vec<_> = page
                        .items
                        .iter()
                        .map(|c| (c.external_id.clone(), spotler::updated(c, window.to)))
                        .collect();
                    (built, page.next_after)
                }
            };
            let messages = self.keep_valid(feed, built, report);
            let delivered = self.deliverer.deliver(&messages).await?;
            report.published += delivered.published;
            report.duplicates += delivered.duplicates;
            let label = feed.as_str();
            self.metrics
                .pulled
                .with_label_values(&[label, "published"])
                .inc_by(delivered.published as u64);
            self.metrics
                .pulled
                .with_label_values(&[label, "duplicate"])
                .inc_by(delivered.duplicates as u64);
            match next {
                Some(next) => after = next,
                None => return Ok(()),
            }
        }
    }

    /// The messages that could be built and match their schema; the others are skipped with a
    /// warning (a record that can never become a valid message must not block the cursor).
    fn keep_valid(
        &self,
        feed: Feed,
        built: Vec<(String, Result<Outgoing, String>)>,
        report: &mut CycleReport,
    ) -> Vec<Outgoing> {
        let mut messages = Vec::with_capacity(built.len());
        for (contact_id, message) in built {
            let checked = message.and_then(|m| self.deliverer.check(&m).map(|()| m).map_err(|e| e.to_string()));
            match checked {
                Ok(message) => messages.push(message),
                Err(reason) => {
                    report.invalid += 1;
                    self.metrics.pulled.with_label_values(&[feed.as_str(), "invalid"]).inc();
                    let contact_id = sources::loggable_id(&contact_id);
                    tracing::warn!(feed = feed.as_str(), contact_id, %reason, "Skipped a Spotler record.");
                }
            }
        }
        messages
    }
}
