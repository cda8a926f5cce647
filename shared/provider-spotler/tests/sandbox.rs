//! The Spotler client over real HTTP against the sandbox's Spotler emulation: bulk insert with
//! per-contact results, subscriptions, temporary lists (and their cap), search by property.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use api_client::{CallError, HttpMetrics, ProviderClient};
use prometheus::Registry;
use provider_spotler::{Contact, SpotlerClient, SpotlerConfig, TempListCreated};
use serde_json::{Value, json};
use settings::{ProviderLimits, Secret};
use switchyard_sandbox::{RunningSandbox, SandboxConfig};

async fn fixture() -> (RunningSandbox, SpotlerClient) {
    let sandbox = switchyard_sandbox::spawn(SandboxConfig::for_tests())
        .await
        .unwrap_or_else(|e| panic!("sandbox: {e}"));
    let limits = ProviderLimits {
        windows: vec!["1000/s".parse().unwrap_or_else(|e| panic!("{e}"))],
        burst: None,
        concurrency: NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN),
        timeout: Duration::from_secs(5),
    };
    let metrics = HttpMetrics::register(&Registry::new()).unwrap_or_else(|e| panic!("{e}"));
    let base = url::Url::parse(&sandbox.spotler_base_url()).unwrap_or_else(|e| panic!("{e}"));
    let http = ProviderClient::new(
        "spotler",
        base,
        &limits,
        NonZeroU32::MIN,
        Duration::from_secs(5),
        metrics,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let client = SpotlerClient::new(
        http,
        SpotlerConfig {
            consumer_key: switchyard_sandbox::DEFAULT_SPOTLER_CONSUMER_KEY.to_owned(),
            consumer_secret: Secret::from(switchyard_sandbox::DEFAULT_SPOTLER_CONSUMER_SECRET),
        },
    );
    (sandbox, client)
}

fn contact(id: &str, properties: Value) -> Contact {
    Contact {
        external_id: id.to_owned(),
        properties: properties
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    }
}

#[tokio::test]
async fn bulk_insert_reports_each_contact() {
    let (sandbox, client) = fixture().await;
    let contacts = vec![
        contact("c-1", json!({"email": "one@example.com", "code": "X-1"})),
        contact("c-2", json!({"email": "not-an-address"})),
        contact("c-3", json!({"email": "three@example.com"})),
    ];
    let results = client
        .insert_contacts(&contacts, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(results.len(), 3);
    assert_eq!(results[0], Ok(()));
    assert!(
        matches!(&results[1], Err(CallError::Permanent(t)) if t.contains("PROPERTY_INVALID")),
        "{results:?}"
    );
    assert_eq!(results[2], Ok(()));
    assert!(sandbox.state.spotler_contact("c-3").is_some());
    assert!(sandbox.state.spotler_contact("c-2").is_none());
    let too_many: Vec<Contact> = (0..101).map(|i| contact(&format!("x-{i}"), json!({}))).collect();
    assert!(matches!(
        client.insert_contacts(&too_many, true).await,
        Err(CallError::Permanent(_))
    ));
}

#[tokio::test]
async fn subscribe_needs_no_contact_id() {
    let (sandbox, client) = fixture().await;
    let properties: BTreeMap<String, Value> = [
        ("email".to_owned(), json!("new@example.com")),
        ("permissions".to_owned(), json!([{"bit": 1, "enabled": true}])),
    ]
    .into_iter()
    .collect();
    client
        .subscribe(None, &properties)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stored = sandbox.state.spotler_contacts();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].properties["email"], "new@example.com");
    // Without a permission Spotler refuses the subscription.
    let bare: BTreeMap<String, Value> = [("email".to_owned(), json!("x@example.com"))].into_iter().collect();
    assert!(matches!(
        client.subscribe(None, &bare).await,
        Err(CallError::Permanent(_))
    ));
}

#[tokio::test]
async fn temporary_lists_are_created_filled_listed_deleted_and_capped() {
    let (sandbox, client) = fixture().await;
    client
        .insert_contacts(
            &[
                contact("c-1", json!({"email": "a@example.com"})),
                contact("c-2", json!({"email": "b@example.com"})),
            ],
            true,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let created = client.create_templist("sy-1", "Segment 1", &["c-1".to_owned()]).await;
    assert_eq!(created, Ok(TempListCreated::Created));
    let again = client.create_templist("sy-1", "Segment 1", &["c-1".to_owned()]).await;
    assert_eq!(again, Ok(TempListCreated::AlreadyExists));
    assert_eq!(client.add_to_templist("sy-1", &["c-2".to_owned()]).await, Ok(true));
    assert_eq!(client.add_to_templist("missing", &["c-2".to_owned()]).await, Ok(false));
    assert_eq!(sandbox.state.spotler_templists()[0]["contacts"], json!(["c-1", "c-2"]));
    let unknown = client
        .create_templist("sy-2", "Segment 2", &["nobody".to_owned()])
        .await;
    assert!(matches!(unknown, Err(CallError::Permanent(_))), "{unknown:?}");
    for n in 2..=30 {
        sandbox
            .state
            .seed_spotler_templist(&format!("other-{n}"), &format!("Other {n}"), "IMPORT")
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let full = client.create_templist("sy-3", "Segment 3", &[]).await;
    assert_eq!(full, Ok(TempListCreated::TooMany));
    let lists = client.templists().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lists.len(), 30);
    assert_eq!(lists[0].external_temporary_list_id, "sy-1");
    assert_eq!(lists[0].kind.as_deref(), Some("API"));
    assert_eq!(client.delete_templist("sy-1").await, Ok(true));
    assert_eq!(client.delete_templist("sy-1").await, Ok(false));
}

#[tokio::test]
async fn search_by_property_finds_or_not() {
    let (_sandbox, client) = fixture().await;
    client
        .insert_contacts(
            &[
                contact(
                    "c-1",
                    json!({"email": "a@example.com", "discountCode": "WELCOME 7&F=3"}),
                ),
                contact("c-2", json!({"email": "b@example.com", "discountCode": "OTHER"})),
            ],
            true,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let found = client
        .search("discountCode", "WELCOME 7&F=3", 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.external_ids, ["c-1"]);
    assert!(!found.more);
    let none = client
        .search("discountCode", "NOPE", 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(none.external_ids.is_empty());
    let paged = client
        .search("email", "a@example.com", 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(paged.external_ids, ["c-1"]);
}
