//! Typed Spotler client: contacts (single and up to 100 per call), subscriptions, temporary
//! lists, search by property and the account's property list.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};

use api_client::client::{ErrorReply, excerpt, vendor_error};
use api_client::{CallError, Class, ProviderClient};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::oauth;

/// Credentials (OAuth consumer key and secret).
#[derive(Debug, Clone)]
pub struct SpotlerConfig {
    /// Consumer key (`SPOTLER_CONSUMER_KEY`).
    pub consumer_key: String,
    /// Consumer secret (`SPOTLER_CONSUMER_SECRET`).
    pub consumer_secret: SecretString,
}

/// A contact as Spotler stores it: an external id and named properties.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// The linked system's id.
    pub external_id: String,
    /// Property name → value (`email`, `firstName`, `permissions`, …).
    #[serde(default)]
    pub properties: BTreeMap<String, serde_json::Value>,
}

/// One property of the account (`GET /contact/properties/list`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PropertyDef {
    /// Name.
    pub name: String,
    /// Type: birthdate, date, dateTime, email, gender, int, mobNr, money, postcode, set, string.
    #[serde(rename = "type")]
    pub kind: String,
    /// The choices of a `set` property (e.g. the permission bits of `permissions`).
    #[serde(default)]
    pub entries: Vec<PropertyEntry>,
}

/// One choice of a `set` property.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PropertyEntry {
    /// The bit that stands for it.
    pub bit: u32,
    /// Its label.
    #[serde(default)]
    pub description: String,
}

/// The most contacts `POST /contact/list` takes in one call.
pub const MAX_CONTACTS_PER_CALL: usize = 100;

/// A temporary (static) list as `GET /templist` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TempList {
    /// The id the creating system gave it.
    pub external_temporary_list_id: String,
    /// Its title.
    #[serde(default)]
    pub name: String,
    /// When it was created (ISO 8601), if Spotler says.
    #[serde(default)]
    pub created_at: Option<String>,
    /// `IMPORT`, `RESPONSE`, `API` or `SPLIT`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// What `POST /templist` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempListCreated {
    /// The list was created.
    Created,
    /// A list with this id exists already (e.g. a redelivered create): nothing was changed.
    AlreadyExists,
    /// The account holds the maximum number of temporary lists (30).
    TooMany,
}

/// One page of a property search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchPage {
    /// External ids of the matching contacts on this page.
    pub external_ids: Vec<String>,
    /// Whether more contacts matched than this page holds.
    pub more: bool,
}

#[derive(Serialize)]
struct ContactRequest<'a> {
    update: bool,
    purge: bool,
    contact: &'a Contact,
}

#[derive(Serialize)]
struct ContactListRequest<'a> {
    update: bool,
    purge: bool,
    contacts: &'a [Contact],
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListItemResult {
    external_id: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscribeRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<&'a str>,
    properties: &'a BTreeMap<String, serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateTempListRequest<'a> {
    external_temporary_list_id: &'a str,
    name: &'a str,
    contacts: &'a [String],
}

#[derive(Serialize)]
struct AddToTempListRequest<'a> {
    contacts: &'a [String],
}

#[derive(Deserialize)]
struct SearchAnswer {
    #[serde(default)]
    contacts: Vec<SearchContact>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchContact {
    external_id: Option<String>,
}

#[derive(Deserialize)]
struct Paging {
    next: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorResponse {
    error_type: Option<String>,
    message: Option<String>,
}

/// The Spotler client.
#[derive(Debug, Clone)]
pub struct SpotlerClient {
    http: ProviderClient,
    config: SpotlerConfig,
}

fn error(operation: &str, reply: &ErrorReply, class: Class) -> CallError {
    let detail = match serde_json::from_slice::<ErrorResponse>(&reply.body) {
        Ok(ErrorResponse { error_type, message }) => {
            format!("{} {}", error_type.unwrap_or_default(), message.unwrap_or_default())
                .trim()
                .to_owned()
        }
        Err(_) => excerpt(&reply.body),
    };
    vendor_error("spotler", operation, reply, class, &mask_emails(&detail))
}

fn segment(value: &str) -> String {
    oauth::encode(value)
}

/// Replaces every word that looks like an e-mail address with `<email>`.
fn mask_emails(text: &str) -> String {
    text.split(' ')
        .map(|word| if word.contains('@') { "<email>" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The per-contact result of `POST /contact/list`: `OK` is success, `ERROR` may succeed
/// later, every other code (`PROPERTY_INVALID`, `CONTACT_OPTOUT`, ...) is about the contact
/// itself and permanent.
fn item_result(item: &ListItemResult) -> Result<(), CallError> {
    let code = item.code.as_deref().unwrap_or("ERROR");
    if code == "OK" {
        return Ok(());
    }
    let text = format!(
        "spotler insert_contacts: {code} {}",
        mask_emails(item.message.as_deref().unwrap_or_default())
    )
    .trim()
    .to_owned();
    if code == "ERROR" {
        Err(CallError::Retriable(text))
    } else {
        Err(CallError::Permanent(text))
    }
}

/// Remembers which Spotler error a call ended with, for calls whose caller acts on it.
#[derive(Debug, Default)]
struct Seen(AtomicU8);

impl Seen {
    const TOO_MANY: u8 = 1;
    const ID_EXISTS: u8 = 2;

    fn note(&self, reply: &ErrorReply) {
        let Ok(ErrorResponse { message, .. }) = serde_json::from_slice::<ErrorResponse>(&reply.body) else {
            return;
        };
        let message = message.unwrap_or_default().to_ascii_lowercase();
        if message.contains("too many temporary lists") {
            self.0.store(Self::TOO_MANY, Ordering::Relaxed);
        } else if message.contains("externaltemporarylistid already exists") {
            self.0.store(Self::ID_EXISTS, Ordering::Relaxed);
        }
    }

    fn get(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }
}

impl SpotlerClient {
    /// A client over the shared HTTP client.
    pub fn new(http: ProviderClient, config: SpotlerConfig) -> Self {
        Self { http, config }
    }

    pub(crate) async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<api_client::Reply, CallError> {
        self.call_with(operation, method, path, body, |reply, class| {
            error(operation, reply, class)
        })
        .await
    }

    async fn call_with(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        on_error: impl Fn(&ErrorReply, Class) -> CallError,
    ) -> Result<api_client::Reply, CallError> {
        let url = self.http.url(path)?;
        // Each try is signed afresh (new nonce and timestamp); the JSON body is not signed.
        let sign = |request: reqwest::RequestBuilder| {
            let nonce = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
            let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
            let consumer_secret = self.config.consumer_secret.expose_secret();
            let auth = oauth::authorization(
                method.as_str(),
                &url,
                &self.config.consumer_key,
                consumer_secret,
                &nonce,
                timestamp,
            );
            request.header(reqwest::header::AUTHORIZATION, auth)
        };
        self.http
            .send_json(operation, method.clone(), path, body.map(Into::into), sign, on_error)
            .await
    }

    /// `POST /contact` with `update` (upsert) and `purge=false` (properties not sent are kept).
    pub async fn insert_contact(&self, contact: &Contact, update: bool) -> Result<(), CallError> {
        let body = serde_json::to_vec(&ContactRequest {
            update,
            purge: false,
            contact,
        })
        .map_err(|e| CallError::Permanent(format!("spotler insert: cannot encode: {e}")))?;
        self.call("insert_contact", Method::POST, "/contact", Some(body))
            .await
            .map(drop)
    }

    /// `GET /contact/{externalId}`; `None` when Spotler does not know it.
    pub async fn get_contact(&self, external_id: &str) -> Result<Option<Contact>, CallError> {
        match self
            .call(
                "get_contact",
                Method::GET,
                &format!("/contact/{}", segment(external_id)),
                None,
            )
            .await
        {
            Ok(reply) => serde_json::from_slice(&reply.body)
                .map(Some)
                .map_err(|e| CallError::Retriable(format!("spotler get_contact: unexpected answer: {e}"))),
            Err(CallError::NotFound(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// `PUT /contact/anonymize/{externalId}`; `Ok(false)` when the contact does not exist.
    pub async fn anonymize(&self, external_id: &str) -> Result<bool, CallError> {
        self.put_no_body("anonymize", &format!("/contact/anonymize/{}", segment(external_id)))
            .await
    }

    /// `PUT /contact/inactivate/{externalId}`; `Ok(false)` when the contact does not exist.
    pub async fn inactivate(&self, external_id: &str) -> Result<bool, CallError> {
        self.put_no_body("inactivate", &format!("/contact/inactivate/{}", segment(external_id)))
            .await
    }

    async fn put_no_body(&self, operation: &'static str, path: &str) -> Result<bool, CallError> {
        match self.call(operation, Method::PUT, path, None).await {
            Ok(_) => Ok(true),
            Err(CallError::NotFound(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// `POST /contact/list` with `update` and `purge=false`: up to [`MAX_CONTACTS_PER_CALL`]
    /// contacts in one call. Returns one result per contact, in the order given: Spotler's
    /// per-contact code decides (see `item_result`); a contact Spotler did not report on is
    /// retriable. A failure of the call as a whole is the `Err`.
    pub async fn insert_contacts(
        &self,
        contacts: &[Contact],
        update: bool,
    ) -> Result<Vec<Result<(), CallError>>, CallError> {
        if contacts.len() > MAX_CONTACTS_PER_CALL {
            return Err(CallError::Permanent(format!(
                "spotler insert_contacts: {} contacts, at most {MAX_CONTACTS_PER_CALL} per call",
                contacts.len()
            )));
        }
        let body = serde_json::to_vec(&ContactListRequest {
            update,
            purge: false,
            contacts,
        })
        .map_err(|e| CallError::Permanent(format!("spotler insert_contacts: cannot encode: {e}")))?;
        let reply = self
            .call("insert_contacts", Method::POST, "/contact/list", Some(body))
            .await?;
        let items: Vec<ListItemResult> = serde_json::from_slice(&reply.body)
            .map_err(|e| CallError::Retriable(format!("spotler insert_contacts: unexpected answer: {e}")))?;
        let mut by_id: BTreeMap<&str, &ListItemResult> = BTreeMap::new();
        for item in &items {
            if let Some(id) = item.external_id.as_deref() {
                by_id.entry(id).or_insert(item);
            }
        }
        Ok(contacts
            .iter()
            .map(|contact| match by_id.get(contact.external_id.as_str()) {
                Some(item) => item_result(item),
                None => Err(CallError::Retriable(
                    "spotler insert_contacts: no result for this contact".to_owned(),
                )),
            })
            .collect())
    }

    /// `POST /subscription/subscribe`: registers a subscriber from a sign-up form. The
    /// properties must hold `email` and the permissions granted; an external id is optional.
    pub async fn subscribe(
        &self,
        external_id: Option<&str>,
        properties: &BTreeMap<String, serde_json::Value>,
    ) -> Result<(), CallError> {
        let body = serde_json::to_vec(&SubscribeRequest {
            external_id,
            properties,
        })
        .map_err(|e| CallError::Permanent(format!("spotler subscribe: cannot encode: {e}")))?;
        self.call("subscribe", Method::POST, "/subscription/subscribe", Some(body))
            .await
            .map(drop)
    }

    /// `POST /templist`: creates a temporary list with `contacts` (external contact ids).
    pub async fn create_templist(
        &self,
        list_id: &str,
        name: &str,
        contacts: &[String],
    ) -> Result<TempListCreated, CallError> {
        const OPERATION: &str = "create_templist";
        let body = serde_json::to_vec(&CreateTempListRequest {
            external_temporary_list_id: list_id,
            name,
            contacts,
        })
        .map_err(|e| CallError::Permanent(format!("spotler {OPERATION}: cannot encode: {e}")))?;
        let seen = Seen::default();
        let result = self
            .call_with(OPERATION, Method::POST, "/templist", Some(body), |reply, class| {
                seen.note(reply);
                error(OPERATION, reply, class)
            })
            .await;
        match (result, seen.get()) {
            (Ok(_), _) => Ok(TempListCreated::Created),
            (Err(_), Seen::TOO_MANY) => Ok(TempListCreated::TooMany),
            (Err(_), Seen::ID_EXISTS) => Ok(TempListCreated::AlreadyExists),
            (Err(error), _) => Err(error),
        }
    }

    /// `POST /templist/{id}`: adds contacts to a temporary list; `Ok(false)` when the list
    /// does not exist.
    pub async fn add_to_templist(&self, list_id: &str, contacts: &[String]) -> Result<bool, CallError> {
        let body = serde_json::to_vec(&AddToTempListRequest { contacts })
            .map_err(|e| CallError::Permanent(format!("spotler add_to_templist: cannot encode: {e}")))?;
        let path = format!("/templist/{}", segment(list_id));
        match self.call("add_to_templist", Method::POST, &path, Some(body)).await {
            Ok(_) => Ok(true),
            Err(CallError::NotFound(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// `GET /templist`: every temporary list of the account.
    pub async fn templists(&self) -> Result<Vec<TempList>, CallError> {
        let reply = self.call("list_templists", Method::GET, "/templist", None).await?;
        serde_json::from_slice(&reply.body)
            .map_err(|e| CallError::Retriable(format!("spotler list_templists: unexpected answer: {e}")))
    }

    /// `DELETE /templist/{id}`; `Ok(false)` when there is no such list.
    pub async fn delete_templist(&self, list_id: &str) -> Result<bool, CallError> {
        let path = format!("/templist/{}", segment(list_id));
        match self.call("delete_templist", Method::DELETE, &path, None).await {
            Ok(_) => Ok(true),
            Err(CallError::NotFound(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// `GET /contact/search?MPSearchQuery=<property>=<value>`: the first `page_size` contacts
    /// whose property equals `value`. The value never appears in errors or logs (it may be
    /// personal data or a code); errors keep only Spotler's error type.
    pub async fn search(&self, property: &str, value: &str, page_size: u32) -> Result<SearchPage, CallError> {
        const OPERATION: &str = "search";
        let query = format!("{property}={value}");
        let path = format!("/contact/search?MPSearchQuery={}&pageSize={page_size}", segment(&query));
        let reply = self
            .call_with(OPERATION, Method::GET, &path, None, |reply, class| {
                let error_type = serde_json::from_slice::<ErrorResponse>(&reply.body)
                    .ok()
                    .and_then(|e| e.error_type)
                    .unwrap_or_default();
                vendor_error("spotler", OPERATION, reply, class, &error_type)
            })
            .await?;
        let answer: SearchAnswer = serde_json::from_slice(&reply.body)
            .map_err(|e| CallError::Retriable(format!("spotler {OPERATION}: unexpected answer: {e}")))?;
        let more = answer
            .paging
            .and_then(|p| p.next)
            .is_some_and(|next| !next.is_null() && next != serde_json::Value::Bool(false));
        Ok(SearchPage {
            external_ids: answer.contacts.into_iter().filter_map(|c| c.external_id).collect(),
            more,
        })
    }

    /// `GET /contact/properties/list`.
    pub async fn properties(&self) -> Result<Vec<PropertyDef>, CallError> {
        let reply = self
            .call("properties", Method::GET, "/contact/properties/list", None)
            .await?;
        serde_json::from_slice(&reply.body)
            .map_err(|e| CallError::Retriable(format!("spotler properties: unexpected answer: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    fn item(code: &str, message: &str) -> ListItemResult {
        ListItemResult {
            external_id: Some("c-1".into()),
            code: Some(code.into()),
            message: Some(message.into()),
        }
    }

    #[test]
    fn list_item_codes_map_to_outcomes() {
        assert_eq!(item_result(&item("OK", "Contact inserted")), Ok(()));
        assert!(matches!(item_result(&item("ERROR", "x")), Err(CallError::Retriable(_))));
        let invalid = item_result(&item("PROPERTY_INVALID", "Email a@b.cz is invalid"));
        assert!(
            matches!(&invalid, Err(CallError::Permanent(text)) if text.contains("PROPERTY_INVALID") && !text.contains("a@b.cz")),
            "{invalid:?}"
        );
    }

    #[test]
    fn templist_errors_are_recognised() {
        let seen = Seen::default();
        seen.note(&ErrorReply {
            status: StatusCode::BAD_REQUEST,
            body: br#"{"errorType":"INVALID_STATE","message":"Too many temporary lists"}"#
                .to_vec()
                .into(),
        });
        assert_eq!(seen.get(), Seen::TOO_MANY);
        let seen = Seen::default();
        seen.note(&ErrorReply {
            status: StatusCode::BAD_REQUEST,
            body:
                br#"{"errorType":"ID_NOTUNIQUE","message":"Templist with this externalTemporaryListId already exists"}"#
                    .to_vec()
                    .into(),
        });
        assert_eq!(seen.get(), Seen::ID_EXISTS);
    }
}
