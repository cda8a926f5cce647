//! Bloomreach Engagement Tracking API adapter: the batch endpoint (at most 50 commands per
//! call, a result per command) and the single add-event / update-customer calls.
//! Authentication is `Authorization: Basic base64(<API key id>:<API secret>)`; the project
//! token is part of every path.
//!
//! Vendor rules kept here:
//! - timestamps are Unix **seconds** (fractions allowed); Bloomreach does not detect
//!   milliseconds, so a millisecond value would land in the year 50,000;
//! - a 200 answer with `success: false` is a refusal: permanent, never retried;
//! - a batch answer is 200 with one result per command: each command succeeds or fails on
//!   its own ([`CommandResult`]).
//!
//! Only this crate knows Bloomreach's JSON. Error texts keep Bloomreach's messages with quoted
//! values and e-mail addresses masked.

use std::collections::BTreeMap;

use api_client::client::{ErrorReply, excerpt};
use api_client::{CallError, Class, ProviderClient};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// The provider label (metrics, error texts).
pub const PROVIDER: &str = "bloomreach";

/// The most commands Bloomreach accepts in one batch call.
pub const MAX_BATCH: usize = 50;

/// Path-segment characters left as they are.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// Project and credentials (`BLOOMREACH_PROJECT_TOKEN`, `BLOOMREACH_API_KEY_ID`,
/// `BLOOMREACH_API_SECRET`).
#[derive(Debug, Clone)]
pub struct BloomreachConfig {
    /// Project token (part of every path).
    pub project_token: String,
    /// API key id (Basic auth user).
    pub api_key_id: SecretString,
    /// API secret (Basic auth password).
    pub api_secret: SecretString,
}

/// A customer event (`customers/events`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Customer ids by id name (e.g. `registered`).
    pub customer_ids: BTreeMap<String, String>,
    /// Event type (e.g. `voucherify_redemption_succeeded`).
    pub event_type: String,
    /// When it happened (sent as Unix seconds).
    pub timestamp: OffsetDateTime,
    /// Event properties.
    pub properties: Map<String, Value>,
}

/// A customer property update (`customers`).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerUpdate {
    /// Customer ids by id name.
    pub customer_ids: BTreeMap<String, String>,
    /// Properties to set.
    pub properties: Map<String, Value>,
    /// Only properties older than this are overwritten (sent as Unix seconds).
    pub update_timestamp: Option<OffsetDateTime>,
}

/// One batch command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Add a customer event.
    AddEvent(Event),
    /// Update customer properties.
    UpdateCustomer(CustomerUpdate),
}

/// What became of one batch command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandResult {
    /// Bloomreach accepted it.
    Accepted,
    /// Bloomreach refused it (its result said `success: false`): retrying cannot help.
    Rejected {
        /// Bloomreach's error texts (values masked).
        errors: Vec<String>,
    },
    /// The call carrying it failed as a whole (after an earlier chunk was accepted); the
    /// error says whether to retry.
    Failed(CallError),
}

#[derive(Serialize)]
struct EventData<'a> {
    customer_ids: &'a BTreeMap<String, String>,
    event_type: &'a str,
    timestamp: f64,
    properties: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct CustomerData<'a> {
    customer_ids: &'a BTreeMap<String, String>,
    properties: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    update_timestamp: Option<f64>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum CommandData<'a> {
    Event(EventData<'a>),
    Customer(CustomerData<'a>),
}

#[derive(Serialize)]
struct WireCommand<'a> {
    name: &'static str,
    command_id: String,
    data: CommandData<'a>,
}

#[derive(Serialize)]
struct BatchBody<'a> {
    commands: Vec<WireCommand<'a>>,
}

#[derive(Deserialize)]
struct Answer {
    success: Option<bool>,
    #[serde(default)]
    errors: Vec<Value>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    results: Vec<WireResult>,
    success: Option<bool>,
    #[serde(default)]
    errors: Vec<Value>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct WireResult {
    success: bool,
    #[serde(default)]
    errors: Vec<Value>,
    command_id: Option<Value>,
}

/// Unix seconds with millisecond precision; never milliseconds.
pub fn unix_seconds(at: OffsetDateTime) -> f64 {
    let millis = at.unix_timestamp_nanos() / 1_000_000;
    // Exact for any date within ±285,000 years of 1970.
    millis as f64 / 1000.0
}

fn event_data(event: &Event) -> EventData<'_> {
    EventData {
        customer_ids: &event.customer_ids,
        event_type: &event.event_type,
        timestamp: unix_seconds(event.timestamp),
        properties: &event.properties,
    }
}

fn customer_data(update: &CustomerUpdate) -> CustomerData<'_> {
    CustomerData {
        customer_ids: &update.customer_ids,
        properties: &update.properties,
        update_timestamp: update.update_timestamp.map(unix_seconds),
    }
}

fn wire_command(index: usize, command: &Command) -> WireCommand<'_> {
    let (name, data) = match command {
        Command::AddEvent(event) => ("customers/events", CommandData::Event(event_data(event))),
        Command::UpdateCustomer(update) => ("customers", CommandData::Customer(customer_data(update))),
    };
    WireCommand {
        name,
        command_id: index.to_string(),
        data,
    }
}

/// Error texts from an answer's `errors` (strings, or objects with a message) and `message`.
fn texts(errors: &[Value], message: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = errors
        .iter()
        .map(|e| match e {
            Value::String(text) => scrub(text),
            Value::Object(object) => object
                .get("message")
                .or_else(|| object.get("error"))
                .and_then(Value::as_str)
                .map_or_else(|| scrub(&e.to_string()), scrub),
            other => scrub(&other.to_string()),
        })
        .collect();
    if let Some(message) = message {
        out.push(scrub(message));
    }
    out
}

fn call_error(operation: &str, reply: &ErrorReply, class: Class) -> CallError {
    let detail = match serde_json::from_slice::<Answer>(&reply.body) {
        Ok(answer) => {
            let texts = texts(&answer.errors, answer.message.as_deref());
            if texts.is_empty() {
                scrub(&excerpt(&reply.body))
            } else {
                texts.join("; ")
            }
        }
        Err(_) => scrub(&excerpt(&reply.body)),
    };
    let text = format!("{PROVIDER} {operation}: HTTP {}: {detail}", reply.status.as_u16());
    if reply.status == reqwest::StatusCode::NOT_FOUND {
        return CallError::NotFound(text);
    }
    match class {
        Class::Retriable | Class::RateLimited => CallError::Retriable(text),
        Class::Permanent => CallError::Permanent(text),
    }
}

/// Masks what may be a submitted value in a vendor text: quoted strings become `'…'` and
/// words holding an `@` (e-mail addresses) become `<redacted>`.
fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        if (c == '\'' || c == '"') && (previous.is_whitespace() || matches!(previous, ':' | '(' | '=' | '[')) {
            for inner in chars.by_ref() {
                if inner == c {
                    break;
                }
            }
            out.push(c);
            out.push('…');
            out.push(c);
        } else {
            out.push(c);
        }
        previous = c;
    }
    out.split(' ')
        .map(|word| if word.contains('@') { "<redacted>" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Maps a batch answer to one result per command (matched by the echoed `command_id`, else
/// by position). A command without a result is retriable: Bloomreach did not say it applied it.
fn batch_results(operation: &str, body: &[u8], count: usize) -> Result<Vec<CommandResult>, CallError> {
    let answer: BatchAnswer = serde_json::from_slice(body)
        .map_err(|e| CallError::Retriable(format!("{PROVIDER} {operation}: unexpected answer: {e}")))?;
    if answer.results.is_empty() && answer.success == Some(false) {
        return Err(CallError::Permanent(format!(
            "{PROVIDER} {operation}: batch refused: {}",
            texts(&answer.errors, answer.message.as_deref()).join("; ")
        )));
    }
    let mut results: Vec<Option<CommandResult>> = vec![None; count];
    for (position, result) in answer.results.into_iter().enumerate() {
        let index = match &result.command_id {
            Some(Value::String(id)) => id.parse::<usize>().ok(),
            Some(Value::Number(id)) => id.as_u64().and_then(|n| usize::try_from(n).ok()),
            _ => None,
        }
        .unwrap_or(position);
        let Some(slot) = results.get_mut(index) else {
            continue;
        };
        *slot = Some(if result.success {
            CommandResult::Accepted
        } else {
            CommandResult::Rejected {
                errors: texts(&result.errors, None),
            }
        });
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                CommandResult::Failed(CallError::Retriable(format!(
                    "{PROVIDER} {operation}: the answer has no result for this command"
                )))
            })
        })
        .collect())
}

/// A single call's answer: `success: false` is a refusal.
fn single_result(operation: &str, body: &[u8]) -> Result<(), CallError> {
    match serde_json::from_slice::<Answer>(body) {
        Ok(Answer {
            success: Some(false),
            errors,
            message,
        }) => Err(CallError::Permanent(format!(
            "{PROVIDER} {operation}: refused: {}",
            texts(&errors, message.as_deref()).join("; ")
        ))),
        // Success, or an empty/odd 2xx body: Bloomreach took the data.
        _ => Ok(()),
    }
}

/// The Bloomreach client.
#[derive(Debug, Clone)]
pub struct BloomreachClient {
    http: ProviderClient,
    config: BloomreachConfig,
}

impl BloomreachClient {
    /// A client over the shared HTTP client (label [`PROVIDER`]).
    pub fn new(http: ProviderClient, config: BloomreachConfig) -> Self {
        Self { http, config }
    }

    fn path(&self, endpoint: &str) -> String {
        format!(
            "/track/v2/projects/{}/{endpoint}",
            utf8_percent_encode(&self.config.project_token, SEGMENT)
        )
    }

    async fn post(
        &self,
        operation: &'static str,
        endpoint: &str,
        body: Vec<u8>,
    ) -> Result<api_client::Reply, CallError> {
        let url = self.http.url(&self.path(endpoint))?;
        self.http
            .send(
                operation,
                |http| {
                    http.post(url.clone())
                        .basic_auth(
                            self.config.api_key_id.expose_secret(),
                            Some(self.config.api_secret.expose_secret()),
                        )
                        .header(reqwest::header::ACCEPT, "application/json")
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                },
                |reply, class| call_error(operation, reply, class),
            )
            .await
    }

    /// `POST …/batch` in chunks of at most [`MAX_BATCH`] commands; one result per command, in
    /// order. `Err` means nothing was accepted (the first call failed as a whole); when a later
    /// chunk fails, its commands and the ones after it are [`CommandResult::Failed`].
    pub async fn batch(&self, commands: &[Command]) -> Result<Vec<CommandResult>, CallError> {
        let mut results = Vec::with_capacity(commands.len());
        let mut chunks = commands.chunks(MAX_BATCH);
        while let Some(chunk) = chunks.next() {
            match self.batch_chunk(chunk).await {
                Ok(chunk_results) => results.extend(chunk_results),
                Err(error) if results.is_empty() => return Err(error),
                Err(error) => {
                    let left = chunk.len() + chunks.map(<[Command]>::len).sum::<usize>();
                    results.extend(std::iter::repeat_n(CommandResult::Failed(error), left));
                    break;
                }
            }
        }
        Ok(results)
    }

    async fn batch_chunk(&self, chunk: &[Command]) -> Result<Vec<CommandResult>, CallError> {
        let body = BatchBody {
            commands: chunk.iter().enumerate().map(|(i, c)| wire_command(i, c)).collect(),
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| CallError::Permanent(format!("{PROVIDER} batch: cannot encode: {e}")))?;
        let reply = self.post("batch", "batch", body).await?;
        batch_results("batch", &reply.body, chunk.len())
    }

    /// `POST …/customers/events`.
    pub async fn add_event(&self, event: &Event) -> Result<(), CallError> {
        let body = serde_json::to_vec(&event_data(event))
            .map_err(|e| CallError::Permanent(format!("{PROVIDER} add_event: cannot encode: {e}")))?;
        let reply = self.post("add_event", "customers/events", body).await?;
        single_result("add_event", &reply.body)
    }

    /// `POST …/customers`.
    pub async fn update_customer(&self, update: &CustomerUpdate) -> Result<(), CallError> {
        let body = serde_json::to_vec(&customer_data(update))
            .map_err(|e| CallError::Permanent(format!("{PROVIDER} update_customer: cannot encode: {e}")))?;
        let reply = self.post("update_customer", "customers", body).await?;
        single_result("update_customer", &reply.body)
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    fn event(ts: OffsetDateTime) -> Event {
        Event {
            customer_ids: [("registered".to_owned(), "shop-1".to_owned())].into(),
            event_type: "voucherify_rewarded".into(),
            timestamp: ts,
            properties: Map::new(),
        }
    }

    #[test]
    fn timestamps_are_seconds_never_milliseconds() {
        let at = datetime!(2026-11-21 09:30:00.250 UTC);
        assert!((unix_seconds(at) - 1_795_253_400.25).abs() < 1e-6);
        let wire = serde_json::to_value(wire_command(3, &Command::AddEvent(event(at)))).unwrap_or_default();
        let ts = wire["data"]["timestamp"].as_f64().unwrap_or_default();
        assert!(ts < 1e11, "{ts} looks like milliseconds");
        assert_eq!(wire["name"], "customers/events");
        assert_eq!(wire["command_id"], "3");
        assert_eq!(wire["data"]["customer_ids"], json!({"registered": "shop-1"}));
    }

    #[test]
    fn customer_update_command_shape() {
        let update = CustomerUpdate {
            customer_ids: [("registered".to_owned(), "shop-1".to_owned())].into(),
            properties: json!({"voucherify_id": "cust_1"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            update_timestamp: None,
        };
        let wire = serde_json::to_value(wire_command(0, &Command::UpdateCustomer(update))).unwrap_or_default();
        assert_eq!(
            wire,
            json!({"name": "customers", "command_id": "0", "data": {"customer_ids": {"registered": "shop-1"}, "properties": {"voucherify_id": "cust_1"}}})
        );
    }

    #[test]
    fn batch_results_follow_command_ids_then_positions() {
        let body = json!({
            "results": [
                {"success": false, "errors": ["At least one id should be specified."], "command_id": "1"},
                {"success": true, "command_id": "0"},
                {"success": true, "command_id": "2"}
            ],
            "success": true
        });
        let results = batch_results("batch", body.to_string().as_bytes(), 3);
        assert_eq!(
            results,
            Ok(vec![
                CommandResult::Accepted,
                CommandResult::Rejected {
                    errors: vec!["At least one id should be specified.".into()]
                },
                CommandResult::Accepted,
            ])
        );
        let by_position =
            json!({"results": [{"success": true}, {"success": false, "errors": ["bad"]}], "success": true});
        let results = batch_results("batch", by_position.to_string().as_bytes(), 2);
        assert_eq!(
            results,
            Ok(vec![
                CommandResult::Accepted,
                CommandResult::Rejected {
                    errors: vec!["bad".into()]
                }
            ])
        );
    }

    #[test]
    fn missing_results_are_retriable_and_a_refused_batch_is_permanent() {
        let short = json!({"results": [{"success": true}], "success": true});
        let results = batch_results("batch", short.to_string().as_bytes(), 2).unwrap_or_default();
        assert!(matches!(
            results.get(1),
            Some(CommandResult::Failed(CallError::Retriable(_)))
        ));
        let refused = json!({"success": false, "message": "Invalid JSON"});
        assert!(matches!(
            batch_results("batch", refused.to_string().as_bytes(), 2),
            Err(CallError::Permanent(_))
        ));
    }

    #[test]
    fn single_success_false_is_permanent() {
        let body = json!({"success": false, "errors": ["At least one id should be specified."]});
        assert!(matches!(
            single_result("add_event", body.to_string().as_bytes()),
            Err(CallError::Permanent(text)) if text.contains("At least one id")
        ));
        assert_eq!(single_result("add_event", br#"{"success":true}"#), Ok(()));
    }

    #[test]
    fn error_replies_are_classified_and_masked() {
        let reply = |status: u16, body: &str| ErrorReply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
            body: body.as_bytes().to_vec().into(),
        };
        let bad = call_error(
            "batch",
            &reply(
                400,
                r#"{"success":false,"errors":["customer 'jana@example.com' not allowed"]}"#,
            ),
            Class::Permanent,
        );
        assert!(
            matches!(&bad, CallError::Permanent(text) if !text.contains("jana")),
            "{bad:?}"
        );
        assert!(matches!(
            call_error("batch", &reply(503, "busy"), Class::Retriable),
            CallError::Retriable(_)
        ));
        assert!(matches!(
            call_error(
                "batch",
                &reply(403, r#"{"success":false,"errors":["no access"]}"#),
                Class::Permanent
            ),
            CallError::Permanent(_)
        ));
        assert_eq!(scrub("mail jana@example.com now"), "mail <redacted> now");
    }
}
