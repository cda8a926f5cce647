//! Spotler Mail+ (ex-MailPlus) REST API adapter: OAuth 1.0a one-legged signing, contact insert
//! (upsert with `update=true`, one or up to 100 per call with per-contact results), read,
//! anonymize, inactivate, subscribe (sign-up forms), temporary lists, search by property, and
//! the account's property list; pulled changes (bounces, updated contacts) in [`changes`].
//!
//! Only this crate knows Spotler's JSON. Errors come back as [`api_client::CallError`] with the
//! vendor's `errorType` and message, classified by the shared status table.

pub mod changes;
pub mod client;
pub mod oauth;

pub use changes::{Bounce, BounceKind, ChangedContact, Page, Window};
pub use client::{
    Contact, MAX_CONTACTS_PER_CALL, PropertyDef, PropertyEntry, SearchPage, SpotlerClient, SpotlerConfig, TempList,
    TempListCreated,
};
