//! The SALESmanago client over real HTTP against the sandbox's SALESmanago emulation.

use std::num::NonZeroU32;
use std::time::Duration;

use api_client::{CallError, HttpMetrics, ProviderClient};
use prometheus::Registry;
use provider_salesmanago::{
    Address, Consent, ContactUpsert, EventType, ExternalEvent, SalesmanagoClient, SalesmanagoConfig,
};
use settings::{ProviderLimits, Secret};
use switchyard_sandbox::{Provider, RunningSandbox, SalesmanagoLimitMode, SandboxConfig};
use time::OffsetDateTime;

fn client(sandbox: &RunningSandbox, secret: &str, limit_pause: Duration) -> SalesmanagoClient {
    let limits = ProviderLimits {
        windows: vec!["100/s".parse().unwrap_or_else(|e| panic!("{e}"))],
        burst: None,
        concurrency: NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN),
        timeout: Duration::from_secs(5),
    };
    let metrics = HttpMetrics::register(&Registry::new()).unwrap_or_else(|e| panic!("{e}"));
    let base = url::Url::parse(&sandbox.salesmanago_base_url()).unwrap_or_else(|e| panic!("{e}"));
    let http = ProviderClient::new(
        provider_salesmanago::PROVIDER,
        base,
        &limits,
        NonZeroU32::MIN,
        Duration::from_secs(2),
        metrics,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    SalesmanagoClient::new(
        http,
        SalesmanagoConfig {
            client_id: switchyard_sandbox::DEFAULT_SALESMANAGO_CLIENT_ID.to_owned(),
            api_secret: Secret::from(secret),
            owner: switchyard_sandbox::DEFAULT_SALESMANAGO_OWNER.to_owned(),
            limit_pause,
        },
    )
}

async fn sandbox() -> RunningSandbox {
    switchyard_sandbox::spawn(SandboxConfig::for_tests())
        .await
        .unwrap_or_else(|e| panic!("sandbox: {e}"))
}

fn upsert() -> ContactUpsert {
    ContactUpsert {
        email: "ann@example.com".into(),
        name: Some("Ann Lee".into()),
        external_id: Some("c-1".into()),
        address: Some(Address {
            city: Some("Brno".into()),
            country: Some("CZ".into()),
            ..Address::default()
        }),
        tags: vec!["REGISTRATION".into(), "NEWSLETTER".into()],
        consent: Some(Consent::OptIn),
        ..ContactUpsert::default()
    }
}

#[tokio::test]
async fn upsert_with_opt_in_and_tags_then_remove_a_tag_and_opt_out() {
    let sandbox = sandbox().await;
    let client = client(
        &sandbox,
        switchyard_sandbox::DEFAULT_SALESMANAGO_API_SECRET,
        Duration::from_secs(1),
    );
    let id = client.upsert_contact(&upsert()).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!id.is_empty());
    let contacts = sandbox.state.salesmanago_contacts();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0]["email_opt_in"], true);
    assert_eq!(contacts[0]["tags"], serde_json::json!(["REGISTRATION", "NEWSLETTER"]));
    assert_eq!(contacts[0]["external_id"], "c-1");

    let withdraw = ContactUpsert {
        email: "ann@example.com".into(),
        remove_tags: vec!["NEWSLETTER".into()],
        consent: Some(Consent::OptOut),
        ..ContactUpsert::default()
    };
    client.upsert_contact(&withdraw).await.unwrap_or_else(|e| panic!("{e}"));
    let contacts = sandbox.state.salesmanago_contacts();
    assert_eq!(contacts[0]["email_opt_in"], false);
    assert_eq!(contacts[0]["tags"], serde_json::json!(["REGISTRATION"]));
}

#[tokio::test]
async fn external_event_is_stored_with_its_fields() {
    let sandbox = sandbox().await;
    let client = client(
        &sandbox,
        switchyard_sandbox::DEFAULT_SALESMANAGO_API_SECRET,
        Duration::from_secs(1),
    );
    let event = ExternalEvent {
        email: "ann@example.com".into(),
        kind: EventType::Purchase,
        date: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        description: Some("order".into()),
        products: vec!["SKU-1".into(), "SKU-2".into()],
        location: Some("eshop-cz".into()),
        value: Some(12.5),
        details: vec!["card".into()],
        external_id: Some("order-1".into()),
        shop_domain: Some("shop.example.com".into()),
    };
    let id = client
        .add_external_event(&event)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!id.is_empty());
    let events = sandbox.state.salesmanago_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["contact_ext_event_type"], "PURCHASE");
    assert_eq!(events[0]["products"], "SKU-1,SKU-2");
    assert_eq!(events[0]["date"], 1_700_000_000_000_i64);
    assert_eq!(events[0]["details"]["detail1"], "card");
    assert_eq!(events[0]["external_id"], "order-1");
}

#[tokio::test]
async fn success_false_is_a_permanent_error_with_the_message() {
    let sandbox = sandbox().await;
    let client = client(&sandbox, "wrong-secret", Duration::from_secs(1));
    let error = client.upsert_contact(&upsert()).await.err();
    assert!(
        matches!(&error, Some(CallError::Permanent(text)) if text.contains("Not authenticated")),
        "{error:?}"
    );
}

#[tokio::test]
async fn limit_exceeded_in_the_body_pauses_and_is_a_rate_limit() {
    let sandbox = sandbox().await;
    sandbox
        .state
        .set_salesmanago_limit_mode(SalesmanagoLimitMode::SuccessFalse);
    sandbox
        .state
        .set_limit(Provider::Salesmanago, Some("1/h"))
        .unwrap_or_else(|e| panic!("{e}"));
    let client = client(
        &sandbox,
        switchyard_sandbox::DEFAULT_SALESMANAGO_API_SECRET,
        Duration::from_secs(30),
    );
    client.upsert_contact(&upsert()).await.unwrap_or_else(|e| panic!("{e}"));
    let error = client.upsert_contact(&upsert()).await.err();
    assert_eq!(
        error,
        Some(CallError::RateLimited {
            retry_in: Duration::from_secs(30)
        })
    );
    // The destination is paused for every caller: the next call does not reach SALESmanago.
    let calls_before = sandbox.state.calls(Provider::Salesmanago).len();
    let error = client.upsert_contact(&upsert()).await.err();
    assert!(matches!(error, Some(CallError::RateLimited { .. })), "{error:?}");
    assert_eq!(sandbox.state.calls(Provider::Salesmanago).len(), calls_before);
}
