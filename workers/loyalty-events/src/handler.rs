//! Handling of `points.changed`, `points.expiring`, `pin.changed` and
//! `loyalty.subscription.changed`.
//!
//! The three customer messages become one Ecomail "notice" each: custom fields written on the
//! subscriber (`PUT update-subscriber`, so nobody is ever added to the list here), then a tracker
//! event (category `ellity`, action `change`, label `credit` / `expiry` / `pin`). A notice is
//! sent at most once per record key: the message id for `credit` and `pin` (a redelivery makes
//! no second event), the customer and local day for `expiry` (the once-a-day rule). Every
//! handled message yields one `loyalty.notified` (sent, skipped with a reason, or failed), with
//! the message id `<input id>:notified`, so a redelivery republishes the same result.
//!
//! `loyalty.subscription.changed` makes no provider call: it yields a
//! `loyalty.points.adjust.requested` (`<input id>:points-adjust`) for the loyalty system.

use std::collections::BTreeMap;
use std::time::Duration;

use api_client::CallError;
use messages::Outgoing;
use messages::loyalty::{
    AdjustReason, EventLabel, LoyaltyNotified, NoticeStatus, PinChanged, PointsAdjustRequested, PointsChanged,
    PointsExpiring, SkipReason, SourceType, SubscriptionChanged, SubscriptionStatus,
};
use mq::batch::Batcher;
use mq::{Failure, FailureKind, Handler, Incoming, Outcome};
use prometheus::{IntCounterVec, Opts, Registry};
use provider_ecomail::{EcomailClient, FieldUpdate, TrackerEvent, date_value};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::Date;
use time::macros::format_description;
use tracing::{info, warn};

use crate::notice::{Decision, NoticePolicy};
use crate::record::{Claim, OnceStore, Store};

/// Tracker event category of every loyalty event.
pub const CATEGORY: &str = "ellity";
/// Tracker event action of every loyalty event.
pub const ACTION: &str = "change";
/// Custom field: the balance.
pub const FIELD_CREDIT: &str = "ellity_credit";
/// Custom field: the PIN.
pub const FIELD_PIN: &str = "ellity_pin";
/// Custom field: points of the next expiration.
pub const FIELD_NEXT_EXPIRATION_VALUE: &str = "ellity_next_expiration_value";
/// Custom field: day of the next expiration.
pub const FIELD_NEXT_EXPIRATION_DATE: &str = "ellity_next_expiration_date";

/// How long a sent expiry notice is remembered: longer than any local day, whatever the offset.
const EXPIRY_KEEP: Duration = Duration::from_secs(3 * 86_400);
/// How long a sent credit or PIN event is remembered (covers the whole retry ladder and
/// redeliveries after an outage).
const MESSAGE_KEEP: Duration = Duration::from_secs(7 * 86_400);

/// Batches the notices' field updates into `update-subscriber-bulk` calls; each notice gets
/// its own result (see `EcomailClient::update_custom_fields_each`).
pub type FieldsBulk = Batcher<FieldUpdate, Result<(), CallError>>;

/// Counters of what the worker did.
#[derive(Debug, Clone)]
pub struct LoyaltyMetrics {
    outcomes: IntCounterVec,
}

impl LoyaltyMetrics {
    /// Registers `switchyard_loyalty_outcomes_total{type, outcome}` (outcome: `sent`, `failed`,
    /// a skip reason, `award`, `deduction`, `adjust_disabled`).
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let outcomes = IntCounterVec::new(
            Opts::new(
                "switchyard_loyalty_outcomes_total",
                "Loyalty messages handled by loyalty-events, by input type and outcome.",
            ),
            &["type", "outcome"],
        )?;
        registry.register(Box::new(outcomes.clone()))?;
        Ok(Self { outcomes })
    }

    fn count(&self, source: SourceType, outcome: &str) {
        self.outcomes.with_label_values(&[source_name(source), outcome]).inc();
    }
}

/// The worker's dependencies.
#[derive(Debug)]
pub struct LoyaltyEvents<S: OnceStore = Store> {
    /// Ecomail client (its list holds the loyalty fields).
    pub ecomail: EcomailClient,
    /// Field updates shared by several notices per call; `None` = one call per notice.
    pub fields_bulk: Option<FieldsBulk>,
    /// The once-a-day and processed-message records.
    pub store: S,
    /// When expiry notices go out.
    pub notice: NoticePolicy,
    /// Points awarded for joining the list (0 = none).
    pub subscribe_points: u32,
    /// Points taken for leaving the list (0 = none).
    pub unsubscribe_points: u32,
    /// Prefix of every record key (namespace and worker), e.g. `switchyard:loyalty-events:`.
    pub key_prefix: String,
    /// How long a pending claim lasts if its holder dies (longer than one handling).
    pub claim_hold: Duration,
    /// Counters.
    pub metrics: LoyaltyMetrics,
}

/// One Ecomail notice to send once.
struct Notice<'a> {
    source: SourceType,
    label: EventLabel,
    customer_id: &'a str,
    email: &'a str,
    fields: BTreeMap<String, Value>,
    value: Option<Value>,
    /// Record key and how long it is kept once done.
    key: String,
    keep: Duration,
}

impl<S: OnceStore> Handler for LoyaltyEvents<S> {
    async fn handle(&self, message: Incoming) -> Outcome {
        match message.kind.as_str() {
            "points.changed" => match message.decode::<PointsChanged>() {
                Ok(changed) => self.points_changed(&message, &changed).await,
                Err(error) => invalid("points.changed", &error),
            },
            "points.expiring" => match message.decode::<PointsExpiring>() {
                Ok(expiring) => self.points_expiring(&message, &expiring).await,
                Err(error) => invalid("points.expiring", &error),
            },
            "pin.changed" => match message.decode::<PinChanged>() {
                Ok(pin) => self.pin_changed(&message, &pin).await,
                Err(error) => invalid("pin.changed", &error),
            },
            "loyalty.subscription.changed" => match message.decode::<SubscriptionChanged>() {
                Ok(change) => self.subscription_changed(&message, &change),
                Err(error) => invalid("loyalty.subscription.changed", &error),
            },
            other => Outcome::failed(
                FailureKind::Invalid,
                format!("loyalty-events does not handle `{other}`"),
            ),
        }
    }
}

fn invalid(kind: &str, error: &serde_json::Error) -> Outcome {
    // serde's text names the field and the expected type; the schema already vetted the values.
    Outcome::failed(FailureKind::Invalid, format!("body does not match {kind}: {error}"))
}

fn source_name(source: SourceType) -> &'static str {
    match source {
        SourceType::PointsChanged => "points.changed",
        SourceType::PointsExpiring => "points.expiring",
        SourceType::PinChanged => "pin.changed",
        SourceType::SubscriptionChanged => "loyalty.subscription.changed",
    }
}

fn iso_date(date: Date) -> String {
    date.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// Hex SHA-256 of the trimmed, lowercased address.
pub fn email_sha256(email: &str) -> String {
    Sha256::digest(email.trim().to_lowercase().as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The `loyalty.notified` to publish for one input.
struct Report<'a> {
    customer_id: Option<&'a str>,
    source: SourceType,
    status: NoticeStatus,
    label: Option<EventLabel>,
    fields: Vec<String>,
    reason: Option<SkipReason>,
    error: Option<String>,
}

impl<S: OnceStore> LoyaltyEvents<S> {
    async fn points_changed(&self, message: &Incoming, changed: &PointsChanged) -> Outcome {
        let mut fields = BTreeMap::from([(FIELD_CREDIT.to_owned(), json!(changed.balance))]);
        if let Some(next) = &changed.next_expiration {
            fields.insert(FIELD_NEXT_EXPIRATION_VALUE.to_owned(), json!(next.points));
            fields.insert(
                FIELD_NEXT_EXPIRATION_DATE.to_owned(),
                date_value(&iso_date(next.expires_on)),
            );
        }
        let notice = Notice {
            source: SourceType::PointsChanged,
            label: EventLabel::Credit,
            customer_id: &changed.customer_id,
            email: &changed.customer_email,
            fields,
            value: Some(json!({"credit": changed.balance, "change": changed.delta, "reason": changed.reason})),
            key: format!("{}message:{}", self.key_prefix, message.message_id),
            keep: MESSAGE_KEEP,
        };
        self.send_once(message, notice).await
    }

    async fn pin_changed(&self, message: &Incoming, pin: &PinChanged) -> Outcome {
        // The PIN goes only into its custom field (which Ecomail e-mails can show); the event
        // carries no value, so it never lands in Ecomail's event history.
        let notice = Notice {
            source: SourceType::PinChanged,
            label: EventLabel::Pin,
            customer_id: &pin.customer_id,
            email: &pin.customer_email,
            fields: BTreeMap::from([(FIELD_PIN.to_owned(), Value::String(pin.pin.clone()))]),
            value: None,
            key: format!("{}message:{}", self.key_prefix, message.message_id),
            keep: MESSAGE_KEEP,
        };
        self.send_once(message, notice).await
    }

    async fn points_expiring(&self, message: &Incoming, expiring: &PointsExpiring) -> Outcome {
        let today = match self.notice.decide(expiring.points, expiring.expires_on, expiring.as_of) {
            Decision::Notify { today } => today,
            Decision::Skip(reason) => {
                info!(customer_id = %expiring.customer_id, reason = reason.as_str(), "Expiry notice skipped.");
                return self.report(
                    message,
                    Report {
                        customer_id: Some(&expiring.customer_id),
                        source: SourceType::PointsExpiring,
                        status: NoticeStatus::Skipped,
                        label: None,
                        fields: Vec::new(),
                        reason: Some(reason),
                        error: None,
                    },
                );
            }
        };
        let expires_on = iso_date(expiring.expires_on);
        let notice = Notice {
            source: SourceType::PointsExpiring,
            label: EventLabel::Expiry,
            customer_id: &expiring.customer_id,
            email: &expiring.customer_email,
            fields: BTreeMap::from([
                (FIELD_NEXT_EXPIRATION_VALUE.to_owned(), json!(expiring.points)),
                (FIELD_NEXT_EXPIRATION_DATE.to_owned(), date_value(&expires_on)),
            ]),
            value: Some(json!({"value": expiring.points, "date": expires_on})),
            key: format!("{}expiry:{}:{}", self.key_prefix, expiring.customer_id, iso_date(today)),
            keep: EXPIRY_KEEP,
        };
        self.send_once(message, notice).await
    }

    fn subscription_changed(&self, message: &Incoming, change: &SubscriptionChanged) -> Outcome {
        let source = SourceType::SubscriptionChanged;
        if change.list_id != self.ecomail.list_id() {
            info!(list_id = change.list_id, "Subscription change of another list ignored.");
            return self.report(
                message,
                Report {
                    customer_id: None,
                    source,
                    status: NoticeStatus::Skipped,
                    label: None,
                    fields: Vec::new(),
                    reason: Some(SkipReason::OtherList),
                    error: None,
                },
            );
        }
        let (points, reason, outcome) = match change.status {
            SubscriptionStatus::Subscribed => (
                i64::from(self.subscribe_points),
                AdjustReason::NewsletterSubscribed,
                "award",
            ),
            SubscriptionStatus::Unsubscribed => (
                -i64::from(self.unsubscribe_points),
                AdjustReason::NewsletterUnsubscribed,
                "deduction",
            ),
        };
        if points == 0 {
            info!(
                ?reason,
                "Points adjustment for this subscription change is configured to 0; nothing requested."
            );
            self.metrics.count(source, "adjust_disabled");
            return Outcome::default();
        }
        let adjust = PointsAdjustRequested {
            email: change.email.clone(),
            email_sha256: email_sha256(&change.email),
            points,
            reason,
            list_id: change.list_id,
            occurred_at: change.occurred_at,
            source_event_id: change.event_id.clone(),
            source_message_id: message.message_id.clone(),
        };
        let id = format!("{}:points-adjust", message.message_id);
        match Outgoing::json(
            "loyalty.points.adjust.requested",
            id,
            message.correlation_id.clone(),
            &adjust,
        ) {
            Ok(result) => {
                info!(points, ?reason, "Points adjustment requested.");
                self.metrics.count(source, outcome);
                Outcome::ok(vec![result])
            }
            Err(error) => Outcome::failed(
                FailureKind::Permanent,
                format!("cannot encode loyalty.points.adjust.requested: {error}"),
            ),
        }
    }

    /// Sends `notice` unless its record says it was sent: claims the record, writes the fields,
    /// sends the event, then marks the record done (or releases it if sending failed).
    async fn send_once(&self, message: &Incoming, notice: Notice<'_>) -> Outcome {
        let owner = message.message_id.as_str();
        match self.store.claim(&notice.key, owner, self.claim_hold).await {
            Err(error) => self.settle(message, &notice, Err(CallError::Retriable(error.to_string()))),
            Ok(Claim::Busy) => Outcome::failed(
                FailureKind::Retriable,
                format!("another delivery is sending this {} notice now", notice.label.as_str()),
            ),
            Ok(Claim::Done { by }) if by == owner => {
                info!(customer_id = %notice.customer_id, label = notice.label.as_str(), "Notice already sent by this message; result republished.");
                self.settle(message, &notice, Ok(()))
            }
            Ok(Claim::Done { .. }) => {
                info!(customer_id = %notice.customer_id, "Expiry notice already sent today.");
                self.report(
                    message,
                    Report {
                        customer_id: Some(notice.customer_id),
                        source: notice.source,
                        status: NoticeStatus::Skipped,
                        label: None,
                        fields: Vec::new(),
                        reason: Some(SkipReason::AlreadyNotifiedToday),
                        error: None,
                    },
                )
            }
            Ok(Claim::Claimed) => {
                let result = self.deliver(&notice).await;
                match &result {
                    Ok(()) => {
                        if let Err(error) = self.store.complete(&notice.key, owner, notice.keep).await {
                            // The event is out; retrying would send it twice. Only a later
                            // message could now repeat it, once the claim lapses.
                            warn!(%error, customer_id = %notice.customer_id, "Notice sent but not recorded.");
                        }
                    }
                    Err(_) => {
                        if let Err(error) = self.store.release(&notice.key, owner).await {
                            warn!(%error, "Cannot release the notice claim; it lapses by itself.");
                        }
                    }
                }
                self.settle(message, &notice, result)
            }
        }
    }

    /// Writes the fields, then (only once they are written) sends the event.
    async fn deliver(&self, notice: &Notice<'_>) -> Result<(), CallError> {
        match &self.fields_bulk {
            Some(bulk) => {
                let update = FieldUpdate {
                    email: notice.email.to_owned(),
                    custom_fields: notice.fields.clone(),
                };
                bulk.submit(update)
                    .await
                    .map_err(|stopped| CallError::Retriable(stopped.to_string()))??;
            }
            None => self.ecomail.update_custom_fields(notice.email, &notice.fields).await?,
        }
        let event = TrackerEvent {
            email: notice.email.to_owned(),
            category: Some(CATEGORY.to_owned()),
            action: Some(ACTION.to_owned()),
            label: Some(notice.label.as_str().to_owned()),
            property: None,
            value: notice.value.clone(),
        };
        self.ecomail.track_event(&event).await
    }

    /// Turns the result of sending `notice` into an outcome: a `loyalty.notified` when it is
    /// final, a failure when it must be retried (or parked).
    fn settle(&self, message: &Incoming, notice: &Notice<'_>, result: Result<(), CallError>) -> Outcome {
        let report = |status, reason, error| Report {
            customer_id: Some(notice.customer_id),
            source: notice.source,
            status,
            label: (status == NoticeStatus::Sent).then_some(notice.label),
            fields: if status == NoticeStatus::Sent {
                notice.fields.keys().cloned().collect()
            } else {
                Vec::new()
            },
            reason,
            error,
        };
        let failure = |kind, reason: String| Failure {
            scope: Vec::new(),
            kind,
            reason,
        };
        match result {
            Ok(()) => {
                info!(customer_id = %notice.customer_id, label = notice.label.as_str(), "Loyalty notice sent.");
                self.report(message, report(NoticeStatus::Sent, None, None))
            }
            Err(CallError::NotFound(_)) if message.last_attempt => {
                info!(customer_id = %notice.customer_id, "Customer is not a subscriber of the Ecomail list; notice skipped.");
                self.report(
                    message,
                    report(NoticeStatus::Skipped, Some(SkipReason::NotInList), None),
                )
            }
            Err(CallError::NotFound(_)) => Outcome {
                results: Vec::new(),
                // contact-sync may not have added the customer yet: try again later.
                failures: vec![failure(
                    FailureKind::Retriable,
                    "the customer is not (yet) a subscriber of the Ecomail list".to_owned(),
                )],
            },
            Err(CallError::Permanent(reason)) => {
                let mut outcome = self.report(message, report(NoticeStatus::Failed, None, Some(reason.clone())));
                outcome.failures.push(failure(FailureKind::Permanent, reason));
                outcome
            }
            Err(CallError::Retriable(reason)) => {
                let mut outcome = if message.last_attempt {
                    self.report(message, report(NoticeStatus::Failed, None, Some(reason.clone())))
                } else {
                    Outcome::default()
                };
                outcome.failures.push(failure(FailureKind::Retriable, reason));
                outcome
            }
            Err(CallError::RateLimited { retry_in }) => Outcome {
                results: Vec::new(),
                failures: vec![failure(
                    FailureKind::RateLimited { retry_in },
                    format!("ecomail rate limited for {retry_in:?}"),
                )],
            },
        }
    }

    /// An outcome publishing `loyalty.notified` for `message`.
    fn report(&self, message: &Incoming, report: Report<'_>) -> Outcome {
        let outcome_label = match (report.status, report.reason) {
            (NoticeStatus::Skipped, Some(reason)) => reason.as_str(),
            (NoticeStatus::Sent, _) => "sent",
            _ => "failed",
        };
        self.metrics.count(report.source, outcome_label);
        let notified = LoyaltyNotified {
            customer_id: report.customer_id.map(str::to_owned),
            source_type: report.source,
            status: report.status,
            event_label: report.label,
            fields: report.fields,
            reason: report.reason,
            error: report.error,
            source_message_id: message.message_id.clone(),
        };
        let id = format!("{}:notified", message.message_id);
        match Outgoing::json("loyalty.notified", id, message.correlation_id.clone(), &notified) {
            Ok(result) => Outcome::ok(vec![result]),
            Err(error) => Outcome::failed(
                FailureKind::Permanent,
                format!("cannot encode loyalty.notified: {error}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_hash_ignores_case_and_spaces() {
        assert_eq!(
            email_sha256(" Jana.Novakova@Example.com "),
            "8cd6c0cca1d3fafbc9b8157c99d0ac49f1be4a7f0e6734209721d7ceca5bdb12"
        );
    }
}
