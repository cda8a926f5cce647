//! Froomle adapter: OAuth2 client-credentials tokens (fetched lazily, cached, refreshed before
//! they expire and once on a 401), batch recommendation requests and tracking events.
//!
//! # Layout
//! - [`model`]: the typed requests, answers and events callers use.
//! - [`token`]: [`TokenCache`], the one-refresh-at-a-time access-token cache.
//! - [`client`]: [`FroomleClient`] over [`api_client::ProviderClient`] (label `froomle`).
//! - `wire` (private): Froomle's JSON, converted explicitly to and from [`model`].
//!
//! Only this crate knows Froomle's JSON. Errors come back as [`api_client::CallError`],
//! classified by the shared status table; vendor error texts are kept with quoted values
//! masked, since Froomle may echo user ids back.

pub mod client;
pub mod model;
pub mod token;
mod wire;

pub use client::{FroomleClient, FroomleConfig};
pub use model::{Event, Item, ListRequest, Recommendations, RecommendedList, Request};
pub use token::{Fetched, Token, TokenCache};
