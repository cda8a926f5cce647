//! loyalty-events end to end: real RabbitMQ, the sandbox's Ecomail over HTTP, the worker
//! in-process. "Today" is always driven by the messages' `as_of`, never by the wall clock.

use std::time::Duration;

use integration_tests::loyalty::{LoyaltyHarness, Observed};
use serde_json::{Value, json};
use switchyard_sandbox::{Fault, Provider};

const T: Duration = Duration::from_secs(20);

fn expiring(customer: &str, email: &str, points: i64, expires_on: &str, as_of: &str) -> Value {
    json!({
        "customer_id": customer,
        "customer_email": email,
        "points": points,
        "expires_on": expires_on,
        "balance": 1250,
        "as_of": as_of
    })
}

fn statuses(results: &[Observed]) -> Vec<String> {
    let mut statuses: Vec<String> = results
        .iter()
        .map(|r| {
            let status = r.body["status"].as_str().unwrap_or_default();
            match r.body["reason"].as_str() {
                Some(reason) => format!("{status}:{reason}"),
                None => status.to_owned(),
            }
        })
        .collect();
    statuses.sort();
    statuses
}

fn labels(h: &LoyaltyHarness, email: &str) -> Vec<String> {
    h.events_for(email)
        .into_iter()
        .map(|e| e.label.unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn points_changed_sets_the_credit_fields_then_sends_the_credit_event() {
    let h = LoyaltyHarness::start("loy-credit", &[]).await;
    let email = "jana@example.com";
    h.seed_subscriber(email).await;
    let id = h
        .publish(
            "points.changed",
            &json!({
                "customer_id": "ellity-1",
                "customer_email": email,
                "balance": 1250,
                "delta": 150,
                "reason": "purchase",
                "next_expiration": {"points": 300, "expires_on": "2026-12-31"},
                "changed_at": "2026-11-20T10:15:00+01:00"
            }),
        )
        .await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    let result = &results[0];
    assert_eq!(result.kind, "loyalty.notified");
    assert_eq!(result.message_id, format!("{id}:notified"));
    assert_eq!(
        result.body,
        json!({
            "customer_id": "ellity-1",
            "source_type": "points.changed",
            "status": "sent",
            "event_label": "credit",
            "fields": ["ellity_credit", "ellity_next_expiration_date", "ellity_next_expiration_value"],
            "source_message_id": id
        })
    );

    let fields = h.custom_fields(email);
    assert_eq!(fields.get("ellity_credit"), Some(&json!(1250)));
    assert_eq!(fields.get("ellity_next_expiration_value"), Some(&json!(300)));
    assert_eq!(
        fields.get("ellity_next_expiration_date"),
        Some(&json!({"value": "2026-12-31", "type": "date"}))
    );
    let events = h.events_for(email);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].category.as_deref(), Some("ellity"));
    assert_eq!(events[0].action.as_deref(), Some("change"));
    assert_eq!(events[0].label.as_deref(), Some("credit"));
    let value: Value = serde_json::from_str(events[0].value.as_deref().unwrap_or("null")).unwrap_or_default();
    assert_eq!(value, json!({"credit": 1250, "change": 150, "reason": "purchase"}));
    // Fields first, then the event: the automation the event starts reads the new fields.
    let calls: Vec<String> = h
        .sandbox
        .state
        .calls(Provider::Ecomail)
        .into_iter()
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    let update = calls.iter().position(|c| c.contains("update-subscriber"));
    let event = calls.iter().position(|c| c.contains("tracker/events"));
    assert!(update.is_some() && update < event, "{calls:?}");
    h.finish().await;
}

#[tokio::test]
async fn pin_changed_sets_the_pin_field_and_sends_a_pin_event_without_the_pin() {
    let h = LoyaltyHarness::start("loy-pin", &[]).await;
    let email = "petr@example.cz";
    h.seed_subscriber(email).await;
    let id = h
        .publish(
            "pin.changed",
            &json!({"customer_id": "ellity-2", "customer_email": email, "pin": "4821", "changed_at": "2026-11-20T10:20:00Z"}),
        )
        .await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(results[0].body["status"], "sent");
    assert_eq!(results[0].body["event_label"], "pin");
    assert_eq!(results[0].body["fields"], json!(["ellity_pin"]));
    assert!(!results[0].body.to_string().contains("4821"));
    assert_eq!(results[0].message_id, format!("{id}:notified"));

    assert_eq!(h.custom_fields(email).get("ellity_pin"), Some(&json!("4821")));
    let events = h.events_for(email);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].category.as_deref(),
            events[0].action.as_deref(),
            events[0].label.as_deref()
        ),
        (Some("ellity"), Some("change"), Some("pin"))
    );
    assert_eq!(events[0].value, None, "the PIN must not travel in the event");
    h.finish().await;
}

#[tokio::test]
async fn a_redelivered_credit_message_sends_no_second_event() {
    let h = LoyaltyHarness::start("loy-credit-redelivery", &[]).await;
    let email = "eva@example.com";
    h.seed_subscriber(email).await;
    let body = json!({"customer_id": "ellity-3", "customer_email": email, "balance": 10, "delta": 10, "reason": "purchase", "changed_at": "2026-11-20T10:00:00Z"});
    let mut results = Vec::new();
    h.publish_with_id("points.changed", "credit-msg-1", &body).await;
    h.wait_results(&mut results, 1, T).await;
    h.publish_with_id("points.changed", "credit-msg-1", &body).await;
    h.wait_results(&mut results, 2, T).await;
    assert_eq!(statuses(&results), ["sent", "sent"]);
    assert!(results.iter().all(|r| r.message_id == "credit-msg-1:notified"));
    assert_eq!(labels(&h, email), ["credit"]);
    h.finish().await;
}

#[tokio::test]
async fn expiry_notice_goes_out_once_a_day_and_again_the_next_day() {
    let h = LoyaltyHarness::start("loy-expiry-daily", &[]).await;
    let email = "jana@example.com";
    h.seed_subscriber(email).await;
    let mut results = Vec::new();

    let first = h
        .publish(
            "points.expiring",
            &expiring("ellity-1", email, 300, "2026-12-31", "2026-12-24T02:00:00Z"),
        )
        .await;
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(results[0].message_id, format!("{first}:notified"));
    assert_eq!(results[0].body["status"], "sent");
    assert_eq!(results[0].body["event_label"], "expiry");
    let fields = h.custom_fields(email);
    assert_eq!(fields.get("ellity_next_expiration_value"), Some(&json!(300)));
    assert_eq!(
        fields.get("ellity_next_expiration_date"),
        Some(&json!({"value": "2026-12-31", "type": "date"}))
    );
    let events = h.events_for(email);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].category.as_deref(),
            events[0].action.as_deref(),
            events[0].label.as_deref()
        ),
        (Some("ellity"), Some("change"), Some("expiry"))
    );
    let value: Value = serde_json::from_str(events[0].value.as_deref().unwrap_or("null")).unwrap_or_default();
    assert_eq!(value, json!({"value": 300, "date": "2026-12-31"}));

    // The same day, later and with other numbers: no second notice.
    h.publish(
        "points.expiring",
        &expiring("ellity-1", email, 280, "2026-12-31", "2026-12-24T21:00:00Z"),
    )
    .await;
    h.wait_results(&mut results, 2, T).await;
    assert_eq!(results[1].body["status"], "skipped");
    assert_eq!(results[1].body["reason"], "already_notified_today");
    assert_eq!(labels(&h, email), ["expiry"]);

    // The next day: another notice.
    h.publish(
        "points.expiring",
        &expiring("ellity-1", email, 280, "2026-12-31", "2026-12-25T02:00:00Z"),
    )
    .await;
    h.wait_results(&mut results, 3, T).await;
    assert_eq!(results[2].body["status"], "sent");
    assert_eq!(labels(&h, email), ["expiry", "expiry"]);
    assert_eq!(
        h.custom_fields(email).get("ellity_next_expiration_value"),
        Some(&json!(280))
    );

    // Another customer the same day is not affected.
    let other = "petr@example.cz";
    h.seed_subscriber(other).await;
    h.publish(
        "points.expiring",
        &expiring("ellity-2", other, 5, "2026-12-31", "2026-12-25T03:00:00Z"),
    )
    .await;
    h.wait_results(&mut results, 4, T).await;
    assert_eq!(results[3].body["status"], "sent");
    assert_eq!(labels(&h, other), ["expiry"]);
    h.finish().await;
}

#[tokio::test]
async fn a_redelivered_expiry_message_republishes_its_result_without_a_second_notice() {
    let h = LoyaltyHarness::start("loy-expiry-redelivery", &[]).await;
    let email = "jana@example.com";
    h.seed_subscriber(email).await;
    let body = expiring("ellity-1", email, 300, "2026-12-31", "2026-12-24T02:00:00Z");
    let mut results = Vec::new();
    h.publish_with_id("points.expiring", "expiry-msg-1", &body).await;
    h.wait_results(&mut results, 1, T).await;
    h.publish_with_id("points.expiring", "expiry-msg-1", &body).await;
    h.wait_results(&mut results, 2, T).await;
    assert_eq!(statuses(&results), ["sent", "sent"]);
    assert!(results.iter().all(|r| r.message_id == "expiry-msg-1:notified"));
    assert_eq!(labels(&h, email), ["expiry"]);
    h.finish().await;
}

#[tokio::test]
async fn simultaneous_expiry_messages_for_one_customer_send_one_notice() {
    let h = LoyaltyHarness::start("loy-expiry-race", &[]).await;
    let email = "jana@example.com";
    h.seed_subscriber(email).await;
    for hour in ["01", "02", "03", "04"] {
        h.publish(
            "points.expiring",
            &expiring(
                "ellity-1",
                email,
                300,
                "2026-12-31",
                &format!("2026-12-24T{hour}:00:00Z"),
            ),
        )
        .await;
    }
    let mut results = Vec::new();
    h.wait_results(&mut results, 4, T).await;
    h.settle(&mut results).await;
    assert_eq!(
        statuses(&results),
        [
            "sent",
            "skipped:already_notified_today",
            "skipped:already_notified_today",
            "skipped:already_notified_today"
        ]
    );
    assert_eq!(labels(&h, email), ["expiry"]);
    assert!(h.dead_letters().await.is_empty());
    h.finish().await;
}

#[tokio::test]
async fn no_notice_for_zero_points_or_outside_the_window() {
    let h = LoyaltyHarness::start("loy-expiry-none", &[("LOYALTY_EXPIRY_NOTICE_DAYS", "3")]).await;
    let email = "jana@example.com";
    h.seed_subscriber(email).await;
    let mut results = Vec::new();
    h.publish(
        "points.expiring",
        &expiring("ellity-1", email, 0, "2026-12-25", "2026-12-24T02:00:00Z"),
    )
    .await;
    h.publish(
        "points.expiring",
        &expiring("ellity-1", email, 100, "2026-12-28", "2026-12-24T02:00:00Z"),
    )
    .await;
    h.publish(
        "points.expiring",
        &expiring("ellity-1", email, 100, "2026-12-23", "2026-12-24T02:00:00Z"),
    )
    .await;
    h.wait_results(&mut results, 3, T).await;
    h.settle(&mut results).await;
    assert_eq!(
        statuses(&results),
        [
            "skipped:outside_notice_window",
            "skipped:outside_notice_window",
            "skipped:zero_points"
        ]
    );
    assert!(h.events_for(email).is_empty());
    assert!(!h.custom_fields(email).contains_key("ellity_next_expiration_value"));
    // A skipped message does not use up the day: a due notice still goes out.
    h.publish(
        "points.expiring",
        &expiring("ellity-1", email, 100, "2026-12-27", "2026-12-24T02:00:00Z"),
    )
    .await;
    h.wait_results(&mut results, 4, T).await;
    assert_eq!(results[3].body["status"], "sent");
    h.finish().await;
}

#[tokio::test]
async fn disabled_notices_send_nothing() {
    let h = LoyaltyHarness::start("loy-expiry-off", &[("LOYALTY_EXPIRY_NOTICE_DAYS", "off")]).await;
    let email = "jana@example.com";
    h.seed_subscriber(email).await;
    let calls_before = h.sandbox.state.calls(Provider::Ecomail).len();
    h.publish(
        "points.expiring",
        &expiring("ellity-1", email, 300, "2026-12-24", "2026-12-24T02:00:00Z"),
    )
    .await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(statuses(&results), ["skipped:notices_disabled"]);
    assert_eq!(h.sandbox.state.calls(Provider::Ecomail).len(), calls_before);
    assert!(h.events_for(email).is_empty());
    h.finish().await;
}

#[tokio::test]
async fn today_follows_the_configured_timezone() {
    let h = LoyaltyHarness::start("loy-expiry-tz", &[("LOYALTY_TIMEZONE_OFFSET", "+01:00")]).await;
    let email = "jana@example.com";
    h.seed_subscriber(email).await;
    let mut results = Vec::new();
    // 23:30 UTC on the 23rd is already the 24th in +01:00, like 10:00 UTC on the 24th.
    h.publish(
        "points.expiring",
        &expiring("ellity-1", email, 300, "2026-12-31", "2026-12-23T23:30:00Z"),
    )
    .await;
    h.wait_results(&mut results, 1, T).await;
    h.publish(
        "points.expiring",
        &expiring("ellity-1", email, 300, "2026-12-31", "2026-12-24T10:00:00Z"),
    )
    .await;
    h.wait_results(&mut results, 2, T).await;
    assert_eq!(statuses(&results), ["sent", "skipped:already_notified_today"]);
    assert_eq!(labels(&h, email), ["expiry"]);
    h.finish().await;
}

#[tokio::test]
async fn once_a_day_survives_a_restart_with_redis() {
    let mut h = LoyaltyHarness::start("loy-expiry-redis", &[("REDIS_URL", "redis://127.0.0.1:6379/0")]).await;
    let email = "jana@example.com";
    h.seed_subscriber(email).await;
    let mut results = Vec::new();
    h.publish(
        "points.expiring",
        &expiring("ellity-1", email, 300, "2026-12-31", "2026-12-24T02:00:00Z"),
    )
    .await;
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(results[0].body["status"], "sent");
    // A new process (or another replica) sees the record.
    assert!(h.stop_worker().await.is_some_and(|r| r.is_ok()));
    h.start_worker();
    h.publish(
        "points.expiring",
        &expiring("ellity-1", email, 300, "2026-12-31", "2026-12-24T03:00:00Z"),
    )
    .await;
    h.wait_results(&mut results, 2, T).await;
    assert_eq!(results[1].body["reason"], "already_notified_today");
    h.publish(
        "points.expiring",
        &expiring("ellity-1", email, 300, "2026-12-31", "2026-12-25T03:00:00Z"),
    )
    .await;
    h.wait_results(&mut results, 3, T).await;
    assert_eq!(results[2].body["status"], "sent");
    assert_eq!(labels(&h, email), ["expiry", "expiry"]);
    h.finish().await;
}

#[tokio::test]
async fn subscription_changes_request_an_award_and_a_deduction() {
    let h = LoyaltyHarness::start("loy-subscription", &[("LOYALTY_UNSUBSCRIBE_POINTS", "30")]).await;
    let joined = h
        .publish(
            "loyalty.subscription.changed",
            &json!({"email": "Jana@Example.com", "status": "SUBSCRIBED", "list_id": 7, "occurred_at": "2026-11-20T10:30:00Z", "event_id": "wh-1"}),
        )
        .await;
    let left = h
        .publish(
            "loyalty.subscription.changed",
            &json!({"email": "petr@example.cz", "status": "UNSUBSCRIBED", "list_id": 7, "occurred_at": "2026-11-22T08:00:00Z"}),
        )
        .await;
    let other = h
        .publish(
            "loyalty.subscription.changed",
            &json!({"email": "petr@example.cz", "status": "SUBSCRIBED", "list_id": 99, "occurred_at": "2026-11-22T08:00:00Z"}),
        )
        .await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 3, T).await;
    h.settle(&mut results).await;
    assert_eq!(results.len(), 3, "{results:?}");
    let by_id = |id: &str| {
        results
            .iter()
            .find(|r| r.body["source_message_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no result for {id}: {results:?}"))
    };
    let award = by_id(&joined);
    assert_eq!(award.kind, "loyalty.points.adjust.requested");
    assert_eq!(award.message_id, format!("{joined}:points-adjust"));
    assert_eq!(
        award.body,
        json!({
            "email": "Jana@Example.com",
            "email_sha256": loyalty_events::handler::email_sha256("jana@example.com"),
            "points": 50,
            "reason": "newsletter_subscribed",
            "list_id": 7,
            "occurred_at": "2026-11-20T10:30:00Z",
            "source_event_id": "wh-1",
            "source_message_id": joined
        })
    );
    let deduction = by_id(&left);
    assert_eq!(deduction.kind, "loyalty.points.adjust.requested");
    assert_eq!(deduction.body["points"], -30);
    assert_eq!(deduction.body["reason"], "newsletter_unsubscribed");
    let ignored = by_id(&other);
    assert_eq!(ignored.kind, "loyalty.notified");
    assert_eq!(ignored.body["reason"], "other_list");
    // No provider call for subscription changes.
    assert!(h.sandbox.state.calls(Provider::Ecomail).is_empty());

    // A redelivery yields the same message id, so the loyalty system can apply it once.
    h.publish_with_id(
        "loyalty.subscription.changed",
        &joined,
        &json!({"email": "Jana@Example.com", "status": "SUBSCRIBED", "list_id": 7, "occurred_at": "2026-11-20T10:30:00Z", "event_id": "wh-1"}),
    )
    .await;
    let mut again = Vec::new();
    h.wait_results(&mut again, 1, T).await;
    assert_eq!(again[0].message_id, award.message_id);
    h.finish().await;
}

#[tokio::test]
async fn a_customer_missing_from_the_list_is_retried_then_skipped() {
    let h = LoyaltyHarness::start("loy-missing", &[]).await;
    h.publish(
        "points.changed",
        &json!({"customer_id": "ellity-9", "customer_email": "nobody@example.com", "balance": 1, "delta": 1, "reason": "purchase", "changed_at": "2026-11-20T10:00:00Z"}),
    )
    .await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(statuses(&results), ["skipped:not_in_list"]);
    // Tried on every attempt (contact-sync may add the customer meanwhile), never added.
    let updates = h
        .sandbox
        .state
        .calls(Provider::Ecomail)
        .into_iter()
        .filter(|c| c.path.contains("update-subscriber"))
        .count();
    assert_eq!(updates, 3);
    assert!(h.sandbox.state.ecomail_subscriber(7, "nobody@example.com").is_none());
    assert!(h.dead_letters().await.is_empty());
    h.finish().await;
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_dead_letter() {
    let h = LoyaltyHarness::start("loy-faults", &[]).await;
    let email = "jana@example.com";
    h.seed_subscriber(email).await;
    h.sandbox
        .state
        .set_fault(Provider::Ecomail, Fault::forced(503, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    h.publish(
        "pin.changed",
        &json!({"customer_id": "ellity-1", "customer_email": email, "pin": "1111", "changed_at": "2026-11-20T10:00:00Z"}),
    )
    .await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(statuses(&results), ["sent"]);
    assert_eq!(labels(&h, email), ["pin"]);

    h.sandbox
        .state
        .set_fault(Provider::Ecomail, Fault::forced(400, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    let id = h
        .publish(
            "pin.changed",
            &json!({"customer_id": "ellity-1", "customer_email": email, "pin": "2222", "changed_at": "2026-11-21T10:00:00Z"}),
        )
        .await;
    h.wait_results(&mut results, 2, T).await;
    assert_eq!(results[1].body["status"], "failed");
    let letters = h.wait_dead_letters(1, T).await;
    assert_eq!(letters[0].class, "permanent");
    assert_eq!(letters[0].message_id.as_deref(), Some(id.as_str()));
    for text in [letters[0].error.clone(), results[1].body.to_string()] {
        assert!(!text.contains("2222") && !text.contains(email), "{text}");
    }
    assert_eq!(labels(&h, email), ["pin"]);
    h.finish().await;
}

#[tokio::test]
async fn an_invalid_pin_message_is_dead_lettered_without_the_pin() {
    let h = LoyaltyHarness::start("loy-invalid", &[]).await;
    h.publish(
        "pin.changed",
        &json!({"customer_id": "ellity-1", "customer_email": "jana@example.com", "pin": "12 34", "changed_at": "2026-11-20T10:00:00Z"}),
    )
    .await;
    let letters = h.wait_dead_letters(1, T).await;
    assert_eq!(letters[0].class, "invalid");
    assert!(
        letters[0].error.contains("/pin") && !letters[0].error.contains("12 34"),
        "{}",
        letters[0].error
    );
    assert!(h.sandbox.state.calls(Provider::Ecomail).is_empty());
    h.finish().await;
}

/// The Ecomail calls that reached the sandbox after the test's seeding subscribes, as
/// `METHOD last-path-segment`.
fn ecomail_calls(h: &LoyaltyHarness) -> Vec<String> {
    h.sandbox
        .state
        .calls(Provider::Ecomail)
        .into_iter()
        .filter(|c| !c.path.ends_with("/subscribe"))
        .map(|c| {
            let operation = c.path.rsplit('/').next().unwrap_or_default().to_owned();
            format!("{} {operation}", c.method)
        })
        .collect()
}

/// Loyalty-events with a linger long enough that a burst of notices shares one bulk call.
const BURST: &[(&str, &str)] = &[("LOYALTY_EVENTS_BULK_LINGER", "500ms")];

fn pin(customer: &str, email: &str, pin: &str) -> Value {
    json!({"customer_id": customer, "customer_email": email, "pin": pin, "changed_at": "2026-11-20T10:00:00Z"})
}

#[tokio::test]
async fn a_burst_of_notices_shares_one_bulk_field_update_before_its_events() {
    let h = LoyaltyHarness::start("loy-bulk", BURST).await;
    let emails: Vec<String> = (0..5).map(|i| format!("bulk{i}@example.cz")).collect();
    for email in &emails {
        h.seed_subscriber(email).await;
    }
    for (i, email) in emails.iter().enumerate() {
        h.publish("pin.changed", &pin(&format!("ellity-{i}"), email, &format!("100{i}")))
            .await;
    }
    let mut results = Vec::new();
    h.wait_results(&mut results, 5, T).await;
    assert_eq!(statuses(&results), ["sent"; 5]);

    let calls = ecomail_calls(&h);
    assert_eq!(calls[0], "PUT update-subscriber-bulk", "{calls:?}");
    assert_eq!(
        calls.iter().filter(|c| c.contains("update-subscriber")).count(),
        1,
        "{calls:?}"
    );
    assert_eq!(calls[1..], ["POST events"; 5], "{calls:?}");
    let all = h.sandbox.state.calls(Provider::Ecomail);
    let bulk = all.iter().find(|c| c.path.ends_with("/update-subscriber-bulk"));
    let body = bulk.and_then(|c| c.body.clone()).unwrap_or_default();
    assert_eq!(body["allow_resubscribe"], json!(false));
    assert_eq!(body["subscriber_data"].as_array().map(Vec::len), Some(5), "{body}");
    for (i, email) in emails.iter().enumerate() {
        assert_eq!(
            h.custom_fields(email).get("ellity_pin"),
            Some(&json!(format!("100{i}")))
        );
        assert_eq!(labels(&h, email), ["pin"]);
    }
    h.finish().await;
}

#[tokio::test]
async fn a_bulk_update_with_a_missing_subscriber_finds_it_with_single_updates() {
    let h = LoyaltyHarness::start("loy-bulk-missing", BURST).await;
    let present = ["here0@example.cz", "here1@example.cz", "here2@example.cz"];
    for email in present {
        h.seed_subscriber(email).await;
    }
    for (i, email) in present.iter().chain(["gone@example.cz"].iter()).enumerate() {
        h.publish("pin.changed", &pin(&format!("ellity-{i}"), email, "4242"))
            .await;
    }
    let mut results = Vec::new();
    h.wait_results(&mut results, 4, T).await;
    assert_eq!(statuses(&results), ["sent", "sent", "sent", "skipped:not_in_list"]);

    // The bulk call updated three of four; Ecomail's count does not say who is missing, so
    // each entry went again on its own, and only the missing one was retried after that.
    let calls = ecomail_calls(&h);
    assert_eq!(calls[0], "PUT update-subscriber-bulk", "{calls:?}");
    assert_eq!(
        calls.iter().filter(|c| *c == "PUT update-subscriber-bulk").count(),
        1,
        "{calls:?}"
    );
    // 4 after the short count, then 2 more attempts of the missing one (3 attempts in all).
    assert_eq!(
        calls.iter().filter(|c| *c == "PUT update-subscriber").count(),
        6,
        "{calls:?}"
    );
    for email in present {
        assert_eq!(h.custom_fields(email).get("ellity_pin"), Some(&json!("4242")));
        assert_eq!(labels(&h, email), ["pin"]);
    }
    assert!(h.events_for("gone@example.cz").is_empty());
    assert!(h.sandbox.state.ecomail_subscriber(7, "gone@example.cz").is_none());
    assert!(h.dead_letters().await.is_empty());
    h.finish().await;
}

#[tokio::test]
async fn bulk_field_updates_can_be_switched_off() {
    let h = LoyaltyHarness::start("loy-bulk-off", &[("LOYALTY_EVENTS_BULK", "false")]).await;
    for i in 0..3 {
        let email = format!("single{i}@example.cz");
        h.seed_subscriber(&email).await;
    }
    for i in 0..3 {
        h.publish(
            "pin.changed",
            &pin(&format!("ellity-{i}"), &format!("single{i}@example.cz"), "7777"),
        )
        .await;
    }
    let mut results = Vec::new();
    h.wait_results(&mut results, 3, T).await;
    assert_eq!(statuses(&results), ["sent"; 3]);
    let calls = ecomail_calls(&h);
    assert_eq!(
        calls.iter().filter(|c| *c == "PUT update-subscriber").count(),
        3,
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c.contains("bulk")), "{calls:?}");
    h.finish().await;
}
