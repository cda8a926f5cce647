//! voucher-events end to end: real RabbitMQ, the sandbox's Voucherify, Voucherify integration
//! and Bloomreach emulations over HTTP, the worker in-process.

use std::time::Duration;

use integration_tests::voucher::{Observed, VoucherHarness};
use serde_json::{Value, json};
use switchyard_sandbox::{Fault, Provider};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const T: Duration = Duration::from_secs(20);

fn publish_request(customer: &str) -> Value {
    json!({
        "campaign": "Discount code campaign",
        "customer": {"source_id": customer, "email": "jana@example.com", "name": "Jana Nováková"},
        "channel": "Bloomreach"
    })
}

fn redeemed(customer: &str, code: &str) -> Value {
    json!({
        "event": "redemption.succeeded",
        "customer_source_id": customer,
        "voucher_code": code,
        "campaign": "Discount code campaign",
        "order_id": format!("order-{customer}"),
        "amount": 1250.0,
        "discount": 125.0,
        "currency": "CZK",
        "occurred_at": "2026-11-21T09:30:00Z"
    })
}

fn of_kind<'a>(results: &'a [Observed], kind: &str) -> Vec<&'a Observed> {
    results.iter().filter(|r| r.kind == kind).collect()
}

fn publication_calls(h: &VoucherHarness) -> Vec<(String, String, Option<String>, u16)> {
    h.sandbox
        .state
        .calls(Provider::Voucherify)
        .into_iter()
        .filter(|c| c.path.ends_with("/v1/publications"))
        .map(|c| (c.method, c.received_at, c.query, c.status))
        .collect()
}

#[tokio::test]
async fn publication_request_publishes_one_code() {
    let h = VoucherHarness::start("vpub", &[]).await;
    let id = h.publish("voucher.publish.requested", &publish_request("shop-1")).await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;

    let published = of_kind(&results, "voucher.published");
    assert_eq!(published.len(), 1, "{results:?}");
    let body = &published[0].body;
    assert_eq!(published[0].message_id, format!("{id}:published"));
    assert_eq!(body["source_message_id"], id.as_str());
    assert_eq!(body["campaign"], "Discount code campaign");
    assert_eq!(body["customer_source_id"], "shop-1");
    let code = body["code"].as_str().unwrap_or_default();
    assert!(code.starts_with("DC-"), "{body}");

    let publications = h.sandbox.state.voucherify_publications();
    assert_eq!(publications.len(), 1, "{publications:?}");
    assert_eq!(publications[0]["source_id"], id.as_str());
    assert_eq!(publications[0]["voucher"]["code"], code);
    assert_eq!(publications[0]["id"], body["publication_id"]);
    assert!(h.dead_letters().await.is_empty());
    h.finish().await;
}

#[tokio::test]
async fn redelivered_publication_request_yields_the_same_code_and_one_publication() {
    let h = VoucherHarness::start("vredeliver", &[]).await;
    let id = uuid::Uuid::new_v4().to_string();
    h.publish_with_id("voucher.publish.requested", &id, &publish_request("shop-2"))
        .await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    // The same message again, as a redelivery after a lost ack would bring it.
    h.publish_with_id("voucher.publish.requested", &id, &publish_request("shop-2"))
        .await;
    h.wait_results(&mut results, 2, T).await;

    let published = of_kind(&results, "voucher.published");
    assert_eq!(published.len(), 2, "{results:?}");
    assert_eq!(published[0].body, published[1].body, "the same code both times");
    assert_eq!(published[0].message_id, published[1].message_id);
    assert_eq!(h.sandbox.state.voucherify_publications().len(), 1);

    // The second publish was refused as a duplicate source_id and resolved by lookup.
    let calls = publication_calls(&h);
    let statuses: Vec<(String, u16)> = calls.iter().map(|(m, _, _, s)| (m.clone(), *s)).collect();
    assert_eq!(
        statuses,
        [
            ("POST".to_owned(), 200),
            ("POST".to_owned(), 400),
            ("GET".to_owned(), 200)
        ],
        "{calls:?}"
    );
    assert!(h.dead_letters().await.is_empty());
    h.finish().await;
}

#[tokio::test]
async fn unknown_campaign_is_dead_lettered_as_permanent() {
    let h = VoucherHarness::start("vcampaign", &[]).await;
    let mut body = publish_request("shop-3");
    body["campaign"] = json!("Black Friday");
    let id = h.publish("voucher.publish.requested", &body).await;
    let letters = h.wait_dead_letters(1, T).await;
    assert_eq!(letters[0].message_id.as_deref(), Some(id.as_str()));
    assert_eq!(letters[0].class, "permanent");
    assert!(
        letters[0].error.contains("not_found") && letters[0].error.contains("campaign"),
        "{}",
        letters[0].error
    );
    assert!(!letters[0].error.contains("jana"), "{}", letters[0].error);
    assert!(h.sandbox.state.voucherify_publications().is_empty());
    h.finish().await;
}

#[tokio::test]
async fn voucherify_429_with_retry_after_pauses_and_nothing_is_dead_lettered() {
    let h = VoucherHarness::start("v429", &[]).await;
    h.sandbox
        .state
        .set_fault(Provider::Voucherify, Fault::forced(429, 1).with_retry_after(2))
        .unwrap_or_else(|e| panic!("{e}"));
    let id = h.publish("voucher.publish.requested", &publish_request("shop-4")).await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(results[0].body["source_message_id"], id.as_str());
    assert!(h.dead_letters().await.is_empty());
    assert_eq!(h.sandbox.state.voucherify_publications().len(), 1);

    let calls = publication_calls(&h);
    assert_eq!(
        calls.iter().map(|(_, _, _, s)| *s).collect::<Vec<_>>(),
        [429, 200],
        "{calls:?}"
    );
    let at = |i: usize| OffsetDateTime::parse(&calls[i].1, &Rfc3339).unwrap_or_else(|e| panic!("received_at: {e}"));
    let paused = at(1) - at(0);
    assert!(
        paused >= time::Duration::milliseconds(1900),
        "the destination must stay paused for Retry-After (2 s), was {paused}"
    );
    assert!(
        h.metric(
            "switchyard_rate_limited_total",
            &[("provider", "voucherify"), ("source", "vendor")]
        ) >= 1.0
    );
    h.finish().await;
}

#[tokio::test]
async fn bloomreach_batch_with_one_bad_command_dead_letters_exactly_that_one() {
    // A backlog waiting when the worker starts is delivered at once and shares one batch.
    let mut h = VoucherHarness::prepare("vbatch", &[("VOUCHER_EVENTS_BATCH_LINGER", "300ms")]).await;
    let mut good = Vec::new();
    for n in 0..4 {
        good.push(
            h.publish("voucher.redeemed", &redeemed(&format!("shop-{n}"), &format!("DC-{n}")))
                .await,
        );
    }
    // Bloomreach refuses a property value of 16 KB or more, for that command only.
    let mut bad_body = redeemed("shop-bad", "DC-BAD");
    bad_body["metadata"] = json!({"note": "x".repeat(20_000)});
    let bad = h.publish("voucher.redeemed", &bad_body).await;
    h.start_worker();

    let mut results = Vec::new();
    h.wait_results(&mut results, 4, T).await;
    let letters = h.wait_dead_letters(1, T).await;
    // Long enough for any retry (tiers 200 ms–800 ms) to have happened.
    tokio::time::sleep(Duration::from_secs(2)).await;
    results.extend(h.take_results().await);

    let forwarded = of_kind(&results, "voucher.event.forwarded");
    let mut sources: Vec<&str> = forwarded
        .iter()
        .filter_map(|r| r.body["source_message_id"].as_str())
        .collect();
    sources.sort_unstable();
    let mut expected: Vec<&str> = good.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(sources, expected, "each good event forwarded once");
    assert!(
        forwarded
            .iter()
            .all(|r| r.body["destination"] == "bloomreach" && r.body["event"] == "voucherify_redemption_succeeded")
    );

    let letters_now = h.dead_letters().await;
    assert_eq!(letters_now.len(), 1, "{letters_now:?}");
    assert_eq!(letters[0].message_id.as_deref(), Some(bad.as_str()));
    assert_eq!(letters[0].class, "permanent");
    assert!(letters[0].error.contains("bloomreach"), "{}", letters[0].error);

    let events = h.sandbox.state.bloomreach_events();
    assert_eq!(events.len(), 4, "{events:?}");
    for event in &events {
        assert_eq!(event["event_type"], "voucherify_redemption_succeeded");
        let ts = event["timestamp"].as_f64().unwrap_or_default();
        assert!((ts - 1_795_253_400.0).abs() < 1.0, "timestamp in seconds: {ts}");
    }
    let batches = h
        .sandbox
        .state
        .calls(Provider::Bloomreach)
        .into_iter()
        .filter(|c| c.path.ends_with("/batch"))
        .count();
    assert_eq!(batches, 1, "the five deliveries share one batch call");
    h.finish().await;
}

#[tokio::test]
async fn metadata_filtering_drops_undefined_and_wrongly_typed_keys() {
    let h = VoucherHarness::start("vmeta", &[]).await;
    let customer = h
        .publish(
            "bloomreach.customer.updated",
            &json!({
                "customer_id": "shop-7",
                "name": "Jana Nováková",
                "email": "jana@example.com",
                "metadata": {
                    "segment": "gold",
                    "vip": true,
                    "loyalty_points": "many",
                    "shoe_size": 42,
                    "favourite_colour": "teal"
                },
                "updated_at": "2026-11-21T08:00:00Z"
            }),
        )
        .await;
    let event = h
        .publish(
            "bloomreach.event.exported",
            &json!({
                "event": "review_left",
                "customer_id": "shop-7",
                "metadata": {"consent": "granted", "last_order_at": "yesterday"},
                "occurred_at": "2026-11-21T08:05:00Z"
            }),
        )
        .await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 2, T).await;

    let by_source = |id: &str| {
        results
            .iter()
            .find(|r| r.body["source_message_id"] == id)
            .map(|r| r.body.clone())
            .unwrap_or_else(|| panic!("no result for {id}: {results:?}"))
    };
    let customer_result = by_source(&customer);
    assert_eq!(customer_result["destination"], "voucherify");
    assert_eq!(customer_result["operation"], "customer_update");
    assert_eq!(
        customer_result["metadata_dropped"],
        json!({"undefined": 2, "wrong_type": 1})
    );
    let event_result = by_source(&event);
    assert_eq!(event_result["operation"], "event");
    assert_eq!(
        event_result["metadata_dropped"],
        json!({"undefined": 0, "wrong_type": 1})
    );

    let stored = h
        .sandbox
        .state
        .voucherify_customers()
        .into_iter()
        .find(|c| c["source_id"] == "shop-7")
        .unwrap_or_else(|| panic!("customer not in Voucherify"));
    assert_eq!(stored["metadata"], json!({"segment": "gold", "vip": true}));
    let events = h.sandbox.state.voucherify_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["metadata"], json!({"consent": "granted"}));
    // What reached Voucherify was all defined and well typed: it had nothing left to drop.
    for call in h.sandbox.state.voucherify_integration_calls() {
        assert_eq!(call["dropped_metadata"], 0, "{call}");
    }

    let dropped = |reason: &str| {
        h.metric(
            "switchyard_metadata_dropped_total",
            &[("provider", "voucherify"), ("reason", reason)],
        )
    };
    assert_eq!((dropped("undefined"), dropped("wrong_type")), (2.0, 2.0));
    h.finish().await;
}
