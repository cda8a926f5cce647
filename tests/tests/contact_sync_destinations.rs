//! contact-sync's further destinations and Spotler features end to end: real RabbitMQ, the
//! sandbox over HTTP, the worker in-process (the real binaries for exit codes and `import`).
//!
//! SALESmanago (consent, tags, external events once per message, `success: false`), Voucherify
//! (metadata filtered by the schema and counted, the customer id written back to Bloomreach),
//! the Spotler property check at start, subscriptions, temporary lists (and their cap),
//! lookups, `switchyard import contacts`, and the bulk path.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use integration_tests::{Harness, binary};
use prometheus::Registry;
use serde_json::{Value, json};
use switchyard_sandbox::{Fault, Provider};
use telemetry::Health;

const T: Duration = Duration::from_secs(30);

/// Generous budgets for the destinations whose production defaults are hourly quotas.
const FAST: [(&str, &str); 3] = [
    ("SALESMANAGO_RATE", "100/s"),
    ("VOUCHERIFY_RATE", "100/s"),
    ("ECOMAIL_RATE", "200/s"),
];

async fn start(prefix: &str, destinations: &str, extra: &[(&str, &str)]) -> Harness {
    let mut overrides: Vec<(&str, &str)> = FAST.to_vec();
    overrides.push(("CONTACT_SYNC_DESTINATIONS", destinations));
    overrides.extend_from_slice(extra);
    Harness::start(prefix, &overrides).await
}

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

fn of(results: &[Value], destination: &str) -> Vec<Value> {
    results
        .iter()
        .filter(|r| r["destination"] == destination)
        .cloned()
        .collect()
}

/// Publishes `body` as `kind` with the given message id (twice = a redelivery).
async fn publish_as(h: &Harness, kind: &str, id: &str, body: &Value) {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    h.admin
        .publish(kind, id, None, &bytes)
        .await
        .unwrap_or_else(|e| panic!("publish: {e}"));
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}-{name}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn salesmanago_contact(h: &Harness, email: &str) -> Value {
    h.sandbox
        .state
        .salesmanago_contacts()
        .into_iter()
        .find(|c| c["email"] == email)
        .unwrap_or_else(|| panic!("not in SALESmanago"))
}

#[tokio::test]
async fn salesmanago_upsert_forces_consent_and_keeps_the_newsletter_tag_in_step() {
    let h = start("sm-upsert", "salesmanago", &[]).await;
    h.publish("contact.changed", &contact("sm-1", "jana@example.com")).await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(results[0]["destination"], "salesmanago");
    assert_eq!(results[0]["status"], "synced");
    let stored = salesmanago_contact(&h, "jana@example.com");
    assert_eq!(stored["email_opt_in"], true);
    assert_eq!(stored["tags"], json!(["NEWSLETTER"]));
    assert_eq!(stored["name"], "Jana Nováková");
    assert_eq!(stored["external_id"], "sm-1");
    assert_eq!(stored["lang"], "cs");
    assert_eq!(stored["properties"]["loyalty_tier"], "gold");
    assert_eq!(stored["address"]["city"], "Brno");

    let mut withdrawn = contact("sm-1", "jana@example.com");
    withdrawn["permissions"] = json!({"newsletter": false});
    h.publish("contact.changed", &withdrawn).await;
    h.wait_results(&mut results, 2, T).await;
    let stored = salesmanago_contact(&h, "jana@example.com");
    assert_eq!(stored["email_opt_in"], false, "forceOptOut");
    assert_eq!(stored["tags"], json!([]), "the newsletter tag is removed");
    h.finish().await;
}

#[tokio::test]
async fn a_redelivered_shop_event_adds_one_external_event() {
    let h = start("sm-event", "salesmanago", &[]).await;
    let purchase = json!({
        "event_id": "order-5001", "type": "purchase", "email": "buyer@example.com", "contact_id": "sm-2",
        "logged_in": true, "value": 1290.5, "currency": "CZK", "products": ["SKU-1", "SKU-7"],
        "details": ["card"], "shop_domain": "shop.example.com", "occurred_at": "2026-11-21T18:30:00Z"
    });
    let id = uuid::Uuid::new_v4().to_string();
    publish_as(&h, "shop.event", &id, &purchase).await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    // The same message again, as the broker would redeliver it after a lost ack.
    publish_as(&h, "shop.event", &id, &purchase).await;
    h.wait_results(&mut results, 2, T).await;
    assert!(
        results
            .iter()
            .all(|r| r["status"] == "synced" && r["operation"] == "event"),
        "{results:?}"
    );
    let events = h.sandbox.state.salesmanago_events();
    assert_eq!(events.len(), 1, "one external event for one message: {events:?}");
    assert_eq!(events[0]["contact_ext_event_type"], "PURCHASE");
    assert_eq!(events[0]["external_id"], "order-5001");
    assert_eq!(events[0]["products"], "SKU-1,SKU-7");
    assert_eq!(events[0]["details"]["detail1"], "card");
    assert_eq!(
        salesmanago_contact(&h, "buyer@example.com")["tags"],
        json!(["PURCHASE_LOGGED_IN"])
    );

    // A registration is a tag only; a cart is an event without tags.
    h.publish(
        "shop.event",
        &json!({"event_id": "reg-1", "type": "registration", "email": "new@example.com", "occurred_at": "2026-11-21T10:00:00Z"}),
    )
    .await;
    h.publish(
        "shop.event",
        &json!({"event_id": "cart-1", "type": "cart", "email": "new@example.com", "occurred_at": "2026-11-21T10:05:00Z"}),
    )
    .await;
    h.wait_results(&mut results, 4, T).await;
    assert_eq!(
        salesmanago_contact(&h, "new@example.com")["tags"],
        json!(["REGISTRATION"])
    );
    let kinds: Vec<Value> = h
        .sandbox
        .state
        .salesmanago_events()
        .iter()
        .map(|e| e["contact_ext_event_type"].clone())
        .collect();
    assert_eq!(kinds, [json!("PURCHASE"), json!("CART")]);
    h.finish().await;
}

#[tokio::test]
async fn salesmanago_success_false_is_a_permanent_dead_letter_with_its_message() {
    let h = start(
        "sm-false",
        "salesmanago",
        &[("SALESMANAGO_API_SECRET", "not-the-secret")],
    )
    .await;
    h.publish("contact.changed", &contact("sm-3", "x@example.com")).await;
    let letters = h.wait_dead_letters(1, T).await;
    assert_eq!(letters[0].class, "permanent");
    assert_eq!(letters[0].scope.as_deref(), Some("salesmanago"));
    assert!(
        letters[0].error.contains("success=false") && letters[0].error.contains("Not authenticated"),
        "{}",
        letters[0].error
    );
    assert!(!letters[0].error.contains("x@example.com"));
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(results[0]["status"], "failed");
    assert_eq!(h.sandbox.state.calls(Provider::Salesmanago).len(), 1, "never retried");
    h.finish().await;
}

#[tokio::test]
async fn voucherify_metadata_outside_the_schema_is_dropped_and_counted() {
    let h = start(
        "vf-meta",
        "voucherify",
        &[(
            "VOUCHERIFY_METADATA_FIELDS",
            "segment=string,vip=boolean,loyalty_points=number",
        )],
    )
    .await;
    let mut body = contact("vf-1", "vf@example.com");
    body["attributes"] = json!({"segment": "vip", "vip": "yes", "loyalty_points": 120, "shoe_size": 42});
    h.publish("contact.changed", &body).await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(results[0]["destination"], "voucherify");
    assert_eq!(results[0]["status"], "synced");
    assert_eq!(results[0]["metadata_dropped"], 2);
    let customers = h.sandbox.state.voucherify_customers();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0]["source_id"], "vf-1");
    assert_eq!(
        customers[0]["metadata"],
        json!({"segment": "vip", "loyalty_points": 120})
    );
    let call = h
        .sandbox
        .state
        .calls(Provider::Voucherify)
        .into_iter()
        .find(|c| c.path.ends_with("/v1/customers"))
        .unwrap_or_else(|| panic!("no customer upsert"));
    let sent = call.body.unwrap_or_default();
    assert!(sent["metadata"].get("shoe_size").is_none() && sent["metadata"].get("vip").is_none());
    let dropped = |reason: &str| {
        h.metric(
            "switchyard_metadata_dropped_total",
            &[("provider", "voucherify"), ("reason", reason)],
        )
    };
    assert_eq!(dropped("undefined"), 1.0);
    assert_eq!(dropped("wrong_type"), 1.0);
    h.finish().await;
}

#[tokio::test]
async fn the_voucherify_customer_id_is_written_back_to_bloomreach() {
    let h = start(
        "vf-writeback",
        "voucherify",
        &[("CONTACT_SYNC_VOUCHERIFY_WRITEBACK", "bloomreach")],
    )
    .await;
    h.publish("contact.changed", &contact("vf-2", "wb@example.com")).await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(results[0]["status"], "synced", "{results:?}");
    let customer_id = h.sandbox.state.voucherify_customers()[0]["id"].clone();
    assert!(
        customer_id.as_str().is_some_and(|id| id.starts_with("cust_")),
        "{customer_id}"
    );
    let bloomreach = h.sandbox.state.bloomreach_customers();
    assert_eq!(bloomreach.len(), 1, "{bloomreach:?}");
    assert_eq!(bloomreach[0]["ids"]["registered"], "vf-2");
    assert_eq!(bloomreach[0]["properties"]["voucherify_customer_id"], customer_id);
    h.finish().await;
}

#[tokio::test]
async fn a_mapping_naming_a_property_the_account_lacks_is_refused_at_start() {
    let mapping = temp_file(
        "mapping.toml",
        "[spotler.properties]\nemail = \"email\"\n\"attributes.shoe_size\" = \"shoeSize\"\n[ecomail]\n",
    );
    let mapping = mapping.display().to_string();
    let mut h = start("check-bad", "spotler", &[]).await;
    let _stopped = h.stop_worker().await;
    let mut env = h.env.clone();
    env.insert("SPOTLER_CHECK_PROPERTIES".into(), "true".into());
    env.insert("CONTACT_SYNC_MAPPING".into(), mapping.clone());
    // In process: the start fails with an error naming the property.
    let config = contact_sync::Config::from_strings(&env).unwrap_or_else(|e| panic!("{e}"));
    let started = tokio::time::timeout(
        T,
        contact_sync::start(config, &Registry::new(), Health::new(), std::future::pending()),
    )
    .await
    .unwrap_or_else(|_| panic!("the check did not finish"));
    let error = started.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        error.contains("`shoeSize`")
            && error.contains("attributes.shoe_size")
            && error.contains("CONTACT_SYNC_MAPPING"),
        "{error}"
    );
    // The binary exits 64 (a usage error) and says why.
    let output = tokio::process::Command::new(binary("contact-sync"))
        .env_clear()
        .envs(&env)
        .env("RUST_LOG", "error")
        .output();
    let output = tokio::time::timeout(T, output)
        .await
        .unwrap_or_else(|_| panic!("contact-sync did not exit"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(output.status.code(), Some(64));
    let logs = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(logs.contains("shoeSize"), "{logs}");
    let _removed = std::fs::remove_file(&mapping);
    h.finish().await;
}

#[tokio::test]
async fn the_property_check_retries_while_spotler_is_down_then_starts() {
    let mut h = start("check-ok", "spotler", &[]).await;
    let _stopped = h.stop_worker().await;
    h.sandbox
        .state
        .set_fault(Provider::Spotler, Fault::forced(503, 1))
        .unwrap_or_else(|e| panic!("{e}"));
    h.env.insert("SPOTLER_CHECK_PROPERTIES".into(), "true".into());
    h.start_worker();
    h.publish("contact.changed", &contact("chk-1", "chk@example.com")).await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(results[0]["status"], "synced");
    let calls: Vec<(String, u16)> = h
        .sandbox
        .state
        .calls(Provider::Spotler)
        .iter()
        .map(|c| (c.path.rsplit('/').take(2).collect::<Vec<_>>().join("<"), c.status))
        .collect();
    assert_eq!(
        calls,
        [
            ("list<properties".to_owned(), 503),
            ("list<properties".to_owned(), 200),
            ("contact<integrationservice-1.1.0".to_owned(), 204)
        ]
    );
    h.finish().await;
}

#[tokio::test]
async fn a_sign_up_is_subscribed_everywhere_without_a_contact_id() {
    let h = start("subscribe", "spotler,ecomail,salesmanago", &[]).await;
    h.publish(
        "contact.subscribed",
        &json!({"email": "form@example.com", "permissions": {"newsletter": true}, "first_name": "Eva",
                "language": "cs - eshop-cz - b2c", "source": "footer", "subscribed_at": "2026-11-20T10:15:00Z"}),
    )
    .await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 3, T).await;
    assert!(
        results
            .iter()
            .all(|r| r["status"] == "synced" && r["operation"] == "subscribe" && r.get("contact_id").is_none()),
        "{results:?}"
    );
    let subscribe_calls: Vec<String> = h
        .sandbox
        .state
        .calls(Provider::Spotler)
        .iter()
        .map(|c| format!("{} {}", c.method, c.path))
        .collect();
    assert!(
        subscribe_calls[0].ends_with("/subscription/subscribe"),
        "{subscribe_calls:?}"
    );
    let spotler = h.sandbox.state.spotler_contacts();
    assert_eq!(spotler.len(), 1);
    assert_eq!(spotler[0].properties["email"], "form@example.com");
    assert_eq!(spotler[0].properties["firstName"], "Eva");
    assert_eq!(
        spotler[0].properties["permissions"],
        json!([{"bit": 1, "enabled": true}])
    );
    let ecomail = h
        .sandbox
        .state
        .ecomail_subscriber(7, "form@example.com")
        .unwrap_or_else(|| panic!("not in Ecomail"));
    assert!(format!("{ecomail:?}").contains("newsletter"), "{ecomail:?}");
    let stored = salesmanago_contact(&h, "form@example.com");
    assert_eq!(stored["email_opt_in"], true);
    assert_eq!(stored["tags"], json!(["NEWSLETTER"]));
    h.finish().await;
}

/// Syncs contacts `ids` into Spotler (so lists and lookups can name them).
async fn sync_contacts(h: &Harness, ids: &[&str], results: &mut Vec<Value>) {
    for id in ids {
        h.publish("contact.changed", &contact(id, &format!("{id}@example.com")))
            .await;
    }
    let want = results.len() + ids.len();
    h.wait_results(results, want, T).await;
}

fn templist(h: &Harness, id: &str) -> Option<Value> {
    h.sandbox.state.spotler_templists().into_iter().find(|l| l["id"] == id)
}

#[tokio::test]
async fn segments_become_temporary_lists_created_added_to_and_deleted() {
    let h = start("segments", "spotler", &[]).await;
    let mut results = Vec::new();
    sync_contacts(&h, &["seg-1", "seg-2", "seg-3"], &mut results).await;
    let create = json!({"segment_id": "vip", "action": "create", "name": "VIP invitation",
                        "contact_ids": ["seg-1", "seg-2"], "exported_at": "2026-11-20T09:00:00Z"});
    h.publish("segment.exported", &create).await;
    h.wait_results(&mut results, 4, T).await;
    let list = templist(&h, "sy-vip").unwrap_or_else(|| panic!("no list"));
    assert_eq!(list["name"], "VIP invitation");
    assert_eq!(list["contacts"], json!(["seg-1", "seg-2"]));
    // The same create again (a redelivery) changes nothing and succeeds.
    h.publish("segment.exported", &create).await;
    h.publish(
        "segment.exported",
        &json!({"segment_id": "vip", "action": "add", "contact_ids": ["seg-3"], "exported_at": "2026-11-20T12:00:00Z"}),
    )
    .await;
    h.wait_results(&mut results, 6, T).await;
    assert_eq!(
        templist(&h, "sy-vip").map(|l| l["contacts"].clone()),
        Some(json!(["seg-1", "seg-2", "seg-3"]))
    );
    assert_eq!(h.sandbox.state.spotler_templists().len(), 1);
    let delete = json!({"segment_id": "vip", "action": "delete", "exported_at": "2026-12-01T08:00:00Z"});
    h.publish("segment.exported", &delete).await;
    h.publish("segment.exported", &delete).await;
    h.wait_results(&mut results, 8, T).await;
    assert!(h.sandbox.state.spotler_templists().is_empty());
    let lists: Vec<&Value> = results.iter().filter(|r| r.get("segment_id").is_some()).collect();
    let operations: Vec<(&str, &str)> = lists
        .iter()
        .map(|r| {
            (
                r["operation"].as_str().unwrap_or_default(),
                r["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(operations.len(), 5);
    assert!(
        operations.iter().all(|(_, status)| *status == "synced"),
        "{operations:?}"
    );
    assert!(h.dead_letters().await.is_empty());
    h.finish().await;
}

#[tokio::test]
async fn the_temporary_list_cap_is_a_clear_permanent_error_by_default() {
    let h = start("cap", "spotler", &[]).await;
    for n in 0..30 {
        h.sandbox
            .state
            .seed_spotler_templist(&format!("other-{n}"), &format!("Other {n}"), "IMPORT")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    h.publish(
        "segment.exported",
        &json!({"segment_id": "full", "action": "create", "name": "Full", "contact_ids": [], "exported_at": "2026-11-20T09:00:00Z"}),
    )
    .await;
    let letters = h.wait_dead_letters(1, T).await;
    assert_eq!(letters[0].class, "permanent");
    assert!(
        letters[0].error.contains("maximum of 30") && letters[0].error.contains("SPOTLER_TEMPLIST_EVICT_OLDEST"),
        "{}",
        letters[0].error
    );
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(results[0]["status"], "failed");
    assert_eq!(results[0]["segment_id"], "full");
    assert_eq!(h.sandbox.state.spotler_templists().len(), 30, "nothing deleted");
    h.finish().await;
}

#[tokio::test]
async fn at_the_cap_our_oldest_list_is_evicted_when_configured() {
    let h = start("evict", "spotler", &[("SPOTLER_TEMPLIST_EVICT_OLDEST", "true")]).await;
    for n in 0..28 {
        h.sandbox
            .state
            .seed_spotler_templist(&format!("other-{n}"), &format!("Other {n}"), "IMPORT")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for id in ["sy-old", "sy-newer"] {
        h.sandbox
            .state
            .seed_spotler_templist(id, id, "API")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    h.publish(
        "segment.exported",
        &json!({"segment_id": "fresh", "action": "create", "name": "Fresh", "exported_at": "2026-11-20T09:00:00Z"}),
    )
    .await;
    let mut results = Vec::new();
    h.wait_results(&mut results, 1, T).await;
    assert_eq!(results[0]["status"], "synced", "{results:?}");
    let ids: HashSet<String> = h
        .sandbox
        .state
        .spotler_templists()
        .iter()
        .filter_map(|l| l["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 30);
    assert!(!ids.contains("sy-old"), "our oldest list was deleted");
    assert!(
        ids.contains("sy-newer") && ids.contains("sy-fresh") && ids.contains("other-0"),
        "{ids:?}"
    );
    h.finish().await;
}

#[tokio::test]
async fn lookups_answer_found_and_not_found() {
    let h = start("lookup", "spotler", &[]).await;
    let mut results = Vec::new();
    sync_contacts(&h, &["look-1"], &mut results).await;
    let found = h
        .publish(
            "contact.lookup.requested",
            &json!({"property": "loyaltyTier", "value": "gold", "request_id": "form-1"}),
        )
        .await;
    let missing = h
        .publish(
            "contact.lookup.requested",
            &json!({"property": "loyaltyTier", "value": "platinum"}),
        )
        .await;
    h.wait_results(&mut results, 3, T).await;
    let answer = |id: &str| {
        results
            .iter()
            .find(|r| r["source_message_id"] == id && r.get("found").is_some())
            .cloned()
            .unwrap_or_else(|| panic!("no answer for {id}: {results:?}"))
    };
    let yes = answer(&found);
    assert_eq!(yes["found"], true);
    assert_eq!(yes["contact_ids"], json!(["look-1"]));
    assert_eq!(yes["request_id"], "form-1");
    assert_eq!(yes["property"], "loyaltyTier");
    assert!(yes.get("value").is_none(), "the value is never echoed");
    let no = answer(&missing);
    assert_eq!(no["found"], false);
    assert_eq!(no["contact_ids"], json!([]));
    h.finish().await;
}

#[tokio::test]
async fn import_publishes_every_good_row_and_reports_the_malformed_one() {
    let h = start("import", "spotler,ecomail", &[]).await;
    let csv = temp_file(
        "customers.csv",
        "contact_id,email,first_name,permissions.newsletter,attributes.loyalty_tier\n\
         imp-1,imp1@example.com,Ann,true,gold\n\
         imp-2,not-an-address,Bob,true,\n\
         imp-3,imp3@example.com,Cid,false,silver\n\
         imp-4,imp4@example.com,,,\n",
    );
    let output = tokio::process::Command::new(binary("switchyard"))
        .args(["import", "contacts", "--file"])
        .arg(&csv)
        .env("SWITCHYARD_NAMESPACE", &h.namespace)
        .output();
    let output = tokio::time::timeout(T, output)
        .await
        .unwrap_or_else(|_| panic!("import did not finish"))
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "a malformed row fails the run: {stdout} {stderr}"
    );
    assert!(stderr.contains("line 3: email:"), "{stderr}");
    assert!(!stderr.contains("not-an-address"), "values are not echoed: {stderr}");
    assert!(stdout.contains("rows: 4, published: 3, malformed: 1"), "{stdout}");
    let mut results = Vec::new();
    h.wait_results(&mut results, 6, T).await;
    assert!(results.iter().all(|r| r["status"] == "synced"), "{results:?}");
    let mut ids: Vec<String> = h
        .sandbox
        .state
        .spotler_contacts()
        .iter()
        .map(|c| c.external_id.clone())
        .collect();
    ids.sort();
    assert_eq!(ids, ["imp-1", "imp-3", "imp-4"]);
    let imp3 = h
        .sandbox
        .state
        .spotler_contact("imp-3")
        .unwrap_or_else(|| panic!("imp-3"));
    assert_eq!(imp3.properties["loyaltyTier"], "silver");
    let _removed = std::fs::remove_file(&csv);
    h.finish().await;
}

#[tokio::test]
async fn a_backlog_of_contacts_without_orders_goes_through_contact_list_calls() {
    const N: usize = 250;
    let mut h = start("bulk", "spotler,ecomail", &[]).await;
    let _stopped = h.stop_worker().await;
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        ids.push(
            h.publish(
                "contact.changed",
                &contact(&format!("bulk-{i}"), &format!("bulk-{i}@example.com")),
            )
            .await,
        );
    }
    h.start_worker();
    let mut results = Vec::new();
    h.wait_results(&mut results, 2 * N, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    results.extend(h.take_results().await);
    // One contact.synced per destination per message, all synced.
    let mut per_pair: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &results {
        assert_eq!(r["status"], "synced", "{r}");
        let key = (
            r["source_message_id"].as_str().unwrap_or_default().to_owned(),
            r["destination"].as_str().unwrap_or_default().to_owned(),
        );
        *per_pair.entry(key).or_default() += 1;
    }
    assert_eq!(per_pair.len(), 2 * N);
    assert!(per_pair.values().all(|n| *n == 1));
    assert!(
        ids.iter()
            .all(|id| per_pair.contains_key(&(id.clone(), "spotler".to_owned())))
    );
    // Spotler got them in /contact/list calls of at most 100.
    let calls = h.sandbox.state.calls(Provider::Spotler);
    let list_sizes: Vec<usize> = calls
        .iter()
        .filter(|c| c.path.ends_with("/contact/list"))
        .map(|c| {
            c.body
                .as_ref()
                .and_then(|b| b["contacts"].as_array())
                .map_or(0, Vec::len)
        })
        .collect();
    let singles = calls.iter().filter(|c| c.path.ends_with("/contact")).count();
    assert!(list_sizes.iter().all(|n| *n <= 100), "{list_sizes:?}");
    assert!(list_sizes.iter().any(|n| *n > 1), "batched: {list_sizes:?}");
    assert_eq!(list_sizes.iter().sum::<usize>() + singles, N);
    assert!(
        list_sizes.len() < N / 2,
        "far fewer calls than contacts: {list_sizes:?}"
    );
    assert_eq!(h.sandbox.state.spotler_contacts().len(), N);
    // Ecomail got them in subscribe-bulk calls (a batch of one uses the single endpoint).
    let ecomail = h.sandbox.state.calls(Provider::Ecomail);
    let bulk_sizes: Vec<usize> = ecomail
        .iter()
        .filter(|c| c.path.ends_with("/subscribe-bulk"))
        .map(|c| {
            c.body
                .as_ref()
                .and_then(|b| b["subscriber_data"].as_array())
                .map_or(0, Vec::len)
        })
        .collect();
    let single_subscribes = ecomail.iter().filter(|c| c.path.ends_with("/subscribe")).count();
    assert!(bulk_sizes.iter().any(|n| *n > 1), "batched: {bulk_sizes:?}");
    assert_eq!(bulk_sizes.iter().sum::<usize>() + single_subscribes, N);
    let subscribers: usize = h.sandbox.state.ecomail_subscribers().values().map(Vec::len).sum();
    assert_eq!(subscribers, N);
    assert!(h.dead_letters().await.is_empty());
    h.finish().await;
}

#[tokio::test]
async fn a_failed_item_of_a_bulk_call_fails_only_its_message() {
    // A mapping that lets one contact carry a `permissions` value Spotler refuses per contact
    // (PROPERTY_INVALID) while the others in the same /contact/list call are fine.
    let mapping = temp_file(
        "mapping.toml",
        "[spotler.properties]\nemail = \"email\"\n\"attributes.perm\" = \"permissions\"\n[ecomail]\n",
    );
    let mut h = start(
        "bulk-item",
        "spotler",
        &[("CONTACT_SYNC_MAPPING", &mapping.display().to_string())],
    )
    .await;
    let _stopped = h.stop_worker().await;
    for i in 0..5 {
        let mut good = contact(&format!("item-{i}"), &format!("item-{i}@example.com"));
        good["attributes"] = json!({});
        h.publish("contact.changed", &good).await;
    }
    let mut bad = contact("item-bad", "item-bad@example.com");
    bad["attributes"] = json!({"perm": "everything"});
    if let Some(body) = bad.as_object_mut() {
        body.remove("permissions");
    }
    let bad_id = h.publish("contact.changed", &bad).await;
    h.start_worker();
    let letters = h.wait_dead_letters(1, T).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].message_id.as_deref(), Some(bad_id.as_str()));
    assert_eq!(letters[0].class, "permanent");
    assert!(letters[0].error.contains("PROPERTY_INVALID"), "{}", letters[0].error);
    let mut results = Vec::new();
    h.wait_results(&mut results, 6, T).await;
    let failed: Vec<&Value> = results.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{results:?}");
    assert_eq!(failed[0]["source_message_id"], bad_id.as_str());
    assert_eq!(of(&results, "spotler").len(), 6);
    let shared_call = h.sandbox.state.calls(Provider::Spotler).iter().any(|c| {
        c.path.ends_with("/contact/list")
            && c.body.as_ref().is_some_and(|b| {
                b["contacts"].as_array().is_some_and(|contacts| {
                    contacts.len() > 1 && contacts.iter().any(|x| x["externalId"] == "item-bad")
                })
            })
    });
    assert!(shared_call, "the bad contact shared a bulk call with the others");
    assert_eq!(h.sandbox.state.spotler_contacts().len(), 5);
    let _removed = std::fs::remove_file(&mapping);
    h.finish().await;
}
