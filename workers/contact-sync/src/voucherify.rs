//! Voucherify customers: `POST /v1/customers` (an upsert by `source_id` = contact id) with the
//! contact's attributes and mapped fields as metadata, filtered to the metadata schema (what is
//! undefined or wrongly typed is dropped and counted), then, when configured, the Voucherify
//! customer id written back to Bloomreach as the customer property `voucherify_customer_id`.
//!
//! Both calls are idempotent, so a retry of the destination redoes both.

use std::collections::BTreeMap;

use messages::contact::ContactChanged;
use provider_bloomreach::CustomerUpdate;
use provider_voucherify::{Address, Customer};
use serde_json::{Map, Value};

use crate::fields::{full_name, source_value};
use crate::handler::{ContactSync, DestinationResult, VoucherifyDestination};

/// The Bloomreach customer property the Voucherify customer id is written to.
pub const WRITEBACK_PROPERTY: &str = "voucherify_customer_id";

impl ContactSync {
    pub(crate) async fn upsert_voucherify(
        &self,
        destination: &VoucherifyDestination,
        contact: &ContactChanged,
    ) -> DestinationResult {
        let mapping = &self.mapping.voucherify;
        let mut metadata = Map::new();
        if mapping.attributes_as_metadata {
            for (name, value) in &contact.attributes {
                metadata.insert(name.clone(), value.clone());
            }
        }
        for (source, key) in &mapping.metadata {
            if let Some(value) = source_value(contact, source) {
                metadata.insert(key.clone(), value);
            }
        }
        let address = (contact.city.is_some() || contact.country.is_some()).then(|| Address {
            city: contact.city.clone(),
            country: contact.country.clone(),
            ..Address::default()
        });
        let customer = Customer {
            source_id: contact.contact_id.clone(),
            name: full_name(contact.first_name.as_deref(), contact.last_name.as_deref()),
            email: Some(contact.email.clone()),
            phone: contact.phone.clone(),
            address,
            metadata,
            ..Customer::default()
        };
        let created = destination.client.upsert_customer(&customer).await?;
        let dropped = created.dropped.total();
        if dropped > 0 {
            tracing::debug!(
                undefined = created.dropped.undefined,
                wrong_type = created.dropped.wrong_type,
                "Voucherify metadata not defined in the schema (or of another type) was left out."
            );
        }
        if let Some((bloomreach, hard_id)) = &destination.writeback {
            if created.id.is_empty() {
                return Err(api_client::CallError::Permanent(
                    "voucherify upsert_customer: the answer has no customer id to write back".to_owned(),
                ));
            }
            let update = CustomerUpdate {
                customer_ids: BTreeMap::from([(hard_id.clone(), contact.contact_id.clone())]),
                properties: Map::from_iter([(WRITEBACK_PROPERTY.to_owned(), Value::String(created.id))]),
                update_timestamp: None,
            };
            bloomreach.update_customer(&update).await?;
        }
        Ok(Some(dropped))
    }
}
