//! Voucherify API (`/voucherify/v1/...`) and its Bloomreach integration endpoints
//! (`/voucherify-integration/bloomreach-engagement/...`).

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use switchyard_sandbox::{
    DEFAULT_VOUCHERIFY_APP_ID, DEFAULT_VOUCHERIFY_APP_TOKEN, DEFAULT_VOUCHERIFY_INTEGRATION_APP_ID,
    DEFAULT_VOUCHERIFY_INTEGRATION_SECRET_KEY, Fault, Provider,
};

use crate::{Harness, header, json_of, start};

impl Harness {
    /// A Voucherify API request with the default keys.
    fn voucherify(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.sandbox.voucherify_base_url()))
            .header("X-App-Id", DEFAULT_VOUCHERIFY_APP_ID)
            .header("X-App-Token", DEFAULT_VOUCHERIFY_APP_TOKEN)
    }

    /// An integration request with the default integration key.
    fn integration(&self, path: &str) -> RequestBuilder {
        self.http
            .post(format!("{}{path}", self.sandbox.voucherify_integration_base_url()))
            .header("application-id", DEFAULT_VOUCHERIFY_INTEGRATION_APP_ID)
            .header("secret-key", DEFAULT_VOUCHERIFY_INTEGRATION_SECRET_KEY)
    }

    async fn publish(&self, query: &str, body: Value) -> (StatusCode, Value) {
        json_of(
            self.voucherify(Method::POST, &format!("/v1/publications{query}"))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

fn assert_error(body: &Value, code: u16, key: &str) {
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["key"], key, "{body}");
    assert!(body["message"].is_string() && body["details"].is_string(), "{body}");
}

#[tokio::test]
async fn voucherify_requires_the_app_id_and_token() {
    let h = start().await;
    let url = format!("{}/v1/customers/c-1", h.sandbox.voucherify_base_url());
    let missing = h.http.get(&url).send().await.unwrap();
    let wrong = h
        .http
        .get(&url)
        .header("X-App-Id", DEFAULT_VOUCHERIFY_APP_ID)
        .header("X-App-Token", "not-the-token")
        .send()
        .await
        .unwrap();
    for response in [missing, wrong] {
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_error(&body, 401, "unauthorized");
        assert_eq!(body["message"], "Unauthorized");
    }
    let (status, body) = json_of(h.voucherify(Method::GET, "/v1/customers/c-1").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, 404, "not_found");
    assert_eq!(body["resource_type"], "customer");
}

#[tokio::test]
async fn publication_returns_the_documented_object_and_upserts_the_customer() {
    let h = start().await;
    let (status, publication) = h
        .publish(
            "",
            json!({
                "campaign": {"name": "Discount code campaign"},
                "customer": {"source_id": "cust-1", "name": "Ann", "metadata": {"segment": "gold"}},
                "source_id": "msg-1",
                "metadata": {"origin": "switchyard"},
                "channel": "Switchyard",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{publication}");
    assert!(publication["id"].as_str().unwrap().starts_with("pub_"));
    assert_eq!(publication["object"], "publication");
    assert_eq!(publication["result"], "SUCCESS");
    assert_eq!(publication["source_id"], "msg-1");
    assert_eq!(publication["tracking_id"], "cust-1");
    assert_eq!(publication["channel"], "Switchyard");
    assert_eq!(publication["metadata"], json!({"origin": "switchyard"}));
    assert!(publication["created_at"].is_string());
    let customer_id = publication["customer_id"].as_str().unwrap();
    assert!(customer_id.starts_with("cust_"));
    assert_eq!(publication["customer"]["object"], "customer");
    assert_eq!(publication["customer"]["source_id"], "cust-1");
    let voucher = &publication["voucher"];
    let code = voucher["code"].as_str().unwrap();
    assert!(code.starts_with("DC-") && code.len() == "DC-XXXX-XXXX".len(), "{code}");
    assert_eq!(voucher["object"], "voucher");
    assert_eq!(voucher["type"], "DISCOUNT_VOUCHER");
    assert_eq!(voucher["campaign"], "Discount code campaign");
    assert!(voucher["campaign_id"].as_str().unwrap().starts_with("camp_"));
    assert_eq!(voucher["discount"]["type"], "AMOUNT");
    assert!(voucher["discount"]["amount_off"].is_u64());
    assert_eq!(voucher["active"], true);
    assert_eq!(voucher["holder_id"], customer_id);
    assert_eq!(publication["vouchers_id"], json!([voucher["id"]]));

    assert_eq!(
        h.sandbox.state.voucherify_publications(),
        std::slice::from_ref(&publication)
    );
    let (status, customer) = json_of(h.voucherify(Method::GET, "/v1/customers/cust-1").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(customer["id"], customer_id);
    assert_eq!(customer["name"], "Ann");
    assert_eq!(customer["metadata"], json!({"segment": "gold"}));
    assert_eq!(
        h.inspect("/_sandbox/voucherify/publications").await,
        json!([publication])
    );
}

#[tokio::test]
async fn a_reused_publication_source_id_is_refused_and_the_original_can_be_found() {
    let h = start().await;
    let body = json!({"campaign": {"name": "Welcome 10"}, "customer": {"source_id": "cust-1"}, "source_id": "msg-7"});
    let (status, first) = h.publish("", body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(first["voucher"]["code"].as_str().unwrap().starts_with("W10-"));
    let (status, error) = h.publish("", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&error, 400, "duplicate_source_id");
    assert_eq!(error["message"], "Publication with source_id: 'msg-7' already exists");
    assert_eq!(h.sandbox.state.voucherify_publications().len(), 1);
    let (status, list) = json_of(
        h.voucherify(Method::GET, "/v1/publications?source_id=msg-7")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["object"], "list");
    assert_eq!(list["total"], 1);
    assert_eq!(list["publications"][0]["voucher"]["code"], first["voucher"]["code"]);
}

#[tokio::test]
async fn join_once_returns_the_customers_existing_publication() {
    let h = start().await;
    let body = json!({"campaign": {"name": "Discount code campaign"}, "customer": {"source_id": "cust-1"}});
    let (_, first) = h.publish("?join_once=true", body.clone()).await;
    let (status, again) = h.publish("?join_once=true", body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["voucher"]["code"], first["voucher"]["code"]);
    assert_eq!(h.sandbox.state.voucherify_publications().len(), 1);
    let (_, other) = h.publish("", body).await;
    assert_ne!(other["voucher"]["code"], first["voucher"]["code"]);
    assert_eq!(h.sandbox.state.voucherify_publications().len(), 2);
}

#[tokio::test]
async fn publication_errors_use_the_voucherify_envelope() {
    let h = start().await;
    let (status, error) = h
        .publish(
            "",
            json!({"campaign": {"name": "No such campaign"}, "customer": {"source_id": "c"}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&error, 404, "not_found");
    assert_eq!(error["resource_type"], "campaign");
    assert_eq!(error["message"], "Resource not found");
    assert_eq!(error["details"], "Cannot find campaign with id No such campaign");

    let (status, error) = h.publish("", json!({"customer": {"source_id": "c"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&error, 400, "missing_vouchers");

    let (status, error) = h.publish("", json!({"campaign": {"name": "Welcome 10"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&error, 400, "invalid_payload");

    let response = h
        .voucherify(Method::POST, "/v1/publications")
        .header("Content-Type", "text/plain")
        .body("campaign=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // A specific voucher: publishable once.
    let code = h.sandbox.state.voucherify_vouchers()[0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, published) = h
        .publish("", json!({"voucher": code, "customer": {"source_id": "c"}}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(published["voucher"]["code"], code.as_str());
    let (status, error) = h
        .publish("", json!({"voucher": code, "customer": {"source_id": "d"}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&error, 400, "voucher_already_published");
    assert_eq!(h.sandbox.state.voucherify_publications().len(), 1);
}

#[tokio::test]
async fn customers_are_upserted_by_source_id_and_typed_metadata_is_checked() {
    let h = start().await;
    let upsert = |body: Value| {
        let request = h.voucherify(Method::POST, "/v1/customers").json(&body);
        async move { json_of(request.send().await.unwrap()).await }
    };
    let (status, created) = upsert(json!({
        "source_id": "cust-1", "name": "Ann", "email": "ann@example.com", "birthdate": "1990-01-31",
        "address": {"city": "Brno", "country": "CZ"}, "metadata": {"loyalty_points": 10, "free_text": "x"},
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert!(created["id"].as_str().unwrap().starts_with("cust_"));
    assert_eq!(created["object"], "customer");
    for field in ["summary", "loyalty", "referrals", "system_metadata", "created_at"] {
        assert!(!created[field].is_null(), "{field} missing: {created}");
    }
    assert_eq!(created["address"]["city"], "Brno");
    let (_, updated) = upsert(json!({"source_id": "cust-1", "phone": "+420123", "metadata": {"vip": true}})).await;
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["name"], "Ann");
    assert_eq!(
        updated["metadata"],
        json!({"loyalty_points": 10, "free_text": "x", "vip": true})
    );
    let id = created["id"].as_str().unwrap();
    let (status, by_id) = json_of(
        h.voucherify(Method::GET, &format!("/v1/customers/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_id["phone"], "+420123");
    assert_eq!(h.sandbox.state.voucherify_customers().len(), 1);

    let (status, error) = upsert(json!({"source_id": "cust-1", "metadata": {"loyalty_points": "ten"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&error, 400, "invalid_metadata");
    let (status, error) = upsert(json!({"source_id": "cust-2", "email": "not-an-address"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&error, 400, "invalid_payload");
    assert!(!error.to_string().contains("not-an-address"), "{error}");
    assert_eq!(h.sandbox.state.voucherify_customers().len(), 1);
}

#[tokio::test]
async fn voucherify_reports_its_budget_and_answers_429_with_the_limit_type() {
    let h = start().await;
    h.sandbox.state.set_limit(Provider::Voucherify, Some("3/h")).unwrap();
    let mut remaining = Vec::new();
    for n in 0..3 {
        let response = h
            .voucherify(Method::POST, "/v1/customers")
            .json(&json!({"source_id": format!("cust-{n}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "x-rate-limit-limit").as_deref(), Some("3"));
        remaining.push(header(&response, "x-rate-limit-remaining").unwrap());
        let retry = header(&response, "x-rate-limit-retry");
        assert_eq!(retry.is_some(), n == 2, "X-Rate-Limit-Retry only once nothing remains");
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let response = h
        .voucherify(Method::POST, "/v1/customers")
        .json(&json!({"source_id": "cust-refused"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "x-rate-limit-type").as_deref(), Some("api_calls"));
    assert_eq!(header(&response, "x-rate-limit-remaining").as_deref(), Some("0"));
    let retry_after: u64 = header(&response, "retry-after").unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&retry_after), "{retry_after}");
    let retry_at: i64 = header(&response, "x-rate-limit-retry").unwrap().parse().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now + 3500..=now + 3601).contains(&retry_at), "{retry_at} vs {now}");
    let (_, body) = json_of(response).await;
    assert_eq!(
        body,
        json!({
            "code": 429, "key": "too_many_requests", "message": "Too Many Requests",
            "details": "API calls limit reached", "request_id": body["request_id"],
        })
    );
    assert_eq!(h.sandbox.state.voucherify_customers().len(), 3);
    let statuses: Vec<u16> = h
        .sandbox
        .state
        .calls(Provider::Voucherify)
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
}

#[tokio::test]
async fn voucherify_faults_use_its_envelope() {
    let h = start().await;
    h.sandbox
        .state
        .set_fault(Provider::Voucherify, Fault::forced(503, 1))
        .unwrap();
    let (status, body) = json_of(h.voucherify(Method::GET, "/v1/customers/x").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&body, 503, "service_unavailable");
    h.sandbox
        .state
        .set_fault(Provider::Voucherify, Fault::forced(429, 1).with_retry_after(7))
        .unwrap();
    let response = h.voucherify(Method::GET, "/v1/customers/x").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after").as_deref(), Some("7"));
    assert_eq!(header(&response, "x-rate-limit-type").as_deref(), Some("api_calls"));
    let response = h.voucherify(Method::GET, "/v1/customers/x").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn integration_requires_its_own_key() {
    let h = start().await;
    let url = format!(
        "{}/bloomreach-engagement/upsert-customer-bulk",
        h.sandbox.voucherify_integration_base_url()
    );
    let with_api_keys = h
        .http
        .post(&url)
        .header("X-App-Id", DEFAULT_VOUCHERIFY_APP_ID)
        .header("X-App-Token", DEFAULT_VOUCHERIFY_APP_TOKEN)
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    let wrong = h
        .http
        .post(&url)
        .header("application-id", DEFAULT_VOUCHERIFY_INTEGRATION_APP_ID)
        .header("secret-key", "nope")
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    for response in [with_api_keys, wrong] {
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_error(&body, 401, "unauthorized");
    }
    assert!(h.sandbox.state.voucherify_integration_calls().is_empty());
}

#[tokio::test]
async fn integration_applies_only_defined_well_typed_metadata_to_the_shared_customers() {
    let h = start().await;
    let response = h
        .integration("/bloomreach-engagement/upsert-customer-bulk")
        .json(&json!([
            {
                "registered": "cust-1", "name": "Ann", "email": "ann@example.com",
                "address": {"city": "Brno"},
                "metadata": {
                    "segment": "gold", "vip": true, "last_order_at": "2024-05-01",
                    "loyalty_points": "12", "undefined_key": "x",
                },
            },
            {"name": "no hard id"},
            {"registered": "cust-2", "metadata": {"consent": "yes", "vip": "true"}},
        ]))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, json!({}));
    let calls = h.sandbox.state.voucherify_integration_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["endpoint"], "upsert-customer-bulk");
    assert_eq!(calls[0]["elements"], 3);
    assert_eq!(calls[0]["applied"], 2);
    assert_eq!(calls[0]["skipped"], 1);
    assert_eq!(calls[0]["dropped_metadata"], 3);
    assert_eq!(
        calls[0]["dropped_metadata_keys"],
        json!(["loyalty_points", "undefined_key", "vip"])
    );
    // The same customers through the API.
    let (status, customer) = json_of(h.voucherify(Method::GET, "/v1/customers/cust-1").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(customer["name"], "Ann");
    assert_eq!(
        customer["metadata"],
        json!({"segment": "gold", "vip": true, "last_order_at": "2024-05-01"})
    );
    let (_, second) = json_of(h.voucherify(Method::GET, "/v1/customers/cust-2").send().await.unwrap()).await;
    assert_eq!(second["metadata"], json!({"consent": "yes"}));

    let response = h
        .integration("/bloomreach-engagement/create-event-bulk")
        .json(&json!({"data": [
            {"event": "Newsletter signup", "customer": {"registered": "cust-1"}, "metadata": {"segment": "x", "other": 1}},
            {"customer": {"registered": "cust-1"}},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let events = h.sandbox.state.voucherify_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "Newsletter signup");
    assert_eq!(events[0]["customer_id"], customer["id"]);
    assert_eq!(events[0]["metadata"], json!({"segment": "x"}));
    let calls = h.inspect("/_sandbox/voucherify/integration-calls").await;
    assert_eq!(calls[1]["dropped_metadata"], 1);
    assert_eq!(calls[1]["skipped"], 1);

    let response = h
        .integration("/bloomreach-engagement/create-event-bulk")
        .json(&json!({"events": []}))
        .send()
        .await
        .unwrap();
    let (status, error) = json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&error, 400, "invalid_payload");
    assert_eq!(h.sandbox.state.voucherify_integration_calls().len(), 2);
}
