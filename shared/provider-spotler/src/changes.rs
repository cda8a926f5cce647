//! Changes pulled from Spotler, one page at a time: bounces (`GET /contact/bounces/list`) and
//! updated contacts (`GET /contact/updates/list`, which include unsubscribes).
//!
//! Both take a date window (`fromDate`, `toDate`, sent as `yyyy-mm-ddThh:mm:ss` in UTC), an
//! offset (`after`) and a `pageSize` (at most 10,000), and answer `{paging: {next, after},
//! bounces | contacts: [...]}`. A page is followed while `paging.next` is set; the next offset
//! is `paging.after`, or this offset plus the page's length when Spotler leaves it out.
//!
//! Spotler's dates carry no zone in the documentation; they are read as UTC, and dates with an
//! offset (`…Z`, `…+01:00`) are honoured.

use std::collections::BTreeMap;
use std::fmt;

use api_client::CallError;
use reqwest::Method;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::client::SpotlerClient;
use crate::oauth;

/// The largest `pageSize` Spotler accepts.
pub const MAX_PAGE_SIZE: u32 = 10_000;

/// A half-open date window `[from, to)`, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `fromDate`.
    pub from: OffsetDateTime,
    /// `toDate`.
    pub to: OffsetDateTime,
}

/// One page of a pulled list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The records of this page.
    pub items: Vec<T>,
    /// The offset of the next page, or `None` on the last page.
    pub next_after: Option<u64>,
}

/// Spotler's bounce type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BounceKind {
    /// `HARDBOUNCE`.
    Hard,
    /// `SOFTBOUNCE`.
    Soft,
    /// Any other value, as sent.
    Other(String),
}

/// One bounce.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounce {
    /// `date` as sent (stable input for ids).
    pub date_raw: String,
    /// `date`, parsed; `None` when it is missing or not a date.
    pub date: Option<OffsetDateTime>,
    /// Hard or soft.
    pub kind: BounceKind,
    /// The contact.
    pub contact: ChangedContact,
    /// The mailing action (`encryptedActId`).
    pub encrypted_act_id: Option<String>,
}

/// A channel switch of a contact.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Channel {
    /// `EMAIL` or `SMS`.
    pub name: String,
    /// Whether the contact may be reached on it.
    pub value: bool,
}

/// A contact as the change lists return it. `Debug` shows the property names, not their values
/// (they hold personal data).
#[derive(Clone, PartialEq)]
pub struct ChangedContact {
    /// The linked system's id.
    pub external_id: String,
    /// Property name → value (`email`, `firstName`, `permissions`, …).
    pub properties: BTreeMap<String, serde_json::Value>,
    /// Channel switches.
    pub channels: Vec<Channel>,
    /// `lastChanged` as sent (stable input for ids).
    pub last_changed_raw: Option<String>,
    /// `lastChanged`, parsed.
    pub last_changed: Option<OffsetDateTime>,
}

impl fmt::Debug for ChangedContact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&String> = self.properties.keys().collect();
        f.debug_struct("ChangedContact")
            .field("external_id", &self.external_id)
            .field("properties (names)", &names)
            .field("channels", &self.channels)
            .field("last_changed", &self.last_changed)
            .finish()
    }
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<serde_json::Value>,
    #[serde(default)]
    after: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContactDto {
    external_id: Option<String>,
    #[serde(default)]
    properties: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    channels: Option<Vec<Channel>>,
    #[serde(default)]
    last_changed: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BounceDto {
    #[serde(default)]
    date: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    contact: Option<ContactDto>,
    #[serde(default)]
    encrypted_act_id: Option<String>,
}

#[derive(Deserialize)]
struct BouncesAnswer {
    #[serde(default)]
    paging: Option<Paging>,
    #[serde(default)]
    bounces: Vec<BounceDto>,
}

#[derive(Deserialize)]
struct UpdatesAnswer {
    #[serde(default)]
    paging: Option<Paging>,
    #[serde(default)]
    contacts: Vec<ContactDto>,
}

/// Formats a query date: `yyyy-mm-ddThh:mm:ss` in UTC.
pub fn format_date(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    at.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Parses a Spotler date: RFC 3339 with an offset, or `yyyy-mm-ddThh:mm:ss[.fff]` (or with a
/// space instead of `T`) read as UTC.
pub fn parse_date(raw: &str) -> Option<OffsetDateTime> {
    let raw = raw.trim();
    if let Ok(at) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Some(at);
    }
    let normalized = raw.replacen(' ', "T", 1);
    let with_fraction = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    let plain = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    PrimitiveDateTime::parse(&normalized, with_fraction)
        .or_else(|_| PrimitiveDateTime::parse(&normalized, plain))
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

fn contact(dto: ContactDto) -> Option<ChangedContact> {
    let external_id = dto.external_id.filter(|id| !id.trim().is_empty())?;
    let last_changed = dto.last_changed.as_deref().and_then(parse_date);
    Some(ChangedContact {
        external_id,
        properties: dto.properties.unwrap_or_default(),
        channels: dto.channels.unwrap_or_default(),
        last_changed_raw: dto.last_changed,
        last_changed,
    })
}

fn bounce(dto: BounceDto) -> Option<Bounce> {
    let contact = contact(dto.contact?)?;
    let kind = match dto.kind.as_deref().map(str::trim) {
        Some(k) if k.eq_ignore_ascii_case("HARDBOUNCE") => BounceKind::Hard,
        Some(k) if k.eq_ignore_ascii_case("SOFTBOUNCE") => BounceKind::Soft,
        other => BounceKind::Other(other.unwrap_or_default().to_owned()),
    };
    let date_raw = dto.date.unwrap_or_default();
    Some(Bounce {
        date: parse_date(&date_raw),
        date_raw,
        kind,
        contact,
        encrypted_act_id: dto.encrypted_act_id.filter(|id| !id.is_empty()),
    })
}

/// The offset of the page after one at `after` with `count` records, if `paging` says there is
/// one. An answer that would not move forward ends the paging (it could only loop).
fn next_after(paging: Option<Paging>, after: u64, count: usize) -> Option<u64> {
    let paging = paging?;
    let more = paging
        .next
        .as_ref()
        .is_some_and(|next| !next.is_null() && *next != serde_json::Value::Bool(false));
    if !more || count == 0 {
        return None;
    }
    let stated = paging.after.as_ref().and_then(|value| match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    let next = stated.unwrap_or(after + count as u64);
    (next > after).then_some(next)
}

fn list_path(resource: &str, window: &Window, after: u64, page_size: u32) -> String {
    format!(
        "/contact/{resource}/list?fromDate={}&toDate={}&after={after}&pageSize={page_size}",
        oauth::encode(&format_date(window.from)),
        oauth::encode(&format_date(window.to)),
    )
}

fn check_page_size(operation: &str, page_size: u32) -> Result<(), CallError> {
    if page_size == 0 || page_size > MAX_PAGE_SIZE {
        return Err(CallError::Permanent(format!(
            "spotler {operation}: pageSize must be 1 to {MAX_PAGE_SIZE}"
        )));
    }
    Ok(())
}

impl SpotlerClient {
    /// One page of `GET /contact/bounces/list` for `window`, from offset `after`. Records
    /// without a contact external id are left out (nothing downstream could use them).
    pub async fn bounces(&self, window: &Window, after: u64, page_size: u32) -> Result<Page<Bounce>, CallError> {
        const OPERATION: &str = "bounces";
        check_page_size(OPERATION, page_size)?;
        let path = list_path("bounces", window, after, page_size);
        let reply = self.call(OPERATION, Method::GET, &path, None).await?;
        let answer: BouncesAnswer = serde_json::from_slice(&reply.body)
            .map_err(|e| CallError::Retriable(format!("spotler {OPERATION}: unexpected answer: {e}")))?;
        let count = answer.bounces.len();
        Ok(Page {
            items: answer.bounces.into_iter().filter_map(bounce).collect(),
            next_after: next_after(answer.paging, after, count),
        })
    }

    /// One page of `GET /contact/updates/list` for `window`, from offset `after`. Contacts
    /// without an external id are left out.
    pub async fn updates(
        &self,
        window: &Window,
        after: u64,
        page_size: u32,
    ) -> Result<Page<ChangedContact>, CallError> {
        const OPERATION: &str = "updates";
        check_page_size(OPERATION, page_size)?;
        let path = list_path("updates", window, after, page_size);
        let reply = self.call(OPERATION, Method::GET, &path, None).await?;
        let answer: UpdatesAnswer = serde_json::from_slice(&reply.body)
            .map_err(|e| CallError::Retriable(format!("spotler {OPERATION}: unexpected answer: {e}")))?;
        let count = answer.contacts.len();
        Ok(Page {
            items: answer.contacts.into_iter().filter_map(contact).collect(),
            next_after: next_after(answer.paging, after, count),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    fn paging(value: serde_json::Value) -> Option<Paging> {
        serde_json::from_value(value).ok()
    }

    #[test]
    fn dates_parse_with_and_without_zone() {
        assert_eq!(
            parse_date("2026-01-02T03:04:05"),
            Some(datetime!(2026-01-02 03:04:05 UTC))
        );
        assert_eq!(
            parse_date("2026-01-02 03:04:05"),
            Some(datetime!(2026-01-02 03:04:05 UTC))
        );
        assert_eq!(
            parse_date("2026-01-02T03:04:05.250"),
            Some(datetime!(2026-01-02 03:04:05.25 UTC))
        );
        assert_eq!(
            parse_date("2026-01-02T03:04:05Z"),
            Some(datetime!(2026-01-02 03:04:05 UTC))
        );
        assert_eq!(
            parse_date("2026-01-02T04:04:05+01:00"),
            Some(datetime!(2026-01-02 03:04:05 UTC))
        );
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(
            format_date(datetime!(2026-01-02 04:04:05 +01:00)),
            "2026-01-02T03:04:05"
        );
    }

    #[test]
    fn paging_follows_next_and_never_loops() {
        assert_eq!(
            next_after(paging(json!({"next": "u", "after": 200})), 100, 100),
            Some(200)
        );
        assert_eq!(
            next_after(paging(json!({"next": "u", "after": "300"})), 200, 100),
            Some(300)
        );
        assert_eq!(
            next_after(paging(json!({"next": "u"})), 0, 50),
            Some(50),
            "after defaults to offset + count"
        );
        assert_eq!(next_after(paging(json!({"next": null, "after": 10})), 0, 10), None);
        assert_eq!(next_after(paging(json!({"after": 10})), 0, 10), None);
        assert_eq!(next_after(None, 0, 10), None);
        assert_eq!(
            next_after(paging(json!({"next": "u", "after": 5})), 5, 10),
            None,
            "no progress"
        );
        assert_eq!(
            next_after(paging(json!({"next": "u", "after": 5})), 0, 0),
            None,
            "empty page"
        );
    }

    #[test]
    fn records_without_an_external_id_are_left_out() {
        let answer: BouncesAnswer = serde_json::from_value(json!({
            "bounces": [
                {"date": "2026-01-02T03:04:05", "type": "HARDBOUNCE", "contact": {"externalId": "c-1", "properties": {"email": "a@example.com"}}, "encryptedActId": "x"},
                {"date": "2026-01-02T03:04:06", "type": "SOFTBOUNCE", "contact": {"properties": {}}},
                {"date": "2026-01-02T03:04:07", "type": "OTHER", "contact": {"externalId": "c-3"}},
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let bounces: Vec<Bounce> = answer.bounces.into_iter().filter_map(bounce).collect();
        assert_eq!(bounces.len(), 2);
        assert_eq!(bounces[0].kind, BounceKind::Hard);
        assert_eq!(bounces[0].encrypted_act_id.as_deref(), Some("x"));
        assert_eq!(bounces[1].kind, BounceKind::Other("OTHER".into()));
        let shown = format!("{:?}", bounces[0]);
        assert!(!shown.contains("a@example.com"), "{shown}");
    }

    #[test]
    fn page_size_is_bounded() {
        assert!(check_page_size("x", 0).is_err());
        assert!(check_page_size("x", MAX_PAGE_SIZE + 1).is_err());
        assert!(check_page_size("x", MAX_PAGE_SIZE).is_ok());
    }
}
