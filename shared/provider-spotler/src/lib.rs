//! Spotler Mail+ (ex-MailPlus) REST API adapter: OAuth 1.0a one-legged signing, contact insert
//! (upsert with `update=true`), read, anonymize, inactivate, and the account's property list.
//!
//! Only this crate knows Spotler's JSON. Errors come back as [`api_client::CallError`] with the
//! vendor's `errorType` and message, classified by the shared status table.

pub mod client;
pub mod oauth;

pub use client::{Contact, PropertyDef, SpotlerClient, SpotlerConfig};
