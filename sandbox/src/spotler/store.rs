//! Spotler Mail+ contact storage and its rules: insert/update/purge merging, the duplicate
//! prevention by e-mail (a new external id with a known address is merged into the existing
//! contact and kept as an alias), anonymisation and inactivation.
//!
//! Also the subscriptions from sign-up forms (`/subscription/subscribe`: matched by external
//! id, else by e-mail, else a new contact), search by property, and the temporary lists
//! ([`TempListStore`]).
//!
//! The store is plain data with no I/O; the HTTP layer in `spotler.rs` validates requests and
//! turns outcomes into Spotler responses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::templist::TempListStore;

/// A stored Spotler contact, as the sandbox inspection API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpotlerContact {
    /// The contact's own external id.
    pub external_id: String,
    /// Other external ids merged into this contact because they arrived with its e-mail.
    pub aliases: Vec<String>,
    /// Contact properties (`email`, `firstName`, `permissions`, ...).
    pub properties: Map<String, Value>,
    /// Channel opt-ins (`EMAIL`, `SMS`).
    pub channels: Vec<SpotlerChannel>,
    /// The Spotler `testGroup` flag.
    pub test_group: bool,
    /// Creation time, ISO 8601 UTC to the second.
    pub created: String,
    /// Last change, ISO 8601 UTC to the second.
    pub last_changed: String,
    /// Spotler's opaque `encryptedId`.
    pub encrypted_id: String,
    /// Set by `PUT /contact/anonymize/{externalId}`.
    pub anonymized: bool,
    /// Set by `PUT /contact/inactivate/{externalId}`.
    pub inactive: bool,
}

/// A Spotler channel opt-in: `{"name": "EMAIL" | "SMS", "value": bool}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotlerChannel {
    /// `EMAIL` or `SMS`.
    pub name: String,
    /// Whether the contact may be reached on it.
    pub value: bool,
}

/// A validated contact from a request.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContactInput {
    /// The properties sent (a `null` value removes the property).
    pub(crate) properties: Map<String, Value>,
    /// Channels sent, if any.
    pub(crate) channels: Option<Vec<SpotlerChannel>>,
    /// `testGroup`, if sent.
    pub(crate) test_group: Option<bool>,
}

/// How a successful insert was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InsertOutcome {
    /// A new contact was created.
    Inserted,
    /// The existing contact with this external id was updated (`update: true`).
    Updated,
    /// The e-mail belonged to another contact: the data was merged into it and the external
    /// id became its alias.
    MergedByEmail {
        /// The external id of the contact merged into.
        into: String,
    },
}

/// Why an insert was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InsertError {
    /// The external id exists and `update` was false.
    AlreadyExists,
}

/// The contact store.
#[derive(Debug, Default)]
pub(crate) struct SpotlerStore {
    contacts: BTreeMap<String, SpotlerContact>,
    /// Alias external id → the contact's own external id.
    aliases: BTreeMap<String, String>,
    /// Lowercased e-mail → external id of the first contact that claimed it.
    emails: BTreeMap<String, String>,
    /// Temporary (static) lists.
    pub(crate) templists: TempListStore,
}

/// When a contact changes: `(created/last_changed text, encryptedId for new contacts)`.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    /// The formatted current time.
    pub(crate) now: String,
    /// A fresh `encryptedId`, used only if a contact is created.
    pub(crate) encrypted_id: String,
}

fn email_key(properties: &Map<String, Value>) -> Option<String> {
    properties
        .get("email")
        .and_then(Value::as_str)
        .map(|email| email.trim().to_lowercase())
        .filter(|email| !email.is_empty())
}

impl SpotlerStore {
    /// The contact's own external id for an id or alias.
    pub(crate) fn resolve(&self, external_id: &str) -> Option<String> {
        if self.contacts.contains_key(external_id) {
            return Some(external_id.to_owned());
        }
        self.aliases.get(external_id).cloned()
    }

    /// The contact with this external id or alias.
    pub(crate) fn get(&self, external_id: &str) -> Option<&SpotlerContact> {
        let id = self.resolve(external_id)?;
        self.contacts.get(&id)
    }

    /// Every contact, ordered by external id.
    pub(crate) fn all(&self) -> Vec<SpotlerContact> {
        self.contacts.values().cloned().collect()
    }

    /// `POST /contact` semantics for one contact.
    pub(crate) fn insert(
        &mut self,
        external_id: &str,
        input: &ContactInput,
        update: bool,
        purge: bool,
        stamp: &Stamp,
    ) -> Result<InsertOutcome, InsertError> {
        if let Some(id) = self.resolve(external_id) {
            if !update {
                return Err(InsertError::AlreadyExists);
            }
            self.apply(&id, input, purge, &stamp.now);
            return Ok(InsertOutcome::Updated);
        }
        if let Some(owner) = email_key(&input.properties).and_then(|key| self.emails.get(&key)) {
            let owner = owner.clone();
            self.apply(&owner, input, purge, &stamp.now);
            if let Some(contact) = self.contacts.get_mut(&owner) {
                contact.aliases.push(external_id.to_owned());
            }
            self.aliases.insert(external_id.to_owned(), owner.clone());
            return Ok(InsertOutcome::MergedByEmail { into: owner });
        }
        let mut properties = Map::new();
        for (name, value) in &input.properties {
            if !value.is_null() {
                properties.insert(name.clone(), value.clone());
            }
        }
        let has_email = email_key(&properties).is_some();
        let mut channels = vec![
            SpotlerChannel {
                name: "EMAIL".to_owned(),
                value: has_email,
            },
            SpotlerChannel {
                name: "SMS".to_owned(),
                value: false,
            },
        ];
        merge_channels(&mut channels, input.channels.as_deref().unwrap_or_default());
        let contact = SpotlerContact {
            external_id: external_id.to_owned(),
            aliases: Vec::new(),
            properties,
            channels,
            test_group: input.test_group.unwrap_or(false),
            created: stamp.now.clone(),
            last_changed: stamp.now.clone(),
            encrypted_id: stamp.encrypted_id.clone(),
            anonymized: false,
            inactive: false,
        };
        if let Some(key) = email_key(&contact.properties) {
            self.emails.entry(key).or_insert_with(|| external_id.to_owned());
        }
        self.contacts.insert(external_id.to_owned(), contact);
        Ok(InsertOutcome::Inserted)
    }

    /// `POST /subscription/subscribe` semantics: the contact with `external_id` (or, without
    /// one, the contact with this e-mail) is updated; otherwise a new contact is created, with
    /// `external_id` or a generated one. Returns the contact's own external id.
    pub(crate) fn subscribe(&mut self, external_id: Option<&str>, input: &ContactInput, stamp: &Stamp) -> String {
        let known = match external_id {
            Some(id) => self.resolve(id),
            None => email_key(&input.properties).and_then(|key| self.emails.get(&key).cloned()),
        };
        if let Some(id) = known {
            self.apply(&id, input, false, &stamp.now);
            return id;
        }
        let id = external_id.map_or_else(|| format!("sub-{}", stamp.encrypted_id), str::to_owned);
        // A new external id with a known e-mail merges (duplicate prevention), like an insert.
        match self.insert(&id, input, true, false, stamp) {
            Ok(InsertOutcome::MergedByEmail { into }) => into,
            _ => id,
        }
    }

    /// The contacts whose property `name` equals `value` (text compared exactly, e-mail
    /// addresses case-insensitively), ordered by external id.
    pub(crate) fn search(&self, name: &str, value: &str) -> Vec<&SpotlerContact> {
        self.contacts
            .values()
            .filter(|contact| match contact.properties.get(name) {
                Some(Value::String(text)) if name == "email" => text.trim().eq_ignore_ascii_case(value.trim()),
                Some(Value::String(text)) => text == value,
                Some(Value::Number(number)) => number.to_string() == value,
                Some(Value::Bool(flag)) => flag.to_string() == value,
                _ => false,
            })
            .collect()
    }

    /// `PUT /contact/{externalId}` semantics; `false` if there is no such contact.
    pub(crate) fn update(&mut self, external_id: &str, input: &ContactInput, purge: bool, now: &str) -> bool {
        let Some(id) = self.resolve(external_id) else {
            return false;
        };
        self.apply(&id, input, purge, now);
        true
    }

    /// Replaces the e-mail with a placeholder and drops every other property.
    pub(crate) fn anonymize(&mut self, external_id: &str, now: &str) -> bool {
        let Some(id) = self.resolve(external_id) else {
            return false;
        };
        let Some(contact) = self.contacts.get_mut(&id) else {
            return false;
        };
        let old_email = email_key(&contact.properties);
        let placeholder = format!("anonymized-{}@anonymized.invalid", contact.encrypted_id);
        contact.properties = Map::new();
        contact
            .properties
            .insert("email".to_owned(), Value::String(placeholder));
        contact.anonymized = true;
        contact.last_changed = now.to_owned();
        let new_email = email_key(&contact.properties);
        self.reindex_email(&id, old_email, new_email);
        true
    }

    /// Switches every channel off and marks the contact inactive.
    pub(crate) fn inactivate(&mut self, external_id: &str, now: &str) -> bool {
        let Some(id) = self.resolve(external_id) else {
            return false;
        };
        let Some(contact) = self.contacts.get_mut(&id) else {
            return false;
        };
        for channel in &mut contact.channels {
            channel.value = false;
        }
        contact.inactive = true;
        contact.last_changed = now.to_owned();
        true
    }

    /// Merges `input` into the contact `id` (which must be a contact's own id).
    fn apply(&mut self, id: &str, input: &ContactInput, purge: bool, now: &str) {
        let Some(contact) = self.contacts.get_mut(id) else {
            return;
        };
        let old_email = email_key(&contact.properties);
        if purge {
            contact.properties.retain(|name, _| input.properties.contains_key(name));
        }
        for (name, value) in &input.properties {
            if value.is_null() {
                contact.properties.remove(name);
            } else if name == "permissions" && !purge {
                let merged = merge_permissions(contact.properties.get(name), value);
                contact.properties.insert(name.clone(), merged);
            } else {
                contact.properties.insert(name.clone(), value.clone());
            }
        }
        if let Some(channels) = &input.channels {
            merge_channels(&mut contact.channels, channels);
        }
        if let Some(test_group) = input.test_group {
            contact.test_group = test_group;
        }
        contact.last_changed = now.to_owned();
        let new_email = email_key(&contact.properties);
        self.reindex_email(id, old_email, new_email);
    }

    fn reindex_email(&mut self, id: &str, old: Option<String>, new: Option<String>) {
        if old == new {
            return;
        }
        if let Some(old) = old
            && self.emails.get(&old).is_some_and(|owner| owner == id)
        {
            self.emails.remove(&old);
        }
        if let Some(new) = new {
            self.emails.entry(new).or_insert_with(|| id.to_owned());
        }
    }
}

/// Sets each sent channel by name, adding unknown ones.
fn merge_channels(channels: &mut Vec<SpotlerChannel>, sent: &[SpotlerChannel]) {
    for channel in sent {
        match channels.iter_mut().find(|c| c.name == channel.name) {
            Some(existing) => existing.value = channel.value,
            None => channels.push(channel.clone()),
        }
    }
}

/// Merges a `permissions` value bit by bit: bits sent override stored ones, others stay.
fn merge_permissions(stored: Option<&Value>, sent: &Value) -> Value {
    let mut merged: Vec<Value> = stored.and_then(Value::as_array).cloned().unwrap_or_default();
    for permission in sent.as_array().map(Vec::as_slice).unwrap_or_default() {
        let bit = permission.get("bit");
        match merged.iter_mut().find(|p| p.get("bit") == bit) {
            Some(existing) => *existing = permission.clone(),
            None => merged.push(permission.clone()),
        }
    }
    Value::Array(merged)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stamp(n: u32) -> Stamp {
        Stamp {
            now: format!("2025-01-01T00:00:{n:02}Z"),
            encrypted_id: format!("enc{n}"),
        }
    }

    fn input(properties: Value) -> ContactInput {
        ContactInput {
            properties: properties.as_object().cloned().unwrap_or_default(),
            ..ContactInput::default()
        }
    }

    #[test]
    fn insert_then_update_merges_and_purge_clears_unsent_properties() {
        let mut store = SpotlerStore::default();
        let first = input(json!({"email": "a@example.com", "firstName": "Ann", "city": "Brno"}));
        assert_eq!(
            store.insert("1", &first, false, false, &stamp(1)),
            Ok(InsertOutcome::Inserted)
        );
        let second = input(json!({"lastName": "Lee", "city": null}));
        assert_eq!(
            store.insert("1", &second, true, false, &stamp(2)),
            Ok(InsertOutcome::Updated)
        );
        let contact = store.get("1").unwrap();
        assert_eq!(
            Value::Object(contact.properties.clone()),
            json!({"email": "a@example.com", "firstName": "Ann", "lastName": "Lee"})
        );
        assert_eq!(contact.created, "2025-01-01T00:00:01Z");
        assert_eq!(contact.last_changed, "2025-01-01T00:00:02Z");

        assert!(store.update("1", &input(json!({"firstName": "Anna"})), true, "t3"));
        assert_eq!(
            Value::Object(store.get("1").unwrap().properties.clone()),
            json!({"firstName": "Anna"})
        );
    }

    #[test]
    fn insert_without_update_of_an_existing_contact_is_refused() {
        let mut store = SpotlerStore::default();
        let contact = input(json!({"email": "a@example.com"}));
        store.insert("1", &contact, false, false, &stamp(1)).unwrap();
        assert_eq!(
            store.insert("1", &contact, false, false, &stamp(2)),
            Err(InsertError::AlreadyExists)
        );
    }

    #[test]
    fn new_external_id_with_a_known_email_becomes_an_alias() {
        let mut store = SpotlerStore::default();
        store
            .insert(
                "1",
                &input(json!({"email": "Ann@Example.com"})),
                false,
                false,
                &stamp(1),
            )
            .unwrap();
        let outcome = store
            .insert(
                "2",
                &input(json!({"email": "ann@example.COM", "firstName": "Ann"})),
                false,
                false,
                &stamp(2),
            )
            .unwrap();
        assert_eq!(outcome, InsertOutcome::MergedByEmail { into: "1".to_owned() });
        assert_eq!(store.all().len(), 1);
        let via_alias = store.get("2").unwrap();
        assert_eq!(via_alias.external_id, "1");
        assert_eq!(via_alias.aliases, ["2"]);
        assert_eq!(via_alias.properties["firstName"], "Ann");
    }

    #[test]
    fn permissions_merge_bit_by_bit() {
        let mut store = SpotlerStore::default();
        let first = input(json!({"permissions": [{"bit": 1, "enabled": true}, {"bit": 2, "enabled": true}]}));
        store.insert("1", &first, false, false, &stamp(1)).unwrap();
        store
            .insert(
                "1",
                &input(json!({"permissions": [{"bit": 2, "enabled": false}]})),
                true,
                false,
                &stamp(2),
            )
            .unwrap();
        assert_eq!(
            store.get("1").unwrap().properties["permissions"],
            json!([{"bit": 1, "enabled": true}, {"bit": 2, "enabled": false}])
        );
    }

    #[test]
    fn subscribe_matches_by_id_then_email_else_creates() {
        let mut store = SpotlerStore::default();
        store
            .insert("1", &input(json!({"email": "a@example.com"})), false, false, &stamp(1))
            .unwrap();
        let by_email = store.subscribe(
            None,
            &input(json!({"email": "A@example.com", "firstName": "Ann"})),
            &stamp(2),
        );
        assert_eq!(by_email, "1");
        assert_eq!(store.get("1").unwrap().properties["firstName"], "Ann");
        let new = store.subscribe(None, &input(json!({"email": "b@example.com"})), &stamp(3));
        assert_eq!(new, "sub-enc3");
        let with_id = store.subscribe(Some("c-9"), &input(json!({"email": "c@example.com"})), &stamp(4));
        assert_eq!(with_id, "c-9");
        assert_eq!(store.all().len(), 3);
    }

    #[test]
    fn search_matches_exact_values() {
        let mut store = SpotlerStore::default();
        store
            .insert(
                "1",
                &input(json!({"email": "a@example.com", "code": "X-1", "points": 5})),
                false,
                false,
                &stamp(1),
            )
            .unwrap();
        store
            .insert(
                "2",
                &input(json!({"email": "b@example.com", "code": "x-1"})),
                false,
                false,
                &stamp(2),
            )
            .unwrap();
        let ids = |found: Vec<&SpotlerContact>| found.iter().map(|c| c.external_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(store.search("code", "X-1")), ["1"]);
        assert_eq!(ids(store.search("points", "5")), ["1"]);
        assert_eq!(ids(store.search("email", "B@EXAMPLE.com")), ["2"]);
        assert!(store.search("code", "nope").is_empty());
    }

    #[test]
    fn anonymize_and_inactivate_mark_the_contact() {
        let mut store = SpotlerStore::default();
        let contact = input(json!({"email": "a@example.com", "firstName": "Ann"}));
        store.insert("1", &contact, false, false, &stamp(1)).unwrap();
        assert!(store.anonymize("1", "t"));
        assert!(store.inactivate("1", "t"));
        let stored = store.get("1").unwrap();
        assert!(stored.anonymized && stored.inactive);
        assert_eq!(stored.properties["email"], "anonymized-enc1@anonymized.invalid");
        assert!(stored.properties.get("firstName").is_none());
        assert!(stored.channels.iter().all(|c| !c.value));
        // The old address is free again: a new contact with it is a new contact.
        assert_eq!(
            store.insert("2", &contact, false, false, &stamp(2)),
            Ok(InsertOutcome::Inserted)
        );
        assert!(!store.anonymize("missing", "t"));
        assert!(!store.inactivate("missing", "t"));
    }
}
