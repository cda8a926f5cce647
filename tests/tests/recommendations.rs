//! recommendations end to end: real RabbitMQ, the sandbox's Froomle over HTTP, the worker
//! in-process; and the `switchyard batch recommendations` CSV round trip with the built binary.

use std::path::Path;
use std::time::Duration;

use integration_tests::recommendations::{Ready, RecommendationsHarness};
use integration_tests::{binary, wait_for, workspace_root};
use serde_json::{Value, json};
use switchyard_sandbox::{Fault, Provider};

const T: Duration = Duration::from_secs(20);

fn request(user_id: &str, list_name: &str, list_size: u32) -> Value {
    json!({
        "environment": "demo",
        "user_id": user_id,
        "list_name": list_name,
        "list_size": list_size,
        "page_type": "newsletter",
        "campaign_id": "weekly-47"
    })
}

fn click(user_id: &str, request_id: &str, item_id: &str) -> Value {
    json!({
        "event": "batch_click_on_recommendation",
        "environment": "demo",
        "user_id": user_id,
        "campaign_id": "weekly-47",
        "list_name": "newsletter_top",
        "request_id": request_id,
        "item_id": item_id,
        "item_type": "article",
        "occurred_at": "2026-11-21T07:16:30Z"
    })
}

fn calls_with_status(h: &RecommendationsHarness, status: u16) -> usize {
    h.sandbox
        .state
        .calls(Provider::Froomle)
        .iter()
        .filter(|call| call.status == status)
        .count()
}

#[tokio::test]
async fn request_yields_ready_with_items_metadata_and_attribution() {
    let h = RecommendationsHarness::start("reco-ready", &[]).await;
    let id = h
        .publish(
            "recommendation.requested",
            Some("corr-1"),
            &request("user-1", "newsletter_top", 3),
        )
        .await;
    let mut ready = Vec::new();
    h.wait_ready(&mut ready, 1, T).await;
    let Ready {
        correlation_id,
        message_id,
        body,
    } = &ready[0];
    assert_eq!(correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(message_id.as_deref(), Some(format!("{id}:ready").as_str()));
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["user_id"], "user-1");
    assert_eq!(body["list_name"], "newsletter_top");
    assert_eq!(body["campaign_id"], "weekly-47");
    assert_eq!(body["source_message_id"], id.as_str());
    assert!(body["user_group"].is_string() && body["version"].is_string(), "{body}");

    let items = body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 3, "{body}");
    for (index, item) in items.iter().enumerate() {
        assert_eq!(item["rank"], index + 1);
        for field in ["item_id", "title", "url", "image_url", "description"] {
            assert!(
                item[field].as_str().is_some_and(|v| !v.is_empty()),
                "{field} missing in {item}"
            );
        }
    }

    let requests = h.sandbox.state.froomle_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(body["request_id"], requests[0]["request_id"]);
    assert_eq!(requests[0]["environment"], "demo");
    assert_eq!(requests[0]["channel"], "email");
    assert_eq!(requests[0]["page_type"], "newsletter");
    assert_eq!(requests[0]["user_id"], "user-1");
    assert_eq!(requests[0]["device_id"], "user-1");
    let answered: Vec<Value> = items.iter().map(|item| item["item_id"].clone()).collect();
    assert_eq!(Value::Array(answered), requests[0]["lists"][0]["item_ids"]);
    assert_eq!(h.sandbox.state.froomle_tokens_issued(), 1);
    h.finish(&[]).await;
}

#[tokio::test]
async fn the_token_is_reused_and_a_401_triggers_exactly_one_refresh() {
    let h = RecommendationsHarness::start("reco-401", &[]).await;
    let mut ready = Vec::new();
    for user in ["user-1", "user-2"] {
        h.publish("recommendation.requested", None, &request(user, "newsletter_top", 2))
            .await;
    }
    h.wait_ready(&mut ready, 2, T).await;
    assert_eq!(
        h.sandbox.state.froomle_tokens_issued(),
        1,
        "one token serves every call"
    );

    h.sandbox.state.expire_froomle_tokens();
    h.publish(
        "recommendation.requested",
        None,
        &request("user-3", "newsletter_top", 2),
    )
    .await;
    h.wait_ready(&mut ready, 3, T).await;
    assert!(ready.iter().all(|r| r.body["status"] == "ready"), "{ready:?}");
    assert_eq!(h.sandbox.state.froomle_tokens_issued(), 2, "exactly one refresh");
    assert_eq!(calls_with_status(&h, 401), 1, "one refused call, then success");
    assert!(h.dead_letters().await.is_empty());
    assert_eq!(
        h.metric("switchyard_retries_total", &[]),
        0.0,
        "the refresh happens within the delivery, not through a retry"
    );
    h.finish(&[]).await;
}

#[tokio::test]
async fn a_401_that_persists_after_a_refresh_fails_for_good() {
    let h = RecommendationsHarness::start("reco-401-twice", &[]).await;
    let mut ready = Vec::new();
    h.publish(
        "recommendation.requested",
        None,
        &request("user-1", "newsletter_top", 2),
    )
    .await;
    h.wait_ready(&mut ready, 1, T).await;
    let calls_before = h.sandbox.state.calls(Provider::Froomle).len();

    h.sandbox
        .state
        .set_fault(Provider::Froomle, Fault::forced(401, 2))
        .unwrap_or_else(|e| panic!("{e}"));
    let id = h
        .publish(
            "recommendation.requested",
            Some("corr-2"),
            &request("user-2", "newsletter_top", 2),
        )
        .await;
    h.wait_ready(&mut ready, 2, T).await;
    let failed = &ready[1];
    assert_eq!(failed.correlation_id.as_deref(), Some("corr-2"));
    assert_eq!(failed.body["status"], "failed", "{:?}", failed.body);
    let error = failed.body["error"].as_str().unwrap_or_default();
    assert!(error.contains("401"), "{error}");
    let letters = h.wait_dead_letters(1, T).await;
    assert_eq!(letters[0].class, "permanent");
    assert_eq!(letters[0].message_id.as_deref(), Some(id.as_str()));
    // The refused call, the refused refresh, and nothing more: no retry loop on bad credentials.
    assert_eq!(h.sandbox.state.calls(Provider::Froomle).len() - calls_before, 2);
    h.finish(&[]).await;
}

#[tokio::test]
async fn wrong_credentials_are_a_permanent_failure_naming_the_variables() {
    let h = RecommendationsHarness::start("reco-creds", &[("FROOMLE_CLIENT_SECRET", "not-the-secret")]).await;
    let mut ready = Vec::new();
    h.publish(
        "recommendation.requested",
        None,
        &request("user-1", "newsletter_top", 2),
    )
    .await;
    h.wait_ready(&mut ready, 1, T).await;
    let error = ready[0].body["error"].as_str().unwrap_or_default().to_owned();
    assert_eq!(ready[0].body["status"], "failed");
    assert!(error.contains("FROOMLE_CLIENT_SECRET"), "{error}");
    assert!(!error.contains("not-the-secret"), "the secret must not leak: {error}");
    assert_eq!(h.wait_dead_letters(1, T).await[0].class, "permanent");
    assert_eq!(h.sandbox.state.froomle_tokens_issued(), 0);
    assert!(h.sandbox.state.froomle_requests().is_empty());
    h.finish(&[]).await;
}

#[tokio::test]
async fn opens_and_clicks_reach_froomle_and_a_click_adds_a_detail_pageview() {
    let h = RecommendationsHarness::start("reco-track", &[]).await;
    h.publish(
        "recommendation.tracked",
        None,
        &json!({
            "event": "batch_open", "environment": "demo", "user_id": "user-1",
            "campaign_id": "weekly-47", "occurred_at": "2026-11-21T07:15:00Z"
        }),
    )
    .await;
    h.publish(
        "recommendation.tracked",
        None,
        &click("user-1", "1000001", "article-007"),
    )
    .await;
    let events = wait_for(T, || async {
        let events = h.sandbox.state.froomle_events();
        (events.len() >= 3).then_some(events)
    })
    .await
    .unwrap_or_else(|| panic!("events: {:?}", h.sandbox.state.froomle_events()));
    assert_eq!(events.len(), 3, "{events:?}");
    let of_type = |kind: &str| {
        events
            .iter()
            .position(|e| e["event_type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {events:?}"))
    };
    // The open and the click are handled concurrently; the pageview follows its click.
    let (open, clicked, pageview) = (
        of_type("batch_open"),
        of_type("batch_click_on_recommendation"),
        of_type("detail_pageview"),
    );
    assert_eq!(pageview, clicked + 1, "{events:?}");
    assert!(events.iter().all(|e| e["environment"] == "demo"));
    let open = &events[open]["event"];
    assert_eq!(
        (&open["campaign_id"], &open["channel"], &open["user_id"]),
        (&json!("weekly-47"), &json!("email"), &json!("user-1"))
    );
    let clicked = &events[clicked]["event"];
    assert_eq!(clicked["request_id"], "1000001");
    assert_eq!(clicked["campaign_id"], "weekly-47");
    assert_eq!(clicked["list_name"], "newsletter_top");
    assert_eq!(clicked["action_item"], "article-007");
    assert_eq!(clicked["action_item_type"], "article");
    let pageview = &events[pageview]["event"];
    assert_eq!(pageview["action_item"], "article-007");
    assert_eq!(pageview["action_item_type"], "article");
    assert_eq!(pageview["page_type"], "article_detail");
    // The click and its pageview travel in one events call.
    let event_calls = h
        .sandbox
        .state
        .calls(Provider::Froomle)
        .iter()
        .filter(|c| c.path.ends_with("/events"))
        .count();
    assert_eq!(event_calls, 2);
    assert!(h.take_ready().await.is_empty(), "tracking publishes no result");
    h.finish(&[]).await;
}

#[tokio::test]
async fn a_redelivered_tracking_message_sends_nothing_twice() {
    let h = RecommendationsHarness::start("reco-dedup", &[]).await;
    let id = uuid::Uuid::new_v4().to_string();
    let body = click("user-1", "1000001", "article-003");
    h.publish_as("recommendation.tracked", &id, None, &body).await;
    wait_for(T, || async {
        (h.sandbox.state.froomle_events().len() >= 2).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the first delivery sent nothing"));

    // The same message again, twice (an upstream retry, a broker redelivery).
    h.publish_as("recommendation.tracked", &id, None, &body).await;
    h.publish_as("recommendation.tracked", &id, None, &body).await;
    let duplicates = &[("type", "recommendation.tracked"), ("outcome", "duplicate")];
    wait_for(T, || async {
        (h.metric("switchyard_recommendation_outcomes_total", duplicates) >= 2.0).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the redeliveries were not recognised"));
    assert_eq!(h.sandbox.state.froomle_events().len(), 2, "nothing sent twice");
    assert_eq!(h.work_depth().await, 0);
    assert!(h.dead_letters().await.is_empty());

    // A different message with the same content is a new event.
    h.publish("recommendation.tracked", None, &body).await;
    wait_for(T, || async {
        (h.sandbox.state.froomle_events().len() >= 4).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("a new message must be sent"));
    h.finish(&[]).await;
}

/// A worker killed after Froomle accepted the events and before the ack: the redelivery
/// reaches a new process, whose in-process record is empty. The ledger in Redis remembers.
#[tokio::test]
async fn a_redelivery_after_a_restart_sends_nothing_twice_with_redis() {
    let mut h = RecommendationsHarness::start("reco-ledger", &[("REDIS_URL", "redis://127.0.0.1:6379/")]).await;
    let id = uuid::Uuid::new_v4().to_string();
    let body = click("user-2", "1000002", "article-004");
    h.publish_as("recommendation.tracked", &id, None, &body).await;
    wait_for(T, || async {
        (h.sandbox.state.froomle_events().len() >= 2).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the first delivery sent nothing"));
    wait_for(T, || async { (h.work_depth().await == 0).then_some(()) })
        .await
        .unwrap_or_else(|| panic!("the first delivery was not settled"));

    // A new process (empty in-process record) gets the same message again.
    assert!(matches!(h.stop_worker().await, Some(Ok(()))), "graceful stop");
    h.start_worker();
    h.publish_as("recommendation.tracked", &id, None, &body).await;
    let duplicates = &[("type", "recommendation.tracked"), ("outcome", "duplicate")];
    wait_for(T, || async {
        (h.metric("switchyard_recommendation_outcomes_total", duplicates) >= 1.0).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the restarted worker did not recognise the message"));
    assert_eq!(h.sandbox.state.froomle_events().len(), 2, "nothing sent twice");
    assert!(h.dead_letters().await.is_empty());
    h.finish(&[]).await;
}

#[tokio::test]
async fn a_failed_events_call_is_retried_and_then_sent_once() {
    let h = RecommendationsHarness::start("reco-retry", &[]).await;
    h.sandbox
        .state
        .set_fault(Provider::Froomle, Fault::forced(503, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    h.publish(
        "recommendation.tracked",
        None,
        &click("user-1", "1000001", "article-003"),
    )
    .await;
    wait_for(T, || async {
        (h.sandbox.state.froomle_events().len() >= 2).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the retry sent nothing"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.sandbox.state.froomle_events().len(), 2);
    assert!(h.dead_letters().await.is_empty());
    h.finish(&[]).await;
}

/// Runs `switchyard batch recommendations` in the harness's namespace; returns the exit code,
/// stderr, and the results queue the run declared.
async fn run_batch(
    h: &RecommendationsHarness,
    input: &Path,
    output: &Path,
    extra: &[&str],
) -> (Option<i32>, String, Vec<String>) {
    let result = tokio::process::Command::new(binary("switchyard"))
        .args(["batch", "recommendations", "--timeout", "15"])
        .args(extra)
        .arg("--in")
        .arg(input)
        .arg("--out")
        .arg(output)
        .env("SWITCHYARD_NAMESPACE", &h.namespace)
        .output()
        .await
        .unwrap_or_else(|e| panic!("switchyard: {e}"));
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    let queues = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("collecting answers on queue "))
        .map(str::to_owned)
        .collect();
    (result.status.code(), stderr, queues)
}

fn read_csv(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|line| line.split(',').map(str::to_owned).collect())
        .collect()
}

#[tokio::test]
async fn batch_csv_round_trip_with_a_malformed_row() {
    let h = RecommendationsHarness::start("reco-batch", &[]).await;
    let dir = std::env::temp_dir().join(format!("switchyard-batch-{}", h.namespace));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let output = dir.join("responses.csv");
    let input = workspace_root().join("samples/batch/requests.csv");

    let (code, stderr, mut queues) = run_batch(&h, &input, &output, &[]).await;
    assert_eq!(code, Some(1), "a malformed row makes the run fail: {stderr}");
    assert!(
        stderr.contains(r#"line 4: list_size: "ten" is not a whole number from 1 to 100"#),
        "{stderr}"
    );
    let rows = read_csv(&output);
    assert_eq!(
        rows[0].join(","),
        "user_id,list_name,rank,item_id,title,url,image_url,description,request_id"
    );
    // user-1001 (3), user-1002 (3), user-1004 (2), user-1005 (5); user-1003 was malformed.
    let users: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    let mut expected = vec!["user-1001"; 3];
    expected.extend(["user-1002"; 3]);
    expected.extend(["user-1004"; 2]);
    expected.extend(["user-1005"; 5]);
    assert_eq!(users, expected);
    let text = std::fs::read_to_string(&output).unwrap_or_default();
    assert!(text.contains("https://img.example.com/articles/"), "{text}");
    let requests = h.sandbox.state.froomle_requests();
    assert_eq!(requests.len(), 4, "only the good rows reach Froomle");
    for request in &requests {
        let request_id = request["request_id"].as_str().unwrap_or_default();
        assert!(text.contains(request_id), "request id {request_id} missing");
    }
    assert!(!dir.join("responses.csv.tmp").exists());

    // Only good rows, `;`-separated: every row answered, exit 0.
    let good = dir.join("good.csv");
    std::fs::write(
        &good,
        "environment;user_id;list_name;list_size;page_type\ndemo;user-2001;newsletter_top;2;newsletter\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let good_out = dir.join("good-responses.csv");
    let (code, stderr, more) = run_batch(&h, &good, &good_out, &["--delimiter", ";"]).await;
    queues.extend(more);
    assert_eq!(code, Some(0), "{stderr}");
    let text = std::fs::read_to_string(&good_out).unwrap_or_default();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines().skip(1).all(|l| l.starts_with("user-2001;newsletter_top;")),
        "{text}"
    );

    std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    h.finish(&queues).await;
}
