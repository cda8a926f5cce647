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
//! // ... point a client at it, then inspect:
//! let calls = sandbox.state.calls(Provider::Ecomail);
//! sandbox.state.set_fault(Provider::Spotler, Fault::forced(503, 2)).ok();
//! # let _ = (ecomail, calls); Ok(()) }
//! ```
//!
//! # Layout
//! - `config`: [`SandboxConfig`], credentials and limits, from code or `SANDBOX_*` variables.
//! - `provider`: the [`Provider`] enum and the per-provider dispatch.
//! - `spotler`: Spotler Mail+ (OAuth 1.0a, contacts) under `/spotler/integrationservice-1.1.0`.
//! - `ecomail`: Ecomail API v2 (lists, subscribers, tracker events) under `/ecomail`.
//! - `server`: [`app`], the gate every provider call passes, [`serve`] and [`spawn`].
//! - `calls`, `faults`, `limits`: the call log, fault injection and rate limits (shared).
//! - `inspect`: the `/_sandbox/...` inspection and control endpoints.
//! - `state`: [`Sandbox`], the shared state and its Rust inspection API.
//!
//! # Order of checks on a provider call
//! Body size (413) → call recorded → fault latency → reset / forced / random faults → auth
//! (401) → rate limit (429 + `Retry-After`) → the emulated endpoint. Faults and 429s change no
//! state; every call, refused or not, appears in the call log.

mod calls;
mod config;
mod ecomail;
mod faults;
mod inspect;
mod limits;
mod provider;
mod server;
mod spotler;
mod state;
mod support;

pub use calls::{CallRecord, MAX_CALLS};
pub use config::{
    DEFAULT_ECOMAIL_API_KEY, DEFAULT_SPOTLER_CONSUMER_KEY, DEFAULT_SPOTLER_CONSUMER_SECRET, Limits, SandboxConfig,
    SpotlerCreds,
};
pub use ecomail::store::{EcomailEvent, EcomailSubscriber, STATUS_SUBSCRIBED, STATUS_UNCONFIRMED, STATUS_UNSUBSCRIBED};
pub use faults::{Fault, ForcedResponse, MAX_LATENCY_MS};
pub use limits::Rate;
pub use provider::Provider;
pub use server::{MAX_BODY_BYTES, RunningSandbox, app, serve, spawn};
pub use spotler::store::{SpotlerChannel, SpotlerContact};
pub use state::Sandbox;
