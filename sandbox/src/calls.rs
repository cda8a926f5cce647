//! The call log: one [`CallRecord`] per request to a provider prefix, including refused ones
//! (401, 413, 429, injected faults, reset connections).
//!
//! Records get a sequence number when the request has been read and are stored when the answer
//! is known. The log keeps the newest [`MAX_CALLS`] records. A reset starts a new epoch: calls
//! still in flight during a reset are not recorded, so a test never sees its predecessor's calls.

use std::collections::VecDeque;

use axum::body::Bytes;
use serde::{Deserialize, Serialize};

use crate::Provider;

/// The number of records kept; older ones are dropped first.
pub const MAX_CALLS: usize = 10_000;

/// One call to a provider, as the sandbox saw and answered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Position in arrival order, starting at 1 after each reset.
    pub seq: u64,
    /// The provider whose prefix the path falls under.
    pub provider: Provider,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Full request path including the provider prefix, without the query string.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The status answered; 0 when the connection was closed without an answer.
    pub status: u16,
    /// When the request arrived, RFC 3339 UTC with milliseconds.
    pub received_at: String,
    /// The request body if it was JSON, else `null`.
    pub body: Option<serde_json::Value>,
}

/// A call as kept in the log: its record without the body, and the body as the bytes that
/// arrived, parsed only when somebody lists the calls (parsing every body on arrival was a
/// large part of the sandbox's work per call under load).
#[derive(Debug)]
struct Logged {
    record: CallRecord,
    body: Option<Bytes>,
}

impl Logged {
    fn record(&self) -> CallRecord {
        CallRecord {
            body: self.body.as_ref().and_then(|bytes| serde_json::from_slice(bytes).ok()),
            ..self.record.clone()
        }
    }
}

/// A call that has been read but not answered yet.
#[derive(Debug)]
pub(crate) struct PendingCall {
    epoch: u64,
    call: Logged,
}

impl PendingCall {
    /// The provider called.
    pub(crate) fn provider(&self) -> Provider {
        self.call.record.provider
    }
}

/// The log itself, kept inside the sandbox state.
#[derive(Debug, Default)]
pub(crate) struct CallLog {
    epoch: u64,
    next_seq: u64,
    records: VecDeque<Logged>,
}

/// What is known about a call when it arrives.
#[derive(Debug)]
pub(crate) struct CallStart {
    pub(crate) provider: Provider,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) received_at: String,
    /// The body as it arrived (recorded as JSON if it parses as JSON).
    pub(crate) body: Option<Bytes>,
}

impl CallLog {
    /// Assigns the next sequence number to a call.
    pub(crate) fn begin(&mut self, start: CallStart) -> PendingCall {
        self.next_seq += 1;
        PendingCall {
            epoch: self.epoch,
            call: Logged {
                record: CallRecord {
                    seq: self.next_seq,
                    provider: start.provider,
                    method: start.method,
                    path: start.path,
                    query: start.query,
                    status: 0,
                    received_at: start.received_at,
                    body: None,
                },
                body: start.body,
            },
        }
    }

    /// Stores a call with the status it was answered with (unless a reset happened since).
    pub(crate) fn finish(&mut self, pending: PendingCall, status: u16) {
        if pending.epoch != self.epoch {
            return;
        }
        let mut call = pending.call;
        call.record.status = status;
        // Calls usually finish in arrival order; keep the log sorted when they do not.
        let position = self
            .records
            .iter()
            .rposition(|existing| existing.record.seq < call.record.seq)
            .map_or(0, |index| index + 1);
        self.records.insert(position, call);
        while self.records.len() > MAX_CALLS {
            self.records.pop_front();
        }
    }

    /// The recorded calls in sequence order, optionally for one provider.
    pub(crate) fn list(&self, provider: Option<Provider>) -> Vec<CallRecord> {
        self.records
            .iter()
            .filter(|call| provider.is_none_or(|p| call.record.provider == p))
            .map(Logged::record)
            .collect()
    }

    /// Forgets every call and restarts numbering.
    pub(crate) fn clear(&mut self) {
        self.epoch += 1;
        self.next_seq = 0;
        self.records.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(provider: Provider, path: &str) -> CallStart {
        CallStart {
            provider,
            method: "POST".to_owned(),
            path: path.to_owned(),
            query: None,
            received_at: "2025-01-01T00:00:00.000Z".to_owned(),
            body: None,
        }
    }

    #[test]
    fn calls_are_listed_in_arrival_order_even_when_they_finish_out_of_order() {
        let mut log = CallLog::default();
        let first = log.begin(start(Provider::Spotler, "/a"));
        let second = log.begin(start(Provider::Ecomail, "/b"));
        log.finish(second, 200);
        log.finish(first, 204);
        let all = log.list(None);
        assert_eq!(
            all.iter().map(|c| (c.seq, c.status)).collect::<Vec<_>>(),
            [(1, 204), (2, 200)]
        );
        assert_eq!(log.list(Some(Provider::Ecomail)).len(), 1);
    }

    #[test]
    fn calls_in_flight_during_a_reset_are_not_recorded() {
        let mut log = CallLog::default();
        let pending = log.begin(start(Provider::Spotler, "/a"));
        log.clear();
        log.finish(pending, 204);
        assert!(log.list(None).is_empty());
        let next = log.begin(start(Provider::Spotler, "/b"));
        log.finish(next, 204);
        assert_eq!(log.list(None)[0].seq, 1);
    }

    #[test]
    fn bodies_are_listed_as_json_when_they_are_json() {
        let mut log = CallLog::default();
        for body in [&br#"{"email":"a@example.com"}"#[..], b"not json"] {
            let mut call = start(Provider::Ecomail, "/x");
            call.body = Some(Bytes::copy_from_slice(body));
            let pending = log.begin(call);
            log.finish(pending, 200);
        }
        let bodies: Vec<_> = log.list(None).into_iter().map(|c| c.body).collect();
        assert_eq!(bodies, [Some(serde_json::json!({"email": "a@example.com"})), None]);
    }

    #[test]
    fn the_log_keeps_only_the_newest_calls() {
        let mut log = CallLog::default();
        for _ in 0..MAX_CALLS + 5 {
            let pending = log.begin(start(Provider::Ecomail, "/x"));
            log.finish(pending, 200);
        }
        let all = log.list(None);
        assert_eq!(all.len(), MAX_CALLS);
        assert_eq!(all[0].seq, 6);
    }
}
