//! The Spotler change lists over real HTTP against the sandbox: bounces and updated contacts
//! in a half-open date window, page by page, and the sandbox's refusals of bad queries.

use std::num::NonZeroU32;
use std::time::Duration;

use api_client::{CallError, HttpMetrics, ProviderClient};
use prometheus::Registry;
use provider_spotler::{BounceKind, SpotlerClient, SpotlerConfig, Window};
use serde_json::{Map, Value, json};
use settings::{ProviderLimits, Secret};
use switchyard_sandbox::{
    RunningSandbox, SandboxConfig, SpotlerBounce, SpotlerChangedContact, SpotlerChannel, SpotlerUpdate,
};
use time::OffsetDateTime;
use time::macros::datetime;

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

fn changed(id: &str, properties: Value, email_on: Option<bool>) -> SpotlerChangedContact {
    SpotlerChangedContact {
        external_id: id.to_owned(),
        properties: properties.as_object().cloned().unwrap_or_else(Map::new),
        channels: email_on.map(|value| {
            vec![SpotlerChannel {
                name: "EMAIL".to_owned(),
                value,
            }]
        }),
    }
}

fn at(second: i64) -> OffsetDateTime {
    datetime!(2026-03-01 10:00:00 UTC) + time::Duration::seconds(second)
}

#[tokio::test]
async fn bounces_are_paged_within_the_window() {
    let (sandbox, client) = fixture().await;
    let bounces = (0..7)
        .map(|i| SpotlerBounce {
            date: at(i),
            bounce_type: if i % 2 == 0 { "HARDBOUNCE" } else { "SOFTBOUNCE" }.to_owned(),
            contact: changed(&format!("c-{i}"), json!({"email": format!("c{i}@example.com")}), None),
            encrypted_act_id: Some(format!("act-{i}")),
        })
        .collect();
    sandbox
        .state
        .add_spotler_bounces(bounces)
        .unwrap_or_else(|e| panic!("{e}"));
    // [1, 6): records 1..=5, in pages of 2.
    let window = Window { from: at(1), to: at(6) };
    let mut after = 0;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = client
            .bounces(&window, after, 2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        pages += 1;
        seen.extend(page.items);
        match page.next_after {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let ids: Vec<&str> = seen.iter().map(|b| b.contact.external_id.as_str()).collect();
    assert_eq!(ids, ["c-1", "c-2", "c-3", "c-4", "c-5"]);
    assert_eq!(seen[0].kind, BounceKind::Soft);
    assert_eq!(seen[1].kind, BounceKind::Hard);
    assert_eq!(seen[0].date, Some(at(1)));
    assert_eq!(seen[0].encrypted_act_id.as_deref(), Some("act-1"));
    assert_eq!(seen[0].contact.properties.get("email"), Some(&json!("c1@example.com")));
}

#[tokio::test]
async fn updates_carry_channels_and_last_changed() {
    let (sandbox, client) = fixture().await;
    sandbox
        .state
        .add_spotler_updates(vec![
            SpotlerUpdate {
                date: at(5),
                contact: changed("c-2", json!({"firstName": "Eva"}), Some(false)),
            },
            SpotlerUpdate {
                date: at(3),
                contact: changed("c-1", json!({"firstName": "Jan"}), None),
            },
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    let window = Window {
        from: at(0),
        to: at(60),
    };
    let page = client.updates(&window, 0, 100).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.next_after, None);
    let ids: Vec<&str> = page.items.iter().map(|c| c.external_id.as_str()).collect();
    assert_eq!(ids, ["c-1", "c-2"], "ordered by date");
    assert_eq!(page.items[1].last_changed, Some(at(5)));
    assert_eq!(page.items[1].channels.first().map(|c| c.value), Some(false));
    let empty = client
        .updates(
            &Window {
                from: at(60),
                to: at(120),
            },
            0,
            100,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(empty.items.is_empty() && empty.next_after.is_none());
}

#[tokio::test]
async fn bad_page_sizes_never_reach_spotler() {
    let (sandbox, client) = fixture().await;
    let window = Window { from: at(0), to: at(1) };
    let refused = client.bounces(&window, 0, 10_001).await;
    assert!(matches!(refused, Err(CallError::Permanent(_))), "{refused:?}");
    assert!(sandbox.state.calls(switchyard_sandbox::Provider::Spotler).is_empty());
}
