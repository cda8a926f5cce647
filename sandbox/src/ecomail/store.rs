//! Ecomail subscriber and tracker-event storage.
//!
//! Subscribers are kept per list, keyed by lowercased e-mail; a subscriber has the same `id`
//! in every list (Ecomail ids belong to the address, not to the membership). Lists exist
//! implicitly. Plain data, no I/O: `ecomail.rs` validates and answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::validate::{SubscriberInput, normalize_email};

/// Subscription status: subscribed.
pub const STATUS_SUBSCRIBED: u8 = 1;
/// Subscription status: unsubscribed.
pub const STATUS_UNSUBSCRIBED: u8 = 2;
/// Subscription status: unconfirmed (double opt-in mail sent).
pub const STATUS_UNCONFIRMED: u8 = 6;

/// A subscriber of one Ecomail list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EcomailSubscriber {
    /// Subscriber id (the same for an address in every list).
    pub id: u64,
    /// The list.
    pub list_id: u64,
    /// Lowercased e-mail.
    pub email: String,
    /// First name.
    pub name: Option<String>,
    /// Last name.
    pub surname: Option<String>,
    /// `male` or `female`.
    pub gender: Option<String>,
    /// Company.
    pub company: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Street.
    pub street: Option<String>,
    /// Postal code.
    pub zip: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Title before the name.
    pub pretitle: Option<String>,
    /// Title after the name.
    pub surtitle: Option<String>,
    /// `YYYY-MM-DD`.
    pub birthday: Option<String>,
    /// `MM-DD`.
    pub nameday: Option<String>,
    /// Where the subscriber came from.
    pub source: Option<String>,
    /// 1 subscribed, 2 unsubscribed, 4 hard bounce, 5 spam complaint, 6 unconfirmed.
    pub status: u8,
    /// Custom fields with normalised keys (a value, or `{value, type}`).
    pub custom_fields: Map<String, Value>,
    /// Tags.
    pub tags: Vec<String>,
    /// Groups (`{group_id: [...]}`).
    pub groups: Map<String, Value>,
    /// Soft bounces (always 0 in the sandbox).
    pub bounce_soft: u32,
    /// Hard bounces (always 0 in the sandbox).
    pub bounced_hard: u32,
    /// First insertion, `YYYY-MM-DD HH:MM:SS`.
    pub inserted_at: String,
    /// When the subscription became active.
    pub subscribed_at: Option<String>,
    /// When the subscriber unsubscribed.
    pub unsubscribed_at: Option<String>,
}

impl EcomailSubscriber {
    fn field_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "name" => &mut self.name,
            "surname" => &mut self.surname,
            "gender" => &mut self.gender,
            "company" => &mut self.company,
            "city" => &mut self.city,
            "street" => &mut self.street,
            "zip" => &mut self.zip,
            "country" => &mut self.country,
            "phone" => &mut self.phone,
            "pretitle" => &mut self.pretitle,
            "surtitle" => &mut self.surtitle,
            "birthday" => &mut self.birthday,
            "nameday" => &mut self.nameday,
            "source" => &mut self.source,
            _ => return None,
        })
    }

    /// An unsubscribed address becomes active again with `status` (subscribed, or unconfirmed
    /// until a double opt-in); the subscription date is set when it is subscribed outright.
    fn reactivate_if_unsubscribed(&mut self, status: u8, now: &str) {
        if self.status != STATUS_UNSUBSCRIBED {
            return;
        }
        self.status = status;
        self.unsubscribed_at = None;
        if status == STATUS_SUBSCRIBED {
            self.subscribed_at = Some(now.to_owned());
        }
    }

    /// Merges sent data: fields overwrite, custom fields and groups merge key by key, tags are
    /// added.
    fn merge(&mut self, input: &SubscriberInput) {
        for (name, value) in &input.fields {
            if let Some(field) = self.field_mut(name) {
                *field = Some(value.clone());
            }
        }
        if let Some(custom_fields) = &input.custom_fields {
            for (key, value) in custom_fields {
                self.custom_fields.insert(key.clone(), value.clone());
            }
        }
        if let Some(tags) = &input.tags {
            for tag in tags {
                if !self.tags.contains(tag) {
                    self.tags.push(tag.clone());
                }
            }
        }
        if let Some(groups) = &input.groups {
            for (key, value) in groups {
                self.groups.insert(key.clone(), value.clone());
            }
        }
    }
}

/// A tracker event (`POST /tracker/events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EcomailEvent {
    /// Event id.
    pub id: u64,
    /// The subscriber's lowercased e-mail.
    pub email: String,
    /// Category.
    pub category: Option<String>,
    /// Action.
    pub action: Option<String>,
    /// Label.
    pub label: Option<String>,
    /// Property.
    pub property: Option<String>,
    /// The value as stored: text, or JSON-encoded text for structured values.
    pub value: Option<String>,
    /// When it was recorded, `YYYY-MM-DD HH:MM:SS`.
    pub timestamp: String,
}

/// The flags of a subscribe call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SubscribeOptions {
    pub(crate) update_existing: bool,
    pub(crate) skip_confirmation: bool,
    pub(crate) resubscribe: bool,
}

/// What a subscribe call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscribeOutcome {
    /// A new subscriber was added to the list.
    Created,
    /// The subscriber existed and was updated (`update_existing`).
    Updated,
    /// The subscriber existed and was left alone (except a requested resubscribe).
    AlreadySubscribed,
}

/// Why an update was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpdateError {
    /// No such subscriber in the list.
    NotFound,
    /// The new e-mail belongs to another subscriber of the list.
    EmailTaken,
}

/// Everything Ecomail stores.
#[derive(Debug, Default)]
pub(crate) struct EcomailStore {
    lists: BTreeMap<u64, BTreeMap<String, EcomailSubscriber>>,
    ids: BTreeMap<String, u64>,
    events: Vec<EcomailEvent>,
}

impl EcomailStore {
    fn id_for(&mut self, email: &str) -> u64 {
        let next = u64::try_from(self.ids.len()).unwrap_or(u64::MAX).saturating_add(1);
        *self.ids.entry(email.to_owned()).or_insert(next)
    }

    /// Subscribes `input` (whose e-mail must be set) to `list_id`.
    pub(crate) fn subscribe(
        &mut self,
        list_id: u64,
        input: &SubscriberInput,
        options: SubscribeOptions,
        now: &str,
    ) -> (SubscribeOutcome, EcomailSubscriber) {
        let email = input.email.clone().unwrap_or_default();
        let active_status = if options.skip_confirmation {
            STATUS_SUBSCRIBED
        } else {
            STATUS_UNCONFIRMED
        };
        let id = self.id_for(&email);
        let list = self.lists.entry(list_id).or_default();
        if let Some(existing) = list.get_mut(&email) {
            if options.resubscribe {
                existing.reactivate_if_unsubscribed(active_status, now);
            }
            if !options.update_existing {
                return (SubscribeOutcome::AlreadySubscribed, existing.clone());
            }
            existing.merge(input);
            return (SubscribeOutcome::Updated, existing.clone());
        }
        let mut subscriber = EcomailSubscriber {
            id,
            list_id,
            email: email.clone(),
            name: None,
            surname: None,
            gender: None,
            company: None,
            city: None,
            street: None,
            zip: None,
            country: None,
            phone: None,
            pretitle: None,
            surtitle: None,
            birthday: None,
            nameday: None,
            source: None,
            status: active_status,
            custom_fields: Map::new(),
            tags: Vec::new(),
            groups: Map::new(),
            bounce_soft: 0,
            bounced_hard: 0,
            inserted_at: now.to_owned(),
            subscribed_at: (active_status == STATUS_SUBSCRIBED).then(|| now.to_owned()),
            unsubscribed_at: None,
        };
        subscriber.merge(input);
        list.insert(email, subscriber.clone());
        (SubscribeOutcome::Created, subscriber)
    }

    /// The subscriber `email` (any case) of `list_id`.
    pub(crate) fn get(&self, list_id: u64, email: &str) -> Option<&EcomailSubscriber> {
        self.lists.get(&list_id)?.get(&normalize_email(email))
    }

    /// `PUT /lists/{id}/update-subscriber`: merges `input`, moving the subscriber to a new
    /// e-mail if `input.email` differs.
    pub(crate) fn update(
        &mut self,
        list_id: u64,
        email: &str,
        input: &SubscriberInput,
    ) -> Result<EcomailSubscriber, UpdateError> {
        let email = normalize_email(email);
        let list = self.lists.get_mut(&list_id).ok_or(UpdateError::NotFound)?;
        if !list.contains_key(&email) {
            return Err(UpdateError::NotFound);
        }
        let Some(new_email) = input.email.clone().filter(|new| *new != email) else {
            let subscriber = list.get_mut(&email).ok_or(UpdateError::NotFound)?;
            subscriber.merge(input);
            return Ok(subscriber.clone());
        };
        if list.contains_key(&new_email) {
            return Err(UpdateError::EmailTaken);
        }
        // The subscriber keeps its id; the new address inherits it unless already known.
        let mut subscriber = list.remove(&email).ok_or(UpdateError::NotFound)?;
        subscriber.email = new_email.clone();
        subscriber.merge(input);
        list.insert(new_email.clone(), subscriber.clone());
        self.ids.entry(new_email).or_insert(subscriber.id);
        Ok(subscriber)
    }

    /// One entry of `PUT /lists/{id}/update-subscriber-bulk`: merges `input` into the subscriber
    /// with `input.email` if it is in the list (reactivating an unsubscribed one only with
    /// `allow_resubscribe`); true if it was updated. Nobody is added.
    pub(crate) fn update_existing(
        &mut self,
        list_id: u64,
        input: &SubscriberInput,
        allow_resubscribe: bool,
        now: &str,
    ) -> bool {
        // Validated input carries the address normalized, as `subscribe` relies on too.
        let Some(email) = input.email.as_deref() else {
            return false;
        };
        let Some(subscriber) = self.lists.get_mut(&list_id).and_then(|list| list.get_mut(email)) else {
            return false;
        };
        if allow_resubscribe {
            subscriber.reactivate_if_unsubscribed(STATUS_SUBSCRIBED, now);
        }
        subscriber.merge(input);
        true
    }

    /// Marks the subscriber unsubscribed (status 2).
    pub(crate) fn unsubscribe(&mut self, list_id: u64, email: &str, now: &str) -> Option<EcomailSubscriber> {
        let subscriber = self.lists.get_mut(&list_id)?.get_mut(&normalize_email(email))?;
        subscriber.status = STATUS_UNSUBSCRIBED;
        subscriber.unsubscribed_at = Some(now.to_owned());
        Some(subscriber.clone())
    }

    /// True if the address is a subscriber (any status) of some list.
    pub(crate) fn is_known(&self, email: &str) -> bool {
        let email = normalize_email(email);
        self.lists.values().any(|list| list.contains_key(&email))
    }

    /// Records a tracker event.
    pub(crate) fn add_event(&mut self, mut event: EcomailEvent) -> EcomailEvent {
        event.id = u64::try_from(self.events.len()).unwrap_or(u64::MAX).saturating_add(1);
        self.events.push(event.clone());
        event
    }

    /// Every event, oldest first.
    pub(crate) fn events(&self) -> &[EcomailEvent] {
        &self.events
    }

    /// Every subscriber, per list.
    pub(crate) fn all(&self) -> BTreeMap<u64, Vec<EcomailSubscriber>> {
        self.lists
            .iter()
            .map(|(list_id, subscribers)| (*list_id, subscribers.values().cloned().collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(email: &str, name: &str, custom: &[(&str, &str)]) -> SubscriberInput {
        SubscriberInput {
            email: Some(email.to_owned()),
            fields: vec![("name", name.to_owned())],
            custom_fields: Some(
                custom
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                    .collect(),
            ),
            tags: Some(vec!["vip".to_owned()]),
            groups: None,
        }
    }

    const NEW: SubscribeOptions = SubscribeOptions {
        update_existing: false,
        skip_confirmation: true,
        resubscribe: false,
    };

    #[test]
    fn existing_subscriber_is_untouched_without_update_existing() {
        let mut store = EcomailStore::default();
        store.subscribe(1, &input("a@b.cz", "Ann", &[("tier", "gold")]), NEW, "t1");
        let (outcome, subscriber) = store.subscribe(1, &input("a@b.cz", "Bea", &[("tier", "silver")]), NEW, "t2");
        assert_eq!(outcome, SubscribeOutcome::AlreadySubscribed);
        assert_eq!(subscriber.name.as_deref(), Some("Ann"));
        assert_eq!(subscriber.custom_fields["tier"], "gold");
    }

    #[test]
    fn update_existing_merges_custom_fields_key_by_key() {
        let mut store = EcomailStore::default();
        store.subscribe(1, &input("a@b.cz", "Ann", &[("tier", "gold"), ("pin", "1")]), NEW, "t1");
        let options = SubscribeOptions {
            update_existing: true,
            ..NEW
        };
        let (outcome, subscriber) = store.subscribe(1, &input("a@b.cz", "Bea", &[("tier", "silver")]), options, "t2");
        assert_eq!(outcome, SubscribeOutcome::Updated);
        assert_eq!(subscriber.name.as_deref(), Some("Bea"));
        assert_eq!(subscriber.custom_fields["tier"], "silver");
        assert_eq!(subscriber.custom_fields["pin"], "1");
        assert_eq!(subscriber.tags, ["vip"]);
        assert_eq!(subscriber.inserted_at, "t1");
    }

    #[test]
    fn subscriber_ids_are_shared_across_lists() {
        let mut store = EcomailStore::default();
        let (_, first) = store.subscribe(1, &input("a@b.cz", "Ann", &[]), NEW, "t");
        let (_, other) = store.subscribe(1, &input("c@d.cz", "Cy", &[]), NEW, "t");
        let (_, second) = store.subscribe(2, &input("a@b.cz", "Ann", &[]), NEW, "t");
        assert_eq!(first.id, second.id);
        assert_ne!(first.id, other.id);
    }

    #[test]
    fn resubscribe_reactivates_an_unsubscribed_address() {
        let mut store = EcomailStore::default();
        store.subscribe(1, &input("a@b.cz", "Ann", &[]), NEW, "t1");
        assert_eq!(
            store.unsubscribe(1, "A@B.cz", "t2").map(|s| s.status),
            Some(STATUS_UNSUBSCRIBED)
        );
        let (_, again) = store.subscribe(1, &input("a@b.cz", "Ann", &[]), NEW, "t3");
        assert_eq!(again.status, STATUS_UNSUBSCRIBED);
        let options = SubscribeOptions {
            resubscribe: true,
            ..NEW
        };
        let (_, again) = store.subscribe(1, &input("a@b.cz", "Ann", &[]), options, "t4");
        assert_eq!(again.status, STATUS_SUBSCRIBED);
    }

    #[test]
    fn update_can_move_a_subscriber_to_a_free_address_only() {
        let mut store = EcomailStore::default();
        store.subscribe(1, &input("a@b.cz", "Ann", &[]), NEW, "t");
        store.subscribe(1, &input("c@d.cz", "Cy", &[]), NEW, "t");
        let taken = SubscriberInput {
            email: Some("c@d.cz".to_owned()),
            ..SubscriberInput::default()
        };
        assert_eq!(store.update(1, "a@b.cz", &taken), Err(UpdateError::EmailTaken));
        let free = SubscriberInput {
            email: Some("new@b.cz".to_owned()),
            ..SubscriberInput::default()
        };
        assert_eq!(
            store.update(1, "a@b.cz", &free).map(|s| s.email),
            Ok("new@b.cz".to_owned())
        );
        assert!(store.get(1, "a@b.cz").is_none());
        assert_eq!(store.update(9, "a@b.cz", &free), Err(UpdateError::NotFound));
    }
}
