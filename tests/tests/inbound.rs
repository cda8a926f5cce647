//! inbound end to end: the sandbox fires the vendors' webhooks and callbacks at the inbound app
//! (signed or keyed like the vendors), serves Spotler's change lists to the poller, and the
//! real broker receives what inbound publishes. Each test runs in its own namespace.

use std::collections::HashSet;
use std::time::Duration;

use integration_tests::inbound::{
    BrokerProxy, ECOMAIL_TOKEN, InboundHarness, Observed, SALESMANAGO_SECRET, VOUCHERIFY_SECRET, distinct_ids, get,
    id_counts, post, raw_http,
};
use integration_tests::wait_for;
use serde_json::{Value, json};
use switchyard_sandbox::{
    EcomailWebhook, Provider, SalesmanagoCallback, SpotlerBounce, SpotlerChangedContact, SpotlerChannel, SpotlerUpdate,
    VoucherifyWebhook, voucherify_signature,
};
use time::OffsetDateTime;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(500);

fn redemption(source_id: &str) -> Value {
    json!({
        "customer": {"id": "cust_1", "source_id": source_id, "email": "jana@example.com"},
        "campaign": {"name": "Welcome 10"},
        "voucher": {"code": "WELCOME-1"},
        "order": {"id": "ord_1", "source_id": "o-1", "amount": 12050, "total_discount_amount": 1000},
        "redemption": {"id": "r_1", "date": "2026-05-04T09:00:00Z"},
    })
}

fn voucherify(harness: &InboundHarness, secret: &str, kind: &str, data: Value) -> VoucherifyWebhook {
    VoucherifyWebhook {
        url: harness.url("/webhooks/voucherify"),
        secret: secret.to_owned(),
        event_type: kind.to_owned(),
        data,
        id: None,
        pretty: false,
    }
}

fn of_kind<'a>(seen: &'a [Observed], kind: &str) -> Vec<&'a Observed> {
    seen.iter().filter(|m| m.kind == kind).collect()
}

#[tokio::test]
async fn voucherify_webhooks_are_verified_and_published_once() {
    let harness = InboundHarness::start("inbound-vf", &[]).await;
    let sandbox = &harness.sandbox.state;

    let webhook = voucherify(&harness, VOUCHERIFY_SECRET, "redemption.succeeded", redemption("c-42"));
    let sent = sandbox
        .send_voucherify_webhook(&webhook)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sent.status, 200, "{}", sent.body);
    let id = sent.id.clone().unwrap_or_default();
    let mut seen = Vec::new();
    harness.wait_observed(&mut seen, 1, WAIT).await;
    assert_eq!(seen[0].kind, "voucher.redeemed");
    assert_eq!(seen[0].message_id, format!("voucherify:{id}"));
    assert_eq!(seen[0].body["event"], "redemption.succeeded");
    assert_eq!(seen[0].body["customer_source_id"], "c-42");
    assert_eq!(seen[0].body["amount"], 120.5);

    // The vendor's retry of the same delivery: acknowledged, not published again.
    let retry = VoucherifyWebhook {
        id: Some(id.clone()),
        ..webhook.clone()
    };
    let again = sandbox
        .send_voucherify_webhook(&retry)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.status, 200);
    assert!(again.body.contains("duplicate"), "{}", again.body);

    // An indented body, signed over its compact form, verifies too (through the HTTP sender).
    let pretty = json!({
        "url": harness.url("/webhooks/voucherify"),
        "secret": VOUCHERIFY_SECRET,
        "type": "customer.rewarded.loyalty_points",
        "data": {"customer": {"source_id": "c-7"}, "points": 150},
        "pretty": true,
    });
    let answer = post(
        harness.sandbox.addr,
        "/_sandbox/send/voucherify-webhook",
        "",
        pretty.to_string().as_bytes(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["status"], 200, "{}", answer.body);
    harness.wait_observed(&mut seen, 2, WAIT).await;
    assert_eq!(seen[1].body["event"], "rewarded.loyalty_points");
    assert_eq!(seen[1].body["points"], 150);

    // A wrong secret, a tampered body, a missing signature: refused, nothing published.
    let wrong = sandbox
        .send_voucherify_webhook(&voucherify(
            &harness,
            "another-secret-0123456789",
            "redemption.succeeded",
            redemption("c-1"),
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    let original = json!({"id": "whs_tamper", "type": "redemption.succeeded", "data": redemption("c-1")});
    let signature = voucherify_signature(VOUCHERIFY_SECRET, original.to_string().as_bytes());
    let mut tampered = original.clone();
    tampered["data"]["order"]["amount"] = json!(1);
    let refused = post(
        harness.addr,
        "/webhooks/voucherify",
        &format!("x-voucherify-signature: {signature}\r\n"),
        tampered.to_string().as_bytes(),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let genuine = post(
        harness.addr,
        "/webhooks/voucherify",
        &format!("x-voucherify-signature: {signature}\r\n"),
        original.to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        genuine.status, 200,
        "the untampered body with that signature passes: {}",
        genuine.body
    );
    let unsigned = post(
        harness.addr,
        "/webhooks/voucherify",
        "",
        original.to_string().as_bytes(),
    )
    .await;
    assert_eq!(unsigned.status, 401);
    let garbage = post(
        harness.addr,
        "/webhooks/voucherify",
        "x-voucherify-signature: not-hex\r\n",
        original.to_string().as_bytes(),
    )
    .await;
    assert_eq!(garbage.status, 403);

    // Signed but malformed: 400 naming the field; signed but not a customer event: ignored.
    let malformed = br#"{"id":"whs_bad","type":"redemption.succeeded"}"#;
    let answer = post(
        harness.addr,
        "/webhooks/voucherify",
        &format!(
            "x-voucherify-signature: {}\r\n",
            voucherify_signature(VOUCHERIFY_SECRET, malformed)
        ),
        malformed,
    )
    .await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.json()["error"].as_str().unwrap_or_default().contains("data"),
        "{}",
        answer.body
    );
    let ignored = sandbox
        .send_voucherify_webhook(&voucherify(
            &harness,
            VOUCHERIFY_SECRET,
            "customer.created",
            json!({"customer": {"source_id": "c"}}),
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((ignored.status, ignored.json_status()), (200, "ignored".to_owned()));

    harness.wait_observed(&mut seen, 3, WAIT).await;
    seen.extend(harness.settle(QUIET).await);
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        harness.metric(
            "switchyard_inbound_requests_total",
            &[("source", "voucherify"), ("outcome", "forbidden")]
        ),
        3.0
    );
    assert_eq!(
        harness.metric(
            "switchyard_inbound_requests_total",
            &[("source", "voucherify"), ("outcome", "duplicate")]
        ),
        1.0
    );
    harness.finish().await;
}

trait JsonStatus {
    fn json_status(&self) -> String;
}

impl JsonStatus for switchyard_sandbox::SentWebhook {
    fn json_status(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["status"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn the_ecomail_webhook_needs_its_token() {
    let harness = InboundHarness::start("inbound-ecomail", &[]).await;
    let sandbox = &harness.sandbox.state;
    let webhook = |url: String, status: &str| EcomailWebhook {
        url,
        email: "jana.novakova@example.com".to_owned(),
        status: status.to_owned(),
        list_id: 7,
        campaign_id: None,
    };
    let good = harness.url(&format!("/webhooks/ecomail/{ECOMAIL_TOKEN}"));
    let sent = sandbox
        .send_ecomail_webhook(&webhook(good.clone(), "UNSUBSCRIBED"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sent.status, 200, "{}", sent.body);
    let mut seen = Vec::new();
    harness.wait_observed(&mut seen, 1, WAIT).await;
    assert_eq!(seen[0].kind, "loyalty.subscription.changed");
    assert_eq!(seen[0].body["status"], "UNSUBSCRIBED");
    assert_eq!(seen[0].body["list_id"], 7);
    assert_eq!(seen[0].body["email"], "jana.novakova@example.com");

    // Ecomail retrying the same call the same day: acknowledged once more, published once.
    let retry = sandbox
        .send_ecomail_webhook(&webhook(good.clone(), "UNSUBSCRIBED"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(retry.body.contains("duplicate"), "{}", retry.body);

    let wrong = sandbox
        .send_ecomail_webhook(&webhook(
            harness.url("/webhooks/ecomail/not-the-token-0123456789"),
            "SUBSCRIBED",
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wrong.status, 403);
    let missing = sandbox
        .send_ecomail_webhook(&webhook(harness.url("/webhooks/ecomail"), "SUBSCRIBED"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(missing.status, 401);
    let path = format!("/webhooks/ecomail/{ECOMAIL_TOKEN}");
    let malformed = post(
        harness.addr,
        &path,
        "",
        br#"{"payload":{"email":"a@example.com","status":"SUBSCRIBED"}}"#,
    )
    .await;
    assert_eq!(malformed.status, 400);
    assert!(
        malformed.body.contains("listId") && !malformed.body.contains("a@example.com"),
        "{}",
        malformed.body
    );
    let bad_address = post(
        harness.addr,
        &path,
        "",
        br#"{"payload":{"email":"nobody","status":"SUBSCRIBED","listId":7}}"#,
    )
    .await;
    assert_eq!(bad_address.status, 400, "{}", bad_address.body);
    assert!(
        bad_address.body.contains("/email") && !bad_address.body.contains("nobody"),
        "{}",
        bad_address.body
    );

    seen.extend(harness.settle(QUIET).await);
    assert_eq!(seen.len(), 1, "{seen:?}");
    harness.finish().await;
}

#[tokio::test]
async fn salesmanago_callbacks_check_the_key() {
    let harness = InboundHarness::start("inbound-sm", &[]).await;
    let sandbox = &harness.sandbox.state;
    let callback = |kind: &str, email: &str, secret: &str| SalesmanagoCallback {
        url_template: harness.url(&format!("/callbacks/salesmanago/{kind}?email=$email$")),
        email: email.to_owned(),
        kind: kind.to_owned(),
        secret: secret.to_owned(),
    };
    let opt_in = sandbox
        .send_salesmanago_callback(&callback("opt-in", "jana+news@example.com", SALESMANAGO_SECRET))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(opt_in.status, 200, "{}", opt_in.body);
    let opt_out = sandbox
        .send_salesmanago_callback(&callback("opt-out", "petr@example.cz", SALESMANAGO_SECRET))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(opt_out.status, 200, "{}", opt_out.body);
    let mut seen = Vec::new();
    harness.wait_observed(&mut seen, 2, WAIT).await;
    let consents: Vec<(String, String)> = seen
        .iter()
        .map(|m| {
            assert_eq!(m.kind, "contact.consent.changed");
            (
                m.body["email"].as_str().unwrap_or_default().to_owned(),
                m.body["consent"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        consents.contains(&("jana+news@example.com".to_owned(), "opt_in".to_owned())),
        "{consents:?}"
    );
    assert!(
        consents.contains(&("petr@example.cz".to_owned(), "opt_out".to_owned())),
        "{consents:?}"
    );

    let wrong = sandbox
        .send_salesmanago_callback(&callback(
            "opt-in",
            "jana+news@example.com",
            "not-the-secret-0123456789",
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wrong.status, 403);
    let keyless = get(harness.addr, "/callbacks/salesmanago/opt-in?email=jana%40example.com").await;
    assert_eq!(keyless.status, 401);
    let key = switchyard_sandbox::salesmanago_callback_key("jana@example.com", SALESMANAGO_SECRET);
    let other_address = get(
        harness.addr,
        &format!("/callbacks/salesmanago/opt-in?email=eva%40example.com&key={key}"),
    )
    .await;
    assert_eq!(other_address.status, 403, "a key is bound to its address");
    let retry = get(
        harness.addr,
        &format!(
            "/callbacks/salesmanago/opt-out?email=petr%40example.cz&key={}",
            switchyard_sandbox::salesmanago_callback_key("petr@example.cz", SALESMANAGO_SECRET)
        ),
    )
    .await;
    assert_eq!(retry.status, 200);
    assert!(retry.body.contains("duplicate"), "{}", retry.body);

    seen.extend(harness.settle(QUIET).await);
    assert_eq!(seen.len(), 2, "{seen:?}");
    harness.finish().await;
}

#[tokio::test]
async fn a_broker_outage_answers_503_and_the_retry_is_published_once() {
    let proxy = BrokerProxy::start().await;
    proxy.down();
    let mut harness = InboundHarness::start("inbound-outage", &[("AMQP_URL", &proxy.amqp_url())]).await;
    let sandbox = harness.sandbox.state.clone();
    let webhook = voucherify(&harness, VOUCHERIFY_SECRET, "redemption.succeeded", redemption("c-9"));

    let refused = sandbox
        .send_voucherify_webhook(&webhook)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(!harness.health.is_ready(), "not ready without a broker");
    let id = refused.id.clone();

    // The broker is back; the vendor retries (same delivery id) until it gets a 2xx.
    proxy.up();
    let retry = VoucherifyWebhook { id, ..webhook.clone() };
    let accepted = wait_for(WAIT, || async {
        let sent = sandbox.send_voucherify_webhook(&retry).await.ok()?;
        (sent.status == 200).then_some(sent)
    })
    .await
    .unwrap_or_else(|| panic!("the retried webhook was never accepted"));
    assert!(accepted.body.contains("published"), "{}", accepted.body);
    let extra = sandbox
        .send_voucherify_webhook(&retry)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(extra.body.contains("duplicate"), "{}", extra.body);

    // The connection is cut under a live session: the next webhook fails, its retry passes.
    proxy.down();
    let second = voucherify(&harness, VOUCHERIFY_SECRET, "redemption.failed", redemption("c-10"));
    let cut = sandbox
        .send_voucherify_webhook(&second)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cut.status, 503, "{}", cut.body);
    proxy.up();
    let second_retry = VoucherifyWebhook {
        id: cut.id.clone(),
        ..second
    };
    wait_for(WAIT, || async {
        let sent = sandbox.send_voucherify_webhook(&second_retry).await.ok()?;
        (sent.status == 200).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the second webhook was never accepted"));
    assert!(
        wait_for(WAIT, || async { harness.health.is_ready().then_some(()) })
            .await
            .is_some(),
        "ready again once the broker is back"
    );

    let mut seen = Vec::new();
    harness.wait_observed(&mut seen, 2, WAIT).await;
    seen.extend(harness.settle(QUIET).await);
    let counts = id_counts(&seen);
    assert_eq!(seen.len(), 2, "each published exactly once: {counts:?}");
    assert!(harness.metric("switchyard_inbound_requests_total", &[("outcome", "unavailable")]) >= 2.0);
    assert!(matches!(harness.stop_app().await, Some(Ok(()))));
    harness.finish().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_before_they_are_read() {
    let harness = InboundHarness::start("inbound-413", &[("SWITCHYARD_MAX_BODY_BYTES", "2048")]).await;
    let big = vec![b' '; 4096];
    let declared = post(
        harness.addr,
        "/webhooks/voucherify",
        "x-voucherify-signature: 00\r\n",
        &big,
    )
    .await;
    assert_eq!(declared.status, 413);
    let path = format!("/webhooks/ecomail/{ECOMAIL_TOKEN}");
    let ecomail = post(harness.addr, &path, "", &big).await;
    assert_eq!(ecomail.status, 413);
    // Chunked, no Content-Length: cut off while reading.
    let mut chunked = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        harness.addr
    )
    .into_bytes();
    for _ in 0..4 {
        chunked.extend_from_slice(b"400\r\n");
        chunked.extend_from_slice(&[b' '; 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let streamed = raw_http(harness.addr, &chunked).await;
    assert_eq!(streamed.status, 413, "{}", streamed.body);
    // Within the limit it is read and judged on its content.
    let small = post(harness.addr, &path, "", b"{}").await;
    assert_eq!(small.status, 400);
    assert_eq!(
        harness.metric("switchyard_inbound_requests_total", &[("outcome", "too_large")]),
        3.0
    );
    assert!(harness.settle(QUIET).await.is_empty());
    harness.finish().await;
}

fn contact(id: &str, email: &str, email_channel: Option<bool>) -> SpotlerChangedContact {
    SpotlerChangedContact {
        external_id: id.to_owned(),
        properties: json!({"email": email, "firstName": "Test"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        channels: email_channel.map(|value| {
            vec![SpotlerChannel {
                name: "EMAIL".to_owned(),
                value,
            }]
        }),
    }
}

fn bounces(prefix: &str, count: usize, at: OffsetDateTime) -> Vec<SpotlerBounce> {
    (0..count)
        .map(|i| SpotlerBounce {
            date: at + time::Duration::milliseconds(i as i64),
            bounce_type: if i % 2 == 0 { "HARDBOUNCE" } else { "SOFTBOUNCE" }.to_owned(),
            contact: contact(&format!("{prefix}-{i}"), &format!("{prefix}{i}@example.com"), None),
            encrypted_act_id: Some(format!("act-{prefix}-{i}")),
        })
        .collect()
}

fn updates(prefix: &str, count: usize, at: OffsetDateTime) -> Vec<SpotlerUpdate> {
    (0..count)
        .map(|i| SpotlerUpdate {
            date: at + time::Duration::milliseconds(i as i64),
            contact: contact(
                &format!("{prefix}-{i}"),
                &format!("{prefix}{i}@example.com"),
                Some(i != 0),
            ),
        })
        .collect()
}

fn seconds_ago(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - time::Duration::seconds(seconds)
}

/// `(path, fromDate, after)` of every Spotler list call.
fn list_calls(harness: &InboundHarness) -> Vec<(String, String, String)> {
    harness
        .sandbox
        .state
        .calls(Provider::Spotler)
        .into_iter()
        .filter(|c| c.path.ends_with("/list"))
        .map(|c| {
            let query = c.query.unwrap_or_default();
            let param = |name: &str| {
                query
                    .split('&')
                    .find_map(|p| p.strip_prefix(&format!("{name}=")))
                    .unwrap_or_default()
                    .to_owned()
            };
            (c.path.clone(), param("fromDate"), param("after"))
        })
        .collect()
}

#[tokio::test]
async fn the_poller_follows_every_page_and_publishes_each_record_once() {
    let harness = InboundHarness::start("inbound-pages", &[]).await;
    let sandbox = &harness.sandbox.state;
    sandbox
        .add_spotler_bounces(bounces("b", 5, seconds_ago(30)))
        .unwrap_or_else(|e| panic!("{e}"));
    sandbox
        .add_spotler_updates(updates("u", 3, seconds_ago(20)))
        .unwrap_or_else(|e| panic!("{e}"));
    let poller = harness.poller(&[("INBOUND_SPOTLER_PAGE_SIZE", "2")]);
    let report = poller.run_once().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(report.leader);
    assert_eq!(
        (report.published, report.duplicates, report.invalid),
        (8, 0, 0),
        "{report:?}"
    );
    let calls = list_calls(&harness);
    let bounce_pages: Vec<&str> = calls
        .iter()
        .filter(|c| c.0.ends_with("bounces/list"))
        .map(|c| c.2.as_str())
        .collect();
    assert_eq!(bounce_pages, ["0", "2", "4"]);
    assert_eq!(calls.iter().filter(|c| c.0.ends_with("updates/list")).count(), 2);

    let mut seen = Vec::new();
    harness.wait_observed(&mut seen, 8, WAIT).await;
    assert_eq!(distinct_ids(&seen).len(), 8);
    let bounced = of_kind(&seen, "contact.bounced");
    assert_eq!(bounced.len(), 5);
    assert!(
        bounced
            .iter()
            .any(|m| m.body["bounce_type"] == "soft" && m.body["email"] == "b1@example.com")
    );
    let updated = of_kind(&seen, "contact.updated");
    assert_eq!(updated.len(), 3);
    assert!(
        updated
            .iter()
            .any(|m| m.body["contact_id"] == "u-0" && m.body["subscribed"] == false),
        "the unsubscribe"
    );

    // Nothing new: the cursor moved, so the next cycle publishes nothing.
    let again = poller.run_once().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.published + again.duplicates, 0, "{again:?}");
    assert!(harness.settle(QUIET).await.is_empty());
    harness.finish().await;
}

#[tokio::test]
async fn a_failed_pull_and_a_restart_resume_from_the_cursor_without_gaps() {
    let harness = InboundHarness::start("inbound-resume", &[]).await;
    let sandbox = &harness.sandbox.state;
    sandbox
        .add_spotler_bounces(bounces("r", 5, seconds_ago(40)))
        .unwrap_or_else(|e| panic!("{e}"));
    let settings = [("INBOUND_SPOTLER_PAGE_SIZE", "2"), ("SWITCHYARD_MAX_HOLD", "2s")];

    // Spotler allows one call a minute: the first page passes, the second is refused, and the
    // cycle ends without moving the cursor.
    sandbox
        .set_limit(Provider::Spotler, Some("1/min"))
        .unwrap_or_else(|e| panic!("{e}"));
    let first = harness.poller(&settings);
    let failed = first.run_once().await;
    assert!(failed.is_err(), "{failed:?}");
    let mut seen = Vec::new();
    harness.wait_observed(&mut seen, 2, WAIT).await;
    let cursor_file = harness
        .state_dir
        .join(&harness.namespace)
        .join("spotler-bounces.cursor");
    assert!(!cursor_file.exists(), "no cursor before a whole window is confirmed");

    // A new poller (a restart, with an empty in-process ledger) resumes from the cursor: the
    // page already published comes again with the same ids, nothing is missing.
    sandbox
        .set_limit(Provider::Spotler, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let restarted = harness.poller(&settings);
    let report = restarted.run_once().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.published, 5);
    harness.wait_observed(&mut seen, 7, WAIT).await;
    assert!(cursor_file.exists());
    let ids = distinct_ids(&seen);
    assert_eq!(
        ids.len(),
        5,
        "no gap, and repeats carry the same ids: {:?}",
        id_counts(&seen)
    );

    // Later changes: the next instance starts where the last one stopped.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sandbox
        .add_spotler_bounces(bounces("later", 2, OffsetDateTime::now_utc()))
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = harness.poller(&settings);
    let report = third.run_once().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.published, report.duplicates), (2, 0), "{report:?}");
    let mut later = Vec::new();
    harness.wait_observed(&mut later, 2, WAIT).await;
    later.extend(harness.settle(QUIET).await);
    assert_eq!(later.len(), 2);
    assert!(
        later.iter().all(|m| !ids.contains(&m.message_id)),
        "only the new records"
    );
    harness.finish().await;
}

#[tokio::test]
async fn two_replicas_sharing_redis_pull_each_window_once() {
    let harness = InboundHarness::start("inbound-replicas", &[]).await;
    let sandbox = harness.sandbox.state.clone();
    let settings = [
        ("REDIS_URL", "redis://127.0.0.1:6379/"),
        ("SWITCHYARD_REPLICAS", "2"),
        ("INBOUND_SPOTLER_POLL_INTERVAL", "200ms"),
        ("INBOUND_SPOTLER_PAGE_SIZE", "3"),
    ];
    sandbox
        .add_spotler_bounces(bounces("x", 4, seconds_ago(30)))
        .unwrap_or_else(|e| panic!("{e}"));
    sandbox
        .add_spotler_updates(updates("y", 4, seconds_ago(30)))
        .unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (harness.poller(&settings), harness.poller(&settings));

    // Both start a cycle at the same moment: they never pull the same window.
    let (first, second) = tokio::join!(a.run_once(), b.run_once());
    let (first, second) = (
        first.unwrap_or_else(|e| panic!("{e}")),
        second.unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(first.published + second.published, 8, "{first:?} {second:?}");

    // Both keep running on their schedule while more changes arrive.
    let (stop_tx, stop_rx) = watch::channel(false);
    let loops = tokio::spawn({
        let (a, b, stop_a, stop_b) = (a.clone(), b.clone(), stop_rx.clone(), stop_rx);
        async move { tokio::join!(a.run(stop_a), b.run(stop_b)) }
    });
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        sandbox
            .add_spotler_bounces(bounces(&format!("z{round}"), 3, OffsetDateTime::now_utc()))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _stopped = stop_tx.send(true);
    let _joined = loops.await;

    let mut seen = Vec::new();
    harness.wait_observed(&mut seen, 17, WAIT).await;
    seen.extend(harness.settle(QUIET).await);
    let counts = id_counts(&seen);
    assert_eq!(seen.len(), 17, "each record published once: {counts:?}");
    let calls = list_calls(&harness);
    let unique: HashSet<&(String, String, String)> = calls.iter().collect();
    assert_eq!(unique.len(), calls.len(), "no page was pulled twice: {calls:?}");
    harness.finish().await;
}
