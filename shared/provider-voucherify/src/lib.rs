//! Voucherify adapter: the API client ([`VoucherifyClient`]: publications with idempotent
//! `source_id`, customer upserts), the Bloomreach integration endpoints
//! ([`VoucherifyIntegrationClient`]: bulk customer updates and events), and the metadata
//! schema ([`MetadataSchema`]) that keeps undefined or wrongly typed metadata from being sent.
//!
//! # Layout
//! - [`client`]: `X-App-Id` / `X-App-Token` API calls.
//! - [`integration`]: `application-id` / `secret-key` integration calls.
//! - [`metadata`]: the schema file, the filter and `switchyard_metadata_dropped_total`.
//! - [`customer`]: the customer shape both endpoints share.
//!
//! Only this crate knows Voucherify's JSON. Error texts keep Voucherify's error key and
//! message with quoted values and e-mail addresses masked; they never carry `details`.

pub mod client;
pub mod customer;
mod error;
pub mod integration;
pub mod metadata;

pub use client::{
    CustomerRef, PROVIDER, Publication, PublicationCustomer, PublicationRequest, VoucherifyClient, VoucherifyConfig,
};
pub use customer::{Address, Customer};
pub use integration::{
    INTEGRATION_PROVIDER, IntegrationConfig, IntegrationCustomer, IntegrationEvent, VoucherifyIntegrationClient,
};
pub use metadata::{Dropped, MetadataFilter, MetadataMetrics, MetadataSchema, MetadataType};
