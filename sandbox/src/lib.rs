//! `switchyard-sandbox`: a local HTTP server that emulates the SaaS provider APIs Switchyard
//! syncs to, faithfully enough that workers and tests talk to it over real HTTP: the
//! providers' real paths (under a per-provider prefix), auth, validation, success and error
//! envelopes, and rate-limit behaviour, as documented in `shared/PROVIDERS.md`. It keeps the
//! state it receives, records every call, and injects faults on demand.
//!
//! It is a product feature: run the `switchyard-sandbox` binary for offline tests of your own,
//! or start one in-process with [`spawn`].
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchyard_sandbox::{Fault, Provider, SandboxConfig, spawn};
//!
//! let sandbox = spawn(SandboxConfig::for_tests()).await?;
//! let ecomail = sandbox.ecomail_base_url(); // http://127.0.0.1:PORT/ecomail
//! let voucherify = sandbox.voucherify_base_url(); // http://127.0.0.1:PORT/voucherify
//! // ... point a client at it, then inspect:
//! let calls = sandbox.state.calls(Provider::Ecomail);
//! sandbox.state.set_fault(Provider::Spotler, Fault::forced(503, 2)).ok();
//! let publications = sandbox.state.voucherify_publications();
//! # let _ = (ecomail, voucherify, calls, publications); Ok(()) }
//! ```
//!
//! # Layout
//! - `config`: [`SandboxConfig`], credentials and limits, from code or `SANDBOX_*` variables.
//! - `provider`: the [`Provider`] enum and the per-provider dispatch.
//! - `spotler`: Spotler Mail+ (OAuth 1.0a, contacts) under `/spotler/integrationservice-1.1.0`.
//! - `ecomail`: Ecomail API v2 (lists, subscribers, tracker events) under `/ecomail`.
//! - `voucherify`: Voucherify API (`X-App-Id`/`X-App-Token`, publications, customers,
//!   `X-Rate-Limit-*` headers) under `/voucherify`, and `voucherify::integration`, its
//!   Bloomreach integration endpoints (metadata-schema filtering) under
//!   `/voucherify-integration`; both share one customer store.
//! - `bloomreach`: Bloomreach Engagement Tracking API (Basic auth, customers, events, batch of
//!   at most 50 commands with per-command results) under `/bloomreach`.
//! - `salesmanago`: SALESmanago API v2 (body auth with `sha`, always-200 `success` envelope,
//!   contact upsert, external events, two rate-limit modes) under `/salesmanago`.
//! - `froomle`: Froomle (OAuth2 client credentials, recommendations from a built-in catalog,
//!   events) under `/froomle`.
//! - `server`: [`app`], the gate every provider call passes, [`serve`] and [`spawn`].
//! - `calls`, `faults`, `limits`: the call log, fault injection and rate limits (shared).
//! - `inspect`: the `/_sandbox/...` inspection and control endpoints.
//! - `senders`: the vendors' calls back (Ecomail list webhook, SALESmanago opt-in/opt-out
//!   callback, signed Voucherify webhook) fired at a URL, under `/_sandbox/send/...`.
//! - `state`: [`Sandbox`], the shared state and its Rust inspection API.
//!
//! # Order of checks on a provider call
//! Body size (413) → call recorded → fault latency → reset / forced / random faults → auth
//! (401, or each vendor's equivalent: 403 for another Bloomreach project, 200 `success: false`
//! for SALESmanago) → rate limit (429 + `Retry-After`, or SALESmanago's `success: false` mode)
//! → the emulated endpoint → per-vendor budget headers (Voucherify's `X-Rate-Limit-*`). Faults
//! and limit refusals change no state; every call, refused or not, appears in the call log.

mod bloomreach;
mod calls;
mod config;
mod ecomail;
mod faults;
mod froomle;
mod inspect;
mod limits;
mod provider;
mod salesmanago;
mod senders;
mod server;
mod spotler;
mod state;
mod support;
mod voucherify;

pub use calls::{CallRecord, MAX_CALLS};
pub use config::{
    BloomreachCreds, DEFAULT_BLOOMREACH_KEY_ID, DEFAULT_BLOOMREACH_PROJECT_TOKEN, DEFAULT_BLOOMREACH_SECRET,
    DEFAULT_ECOMAIL_API_KEY, DEFAULT_FROOMLE_CLIENT_ID, DEFAULT_FROOMLE_CLIENT_SECRET, DEFAULT_SALESMANAGO_API_SECRET,
    DEFAULT_SALESMANAGO_CLIENT_ID, DEFAULT_SALESMANAGO_OWNER, DEFAULT_SPOTLER_CONSUMER_KEY,
    DEFAULT_SPOTLER_CONSUMER_SECRET, DEFAULT_VOUCHERIFY_APP_ID, DEFAULT_VOUCHERIFY_APP_TOKEN,
    DEFAULT_VOUCHERIFY_HARD_ID, DEFAULT_VOUCHERIFY_INTEGRATION_APP_ID, DEFAULT_VOUCHERIFY_INTEGRATION_SECRET_KEY,
    FroomleCreds, Limits, SalesmanagoCreds, SalesmanagoLimitMode, SandboxConfig, SpotlerCreds,
    VOUCHERIFY_METADATA_TYPES, VoucherifyCreds, VoucherifyIntegrationCreds, default_voucherify_metadata_schema,
};
pub use ecomail::store::{EcomailEvent, EcomailSubscriber, STATUS_SUBSCRIBED, STATUS_UNCONFIRMED, STATUS_UNSUBSCRIBED};
pub use faults::{Fault, ForcedResponse, MAX_LATENCY_MS};
pub use limits::Rate;
pub use provider::Provider;
pub use salesmanago::SALESMANAGO_EVENT_TYPES;
pub use senders::{
    EcomailWebhook, SEND_TIMEOUT, SalesmanagoCallback, SentWebhook, VoucherifyWebhook, salesmanago_callback_key,
    voucherify_signature,
};
pub use server::{MAX_BODY_BYTES, RunningSandbox, app, serve, spawn};
pub use spotler::changes::{SpotlerBounce, SpotlerChangedContact, SpotlerUpdate};
pub use spotler::store::{SpotlerChannel, SpotlerContact};
pub use state::Sandbox;
