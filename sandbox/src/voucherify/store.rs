//! Voucherify state, shared by the API (`/v1/...`) and the Bloomreach integration endpoints:
//! customers (upserted by `id` or `source_id`), the campaign catalog and its vouchers,
//! publications (unique `source_id`, `join_once`), custom events from the integration, and the
//! integration call log.
//!
//! The store is plain data with no I/O; the HTTP layers validate requests and turn outcomes
//! into Voucherify responses. Metadata schema checks live here too, because both layers use
//! them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{Map, Value, json};
use time::{Date, OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};

use crate::support::random_id;

/// The characters of generated voucher codes (no look-alikes such as `0`/`O`, `1`/`I`).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Unpublished codes each campaign starts with (the rest are generated on demand, like an
/// auto-update campaign).
const INITIAL_POOL: usize = 3;

/// A customer as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Customer {
    pub(crate) id: String,
    pub(crate) source_id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) birthdate: Option<String>,
    pub(crate) address: Map<String, Value>,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) created_at: String,
    pub(crate) updated_at: Option<String>,
}

/// The customer part of a request (`POST /v1/customers`, `customer` of a publication, an
/// integration element). `None` leaves a stored field unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CustomerInput {
    pub(crate) id: Option<String>,
    pub(crate) source_id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) birthdate: Option<String>,
    /// Address fields to set (a `null` value clears one).
    pub(crate) address: Option<Map<String, Value>>,
    /// Metadata keys to set (a `null` value removes one).
    pub(crate) metadata: Option<Map<String, Value>>,
}

/// A campaign of the built-in catalog.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Campaign {
    pub(crate) id: String,
    pub(crate) name: String,
    /// Code prefix, e.g. `DC` for `DC-XXXX-XXXX`.
    pub(crate) prefix: &'static str,
    /// Discount in cents.
    pub(crate) amount_off: u64,
    pub(crate) created_at: String,
}

/// A voucher (code) of a campaign.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Voucher {
    pub(crate) id: String,
    pub(crate) code: String,
    pub(crate) campaign_id: String,
    pub(crate) holder_id: Option<String>,
    pub(crate) created_at: String,
    pub(crate) updated_at: Option<String>,
    pub(crate) publish_count: u32,
}

/// A publication as stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Publication {
    pub(crate) id: String,
    pub(crate) created_at: String,
    pub(crate) customer_id: String,
    pub(crate) campaign_id: String,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) channel: String,
    pub(crate) source_id: Option<String>,
    pub(crate) voucher_codes: Vec<String>,
    /// True when the request asked for `count` (the answer then has `vouchers: [...]`).
    pub(crate) counted: bool,
}

/// What to publish.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    /// The next code(s) of a campaign, named by name or id.
    Campaign {
        name: String,
        /// `campaign.count`, if sent.
        count: Option<u32>,
    },
    /// A specific (unpublished) voucher code.
    Voucher(String),
}

/// A validated `POST /v1/publications`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PublishRequest {
    pub(crate) target: Target,
    pub(crate) customer: CustomerInput,
    pub(crate) source_id: Option<String>,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) channel: String,
    pub(crate) join_once: bool,
}

/// Why a publication or customer call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// 404 `not_found` for `resource_type` with this id.
    NotFound { resource_type: &'static str, id: String },
    /// 400 `duplicate_source_id`.
    DuplicateSourceId(String),
    /// 400 `voucher_already_published`.
    VoucherAlreadyPublished(String),
}

/// A custom event from `create-event-bulk`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct CustomEvent {
    pub(crate) event: String,
    pub(crate) customer_id: String,
    pub(crate) customer_source_id: String,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) created_at: String,
}

/// One accepted call to an integration endpoint, for inspection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct IntegrationCall {
    /// `upsert-customer-bulk` or `create-event-bulk`.
    pub(crate) endpoint: &'static str,
    pub(crate) received_at: String,
    /// Elements in the payload.
    pub(crate) elements: usize,
    /// Elements applied.
    pub(crate) applied: usize,
    /// Elements skipped (not an object, no hard id, wrongly typed standard field, no event name).
    pub(crate) skipped: usize,
    /// Metadata entries dropped (undefined keys or wrong types), over all elements.
    pub(crate) dropped_metadata: usize,
    /// The distinct metadata keys dropped.
    pub(crate) dropped_metadata_keys: BTreeSet<String>,
}

/// The Voucherify store.
///
/// The `Vec`s hold the data in creation order (the listing order) and are the source of
/// truth; the maps and sets after them index the `Vec`s so that a call costs O(1) or
/// O(log n) instead of a scan. They are updated wherever an indexed field changes: a push, a
/// customer's first `source_id`, a voucher's holder.
#[derive(Debug)]
pub(crate) struct VoucherifyStore {
    customers: Vec<Customer>,
    campaigns: Vec<Campaign>,
    vouchers: Vec<Voucher>,
    publications: Vec<Publication>,
    events: Vec<CustomEvent>,
    integration_calls: Vec<IntegrationCall>,
    /// Customer id → index of the first customer with it.
    customer_by_id: HashMap<String, usize>,
    /// Customer `source_id` → index of the first customer with it. Several customers can
    /// share one: an upsert by `id` gives a customer without a `source_id` the requested one.
    customer_by_source_id: HashMap<String, usize>,
    /// Voucher code → index of the voucher (codes are unique).
    voucher_by_code: HashMap<String, usize>,
    /// Campaign id → indices of its vouchers without a holder, lowest first.
    free_vouchers: HashMap<String, BTreeSet<usize>>,
    /// Publication `source_id` → index of the publication (a reused one is refused, so they
    /// are unique).
    publication_by_source_id: HashMap<String, usize>,
    /// (customer id, campaign id) → index of the customer's first publication of the campaign.
    first_publication: HashMap<(String, String), usize>,
}

impl VoucherifyStore {
    /// An empty store with the built-in campaign catalog, created at `now`.
    pub(crate) fn new(now: &str) -> Self {
        let campaigns = vec![
            Campaign {
                id: "camp_sbxDiscountCode0000001".to_owned(),
                name: "Discount code campaign".to_owned(),
                prefix: "DC",
                amount_off: 500,
                created_at: now.to_owned(),
            },
            Campaign {
                id: "camp_sbxWelcome10000000002".to_owned(),
                name: "Welcome 10".to_owned(),
                prefix: "W10",
                amount_off: 1000,
                created_at: now.to_owned(),
            },
        ];
        let mut store = Self {
            customers: Vec::new(),
            campaigns,
            vouchers: Vec::new(),
            publications: Vec::new(),
            events: Vec::new(),
            integration_calls: Vec::new(),
            customer_by_id: HashMap::new(),
            customer_by_source_id: HashMap::new(),
            voucher_by_code: HashMap::new(),
            free_vouchers: HashMap::new(),
            publication_by_source_id: HashMap::new(),
            first_publication: HashMap::new(),
        };
        for index in 0..store.campaigns.len() {
            for _ in 0..INITIAL_POOL {
                store.generate_voucher(index, now);
            }
        }
        store
    }

    /// The campaign named `name_or_id` (by name, else by id).
    fn campaign_index(&self, name_or_id: &str) -> Option<usize> {
        self.campaigns
            .iter()
            .position(|c| c.name == name_or_id)
            .or_else(|| self.campaigns.iter().position(|c| c.id == name_or_id))
    }

    /// Creates an unpublished voucher with a fresh unique code.
    fn generate_voucher(&mut self, campaign: usize, now: &str) -> usize {
        let prefix = self.campaigns[campaign].prefix;
        let code = loop {
            let candidate = format!("{prefix}-{}-{}", random_code_part(), random_code_part());
            if !self.voucher_by_code.contains_key(&candidate) {
                break candidate;
            }
        };
        let index = self.vouchers.len();
        let campaign_id = self.campaigns[campaign].id.clone();
        self.voucher_by_code.insert(code.clone(), index);
        self.free_vouchers.entry(campaign_id.clone()).or_default().insert(index);
        self.vouchers.push(Voucher {
            id: random_id("v_", 24),
            code,
            campaign_id,
            holder_id: None,
            created_at: now.to_owned(),
            updated_at: None,
            publish_count: 0,
        });
        index
    }

    /// Indexes the `source_id` of the customer at `index`, if it has one (the lowest index
    /// with a `source_id` wins).
    fn index_customer_source_id(&mut self, index: usize) {
        let Some(source_id) = &self.customers[index].source_id else {
            return;
        };
        match self.customer_by_source_id.get_mut(source_id) {
            Some(first) => *first = (*first).min(index),
            None => {
                self.customer_by_source_id.insert(source_id.clone(), index);
            }
        }
    }

    /// The customer with this id or source id.
    pub(crate) fn customer(&self, id_or_source_id: &str) -> Option<&Customer> {
        self.customer_by_id
            .get(id_or_source_id)
            .or_else(|| self.customer_by_source_id.get(id_or_source_id))
            .map(|&index| &self.customers[index])
    }

    /// The index of the customer `input` names: by `id` if given, else by `source_id`.
    /// `Err` if an `id` is given that does not exist.
    fn find_customer(&self, input: &CustomerInput) -> Result<Option<usize>, StoreError> {
        if let Some(id) = &input.id {
            return match self.customer_by_id.get(id).copied() {
                Some(index) => Ok(Some(index)),
                None => match &input.source_id {
                    Some(source_id) => Ok(self.by_source_id(source_id)),
                    None => Err(StoreError::NotFound {
                        resource_type: "customer",
                        id: id.clone(),
                    }),
                },
            };
        }
        Ok(input
            .source_id
            .as_deref()
            .and_then(|source_id| self.by_source_id(source_id)))
    }

    /// The index of the first customer with this source id.
    fn by_source_id(&self, source_id: &str) -> Option<usize> {
        self.customer_by_source_id.get(source_id).copied()
    }

    /// `POST /v1/customers` semantics: updates the customer `input` names or creates one.
    /// A stored `source_id` never changes.
    pub(crate) fn upsert_customer(&mut self, input: &CustomerInput, now: &str) -> Result<Customer, StoreError> {
        let index = match self.find_customer(input)? {
            Some(index) => {
                let customer = &mut self.customers[index];
                apply_customer(customer, input);
                customer.updated_at = Some(now.to_owned());
                // `apply_customer` sets a missing `source_id`.
                self.index_customer_source_id(index);
                index
            }
            None => {
                let mut customer = Customer {
                    id: random_id("cust_", 24),
                    source_id: input.source_id.clone(),
                    name: None,
                    description: None,
                    email: None,
                    phone: None,
                    birthdate: None,
                    address: Map::new(),
                    metadata: Map::new(),
                    created_at: now.to_owned(),
                    updated_at: None,
                };
                apply_customer(&mut customer, input);
                let index = self.customers.len();
                self.customer_by_id.entry(customer.id.clone()).or_insert(index);
                self.customers.push(customer);
                self.index_customer_source_id(index);
                index
            }
        };
        Ok(self.customers[index].clone())
    }

    /// `POST /v1/publications` semantics, in Voucherify's order: the target must exist, a
    /// `join_once` request returns the customer's existing publication of the campaign, a
    /// reused `source_id` is refused, then the customer is upserted and the code(s) assigned.
    pub(crate) fn publish(&mut self, request: &PublishRequest, now: &str) -> Result<Value, StoreError> {
        let (campaign, wanted_voucher) = match &request.target {
            Target::Campaign { name, .. } => {
                let index = self.campaign_index(name).ok_or_else(|| StoreError::NotFound {
                    resource_type: "campaign",
                    id: name.clone(),
                })?;
                (index, None)
            }
            Target::Voucher(code) => {
                let voucher = self
                    .voucher_by_code
                    .get(code)
                    .copied()
                    .ok_or_else(|| StoreError::NotFound {
                        resource_type: "voucher",
                        id: code.clone(),
                    })?;
                if self.vouchers[voucher].holder_id.is_some() {
                    return Err(StoreError::VoucherAlreadyPublished(code.clone()));
                }
                let campaign = self
                    .campaigns
                    .iter()
                    .position(|c| c.id == self.vouchers[voucher].campaign_id)
                    .unwrap_or_default();
                (campaign, Some(voucher))
            }
        };
        let existing_customer = self.find_customer(&request.customer)?;
        if request.join_once
            && let Some(customer) = existing_customer
        {
            let customer_id = self.customers[customer].id.clone();
            let campaign_id = self.campaigns[campaign].id.clone();
            if let Some(&publication) = self.first_publication.get(&(customer_id, campaign_id)) {
                return Ok(self.publication_view(&self.publications[publication]));
            }
        }
        if let Some(source_id) = &request.source_id
            && self.publication_by_source_id.contains_key(source_id)
        {
            return Err(StoreError::DuplicateSourceId(source_id.clone()));
        }
        let customer = self.upsert_customer(&request.customer, now)?;
        let indices: Vec<usize> = match wanted_voucher {
            Some(index) => vec![index],
            None => {
                let count = match &request.target {
                    Target::Campaign { count, .. } => count.unwrap_or(1).max(1),
                    Target::Voucher(_) => 1,
                };
                let campaign_id = self.campaigns[campaign].id.clone();
                let mut chosen = Vec::new();
                for _ in 0..count {
                    // The lowest free voucher not chosen yet: a chosen one leaves the free set
                    // now (its holder is set below), a generated one is chosen at once.
                    let index = match self.free_vouchers.get_mut(&campaign_id).and_then(BTreeSet::pop_first) {
                        Some(index) => index,
                        None => {
                            let index = self.generate_voucher(campaign, now);
                            if let Some(free) = self.free_vouchers.get_mut(&campaign_id) {
                                free.remove(&index);
                            }
                            index
                        }
                    };
                    chosen.push(index);
                }
                chosen
            }
        };
        for &index in &indices {
            let voucher = &mut self.vouchers[index];
            voucher.holder_id = Some(customer.id.clone());
            voucher.publish_count += 1;
            voucher.updated_at = Some(now.to_owned());
            if let Some(free) = self.free_vouchers.get_mut(&voucher.campaign_id) {
                free.remove(&index);
            }
        }
        let publication = Publication {
            id: random_id("pub_", 24),
            created_at: now.to_owned(),
            customer_id: customer.id.clone(),
            campaign_id: self.campaigns[campaign].id.clone(),
            metadata: request.metadata.clone(),
            channel: request.channel.clone(),
            source_id: request.source_id.clone(),
            voucher_codes: indices.iter().map(|&i| self.vouchers[i].code.clone()).collect(),
            counted: matches!(request.target, Target::Campaign { count: Some(_), .. }),
        };
        let view = self.publication_view(&publication);
        let index = self.publications.len();
        if let Some(source_id) = &publication.source_id {
            self.publication_by_source_id.insert(source_id.clone(), index);
        }
        self.first_publication
            .entry((publication.customer_id.clone(), publication.campaign_id.clone()))
            .or_insert(index);
        self.publications.push(publication);
        Ok(view)
    }

    /// Publications matching every given filter, oldest first.
    pub(crate) fn find_publications(&self, filter: &PublicationFilter) -> Vec<Value> {
        // Publication source ids are unique, so that filter leaves at most one candidate.
        let candidates: &[Publication] = match &filter.source_id {
            Some(source_id) => self
                .publication_by_source_id
                .get(source_id)
                .map_or(&[], |&index| std::slice::from_ref(&self.publications[index])),
            None => &self.publications,
        };
        // Resolved once; `Some(None)` names nothing, so no publication matches it.
        let customer_id = filter
            .customer
            .as_deref()
            .map(|c| self.customer(c).map(|customer| customer.id.as_str()));
        let campaign_id = filter
            .campaign
            .as_deref()
            .map(|c| self.campaign_index(c).map(|index| self.campaigns[index].id.as_str()));
        candidates
            .iter()
            .filter(|p| {
                customer_id.is_none_or(|id| id == Some(p.customer_id.as_str()))
                    && campaign_id.is_none_or(|id| id == Some(p.campaign_id.as_str()))
                    && filter
                        .voucher
                        .as_ref()
                        .is_none_or(|code| p.voucher_codes.contains(code))
            })
            .map(|p| self.publication_view(p))
            .collect()
    }

    /// Every publication, as the API shows it.
    pub(crate) fn publications(&self) -> Vec<Value> {
        self.publications.iter().map(|p| self.publication_view(p)).collect()
    }

    /// Every customer, as the API shows it.
    pub(crate) fn customers(&self) -> Vec<Value> {
        self.customers.iter().map(customer_view).collect()
    }

    /// Every unpublished and published voucher, as the API shows it.
    pub(crate) fn vouchers(&self) -> Vec<Value> {
        self.vouchers.iter().map(|v| self.voucher_view(v)).collect()
    }

    /// Every custom event.
    pub(crate) fn events(&self) -> &[CustomEvent] {
        &self.events
    }

    /// Stores a custom event.
    pub(crate) fn add_event(&mut self, event: CustomEvent) {
        self.events.push(event);
    }

    /// Every accepted integration call.
    pub(crate) fn integration_calls(&self) -> &[IntegrationCall] {
        &self.integration_calls
    }

    /// Records an accepted integration call.
    pub(crate) fn add_integration_call(&mut self, call: IntegrationCall) {
        self.integration_calls.push(call);
    }

    fn publication_view(&self, publication: &Publication) -> Value {
        let customer = self
            .customer_by_id
            .get(&publication.customer_id)
            .map(|&index| &self.customers[index]);
        let voucher = |code: &String| self.voucher_by_code.get(code).map(|&index| &self.vouchers[index]);
        let vouchers: Vec<Value> = publication
            .voucher_codes
            .iter()
            .filter_map(voucher)
            .map(|v| self.voucher_view(v))
            .collect();
        let vouchers_id: Vec<Value> = publication
            .voucher_codes
            .iter()
            .filter_map(voucher)
            .map(|v| Value::String(v.id.clone()))
            .collect();
        let mut view = json!({
            "id": publication.id,
            "object": "publication",
            "created_at": publication.created_at,
            "customer_id": publication.customer_id,
            "tracking_id": customer.and_then(|c| c.source_id.clone()).unwrap_or_else(|| publication.customer_id.clone()),
            "metadata": publication.metadata,
            "channel": publication.channel,
            "source_id": publication.source_id,
            "result": "SUCCESS",
            "customer": customer.map(|c| json!({
                "id": c.id,
                "name": c.name,
                "email": c.email,
                "source_id": c.source_id,
                "metadata": c.metadata,
                "object": "customer",
            })),
            "vouchers_id": vouchers_id,
        });
        if let Some(object) = view.as_object_mut() {
            if publication.counted {
                object.insert("vouchers".to_owned(), Value::Array(vouchers));
            } else if let Some(voucher) = vouchers.into_iter().next() {
                object.insert("voucher".to_owned(), voucher);
            }
        }
        view
    }

    fn voucher_view(&self, voucher: &Voucher) -> Value {
        let campaign = self.campaigns.iter().find(|c| c.id == voucher.campaign_id);
        json!({
            "id": voucher.id,
            "code": voucher.code,
            "campaign": campaign.map(|c| c.name.clone()),
            "campaign_id": voucher.campaign_id,
            "category": null,
            "category_id": null,
            "categories": [],
            "type": "DISCOUNT_VOUCHER",
            "discount": {
                "type": "AMOUNT",
                "amount_off": campaign.map_or(0, |c| c.amount_off),
                "effect": "APPLY_TO_ORDER",
            },
            "gift": null,
            "loyalty_card": null,
            "start_date": null,
            "expiration_date": null,
            "validity_timeframe": null,
            "validity_day_of_week": null,
            "active": true,
            "additional_info": null,
            "metadata": {},
            "assets": {
                "qr": {"id": format!("U2FsdGVkX1{}", voucher.id), "url": format!("https://dl.voucherify.io/api/v1/assets/qr/{}", voucher.code)},
                "barcode": {"id": format!("U2FsdGVkX2{}", voucher.id), "url": format!("https://dl.voucherify.io/api/v1/assets/barcode/{}", voucher.code)},
            },
            "is_referral_code": false,
            "holder_id": voucher.holder_id,
            "referrer_id": null,
            "created_at": voucher.created_at,
            "updated_at": voucher.updated_at,
            "redemption": {
                "quantity": 1,
                "redeemed_quantity": 0,
                "object": "list",
                "url": format!("/v1/vouchers/{}/redemptions?page=1&limit=10", voucher.code),
            },
            "publish": {
                "object": "list",
                "count": voucher.publish_count,
                "url": format!("/v1/vouchers/{}/publications?page=1&limit=10", voucher.code),
            },
            "object": "voucher",
        })
    }
}

/// Filters of `GET /v1/publications`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PublicationFilter {
    pub(crate) source_id: Option<String>,
    /// Customer id or source id.
    pub(crate) customer: Option<String>,
    /// Campaign name or id.
    pub(crate) campaign: Option<String>,
    /// Voucher code.
    pub(crate) voucher: Option<String>,
}

fn random_code_part() -> String {
    (0..4)
        .map(|_| char::from(CODE_ALPHABET[rand::random_range(0..CODE_ALPHABET.len())]))
        .collect()
}

fn apply_customer(customer: &mut Customer, input: &CustomerInput) {
    if customer.source_id.is_none() {
        customer.source_id.clone_from(&input.source_id);
    }
    for (field, value) in [
        (&mut customer.name, &input.name),
        (&mut customer.description, &input.description),
        (&mut customer.email, &input.email),
        (&mut customer.phone, &input.phone),
        (&mut customer.birthdate, &input.birthdate),
    ] {
        if value.is_some() {
            field.clone_from(value);
        }
    }
    for (target, changes) in [
        (&mut customer.address, &input.address),
        (&mut customer.metadata, &input.metadata),
    ] {
        for (key, value) in changes.iter().flatten() {
            if value.is_null() {
                target.remove(key);
            } else {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The customer object of `POST /v1/customers` and `GET /v1/customers/{id}`.
pub(crate) fn customer_view(customer: &Customer) -> Value {
    let address = if customer.address.is_empty() {
        Value::Null
    } else {
        let field = |name: &str| customer.address.get(name).cloned().unwrap_or(Value::Null);
        json!({
            "city": field("city"),
            "state": field("state"),
            "line_1": field("line_1"),
            "line_2": field("line_2"),
            "country": field("country"),
            "postal_code": field("postal_code"),
        })
    };
    json!({
        "id": customer.id,
        "source_id": customer.source_id,
        "name": customer.name,
        "description": customer.description,
        "email": customer.email,
        "phone": customer.phone,
        "birthdate": customer.birthdate,
        "birthday": customer.birthdate,
        "address": address,
        "summary": {
            "redemptions": {
                "total_redeemed": 0,
                "total_failed": 0,
                "total_succeeded": 0,
                "total_rolled_back": 0,
                "total_rollback_failed": 0,
                "total_rollback_succeeded": 0,
                "gift": {"redeemed_amount": 0, "amount_to_go": 0},
                "loyalty_card": {"redeemed_points": 0, "points_to_go": 0},
            },
            "orders": {
                "total_amount": 0,
                "total_count": 0,
                "average_amount": 0,
                "last_order_amount": 0,
                "last_order_date": null,
            },
        },
        "loyalty": {"points": 0, "referred_customers": 0, "campaigns": {}},
        "referrals": {"total": 0, "campaigns": []},
        "metadata": customer.metadata,
        "system_metadata": {},
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
        "object": "customer",
    })
}

/// True if `value` has the schema type `kind` (`string`, `number`, `boolean`, `date`).
/// A date is `YYYY-MM-DD` or an RFC 3339 date-time.
pub(crate) fn has_metadata_type(value: &Value, kind: &str) -> bool {
    match kind {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "date" => value.as_str().is_some_and(is_date),
        _ => false,
    }
}

fn is_date(text: &str) -> bool {
    Date::parse(text, format_description!("[year]-[month]-[day]")).is_ok()
        || OffsetDateTime::parse(text, &Rfc3339).is_ok()
}

/// Keeps the metadata entries the schema defines with the right type (`null` always passes:
/// it removes a key). Returns what is kept and the keys dropped.
pub(crate) fn filter_metadata(
    schema: &BTreeMap<String, String>,
    metadata: &Map<String, Value>,
) -> (Map<String, Value>, Vec<String>) {
    let mut kept = Map::new();
    let mut dropped = Vec::new();
    for (key, value) in metadata {
        match schema.get(key) {
            Some(kind) if value.is_null() || has_metadata_type(value, kind) => {
                kept.insert(key.clone(), value.clone());
            }
            _ => dropped.push(key.clone()),
        }
    }
    (kept, dropped)
}

/// The first metadata entry whose key the schema defines with another type (the API refuses
/// those; undefined keys are allowed, as with a non-strict schema): `(key, expected type)`.
pub(crate) fn mistyped_metadata<'a>(
    schema: &'a BTreeMap<String, String>,
    metadata: &'a Map<String, Value>,
) -> Option<(&'a str, &'a str)> {
    metadata.iter().find_map(|(key, value)| {
        let kind = schema.get(key)?;
        (!value.is_null() && !has_metadata_type(value, kind)).then_some((key.as_str(), kind.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2025-01-31T12:00:00.000Z";

    fn customer(source_id: &str) -> CustomerInput {
        CustomerInput {
            source_id: Some(source_id.to_owned()),
            ..CustomerInput::default()
        }
    }

    fn campaign_request(source_id: Option<&str>, customer_source_id: &str, join_once: bool) -> PublishRequest {
        PublishRequest {
            target: Target::Campaign {
                name: "Discount code campaign".to_owned(),
                count: None,
            },
            customer: customer(customer_source_id),
            source_id: source_id.map(str::to_owned),
            metadata: Map::new(),
            channel: "API".to_owned(),
            join_once,
        }
    }

    #[test]
    fn customers_are_upserted_by_source_id_and_metadata_merges() {
        let mut store = VoucherifyStore::new(NOW);
        let mut input = customer("c-1");
        input.name = Some("Ann".to_owned());
        input.metadata = json!({"segment": "gold", "vip": true}).as_object().cloned();
        let first = store.upsert_customer(&input, NOW).unwrap();
        let mut update = customer("c-1");
        update.metadata = json!({"vip": null, "loyalty_points": 5}).as_object().cloned();
        let second = store.upsert_customer(&update, NOW).unwrap();
        assert_eq!(first.id, second.id);
        assert_eq!(second.name.as_deref(), Some("Ann"));
        assert_eq!(
            Value::Object(second.metadata),
            json!({"segment": "gold", "loyalty_points": 5})
        );
        assert_eq!(store.customers().len(), 1);
    }

    #[test]
    fn an_unknown_customer_id_without_source_id_is_not_found() {
        let mut store = VoucherifyStore::new(NOW);
        let input = CustomerInput {
            id: Some("cust_nope".to_owned()),
            ..CustomerInput::default()
        };
        assert!(matches!(
            store.upsert_customer(&input, NOW),
            Err(StoreError::NotFound {
                resource_type: "customer",
                ..
            })
        ));
    }

    #[test]
    fn publications_assign_unique_codes_and_refuse_a_reused_source_id() {
        let mut store = VoucherifyStore::new(NOW);
        let mut codes = BTreeSet::new();
        for n in 0..10 {
            let view = store
                .publish(
                    &campaign_request(Some(&format!("m-{n}")), &format!("c-{n}"), false),
                    NOW,
                )
                .unwrap();
            let code = view["voucher"]["code"].as_str().unwrap().to_owned();
            assert!(code.starts_with("DC-") && code.len() == 12, "{code}");
            assert!(codes.insert(code));
        }
        assert_eq!(
            store.publish(&campaign_request(Some("m-3"), "c-3", false), NOW),
            Err(StoreError::DuplicateSourceId("m-3".to_owned()))
        );
        assert_eq!(store.publications().len(), 10);
    }

    #[test]
    fn join_once_returns_the_existing_publication() {
        let mut store = VoucherifyStore::new(NOW);
        let first = store.publish(&campaign_request(None, "c-1", true), NOW).unwrap();
        let second = store.publish(&campaign_request(None, "c-1", true), NOW).unwrap();
        assert_eq!(first["id"], second["id"]);
        assert_eq!(store.publications().len(), 1);
        let other = store.publish(&campaign_request(None, "c-1", false), NOW).unwrap();
        assert_ne!(first["voucher"]["code"], other["voucher"]["code"]);
    }

    #[test]
    fn unknown_campaigns_and_published_vouchers_are_refused() {
        let mut store = VoucherifyStore::new(NOW);
        let mut request = campaign_request(None, "c-1", false);
        request.target = Target::Campaign {
            name: "Nope".to_owned(),
            count: None,
        };
        assert!(matches!(
            store.publish(&request, NOW),
            Err(StoreError::NotFound {
                resource_type: "campaign",
                ..
            })
        ));
        let code = store.vouchers()[0]["code"].as_str().unwrap().to_owned();
        request.target = Target::Voucher(code.clone());
        let view = store.publish(&request, NOW).unwrap();
        assert_eq!(view["voucher"]["code"], code.as_str());
        assert_eq!(
            store.publish(&request, NOW),
            Err(StoreError::VoucherAlreadyPublished(code))
        );
    }

    #[test]
    fn campaign_count_publishes_several_codes() {
        let mut store = VoucherifyStore::new(NOW);
        let mut request = campaign_request(None, "c-1", false);
        request.target = Target::Campaign {
            name: "camp_sbxWelcome10000000002".to_owned(),
            count: Some(5),
        };
        let view = store.publish(&request, NOW).unwrap();
        let vouchers = view["vouchers"].as_array().unwrap();
        assert_eq!(vouchers.len(), 5);
        assert_eq!(view["vouchers_id"].as_array().map(Vec::len), Some(5));
        assert!(vouchers.iter().all(|v| v["campaign"] == "Welcome 10"));
    }

    /// The code of the voucher at `index` (in creation order).
    fn code_at(store: &VoucherifyStore, index: usize) -> String {
        store.vouchers[index].code.clone()
    }

    /// Rebuilds every index from the `Vec`s with the scans the store used before it had them
    /// (first match wins) and checks the store's indexes agree.
    fn assert_indexes_match_the_vecs(store: &VoucherifyStore) {
        let mut customer_by_id = HashMap::new();
        let mut customer_by_source_id = HashMap::new();
        for (index, customer) in store.customers.iter().enumerate() {
            customer_by_id.entry(customer.id.clone()).or_insert(index);
            if let Some(source_id) = &customer.source_id {
                customer_by_source_id.entry(source_id.clone()).or_insert(index);
            }
        }
        assert_eq!(store.customer_by_id, customer_by_id);
        assert_eq!(store.customer_by_source_id, customer_by_source_id);

        let mut voucher_by_code = HashMap::new();
        let mut free_vouchers: HashMap<String, BTreeSet<usize>> = HashMap::new();
        for (index, voucher) in store.vouchers.iter().enumerate() {
            assert!(
                voucher_by_code.insert(voucher.code.clone(), index).is_none(),
                "duplicate code {}",
                voucher.code
            );
            if voucher.holder_id.is_none() {
                free_vouchers
                    .entry(voucher.campaign_id.clone())
                    .or_default()
                    .insert(index);
            }
        }
        assert_eq!(store.voucher_by_code, voucher_by_code);
        let stored_free: HashMap<String, BTreeSet<usize>> = store
            .free_vouchers
            .iter()
            .filter(|(_, free)| !free.is_empty())
            .map(|(campaign, free)| (campaign.clone(), free.clone()))
            .collect();
        assert_eq!(stored_free, free_vouchers);

        let mut publication_by_source_id = HashMap::new();
        let mut first_publication = HashMap::new();
        for (index, publication) in store.publications.iter().enumerate() {
            if let Some(source_id) = &publication.source_id {
                assert!(
                    publication_by_source_id.insert(source_id.clone(), index).is_none(),
                    "duplicate publication source id {source_id}"
                );
            }
            first_publication
                .entry((publication.customer_id.clone(), publication.campaign_id.clone()))
                .or_insert(index);
        }
        assert_eq!(store.publication_by_source_id, publication_by_source_id);
        assert_eq!(store.first_publication, first_publication);
    }

    #[test]
    fn the_lowest_free_voucher_of_the_campaign_is_published_first() {
        let mut store = VoucherifyStore::new(NOW);
        // `new` generates DC codes 0..3, then W10 codes 3..6.
        let mut request = campaign_request(None, "c-1", false);
        request.target = Target::Voucher(code_at(&store, 1));
        store.publish(&request, NOW).unwrap();
        let next = store.publish(&campaign_request(None, "c-2", false), NOW).unwrap();
        assert_eq!(next["voucher"]["code"], code_at(&store, 0).as_str());
        let mut request = campaign_request(None, "c-3", false);
        request.target = Target::Campaign {
            name: "Discount code campaign".to_owned(),
            count: Some(3),
        };
        let view = store.publish(&request, NOW).unwrap();
        // The last free one, then two generated after the W10 pool.
        let codes: Vec<&str> = view["vouchers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, [code_at(&store, 2), code_at(&store, 6), code_at(&store, 7)]);
        assert_eq!(store.vouchers.len(), 8);
        assert!(store.vouchers[3..6].iter().all(|v| v.holder_id.is_none()));
        // The W10 pool is untouched and still handed out lowest first.
        let mut request = campaign_request(None, "c-4", false);
        request.target = Target::Campaign {
            name: "Welcome 10".to_owned(),
            count: None,
        };
        let view = store.publish(&request, NOW).unwrap();
        assert_eq!(view["voucher"]["code"], code_at(&store, 3).as_str());
        assert_indexes_match_the_vecs(&store);
    }

    #[test]
    fn join_once_returns_the_first_of_several_publications() {
        let mut store = VoucherifyStore::new(NOW);
        let first = store
            .publish(&campaign_request(Some("m-1"), "c-1", false), NOW)
            .unwrap();
        let second = store
            .publish(&campaign_request(Some("m-2"), "c-1", false), NOW)
            .unwrap();
        assert_ne!(first["id"], second["id"]);
        let joined = store.publish(&campaign_request(None, "c-1", true), NOW).unwrap();
        assert_eq!(joined, first);
        // join_once is checked before the source id: a reused one returns the publication.
        let joined = store.publish(&campaign_request(Some("m-2"), "c-1", true), NOW).unwrap();
        assert_eq!(joined["id"], first["id"]);
        // Another campaign or another customer has no publication to join.
        let mut request = campaign_request(None, "c-1", true);
        request.target = Target::Campaign {
            name: "Welcome 10".to_owned(),
            count: None,
        };
        let other_campaign = store.publish(&request, NOW).unwrap();
        assert_ne!(other_campaign["id"], first["id"]);
        let other_customer = store.publish(&campaign_request(None, "c-2", true), NOW).unwrap();
        assert_ne!(other_customer["id"], first["id"]);
        assert_eq!(store.publications.len(), 4);
        assert_indexes_match_the_vecs(&store);
    }

    #[test]
    fn a_reused_source_id_is_refused_without_changing_anything() {
        let mut store = VoucherifyStore::new(NOW);
        store
            .publish(&campaign_request(Some("m-1"), "c-1", false), NOW)
            .unwrap();
        let vouchers = store.vouchers();
        assert_eq!(
            store.publish(&campaign_request(Some("m-1"), "c-2", false), NOW),
            Err(StoreError::DuplicateSourceId("m-1".to_owned()))
        );
        assert_eq!(store.vouchers(), vouchers);
        assert_eq!(store.customers.len(), 1);
        assert_eq!(store.publications.len(), 1);
        assert_indexes_match_the_vecs(&store);
    }

    #[test]
    fn customers_are_found_by_id_and_by_source_id() {
        let mut store = VoucherifyStore::new(NOW);
        let ann = store.upsert_customer(&customer("c-1"), NOW).unwrap();
        assert_eq!(store.customer(&ann.id).map(|c| &c.id), Some(&ann.id));
        assert_eq!(store.customer("c-1").map(|c| &c.id), Some(&ann.id));
        assert_eq!(store.customer("c-2"), None);
        // An unknown id with a known source id updates the customer with that source id.
        let mut input = customer("c-1");
        input.id = Some("cust_nope".to_owned());
        input.name = Some("Ann".to_owned());
        assert_eq!(store.upsert_customer(&input, NOW).unwrap().id, ann.id);
        assert_eq!(store.customer("c-1").and_then(|c| c.name.as_deref()), Some("Ann"));

        // A customer without a source id gets one through an upsert by id ...
        let anonymous = store
            .upsert_customer(
                &CustomerInput {
                    name: Some("Bob".to_owned()),
                    ..CustomerInput::default()
                },
                NOW,
            )
            .unwrap();
        let mut input = customer("c-2");
        input.id = Some(anonymous.id.clone());
        store.upsert_customer(&input, NOW).unwrap();
        assert_eq!(store.customer("c-2").map(|c| &c.id), Some(&anonymous.id));
        // ... and when a later customer gets a source id an earlier one has, the earlier wins.
        let earlier = store.upsert_customer(&customer("c-3"), NOW).unwrap();
        let later = store.upsert_customer(&CustomerInput::default(), NOW).unwrap();
        let mut input = customer("c-3");
        input.id = Some(later.id.clone());
        store.upsert_customer(&input, NOW).unwrap();
        assert_eq!(
            store.customer(&later.id).and_then(|c| c.source_id.as_deref()),
            Some("c-3")
        );
        assert_eq!(store.customer("c-3").map(|c| &c.id), Some(&earlier.id));
        assert_indexes_match_the_vecs(&store);
    }

    #[test]
    fn a_shared_source_id_finds_the_lowest_customer() {
        let mut store = VoucherifyStore::new(NOW);
        let anonymous = store.upsert_customer(&CustomerInput::default(), NOW).unwrap();
        let named = store.upsert_customer(&customer("s-1"), NOW).unwrap();
        assert_eq!(store.customer("s-1").map(|c| &c.id), Some(&named.id));
        let mut input = customer("s-1");
        input.id = Some(anonymous.id.clone());
        store.upsert_customer(&input, NOW).unwrap();
        // Both have "s-1" now; the one created first is found.
        assert_eq!(store.customer("s-1").map(|c| &c.id), Some(&anonymous.id));
        let mut update = customer("s-1");
        update.name = Some("Dee".to_owned());
        assert_eq!(store.upsert_customer(&update, NOW).unwrap().id, anonymous.id);
        assert_eq!(store.customers.len(), 2);
        assert_indexes_match_the_vecs(&store);
    }

    #[test]
    fn generated_codes_never_collide() {
        let mut store = VoucherifyStore::new(NOW);
        for (name, customer_source_id) in [("Discount code campaign", "c-1"), ("Welcome 10", "c-2")] {
            let mut request = campaign_request(None, customer_source_id, false);
            request.target = Target::Campaign {
                name: name.to_owned(),
                count: Some(300),
            };
            store.publish(&request, NOW).unwrap();
        }
        let codes: BTreeSet<String> = store.vouchers.iter().map(|v| v.code.clone()).collect();
        assert_eq!(store.vouchers.len(), 600);
        assert_eq!(codes.len(), 600);
        assert_indexes_match_the_vecs(&store);
    }

    #[test]
    fn publications_are_found_by_each_filter() {
        let mut store = VoucherifyStore::new(NOW);
        let first = store
            .publish(&campaign_request(Some("m-1"), "c-1", false), NOW)
            .unwrap();
        let second = store.publish(&campaign_request(None, "c-2", false), NOW).unwrap();
        let mut request = campaign_request(Some("m-3"), "c-1", false);
        request.target = Target::Campaign {
            name: "Welcome 10".to_owned(),
            count: None,
        };
        let third = store.publish(&request, NOW).unwrap();
        let ids = |filter: PublicationFilter| -> Vec<Value> {
            store
                .find_publications(&filter)
                .into_iter()
                .map(|p| p["id"].clone())
                .collect()
        };
        let text = |value: &Value| Some(value.as_str().unwrap().to_owned());
        assert_eq!(
            ids(PublicationFilter::default()),
            [first["id"].clone(), second["id"].clone(), third["id"].clone()]
        );
        let by_source_id = PublicationFilter {
            source_id: Some("m-3".to_owned()),
            ..PublicationFilter::default()
        };
        assert_eq!(ids(by_source_id.clone()), [third["id"].clone()]);
        assert_eq!(
            ids(PublicationFilter {
                customer: Some("c-2".to_owned()),
                ..by_source_id.clone()
            }),
            Vec::<Value>::new()
        );
        assert_eq!(
            ids(PublicationFilter {
                source_id: Some("m-9".to_owned()),
                ..PublicationFilter::default()
            }),
            Vec::<Value>::new()
        );
        let by_customer = |customer: Option<String>| PublicationFilter {
            customer,
            ..PublicationFilter::default()
        };
        assert_eq!(
            ids(by_customer(Some("c-1".to_owned()))),
            [first["id"].clone(), third["id"].clone()]
        );
        assert_eq!(ids(by_customer(text(&second["customer_id"]))), [second["id"].clone()]);
        assert_eq!(ids(by_customer(Some("c-9".to_owned()))), Vec::<Value>::new());
        for campaign in ["Discount code campaign", "camp_sbxDiscountCode0000001"] {
            assert_eq!(
                ids(PublicationFilter {
                    campaign: Some(campaign.to_owned()),
                    ..PublicationFilter::default()
                }),
                [first["id"].clone(), second["id"].clone()]
            );
        }
        assert_eq!(
            ids(PublicationFilter {
                campaign: Some("Nope".to_owned()),
                ..PublicationFilter::default()
            }),
            Vec::<Value>::new()
        );
        assert_eq!(
            ids(PublicationFilter {
                voucher: text(&second["voucher"]["code"]),
                ..PublicationFilter::default()
            }),
            [second["id"].clone()]
        );
        assert_eq!(store.find_publications(&by_source_id), [third]);
    }

    #[test]
    fn indexes_follow_a_mix_of_calls() {
        let mut store = VoucherifyStore::new(NOW);
        assert_indexes_match_the_vecs(&store);
        for n in 0..40 {
            let source_id = (n % 3 != 0).then(|| format!("m-{}", n % 17));
            let mut request = campaign_request(source_id.as_deref(), &format!("c-{}", n % 7), n % 4 == 0);
            request.target = match n % 5 {
                0 => Target::Campaign {
                    name: "Welcome 10".to_owned(),
                    count: Some(n % 3 + 1),
                },
                1 => Target::Voucher(code_at(&store, usize::try_from(n).unwrap() % store.vouchers.len())),
                _ => Target::Campaign {
                    name: "camp_sbxDiscountCode0000001".to_owned(),
                    count: None,
                },
            };
            if n % 6 == 0 {
                // The newest customer, often one without a source id, takes an existing one.
                request.customer.id = store.customers.last().map(|c| c.id.clone());
                request.customer.source_id = Some(format!("c-{}", n % 5));
            }
            if let Err(error) = store.publish(&request, NOW) {
                // Reused source ids and already published codes are part of the mix.
                assert!(
                    matches!(
                        error,
                        StoreError::DuplicateSourceId(_) | StoreError::VoucherAlreadyPublished(_)
                    ),
                    "{error:?}"
                );
            }
            if n % 9 == 0 {
                store.upsert_customer(&CustomerInput::default(), NOW).unwrap();
            }
            assert_indexes_match_the_vecs(&store);
        }
    }

    #[test]
    fn metadata_is_filtered_by_key_and_type() {
        let schema: BTreeMap<String, String> = [("points", "number"), ("vip", "boolean"), ("since", "date")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let metadata = json!({
            "points": 5, "vip": "yes", "since": "2024-02-30", "other": 1,
        });
        let (kept, mut dropped) = filter_metadata(&schema, metadata.as_object().unwrap());
        dropped.sort();
        assert_eq!(Value::Object(kept), json!({"points": 5}));
        assert_eq!(dropped, ["other", "since", "vip"]);
        let ok = json!({"since": "2024-02-29", "vip": true, "free": "x"});
        assert_eq!(mistyped_metadata(&schema, ok.as_object().unwrap()), None);
        let bad = json!({"since": "2024-02-29T10:00:00Z", "points": "5"});
        assert_eq!(
            mistyped_metadata(&schema, bad.as_object().unwrap()),
            Some(("points", "number"))
        );
    }
}
