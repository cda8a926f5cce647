//! SALESmanago API v2 adapter: contact upsert (opt-in / opt-out, tags added and removed,
//! properties) and external events (`addContactExtEvent`).
//!
//! Every request body carries the account's authentication fields: `clientId`, a random
//! `apiKey` (fresh for every try), `requestTime` (Unix ms), `sha` = hex SHA-1 of
//! `apiKey + clientId + apiSecret`, and `owner` (the account user's e-mail).
//!
//! SALESmanago answers HTTP 200 for most failures, with `{"success": false, "message": [...]}`.
//! Such bodies are errors: permanent, except an "API limit exceeded" message, which is a rate
//! limit: the destination is paused for every caller (like a 429) and the call comes back as
//! [`api_client::CallError::RateLimited`], so the message parks without spending an attempt.
//!
//! External events are **not** idempotent at SALESmanago (a repeated call adds a second event);
//! callers record what they sent (e.g. with `ledger::Ledger`) so a redelivery does not repeat it.
//!
//! # Layout
//! - [`client`]: [`SalesmanagoClient`], its configuration and the request types.
//! - `wire`: the private JSON shapes and the authentication fields.
//!
//! Only this crate knows SALESmanago's JSON. Error texts keep SALESmanago's messages with
//! anything that looks like an e-mail address masked.

pub mod client;
mod wire;

pub use client::{
    Address, Consent, ContactUpsert, EventType, ExternalEvent, PROVIDER, SalesmanagoClient, SalesmanagoConfig,
};
