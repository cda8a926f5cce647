//! [`Sandbox`]: the shared state behind every route (provider data, call log, faults, limits)
//! and the Rust API in-process tests use instead of the `/_sandbox` endpoints.
//!
//! Each part has its own `std::sync::Mutex`; no lock is ever held across an `.await`, and locks
//! are always taken one at a time, so there is no lock ordering to get wrong.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::{
    CallRecord, EcomailEvent, EcomailSubscriber, Fault, Provider, SalesmanagoLimitMode, SandboxConfig, SpotlerContact,
    bloomreach::store::BloomreachStore,
    calls::{CallLog, CallStart, PendingCall},
    ecomail::store::{EcomailStore, SubscribeOptions},
    ecomail::validate::{SubscriberInput, normalize_email},
    faults::FaultPlan,
    froomle::store::FroomleStore,
    limits::{LimitStatus, Limiter, Rate, parse_rate_setting},
    provider::PerProvider,
    salesmanago::store::SalesmanagoStore,
    spotler::{changes::SpotlerChanges, store::SpotlerStore},
    support::{lock, now_utc, rfc3339_millis},
    voucherify::store::VoucherifyStore,
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
    /// Spotler bounces and changed contacts for the pull lists.
    spotler_changes: Mutex<SpotlerChanges>,
    ecomail: Mutex<EcomailStore>,
    voucherify: Mutex<VoucherifyStore>,
    bloomreach: Mutex<BloomreachStore>,
    salesmanago: Mutex<SalesmanagoStore>,
    /// How SALESmanago answers over its limit (starts as configured).
    salesmanago_limit_mode: Mutex<SalesmanagoLimitMode>,
    froomle: Mutex<FroomleStore>,
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
                spotler_changes: Mutex::new(SpotlerChanges::default()),
                ecomail: Mutex::new(EcomailStore::default()),
                voucherify: Mutex::new(VoucherifyStore::new(&rfc3339_millis(now_utc()))),
                bloomreach: Mutex::new(BloomreachStore::default()),
                salesmanago: Mutex::new(SalesmanagoStore::default()),
                salesmanago_limit_mode: Mutex::new(config.salesmanago.limit_mode),
                froomle: Mutex::new(FroomleStore::default()),
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
        *lock(&self.inner.spotler_changes) = SpotlerChanges::default();
        *lock(&self.inner.ecomail) = EcomailStore::default();
        *lock(&self.inner.voucherify) = VoucherifyStore::new(&rfc3339_millis(now_utc()));
        *lock(&self.inner.bloomreach) = BloomreachStore::default();
        *lock(&self.inner.salesmanago) = SalesmanagoStore::default();
        *lock(&self.inner.salesmanago_limit_mode) = self.inner.config.salesmanago.limit_mode;
        *lock(&self.inner.froomle) = FroomleStore::default();
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

    /// Adds `emails` to Ecomail list `list_id` as confirmed subscribers, as if they had
    /// subscribed before (no call is logged): a fixture for runs that update existing
    /// subscribers. Existing subscribers are left as they are.
    pub fn seed_ecomail_subscribers(&self, list_id: u64, emails: impl IntoIterator<Item = String>) {
        let now = rfc3339_millis(now_utc());
        let options = SubscribeOptions {
            update_existing: false,
            skip_confirmation: true,
            resubscribe: false,
        };
        let mut store = lock(&self.inner.ecomail);
        for email in emails {
            let input = SubscriberInput {
                email: Some(normalize_email(&email)),
                fields: Vec::new(),
                custom_fields: None,
                tags: None,
                groups: None,
            };
            store.subscribe(list_id, &input, options, &now);
        }
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

    pub(crate) fn spotler_changes(&self) -> MutexGuard<'_, SpotlerChanges> {
        lock(&self.inner.spotler_changes)
    }

    pub(crate) fn ecomail_store(&self) -> MutexGuard<'_, EcomailStore> {
        lock(&self.inner.ecomail)
    }

    pub(crate) fn voucherify_store(&self) -> MutexGuard<'_, VoucherifyStore> {
        lock(&self.inner.voucherify)
    }

    pub(crate) fn bloomreach_store(&self) -> MutexGuard<'_, BloomreachStore> {
        lock(&self.inner.bloomreach)
    }

    pub(crate) fn salesmanago_store(&self) -> MutexGuard<'_, SalesmanagoStore> {
        lock(&self.inner.salesmanago)
    }

    pub(crate) fn froomle_store(&self) -> MutexGuard<'_, FroomleStore> {
        lock(&self.inner.froomle)
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

    /// The budget `provider` has left now (`None` when unlimited).
    pub(crate) fn limit_status(&self, provider: Provider) -> Option<LimitStatus> {
        lock(&self.inner.limiters).get_mut(provider).status(Instant::now())
    }

    /// Every Voucherify publication, as `POST /v1/publications` returned it, oldest first.
    pub fn voucherify_publications(&self) -> Vec<Value> {
        lock(&self.inner.voucherify).publications()
    }

    /// Every Voucherify customer, as `GET /v1/customers/{id}` returns it, oldest first.
    pub fn voucherify_customers(&self) -> Vec<Value> {
        lock(&self.inner.voucherify).customers()
    }

    /// Every Voucherify voucher (published or not), as the API shows it.
    pub fn voucherify_vouchers(&self) -> Vec<Value> {
        lock(&self.inner.voucherify).vouchers()
    }

    /// Every custom event received through `create-event-bulk`: `{event, customer_id,
    /// customer_source_id, metadata, created_at}`.
    pub fn voucherify_events(&self) -> Vec<Value> {
        to_values(lock(&self.inner.voucherify).events())
    }

    /// Every accepted call to the Voucherify integration endpoints: `{endpoint, received_at,
    /// elements, applied, skipped, dropped_metadata, dropped_metadata_keys}`.
    pub fn voucherify_integration_calls(&self) -> Vec<Value> {
        to_values(lock(&self.inner.voucherify).integration_calls())
    }

    /// Every Bloomreach customer: `{ids, properties, property_timestamps, created_at,
    /// updated_at}` (times in Unix seconds), oldest first.
    pub fn bloomreach_customers(&self) -> Vec<Value> {
        to_values(lock(&self.inner.bloomreach).customers())
    }

    /// Every accepted Bloomreach event, in arrival order: `{customer_ids, event_type,
    /// timestamp, properties, received_at, command_id}`.
    pub fn bloomreach_events(&self) -> Vec<Value> {
        to_values(lock(&self.inner.bloomreach).events())
    }

    /// Every SALESmanago contact, oldest first: `{contact_id, email, name, phone, fax, company,
    /// state, external_id, address, tags, properties, dictionary_properties, birthday, lang,
    /// email_opt_in, phone_opt_in, created_at, modified_at}` (times in Unix ms).
    pub fn salesmanago_contacts(&self) -> Vec<Value> {
        to_values(lock(&self.inner.salesmanago).contacts())
    }

    /// Every SALESmanago external event, in arrival order: `{event_id, contact_id, email,
    /// contact_ext_event_type, date, description, products, location, value, details,
    /// external_id, shop_domain, received_at}`.
    pub fn salesmanago_events(&self) -> Vec<Value> {
        to_values(lock(&self.inner.salesmanago).events())
    }

    /// How SALESmanago currently answers a call over its rate limit.
    pub fn salesmanago_limit_mode(&self) -> SalesmanagoLimitMode {
        *lock(&self.inner.salesmanago_limit_mode)
    }

    /// Switches how SALESmanago answers a call over its rate limit (until the next reset,
    /// which restores the configured mode).
    pub fn set_salesmanago_limit_mode(&self, mode: SalesmanagoLimitMode) {
        *lock(&self.inner.salesmanago_limit_mode) = mode;
    }

    /// Every answered Froomle recommendations request, in arrival order: `{request_id,
    /// environment, channel, page_type, device_id, user_id, lists: [{list_name, list_key,
    /// list_size, limit, item_ids}], received_at}`.
    pub fn froomle_requests(&self) -> Vec<Value> {
        to_values(lock(&self.inner.froomle).requests())
    }

    /// Every accepted Froomle event, in arrival order: `{environment, event_type, event,
    /// received_at}` (`event` exactly as sent).
    pub fn froomle_events(&self) -> Vec<Value> {
        to_values(lock(&self.inner.froomle).events())
    }

    /// Invalidates every Froomle access token issued so far: the next call with one gets 401.
    pub fn expire_froomle_tokens(&self) {
        lock(&self.inner.froomle).expire_tokens();
    }

    /// How many Froomle access tokens were issued since the start (or the last reset).
    pub fn froomle_tokens_issued(&self) -> usize {
        lock(&self.inner.froomle).tokens_issued()
    }
}

/// Serialises inspection records (plain data: serialisation cannot fail, but a record that
/// somehow did would show as `null` rather than panic).
fn to_values<T: Serialize>(records: &[T]) -> Vec<Value> {
    records
        .iter()
        .map(|record| serde_json::to_value(record).unwrap_or(Value::Null))
        .collect()
}
