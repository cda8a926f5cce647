//! contact-sync end to end: real RabbitMQ, the sandbox over HTTP, the worker in-process.

use std::time::Duration;

use integration_tests::{Harness, wait_for};
use serde_json::{Value, json};
use switchyard_sandbox::{Fault, Provider};

const T: Duration = Duration::from_secs(20);

fn contact(id: &str, email: &str) -> Value {
    json!({
        "contact_id": id,
        "email": email,
        "first_name": "Jana",
        "last_name": "Nováková",
        "city": "Brno",
        "country": "CZ",
        "language": "cs - eshop-cz - b2c",
        "permissions": {"newsletter": true, "offers": false},
        "attributes": {"loyalty_tier": "gold"},
        "changed_at": "2026-11-20T10:00:00Z"
    })
}

fn with_order(mut body: Value, order_id: &str, placed_at: &str) -> Value {
    body["order"] = json!({"order_id": order_id, "placed_at": placed_at, "total": 10.0, "currency": "CZK"});
    body
}

fn statuses(results: &[Value], destination: &str) -> Vec<String> {
    results
        .iter()
        .filter(|r| r["destination"] == destination)
        .map(|r| r["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn contact_lands_in_both_providers_with_mapped_fields() {
    let h = Harness::start("lands", &[]).await;
    let id = h
        .publish("contact.changed", &contact("shop-1", "jana@example.com"))
        .await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 2, T).await;
    assert_eq!(statuses(&results, "spotler"), ["synced"]);
    assert_eq!(statuses(&results, "ecomail"), ["synced"]);
    assert!(results.iter().all(|r| r["source_message_id"] == id.as_str()));

    let spotler = h
        .sandbox
        .state
        .spotler_contact("shop-1")
        .unwrap_or_else(|| panic!("not in Spotler"));
    assert_eq!(spotler.properties["email"], "jana@example.com");
    assert_eq!(spotler.properties["firstName"], "Jana");
    assert_eq!(spotler.properties["lastName"], "Nováková");
    assert_eq!(spotler.properties["language"], "cs - eshop-cz - b2c");
    assert_eq!(spotler.properties["loyaltyTier"], "gold");
    let permissions = spotler.properties["permissions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        permissions.contains(&json!({"bit": 1, "enabled": true})),
        "{permissions:?}"
    );
    assert!(
        permissions.contains(&json!({"bit": 2, "enabled": false})),
        "{permissions:?}"
    );

    let ecomail = h
        .sandbox
        .state
        .ecomail_subscriber(7, "jana@example.com")
        .unwrap_or_else(|| panic!("not in Ecomail"));
    assert_eq!(ecomail.name.as_deref(), Some("Jana"));
    assert_eq!(ecomail.surname.as_deref(), Some("Nováková"));
    assert_eq!(ecomail.city.as_deref(), Some("Brno"));
    assert_eq!(
        ecomail.custom_fields.get("language"),
        Some(&json!("cs - eshop-cz - b2c"))
    );
    assert_eq!(ecomail.custom_fields.get("loyalty_tier"), Some(&json!("gold")));
    assert!(ecomail.tags.contains(&"newsletter".to_owned()) && !ecomail.tags.contains(&"offers".to_owned()));
    h.finish().await;
}

#[tokio::test]
async fn second_order_moves_last_purchase_date_but_not_first() {
    let h = Harness::start("orders", &[]).await;
    let mut results = Vec::new();
    h.publish(
        "contact.changed",
        &with_order(contact("shop-2", "piet@example.nl"), "o-1", "2026-03-01T09:00:00Z"),
    )
    .await;
    h.wait_results(&mut results, 2, T).await;
    h.publish(
        "contact.changed",
        &with_order(contact("shop-2", "piet@example.nl"), "o-2", "2026-11-21T09:00:00Z"),
    )
    .await;
    h.wait_results(&mut results, 4, T).await;
    assert!(results.iter().all(|r| r["status"] == "synced"), "{results:?}");

    let spotler = h
        .sandbox
        .state
        .spotler_contact("shop-2")
        .unwrap_or_else(|| panic!("not in Spotler"));
    assert_eq!(spotler.properties["firstPurchaseDate"], "2026-03-01");
    assert_eq!(spotler.properties["lastPurchaseDate"], "2026-11-21");
    let ecomail = h
        .sandbox
        .state
        .ecomail_subscriber(7, "piet@example.nl")
        .unwrap_or_else(|| panic!("not in Ecomail"));
    let value = |key: &str| {
        let field = ecomail.custom_fields.get(key).cloned().unwrap_or(Value::Null);
        field.get("value").cloned().unwrap_or(field)
    };
    assert_eq!(value("first_purchase_date"), "2026-03-01");
    assert_eq!(value("last_purchase_date"), "2026-11-21");
    h.finish().await;
}

#[tokio::test]
async fn orders_for_one_contact_handled_together_keep_the_right_dates() {
    let h = Harness::start("orders-burst", &[]).await;
    let mut results = Vec::new();
    // Published back to back: both are in flight at once (prefetch 32), newest first.
    h.publish(
        "contact.changed",
        &with_order(contact("shop-11", "b@example.nl"), "o-2", "2026-11-21T09:00:00Z"),
    )
    .await;
    h.publish(
        "contact.changed",
        &with_order(contact("shop-11", "b@example.nl"), "o-1", "2026-03-01T09:00:00Z"),
    )
    .await;
    h.wait_results(&mut results, 4, T).await;
    let spotler = h
        .sandbox
        .state
        .spotler_contact("shop-11")
        .unwrap_or_else(|| panic!("not in Spotler"));
    assert_eq!(spotler.properties["firstPurchaseDate"], "2026-03-01");
    assert_eq!(spotler.properties["lastPurchaseDate"], "2026-11-21");
    h.finish().await;
}

#[tokio::test]
async fn invalid_inputs_are_dead_lettered_with_class_and_path_and_no_provider_call() {
    let h = Harness::start("invalid", &[("SWITCHYARD_MAX_BODY_BYTES", "4096")]).await;
    // Schema violation.
    h.publish(
        "contact.changed",
        &json!({"contact_id": "x-1", "email": "nope", "changed_at": "2026-11-20T10:00:00Z"}),
    )
    .await;
    // Broken JSON, no message id, oversized: published raw.
    let raw = |id: Option<&str>, body: Vec<u8>| {
        let properties = mq::publisher::json_properties(id.unwrap_or(""), "contact.changed", None, Default::default());
        let properties = if id.is_none() {
            properties.with_message_id("".into())
        } else {
            properties
        };
        (properties, body)
    };
    for (properties, body) in [
        raw(Some("broken-json"), b"{\"contact_id\": ".to_vec()),
        raw(
            None,
            serde_json::to_vec(&contact("x-2", "a@example.com")).unwrap_or_default(),
        ),
        raw(Some("too-big"), vec![b' '; 5000]),
    ] {
        h.admin
            .publish_raw("contact.changed", properties, &body)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let letters = h.wait_dead_letters(4, T).await;
    assert!(letters.iter().all(|l| l.class == "invalid"), "{letters:?}");
    let errors: Vec<&str> = letters.iter().map(|l| l.error.as_str()).collect();
    assert!(errors.iter().any(|e| e.contains("at /email")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("not valid JSON")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("message_id")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("over the limit")), "{errors:?}");
    assert!(
        letters.iter().all(|l| l.attempt == Some(1)),
        "invalid messages are never retried"
    );
    assert!(
        h.sandbox.state.all_calls().is_empty(),
        "no provider call for invalid input"
    );
    h.finish().await;
}

#[tokio::test]
async fn a_500_then_success_is_retried_through_a_delay_tier_and_delivered_once() {
    let h = Harness::start("retry", &[]).await;
    h.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::forced(500, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    h.publish("contact.changed", &contact("shop-3", "r@example.com")).await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 2, T).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    results.extend(h.take_results().await);
    assert_eq!(statuses(&results, "spotler"), ["synced"], "exactly one Spotler result");
    assert_eq!(
        statuses(&results, "ecomail"),
        ["synced"],
        "Ecomail is not redone by the Spotler retry"
    );
    let spotler_inserts: Vec<u16> = h
        .sandbox
        .state
        .calls(Provider::Spotler)
        .iter()
        .filter(|c| c.method == "POST")
        .map(|c| c.status)
        .collect();
    assert_eq!(spotler_inserts, [500, 204]);
    assert_eq!(
        h.sandbox.state.calls(Provider::Ecomail).len(),
        1,
        "the retry is scoped to Spotler"
    );
    assert_eq!(h.metric("switchyard_retries_total", &[("tier", "200ms")]), 1.0);
    assert!(h.dead_letters().await.is_empty());
    h.finish().await;
}

#[tokio::test]
async fn a_400_is_dead_lettered_as_permanent_with_the_provider_message() {
    let h = Harness::start("perm", &[]).await;
    h.sandbox
        .state
        .set_fault(Provider::Ecomail, Fault::forced(400, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    h.publish("contact.changed", &contact("shop-4", "p@example.com")).await;
    let letters = h.wait_dead_letters(1, T).await;
    assert_eq!(letters[0].class, "permanent");
    assert!(
        letters[0].error.contains("ecomail") && letters[0].error.contains("HTTP 400"),
        "{}",
        letters[0].error
    );
    assert!(
        letters[0].error.contains("Forced failure"),
        "the provider's message: {}",
        letters[0].error
    );
    assert_eq!(letters[0].scope.as_deref(), Some("ecomail"));
    let mut results = Vec::new();
    h.wait_results(&mut results, 2, T).await;
    assert_eq!(statuses(&results, "spotler"), ["synced"]);
    assert_eq!(statuses(&results, "ecomail"), ["failed"]);
    assert_eq!(h.sandbox.state.calls(Provider::Ecomail).len(), 1, "never retried");
    h.finish().await;
}

#[tokio::test]
async fn a_429_with_retry_after_delays_without_spending_attempts() {
    let h = Harness::start("ratelimit", &[("SWITCHYARD_MAX_ATTEMPTS", "1")]).await;
    let fault = Fault::forced(429, 2).with_retry_after(1);
    h.sandbox
        .state
        .set_fault(Provider::Spotler, fault)
        .unwrap_or_else(|e| panic!("{e}"));
    h.publish("contact.changed", &contact("shop-5", "l@example.com")).await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 2, T).await;
    assert!(results.iter().all(|r| r["status"] == "synced"), "{results:?}");
    assert!(
        h.dead_letters().await.is_empty(),
        "a rate limit is never a failure, even with one attempt allowed"
    );
    let calls = h.sandbox.state.calls(Provider::Spotler);
    let statuses: Vec<u16> = calls.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [429, 429, 204]);
    let at =
        |i: usize| time::OffsetDateTime::parse(&calls[i].received_at, &time::format_description::well_known::Rfc3339);
    let (first, second, third) = (at(0).ok(), at(1).ok(), at(2).ok());
    if let (Some(a), Some(b), Some(c)) = (first, second, third) {
        assert!(
            b - a >= time::Duration::milliseconds(950),
            "no call before Retry-After: {:?}",
            b - a
        );
        assert!(
            c - b >= time::Duration::milliseconds(950),
            "no call before Retry-After: {:?}",
            c - b
        );
    } else {
        panic!("unparseable timestamps: {calls:?}");
    }
    assert_eq!(
        h.metric(
            "switchyard_rate_limited_total",
            &[("provider", "spotler"), ("source", "vendor")]
        ),
        2.0
    );
    h.finish().await;
}

#[tokio::test]
async fn a_long_retry_after_parks_the_message_instead_of_holding_it() {
    // The worker may hold a delivery 2 s (budget wait 1 s); the vendor asks for 3 s.
    let h = Harness::start(
        "park",
        &[
            ("CONTACT_SYNC_DESTINATIONS", "spotler"),
            ("SWITCHYARD_MAX_HOLD", "2s"),
            ("SWITCHYARD_MAX_ATTEMPTS", "1"),
        ],
    )
    .await;
    let fault = Fault::forced(429, 1).with_retry_after(3);
    h.sandbox
        .state
        .set_fault(Provider::Spotler, fault)
        .unwrap_or_else(|e| panic!("{e}"));
    h.publish("contact.changed", &contact("shop-12", "park@example.com"))
        .await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(statuses(&results, "spotler"), ["synced"]);
    assert!(
        h.metric("switchyard_messages_total", &[("outcome", "parked")]) >= 1.0,
        "the delivery was parked, not held"
    );
    assert!(
        h.dead_letters().await.is_empty(),
        "parking spends no attempt, even with one allowed"
    );
    let calls = h.sandbox.state.calls(Provider::Spotler);
    let statuses: Vec<u16> = calls.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [429, 204], "no call while the destination is paused");
    h.finish().await;
}

#[tokio::test]
async fn exhausted_retries_dead_letter_as_exhausted() {
    let h = Harness::start("exhaust", &[("CONTACT_SYNC_DESTINATIONS", "spotler")]).await;
    h.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::forced(503, 100))
        .unwrap_or_else(|e| panic!("{e}"));
    h.publish("contact.changed", &contact("shop-6", "e@example.com")).await;
    let letters = h.wait_dead_letters(1, T).await;
    assert_eq!(letters[0].class, "exhausted");
    assert_eq!(letters[0].attempt, Some(3));
    assert!(letters[0].error.contains("HTTP 503"), "{}", letters[0].error);
    assert_eq!(
        h.sandbox.state.calls(Provider::Spotler).len(),
        3,
        "one call per attempt"
    );
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(
        statuses(&results, "spotler"),
        ["failed"],
        "the final failure is reported"
    );
    h.finish().await;
}

#[tokio::test]
async fn an_unroutable_routing_key_lands_in_switchyard_unroutable() {
    let h = Harness::start("unroutable", &[]).await;
    h.publish("contact.chagned", &contact("shop-7", "u@example.com")).await;
    let depth = wait_for(T, || async {
        let depth = h.depth("switchyard.unroutable").await;
        (depth >= 1).then_some(depth)
    })
    .await;
    assert_eq!(depth, Some(1));
    assert!(h.sandbox.state.all_calls().is_empty());
    h.finish().await;
}

#[tokio::test]
async fn deleted_contact_is_anonymized_and_deactivated_one_inactivated() {
    let h = Harness::start("gdpr", &[]).await;
    let mut results = Vec::new();
    h.publish("contact.changed", &contact("shop-8", "g@example.com")).await;
    h.publish("contact.changed", &contact("shop-9", "i@example.com")).await;
    h.wait_results(&mut results, 4, T).await;
    h.publish(
        "contact.deleted",
        &json!({"contact_id": "shop-8", "deleted_at": "2026-11-22T08:00:00Z"}),
    )
    .await;
    h.publish(
        "contact.deactivated",
        &json!({"contact_id": "shop-9", "deactivated_at": "2026-11-22T08:00:00Z"}),
    )
    .await;
    h.wait_results(&mut results, 6, T).await;
    let ops: Vec<(&str, &str)> = results[4..]
        .iter()
        .map(|r| {
            (
                r["operation"].as_str().unwrap_or_default(),
                r["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        ops.contains(&("anonymize", "synced")) && ops.contains(&("inactivate", "synced")),
        "{ops:?}"
    );
    let anonymized = h
        .sandbox
        .state
        .spotler_contact("shop-8")
        .unwrap_or_else(|| panic!("gone"));
    assert!(anonymized.anonymized && anonymized.properties["email"] != "g@example.com");
    assert!(h.sandbox.state.spotler_contact("shop-9").is_some_and(|c| c.inactive));
    h.finish().await;
}

#[tokio::test]
async fn dlq_replay_redelivers_a_fixed_message() {
    let h = Harness::start("replay", &[("CONTACT_SYNC_DESTINATIONS", "spotler")]).await;
    h.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::forced(400, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    let id = h.publish("contact.changed", &contact("shop-10", "d@example.com")).await;
    let letters = h.wait_dead_letters(1, T).await;
    assert_eq!(letters[0].message_id.as_deref(), Some(id.as_str()));
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(statuses(&results, "spotler"), ["failed"]);
    // The cause is fixed (the fault is used up); replay.
    let replayed = h
        .admin
        .replay(contact_sync::config::WORKER, &Default::default(), 100, false, |_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replayed.len(), 1);
    h.wait_results(&mut results, 2, T).await;
    assert_eq!(statuses(&results, "spotler"), ["failed", "synced"]);
    assert!(
        h.dead_letters().await.is_empty(),
        "the replayed letter left the dead queue"
    );
    assert!(h.sandbox.state.spotler_contact("shop-10").is_some());
    h.finish().await;
}

#[tokio::test]
async fn dlq_purge_with_a_filter_deletes_only_the_matching_letters() {
    let h = Harness::start("purge", &[("CONTACT_SYNC_DESTINATIONS", "spotler")]).await;
    h.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::forced(400, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    h.publish("contact.changed", &contact("shop-13", "p1@example.com"))
        .await;
    h.wait_dead_letters(1, T).await;
    h.publish(
        "contact.changed",
        &json!({"contact_id": "x-13", "email": "nope", "changed_at": "2026-11-20T10:00:00Z"}),
    )
    .await;
    h.wait_dead_letters(2, T).await;
    let invalid = mq::admin::DeadLetterFilter {
        class: Some("invalid".into()),
        ..Default::default()
    };
    let worker = contact_sync::config::WORKER;
    let dry = h
        .admin
        .purge_matching(worker, &invalid, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dry.len(), 1);
    assert_eq!(h.dead_letters().await.len(), 2, "a dry run changes nothing");
    let purged = h
        .admin
        .purge_matching(worker, &invalid, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(purged.iter().map(|l| l.class.as_str()).collect::<Vec<_>>(), ["invalid"]);
    let left = h.dead_letters().await;
    assert_eq!(left.iter().map(|l| l.class.as_str()).collect::<Vec<_>>(), ["permanent"]);
    // A window in the future matches nothing.
    let later = mq::admin::DeadLetterFilter {
        failed_since: Some(time::OffsetDateTime::now_utc() + time::Duration::hours(1)),
        ..Default::default()
    };
    assert!(
        h.admin
            .purge_matching(worker, &later, false)
            .await
            .unwrap_or_default()
            .is_empty()
    );
    assert_eq!(h.dead_letters().await.len(), 1);
    h.finish().await;
}
