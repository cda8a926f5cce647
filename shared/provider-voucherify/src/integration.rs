//! [`VoucherifyIntegrationClient`]: Voucherify's Bloomreach Engagement integration endpoints
//! (the Bloomreach → Voucherify direction): `POST /bloomreach-engagement/upsert-customer-bulk`
//! and `POST /bloomreach-engagement/create-event-bulk`, authenticated with the integration
//! key's `application-id` / `secret-key` headers, body a bare JSON array (a Bloomreach batch
//! webhook), answer `202`.
//!
//! Voucherify applies only metadata its metadata schema defines, with the defined type, and
//! drops the rest silently; this client drops it first (and counts it) so what is sent is what
//! is applied.

use std::fmt;

use api_client::{CallError, ProviderClient};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::customer::{Customer, customer_json};
use crate::error::call_error;
use crate::metadata::{Dropped, MetadataFilter};

/// The provider label of the integration endpoints (metrics, error texts). They count against
/// Voucherify's webhook limits, not its API limits, hence a budget of their own.
pub const INTEGRATION_PROVIDER: &str = "voucherify_integration";

/// Integration key and the main hard id.
#[derive(Debug, Clone)]
pub struct IntegrationConfig {
    /// Integration application id (`application-id` header).
    pub application_id: SecretString,
    /// Integration secret key (`secret-key` header).
    pub secret_key: SecretString,
    /// Name of the Bloomreach main hard id configured in Voucherify (e.g. `registered`): the
    /// key that carries the customer's id in every payload.
    pub hard_id: String,
}

/// A customer update for the integration endpoint: a [`Customer`] whose `source_id` is the
/// main hard id's value.
pub type IntegrationCustomer = Customer;

/// A customer event for the integration endpoint.
#[derive(Clone, PartialEq)]
pub struct IntegrationEvent {
    /// Event name.
    pub event: String,
    /// The customer's main hard id value (Voucherify customer source id).
    pub customer_source_id: String,
    /// Event metadata; filtered to the metadata schema before sending.
    pub metadata: Map<String, Value>,
}

impl fmt::Debug for IntegrationEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntegrationEvent")
            .field("event", &self.event)
            .field("customer_source_id", &self.customer_source_id)
            .field("metadata_keys", &self.metadata.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The integration endpoints' client.
#[derive(Debug, Clone)]
pub struct VoucherifyIntegrationClient {
    http: ProviderClient,
    config: IntegrationConfig,
    metadata: MetadataFilter,
}

impl VoucherifyIntegrationClient {
    /// A client over the shared HTTP client (label [`INTEGRATION_PROVIDER`]); every metadata
    /// map goes through `metadata`.
    pub fn new(http: ProviderClient, config: IntegrationConfig, metadata: MetadataFilter) -> Self {
        Self { http, config, metadata }
    }

    async fn post(&self, operation: &'static str, path: &str, items: Vec<Value>) -> Result<(), CallError> {
        let body = serde_json::to_vec(&items)
            .map_err(|e| CallError::Permanent(format!("{INTEGRATION_PROVIDER} {operation}: cannot encode: {e}")))?;
        let url = self.http.url(path)?;
        self.http
            .send(
                operation,
                |http| {
                    http.post(url.clone())
                        .header("application-id", self.config.application_id.expose_secret())
                        .header("secret-key", self.config.secret_key.expose_secret())
                        .header(reqwest::header::ACCEPT, "application/json")
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                },
                |reply, class| call_error(INTEGRATION_PROVIDER, operation, reply, class),
            )
            .await
            .map(drop)
    }

    /// `POST /bloomreach-engagement/upsert-customer-bulk` with every customer in one call.
    /// Returns, per customer and in order, the metadata keys left out.
    pub async fn upsert_customers_bulk(&self, customers: &[IntegrationCustomer]) -> Result<Vec<Dropped>, CallError> {
        if customers.is_empty() {
            return Ok(Vec::new());
        }
        let mut dropped = Vec::with_capacity(customers.len());
        let items = customers
            .iter()
            .map(|customer| {
                let mut metadata = customer.metadata.clone();
                dropped.push(self.metadata.apply(&mut metadata));
                customer_json(customer, &self.config.hard_id, metadata)
            })
            .collect();
        self.post(
            "upsert_customer_bulk",
            "/bloomreach-engagement/upsert-customer-bulk",
            items,
        )
        .await?;
        Ok(dropped)
    }

    /// `POST /bloomreach-engagement/create-event-bulk` with every event in one call. Returns,
    /// per event and in order, the metadata keys left out.
    pub async fn create_events_bulk(&self, events: &[IntegrationEvent]) -> Result<Vec<Dropped>, CallError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut dropped = Vec::with_capacity(events.len());
        let items = events
            .iter()
            .map(|event| {
                let mut metadata = event.metadata.clone();
                dropped.push(self.metadata.apply(&mut metadata));
                event_json(event, &self.config.hard_id, metadata)
            })
            .collect();
        self.post("create_event_bulk", "/bloomreach-engagement/create-event-bulk", items)
            .await?;
        Ok(dropped)
    }
}

fn event_json(event: &IntegrationEvent, hard_id: &str, metadata: Map<String, Value>) -> Value {
    let mut customer = Map::new();
    customer.insert(hard_id.to_owned(), Value::String(event.customer_source_id.clone()));
    let mut object = Map::new();
    object.insert("event".to_owned(), Value::String(event.event.clone()));
    object.insert("customer".to_owned(), Value::Object(customer));
    object.insert("metadata".to_owned(), Value::Object(metadata));
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn event_payload_follows_the_batch_webhook_shape() {
        let event = IntegrationEvent {
            event: "review_left".into(),
            customer_source_id: "shop-1".into(),
            metadata: Map::new(),
        };
        let metadata = json!({"rating": 5}).as_object().cloned().unwrap_or_default();
        assert_eq!(
            event_json(&event, "registered", metadata),
            json!({"event": "review_left", "customer": {"registered": "shop-1"}, "metadata": {"rating": 5}})
        );
    }
}
