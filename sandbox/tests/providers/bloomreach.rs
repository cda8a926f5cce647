//! Bloomreach Engagement Tracking API (`/bloomreach/track/v2/projects/{token}/...`).

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};
use switchyard_sandbox::{
    DEFAULT_BLOOMREACH_KEY_ID, DEFAULT_BLOOMREACH_PROJECT_TOKEN, DEFAULT_BLOOMREACH_SECRET, Fault, Provider,
};

use crate::{Harness, header, json_of, start};

fn basic(key: &str, secret: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{key}:{secret}")))
}

impl Harness {
    /// A Tracking API POST to the default project with the default key.
    fn bloomreach(&self, path: &str) -> RequestBuilder {
        self.http
            .post(format!(
                "{}/track/v2/projects/{DEFAULT_BLOOMREACH_PROJECT_TOKEN}{path}",
                self.sandbox.bloomreach_base_url()
            ))
            .header(
                "Authorization",
                basic(DEFAULT_BLOOMREACH_KEY_ID, DEFAULT_BLOOMREACH_SECRET),
            )
    }

    async fn track(&self, path: &str, body: Value) -> (StatusCode, Value) {
        json_of(self.bloomreach(path).json(&body).send().await.unwrap()).await
    }
}

#[tokio::test]
async fn bloomreach_checks_basic_auth_and_the_project_token() {
    let h = start().await;
    let body = json!({"customer_ids": {"registered": "c-1"}, "properties": {"tier": "gold"}});
    let url = |project: &str| {
        format!(
            "{}/track/v2/projects/{project}/customers",
            h.sandbox.bloomreach_base_url()
        )
    };
    let missing = h
        .http
        .post(url(DEFAULT_BLOOMREACH_PROJECT_TOKEN))
        .json(&body)
        .send()
        .await
        .unwrap();
    let wrong = h
        .http
        .post(url(DEFAULT_BLOOMREACH_PROJECT_TOKEN))
        .header("Authorization", basic(DEFAULT_BLOOMREACH_KEY_ID, "wrong"))
        .json(&body)
        .send()
        .await
        .unwrap();
    for response in [missing, wrong] {
        let (status, error) = json_of(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(error["success"], false);
        assert!(error["errors"][0].is_string(), "{error}");
    }
    let (status, error) = json_of(
        h.http
            .post(url("another-project"))
            .header(
                "Authorization",
                basic(DEFAULT_BLOOMREACH_KEY_ID, DEFAULT_BLOOMREACH_SECRET),
            )
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["success"], false);
    assert!(h.sandbox.state.bloomreach_customers().is_empty());
    let (status, ok) = h.track("/customers", body).await;
    assert_eq!((status, ok), (StatusCode::OK, json!({"success": true})));
    assert_eq!(h.sandbox.state.bloomreach_customers().len(), 1);
}

#[tokio::test]
async fn single_endpoints_store_customers_and_every_event() {
    let h = start().await;
    let (status, _) = h
        .track(
            "/customers",
            json!({"customer_ids": {"registered": "c-1"}, "properties": {"tier": "gold"}, "update_timestamp": 1_700_000_000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let event = json!({
        "customer_ids": {"registered": "c-1"}, "event_type": "voucher_published",
        "timestamp": 1_700_000_100.5, "properties": {"code": "DC-AAAA-BBBB"},
    });
    for _ in 0..2 {
        let (status, body) = h.track("/customers/events", event.clone()).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));
    }
    let events = h.sandbox.state.bloomreach_events();
    assert_eq!(events.len(), 2, "no deduplication");
    assert_eq!(events[0]["event_type"], "voucher_published");
    assert_eq!(events[0]["timestamp"], 1_700_000_100.5);
    assert_eq!(events[0]["properties"], json!({"code": "DC-AAAA-BBBB"}));
    let customers = h.inspect("/_sandbox/bloomreach/customers").await;
    assert_eq!(customers[0]["ids"], json!({"registered": "c-1"}));
    assert_eq!(customers[0]["properties"], json!({"tier": "gold"}));
    assert_eq!(
        h.inspect("/_sandbox/bloomreach/events").await.as_array().map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn single_endpoint_failures_use_the_errors_envelope() {
    let h = start().await;
    let (status, error) = h.track("/customers", json!({"properties": {"a": 1}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error,
        json!({"success": false, "errors": ["At least one id should be specified."]})
    );
    let (status, error) = h
        .track("/customers/events", json!({"customer_ids": {"registered": "c"}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["success"], false);
    let (status, error) = h
        .track(
            "/customers/events",
            json!({"customer_ids": {"registered": "c"}, "event_type": "x", "timestamp": 1_700_000_000_000_u64}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["errors"][0].as_str().unwrap().contains("milliseconds"), "{error}");
    let (status, error) = json_of(
        h.bloomreach("/customers/events")
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error, json!({"success": false, "message": "Invalid JSON"}));
    assert!(h.sandbox.state.bloomreach_events().is_empty());
}

#[tokio::test]
async fn batch_reports_one_result_per_command_and_runs_the_good_ones() {
    let h = start().await;
    let (status, body) = h
        .track(
            "/batch",
            json!({"commands": [
                {"name": "customers", "command_id": "a", "data": {"customer_ids": {"registered": "c-1"}, "properties": {"x": 1}}},
                {"name": "customers/events", "command_id": "b", "data": {"event_type": "redeemed", "properties": {}}},
                {"name": "customers/events", "command_id": "c", "data": {"customer_ids": {"registered": "c-1"}, "event_type": "redeemed"}},
                {"name": "customers/events", "data": {"customer_ids": {"registered": "c-1"}}},
                {"name": "system/time"},
                {"name": "bogus", "command_id": 6},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    assert!(body["start_time"].as_f64().unwrap() <= body["end_time"].as_f64().unwrap());
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    assert_eq!(results[0], json!({"success": true, "command_id": "a"}));
    assert_eq!(
        results[1],
        json!({"success": false, "errors": ["At least one id should be specified."], "command_id": "b"})
    );
    assert_eq!(results[2], json!({"success": true, "command_id": "c"}));
    assert_eq!(results[3]["success"], false);
    assert!(results[3].get("command_id").is_none());
    assert_eq!(results[4]["success"], true);
    assert!(results[4]["time"].is_f64());
    assert_eq!(results[5]["success"], false);
    assert_eq!(results[5]["command_id"], 6);
    let events = h.sandbox.state.bloomreach_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["command_id"], "c");
}

#[tokio::test]
async fn batch_over_fifty_commands_is_refused_whole() {
    let h = start().await;
    let command = json!({"name": "customers/events", "data": {"customer_ids": {"registered": "c"}, "event_type": "e"}});
    let (status, error) = h.track("/batch", json!({"commands": vec![command.clone(); 51]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["success"], false);
    assert!(error["errors"][0].as_str().unwrap().contains("50"), "{error}");
    assert!(h.sandbox.state.bloomreach_events().is_empty());
    let (status, body) = h.track("/batch", json!({"commands": vec![command; 50]})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"].as_array().map(Vec::len), Some(50));
    assert_eq!(h.sandbox.state.bloomreach_events().len(), 50);
}

#[tokio::test]
async fn bloomreach_rate_limit_drops_the_data_and_sends_only_retry_after() {
    let h = start().await;
    h.sandbox.state.set_limit(Provider::Bloomreach, Some("2/s")).unwrap();
    let event = json!({"customer_ids": {"registered": "c"}, "event_type": "e"});
    for _ in 0..2 {
        assert_eq!(h.track("/customers/events", event.clone()).await.0, StatusCode::OK);
    }
    let response = h.bloomreach("/customers/events").json(&event).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after").as_deref(), Some("1"));
    assert!(
        response
            .headers()
            .keys()
            .all(|name| !name.as_str().starts_with("x-ratelimit") && !name.as_str().starts_with("x-rate-limit")),
        "{:?}",
        response.headers()
    );
    let (_, body) = json_of(response).await;
    assert_eq!(body["success"], false);
    assert_eq!(h.sandbox.state.bloomreach_events().len(), 2);

    h.sandbox.state.set_limit(Provider::Bloomreach, None).unwrap();
    h.sandbox
        .state
        .set_fault(Provider::Bloomreach, Fault::forced(500, 1))
        .unwrap();
    let (status, body) = h.track("/customers/events", event).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["success"], false);
    assert_eq!(h.sandbox.state.bloomreach_events().len(), 2);
}
