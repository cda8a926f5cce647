//! SALESmanago state: contacts keyed by e-mail (upsert semantics: tags added and removed,
//! properties merged, opt-in state forced on request) and external events.
//!
//! Plain data with no I/O; `salesmanago.rs` validates requests.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// A contact as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct SalesmanagoContact {
    pub(crate) contact_id: String,
    pub(crate) email: String,
    pub(crate) name: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) fax: Option<String>,
    pub(crate) company: Option<String>,
    pub(crate) state: Option<String>,
    pub(crate) external_id: Option<String>,
    /// `streetAddress`, `zipCode`, `city`, `country`.
    pub(crate) address: Map<String, Value>,
    /// Tags in the order they were first added.
    pub(crate) tags: Vec<String>,
    pub(crate) properties: Map<String, Value>,
    pub(crate) dictionary_properties: Vec<Value>,
    /// `yyyyMMdd`.
    pub(crate) birthday: Option<String>,
    pub(crate) lang: Option<String>,
    /// E-mail marketing consent (`forceOptIn` / `forceOptOut`); new contacts start opted out.
    pub(crate) email_opt_in: bool,
    /// Phone marketing consent (`forcePhoneOptIn` / `forcePhoneOptOut`).
    pub(crate) phone_opt_in: bool,
    /// Unix milliseconds.
    pub(crate) created_at: i64,
    /// Unix milliseconds.
    pub(crate) modified_at: i64,
}

/// A validated upsert of one contact.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ContactUpsert {
    /// Lowercased, trimmed e-mail (the key).
    pub(crate) email: String,
    /// `newEmail`: changes the key.
    pub(crate) new_email: Option<String>,
    /// Plain fields sent: `(name, value)` for name, phone, fax, company, state, externalId.
    pub(crate) fields: Vec<(&'static str, String)>,
    pub(crate) address: Option<Map<String, Value>>,
    pub(crate) tags: Vec<String>,
    pub(crate) remove_tags: Vec<String>,
    pub(crate) properties: Map<String, Value>,
    pub(crate) dictionary_properties: Option<Vec<Value>>,
    pub(crate) birthday: Option<String>,
    pub(crate) lang: Option<String>,
    pub(crate) force_opt_in: bool,
    pub(crate) force_opt_out: bool,
    pub(crate) force_phone_opt_in: bool,
    pub(crate) force_phone_opt_out: bool,
}

/// An external event as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct SalesmanagoEvent {
    pub(crate) event_id: String,
    pub(crate) contact_id: String,
    pub(crate) email: String,
    pub(crate) contact_ext_event_type: String,
    /// Unix milliseconds.
    pub(crate) date: i64,
    pub(crate) description: Option<String>,
    pub(crate) products: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) value: Option<f64>,
    /// `detail1` ... `detail20`.
    pub(crate) details: BTreeMap<String, String>,
    pub(crate) external_id: Option<String>,
    pub(crate) shop_domain: Option<String>,
    /// Unix milliseconds.
    pub(crate) received_at: i64,
}

/// The contact an event is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EventContact {
    /// By e-mail (lowercased): created if unknown.
    Email(String),
    /// By `contactId`: must exist.
    ContactId(String),
}

/// Why a store operation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// `newEmail` belongs to another contact.
    NewEmailTaken,
    /// No contact has this `contactId`.
    ContactNotFound,
}

/// The SALESmanago store.
#[derive(Debug, Default)]
pub(crate) struct SalesmanagoStore {
    contacts: Vec<SalesmanagoContact>,
    events: Vec<SalesmanagoEvent>,
}

/// A random UUID v4 in its usual text form (SALESmanago ids look like this).
pub(crate) fn uuid_v4() -> String {
    let bits = (rand::random::<u128>() & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    let part = |from: usize, to: usize| hex.chars().skip(from).take(to - from).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

impl SalesmanagoStore {
    fn position(&self, email: &str) -> Option<usize> {
        self.contacts.iter().position(|c| c.email == email)
    }

    /// `/api/contact/upsert` semantics; returns the contact id.
    pub(crate) fn upsert(&mut self, upsert: &ContactUpsert, now_ms: i64) -> Result<String, StoreError> {
        if let Some(new_email) = &upsert.new_email
            && new_email != &upsert.email
            && self.position(new_email).is_some()
        {
            return Err(StoreError::NewEmailTaken);
        }
        let index = match self.position(&upsert.email) {
            Some(index) => index,
            None => {
                self.contacts.push(SalesmanagoContact {
                    contact_id: uuid_v4(),
                    email: upsert.email.clone(),
                    name: None,
                    phone: None,
                    fax: None,
                    company: None,
                    state: None,
                    external_id: None,
                    address: Map::new(),
                    tags: Vec::new(),
                    properties: Map::new(),
                    dictionary_properties: Vec::new(),
                    birthday: None,
                    lang: None,
                    email_opt_in: false,
                    phone_opt_in: false,
                    created_at: now_ms,
                    modified_at: now_ms,
                });
                self.contacts.len() - 1
            }
        };
        let contact = &mut self.contacts[index];
        if let Some(new_email) = &upsert.new_email {
            contact.email.clone_from(new_email);
        }
        for (field, value) in &upsert.fields {
            let slot = match *field {
                "name" => &mut contact.name,
                "phone" => &mut contact.phone,
                "fax" => &mut contact.fax,
                "company" => &mut contact.company,
                "state" => &mut contact.state,
                _ => &mut contact.external_id,
            };
            *slot = Some(value.clone());
        }
        if let Some(address) = &upsert.address {
            for (key, value) in address {
                contact.address.insert(key.clone(), value.clone());
            }
        }
        for tag in &upsert.tags {
            if !contact.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
                contact.tags.push(tag.clone());
            }
        }
        contact.tags.retain(|tag| {
            !upsert
                .remove_tags
                .iter()
                .any(|removed| removed.eq_ignore_ascii_case(tag))
        });
        for (key, value) in &upsert.properties {
            contact.properties.insert(key.clone(), value.clone());
        }
        if let Some(dictionary) = &upsert.dictionary_properties {
            contact.dictionary_properties.clone_from(dictionary);
        }
        if upsert.birthday.is_some() {
            contact.birthday.clone_from(&upsert.birthday);
        }
        if upsert.lang.is_some() {
            contact.lang.clone_from(&upsert.lang);
        }
        if upsert.force_opt_in {
            contact.email_opt_in = true;
        }
        if upsert.force_opt_out {
            contact.email_opt_in = false;
        }
        if upsert.force_phone_opt_in {
            contact.phone_opt_in = true;
        }
        if upsert.force_phone_opt_out {
            contact.phone_opt_in = false;
        }
        contact.modified_at = now_ms;
        Ok(contact.contact_id.clone())
    }

    /// Stores an external event for `contact` (an unknown e-mail creates the contact);
    /// `force_opt_in` opts the contact in. Returns the event id.
    pub(crate) fn add_event(
        &mut self,
        contact: &EventContact,
        force_opt_in: bool,
        mut event: SalesmanagoEvent,
    ) -> Result<String, StoreError> {
        let index = match contact {
            EventContact::ContactId(id) => self
                .contacts
                .iter()
                .position(|c| &c.contact_id == id)
                .ok_or(StoreError::ContactNotFound)?,
            EventContact::Email(email) => match self.position(email) {
                Some(index) => index,
                None => {
                    let upsert = ContactUpsert {
                        email: email.clone(),
                        ..ContactUpsert::default()
                    };
                    self.upsert(&upsert, event.received_at)?;
                    self.contacts.len() - 1
                }
            },
        };
        let target = &mut self.contacts[index];
        if force_opt_in {
            target.email_opt_in = true;
            target.modified_at = event.received_at;
        }
        event.contact_id.clone_from(&target.contact_id);
        event.email.clone_from(&target.email);
        event.event_id = uuid_v4();
        let id = event.event_id.clone();
        self.events.push(event);
        Ok(id)
    }

    /// Every contact, oldest first.
    pub(crate) fn contacts(&self) -> &[SalesmanagoContact] {
        &self.contacts
    }

    /// Every event, in arrival order.
    pub(crate) fn events(&self) -> &[SalesmanagoEvent] {
        &self.events
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn upsert(email: &str) -> ContactUpsert {
        ContactUpsert {
            email: email.to_owned(),
            ..ContactUpsert::default()
        }
    }

    #[test]
    fn uuids_have_the_v4_shape() {
        let id = uuid_v4();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'), "{id}");
        assert!(["8", "9", "a", "b"].iter().any(|v| parts[3].starts_with(v)), "{id}");
        assert_ne!(uuid_v4(), id);
    }

    #[test]
    fn upsert_adds_and_removes_tags_merges_properties_and_forces_consent() {
        let mut store = SalesmanagoStore::default();
        let mut first = upsert("ann@example.com");
        first.tags = vec!["REGISTRATION".to_owned(), "NEWSLETTER".to_owned()];
        first.properties = json!({"city": "Brno"}).as_object().cloned().unwrap_or_default();
        first.force_opt_in = true;
        let id = store.upsert(&first, 1).unwrap();
        let mut second = upsert("ann@example.com");
        second.tags = vec!["purchase".to_owned()];
        second.remove_tags = vec!["newsletter".to_owned()];
        second.properties = json!({"tier": "gold"}).as_object().cloned().unwrap_or_default();
        second.force_opt_out = true;
        second.fields = vec![("name", "Ann".to_owned())];
        assert_eq!(store.upsert(&second, 2).unwrap(), id);
        let contact = &store.contacts()[0];
        assert_eq!(contact.tags, ["REGISTRATION", "purchase"]);
        assert_eq!(
            Value::Object(contact.properties.clone()),
            json!({"city": "Brno", "tier": "gold"})
        );
        assert!(!contact.email_opt_in);
        assert_eq!(contact.name.as_deref(), Some("Ann"));
        assert_eq!((contact.created_at, contact.modified_at), (1, 2));
    }

    #[test]
    fn new_email_moves_the_contact_unless_taken() {
        let mut store = SalesmanagoStore::default();
        store.upsert(&upsert("a@example.com"), 1).unwrap();
        store.upsert(&upsert("b@example.com"), 1).unwrap();
        let mut change = upsert("a@example.com");
        change.new_email = Some("b@example.com".to_owned());
        assert_eq!(store.upsert(&change, 2), Err(StoreError::NewEmailTaken));
        change.new_email = Some("c@example.com".to_owned());
        store.upsert(&change, 2).unwrap();
        assert!(store.contacts().iter().any(|c| c.email == "c@example.com"));
    }

    #[test]
    fn events_create_unknown_contacts_by_email_but_not_by_id() {
        let mut store = SalesmanagoStore::default();
        let event = SalesmanagoEvent {
            event_id: String::new(),
            contact_id: String::new(),
            email: String::new(),
            contact_ext_event_type: "PURCHASE".to_owned(),
            date: 5,
            description: None,
            products: None,
            location: None,
            value: Some(10.5),
            details: BTreeMap::new(),
            external_id: None,
            shop_domain: None,
            received_at: 6,
        };
        let missing = store.add_event(&EventContact::ContactId("nope".to_owned()), false, event.clone());
        assert_eq!(missing, Err(StoreError::ContactNotFound));
        let id = store
            .add_event(&EventContact::Email("new@example.com".to_owned()), true, event)
            .unwrap();
        assert_eq!(store.events()[0].event_id, id);
        assert_eq!(store.events()[0].contact_id, store.contacts()[0].contact_id);
        assert!(store.contacts()[0].email_opt_in);
    }
}
