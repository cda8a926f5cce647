//! [`VoucherifyClient`]: the Voucherify API (`X-App-Id` / `X-App-Token`): publications and
//! customer upserts.
//!
//! # Idempotent publication
//! A publication carries our `source_id` (the request's message id). Voucherify refuses a
//! second publication with the same `source_id` (400 `duplicate_source_id`), so a redelivered
//! request can never publish a second code. The client then looks the first publication up
//! with `GET /v1/publications?source_id=…`, which Voucherify documents as returning "exactly
//! the same code published initially", and returns it. (Re-publishing with `join_once=true`
//! was the alternative; it returns *a* code the customer holds in the campaign, which is not
//! necessarily this request's when the customer got several, so it is not used.) If the lookup
//! finds nothing, the error is retriable: Voucherify just said the publication exists.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use api_client::client::ErrorReply;
use api_client::{CallError, Class, ProviderClient, Reply};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::debug;

use crate::customer::{Customer, customer_json};
use crate::error::{DUPLICATE_SOURCE_ID, call_error, error_key};
use crate::metadata::{Dropped, MetadataFilter};

/// The provider label (metrics, error texts).
pub const PROVIDER: &str = "voucherify";

/// API credentials (`VOUCHERIFY_APP_ID`, `VOUCHERIFY_APP_TOKEN`).
#[derive(Debug, Clone)]
pub struct VoucherifyConfig {
    /// Application id (`X-App-Id`).
    pub app_id: SecretString,
    /// Secret key (`X-App-Token`).
    pub app_token: SecretString,
}

/// A request to publish one code of a campaign to a customer.
#[derive(Clone, PartialEq)]
pub struct PublicationRequest {
    /// Our publication id (Voucherify `source_id`): the idempotency key.
    pub source_id: String,
    /// Campaign name (or id).
    pub campaign: String,
    /// The customer; Voucherify upserts it by `source_id`.
    pub customer: PublicationCustomer,
    /// Publication channel.
    pub channel: Option<String>,
    /// Publication metadata, sent as given.
    pub metadata: Map<String, Value>,
}

impl fmt::Debug for PublicationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicationRequest")
            .field("source_id", &self.source_id)
            .field("campaign", &self.campaign)
            .field("customer_source_id", &self.customer.source_id)
            .finish_non_exhaustive()
    }
}

/// The customer of a publication. Personal data: `Debug` shows only the source id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicationCustomer {
    /// Customer source id.
    pub source_id: String,
    /// E-mail.
    pub email: Option<String>,
    /// Name.
    pub name: Option<String>,
}

impl fmt::Debug for PublicationCustomer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicationCustomer")
            .field("source_id", &self.source_id)
            .finish_non_exhaustive()
    }
}

/// A publication: the code a customer got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Voucherify publication id (`pub_…`).
    pub id: String,
    /// The voucher code.
    pub code: String,
    /// Campaign name.
    pub campaign: String,
    /// Customer source id.
    pub customer_source_id: String,
    /// The publication's `source_id`, when Voucherify reports it.
    pub source_id: Option<String>,
}

/// A customer as Voucherify stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRef {
    /// Voucherify customer id (`cust_…`).
    pub id: String,
    /// Customer source id.
    pub source_id: String,
    /// Metadata keys not sent because the metadata schema does not allow them.
    pub dropped: Dropped,
}

#[derive(Serialize)]
struct PublicationBody<'a> {
    campaign: CampaignName<'a>,
    customer: PublicationCustomerBody<'a>,
    source_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    metadata: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct CampaignName<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct PublicationCustomerBody<'a> {
    source_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Deserialize)]
struct PublicationDto {
    id: String,
    source_id: Option<String>,
    tracking_id: Option<String>,
    result: Option<String>,
    customer: Option<CustomerDto>,
    voucher: Option<VoucherDto>,
    vouchers: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct VoucherDto {
    code: String,
    campaign: Option<String>,
}

#[derive(Deserialize)]
struct CustomerDto {
    id: Option<String>,
    source_id: Option<String>,
}

#[derive(Deserialize)]
struct PublicationList {
    #[serde(default)]
    publications: Vec<PublicationDto>,
}

/// The Voucherify API client.
#[derive(Debug, Clone)]
pub struct VoucherifyClient {
    http: ProviderClient,
    config: VoucherifyConfig,
    metadata: Option<MetadataFilter>,
}

impl VoucherifyClient {
    /// A client over the shared HTTP client (label [`PROVIDER`]). Customer metadata is sent
    /// unfiltered unless [`Self::with_metadata_filter`] sets a schema.
    pub fn new(http: ProviderClient, config: VoucherifyConfig) -> Self {
        Self {
            http,
            config,
            metadata: None,
        }
    }

    /// Sends only the customer metadata `filter` allows (and counts what it drops).
    pub fn with_metadata_filter(mut self, filter: MetadataFilter) -> Self {
        self.metadata = Some(filter);
        self
    }

    /// The underlying HTTP client (its budget is the Voucherify quota).
    pub fn http(&self) -> &ProviderClient {
        &self.http
    }

    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        on_error: impl Fn(&ErrorReply, Class) -> CallError,
    ) -> Result<Reply, CallError> {
        let auth = |request: reqwest::RequestBuilder| {
            request
                .header("X-App-Id", self.config.app_id.expose_secret())
                .header("X-App-Token", self.config.app_token.expose_secret())
        };
        self.http
            .send_json(operation, method, path, body.map(Into::into), auth, on_error)
            .await
    }

    /// `POST /v1/publications` with `request.source_id` as the publication `source_id`. A
    /// repeated `source_id` returns the code published the first time (see the module docs),
    /// so calling this again for the same request never publishes a second code.
    pub async fn publish(&self, request: &PublicationRequest) -> Result<Publication, CallError> {
        let body = encode("publish", &publication_body(request))?;
        let duplicate = AtomicBool::new(false);
        let result = self
            .call(
                "publish",
                Method::POST,
                "/v1/publications",
                Some(body),
                |reply, class| {
                    if error_key(reply).as_deref() == Some(DUPLICATE_SOURCE_ID) {
                        duplicate.store(true, Ordering::Relaxed);
                    }
                    call_error(PROVIDER, "publish", reply, class)
                },
            )
            .await;
        match result {
            Ok(reply) => parse_publication("publish", &reply.body, request),
            Err(_) if duplicate.load(Ordering::Relaxed) => {
                debug!(
                    source_id = %request.source_id,
                    "Publication source_id already used; resolving the code published then."
                );
                self.existing_publication(request).await
            }
            Err(error) => Err(error),
        }
    }

    async fn existing_publication(&self, request: &PublicationRequest) -> Result<Publication, CallError> {
        self.find_publication(request).await?.ok_or_else(|| {
            CallError::Retriable(format!(
                "{PROVIDER} publish: source_id is already used, but no publication with it was found yet"
            ))
        })
    }

    /// `GET /v1/publications?source_id=…`: the publication made with our `source_id`.
    async fn find_publication(&self, request: &PublicationRequest) -> Result<Option<Publication>, CallError> {
        let path = format!(
            "/v1/publications?source_id={}&limit=1",
            utf8_percent_encode(&request.source_id, NON_ALPHANUMERIC)
        );
        let reply = self
            .call("find_publication", Method::GET, &path, None, |reply, class| {
                call_error(PROVIDER, "find_publication", reply, class)
            })
            .await?;
        let list: PublicationList = serde_json::from_slice(&reply.body)
            .map_err(|e| CallError::Permanent(format!("{PROVIDER} find_publication: unexpected answer: {e}")))?;
        list.publications
            .into_iter()
            .find(|p| p.source_id.as_deref() == Some(request.source_id.as_str()))
            .map(|dto| publication(dto, request))
            .transpose()
    }

    /// `POST /v1/customers` (create or update by `source_id`). With a metadata filter, only
    /// defined, well-typed metadata is sent; the returned [`CustomerRef::dropped`] says how
    /// much was left out.
    pub async fn upsert_customer(&self, customer: &Customer) -> Result<CustomerRef, CallError> {
        let mut metadata = customer.metadata.clone();
        let dropped = self
            .metadata
            .as_ref()
            .map(|filter| filter.apply(&mut metadata))
            .unwrap_or_default();
        let body = encode("upsert_customer", &customer_json(customer, "source_id", metadata))?;
        let reply = self
            .call(
                "upsert_customer",
                Method::POST,
                "/v1/customers",
                Some(body),
                |reply, class| call_error(PROVIDER, "upsert_customer", reply, class),
            )
            .await?;
        let dto: CustomerDto = serde_json::from_slice(&reply.body)
            .map_err(|e| CallError::Permanent(format!("{PROVIDER} upsert_customer: unexpected answer: {e}")))?;
        Ok(CustomerRef {
            id: dto.id.unwrap_or_default(),
            source_id: dto.source_id.unwrap_or_else(|| customer.source_id.clone()),
            dropped,
        })
    }
}

fn publication_body(request: &PublicationRequest) -> PublicationBody<'_> {
    PublicationBody {
        campaign: CampaignName {
            name: &request.campaign,
        },
        customer: PublicationCustomerBody {
            source_id: &request.customer.source_id,
            email: request.customer.email.as_deref(),
            name: request.customer.name.as_deref(),
        },
        source_id: &request.source_id,
        channel: request.channel.as_deref(),
        metadata: &request.metadata,
    }
}

fn encode(operation: &str, body: &impl Serialize) -> Result<Vec<u8>, CallError> {
    serde_json::to_vec(body).map_err(|e| CallError::Permanent(format!("{PROVIDER} {operation}: cannot encode: {e}")))
}

fn parse_publication(operation: &str, body: &[u8], request: &PublicationRequest) -> Result<Publication, CallError> {
    let dto: PublicationDto = serde_json::from_slice(body)
        .map_err(|e| CallError::Permanent(format!("{PROVIDER} {operation}: unexpected answer: {e}")))?;
    publication(dto, request)
}

/// The publication in `dto`; a publication without a code (or with a result other than
/// `SUCCESS`) is a permanent failure.
fn publication(dto: PublicationDto, request: &PublicationRequest) -> Result<Publication, CallError> {
    if let Some(result) = dto.result.as_deref()
        && result != "SUCCESS"
    {
        return Err(CallError::Permanent(format!(
            "{PROVIDER} publish: publication result is {result}"
        )));
    }
    let voucher = dto.voucher.or_else(|| {
        dto.vouchers
            .into_iter()
            .flatten()
            .find_map(|v| serde_json::from_value::<VoucherDto>(v).ok())
    });
    let Some(voucher) = voucher else {
        return Err(CallError::Permanent(format!(
            "{PROVIDER} publish: the publication holds no voucher code"
        )));
    };
    let customer_source_id = dto
        .customer
        .and_then(|c| c.source_id)
        .or(dto.tracking_id)
        .unwrap_or_else(|| request.customer.source_id.clone());
    Ok(Publication {
        id: dto.id,
        code: voucher.code,
        campaign: voucher.campaign.unwrap_or_else(|| request.campaign.clone()),
        customer_source_id,
        source_id: dto.source_id,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request() -> PublicationRequest {
        PublicationRequest {
            source_id: "msg-1".into(),
            campaign: "Welcome 10".into(),
            customer: PublicationCustomer {
                source_id: "shop-1".into(),
                email: Some("jana@example.com".into()),
                name: None,
            },
            channel: Some("Bloomreach".into()),
            metadata: Map::new(),
        }
    }

    #[test]
    fn publication_body_carries_the_source_id_and_customer() {
        let request = request();
        let body = serde_json::to_value(publication_body(&request)).unwrap_or_default();
        assert_eq!(
            body,
            json!({
                "campaign": {"name": "Welcome 10"},
                "customer": {"source_id": "shop-1", "email": "jana@example.com"},
                "source_id": "msg-1",
                "channel": "Bloomreach"
            })
        );
    }

    #[test]
    fn parses_a_publication_answer() {
        let body = json!({
            "id": "pub_1", "object": "publication", "source_id": "msg-1", "result": "SUCCESS",
            "customer": {"id": "cust_1", "source_id": "shop-1", "object": "customer"},
            "voucher": {"code": "WELCOME-1", "campaign": "Welcome 10", "object": "voucher"}
        });
        let parsed = parse_publication("publish", body.to_string().as_bytes(), &request());
        assert_eq!(
            parsed,
            Ok(Publication {
                id: "pub_1".into(),
                code: "WELCOME-1".into(),
                campaign: "Welcome 10".into(),
                customer_source_id: "shop-1".into(),
                source_id: Some("msg-1".into()),
            })
        );
    }

    #[test]
    fn takes_the_first_code_of_a_multi_voucher_answer() {
        let body = json!({"id": "pub_2", "vouchers": [{"code": "A"}, {"code": "B"}]});
        let parsed = parse_publication("publish", body.to_string().as_bytes(), &request());
        assert_eq!(
            parsed.map(|p| (p.code, p.campaign)),
            Ok(("A".into(), "Welcome 10".into()))
        );
    }

    #[test]
    fn a_publication_without_code_or_success_is_permanent() {
        for body in [
            json!({"id": "pub_3"}),
            json!({"id": "pub_4", "result": "FAILURE", "voucher": {"code": "X"}}),
        ] {
            let parsed = parse_publication("publish", body.to_string().as_bytes(), &request());
            assert!(matches!(parsed, Err(CallError::Permanent(_))), "{parsed:?}");
        }
    }

    #[test]
    fn debug_hides_the_email() {
        let text = format!("{:?}", request());
        assert!(!text.contains("jana"), "{text}");
    }
}
