//! The message handler: decodes each message type and fans it out to the enabled destinations.
//!
//! Each destination is one unit of work: the outcome holds one `contact.synced` result per
//! destination that finished (synced, or failed for good) and one failure per destination
//! still to retry, scoped so a retry or a replay redoes only that destination.
//!
//! | message | spotler | ecomail | salesmanago | voucherify |
//! |---|---|---|---|---|
//! | `contact.changed` | upsert (bulk when no order) | subscribe, update existing | upsert, consent, newsletter tag | customer upsert (+ write-back) |
//! | `contact.deleted` | anonymize | | | |
//! | `contact.deactivated` | inactivate | | | |
//! | `contact.subscribed` | `/subscription/subscribe` | subscribe | upsert with opt-in and newsletter tag | |
//! | `shop.event` | | | event tags, external event (once per message) | |
//! | `segment.exported` | temporary list | | | |
//! | `contact.lookup.requested` | search → `contact.lookup.result` | | | |
//!
//! A message type none of whose destinations is enabled is acknowledged with nothing to do.

use api_client::CallError;
use messages::Outgoing;
use messages::contact::{
    ContactChanged, ContactDeactivated, ContactDeleted, ContactLookupRequested, ContactSubscribed, ContactSynced,
    SegmentExported, ShopEvent,
};
use mq::batch::Batcher;
use mq::{Failure, FailureKind, Handler, Incoming, Outcome};
use provider_bloomreach::BloomreachClient;
use provider_ecomail::EcomailClient;
use provider_salesmanago::SalesmanagoClient;
use provider_spotler::{Contact, SpotlerClient};
use provider_voucherify::VoucherifyClient;
use serde::de::DeserializeOwned;

use crate::locks::KeyedLocks;
use crate::mapping::FieldMapping;

/// Destination names (scope values and `contact.synced` destinations).
pub const SPOTLER: &str = "spotler";
/// Ecomail destination.
pub const ECOMAIL: &str = "ecomail";
/// SALESmanago destination.
pub const SALESMANAGO: &str = "salesmanago";
/// Voucherify destination (with its Bloomreach write-back).
pub const VOUCHERIFY: &str = "voucherify";

/// The Spotler bulk batcher: one contact in, its own result out.
pub type SpotlerBulk = Batcher<Contact, Result<(), CallError>>;
/// The Ecomail bulk batcher: one subscriber in, the result of its call out.
pub type EcomailBulk = Batcher<provider_ecomail::Subscriber, Result<(), CallError>>;

/// The worker's dependencies.
#[derive(Debug)]
pub struct ContactSync {
    /// Spotler, when enabled.
    pub spotler: Option<SpotlerDestination>,
    /// Ecomail client, when Ecomail is enabled.
    pub ecomail: Option<EcomailClient>,
    /// Batches Ecomail subscribers of contacts without an order into `subscribe-bulk` calls.
    pub ecomail_bulk: Option<EcomailBulk>,
    /// SALESmanago client, when SALESmanago is enabled.
    pub salesmanago: Option<SalesmanagoClient>,
    /// Voucherify, when enabled.
    pub voucherify: Option<VoucherifyDestination>,
    /// The field mapping.
    pub mapping: FieldMapping,
    /// One message per contact at a time in this process (read-modify-write of dates).
    pub contacts: KeyedLocks,
    /// Which non-idempotent effects (SALESmanago external events) were done, by message id.
    pub ledger: ledger::Ledger,
}

/// The Spotler destination.
#[derive(Debug)]
pub struct SpotlerDestination {
    /// The client.
    pub client: SpotlerClient,
    /// Prefix of the temporary lists this system creates.
    pub templist_prefix: String,
    /// At the list cap, delete the oldest list of ours instead of failing.
    pub templist_evict_oldest: bool,
    /// Batches contacts without an order into `/contact/list` calls; `None` when off.
    pub bulk: Option<SpotlerBulk>,
}

/// The Voucherify destination.
#[derive(Debug)]
pub struct VoucherifyDestination {
    /// The client (with the metadata filter).
    pub client: VoucherifyClient,
    /// Bloomreach and the hard id name, when the customer id is written back.
    pub writeback: Option<(BloomreachClient, String)>,
}

/// What a finished destination reports in its `contact.synced`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Report<'a> {
    /// `spotler`, `ecomail`, ...
    pub(crate) destination: &'static str,
    /// `upsert`, `subscribe`, ...
    pub(crate) operation: &'static str,
    /// The contact, if the input names one.
    pub(crate) contact_id: Option<&'a str>,
    /// The segment (`segment.exported`).
    pub(crate) segment_id: Option<&'a str>,
}

impl<'a> Report<'a> {
    /// A report about a contact.
    pub(crate) fn contact(destination: &'static str, operation: &'static str, contact_id: Option<&'a str>) -> Self {
        Self {
            destination,
            operation,
            contact_id,
            segment_id: None,
        }
    }
}

/// The result of one destination: `Ok` carries the Voucherify metadata drop count, if any.
pub(crate) type DestinationResult = Result<Option<u32>, CallError>;

fn decode<T: DeserializeOwned>(message: &Incoming) -> Result<T, Outcome> {
    message.decode().map_err(|error| {
        Outcome::failed(
            FailureKind::Invalid,
            format!("body does not match {}: {error}", message.kind),
        )
    })
}

impl Handler for ContactSync {
    async fn handle(&self, message: Incoming) -> Outcome {
        let outcome = match message.kind.as_str() {
            "contact.changed" => match decode::<ContactChanged>(&message) {
                Ok(contact) => self.changed(&message, &contact).await,
                Err(invalid) => invalid,
            },
            "contact.deleted" => match decode::<ContactDeleted>(&message) {
                Ok(deleted) => self.deleted(&message, &deleted).await,
                Err(invalid) => invalid,
            },
            "contact.deactivated" => match decode::<ContactDeactivated>(&message) {
                Ok(deactivated) => self.deactivated(&message, &deactivated).await,
                Err(invalid) => invalid,
            },
            "contact.subscribed" => match decode::<ContactSubscribed>(&message) {
                Ok(subscribed) => self.subscribed(&message, &subscribed).await,
                Err(invalid) => invalid,
            },
            "shop.event" => match decode::<ShopEvent>(&message) {
                Ok(event) => self.shop_event(&message, &event).await,
                Err(invalid) => invalid,
            },
            "segment.exported" => match decode::<SegmentExported>(&message) {
                Ok(segment) => self.segment(&message, &segment).await,
                Err(invalid) => invalid,
            },
            "contact.lookup.requested" => match decode::<ContactLookupRequested>(&message) {
                Ok(lookup) => self.lookup(&message, &lookup).await,
                Err(invalid) => invalid,
            },
            other => Outcome::failed(FailureKind::Invalid, format!("contact-sync does not handle `{other}`")),
        };
        if outcome.results.is_empty() && outcome.failures.is_empty() {
            tracing::debug!(
                kind = %message.kind,
                "No enabled destination handles this message; nothing to do."
            );
        }
        outcome
    }
}

impl ContactSync {
    async fn changed(&self, message: &Incoming, contact: &ContactChanged) -> Outcome {
        let _contact = self.contacts.lock(&contact.contact_id).await;
        let spotler = async {
            match &self.spotler {
                Some(spotler) if message.wants(SPOTLER) => Some(self.upsert_spotler(spotler, contact).await),
                _ => None,
            }
        };
        let ecomail = async {
            match &self.ecomail {
                Some(client) if message.wants(ECOMAIL) => Some(self.upsert_ecomail(client, contact).await),
                _ => None,
            }
        };
        let salesmanago = async {
            match &self.salesmanago {
                Some(client) if message.wants(SALESMANAGO) => Some(self.upsert_salesmanago(client, contact).await),
                _ => None,
            }
        };
        let voucherify = async {
            match &self.voucherify {
                Some(destination) if message.wants(VOUCHERIFY) => {
                    Some(self.upsert_voucherify(destination, contact).await)
                }
                _ => None,
            }
        };
        let (spotler, ecomail, salesmanago, voucherify) = tokio::join!(spotler, ecomail, salesmanago, voucherify);
        let mut outcome = Outcome::default();
        for (destination, result) in [
            (SPOTLER, spotler),
            (ECOMAIL, ecomail),
            (SALESMANAGO, salesmanago),
            (VOUCHERIFY, voucherify),
        ] {
            if let Some(result) = result {
                let report = Report::contact(destination, "upsert", Some(&contact.contact_id));
                settle(&mut outcome, message, report, result);
            }
        }
        outcome
    }

    async fn deleted(&self, message: &Incoming, deleted: &ContactDeleted) -> Outcome {
        let _contact = self.contacts.lock(&deleted.contact_id).await;
        let mut outcome = Outcome::default();
        if let Some(spotler) = &self.spotler
            && message.wants(SPOTLER)
        {
            let result = match spotler.client.anonymize(&deleted.contact_id).await {
                Ok(true) => Ok(None),
                // Not there yet: its creation may still be on the way (another delivery, a
                // retry tier), and anonymizing before it lands would leave the data behind.
                // Only when the attempts run out is a never-synced contact "already anonymous".
                Ok(false) if message.last_attempt => Ok(None),
                Ok(false) => Err(CallError::Retriable(
                    "spotler anonymize: contact not found (yet); retrying in case it is still being created".to_owned(),
                )),
                Err(error) => Err(error),
            };
            let report = Report::contact(SPOTLER, "anonymize", Some(&deleted.contact_id));
            settle(&mut outcome, message, report, result);
        }
        outcome
    }

    async fn deactivated(&self, message: &Incoming, deactivated: &ContactDeactivated) -> Outcome {
        let _contact = self.contacts.lock(&deactivated.contact_id).await;
        let mut outcome = Outcome::default();
        if let Some(spotler) = &self.spotler
            && message.wants(SPOTLER)
        {
            let result = match spotler.client.inactivate(&deactivated.contact_id).await {
                Ok(true) => Ok(None),
                Ok(false) if message.last_attempt => Err(CallError::Permanent(
                    "spotler inactivate: contact not found, nothing to inactivate".to_owned(),
                )),
                // Its creation may still be on the way; try again through the delay tiers.
                Ok(false) => Err(CallError::Retriable(
                    "spotler inactivate: contact not found (yet); retrying in case it is still being created"
                        .to_owned(),
                )),
                Err(error) => Err(error),
            };
            let report = Report::contact(SPOTLER, "inactivate", Some(&deactivated.contact_id));
            settle(&mut outcome, message, report, result);
        }
        outcome
    }

    async fn subscribed(&self, message: &Incoming, subscribed: &ContactSubscribed) -> Outcome {
        let spotler = async {
            match &self.spotler {
                Some(spotler) if message.wants(SPOTLER) => Some(self.subscribe_spotler(spotler, subscribed).await),
                _ => None,
            }
        };
        let ecomail = async {
            match &self.ecomail {
                Some(client) if message.wants(ECOMAIL) => Some(self.subscribe_ecomail(client, subscribed).await),
                _ => None,
            }
        };
        let salesmanago = async {
            match &self.salesmanago {
                Some(client) if message.wants(SALESMANAGO) => {
                    Some(self.subscribe_salesmanago(client, subscribed).await)
                }
                _ => None,
            }
        };
        let (spotler, ecomail, salesmanago) = tokio::join!(spotler, ecomail, salesmanago);
        let mut outcome = Outcome::default();
        for (destination, result) in [(SPOTLER, spotler), (ECOMAIL, ecomail), (SALESMANAGO, salesmanago)] {
            if let Some(result) = result {
                let report = Report::contact(destination, "subscribe", subscribed.contact_id.as_deref());
                settle(&mut outcome, message, report, result);
            }
        }
        outcome
    }

    async fn shop_event(&self, message: &Incoming, event: &ShopEvent) -> Outcome {
        let mut outcome = Outcome::default();
        if let Some(client) = &self.salesmanago
            && message.wants(SALESMANAGO)
        {
            let (operation, result) = self.salesmanago_event(client, message, event).await;
            let report = Report::contact(SALESMANAGO, operation, event.contact_id.as_deref());
            settle(&mut outcome, message, report, result);
        }
        outcome
    }
}

/// Adds the outcome of one destination: a `contact.synced` result when it finished, a scoped
/// failure when it must be retried (or parked), and both when it failed for good.
pub(crate) fn settle(outcome: &mut Outcome, message: &Incoming, report: Report<'_>, result: DestinationResult) {
    let destination = report.destination;
    let scope = vec![destination.to_owned()];
    let (status, error, dropped, failure) = match result {
        Ok(dropped) => ("synced", None, dropped, None),
        Err(CallError::Permanent(reason) | CallError::NotFound(reason)) => (
            "failed",
            Some(reason.clone()),
            None,
            Some(Failure {
                scope,
                kind: FailureKind::Permanent,
                reason,
            }),
        ),
        Err(CallError::Retriable(reason)) => {
            let failure = Some(Failure {
                scope,
                kind: FailureKind::Retriable,
                reason: reason.clone(),
            });
            if message.last_attempt {
                ("failed", Some(reason), None, failure)
            } else {
                ("", None, None, failure)
            }
        }
        Err(CallError::RateLimited { retry_in }) => {
            let reason = format!("{destination} rate limited for {retry_in:?}");
            (
                "",
                None,
                None,
                Some(Failure {
                    scope,
                    kind: FailureKind::RateLimited { retry_in },
                    reason,
                }),
            )
        }
    };
    if !status.is_empty() {
        let synced = ContactSynced {
            contact_id: report.contact_id.map(str::to_owned),
            destination: destination.to_owned(),
            operation: report.operation.to_owned(),
            status: status.to_owned(),
            error,
            segment_id: report.segment_id.map(str::to_owned),
            metadata_dropped: dropped,
            source_message_id: message.message_id.clone(),
        };
        let id = format!("{}:{destination}", message.message_id);
        match Outgoing::json("contact.synced", id, message.correlation_id.clone(), &synced) {
            Ok(result) => outcome.results.push(result),
            Err(error) => outcome.failures.push(Failure {
                scope: vec![destination.to_owned()],
                kind: FailureKind::Permanent,
                reason: format!("cannot encode contact.synced: {error}"),
            }),
        }
    }
    if let Some(failure) = failure {
        outcome.failures.push(failure);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn message(last_attempt: bool) -> Incoming {
        Incoming {
            message_id: "m-1".into(),
            kind: "contact.changed".into(),
            correlation_id: Some("corr".into()),
            attempt: 1,
            scope: Vec::new(),
            redelivered: false,
            last_attempt,
            body: serde_json::Value::Null,
        }
    }

    fn check(result: DestinationResult, last_attempt: bool) -> (Vec<serde_json::Value>, Vec<FailureKind>) {
        let mut outcome = Outcome::default();
        let report = Report::contact(VOUCHERIFY, "upsert", Some("c-1"));
        settle(&mut outcome, &message(last_attempt), report, result);
        let results = outcome
            .results
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap_or_default())
            .collect();
        (results, outcome.failures.iter().map(|f| f.kind).collect())
    }

    #[test]
    fn success_reports_synced_with_the_drop_count() {
        let (results, failures) = check(Ok(Some(2)), false);
        assert!(failures.is_empty());
        assert_eq!(results.len(), 1);
        assert_eq!(results[0]["status"], "synced");
        assert_eq!(results[0]["metadata_dropped"], 2);
        assert_eq!(results[0]["destination"], "voucherify");
    }

    #[test]
    fn permanent_failure_reports_and_dead_letters() {
        let (results, failures) = check(Err(CallError::Permanent("bad".into())), false);
        assert_eq!(results[0]["status"], "failed");
        assert_eq!(failures, [FailureKind::Permanent]);
    }

    #[test]
    fn retriable_failure_reports_only_on_the_last_attempt() {
        assert!(check(Err(CallError::Retriable("x".into())), false).0.is_empty());
        assert_eq!(check(Err(CallError::Retriable("x".into())), true).0.len(), 1);
    }

    #[test]
    fn a_rate_limit_parks_without_a_result() {
        let retry_in = Duration::from_secs(3);
        let (results, failures) = check(Err(CallError::RateLimited { retry_in }), true);
        assert!(results.is_empty());
        assert_eq!(failures, [FailureKind::RateLimited { retry_in }]);
    }
}
