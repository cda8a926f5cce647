//! Black-box tests of the Voucherify, Bloomreach, SALESmanago and Froomle emulations over real
//! HTTP: a sandbox from `spawn`, a `reqwest` client, and credentials computed here
//! independently of the sandbox's own checks. One test binary, one module per provider.

mod bloomreach;
mod froomle;
mod salesmanago;
mod voucherify;

use std::sync::Once;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use switchyard_sandbox::{RunningSandbox, SandboxConfig, spawn};

/// reqwest (built with `rustls-no-provider`) needs a process-wide crypto provider before a
/// client can be built, even for plain `http://` use.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::ring::default_provider().install_default().is_err() {
            // Another component installed one first; that one is fine too.
        }
    });
}

/// A running sandbox and an HTTP client.
struct Harness {
    sandbox: RunningSandbox,
    http: reqwest::Client,
}

/// A sandbox with the test configuration (default credentials, no limits).
async fn start() -> Harness {
    start_with(SandboxConfig::for_tests()).await
}

async fn start_with(config: SandboxConfig) -> Harness {
    install_crypto_provider();
    let sandbox = spawn(config).await.expect("sandbox starts");
    let http = reqwest::Client::builder().no_proxy().build().expect("client builds");
    Harness { sandbox, http }
}

impl Harness {
    /// A request to a `/_sandbox` control endpoint.
    fn control(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.sandbox.base_url()))
    }

    /// GETs a `/_sandbox` endpoint and returns its JSON.
    async fn inspect(&self, path: &str) -> Value {
        let response = self.control(Method::GET, path).send().await.expect("request completes");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.expect("JSON answer")
    }
}

/// The status and JSON body (`null` if the body is not JSON) of a response.
async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The value of header `name`, as text.
fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn health_lists_every_provider_and_faults_accept_the_new_names() {
    let h = start().await;
    let health = h.inspect("/_sandbox/health").await;
    assert_eq!(
        health["providers"],
        serde_json::json!([
            "spotler",
            "ecomail",
            "voucherify",
            "voucherify-integration",
            "bloomreach",
            "salesmanago",
            "froomle"
        ])
    );
    for name in [
        "voucherify",
        "voucherify-integration",
        "bloomreach",
        "salesmanago",
        "froomle",
    ] {
        let (status, fault) = json_of(
            h.control(Method::PUT, &format!("/_sandbox/faults/{name}"))
                .json(&serde_json::json!({"force": {"status": 503, "count": 2}}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(fault["provider"], name);
        let (status, limit) = json_of(
            h.control(Method::PUT, &format!("/_sandbox/limits/{name}"))
                .json(&serde_json::json!({"rate": "5/min"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(limit["rate"], "5/min");
    }
}
