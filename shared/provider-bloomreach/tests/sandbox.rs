//! The Bloomreach client over real HTTP against the sandbox's Bloomreach emulation.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use api_client::{CallError, HttpMetrics, ProviderClient};
use prometheus::Registry;
use provider_bloomreach::{BloomreachClient, BloomreachConfig, Command, CommandResult, CustomerUpdate, Event};
use serde_json::{Map, json};
use settings::{ProviderLimits, Secret};
use switchyard_sandbox::{RunningSandbox, SandboxConfig};
use time::macros::datetime;

async fn fixture() -> (RunningSandbox, BloomreachClient) {
    let sandbox = switchyard_sandbox::spawn(SandboxConfig::for_tests())
        .await
        .unwrap_or_else(|e| panic!("sandbox: {e}"));
    let metrics = HttpMetrics::register(&Registry::new()).unwrap_or_else(|e| panic!("{e}"));
    let limits = ProviderLimits {
        windows: vec!["100/s".parse().unwrap_or_else(|e| panic!("{e}"))],
        burst: None,
        concurrency: NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN),
        timeout: Duration::from_secs(5),
    };
    let base = url::Url::parse(&sandbox.bloomreach_base_url()).unwrap_or_else(|e| panic!("{e}"));
    let http = ProviderClient::new(
        "bloomreach",
        base,
        &limits,
        NonZeroU32::MIN,
        Duration::from_secs(5),
        metrics,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let client = BloomreachClient::new(
        http,
        BloomreachConfig {
            project_token: switchyard_sandbox::DEFAULT_BLOOMREACH_PROJECT_TOKEN.to_owned(),
            api_key_id: Secret::from(switchyard_sandbox::DEFAULT_BLOOMREACH_KEY_ID),
            api_secret: Secret::from(switchyard_sandbox::DEFAULT_BLOOMREACH_SECRET),
        },
    );
    (sandbox, client)
}

fn event(customer: &str) -> Event {
    Event {
        customer_ids: BTreeMap::from([("registered".to_owned(), customer.to_owned())]),
        event_type: "voucherify_rewarded".into(),
        timestamp: datetime!(2026-11-21 09:30:00 UTC),
        properties: json!({"points": 10}).as_object().cloned().unwrap_or_default(),
    }
}

#[tokio::test]
async fn batch_splits_into_calls_of_at_most_fifty_and_reports_each_command() {
    let (sandbox, client) = fixture().await;
    let mut commands: Vec<Command> = (0..60)
        .map(|n| Command::AddEvent(event(&format!("shop-{n}"))))
        .collect();
    // Command 55 has no customer id: Bloomreach refuses it alone.
    commands[55] = Command::AddEvent(Event {
        customer_ids: BTreeMap::new(),
        ..event("none")
    });
    let results = client.batch(&commands).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(results.len(), 60);
    for (i, result) in results.iter().enumerate() {
        if i == 55 {
            assert_eq!(
                result,
                &CommandResult::Rejected {
                    errors: vec!["At least one id should be specified.".into()]
                }
            );
        } else {
            assert_eq!(result, &CommandResult::Accepted, "command {i}");
        }
    }
    let calls = sandbox.state.calls(switchyard_sandbox::Provider::Bloomreach);
    assert_eq!(calls.len(), 2, "60 commands = 50 + 10");
    let events = sandbox.state.bloomreach_events();
    assert_eq!(events.len(), 59);
    assert!(events.iter().all(|e| e["timestamp"].as_f64() == Some(1_795_253_400.0)));
}

#[tokio::test]
async fn single_calls_succeed_or_fail_permanently() {
    let (sandbox, client) = fixture().await;
    client
        .add_event(&event("shop-1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let update = CustomerUpdate {
        customer_ids: BTreeMap::from([("registered".to_owned(), "shop-1".to_owned())]),
        properties: json!({"voucherify_id": "cust_1"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        update_timestamp: Some(datetime!(2026-11-21 09:30:00 UTC)),
    };
    client.update_customer(&update).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sandbox.state.bloomreach_events().len(), 1);
    let customers = sandbox.state.bloomreach_customers();
    assert_eq!(customers.len(), 1, "{customers:?}");

    let no_ids = Event {
        customer_ids: BTreeMap::new(),
        properties: Map::new(),
        ..event("x")
    };
    let refused = client.add_event(&no_ids).await;
    assert!(
        matches!(&refused, Err(CallError::Permanent(text)) if text.contains("At least one id")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn wrong_credentials_are_permanent() {
    let (sandbox, _) = fixture().await;
    let metrics = HttpMetrics::register(&Registry::new()).unwrap_or_else(|e| panic!("{e}"));
    let limits = ProviderLimits {
        windows: vec!["100/s".parse().unwrap_or_else(|e| panic!("{e}"))],
        burst: None,
        concurrency: NonZeroU32::MIN,
        timeout: Duration::from_secs(5),
    };
    let base = url::Url::parse(&sandbox.bloomreach_base_url()).unwrap_or_else(|e| panic!("{e}"));
    let http = ProviderClient::new(
        "bloomreach",
        base,
        &limits,
        NonZeroU32::MIN,
        Duration::from_secs(5),
        metrics,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let client = BloomreachClient::new(
        http,
        BloomreachConfig {
            project_token: switchyard_sandbox::DEFAULT_BLOOMREACH_PROJECT_TOKEN.to_owned(),
            api_key_id: Secret::from("wrong"),
            api_secret: Secret::from("wrong"),
        },
    );
    let result = client.batch(&[Command::AddEvent(event("shop-1"))]).await;
    assert!(matches!(result, Err(CallError::Permanent(_))), "{result:?}");
    assert!(sandbox.state.bloomreach_events().is_empty());
}
