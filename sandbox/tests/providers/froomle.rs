//! Froomle (`/froomle/oauth/token`, `/froomle/api/{environment}/...`).

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use switchyard_sandbox::{DEFAULT_FROOMLE_CLIENT_ID, DEFAULT_FROOMLE_CLIENT_SECRET};

use crate::{Harness, json_of, start};

impl Harness {
    /// Asks for a token with a form body; returns the status and answer.
    async fn froomle_token_form(&self, form: &str) -> (StatusCode, Value) {
        json_of(
            self.http
                .post(format!("{}/oauth/token", self.sandbox.froomle_base_url()))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form.to_owned())
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// A token for the default client.
    async fn froomle_token(&self) -> String {
        let (status, body) = self
            .froomle_token_form(&format!(
                "grant_type=client_credentials&client_id={DEFAULT_FROOMLE_CLIENT_ID}&client_secret={DEFAULT_FROOMLE_CLIENT_SECRET}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// An API POST with `token`.
    fn froomle(&self, path: &str, token: &str) -> RequestBuilder {
        self.http
            .request(Method::POST, format!("{}{path}", self.sandbox.froomle_base_url()))
            .bearer_auth(token)
    }

    /// An API POST of the JSON `body` with `token`; returns the status and answer.
    async fn froomle_json(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        json_of(self.froomle(path, token).json(body).send().await.unwrap()).await
    }
}

fn recommendation_request(user_id: &str) -> Value {
    json!({
        "channel": "email", "user_id": user_id, "page_type": "newsletter",
        "lists": [{"list_name": "email_recommendations", "list_size": 5}],
        "environment": "ignored",
    })
}

#[tokio::test]
async fn token_then_recommendations_then_events() {
    let h = start().await;
    let (status, token) = h
        .froomle_token_form(&format!(
            "grant_type=client_credentials&client_id={DEFAULT_FROOMLE_CLIENT_ID}&client_secret={DEFAULT_FROOMLE_CLIENT_SECRET}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(token["expires_in"], 86_400);
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["scope"], "");
    let access = token["access_token"].as_str().unwrap();
    assert_eq!(access.split('.').count(), 3, "JWT-shaped");
    assert_eq!(h.sandbox.state.froomle_tokens_issued(), 1);

    let (status, answer) = h
        .froomle_json(
            "/api/test-env/recommendations/requests",
            access,
            &recommendation_request("user-1"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["user_id"], "user-1");
    assert_eq!(answer["device_id"], Value::Null);
    assert_eq!(answer["user_group"], "froomle");
    assert_eq!(answer["version"], "froomle_1");
    let request_id = answer["request_id"].as_str().unwrap().to_owned();
    let list = &answer["lists"][0];
    assert_eq!(list["list_name"], "email_recommendations");
    assert_eq!(list["list_size"], 5);
    assert!(list["list_key"].is_string());
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    for (index, item) in items.iter().enumerate() {
        assert_eq!(item["rank"], index + 1);
        assert!(item["item_id"].as_str().unwrap().starts_with("article-"));
        for field in ["title", "uri", "description"] {
            assert!(item[field].is_string(), "{field}: {item}");
        }
        assert!(item["images"][0].as_str().unwrap().starts_with("https://"));
    }
    // Deterministic per user.
    let (_, again) = h
        .froomle_json(
            "/api/test-env/recommendations/requests",
            access,
            &recommendation_request("user-1"),
        )
        .await;
    let ids = |answer: &Value| -> Vec<Value> {
        answer["lists"][0]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item_id"].clone())
            .collect()
    };
    assert_eq!(ids(&again), ids(&answer));
    assert_ne!(again["request_id"], answer["request_id"]);
    let requests = h.sandbox.state.froomle_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["environment"], "test-env");
    assert_eq!(requests[0]["request_id"], request_id.as_str());

    let clicked = items[0]["item_id"].as_str().unwrap();
    let response = h
        .froomle("/api/test-env/events", access)
        .json(&json!({"events": [
            {"event_type": "batch_open", "user_id": "user-1", "campaign_id": "camp-1", "channel": "email"},
            {"event_type": "batch_click_on_recommendation", "user_id": "user-1", "campaign_id": "camp-1",
             "channel": "email", "list_name": "email_recommendations", "request_id": request_id,
             "action_item": clicked, "action_item_type": "article"},
            {"event_type": "detail_pageview", "user_id": "user-1", "page_type": "article_detail",
             "action_item": clicked, "action_item_type": "article", "channel": "www-desktop"},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await.unwrap().is_empty(), "200 with no content");
    let events = h.sandbox.state.froomle_events();
    assert_eq!(events.len(), 3);
    assert_eq!(events[1]["event_type"], "batch_click_on_recommendation");
    assert_eq!(events[1]["event"]["request_id"], request_id.as_str());
    assert_eq!(h.inspect("/_sandbox/froomle/events").await, json!(events));
}

#[tokio::test]
async fn each_list_answers_its_limit_and_echoes_only_the_options_it_was_given() {
    let h = start().await;
    let access = h.froomle_token().await;
    let (status, answer) = h
        .froomle_json(
            "/api/test-env/recommendations/requests",
            &access,
            &json!({
                "channel": "email", "device_id": "device-9", "page_type": "newsletter",
                "lists": [
                    {"list_name": "top", "list_size": 5, "limit": 2,
                     "configuration_id": {"variant": "b"}, "alias": "top_b"},
                    {"list_name": "top", "list_size": 3},
                ],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["device_id"], "device-9");
    assert_eq!(answer["user_id"], Value::Null, "sent as null, not left out: {answer}");
    let lists = answer["lists"].as_array().unwrap();
    assert_eq!(lists.len(), 2);
    let (first, second) = (&lists[0], &lists[1]);
    assert_eq!(first["limit"], 2);
    assert_eq!(first["list_size"], 5);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["configuration_id"], json!({"variant": "b"}));
    assert_eq!(first["alias"], "top_b");
    assert_eq!(second["items"].as_array().unwrap().len(), 3);
    for absent in ["configuration_id", "alias"] {
        assert!(second.get(absent).is_none(), "{absent} only when asked for: {second}");
    }
    assert_ne!(first["list_key"], second["list_key"]);
    // The same user and list name rank the same: the shorter list is a prefix.
    let ids = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(first)[..], ids(second)[..2]);
    // What is stored is what was answered.
    let stored = &h.sandbox.state.froomle_requests()[0];
    assert_eq!(stored["request_id"], answer["request_id"]);
    for (index, list) in lists.iter().enumerate() {
        assert_eq!(stored["lists"][index]["list_key"], list["list_key"]);
        assert_eq!(stored["lists"][index]["item_ids"], json!(ids(list)));
    }
}

#[tokio::test]
async fn token_endpoint_accepts_json_and_refuses_bad_requests() {
    let h = start().await;
    let url = format!("{}/oauth/token", h.sandbox.froomle_base_url());
    let (status, token) = json_of(
        h.http
            .post(&url)
            .json(
                &json!({"grant_type": "client_credentials", "client_id": DEFAULT_FROOMLE_CLIENT_ID,
                "client_secret": DEFAULT_FROOMLE_CLIENT_SECRET}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(token["access_token"].is_string());
    let (status, error) = h
        .froomle_token_form(&format!(
            "grant_type=client_credentials&client_id={DEFAULT_FROOMLE_CLIENT_ID}&client_secret=wrong"
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["error"], "invalid_client");
    let (status, error) = h
        .froomle_token_form("grant_type=password&client_id=a&client_secret=b")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "unsupported_grant_type");
    let (status, error) = h.froomle_token_form("grant_type=client_credentials").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_request");
    let (status, _) = json_of(
        h.http
            .post(&url)
            .header("Content-Type", "application/json")
            .body("{oops")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(h.sandbox.state.froomle_tokens_issued(), 1);
}

#[tokio::test]
async fn expired_or_missing_tokens_get_401_until_a_new_token_is_fetched() {
    let h = start().await;
    let url = format!("{}/api/env/recommendations/requests", h.sandbox.froomle_base_url());
    let (status, error) = json_of(
        h.http
            .post(&url)
            .json(&recommendation_request("u"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["error"], "unauthorized");
    let (status, _) = h
        .froomle_json(
            "/api/env/recommendations/requests",
            "made-up",
            &recommendation_request("u"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let first = h.froomle_token().await;
    let call = |token: String| {
        let request = h
            .froomle("/api/env/recommendations/requests", &token)
            .json(&recommendation_request("u"));
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(call(first.clone()).await, StatusCode::OK);
    h.sandbox.state.expire_froomle_tokens();
    assert_eq!(call(first.clone()).await, StatusCode::UNAUTHORIZED);
    let second = h.froomle_token().await;
    assert_eq!(call(second.clone()).await, StatusCode::OK);
    let (status, expired) = json_of(
        h.control(Method::POST, "/_sandbox/froomle/expire-tokens")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(expired["tokens_issued"], 2);
    assert_eq!(call(second).await, StatusCode::UNAUTHORIZED);
    assert_eq!(h.sandbox.state.froomle_tokens_issued(), 2);
    assert_eq!(h.sandbox.state.froomle_requests().len(), 2);
}

#[tokio::test]
async fn invalid_events_and_requests_are_refused_and_nothing_is_stored() {
    let h = start().await;
    let token = h.froomle_token().await;
    let (status, error) = h
        .froomle_json(
            "/api/env/events",
            &token,
            &json!({"events": [
                {"event_type": "batch_open", "user_id": "u", "channel": "email"},
                {"event_type": "detail_pageview", "device_id": "d"},
                {"device_id": "d"},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = error["message"].as_str().unwrap();
    assert!(message.starts_with("Events contain errors: "), "{message}");
    assert!(message.contains("events[0]: missing campaign_id"), "{message}");
    assert!(message.contains("events[2]: missing event_type"), "{message}");
    assert!(!message.contains("events[1]"), "{message}");
    let response = h
        .froomle("/api/env/events", &token)
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(h.sandbox.state.froomle_events().is_empty());

    for body in [
        json!({"channel": "email", "user_id": "u", "page_type": "home"}),
        json!({"channel": "email", "user_id": "u", "page_type": "home", "lists": [{"list_name": "l", "list_size": 0}]}),
        json!({"channel": "email", "page_type": "home", "lists": [{"list_name": "l", "list_size": 3}]}),
        json!({"user_id": "u", "page_type": "home", "lists": [{"list_name": "l", "list_size": 3}]}),
    ] {
        let (status, error) = h.froomle_json("/api/env/recommendations/requests", &token, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["error"], "bad_request");
    }
    assert!(h.sandbox.state.froomle_requests().is_empty());
}
