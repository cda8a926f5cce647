//! Voucherify error envelopes (`{code, key, message, details, resource_type, …}`) turned into
//! classified [`CallError`]s whose text keeps the error key, the message with quoted values
//! and e-mail addresses masked, and the resource type; `details` is left out because it
//! echoes submitted values.

use api_client::client::{ErrorReply, excerpt};
use api_client::{CallError, Class};
use reqwest::StatusCode;
use serde::Deserialize;

/// The error key Voucherify answers when a publication `source_id` was used before.
pub(crate) const DUPLICATE_SOURCE_ID: &str = "duplicate_source_id";

#[derive(Deserialize)]
struct ErrorBody {
    key: Option<String>,
    message: Option<String>,
    resource_type: Option<String>,
}

/// The vendor error key of an error reply, if the body has one.
pub(crate) fn error_key(reply: &ErrorReply) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(&reply.body)
        .ok()
        .and_then(|b| b.key)
}

/// Maps a non-2xx reply of `provider`'s `operation` to a [`CallError`].
pub(crate) fn call_error(provider: &str, operation: &str, reply: &ErrorReply, class: Class) -> CallError {
    let detail = match serde_json::from_slice::<ErrorBody>(&reply.body) {
        Ok(body) => {
            let mut parts = Vec::new();
            if let Some(key) = body.key {
                parts.push(key);
            }
            if let Some(message) = body.message {
                parts.push(scrub(&message));
            }
            if let Some(resource) = body.resource_type {
                parts.push(format!("(resource_type: {resource})"));
            }
            if parts.is_empty() {
                scrub(&excerpt(&reply.body))
            } else {
                parts.join(" ")
            }
        }
        Err(_) => scrub(&excerpt(&reply.body)),
    };
    let text = format!("{provider} {operation}: HTTP {}: {detail}", reply.status.as_u16());
    if reply.status == StatusCode::NOT_FOUND {
        return CallError::NotFound(text);
    }
    match class {
        Class::Retriable | Class::RateLimited => CallError::Retriable(text),
        Class::Permanent => CallError::Permanent(text),
    }
}

/// Masks what may be a submitted value in a vendor text: quoted strings become `'…'` and
/// words holding an `@` (e-mail addresses) become `<redacted>`.
pub(crate) fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        let opens = (c == '\'' || c == '"') && (previous.is_whitespace() || matches!(previous, ':' | '(' | '=' | '['));
        if opens {
            // Skip to the matching quote (or the end) and leave a placeholder.
            for inner in chars.by_ref() {
                if inner == c {
                    break;
                }
            }
            out.push(c);
            out.push('…');
            out.push(c);
            previous = c;
            continue;
        }
        out.push(c);
        previous = c;
    }
    out.split(' ')
        .map(|word| if word.contains('@') { "<redacted>" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> ErrorReply {
        ErrorReply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
            body: body.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn not_found_campaign_keeps_key_and_resource_type() {
        let body = r#"{"code":404,"key":"not_found","message":"Resource not found","details":"Cannot find campaign with id Black Friday","resource_type":"campaign"}"#;
        let error = call_error("voucherify", "publish", &reply(404, body), Class::Permanent);
        let CallError::NotFound(text) = error else {
            panic!("expected NotFound, got {error:?}");
        };
        assert!(text.contains("not_found") && text.contains("campaign"), "{text}");
        assert!(!text.contains("Black Friday"), "details must not leak: {text}");
    }

    #[test]
    fn classes_follow_the_status_table() {
        let body = r#"{"code":400,"key":"missing_vouchers","message":"Either Campaign or Voucher is required"}"#;
        assert!(matches!(
            call_error("voucherify", "publish", &reply(400, body), Class::Permanent),
            CallError::Permanent(_)
        ));
        assert!(matches!(
            call_error("voucherify", "publish", &reply(503, "upstream down"), Class::Retriable),
            CallError::Retriable(_)
        ));
    }

    #[test]
    fn error_texts_mask_values() {
        let body =
            r#"{"code":400,"key":"invalid_customer","message":"Customer with email 'jana@example.com' is invalid"}"#;
        let text = call_error("voucherify", "upsert_customer", &reply(400, body), Class::Permanent).to_string();
        assert!(!text.contains("jana"), "{text}");
        assert!(text.contains("invalid_customer"), "{text}");
        assert_eq!(scrub("sent to jana@example.com today"), "sent to <redacted> today");
        assert_eq!(scrub("source_id: 'abc' exists"), "source_id: '…' exists");
        assert_eq!(scrub("it doesn't matter"), "it doesn't matter");
    }

    #[test]
    fn duplicate_key_is_recognised() {
        let body =
            r#"{"code":400,"key":"duplicate_source_id","message":"Publication with source_id: 'm-1' already exists"}"#;
        assert_eq!(error_key(&reply(400, body)).as_deref(), Some(DUPLICATE_SOURCE_ID));
        assert_eq!(error_key(&reply(400, "not json")), None);
    }
}
