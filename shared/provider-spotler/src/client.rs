//! Typed Spotler client.

use std::collections::BTreeMap;

use api_client::client::{ErrorReply, excerpt, vendor_error};
use api_client::{CallError, Class, ProviderClient};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::oauth;

/// Credentials (OAuth consumer key and secret).
#[derive(Debug, Clone)]
pub struct SpotlerConfig {
    /// Consumer key (`SPOTLER_CONSUMER_KEY`).
    pub consumer_key: String,
    /// Consumer secret (`SPOTLER_CONSUMER_SECRET`).
    pub consumer_secret: SecretString,
}

/// A contact as Spotler stores it: an external id and named properties.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// The linked system's id.
    pub external_id: String,
    /// Property name → value (`email`, `firstName`, `permissions`, …).
    #[serde(default)]
    pub properties: BTreeMap<String, serde_json::Value>,
}

/// One property of the account (`GET /contact/properties/list`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PropertyDef {
    /// Name.
    pub name: String,
    /// Type: birthdate, date, dateTime, email, gender, int, mobNr, money, postcode, set, string.
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Serialize)]
struct ContactRequest<'a> {
    update: bool,
    purge: bool,
    contact: &'a Contact,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorResponse {
    error_type: Option<String>,
    message: Option<String>,
}

/// The Spotler client.
#[derive(Debug, Clone)]
pub struct SpotlerClient {
    http: ProviderClient,
    config: SpotlerConfig,
}

fn error(operation: &str, reply: &ErrorReply, class: Class) -> CallError {
    let detail = match serde_json::from_slice::<ErrorResponse>(&reply.body) {
        Ok(ErrorResponse { error_type, message }) => {
            format!("{} {}", error_type.unwrap_or_default(), message.unwrap_or_default())
                .trim()
                .to_owned()
        }
        Err(_) => excerpt(&reply.body),
    };
    vendor_error("spotler", operation, reply, class, &detail)
}

fn segment(value: &str) -> String {
    oauth::encode(value)
}

impl SpotlerClient {
    /// A client over the shared HTTP client.
    pub fn new(http: ProviderClient, config: SpotlerConfig) -> Self {
        Self { http, config }
    }

    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<api_client::Reply, CallError> {
        let url = url::Url::parse(&self.http.url(path))
            .map_err(|e| CallError::Permanent(format!("spotler {operation}: bad URL: {e}")))?;
        // Each try is signed afresh (new nonce and timestamp); the JSON body is not signed.
        let sign = |request: reqwest::RequestBuilder| {
            let nonce = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
            let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
            let consumer_secret = self.config.consumer_secret.expose_secret();
            let auth = oauth::authorization(
                method.as_str(),
                &url,
                &self.config.consumer_key,
                consumer_secret,
                &nonce,
                timestamp,
            );
            request.header(reqwest::header::AUTHORIZATION, auth)
        };
        self.http
            .send_json(
                operation,
                method.clone(),
                path,
                body.map(Into::into),
                sign,
                |reply, class| error(operation, reply, class),
            )
            .await
    }

    /// `POST /contact` with `update` (upsert) and `purge=false` (properties not sent are kept).
    pub async fn insert_contact(&self, contact: &Contact, update: bool) -> Result<(), CallError> {
        let body = serde_json::to_vec(&ContactRequest {
            update,
            purge: false,
            contact,
        })
        .map_err(|e| CallError::Permanent(format!("spotler insert: cannot encode: {e}")))?;
        self.call("insert_contact", Method::POST, "/contact", Some(body))
            .await
            .map(drop)
    }

    /// `GET /contact/{externalId}`; `None` when Spotler does not know it.
    pub async fn get_contact(&self, external_id: &str) -> Result<Option<Contact>, CallError> {
        match self
            .call(
                "get_contact",
                Method::GET,
                &format!("/contact/{}", segment(external_id)),
                None,
            )
            .await
        {
            Ok(reply) => serde_json::from_slice(&reply.body)
                .map(Some)
                .map_err(|e| CallError::Retriable(format!("spotler get_contact: unexpected answer: {e}"))),
            Err(CallError::NotFound(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// `PUT /contact/anonymize/{externalId}`; `Ok(false)` when the contact does not exist.
    pub async fn anonymize(&self, external_id: &str) -> Result<bool, CallError> {
        self.put_no_body("anonymize", &format!("/contact/anonymize/{}", segment(external_id)))
            .await
    }

    /// `PUT /contact/inactivate/{externalId}`; `Ok(false)` when the contact does not exist.
    pub async fn inactivate(&self, external_id: &str) -> Result<bool, CallError> {
        self.put_no_body("inactivate", &format!("/contact/inactivate/{}", segment(external_id)))
            .await
    }

    async fn put_no_body(&self, operation: &'static str, path: &str) -> Result<bool, CallError> {
        match self.call(operation, Method::PUT, path, None).await {
            Ok(_) => Ok(true),
            Err(CallError::NotFound(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// `GET /contact/properties/list`.
    pub async fn properties(&self) -> Result<Vec<PropertyDef>, CallError> {
        let reply = self
            .call("properties", Method::GET, "/contact/properties/list", None)
            .await?;
        serde_json::from_slice(&reply.body)
            .map_err(|e| CallError::Retriable(format!("spotler properties: unexpected answer: {e}")))
    }
}
