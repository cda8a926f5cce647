//! [`SalesmanagoClient`]: contact upsert and external events over [`ProviderClient`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use api_client::client::{ErrorReply, excerpt, vendor_error};
use api_client::{CallError, Class, ProviderClient, Reply};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value};
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::wire::{
    Answer, Auth, EventBody, UpsertBody, WireAddress, WireContact, WireEvent, id_text, random_api_key, signature,
    signed_body,
};

/// Provider label (metrics, budget key, error texts).
pub const PROVIDER: &str = "salesmanago";

/// The most `detailN` fields an external event has.
const MAX_DETAILS: usize = 20;

/// Account settings. Its `Debug` hides the secret and the owner's address.
#[derive(Clone)]
pub struct SalesmanagoConfig {
    /// Client id (`SALESMANAGO_CLIENT_ID`).
    pub client_id: String,
    /// API secret (`SALESMANAGO_API_SECRET`).
    pub api_secret: SecretString,
    /// The account user's e-mail sent as `owner` (`SALESMANAGO_OWNER`).
    pub owner: String,
    /// How long the destination pauses after an "API limit exceeded" answer
    /// (`SALESMANAGO_LIMIT_PAUSE`).
    pub limit_pause: Duration,
}

impl fmt::Debug for SalesmanagoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SalesmanagoConfig")
            .field("client_id", &self.client_id)
            .field("api_secret", &"[redacted]")
            .field("owner", &"[redacted]")
            .field("limit_pause", &self.limit_pause)
            .finish()
    }
}

/// E-mail marketing consent to force on the contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// `forceOptIn`: the contact agreed.
    OptIn,
    /// `forceOptOut`: the contact withdrew.
    OptOut,
}

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    /// Street and number.
    pub street_address: Option<String>,
    /// Postal code.
    pub zip_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Country (ISO code).
    pub country: Option<String>,
}

/// One contact upsert (`/api/contact/upsert`), keyed by e-mail. Personal data: its `Debug`
/// shows only the tag and property names.
#[derive(Clone, Default, PartialEq)]
pub struct ContactUpsert {
    /// E-mail (the key).
    pub email: String,
    /// Full name.
    pub name: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Company.
    pub company: Option<String>,
    /// The source system's id.
    pub external_id: Option<String>,
    /// Address.
    pub address: Option<Address>,
    /// Language.
    pub lang: Option<String>,
    /// Birthday.
    pub birthday: Option<Date>,
    /// Custom properties (strings, numbers or booleans).
    pub properties: BTreeMap<String, Value>,
    /// Tags to add.
    pub tags: Vec<String>,
    /// Tags to remove.
    pub remove_tags: Vec<String>,
    /// Opt-in or opt-out to force, if any.
    pub consent: Option<Consent>,
}

impl fmt::Debug for ContactUpsert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContactUpsert")
            .field("tags", &self.tags)
            .field("remove_tags", &self.remove_tags)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .field("consent", &self.consent)
            .finish_non_exhaustive()
    }
}

/// External event types (`contactExtEventType`) a shop sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `PURCHASE`.
    Purchase,
    /// `CART`.
    Cart,
    /// `CANCELLATION`.
    Cancellation,
    /// `OTHER`.
    Other,
    /// `SURVEY`.
    Survey,
    /// `LOGIN`.
    Login,
    /// `VISIT`.
    Visit,
    /// `RETURN`.
    Return,
    /// `OFFER`.
    Offer,
}

impl EventType {
    /// SALESmanago's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchase => "PURCHASE",
            Self::Cart => "CART",
            Self::Cancellation => "CANCELLATION",
            Self::Other => "OTHER",
            Self::Survey => "SURVEY",
            Self::Login => "LOGIN",
            Self::Visit => "VISIT",
            Self::Return => "RETURN",
            Self::Offer => "OFFER",
        }
    }
}

/// One external event (`/api/v2/contact/addContactExtEvent`). Its `Debug` hides the address.
#[derive(Clone, PartialEq)]
pub struct ExternalEvent {
    /// The contact's e-mail. Personal data.
    pub email: String,
    /// Type.
    pub kind: EventType,
    /// When it happened.
    pub date: OffsetDateTime,
    /// Description.
    pub description: Option<String>,
    /// Product ids (sent comma-separated).
    pub products: Vec<String>,
    /// Location (store, page).
    pub location: Option<String>,
    /// Value (e.g. the order total).
    pub value: Option<f64>,
    /// Free-text details, sent as `detail1` … `detail20` (more are dropped).
    pub details: Vec<String>,
    /// The shop's id of the event.
    pub external_id: Option<String>,
    /// The shop's domain.
    pub shop_domain: Option<String>,
}

impl fmt::Debug for ExternalEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalEvent")
            .field("kind", &self.kind)
            .field("date", &self.date)
            .field("external_id", &self.external_id)
            .finish_non_exhaustive()
    }
}

/// The SALESmanago client.
#[derive(Debug, Clone)]
pub struct SalesmanagoClient {
    http: ProviderClient,
    config: SalesmanagoConfig,
}

/// Replaces every word that looks like an e-mail address with `<email>`.
fn mask_emails(text: &str) -> String {
    text.split(' ')
        .map(|word| if word.contains('@') { "<email>" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

/// SALESmanago's texts, masked and joined.
fn message_text(answer: &Answer) -> String {
    let texts = answer.message.texts();
    if texts.is_empty() {
        "no message".to_owned()
    } else {
        mask_emails(&texts.join("; "))
    }
}

/// Whether a `success: false` answer is the account's rate limit.
fn is_limit_exceeded(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("limit exceeded") || lower.contains("limit has been exceeded")
}

fn error(operation: &str, reply: &ErrorReply, class: Class) -> CallError {
    let detail = match serde_json::from_slice::<Answer>(&reply.body) {
        Ok(answer) => message_text(&answer),
        Err(_) => mask_emails(&excerpt(&reply.body)),
    };
    vendor_error(PROVIDER, operation, reply, class, &detail)
}

fn encode(operation: &str, body: &impl Serialize) -> Result<Map<String, Value>, CallError> {
    match serde_json::to_value(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(CallError::Permanent(format!(
            "{PROVIDER} {operation}: the request is not a JSON object"
        ))),
        Err(e) => Err(CallError::Permanent(format!(
            "{PROVIDER} {operation}: cannot encode: {e}"
        ))),
    }
}

fn unix_millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl SalesmanagoClient {
    /// A client over the shared HTTP client (label [`PROVIDER`]).
    pub fn new(http: ProviderClient, config: SalesmanagoConfig) -> Self {
        Self { http, config }
    }

    /// Sends `payload` with fresh authentication fields on every try and checks the
    /// `success` envelope.
    async fn call(
        &self,
        operation: &'static str,
        path: &str,
        payload: &Map<String, Value>,
    ) -> Result<Answer, CallError> {
        let url = self.http.url(path)?;
        let reply: Reply = self
            .http
            .send(
                operation,
                |http| {
                    let api_key = random_api_key();
                    let sha = signature(&api_key, &self.config.client_id, self.config.api_secret.expose_secret());
                    let auth = Auth {
                        client_id: &self.config.client_id,
                        api_key,
                        request_time: unix_millis(OffsetDateTime::now_utc()),
                        sha,
                        owner: &self.config.owner,
                    };
                    http.request(Method::POST, url.clone())
                        .header(reqwest::header::ACCEPT, "application/json")
                        .header(reqwest::header::CONTENT_TYPE, "application/json;charset=UTF-8")
                        .body(signed_body(payload, &auth))
                },
                |reply, class| error(operation, reply, class),
            )
            .await?;
        let answer: Answer = serde_json::from_slice(&reply.body)
            .map_err(|e| CallError::Retriable(format!("{PROVIDER} {operation}: unexpected answer: {e}")))?;
        if answer.success == Some(true) {
            return Ok(answer);
        }
        let text = message_text(&answer);
        if is_limit_exceeded(&text) {
            let pause = self.config.limit_pause;
            tracing::warn!(
                provider = PROVIDER,
                operation,
                pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                "SALESmanago reports its API limit exceeded; pausing the destination."
            );
            self.http.budget().pause_for(pause).await;
            return Err(CallError::RateLimited { retry_in: pause });
        }
        Err(CallError::Permanent(format!(
            "{PROVIDER} {operation}: success=false: {text}"
        )))
    }

    /// `POST /api/contact/upsert`: creates or updates the contact with this e-mail; returns
    /// SALESmanago's contact id.
    pub async fn upsert_contact(&self, contact: &ContactUpsert) -> Result<String, CallError> {
        const OPERATION: &str = "upsert_contact";
        let address = contact.address.as_ref().map(|a| WireAddress {
            street_address: a.street_address.as_deref(),
            zip_code: a.zip_code.as_deref(),
            city: a.city.as_deref(),
            country: a.country.as_deref(),
        });
        let body = UpsertBody {
            contact: WireContact {
                email: &contact.email,
                name: contact.name.as_deref(),
                phone: contact.phone.as_deref(),
                company: contact.company.as_deref(),
                external_id: contact.external_id.as_deref(),
                address,
            },
            tags: &contact.tags,
            remove_tags: &contact.remove_tags,
            properties: &contact.properties,
            lang: contact.lang.as_deref(),
            birthday: contact
                .birthday
                .and_then(|d| d.format(format_description!("[year][month][day]")).ok()),
            force_opt_in: contact.consent == Some(Consent::OptIn),
            force_opt_out: contact.consent == Some(Consent::OptOut),
        };
        let payload = encode(OPERATION, &body)?;
        let answer = self.call(OPERATION, "/api/contact/upsert", &payload).await?;
        Ok(id_text(answer.contact_id.as_ref()))
    }

    /// `POST /api/v2/contact/addContactExtEvent`: adds the event to the contact with this
    /// e-mail; returns SALESmanago's event id. Not idempotent: every call adds an event.
    pub async fn add_external_event(&self, event: &ExternalEvent) -> Result<String, CallError> {
        const OPERATION: &str = "add_external_event";
        let details: BTreeMap<String, &str> = event
            .details
            .iter()
            .take(MAX_DETAILS)
            .enumerate()
            .map(|(i, detail)| (format!("detail{}", i + 1), detail.as_str()))
            .collect();
        let body = EventBody {
            email: &event.email,
            contact_event: WireEvent {
                date: unix_millis(event.date),
                contact_ext_event_type: event.kind.as_str(),
                description: event.description.as_deref(),
                products: (!event.products.is_empty()).then(|| event.products.join(",")),
                location: event.location.as_deref(),
                value: event.value,
                external_id: event.external_id.as_deref(),
                shop_domain: event.shop_domain.as_deref(),
                details,
            },
        };
        let payload = encode(OPERATION, &body)?;
        let answer = self
            .call(OPERATION, "/api/v2/contact/addContactExtEvent", &payload)
            .await?;
        Ok(id_text(answer.event_id.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use serde_json::json;

    use super::*;

    #[test]
    fn error_texts_keep_the_message_but_mask_addresses() {
        let reply = ErrorReply {
            status: StatusCode::BAD_REQUEST,
            body: br#"{"success":false,"message":["Contact jana@example.com is invalid"]}"#
                .to_vec()
                .into(),
        };
        let text = error("upsert_contact", &reply, Class::Permanent).to_string();
        assert!(text.contains("Contact <email> is invalid"), "{text}");
        assert!(!text.contains("jana@"), "{text}");
    }

    #[test]
    fn limit_messages_are_recognised() {
        assert!(is_limit_exceeded("API limit exceeded"));
        assert!(is_limit_exceeded("Daily API Limit has been exceeded"));
        assert!(!is_limit_exceeded("Not authenticated"));
    }

    #[test]
    fn upsert_body_has_salesmanagos_shape() {
        let properties: BTreeMap<String, Value> = [("tier".to_owned(), json!("gold"))].into_iter().collect();
        let tags = vec!["NEWSLETTER".to_owned()];
        let remove = vec!["GUEST".to_owned()];
        let body = UpsertBody {
            contact: WireContact {
                email: "a@example.com",
                name: Some("Ann Lee"),
                phone: None,
                company: None,
                external_id: Some("c-1"),
                address: Some(WireAddress {
                    street_address: None,
                    zip_code: None,
                    city: Some("Brno"),
                    country: Some("CZ"),
                }),
            },
            tags: &tags,
            remove_tags: &remove,
            properties: &properties,
            lang: Some("cs"),
            birthday: None,
            force_opt_in: true,
            force_opt_out: false,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap_or_default(),
            json!({
                "contact": {"email": "a@example.com", "name": "Ann Lee", "externalId": "c-1",
                            "address": {"city": "Brno", "country": "CZ"}},
                "tags": ["NEWSLETTER"], "removeTags": ["GUEST"], "properties": {"tier": "gold"},
                "lang": "cs", "forceOptIn": true
            })
        );
    }

    #[test]
    fn signed_bodies_carry_the_auth_fields() {
        let payload = encode("x", &json!({"email": "a@example.com"})).unwrap_or_default();
        let auth = Auth {
            client_id: "client",
            api_key: "key".to_owned(),
            request_time: 1_700_000_000_000,
            sha: signature("key", "client", "secret"),
            owner: "owner@example.com",
        };
        let body: Value = serde_json::from_slice(&signed_body(&payload, &auth)).unwrap_or_default();
        assert_eq!(body["clientId"], "client");
        assert_eq!(body["apiKey"], "key");
        assert_eq!(body["requestTime"], 1_700_000_000_000_i64);
        assert_eq!(body["sha"], signature("key", "client", "secret"));
        assert_eq!(body["owner"], "owner@example.com");
        assert_eq!(body["email"], "a@example.com");
    }

    #[test]
    fn debug_output_hides_personal_data() {
        let contact = ContactUpsert {
            email: "a@example.com".into(),
            name: Some("Ann".into()),
            ..ContactUpsert::default()
        };
        let event = ExternalEvent {
            email: "a@example.com".into(),
            kind: EventType::Cart,
            date: OffsetDateTime::UNIX_EPOCH,
            description: None,
            products: Vec::new(),
            location: None,
            value: None,
            details: Vec::new(),
            external_id: None,
            shop_domain: None,
        };
        let config = SalesmanagoConfig {
            client_id: "c".into(),
            api_secret: SecretString::from("s3cret"),
            owner: "owner@example.com".into(),
            limit_pause: Duration::from_secs(60),
        };
        for text in [format!("{contact:?}"), format!("{event:?}"), format!("{config:?}")] {
            assert!(
                !text.contains("example.com") && !text.contains("s3cret") && !text.contains("Ann"),
                "{text}"
            );
        }
    }
}
