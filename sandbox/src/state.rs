//! [`Sandbox`]: the shared state behind every route (provider data, call log, faults, limits)
//! and the Rust API in-process tests use instead of the `/_sandbox` endpoints.
//!
//! Each part has its own `std::sync::Mutex`; no lock is ever held across an `.await`, and locks
//! are always taken one at a time, so there is no lock ordering to get wrong.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::time::Instant;

use crate::{
    CallRecord, EcomailEvent, EcomailSubscriber, Fault, Provider, SandboxConfig, SpotlerContact,
    calls::{CallLog, CallStart, PendingCall},
    ecomail::store::EcomailStore,
    faults::FaultPlan,
    limits::{Limiter, Rate, parse_rate_setting},
    provider::PerProvider,
    spotler::store::SpotlerStore,
    support::lock,
};

/// The sandbox state. Cheap to clone (an `Arc` inside); all clones share the same data.
#[derive(Debug, Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SandboxConfig,
    calls: Mutex<CallLog>,
    faults: Mutex<PerProvider<Fault>>,
    limiters: Mutex<PerProvider<Limiter>>,
    spotler: Mutex<SpotlerStore>,
    ecomail: Mutex<EcomailStore>,
    /// `switchyard_sandbox_calls_total{provider,status_class}`, for the ops endpoint.
    answered: prometheus::IntCounterVec,
}

impl Sandbox {
    /// Empty state with `config`'s credentials and limits.
    pub fn new(config: SandboxConfig) -> Self {
        let limits = config.limits;
        Self {
            inner: Arc::new(Inner {
                calls: Mutex::new(CallLog::default()),
                faults: Mutex::new(PerProvider::default()),
                limiters: Mutex::new(PerProvider::from_fn(|p| Limiter::new(limits.get(p)))),
                spotler: Mutex::new(SpotlerStore::default()),
                ecomail: Mutex::new(EcomailStore::default()),
                answered: prometheus::IntCounterVec::new(
                    prometheus::Opts::new(
                        "switchyard_sandbox_calls_total",
                        "Provider calls answered by the sandbox.",
                    ),
                    &["provider", "status_class"],
                )
                .unwrap_or_else(|_| unreachable!("the metric name and labels are valid")),
                config,
            }),
        }
    }

    /// Registers the sandbox's metrics on `registry` (for `/metrics`).
    pub fn register_metrics(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.inner.answered.clone()))
    }

    /// The configuration the sandbox was started with.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Forgets all provider data, calls and faults, and restores the configured rate limits
    /// with empty windows.
    pub fn reset(&self) {
        *lock(&self.inner.spotler) = SpotlerStore::default();
        *lock(&self.inner.ecomail) = EcomailStore::default();
        *lock(&self.inner.faults) = PerProvider::default();
        let limits = self.inner.config.limits;
        *lock(&self.inner.limiters) = PerProvider::from_fn(|p| Limiter::new(limits.get(p)));
        lock(&self.inner.calls).clear();
    }

    /// The calls made to `provider`, in arrival order.
    pub fn calls(&self, provider: Provider) -> Vec<CallRecord> {
        lock(&self.inner.calls).list(Some(provider))
    }

    /// The calls made to every provider, in arrival order.
    pub fn all_calls(&self) -> Vec<CallRecord> {
        lock(&self.inner.calls).list(None)
    }

    /// Replaces the fault configuration of `provider` (see [`Fault::validate`] for the ranges).
    pub fn set_fault(&self, provider: Provider, fault: Fault) -> Result<(), String> {
        fault.validate()?;
        *lock(&self.inner.faults).get_mut(provider) = fault;
        Ok(())
    }

    /// Removes every fault of `provider`.
    pub fn clear_fault(&self, provider: Provider) {
        *lock(&self.inner.faults).get_mut(provider) = Fault::default();
    }

    /// The current fault configuration of `provider`, with the remaining counts.
    pub fn fault(&self, provider: Provider) -> Fault {
        lock(&self.inner.faults).get(provider).clone()
    }

    /// Sets the rate limit of `provider` from text (`"10/s"`, `"100/min"`, `"5000/h"`, `"off"`),
    /// or removes it with `None`. The window starts empty.
    pub fn set_limit(&self, provider: Provider, rate: Option<&str>) -> Result<(), String> {
        let rate = match rate {
            None => None,
            Some(text) => parse_rate_setting(text)?,
        };
        self.set_rate(provider, rate);
        Ok(())
    }

    /// Sets (or with `None` removes) the rate limit of `provider`. The window starts empty.
    pub fn set_rate(&self, provider: Provider, rate: Option<Rate>) {
        *lock(&self.inner.limiters).get_mut(provider) = Limiter::new(rate);
    }

    /// The rate limit `provider` currently enforces.
    pub fn limit(&self, provider: Provider) -> Option<Rate> {
        lock(&self.inner.limiters).get(provider).rate()
    }

    /// The Spotler contact with this external id (or alias).
    pub fn spotler_contact(&self, external_id: &str) -> Option<SpotlerContact> {
        lock(&self.inner.spotler).get(external_id).cloned()
    }

    /// Every stored Spotler contact, by external id.
    pub fn spotler_contacts(&self) -> Vec<SpotlerContact> {
        lock(&self.inner.spotler).all()
    }

    /// The Ecomail subscriber `email` (case-insensitive) of list `list_id`.
    pub fn ecomail_subscriber(&self, list_id: u64, email: &str) -> Option<EcomailSubscriber> {
        lock(&self.inner.ecomail).get(list_id, email).cloned()
    }

    /// Every Ecomail subscriber, per list.
    pub fn ecomail_subscribers(&self) -> BTreeMap<u64, Vec<EcomailSubscriber>> {
        lock(&self.inner.ecomail).all()
    }

    /// Every Ecomail tracker event, oldest first.
    pub fn ecomail_events(&self) -> Vec<EcomailEvent> {
        lock(&self.inner.ecomail).events().to_vec()
    }

    pub(crate) fn spotler_store(&self) -> MutexGuard<'_, SpotlerStore> {
        lock(&self.inner.spotler)
    }

    pub(crate) fn ecomail_store(&self) -> MutexGuard<'_, EcomailStore> {
        lock(&self.inner.ecomail)
    }

    pub(crate) fn begin_call(&self, start: CallStart) -> PendingCall {
        lock(&self.inner.calls).begin(start)
    }

    pub(crate) fn finish_call(&self, pending: PendingCall, status: u16) {
        let class = match status {
            0 => "reset",
            200..=299 => "2xx",
            429 => "429",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.inner
            .answered
            .with_label_values(&[pending.provider().as_str(), class])
            .inc();
        lock(&self.inner.calls).finish(pending, status);
    }

    pub(crate) fn take_fault(&self, provider: Provider) -> FaultPlan {
        lock(&self.inner.faults).get_mut(provider).take()
    }

    pub(crate) fn try_acquire(&self, provider: Provider) -> Result<(), u64> {
        lock(&self.inner.limiters).get_mut(provider).try_acquire(Instant::now())
    }
}
