//! Search by property as request/response: `contact.lookup.requested` → Spotler
//! `GET /contact/search` → one `contact.lookup.result` (found or not found, with the matching
//! contact ids), carrying the request's correlation id, with message id
//! `<request id>:lookup`.
//!
//! The searched value is never logged nor echoed: errors keep only Spotler's error type. A
//! search that cannot be made (an unknown property, the Spotler destination not enabled) is
//! answered too, with `found: false` and the reason, so a requester never waits in vain;
//! a temporary failure is retried first and answered when the attempts run out.

use api_client::CallError;
use messages::Outgoing;
use messages::contact::{ContactLookupRequested, ContactLookupResult};
use mq::{Failure, FailureKind, Incoming, Outcome};

use crate::handler::{ContactSync, SPOTLER};

/// The most contact ids one answer carries.
pub const MAX_RESULTS: u32 = 100;

/// What the search came to: the answer to publish (if any) and the failure to report (if any).
fn answer(
    message: &Incoming,
    lookup: &ContactLookupRequested,
    result: Result<provider_spotler::SearchPage, CallError>,
) -> (Option<ContactLookupResult>, Option<Failure>) {
    let reply = |found: Vec<String>, truncated: bool, error: Option<String>| ContactLookupResult {
        source_message_id: message.message_id.clone(),
        request_id: lookup.request_id.clone(),
        property: lookup.property.clone(),
        found: !found.is_empty(),
        contact_ids: found,
        truncated,
        error,
    };
    let scope = vec![SPOTLER.to_owned()];
    match result {
        Ok(page) => (Some(reply(page.external_ids, page.more, None)), None),
        Err(CallError::Permanent(reason) | CallError::NotFound(reason)) => (
            Some(reply(Vec::new(), false, Some(reason.clone()))),
            Some(Failure {
                scope,
                kind: FailureKind::Permanent,
                reason,
            }),
        ),
        Err(CallError::Retriable(reason)) => {
            let answer = message
                .last_attempt
                .then(|| reply(Vec::new(), false, Some(reason.clone())));
            (
                answer,
                Some(Failure {
                    scope,
                    kind: FailureKind::Retriable,
                    reason,
                }),
            )
        }
        Err(CallError::RateLimited { retry_in }) => (
            None,
            Some(Failure {
                scope,
                kind: FailureKind::RateLimited { retry_in },
                reason: format!("spotler rate limited for {retry_in:?}"),
            }),
        ),
    }
}

impl ContactSync {
    pub(crate) async fn lookup(&self, message: &Incoming, lookup: &ContactLookupRequested) -> Outcome {
        let result = match &self.spotler {
            Some(spotler) => {
                spotler
                    .client
                    .search(&lookup.property, &lookup.value, MAX_RESULTS)
                    .await
            }
            None => Err(CallError::Permanent(
                "contact lookups search Spotler, which is not enabled in CONTACT_SYNC_DESTINATIONS".to_owned(),
            )),
        };
        let (reply, failure) = answer(message, lookup, result);
        let mut outcome = Outcome::default();
        if let Some(reply) = reply {
            let id = format!("{}:lookup", message.message_id);
            match Outgoing::json("contact.lookup.result", id, message.correlation_id.clone(), &reply) {
                Ok(result) => outcome.results.push(result),
                Err(error) => outcome.failures.push(Failure {
                    scope: vec![SPOTLER.to_owned()],
                    kind: FailureKind::Permanent,
                    reason: format!("cannot encode contact.lookup.result: {error}"),
                }),
            }
        }
        outcome.failures.extend(failure);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use provider_spotler::SearchPage;

    use super::*;

    fn message(last_attempt: bool) -> Incoming {
        Incoming {
            message_id: "m-1".into(),
            kind: "contact.lookup.requested".into(),
            correlation_id: None,
            attempt: 1,
            scope: Vec::new(),
            redelivered: false,
            last_attempt,
            body: serde_json::Value::Null,
        }
    }

    fn lookup() -> ContactLookupRequested {
        ContactLookupRequested {
            property: "code".into(),
            value: "SECRET".into(),
            request_id: Some("r-1".into()),
        }
    }

    #[test]
    fn found_and_not_found_are_answers() {
        let page = SearchPage {
            external_ids: vec!["c-1".into()],
            more: true,
        };
        let (reply, failure) = answer(&message(false), &lookup(), Ok(page));
        let reply = reply.unwrap_or_else(|| panic!("an answer"));
        assert!(reply.found && reply.truncated && failure.is_none());
        assert_eq!(reply.request_id.as_deref(), Some("r-1"));
        let (reply, _) = answer(&message(false), &lookup(), Ok(SearchPage::default()));
        assert!(reply.is_some_and(|r| !r.found && r.contact_ids.is_empty() && r.error.is_none()));
    }

    #[test]
    fn a_permanent_failure_is_answered_and_dead_lettered() {
        let (reply, failure) = answer(&message(false), &lookup(), Err(CallError::Permanent("bad".into())));
        assert!(reply.is_some_and(|r| !r.found && r.error.as_deref() == Some("bad")));
        assert_eq!(failure.map(|f| f.kind), Some(FailureKind::Permanent));
    }

    #[test]
    fn a_temporary_failure_is_answered_only_when_attempts_run_out() {
        let (reply, _) = answer(&message(false), &lookup(), Err(CallError::Retriable("x".into())));
        assert!(reply.is_none());
        let (reply, _) = answer(&message(true), &lookup(), Err(CallError::Retriable("x".into())));
        assert!(reply.is_some());
    }
}
