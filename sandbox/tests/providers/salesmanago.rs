//! SALESmanago API v2 (`/salesmanago/api/...`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use switchyard_sandbox::{
    DEFAULT_SALESMANAGO_API_SECRET, DEFAULT_SALESMANAGO_CLIENT_ID, DEFAULT_SALESMANAGO_OWNER, Fault, Provider,
    SalesmanagoLimitMode,
};

use crate::{Harness, header, json_of, start};

fn sha_hex(text: &str) -> String {
    Sha1::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The authentication fields for `secret`, merged into `body`.
fn signed(mut body: Value, secret: &str) -> Value {
    let api_key = "test-api-key-123";
    let auth = json!({
        "clientId": DEFAULT_SALESMANAGO_CLIENT_ID,
        "apiKey": api_key,
        "requestTime": 1_700_000_000_000_i64,
        "sha": sha_hex(&format!("{api_key}{DEFAULT_SALESMANAGO_CLIENT_ID}{secret}")),
        "owner": DEFAULT_SALESMANAGO_OWNER,
    });
    if let (Some(target), Some(auth)) = (body.as_object_mut(), auth.as_object()) {
        for (key, value) in auth {
            target.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    body
}

impl Harness {
    async fn salesmanago_raw(&self, path: &str, body: Value) -> (StatusCode, Value) {
        json_of(
            self.http
                .post(format!("{}{path}", self.sandbox.salesmanago_base_url()))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// A correctly signed call.
    async fn salesmanago(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.salesmanago_raw(path, signed(body, DEFAULT_SALESMANAGO_API_SECRET))
            .await
    }
}

#[tokio::test]
async fn salesmanago_checks_the_sha_and_answers_200_either_way() {
    let h = start().await;
    let contact = json!({"contact": {"email": "ann@example.com"}});
    let (status, ok) = h.salesmanago("/api/contact/upsert", contact.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ok["success"], true);
    assert_eq!(ok["message"], json!([]));
    assert!(ok["contactId"].is_string());
    let not_authenticated = json!({"success": false, "message": ["Not authenticated"]});
    let wrong_secret = signed(contact.clone(), "not-the-secret");
    let mut wrong_client = signed(contact.clone(), DEFAULT_SALESMANAGO_API_SECRET);
    wrong_client["clientId"] = json!("someone-else");
    let mut no_time = signed(contact.clone(), DEFAULT_SALESMANAGO_API_SECRET);
    if let Some(object) = no_time.as_object_mut() {
        object.remove("requestTime");
    }
    for body in [wrong_secret, wrong_client, no_time, contact] {
        let (status, answer) = h.salesmanago_raw("/api/contact/upsert", body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer, not_authenticated);
    }
    let (status, answer) = h
        .salesmanago(
            "/api/contact/upsert",
            json!({"contact": {"email": "b@example.com"}, "owner": "x@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["success"], false);
    assert_eq!(h.sandbox.state.salesmanago_contacts().len(), 1);
}

#[tokio::test]
async fn upsert_merges_tags_properties_and_consent_by_email() {
    let h = start().await;
    let (_, first) = h
        .salesmanago(
            "/api/contact/upsert",
            json!({
                "contact": {"email": "Ann@Example.com", "name": "Ann", "phone": "+420123", "externalId": "c-1",
                            "address": {"city": "Brno", "country": "CZ"}},
                "tags": ["REGISTRATION", "NEWSLETTER"], "properties": {"tier": "gold"},
                "forceOptIn": true, "birthday": "19900131", "lang": "cs",
            }),
        )
        .await;
    let (_, second) = h
        .salesmanago(
            "/api/contact/upsert",
            json!({
                "contact": {"email": "ann@example.com"},
                "tags": ["PURCHASE_LOGGED_IN"], "removeTags": ["NEWSLETTER"],
                "properties": {"points": "120"}, "forceOptOut": true,
            }),
        )
        .await;
    assert_eq!(second["success"], true);
    assert_eq!(second["contactId"], first["contactId"]);
    let contacts = h.sandbox.state.salesmanago_contacts();
    assert_eq!(contacts.len(), 1);
    let contact = &contacts[0];
    assert_eq!(contact["email"], "ann@example.com");
    assert_eq!(contact["tags"], json!(["REGISTRATION", "PURCHASE_LOGGED_IN"]));
    assert_eq!(contact["properties"], json!({"tier": "gold", "points": "120"}));
    assert_eq!(contact["email_opt_in"], false);
    assert_eq!(contact["external_id"], "c-1");
    assert_eq!(contact["name"], "Ann");
    assert_eq!(contact["birthday"], "19900131");
    assert_eq!(contact["lang"], "cs");
    assert_eq!(contact["address"], json!({"city": "Brno", "country": "CZ"}));
    assert_eq!(h.inspect("/_sandbox/salesmanago/contacts").await, json!(contacts));

    for body in [
        json!({"contact": {"name": "No address"}}),
        json!({"contact": {"email": "nobody-at-example.com"}}),
        json!({"contact": {"email": "c@example.com"}, "forceOptIn": true, "forceOptOut": true}),
    ] {
        let (status, answer) = h.salesmanago("/api/contact/upsert", body.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(answer["success"], false, "{body}");
        assert!(answer["message"][0].is_string());
        assert!(!answer.to_string().contains("nobody-at-example.com"), "{answer}");
    }
    assert_eq!(h.sandbox.state.salesmanago_contacts().len(), 1);
}

#[tokio::test]
async fn external_events_need_a_known_type() {
    let h = start().await;
    let (status, answer) = h
        .salesmanago(
            "/api/v2/contact/addContactExtEvent",
            json!({"email": "ann@example.com", "forceOptIn": false, "contactEvent": {
                "date": 1_700_000_000_000_i64, "contactExtEventType": "PURCHASE", "value": 99.9,
                "products": "sku-1,sku-2", "detail1": "order-1", "externalId": "order-1", "location": "eshop",
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["success"], true, "{answer}");
    let event_id = answer["eventId"].as_str().unwrap();
    let events = h.sandbox.state.salesmanago_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_id"], event_id);
    assert_eq!(events[0]["contact_ext_event_type"], "PURCHASE");
    assert_eq!(events[0]["value"], 99.9);
    assert_eq!(events[0]["details"], json!({"detail1": "order-1"}));
    assert_eq!(
        h.sandbox.state.salesmanago_contacts().len(),
        1,
        "the contact was created"
    );
    for kind in ["CANCELLATION", "RETURN", "SURVEY", "LOGIN", "CART"] {
        let (_, answer) = h
            .salesmanago(
                "/api/v2/contact/addContactExtEvent",
                json!({"email": "ann@example.com", "contactEvent": {"date": 1_700_000_000_000_i64, "contactExtEventType": kind}}),
            )
            .await;
        assert_eq!(answer["success"], true, "{kind}");
    }
    let (status, answer) = h
        .salesmanago(
            "/api/v2/contact/addContactExtEvent",
            json!({"email": "ann@example.com", "contactEvent": {"date": 1_700_000_000_000_i64, "contactExtEventType": "BOUGHT"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["success"], false);
    assert!(answer["message"][0].as_str().unwrap().contains("contactExtEventType"));
    assert_eq!(h.sandbox.state.salesmanago_events().len(), 6);
    assert_eq!(
        h.inspect("/_sandbox/salesmanago/events").await.as_array().map(Vec::len),
        Some(6)
    );
}

#[tokio::test]
async fn batch_upsert_returns_a_contact_id_per_email() {
    let h = start().await;
    let (status, answer) = h
        .salesmanago(
            "/api/contact/batchupsert",
            json!({"upsertDetails": [
                {"contact": {"email": "a@example.com"}, "tags": ["REGISTRATION"]},
                {"contact": {"email": "b@example.com"}, "forceOptIn": true},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["success"], true);
    assert!(answer["contactIds"]["a@example.com"].is_string());
    assert!(answer["contactIds"]["b@example.com"].is_string());
    let (_, refused) = h
        .salesmanago(
            "/api/contact/batchupsert",
            json!({"upsertDetails": [{"contact": {"email": "c@example.com"}}, {"contact": {}}]}),
        )
        .await;
    assert_eq!(refused["success"], false);
    assert!(refused["message"][0].as_str().unwrap().starts_with("upsertDetails[1]"));
    assert_eq!(h.sandbox.state.salesmanago_contacts().len(), 2);
}

#[tokio::test]
async fn salesmanago_limit_answers_429_or_success_false_as_switched() {
    let h = start().await;
    h.sandbox.state.set_limit(Provider::Salesmanago, Some("1/h")).unwrap();
    let body = signed(
        json!({"contact": {"email": "ann@example.com"}}),
        DEFAULT_SALESMANAGO_API_SECRET,
    );
    let url = format!("{}/api/contact/upsert", h.sandbox.salesmanago_base_url());
    assert_eq!(
        h.salesmanago_raw("/api/contact/upsert", body.clone()).await.1["success"],
        true
    );

    let response = h.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&response, "retry-after").is_some());
    let (_, answer) = json_of(response).await;
    assert_eq!(answer, json!({"success": false, "message": ["API limit exceeded"]}));

    let (status, mode) = json_of(
        h.control(Method::PUT, "/_sandbox/salesmanago/limit-mode")
            .json(&json!({"mode": "success_false"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mode, json!({"mode": "success_false"}));
    assert_eq!(
        h.sandbox.state.salesmanago_limit_mode(),
        SalesmanagoLimitMode::SuccessFalse
    );
    let (status, answer) = h.salesmanago_raw("/api/contact/upsert", body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"success": false, "message": ["API limit exceeded"]}));
    assert_eq!(h.sandbox.state.salesmanago_contacts().len(), 1);

    h.sandbox
        .state
        .set_salesmanago_limit_mode(SalesmanagoLimitMode::Http429);
    assert_eq!(
        h.http.post(&url).json(&body).send().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn forced_salesmanago_faults_are_real_http_statuses() {
    let h = start().await;
    h.sandbox
        .state
        .set_fault(Provider::Salesmanago, Fault::forced(503, 1))
        .unwrap();
    let (status, answer) = h
        .salesmanago("/api/contact/upsert", json!({"contact": {"email": "ann@example.com"}}))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["success"], false);
    assert!(h.sandbox.state.salesmanago_contacts().is_empty());
}

#[tokio::test]
async fn the_limit_mode_and_quota_come_from_the_configuration() {
    let mut config = switchyard_sandbox::SandboxConfig::for_tests();
    config.salesmanago.limit_mode = SalesmanagoLimitMode::SuccessFalse;
    config.limits.salesmanago = Some(switchyard_sandbox::Rate::per_hour(1));
    let h = crate::start_with(config).await;
    let body = json!({"contact": {"email": "ann@example.com"}});
    assert_eq!(
        h.salesmanago("/api/contact/upsert", body.clone()).await.1["success"],
        true
    );
    let (status, answer) = h.salesmanago("/api/contact/upsert", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({"success": false, "message": ["API limit exceeded"]}));
    assert_eq!(h.sandbox.state.calls(Provider::Salesmanago).len(), 2);
}
