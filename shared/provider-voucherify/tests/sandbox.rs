//! The Voucherify clients over real HTTP against the sandbox's Voucherify emulation.

use std::num::NonZeroU32;
use std::time::Duration;

use api_client::{HttpMetrics, ProviderClient};
use prometheus::Registry;
use provider_voucherify::{
    Customer, IntegrationConfig, IntegrationEvent, MetadataFilter, MetadataMetrics, MetadataSchema,
    PublicationCustomer, PublicationRequest, VoucherifyClient, VoucherifyConfig, VoucherifyIntegrationClient,
};
use serde_json::{Map, Value, json};
use settings::{ProviderLimits, Secret};
use switchyard_sandbox::{RunningSandbox, SandboxConfig};

struct Fixture {
    sandbox: RunningSandbox,
    registry: Registry,
    api: VoucherifyClient,
    integration: VoucherifyIntegrationClient,
}

fn http(label: &'static str, base: &str, metrics: &HttpMetrics) -> ProviderClient {
    let limits = ProviderLimits {
        windows: vec!["100/s".parse().unwrap_or_else(|e| panic!("{e}"))],
        burst: None,
        concurrency: NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN),
        timeout: Duration::from_secs(5),
    };
    let base = url::Url::parse(base).unwrap_or_else(|e| panic!("{e}"));
    ProviderClient::new(
        label,
        base,
        &limits,
        NonZeroU32::MIN,
        Duration::from_secs(5),
        metrics.clone(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn fixture() -> Fixture {
    let sandbox = switchyard_sandbox::spawn(SandboxConfig::for_tests())
        .await
        .unwrap_or_else(|e| panic!("sandbox: {e}"));
    let registry = Registry::new();
    let metrics = HttpMetrics::register(&registry).unwrap_or_else(|e| panic!("{e}"));
    let schema = MetadataSchema::from_pairs("segment=string,loyalty_points=number,vip=boolean,last_order_at=date")
        .unwrap_or_else(|e| panic!("{e}"));
    let filter = MetadataFilter::new(
        schema,
        MetadataMetrics::register(&registry).unwrap_or_else(|e| panic!("{e}")),
    );
    let api = VoucherifyClient::new(
        http("voucherify", &sandbox.voucherify_base_url(), &metrics),
        VoucherifyConfig {
            app_id: Secret::from(switchyard_sandbox::DEFAULT_VOUCHERIFY_APP_ID),
            app_token: Secret::from(switchyard_sandbox::DEFAULT_VOUCHERIFY_APP_TOKEN),
        },
    )
    .with_metadata_filter(filter.clone());
    let integration = VoucherifyIntegrationClient::new(
        http(
            "voucherify_integration",
            &sandbox.voucherify_integration_base_url(),
            &metrics,
        ),
        IntegrationConfig {
            application_id: Secret::from(switchyard_sandbox::DEFAULT_VOUCHERIFY_INTEGRATION_APP_ID),
            secret_key: Secret::from(switchyard_sandbox::DEFAULT_VOUCHERIFY_INTEGRATION_SECRET_KEY),
            hard_id: switchyard_sandbox::DEFAULT_VOUCHERIFY_HARD_ID.to_owned(),
        },
        filter,
    );
    Fixture {
        sandbox,
        registry,
        api,
        integration,
    }
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn dropped_metric(registry: &Registry, reason: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == "switchyard_metadata_dropped_total")
        .flat_map(|f| f.get_metric())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "reason" && l.value() == reason)
        })
        .map(|m| m.get_counter().get_value())
        .sum()
}

#[tokio::test]
async fn upsert_customer_sends_only_defined_well_typed_metadata() {
    let f = fixture().await;
    let customer = Customer {
        source_id: "shop-1".into(),
        name: Some("Jana Nováková".into()),
        email: Some("jana@example.com".into()),
        metadata: object(json!({"segment": "gold", "vip": "yes", "shoe_size": 42})),
        ..Customer::default()
    };
    let stored = f.api.upsert_customer(&customer).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(stored.id.starts_with("cust_"), "{stored:?}");
    assert_eq!(stored.source_id, "shop-1");
    assert_eq!((stored.dropped.undefined, stored.dropped.wrong_type), (1, 1));
    let customers = f.sandbox.state.voucherify_customers();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0]["metadata"], json!({"segment": "gold"}));
    assert_eq!(customers[0]["email"], "jana@example.com");
    assert_eq!(
        (
            dropped_metric(&f.registry, "undefined"),
            dropped_metric(&f.registry, "wrong_type")
        ),
        (1.0, 1.0)
    );

    // An upsert by source_id updates the same customer.
    let again = f.api.upsert_customer(&customer).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.id, stored.id);
    assert_eq!(f.sandbox.state.voucherify_customers().len(), 1);
}

#[tokio::test]
async fn publishing_twice_with_one_source_id_returns_the_first_code() {
    let f = fixture().await;
    let request = PublicationRequest {
        source_id: "msg-1".into(),
        campaign: "Welcome 10".into(),
        customer: PublicationCustomer {
            source_id: "shop-2".into(),
            email: None,
            name: None,
        },
        channel: None,
        metadata: Map::new(),
    };
    let first = f.api.publish(&request).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(first.code.starts_with("W10-"), "{first:?}");
    assert_eq!(first.source_id.as_deref(), Some("msg-1"));
    let second = f.api.publish(&request).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second, first);
    assert_eq!(f.sandbox.state.voucherify_publications().len(), 1);

    // A different source_id is a different publication.
    let other = PublicationRequest {
        source_id: "msg-2".into(),
        ..request
    };
    let third = f.api.publish(&other).await.unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(third.code, first.code);
}

#[tokio::test]
async fn integration_bulk_calls_filter_metadata_per_item() {
    let f = fixture().await;
    let customers = [
        Customer {
            source_id: "shop-3".into(),
            metadata: object(json!({"segment": "gold", "unknown": 1})),
            ..Customer::default()
        },
        Customer {
            source_id: "shop-4".into(),
            metadata: object(json!({"last_order_at": "2026-11-20", "loyalty_points": "x"})),
            ..Customer::default()
        },
    ];
    let dropped = f
        .integration
        .upsert_customers_bulk(&customers)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        dropped.iter().map(|d| (d.undefined, d.wrong_type)).collect::<Vec<_>>(),
        [(1, 0), (0, 1)]
    );
    let events = [IntegrationEvent {
        event: "review_left".into(),
        customer_source_id: "shop-3".into(),
        metadata: object(json!({"vip": true})),
    }];
    let dropped = f
        .integration
        .create_events_bulk(&events)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dropped[0].total(), 0);

    let calls = f.sandbox.state.voucherify_integration_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls.iter().all(|c| c["dropped_metadata"] == 0 && c["skipped"] == 0),
        "{calls:?}"
    );
    let stored = f.sandbox.state.voucherify_customers();
    assert_eq!(stored.len(), 2);
    let vf_events = f.sandbox.state.voucherify_events();
    assert_eq!(vf_events.len(), 1);
    assert_eq!(vf_events[0]["customer_source_id"], "shop-3");
    assert_eq!(vf_events[0]["metadata"], json!({"vip": true}));
    assert!(f.integration.create_events_bulk(&[]).await.is_ok_and(|d| d.is_empty()));
}
