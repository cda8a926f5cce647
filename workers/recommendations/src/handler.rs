//! Handling of `recommendation.requested` and `recommendation.tracked`.
//!
//! A request becomes one Froomle recommendations call and one `recommendation.ready` (id
//! `<input id>:ready`, the input's correlation id) holding the items with their metadata and the
//! request id / user group attribution needs. A request that fails for good also yields a
//! `recommendation.ready` with `status: failed`, so whoever waits for the answer (the batch
//! CLI) learns it at once, and the input is dead-lettered as usual.
//!
//! A tracking message becomes one Froomle events call: `batch_open`, or for a click
//! `batch_click_on_recommendation` plus the `detail_pageview` Froomle expects after it. Froomle
//! events have no idempotency key, so the [`Processed`] record keeps a redelivery from sending
//! them again.

use api_client::CallError;
use messages::Outgoing;
use messages::recommendation::{
    ReadyStatus, RecommendationReady, RecommendationRequested, RecommendationTracked, RecommendedItem, TrackedEvent,
};
use mq::{Failure, FailureKind, Handler, Incoming, Outcome};
use prometheus::{IntCounterVec, Opts, Registry};
use provider_froomle::{Event, FroomleClient, ListRequest, Recommendations, Request};
use tracing::{debug, info};

use crate::processed::{Claim, Processed};

/// Page type of the `detail_pageview` sent after a click, unless the message names one.
pub const DEFAULT_DETAIL_PAGE_TYPE: &str = "article_detail";

/// How long a delivery that races another delivery of the same message parks.
const IN_PROGRESS_PARK: std::time::Duration = std::time::Duration::from_secs(1);

/// Counters of what the worker did.
#[derive(Debug, Clone)]
pub struct RecommendationMetrics {
    outcomes: IntCounterVec,
}

impl RecommendationMetrics {
    /// Registers `switchyard_recommendation_outcomes_total{type, outcome}` (outcome: `ready`,
    /// `failed`, `sent`, `duplicate`).
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let outcomes = IntCounterVec::new(
            Opts::new(
                "switchyard_recommendation_outcomes_total",
                "Messages handled by recommendations, by input type and outcome.",
            ),
            &["type", "outcome"],
        )?;
        registry.register(Box::new(outcomes.clone()))?;
        Ok(Self { outcomes })
    }

    fn count(&self, kind: &'static str, outcome: &'static str) {
        self.outcomes.with_label_values(&[kind, outcome]).inc();
    }
}

/// The worker's dependencies.
#[derive(Debug)]
pub struct RecommendationsWorker {
    /// The Froomle client.
    pub froomle: FroomleClient,
    /// Tracking messages whose events Froomle already accepted, in this process (it also keeps
    /// two deliveries of one message handled at once from both sending).
    pub processed: Processed,
    /// The same across replicas and restarts (Redis with `REDIS_URL`): a worker killed after
    /// Froomle accepted the events and before the ack does not send them again on redelivery.
    pub ledger: ledger::Ledger,
    /// Counters.
    pub metrics: RecommendationMetrics,
}

const REQUESTED: &str = "recommendation.requested";
const TRACKED: &str = "recommendation.tracked";
/// The ledger effect of a tracking message: its events accepted by Froomle.
const FROOMLE_EVENTS: &str = "froomle_events";

impl Handler for RecommendationsWorker {
    async fn handle(&self, message: Incoming) -> Outcome {
        match message.kind.as_str() {
            REQUESTED => match message.decode::<RecommendationRequested>() {
                Ok(request) => self.requested(&message, &request).await,
                Err(error) => Outcome::failed(
                    FailureKind::Invalid,
                    format!("body does not match recommendation.requested: {error}"),
                ),
            },
            TRACKED => match message.decode::<RecommendationTracked>() {
                Ok(tracked) => self.tracked(&message, &tracked).await,
                Err(error) => Outcome::failed(
                    FailureKind::Invalid,
                    format!("body does not match recommendation.tracked: {error}"),
                ),
            },
            other => Outcome::failed(
                FailureKind::Invalid,
                format!("recommendations does not handle `{other}`"),
            ),
        }
    }
}

impl RecommendationsWorker {
    async fn requested(&self, message: &Incoming, request: &RecommendationRequested) -> Outcome {
        let result = self
            .froomle
            .recommendations(&request.environment, &froomle_request(request))
            .await
            .and_then(|answer| ready(request, &message.message_id, &answer));
        let (ready, failure) = match result {
            Ok(ready) => {
                debug!(
                    list_name = %request.list_name,
                    items = ready.items.as_ref().map_or(0, Vec::len),
                    "Recommendations ready."
                );
                self.metrics.count(REQUESTED, "ready");
                (Some(ready), None)
            }
            Err(error) => {
                let failure = failure(error);
                let final_failure = match failure.kind {
                    FailureKind::Invalid | FailureKind::Permanent => true,
                    FailureKind::Retriable => message.last_attempt,
                    FailureKind::RateLimited { .. } => false,
                };
                let ready = final_failure.then(|| {
                    self.metrics.count(REQUESTED, "failed");
                    failed(request, &message.message_id, &failure.reason)
                });
                (ready, Some(failure))
            }
        };
        let mut outcome = Outcome::default();
        if let Some(ready) = ready {
            let id = format!("{}:ready", message.message_id);
            match Outgoing::json("recommendation.ready", id, message.correlation_id.clone(), &ready) {
                Ok(result) => outcome.results.push(result),
                Err(error) => outcome.failures.push(Failure {
                    scope: Vec::new(),
                    kind: FailureKind::Permanent,
                    reason: format!("cannot encode recommendation.ready: {error}"),
                }),
            }
        }
        outcome.failures.extend(failure);
        outcome
    }

    async fn tracked(&self, message: &Incoming, tracked: &RecommendationTracked) -> Outcome {
        let events = match events(tracked) {
            Ok(events) => events,
            Err(reason) => return Outcome::failed(FailureKind::Invalid, reason),
        };
        let guard = match self.processed.claim(&message.message_id) {
            Claim::Fresh(guard) => guard,
            Claim::AlreadyDone => {
                info!(
                    message_id = %message.message_id,
                    "Tracking events of this message were already sent; not sending them again."
                );
                self.metrics.count(TRACKED, "duplicate");
                return Outcome::default();
            }
            Claim::InProgress => {
                return Outcome::failed(
                    FailureKind::RateLimited {
                        retry_in: IN_PROGRESS_PARK,
                    },
                    "another delivery of this message is being handled; parked until it is done",
                );
            }
        };
        if self.ledger.is_done(&message.message_id, FROOMLE_EVENTS).await {
            guard.done();
            info!(
                message_id = %message.message_id,
                "Tracking events of this message were sent before a restart; not sending them again."
            );
            self.metrics.count(TRACKED, "duplicate");
            return Outcome::default();
        }
        match self.froomle.events(&tracked.environment, &events).await {
            Ok(()) => {
                self.ledger.mark_done(&message.message_id, FROOMLE_EVENTS).await;
                guard.done();
                self.metrics.count(TRACKED, "sent");
                debug!(events = events.len(), "Tracking events sent to Froomle.");
                Outcome::default()
            }
            Err(error) => {
                // Dropping the claim lets the retry send.
                drop(guard);
                let failure = failure(error);
                if matches!(failure.kind, FailureKind::Permanent) || message.last_attempt {
                    self.metrics.count(TRACKED, "failed");
                }
                Outcome {
                    results: Vec::new(),
                    failures: vec![failure],
                }
            }
        }
    }
}

/// The Froomle request for one `recommendation.requested`. In a newsletter the mailbox is the
/// device, so `device_id` defaults to the user id.
pub fn froomle_request(request: &RecommendationRequested) -> Request {
    Request {
        device_id: request.device_id.clone().unwrap_or_else(|| request.user_id.clone()),
        user_id: Some(request.user_id.clone()),
        page_type: request.page_type.clone(),
        lists: vec![ListRequest {
            list_name: request.list_name.clone(),
            list_size: request.list_size,
        }],
    }
}

/// The `recommendation.ready` for Froomle's answer: the requested list's items (at most
/// `list_size`, best first). An answer without that list is a permanent error.
pub fn ready(
    request: &RecommendationRequested,
    source_message_id: &str,
    answer: &Recommendations,
) -> Result<RecommendationReady, CallError> {
    let list = answer.list(&request.list_name).ok_or_else(|| {
        CallError::Permanent(format!(
            "froomle recommendations: the answer holds no list `{}`",
            request.list_name
        ))
    })?;
    let limit = usize::try_from(request.list_size).unwrap_or(usize::MAX);
    let items = list
        .items
        .iter()
        .filter(|item| !item.item_id.is_empty())
        .take(limit)
        .map(|item| RecommendedItem {
            rank: item.rank.max(1),
            item_id: item.item_id.clone(),
            title: item.title.clone(),
            url: item.url.clone(),
            image_url: item.image_url.clone(),
            description: item.description.clone(),
        })
        .collect();
    Ok(RecommendationReady {
        status: ReadyStatus::Ready,
        environment: request.environment.clone(),
        user_id: request.user_id.clone(),
        list_name: request.list_name.clone(),
        campaign_id: request.campaign_id.clone(),
        request_id: Some(answer.request_id.clone()),
        user_group: answer.user_group.clone(),
        version: answer.version.clone(),
        items: Some(items),
        error: None,
        source_message_id: source_message_id.to_owned(),
    })
}

fn failed(request: &RecommendationRequested, source_message_id: &str, reason: &str) -> RecommendationReady {
    RecommendationReady {
        status: ReadyStatus::Failed,
        environment: request.environment.clone(),
        user_id: request.user_id.clone(),
        list_name: request.list_name.clone(),
        campaign_id: request.campaign_id.clone(),
        request_id: None,
        user_group: None,
        version: None,
        items: None,
        error: Some(reason.to_owned()),
        source_message_id: source_message_id.to_owned(),
    }
}

/// The Froomle events for one tracking message: an open is `batch_open`; a click is
/// `batch_click_on_recommendation` followed by a `detail_pageview` of the item. Fails (naming
/// the field) when a click lacks what attribution needs, which the schema already rules out.
pub fn events(tracked: &RecommendationTracked) -> Result<Vec<Event>, String> {
    let device_id = tracked.device_id.clone().unwrap_or_else(|| tracked.user_id.clone());
    let user_id = Some(tracked.user_id.clone());
    match tracked.event {
        TrackedEvent::BatchOpen => Ok(vec![Event::BatchOpen {
            device_id,
            user_id,
            campaign_id: tracked.campaign_id.clone(),
        }]),
        TrackedEvent::BatchClickOnRecommendation => {
            let field = |value: &Option<String>, name: &str| {
                value
                    .clone()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| format!("a batch_click_on_recommendation needs `{name}`"))
            };
            let item_id = field(&tracked.item_id, "item_id")?;
            let item_type = field(&tracked.item_type, "item_type")?;
            Ok(vec![
                Event::BatchClickOnRecommendation {
                    device_id: device_id.clone(),
                    user_id: user_id.clone(),
                    campaign_id: tracked.campaign_id.clone(),
                    list_name: field(&tracked.list_name, "list_name")?,
                    request_id: field(&tracked.request_id, "request_id")?,
                    item_id: item_id.clone(),
                    item_type: item_type.clone(),
                },
                Event::DetailPageview {
                    device_id,
                    user_id,
                    page_type: tracked
                        .page_type
                        .clone()
                        .unwrap_or_else(|| DEFAULT_DETAIL_PAGE_TYPE.to_owned()),
                    item_id,
                    item_type,
                },
            ])
        }
    }
}

/// The failure for a call error: 4xx and vendor errors are permanent, network errors and 5xx
/// retriable, a rate limit parks the message without spending an attempt.
fn failure(error: CallError) -> Failure {
    let (kind, reason) = match error {
        CallError::Permanent(reason) | CallError::NotFound(reason) => (FailureKind::Permanent, reason),
        CallError::Retriable(reason) => (FailureKind::Retriable, reason),
        CallError::RateLimited { retry_in } => (
            FailureKind::RateLimited { retry_in },
            format!("froomle rate limited for {retry_in:?}"),
        ),
    };
    Failure {
        scope: Vec::new(),
        kind,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use provider_froomle::{Item, RecommendedList};
    use serde_json::json;

    use super::*;

    fn request(list_size: u32) -> RecommendationRequested {
        RecommendationRequested {
            environment: "demo".into(),
            user_id: "user-1".into(),
            list_name: "top".into(),
            list_size,
            page_type: "newsletter".into(),
            campaign_id: Some("c-1".into()),
            device_id: None,
        }
    }

    fn item(rank: u32, id: &str) -> Item {
        Item {
            item_id: id.into(),
            rank,
            title: Some(format!("Title {id}")),
            url: Some(format!("https://x/{id}")),
            image_url: None,
            description: Some("d".into()),
        }
    }

    fn answer(lists: Vec<RecommendedList>) -> Recommendations {
        Recommendations {
            device_id: Some("user-1".into()),
            user_id: Some("user-1".into()),
            user_group: Some("froomle".into()),
            version: Some("froomle_1".into()),
            request_id: "r-9".into(),
            lists,
        }
    }

    #[test]
    fn device_id_defaults_to_the_user() {
        let mut req = request(3);
        assert_eq!(froomle_request(&req).device_id, "user-1");
        req.device_id = Some("cookie-7".into());
        let froomle = froomle_request(&req);
        assert_eq!(
            (froomle.device_id.as_str(), froomle.user_id.as_deref()),
            ("cookie-7", Some("user-1"))
        );
        assert_eq!(
            froomle.lists,
            vec![ListRequest {
                list_name: "top".into(),
                list_size: 3
            }]
        );
    }

    #[test]
    fn ready_carries_items_metadata_and_attribution() {
        let answer = answer(vec![RecommendedList {
            list_name: "top".into(),
            list_key: None,
            items: vec![item(1, "a"), item(2, "b"), item(3, "c")],
        }]);
        let ready = ready(&request(2), "m-1", &answer).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            serde_json::to_value(&ready).unwrap_or_default(),
            json!({
                "status": "ready", "environment": "demo", "user_id": "user-1", "list_name": "top",
                "campaign_id": "c-1", "request_id": "r-9", "user_group": "froomle", "version": "froomle_1",
                "items": [
                    {"rank": 1, "item_id": "a", "title": "Title a", "url": "https://x/a", "description": "d"},
                    {"rank": 2, "item_id": "b", "title": "Title b", "url": "https://x/b", "description": "d"}
                ],
                "source_message_id": "m-1"
            })
        );
    }

    #[test]
    fn an_answer_without_the_list_is_permanent() {
        let answer = answer(vec![RecommendedList {
            list_name: "other".into(),
            list_key: None,
            items: vec![item(1, "a")],
        }]);
        assert!(matches!(ready(&request(2), "m", &answer), Err(CallError::Permanent(text)) if text.contains("`top`")));
    }

    fn tracked(event: TrackedEvent) -> RecommendationTracked {
        RecommendationTracked {
            event,
            environment: "demo".into(),
            user_id: "user-1".into(),
            device_id: None,
            campaign_id: "c-1".into(),
            list_name: Some("top".into()),
            request_id: Some("r-9".into()),
            item_id: Some("a".into()),
            item_type: Some("article".into()),
            page_type: None,
            occurred_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn an_open_is_one_batch_open() {
        assert_eq!(
            events(&tracked(TrackedEvent::BatchOpen)),
            Ok(vec![Event::BatchOpen {
                device_id: "user-1".into(),
                user_id: Some("user-1".into()),
                campaign_id: "c-1".into(),
            }])
        );
    }

    #[test]
    fn a_click_is_a_click_and_a_detail_pageview() {
        let events = events(&tracked(TrackedEvent::BatchClickOnRecommendation)).unwrap_or_default();
        let types: Vec<&str> = events.iter().map(Event::event_type).collect();
        assert_eq!(types, ["batch_click_on_recommendation", "detail_pageview"]);
        assert!(matches!(
            &events[1],
            Event::DetailPageview { page_type, item_id, item_type, .. }
                if page_type == DEFAULT_DETAIL_PAGE_TYPE && item_id == "a" && item_type == "article"
        ));
    }

    #[test]
    fn a_click_without_its_request_id_is_refused_naming_the_field() {
        let mut click = tracked(TrackedEvent::BatchClickOnRecommendation);
        click.request_id = None;
        assert_eq!(
            events(&click),
            Err("a batch_click_on_recommendation needs `request_id`".to_owned())
        );
    }

    #[test]
    fn call_errors_map_to_failure_kinds() {
        assert_eq!(failure(CallError::Permanent("p".into())).kind, FailureKind::Permanent);
        assert_eq!(failure(CallError::NotFound("n".into())).kind, FailureKind::Permanent);
        assert_eq!(failure(CallError::Retriable("r".into())).kind, FailureKind::Retriable);
        let wait = std::time::Duration::from_secs(3);
        assert_eq!(
            failure(CallError::RateLimited { retry_in: wait }).kind,
            FailureKind::RateLimited { retry_in: wait }
        );
    }
}
