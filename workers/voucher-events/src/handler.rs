//! Handling of the voucher flow's messages.
//!
//! - `voucher.publish.requested` → Voucherify `POST /v1/publications` with the message id as
//!   the publication `source_id` → `voucher.published` (id `<message id>:published`).
//! - `voucher.redeemed` → a Bloomreach customer event `voucherify_<event>` through the batch
//!   endpoint (many deliveries share one call) → `voucher.event.forwarded` (id
//!   `<message id>:bloomreach`). A command Bloomreach refuses fails only its own message, as
//!   permanent, with Bloomreach's error.
//! - `bloomreach.customer.updated` / `bloomreach.event.exported` → Voucherify's integration
//!   bulk endpoints, batched, with only defined, well-typed metadata →
//!   `voucher.event.forwarded` (id `<message id>:voucherify`) with the dropped-key counts.
//!
//! Every message has one destination, so failures are unscoped.

use std::collections::BTreeMap;

use api_client::CallError;
use messages::Outgoing;
use messages::voucher::{
    BloomreachCustomerUpdated, BloomreachEventExported, MetadataDropped, VoucherEventForwarded,
    VoucherPublishRequested, VoucherPublished, VoucherRedeemed,
};
use mq::{FailureKind, Handler, Incoming, Outcome};
use provider_bloomreach::{BloomreachClient, Command, CommandResult, Event};
use provider_voucherify::{
    Address, Dropped, IntegrationCustomer, IntegrationEvent, PublicationCustomer, PublicationRequest, VoucherifyClient,
    VoucherifyIntegrationClient,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::batch::{BatchSettings, Batcher};

/// Destination names (`voucher.event.forwarded` and result id suffixes).
pub const BLOOMREACH: &str = "bloomreach";
/// Voucherify destination.
pub const VOUCHERIFY: &str = "voucherify";

/// One item's result from the integration batchers.
type Forwarded = Result<Dropped, CallError>;

/// The worker's handler.
#[derive(Debug)]
pub struct VoucherEvents {
    voucherify: VoucherifyClient,
    bloomreach_events: Batcher<Event, Result<(), CallError>>,
    integration_customers: Batcher<IntegrationCustomer, Forwarded>,
    integration_events: Batcher<IntegrationEvent, Forwarded>,
    hard_id: String,
}

/// Batch settings of the two directions.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Bloomreach event batches.
    pub bloomreach: BatchSettings,
    /// Voucherify integration batches.
    pub integration: BatchSettings,
}

impl VoucherEvents {
    /// The handler over its clients; starts the batching tasks (call within a Tokio runtime).
    /// `hard_id` is the Bloomreach main hard id name (`customer_ids` key).
    pub fn new(
        voucherify: VoucherifyClient,
        bloomreach: BloomreachClient,
        integration: VoucherifyIntegrationClient,
        hard_id: String,
        batching: Batching,
    ) -> Self {
        let bloomreach_events = Batcher::spawn("bloomreach", batching.bloomreach, move |events: Vec<Event>| {
            let client = bloomreach.clone();
            async move { flush_bloomreach(&client, events).await }
        });
        let customers_client = integration.clone();
        let integration_customers = Batcher::spawn(
            "voucherify_integration customers",
            batching.integration,
            move |customers: Vec<IntegrationCustomer>| {
                let client = customers_client.clone();
                async move {
                    let n = customers.len();
                    spread(client.upsert_customers_bulk(&customers).await, n)
                }
            },
        );
        let integration_events = Batcher::spawn(
            "voucherify_integration events",
            batching.integration,
            move |events: Vec<IntegrationEvent>| {
                let client = integration.clone();
                async move {
                    let n = events.len();
                    spread(client.create_events_bulk(&events).await, n)
                }
            },
        );
        Self {
            voucherify,
            bloomreach_events,
            integration_customers,
            integration_events,
            hard_id,
        }
    }
}

/// One batch call's per-command results as per-item results.
async fn flush_bloomreach(client: &BloomreachClient, events: Vec<Event>) -> Vec<Result<(), CallError>> {
    let n = events.len();
    let commands: Vec<Command> = events.into_iter().map(Command::AddEvent).collect();
    match client.batch(&commands).await {
        Ok(results) => results.into_iter().map(command_result).collect(),
        Err(error) => vec![Err(error); n],
    }
}

fn command_result(result: CommandResult) -> Result<(), CallError> {
    match result {
        CommandResult::Accepted => Ok(()),
        CommandResult::Rejected { errors } => Err(CallError::Permanent(format!(
            "bloomreach refused the event: {}",
            if errors.is_empty() {
                "no reason given".to_owned()
            } else {
                errors.join("; ")
            }
        ))),
        CommandResult::Failed(error) => Err(error),
    }
}

/// A whole-call result as one result per item.
fn spread(result: Result<Vec<Dropped>, CallError>, n: usize) -> Vec<Forwarded> {
    match result {
        Ok(dropped) => dropped.into_iter().map(Ok).collect(),
        Err(error) => vec![Err(error); n],
    }
}

impl Handler for VoucherEvents {
    async fn handle(&self, message: Incoming) -> Outcome {
        match message.kind.as_str() {
            "voucher.publish.requested" => match parse::<VoucherPublishRequested>(&message) {
                Ok(request) => self.publish(&message, request).await,
                Err(outcome) => outcome,
            },
            "voucher.redeemed" => match parse::<VoucherRedeemed>(&message) {
                Ok(event) => self.forward_to_bloomreach(&message, &event).await,
                Err(outcome) => outcome,
            },
            "bloomreach.customer.updated" => match parse::<BloomreachCustomerUpdated>(&message) {
                Ok(update) => self.forward_customer(&message, update).await,
                Err(outcome) => outcome,
            },
            "bloomreach.event.exported" => match parse::<BloomreachEventExported>(&message) {
                Ok(event) => self.forward_event(&message, event).await,
                Err(outcome) => outcome,
            },
            other => Outcome::failed(
                FailureKind::Invalid,
                format!("voucher-events does not handle `{other}`"),
            ),
        }
    }
}

fn parse<T: DeserializeOwned>(message: &Incoming) -> Result<T, Outcome> {
    message.decode().map_err(|error| {
        Outcome::failed(
            FailureKind::Invalid,
            format!("body does not match {}: {error}", message.kind),
        )
    })
}

impl VoucherEvents {
    async fn publish(&self, message: &Incoming, request: VoucherPublishRequested) -> Outcome {
        let request = publication_request(&message.message_id, request);
        let result = self
            .voucherify
            .publish(&request)
            .await
            .map(|publication| VoucherPublished {
                publication_id: publication.id,
                code: publication.code,
                campaign: publication.campaign,
                customer_source_id: publication.customer_source_id,
                source_message_id: message.message_id.clone(),
            });
        respond(message, "voucher.published", "published", VOUCHERIFY, result)
    }

    async fn forward_to_bloomreach(&self, message: &Incoming, redeemed: &VoucherRedeemed) -> Outcome {
        let event = bloomreach_event(&self.hard_id, redeemed);
        let event_type = event.event_type.clone();
        let result = match self.bloomreach_events.submit(event).await {
            Ok(result) => result,
            Err(stopped) => Err(CallError::Retriable(stopped.to_string())),
        };
        let result = result.map(|()| VoucherEventForwarded {
            destination: BLOOMREACH.to_owned(),
            operation: "event".to_owned(),
            event: Some(event_type),
            customer_id: redeemed.customer_source_id.clone(),
            metadata_dropped: None,
            source_message_id: message.message_id.clone(),
        });
        respond(message, "voucher.event.forwarded", BLOOMREACH, BLOOMREACH, result)
    }

    async fn forward_customer(&self, message: &Incoming, update: BloomreachCustomerUpdated) -> Outcome {
        let customer_id = update.customer_id.clone();
        let result = match self.integration_customers.submit(integration_customer(update)).await {
            Ok(result) => result,
            Err(stopped) => Err(CallError::Retriable(stopped.to_string())),
        };
        let result = result.map(|dropped| VoucherEventForwarded {
            destination: VOUCHERIFY.to_owned(),
            operation: "customer_update".to_owned(),
            event: None,
            customer_id,
            metadata_dropped: Some(metadata_dropped(dropped)),
            source_message_id: message.message_id.clone(),
        });
        respond(message, "voucher.event.forwarded", VOUCHERIFY, VOUCHERIFY, result)
    }

    async fn forward_event(&self, message: &Incoming, exported: BloomreachEventExported) -> Outcome {
        let event = IntegrationEvent {
            event: exported.event.clone(),
            customer_source_id: exported.customer_id.clone(),
            metadata: exported.metadata.into_iter().collect(),
        };
        let result = match self.integration_events.submit(event).await {
            Ok(result) => result,
            Err(stopped) => Err(CallError::Retriable(stopped.to_string())),
        };
        let result = result.map(|dropped| VoucherEventForwarded {
            destination: VOUCHERIFY.to_owned(),
            operation: "event".to_owned(),
            event: Some(exported.event),
            customer_id: exported.customer_id,
            metadata_dropped: Some(metadata_dropped(dropped)),
            source_message_id: message.message_id.clone(),
        });
        respond(message, "voucher.event.forwarded", VOUCHERIFY, VOUCHERIFY, result)
    }
}

/// The publication for a request: the message id is the publication `source_id`.
fn publication_request(message_id: &str, request: VoucherPublishRequested) -> PublicationRequest {
    PublicationRequest {
        source_id: message_id.to_owned(),
        campaign: request.campaign,
        customer: PublicationCustomer {
            source_id: request.customer.source_id,
            email: request.customer.email,
            name: request.customer.name,
        },
        channel: request.channel,
        metadata: request.metadata.into_iter().collect(),
    }
}

/// The Bloomreach event type of a Voucherify customer event: `voucherify_` + the event with
/// dots as underscores (`voucherify_redemption_succeeded`).
pub fn bloomreach_event_type(redeemed: &VoucherRedeemed) -> String {
    format!("voucherify_{}", redeemed.event.as_str().replace('.', "_"))
}

/// A Voucherify customer event as a Bloomreach customer event: the customer by its main hard
/// id, the event's time, and its details as properties (metadata keys never override them).
fn bloomreach_event(hard_id: &str, redeemed: &VoucherRedeemed) -> Event {
    let mut properties = Map::new();
    let mut text = |key: &str, value: &Option<String>| {
        if let Some(value) = value {
            properties.insert(key.to_owned(), Value::String(value.clone()));
        }
    };
    text("event_id", &redeemed.event_id);
    text("voucherify_customer_id", &redeemed.customer_id);
    text("voucher_code", &redeemed.voucher_code);
    text("campaign", &redeemed.campaign);
    text("order_id", &redeemed.order_id);
    text("currency", &redeemed.currency);
    text("failure_reason", &redeemed.failure_reason);
    for (key, value) in [("amount", redeemed.amount), ("discount", redeemed.discount)] {
        if let Some(number) = value.and_then(serde_json::Number::from_f64) {
            properties.insert(key.to_owned(), Value::Number(number));
        }
    }
    if let Some(points) = redeemed.points {
        properties.insert("points".to_owned(), Value::from(points));
    }
    for (key, value) in &redeemed.metadata {
        properties.entry(key.clone()).or_insert_with(|| value.clone());
    }
    Event {
        customer_ids: BTreeMap::from([(hard_id.to_owned(), redeemed.customer_source_id.clone())]),
        event_type: bloomreach_event_type(redeemed),
        timestamp: redeemed.occurred_at,
        properties,
    }
}

fn integration_customer(update: BloomreachCustomerUpdated) -> IntegrationCustomer {
    IntegrationCustomer {
        source_id: update.customer_id,
        name: update.name,
        description: update.description,
        email: update.email,
        phone: update.phone,
        birthdate: update.birthdate,
        address: update.address.map(|a| Address {
            city: a.city,
            state: a.state,
            line_1: a.line_1,
            line_2: a.line_2,
            country: a.country,
            postal_code: a.postal_code,
        }),
        metadata: update.metadata.into_iter().collect(),
    }
}

fn metadata_dropped(dropped: Dropped) -> MetadataDropped {
    MetadataDropped {
        undefined: dropped.undefined,
        wrong_type: dropped.wrong_type,
    }
}

/// The outcome of a message with one destination: the result (id `<message id>:<suffix>`, the
/// same on every redelivery) or the failure, classified.
fn respond<T: Serialize>(
    message: &Incoming,
    kind: &str,
    suffix: &str,
    provider: &str,
    result: Result<T, CallError>,
) -> Outcome {
    match result {
        Ok(body) => {
            let id = format!("{}:{suffix}", message.message_id);
            match Outgoing::json(kind, id, message.correlation_id.clone(), &body) {
                Ok(result) => Outcome::ok(vec![result]),
                Err(error) => Outcome::failed(FailureKind::Permanent, format!("cannot encode {kind}: {error}")),
            }
        }
        Err(CallError::Permanent(reason) | CallError::NotFound(reason)) => {
            Outcome::failed(FailureKind::Permanent, reason)
        }
        Err(CallError::Retriable(reason)) => Outcome::failed(FailureKind::Retriable, reason),
        Err(CallError::RateLimited { retry_in }) => Outcome::failed(
            FailureKind::RateLimited { retry_in },
            format!("{provider} rate limited for {retry_in:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use messages::voucher::CustomerEvent;
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    fn incoming(kind: &str) -> Incoming {
        Incoming {
            message_id: "m-1".into(),
            kind: kind.into(),
            correlation_id: Some("c-1".into()),
            attempt: 1,
            scope: Vec::new(),
            redelivered: false,
            last_attempt: false,
            body: Value::Null,
        }
    }

    fn redeemed() -> VoucherRedeemed {
        serde_json::from_value(json!({
            "event": "redemption.succeeded",
            "event_id": "evcus_1",
            "customer_source_id": "shop-1",
            "voucher_code": "DC-1",
            "campaign": "Discount code campaign",
            "amount": 120.5,
            "currency": "CZK",
            "occurred_at": "2026-11-21T09:30:00Z",
            "metadata": {"channel": "web", "voucher_code": "must not override"}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn event_types_are_prefixed_snake_case() {
        let mut event = redeemed();
        let mut names = Vec::new();
        for kind in CustomerEvent::ALL {
            event.event = kind;
            names.push(bloomreach_event_type(&event));
        }
        assert_eq!(names[0], "voucherify_redemption_succeeded");
        assert!(names.contains(&"voucherify_rewarded_loyalty_points".to_owned()));
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }

    #[test]
    fn bloomreach_event_carries_the_details_as_properties() {
        let event = bloomreach_event("registered", &redeemed());
        assert_eq!(event.customer_ids.get("registered").map(String::as_str), Some("shop-1"));
        assert_eq!(event.timestamp, datetime!(2026-11-21 09:30:00 UTC));
        assert_eq!(
            Value::Object(event.properties),
            json!({
                "event_id": "evcus_1",
                "voucher_code": "DC-1",
                "campaign": "Discount code campaign",
                "amount": 120.5,
                "currency": "CZK",
                "channel": "web"
            })
        );
    }

    #[test]
    fn publication_uses_the_message_id_as_source_id() {
        let request: VoucherPublishRequested = serde_json::from_value(json!({
            "campaign": "Welcome 10",
            "customer": {"source_id": "shop-1", "email": "a@example.com"},
            "metadata": {"scenario": "cart"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let publication = publication_request("msg-42", request);
        assert_eq!(publication.source_id, "msg-42");
        assert_eq!(publication.customer.source_id, "shop-1");
        assert_eq!(publication.metadata.get("scenario"), Some(&json!("cart")));
    }

    #[test]
    fn results_and_failures_map_to_outcomes() {
        let message = incoming("voucher.redeemed");
        let ok = respond(
            &message,
            "voucher.event.forwarded",
            "bloomreach",
            BLOOMREACH,
            Ok(json!({})),
        );
        assert_eq!(ok.results.len(), 1);
        assert_eq!(ok.results[0].message_id, "m-1:bloomreach");
        assert_eq!(ok.results[0].correlation_id.as_deref(), Some("c-1"));
        let kind = |error: CallError| {
            respond::<Value>(
                &message,
                "voucher.event.forwarded",
                "bloomreach",
                BLOOMREACH,
                Err(error),
            )
            .failures[0]
                .kind
        };
        assert_eq!(kind(CallError::Permanent("refused".into())), FailureKind::Permanent);
        assert_eq!(kind(CallError::NotFound("no campaign".into())), FailureKind::Permanent);
        assert_eq!(kind(CallError::Retriable("503".into())), FailureKind::Retriable);
        assert_eq!(
            kind(CallError::RateLimited {
                retry_in: Duration::from_secs(3)
            }),
            FailureKind::RateLimited {
                retry_in: Duration::from_secs(3)
            }
        );
    }

    #[test]
    fn bloomreach_command_results_map_per_item() {
        assert_eq!(command_result(CommandResult::Accepted), Ok(()));
        let refused = command_result(CommandResult::Rejected {
            errors: vec!["At least one id should be specified.".into()],
        });
        assert!(matches!(refused, Err(CallError::Permanent(text)) if text.contains("At least one id")));
        let failed = command_result(CommandResult::Failed(CallError::Retriable("503".into())));
        assert_eq!(failed, Err(CallError::Retriable("503".into())));
        let spread_err = spread(Err(CallError::Retriable("down".into())), 3);
        assert_eq!(spread_err.len(), 3);
        assert!(spread_err.iter().all(Result::is_err));
    }

    #[test]
    fn integration_customer_keeps_the_hard_id_value_as_source_id() {
        let update: BloomreachCustomerUpdated = serde_json::from_value(json!({
            "customer_id": "shop-1",
            "birthdate": "1990-04-12",
            "address": {"city": "Brno"},
            "metadata": {"segment": "gold"},
            "updated_at": "2026-11-21T08:00:00Z"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let customer = integration_customer(update);
        assert_eq!(customer.source_id, "shop-1");
        assert_eq!(customer.address.and_then(|a| a.city).as_deref(), Some("Brno"));
        assert_eq!(customer.metadata.get("segment"), Some(&json!("gold")));
    }
}
