//! Black-box tests of the sandbox over real HTTP: a sandbox from `spawn`, a `reqwest` client,
//! and a small OAuth 1.0a signer written here independently of the sandbox's verifier.

use std::sync::Once;

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sha1::Sha1;
use switchyard_sandbox::{
    DEFAULT_ECOMAIL_API_KEY, DEFAULT_SPOTLER_CONSUMER_KEY, DEFAULT_SPOTLER_CONSUMER_SECRET, Fault, Provider,
    RunningSandbox, STATUS_SUBSCRIBED, STATUS_UNCONFIRMED, STATUS_UNSUBSCRIBED, SandboxConfig, spawn,
};

// ---------------------------------------------------------------------------------------------
// Harness

const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn pct(text: &str) -> String {
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// An `Authorization: OAuth ...` header for a one-legged HMAC-SHA1 request (RFC 5849).
fn oauth_header(method: &Method, url: &str, key: &str, secret: &str, timestamp: i64) -> String {
    let parsed = url::Url::parse(url).expect("test URL parses");
    let base_url = format!(
        "{}://{}{}{}",
        parsed.scheme(),
        parsed.host_str().unwrap_or_default(),
        parsed.port().map(|p| format!(":{p}")).unwrap_or_default(),
        parsed.path()
    );
    let nonce = format!("{:016x}", rand_nonce());
    let oauth = [
        ("oauth_consumer_key", key.to_owned()),
        ("oauth_nonce", nonce),
        ("oauth_signature_method", "HMAC-SHA1".to_owned()),
        ("oauth_timestamp", timestamp.to_string()),
        ("oauth_version", "1.0".to_owned()),
    ];
    let mut params: Vec<(String, String)> = oauth
        .iter()
        .map(|(k, v)| (pct(k), pct(v)))
        .chain(parsed.query_pairs().map(|(k, v)| (pct(&k), pct(&v))))
        .collect();
    params.sort();
    let normalized = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let base = format!("{}&{}&{}", method.as_str(), pct(&base_url), pct(&normalized));
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{}&", pct(secret)).as_bytes()).expect("any key length");
    mac.update(base.as_bytes());
    let signature = BASE64.encode(mac.finalize().into_bytes());
    let mut header: Vec<String> = oauth.iter().map(|(k, v)| format!("{k}=\"{}\"", pct(v))).collect();
    header.push(format!("oauth_signature=\"{}\"", pct(&signature)));
    format!("OAuth {}", header.join(", "))
}

fn rand_nonce() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    COUNTER.fetch_add(1, Ordering::Relaxed) ^ 0x5eed_0000_0000
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// reqwest (built with `rustls-no-provider`) needs a process-wide crypto provider before a
/// client can be built, even for plain `http://` use.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::ring::default_provider().install_default().is_err() {
            // Another test binary component installed one first; that one is fine too.
        }
    });
}

struct Harness {
    sandbox: RunningSandbox,
    http: reqwest::Client,
}

async fn start() -> Harness {
    install_crypto_provider();
    let sandbox = spawn(SandboxConfig::for_tests()).await.expect("sandbox starts");
    let http = reqwest::Client::builder().no_proxy().build().expect("client builds");
    Harness { sandbox, http }
}

impl Harness {
    fn spotler_url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.spotler_base_url())
    }

    /// A Spotler request signed with the sandbox's test credentials.
    fn spotler(&self, method: Method, path: &str) -> RequestBuilder {
        self.spotler_signed_with(method, path, DEFAULT_SPOTLER_CONSUMER_SECRET)
    }

    fn spotler_signed_with(&self, method: Method, path: &str, secret: &str) -> RequestBuilder {
        let url = self.spotler_url(path);
        let header = oauth_header(&method, &url, DEFAULT_SPOTLER_CONSUMER_KEY, secret, now_unix());
        self.http
            .request(method, url)
            .header("Authorization", header)
            .header("Accept", "application/json")
    }

    /// An Ecomail request with the sandbox's test API key.
    fn ecomail(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.sandbox.ecomail_base_url()))
            .header("key", DEFAULT_ECOMAIL_API_KEY)
    }

    fn control(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.sandbox.base_url()))
    }

    async fn insert_contact(&self, body: Value) -> Response {
        self.spotler(Method::POST, "/contact")
            .json(&body)
            .send()
            .await
            .expect("request completes")
    }

    async fn get_contact(&self, external_id: &str) -> (StatusCode, Value) {
        let response = self
            .spotler(Method::GET, &format!("/contact/{external_id}"))
            .send()
            .await
            .expect("request completes");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn subscribe(&self, list_id: u64, body: Value) -> (StatusCode, Value) {
        let response = self
            .ecomail(Method::POST, &format!("/lists/{list_id}/subscribe"))
            .json(&body)
            .send()
            .await
            .expect("request completes");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

// ---------------------------------------------------------------------------------------------
// Spotler

#[tokio::test]
async fn spotler_accepts_a_correctly_signed_request() {
    let h = start().await;
    let (status, body) = json_of(h.spotler(Method::GET, "/contact/properties/list").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(names.contains(&"email") && names.contains(&"permissions"), "{names:?}");
    let permissions = body
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "permissions")
        .unwrap();
    assert_eq!(permissions["type"], "set");
    assert_eq!(
        permissions["entries"][1],
        json!({"bit": 2, "description": "Offers", "rank": 2})
    );
}

#[tokio::test]
async fn spotler_signs_query_parameters() {
    let h = start().await;
    let response = h
        .spotler(Method::GET, "/contact/properties/list?after=0&pageSize=10")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn spotler_rejects_tampered_missing_and_wrongly_keyed_signatures() {
    let h = start().await;
    // Signed for one path, sent to another.
    let url = h.spotler_url("/contact/properties/list");
    let header = oauth_header(
        &Method::GET,
        &url,
        DEFAULT_SPOTLER_CONSUMER_KEY,
        DEFAULT_SPOTLER_CONSUMER_SECRET,
        now_unix(),
    );
    let tampered = h
        .http
        .get(h.spotler_url("/contact/properties/list?extra=1"))
        .header("Authorization", header)
        .send()
        .await
        .unwrap();
    let wrong_secret = h
        .spotler_signed_with(Method::GET, "/contact/properties/list", "not-the-secret")
        .send()
        .await
        .unwrap();
    let missing = h
        .http
        .get(h.spotler_url("/contact/properties/list"))
        .send()
        .await
        .unwrap();
    let stale_header = oauth_header(
        &Method::GET,
        &url,
        DEFAULT_SPOTLER_CONSUMER_KEY,
        DEFAULT_SPOTLER_CONSUMER_SECRET,
        now_unix() - 3600,
    );
    let stale = h
        .http
        .get(&url)
        .header("Authorization", stale_header)
        .send()
        .await
        .unwrap();
    for response in [tampered, wrong_secret, missing, stale] {
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["errorType"], "NOT_AUTHORIZED");
        assert!(body["message"].is_string());
    }
}

#[tokio::test]
async fn spotler_insert_then_update_merges_properties() {
    let h = start().await;
    let response = h
        .insert_contact(json!({"contact": {"externalId": "c-1", "properties": {
            "email": "ann@example.com", "firstName": "Ann", "city": "Brno"
        }}}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = h
        .insert_contact(json!({"update": true, "contact": {"externalId": "c-1", "properties": {
            "lastName": "Lee", "permissions": [{"bit": 1, "enabled": true}]
        }}}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let (status, contact) = h.get_contact("c-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(contact["externalId"], "c-1");
    assert_eq!(
        contact["properties"],
        json!({"email": "ann@example.com", "firstName": "Ann", "city": "Brno", "lastName": "Lee",
               "permissions": [{"bit": 1, "enabled": true}]})
    );
    assert_eq!(contact["temporary"], false);
    assert_eq!(contact["testGroup"], false);
    assert!(contact["created"].is_string() && contact["lastChanged"].is_string());
    assert!(contact["encryptedId"].as_str().is_some_and(|id| !id.is_empty()));

    // purge=true keeps only what is sent; PUT behaves the same way.
    let response = h
        .spotler(Method::PUT, "/contact/c-1")
        .json(&json!({"purge": true, "contact": {"properties": {"email": "ann@example.com"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (_, contact) = h.get_contact("c-1").await;
    assert_eq!(contact["properties"], json!({"email": "ann@example.com"}));
}

#[tokio::test]
async fn spotler_new_external_id_with_a_known_email_merges_into_the_existing_contact() {
    let h = start().await;
    h.insert_contact(json!({"contact": {"externalId": "crm-1", "properties": {"email": "Bob@Example.com"}}}))
        .await;
    let response = h
        .insert_contact(json!({"contact": {"externalId": "shop-9", "properties": {
            "email": "bob@example.COM", "firstName": "Bob"
        }}}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let contacts = h.sandbox.state.spotler_contacts();
    assert_eq!(contacts.len(), 1, "no second contact: {contacts:?}");
    assert_eq!(contacts[0].external_id, "crm-1");
    assert_eq!(contacts[0].aliases, ["shop-9"]);
    assert_eq!(contacts[0].properties["firstName"], "Bob");
    // The alias resolves to the same contact over the API.
    let (status, contact) = h.get_contact("shop-9").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(contact["externalId"], "crm-1");
}

#[tokio::test]
async fn spotler_insert_of_an_existing_contact_without_update_conflicts() {
    let h = start().await;
    let body = json!({"contact": {"externalId": "c-2", "properties": {"email": "c2@example.com"}}});
    assert_eq!(h.insert_contact(body.clone()).await.status(), StatusCode::NO_CONTENT);
    let (status, error) = json_of(h.insert_contact(body).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["errorType"], "CONTACT_ALREADY_EXISTS");
}

#[tokio::test]
async fn spotler_validates_contacts() {
    let h = start().await;
    let cases = [
        (
            json!({"contact": {"properties": {"email": "a@example.com"}}}),
            "INVALID_PARAMS",
        ),
        (
            json!({"contact": {"externalId": "x", "properties": {"email": "nope"}}}),
            "INVALID_PROPERTY",
        ),
        (
            json!({"contact": {"externalId": "x", "properties": {"permissions": [{"bit": "1"}]}}}),
            "INVALID_PROPERTY",
        ),
        (json!({"contact": "not an object"}), "INVALID_PARAMS"),
    ];
    for (body, error_type) in cases {
        let (status, error) = json_of(h.insert_contact(body.clone()).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["errorType"], error_type, "{body}");
    }
    let (_, error) = json_of(
        h.insert_contact(json!({"contact": {"externalId": "x", "properties": {"email": "nope"}}}))
            .await,
    )
    .await;
    assert_eq!(error["message"], "Email is invalid");
    let response = h
        .spotler(Method::POST, "/contact")
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(h.sandbox.state.spotler_contacts().is_empty());
}

#[tokio::test]
async fn spotler_contact_list_reports_a_code_per_contact() {
    let h = start().await;
    h.insert_contact(json!({"contact": {"externalId": "old", "properties": {"email": "old@example.com"}}}))
        .await;
    let (status, results) = json_of(
        h.spotler(Method::POST, "/contact/list")
            .json(&json!({"contacts": [
                {"externalId": "new", "properties": {"email": "new@example.com"}},
                {"externalId": "old", "properties": {"firstName": "Old"}},
                {"externalId": "bad", "properties": {"email": "bad"}},
            ]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let codes: Vec<(&str, &str)> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["externalId"].as_str().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [
            ("new", "OK"),
            ("old", "CONTACT_ALREADY_EXISTS"),
            ("bad", "PROPERTY_INVALID")
        ]
    );

    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"externalId": format!("n{i}"), "properties": {}}))
        .collect();
    let (status, error) = json_of(
        h.spotler(Method::POST, "/contact/list")
            .json(&json!({"contacts": too_many}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["message"], "Too many contacts provided (max is 100)");
}

#[tokio::test]
async fn spotler_anonymize_replaces_personal_data() {
    let h = start().await;
    h.insert_contact(json!({"contact": {"externalId": "a-1", "properties": {
        "email": "private@example.com", "firstName": "Pat", "phone": "+420123456789"
    }}}))
    .await;
    let response = h.spotler(Method::PUT, "/contact/anonymize/a-1").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let contact = h.sandbox.state.spotler_contact("a-1").unwrap();
    assert!(contact.anonymized);
    let email = contact.properties["email"].as_str().unwrap();
    assert_ne!(email, "private@example.com");
    assert!(email.starts_with("anonymized-"), "{email}");
    assert!(contact.properties.get("firstName").is_none());
    assert!(contact.properties.get("phone").is_none());
}

#[tokio::test]
async fn spotler_inactivate_switches_every_channel_off() {
    let h = start().await;
    h.insert_contact(
        json!({"contact": {"externalId": "i-1", "properties": {"email": "i@example.com"},
        "channels": [{"name": "EMAIL", "value": true}, {"name": "SMS", "value": true}]}}),
    )
    .await;
    let response = h.spotler(Method::PUT, "/contact/inactivate/i-1").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (_, contact) = h.get_contact("i-1").await;
    assert_eq!(
        contact["channels"],
        json!([{"name": "EMAIL", "value": false}, {"name": "SMS", "value": false}])
    );
    assert!(h.sandbox.state.spotler_contact("i-1").unwrap().inactive);
}

#[tokio::test]
async fn spotler_unknown_contacts_are_404() {
    let h = start().await;
    let body = json!({"contact": {"properties": {"firstName": "X"}}});
    let responses = [
        h.spotler(Method::GET, "/contact/missing").send().await.unwrap(),
        h.spotler(Method::PUT, "/contact/missing")
            .json(&body)
            .send()
            .await
            .unwrap(),
        h.spotler(Method::PUT, "/contact/anonymize/missing")
            .send()
            .await
            .unwrap(),
        h.spotler(Method::PUT, "/contact/inactivate/missing")
            .send()
            .await
            .unwrap(),
    ];
    for response in responses {
        let (status, error) = json_of(response).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            error,
            json!({"errorType": "CONTACT_NOT_FOUND", "message": "Given contact not found"})
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Ecomail

#[tokio::test]
async fn ecomail_requires_the_api_key() {
    let h = start().await;
    let url = format!("{}/lists/1/subscribe", h.sandbox.ecomail_base_url());
    let body = json!({"subscriber_data": {"email": "a@example.cz"}});
    let missing = h.http.post(&url).json(&body).send().await.unwrap();
    let wrong = h
        .http
        .post(&url)
        .header("key", "wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    for response in [missing, wrong] {
        let (status, error) = json_of(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(error, json!({"message": "Unauthorized"}));
    }
    assert!(h.sandbox.state.ecomail_subscribers().is_empty());
}

#[tokio::test]
async fn ecomail_subscribe_creates_then_reports_already_subscribed_without_update_existing() {
    let h = start().await;
    let (status, created) = h
        .subscribe(
            7,
            json!({"subscriber_data": {"email": "Eva@Example.cz", "name": "Eva"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(created["email"], "eva@example.cz");
    assert_eq!(created["name"], "Eva");
    assert_eq!(created["bounce_soft"], 0);
    assert_eq!(created["bounce_message"], Value::Null);
    assert!(created.get("already_subscribed").is_none());
    let inserted_at = created["inserted_at"].as_str().unwrap();
    assert_eq!(inserted_at.len(), "YYYY-MM-DD HH:MM:SS".len(), "{inserted_at}");
    // No skip_confirmation: double opt-in pending.
    assert_eq!(
        h.sandbox.state.ecomail_subscriber(7, "eva@example.cz").unwrap().status,
        STATUS_UNCONFIRMED
    );

    let (status, again) = h
        .subscribe(
            7,
            json!({"subscriber_data": {"email": "eva@example.cz", "name": "Changed"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["already_subscribed"], true);
    assert_eq!(again["name"], "Eva");
    assert_eq!(again["id"], created["id"]);
}

#[tokio::test]
async fn ecomail_update_existing_merges_custom_fields_key_by_key() {
    let h = start().await;
    h.subscribe(
        1,
        json!({"skip_confirmation": true, "subscriber_data": {
            "email": "jan@example.cz", "name": "Jan",
            "custom_fields": {"ellity_credit": "100", "ellity_pin": "1234"}, "tags": ["vip"]
        }}),
    )
    .await;
    let (status, updated) = h
        .subscribe(
            1,
            json!({"update_existing": true, "subscriber_data": {
                "email": "jan@example.cz", "surname": "Novak",
                "custom_fields": {"ELLITY_CREDIT": "150", "expiry": {"value": "2030-12-31", "type": "date"}},
                "tags": ["loyal"]
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(updated.get("already_subscribed").is_none());

    let (status, body) = json_of(
        h.ecomail(Method::GET, "/lists/1/subscriber/JAN@example.cz")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let subscriber = &body["subscriber"];
    assert_eq!(subscriber["name"], "Jan");
    assert_eq!(subscriber["surname"], "Novak");
    assert_eq!(subscriber["status"], STATUS_SUBSCRIBED);
    assert_eq!(subscriber["list_id"], 1);
    assert_eq!(
        subscriber["custom_fields"],
        json!({"ellity_credit": "150", "ellity_pin": "1234", "expiry": {"value": "2030-12-31", "type": "date"}})
    );
    assert_eq!(subscriber["tags"], json!(["vip", "loyal"]));
}

#[tokio::test]
async fn ecomail_custom_field_keys_are_normalised_and_duplicates_rejected() {
    let h = start().await;
    let (status, _) = h
        .subscribe(
            1,
            json!({"subscriber_data": {"email": "k@example.cz", "custom_fields": {" Tier ": "gold"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let stored = h.sandbox.state.ecomail_subscriber(1, "k@example.cz").unwrap();
    assert_eq!(stored.custom_fields["tier"], "gold");

    let (status, error) = h
        .subscribe(
            1,
            json!({"subscriber_data": {"email": "d@example.cz", "custom_fields": {"Tier": "a", "tier": "b"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["message"], "The given data was invalid.");
    assert!(error["errors"]["subscriber_data.custom_fields"].is_array(), "{error}");
    assert!(h.sandbox.state.ecomail_subscriber(1, "d@example.cz").is_none());
}

#[tokio::test]
async fn ecomail_validation_errors_are_laravel_style() {
    let h = start().await;
    let (status, error) = h
        .subscribe(1, json!({"subscriber_data": {"email": "not-an-email", "gender": "x"}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error["errors"]["subscriber_data.email"],
        json!(["The subscriber data.email must be a valid email address."])
    );
    assert!(error["errors"]["subscriber_data.gender"].is_array());
    let (status, _) = h
        .subscribe(
            1,
            json!({"subscriber_data": {"email": "t@example.cz", "tags": ["x".repeat(51)]}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn ecomail_tracker_event_needs_a_known_subscriber_and_is_listed() {
    let h = start().await;
    let event = json!({"event": {"email": "ev@example.cz", "category": "ellity", "action": "change",
        "label": "credit", "value": {"credit": 150}}});
    let (status, error) = json_of(
        h.ecomail(Method::POST, "/tracker/events")
            .json(&event)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error["errors"]["event.email"].is_array());

    h.subscribe(3, json!({"subscriber_data": {"email": "ev@example.cz"}}))
        .await;
    let (status, stored) = json_of(
        h.ecomail(Method::POST, "/tracker/events")
            .json(&event)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["email"], "ev@example.cz");
    assert_eq!(stored["label"], "credit");
    assert_eq!(stored["value"], r#"{"credit":150}"#);
    assert!(stored["id"].is_u64());

    let (status, page) = json_of(
        h.ecomail(Method::GET, "/subscribers/ev@example.cz/events?per_page=10")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 1);
    assert_eq!(page["per_page"], 10);
    assert_eq!(page["current_page"], 1);
    assert_eq!(page["data"][0]["action"], "change");
    assert!(page["data"][0]["timestamp"].is_string());
    assert_eq!(h.sandbox.state.ecomail_events().len(), 1);
}

#[tokio::test]
async fn ecomail_update_unsubscribe_and_bulk() {
    let h = start().await;
    let (status, _) = json_of(
        h.ecomail(Method::PUT, "/lists/2/update-subscriber")
            .json(&json!({"email": "nobody@example.cz", "subscriber_data": {"name": "N"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, bulk) = json_of(
        h.ecomail(Method::POST, "/lists/2/subscribe-bulk")
            .json(&json!({"subscriber_data": [{"email": "b1@example.cz"}, {"email": "b2@example.cz"}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bulk, json!({"inserts": 2}));
    assert_eq!(
        h.sandbox.state.ecomail_subscriber(2, "b1@example.cz").unwrap().status,
        STATUS_SUBSCRIBED
    );

    let (status, updated) = json_of(
        h.ecomail(Method::PUT, "/lists/2/update-subscriber")
            .json(&json!({"email": "b1@example.cz", "subscriber_data": {"name": "Bea", "custom_fields": {"X": 1}}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["subscriber"]["name"], "Bea");
    assert_eq!(updated["subscriber"]["custom_fields"], json!({"x": 1}));

    let (status, _) = json_of(
        h.ecomail(Method::DELETE, "/lists/2/unsubscribe")
            .json(&json!({"email": "b2@example.cz"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        h.sandbox.state.ecomail_subscriber(2, "b2@example.cz").unwrap().status,
        STATUS_UNSUBSCRIBED
    );

    let (status, error) = json_of(
        h.ecomail(Method::GET, "/lists/2/subscriber/zzz@example.cz")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error, json!({"message": "Subscriber not found"}));
}

#[tokio::test]
async fn update_subscriber_bulk_updates_only_subscribers_of_the_list_and_counts_them() {
    let h = start().await;
    for email in ["u1@example.cz", "u2@example.cz"] {
        let (status, _) = h.subscribe(3, json!({"subscriber_data": {"email": email}})).await;
        assert_eq!(status, StatusCode::OK);
    }
    h.ecomail(Method::DELETE, "/lists/3/unsubscribe")
        .json(&json!({"email": "u2@example.cz"}))
        .send()
        .await
        .unwrap();
    let (status, answer) = json_of(
        h.ecomail(Method::PUT, "/lists/3/update-subscriber-bulk")
            .json(&json!({"subscriber_data": [
                {"email": "U1@example.cz", "custom_fields": {"ellity_pin": "1234"}},
                {"email": "u2@example.cz", "custom_fields": {"ellity_pin": "5678"}},
                {"email": "nobody@example.cz", "custom_fields": {"ellity_pin": "0000"}}
            ]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"updates": 2}));
    let u1 = h.sandbox.state.ecomail_subscriber(3, "u1@example.cz").unwrap();
    assert_eq!(u1.custom_fields.get("ellity_pin"), Some(&json!("1234")));
    // Updated, but not resubscribed unless asked to; nobody is added.
    let u2 = h.sandbox.state.ecomail_subscriber(3, "u2@example.cz").unwrap();
    assert_eq!(
        (u2.status, u2.custom_fields.get("ellity_pin")),
        (STATUS_UNSUBSCRIBED, Some(&json!("5678")))
    );
    assert!(h.sandbox.state.ecomail_subscriber(3, "nobody@example.cz").is_none());

    let (_, answer) = json_of(
        h.ecomail(Method::PUT, "/lists/3/update-subscriber-bulk")
            .json(&json!({"subscriber_data": [{"email": "u2@example.cz"}], "allow_resubscribe": true}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer, json!({"updates": 1}));
    assert_eq!(
        h.sandbox.state.ecomail_subscriber(3, "u2@example.cz").unwrap().status,
        STATUS_SUBSCRIBED
    );

    let (status, error) = json_of(
        h.ecomail(Method::PUT, "/lists/3/update-subscriber-bulk")
            .json(&json!({"subscriber_data": [{"custom_fields": {}}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error["errors"].get("subscriber_data.0.email").is_some(), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Rate limits, faults, inspection

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_and_stores_nothing() {
    let h = start().await;
    h.sandbox.state.set_limit(Provider::Ecomail, Some("2/min")).unwrap();
    for i in 0..2 {
        let (status, _) = h
            .subscribe(1, json!({"subscriber_data": {"email": format!("r{i}@example.cz")}}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let response = h
        .ecomail(Method::POST, "/lists/1/subscribe")
        .json(&json!({"subscriber_data": {"email": "r2@example.cz"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"message": "Too Many Attempts."})
    );
    assert!(h.sandbox.state.ecomail_subscriber(1, "r2@example.cz").is_none());

    // Spotler's envelope, set over HTTP.
    let response = h
        .control(Method::PUT, "/_sandbox/limits/spotler")
        .json(&json!({"rate": "1/h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["rate"], "1/h");
    h.spotler(Method::GET, "/contact/properties/list").send().await.unwrap();
    let (status, error) = json_of(h.spotler(Method::GET, "/contact/properties/list").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        error,
        json!({"errorType": "BACKEND_EXCEPTION", "message": "Too many requests"})
    );
}

#[tokio::test]
async fn forced_500_applies_to_n_calls_then_the_api_works_again() {
    let h = start().await;
    let response = h
        .control(Method::PUT, "/_sandbox/faults/spotler")
        .json(&json!({"force": {"status": 500, "count": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = json!({"contact": {"externalId": "f-1", "properties": {"email": "f@example.com"}}});
    for _ in 0..2 {
        let (status, error) = json_of(h.insert_contact(body.clone()).await).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error["errorType"], "BACKEND_EXCEPTION");
        assert!(h.sandbox.state.spotler_contact("f-1").is_none(), "no state change");
    }
    assert_eq!(h.insert_contact(body).await.status(), StatusCode::NO_CONTENT);
    assert!(h.sandbox.state.spotler_contact("f-1").is_some());
    assert_eq!(h.sandbox.state.fault(Provider::Spotler), Fault::default());
}

#[tokio::test]
async fn forced_429_and_400_use_the_provider_envelopes() {
    let h = start().await;
    h.sandbox
        .state
        .set_fault(Provider::Ecomail, Fault::forced(429, 1).with_retry_after(5))
        .unwrap();
    let response = h
        .ecomail(Method::GET, "/lists/1/subscriber/a@b.cz")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "5");

    h.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::forced(400, 1))
        .unwrap();
    let (status, error) = json_of(h.spotler(Method::GET, "/contact/x").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error,
        json!({"errorType": "INVALID_PARAMS", "message": "Forced failure"})
    );

    h.sandbox
        .state
        .set_fault(Provider::Ecomail, Fault::error_rate(1.0))
        .unwrap();
    let (status, error) = json_of(
        h.ecomail(Method::GET, "/lists/1/subscriber/a@b.cz")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error, json!({"message": "Server Error"}));
}

#[tokio::test]
async fn reset_connection_closes_the_connection_without_an_answer() {
    let h = start().await;
    h.sandbox
        .state
        .set_fault(Provider::Ecomail, Fault::reset_connections(1))
        .unwrap();
    let result = h
        .ecomail(Method::POST, "/lists/1/subscribe")
        .json(&json!({"subscriber_data": {"email": "x@example.cz"}}))
        .send()
        .await;
    assert!(result.is_err(), "expected a connection error, got {result:?}");
    assert!(h.sandbox.state.ecomail_subscriber(1, "x@example.cz").is_none());
    let (status, _) = h
        .subscribe(1, json!({"subscriber_data": {"email": "x@example.cz"}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let statuses: Vec<u16> = h
        .sandbox
        .state
        .calls(Provider::Ecomail)
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [0, 200]);
}

#[tokio::test]
async fn injected_latency_delays_the_answer() {
    let h = start().await;
    h.sandbox
        .state
        .set_fault(Provider::Ecomail, Fault::latency(150))
        .unwrap();
    let started = tokio::time::Instant::now();
    h.ecomail(Method::GET, "/lists/1/subscriber/a@b.cz")
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));
}

#[tokio::test]
async fn calls_are_logged_with_timestamps_bodies_and_statuses() {
    let h = start().await;
    h.subscribe(4, json!({"subscriber_data": {"email": "log@example.cz"}}))
        .await;
    h.http.get(h.spotler_url("/contact/x")).send().await.unwrap();
    let (status, calls) = json_of(h.control(Method::GET, "/_sandbox/calls").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let calls = calls.as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["seq"], 1);
    assert_eq!(calls[0]["provider"], "ecomail");
    assert_eq!(calls[0]["method"], "POST");
    assert_eq!(calls[0]["path"], "/ecomail/lists/4/subscribe");
    assert_eq!(calls[0]["status"], 200);
    assert_eq!(calls[0]["body"]["subscriber_data"]["email"], "log@example.cz");
    let received_at = calls[0]["received_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(received_at, &time::format_description::well_known::Rfc3339).is_ok(),
        "{received_at}"
    );
    assert_eq!(received_at.len(), "2025-01-01T00:00:00.000Z".len(), "{received_at}");
    assert_eq!(calls[1]["provider"], "spotler");
    assert_eq!(calls[1]["status"], 401, "refused calls are logged too");
    assert_eq!(calls[1]["body"], Value::Null);

    let (_, spotler_only) = json_of(
        h.control(Method::GET, "/_sandbox/calls?provider=spotler")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(spotler_only.as_array().unwrap().len(), 1);
    let response = h
        .control(Method::GET, "/_sandbox/calls?provider=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn reset_clears_state_calls_and_faults() {
    let h = start().await;
    h.insert_contact(json!({"contact": {"externalId": "z", "properties": {}}}))
        .await;
    h.subscribe(1, json!({"subscriber_data": {"email": "z@example.cz"}}))
        .await;
    h.sandbox
        .state
        .set_fault(Provider::Ecomail, Fault::forced(503, 5))
        .unwrap();

    let (status, _) = json_of(h.control(Method::POST, "/_sandbox/reset").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, contacts) = json_of(
        h.control(Method::GET, "/_sandbox/spotler/contacts")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(contacts, json!([]));
    let (_, subscribers) = json_of(
        h.control(Method::GET, "/_sandbox/ecomail/subscribers")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(subscribers, json!({}));
    let (_, events) = json_of(h.control(Method::GET, "/_sandbox/ecomail/events").send().await.unwrap()).await;
    assert_eq!(events, json!([]));
    assert!(h.sandbox.state.all_calls().is_empty());
    let (_, fault) = json_of(h.control(Method::GET, "/_sandbox/faults/ecomail").send().await.unwrap()).await;
    assert_eq!(fault["fault"]["force"], Value::Null);
    let (status, _) = h
        .subscribe(1, json!({"subscriber_data": {"email": "z@example.cz"}}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn control_endpoints_validate_their_input() {
    let h = start().await;
    let (status, health) = json_of(h.control(Method::GET, "/_sandbox/health").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    for (path, body) in [
        ("/_sandbox/faults/spotler", json!({"error_rate": 2.0})),
        ("/_sandbox/faults/spotler", json!({"force": {"status": 200}})),
        ("/_sandbox/faults/spotler", json!({"unknown": 1})),
        ("/_sandbox/limits/ecomail", json!({"rate": "fast"})),
    ] {
        let response = h.control(Method::PUT, path).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path} {body}");
    }
    let response = h
        .control(Method::PUT, "/_sandbox/faults/mailchimp")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (_, limit) = json_of(
        h.control(Method::PUT, "/_sandbox/limits/ecomail")
            .json(&json!({"rate": null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(limit["rate"], Value::Null);
    let response = h
        .control(Method::DELETE, "/_sandbox/faults/spotler")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_refused_with_413() {
    let h = start().await;
    let big = "x".repeat(1024 * 1024 + 1);
    let response = h
        .ecomail(Method::POST, "/lists/1/subscribe")
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(h.sandbox.state.calls(Provider::Ecomail)[0].status, 413);
}

#[tokio::test]
async fn unknown_provider_paths_use_the_provider_envelope() {
    let h = start().await;
    let (status, error) = json_of(h.spotler(Method::GET, "/nothing/here").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["errorType"], "RESOURCE_NOT_FOUND");
    let (status, error) = json_of(
        h.ecomail(Method::GET, "/lists/abc/subscriber/a@b.cz")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error, json!({"message": "Not Found"}));
}

#[tokio::test]
async fn seeded_ecomail_subscribers_can_be_updated_and_no_call_is_logged_for_the_seed() {
    let h = start().await;
    h.sandbox
        .state
        .seed_ecomail_subscribers(3, ["Seed.One@Example.cz".to_owned(), "seed.two@example.cz".to_owned()]);
    assert!(h.sandbox.state.calls(Provider::Ecomail).is_empty());
    let seeded = h.sandbox.state.ecomail_subscriber(3, "seed.one@example.cz").unwrap();
    assert_eq!(seeded.status, switchyard_sandbox::STATUS_SUBSCRIBED);

    let (status, body) = json_of(
        h.ecomail(Method::PUT, "/lists/3/update-subscriber")
            .json(&json!({"email": "seed.two@example.cz", "subscriber_data": {"name": "Two"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        h.sandbox
            .state
            .ecomail_subscriber(3, "seed.two@example.cz")
            .unwrap()
            .name
            .as_deref(),
        Some("Two")
    );
}

#[tokio::test]
async fn worker_env_points_at_this_sandbox_with_the_default_credentials() {
    let h = start().await;
    let spotler = h.sandbox.worker_env(Provider::Spotler);
    assert_eq!(
        spotler,
        [
            ("SPOTLER_BASE_URL", h.sandbox.spotler_base_url()),
            ("SPOTLER_CONSUMER_KEY", DEFAULT_SPOTLER_CONSUMER_KEY.to_owned()),
            ("SPOTLER_CONSUMER_SECRET", DEFAULT_SPOTLER_CONSUMER_SECRET.to_owned()),
        ]
    );
    let voucherify = h.sandbox.worker_env(Provider::Voucherify);
    let names: Vec<&str> = voucherify.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        names,
        [
            "VOUCHERIFY_BASE_URL",
            "VOUCHERIFY_APP_ID",
            "VOUCHERIFY_APP_TOKEN",
            "VOUCHERIFY_INTEGRATION_BASE_URL",
            "VOUCHERIFY_INTEGRATION_APP_ID",
            "VOUCHERIFY_INTEGRATION_SECRET_KEY",
        ]
    );
    for provider in [
        Provider::Ecomail,
        Provider::Bloomreach,
        Provider::Salesmanago,
        Provider::Froomle,
    ] {
        let env = h.sandbox.worker_env(provider);
        let (name, url) = &env[0];
        assert!(name.ends_with("_BASE_URL"), "{provider:?}: {env:?}");
        assert!(url.starts_with(&h.sandbox.base_url()), "{provider:?}: {url}");
        assert!(
            env.iter()
                .skip(1)
                .all(|(_, v)| v.starts_with("sandbox-") || v.contains('@'))
        );
    }
}
