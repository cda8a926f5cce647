//! Spotler's pull lists for changes made on Spotler's side: `GET /contact/bounces/list` and
//! `GET /contact/updates/list` (PROVIDERS.md section 3), served from records that tests and
//! demos add through `POST /_sandbox/spotler/bounces` and `/_sandbox/spotler/updates` (or
//! [`Sandbox::add_spotler_bounce`] / [`Sandbox::add_spotler_update`]).
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /contact/bounces/list?fromDate&toDate&after&pageSize` | 200 `{paging: {next, after}, bounces: [{date, type, contact, encryptedActId}]}` |
//! | `GET /contact/updates/list?fromDate&toDate&after&pageSize` | 200 `{paging: {next, after}, contacts: [Contact]}` |
//! | `POST /_sandbox/spotler/bounces` | adds one record or an array: `{date?, type: HARDBOUNCE\|SOFTBOUNCE, contact: {externalId, properties?, channels?}, encryptedActId?}`; 201 `{"added": N}` |
//! | `POST /_sandbox/spotler/updates` | adds one record or an array: `{date?, contact: {externalId, properties?, channels?}}`; 201 `{"added": N}` |
//! | `GET /_sandbox/spotler/bounces`, `GET /_sandbox/spotler/updates` | every record added |
//!
//! Emulator assumptions (the vendor documents neither): the window is half-open, `fromDate <=
//! date < toDate`; dates are UTC, read as `yyyy-mm-ddThh:mm:ss` (an RFC 3339 offset is also
//! accepted) and written without a zone; records are ordered by date, then by the order they
//! were added, so an offset addresses the same record on every call. `fromDate`, `toDate` and
//! `pageSize` (1 to 10000) are required, `after` defaults to 0. `paging.next` is the path of
//! the next page, or `null` on the last one; `paging.after` is the next offset. A record's
//! `date` defaults to now; an update's date is also its contact's `lastChanged`.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::{OffsetDateTime, PrimitiveDateTime, format_description::well_known::Rfc3339, macros::format_description};

use super::error;
use crate::{
    Sandbox, SpotlerChannel, inspect,
    support::{now_utc, rfc3339_millis},
};

/// The largest page size Spotler accepts.
const MAX_PAGE_SIZE: usize = 10_000;
/// The most records one `POST /_sandbox/spotler/...` may add.
const MAX_RECORDS_PER_ADD: usize = 10_000;

/// A contact as the change lists show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpotlerChangedContact {
    /// The linked system's id.
    pub external_id: String,
    /// Properties (`email`, `firstName`, `permissions`, …).
    #[serde(default)]
    pub properties: Map<String, Value>,
    /// Channel switches, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<SpotlerChannel>>,
}

/// A bounce served by `GET /contact/bounces/list`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpotlerBounce {
    /// When it bounced.
    pub date: OffsetDateTime,
    /// `HARDBOUNCE` or `SOFTBOUNCE`.
    pub bounce_type: String,
    /// The contact.
    pub contact: SpotlerChangedContact,
    /// The mailing action, if any.
    pub encrypted_act_id: Option<String>,
}

/// A changed contact served by `GET /contact/updates/list`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpotlerUpdate {
    /// When it changed (its `lastChanged`).
    pub date: OffsetDateTime,
    /// The contact after the change.
    pub contact: SpotlerChangedContact,
}

/// The records, each list ordered by date and then by arrival.
#[derive(Debug, Default)]
pub(crate) struct SpotlerChanges {
    bounces: Vec<SpotlerBounce>,
    updates: Vec<SpotlerUpdate>,
}

impl SpotlerChanges {
    fn add_bounces(&mut self, bounces: Vec<SpotlerBounce>) {
        self.bounces.extend(bounces);
        // A stable sort keeps the arrival order among records of the same date.
        self.bounces.sort_by_key(|b| b.date);
    }

    fn add_updates(&mut self, updates: Vec<SpotlerUpdate>) {
        self.updates.extend(updates);
        self.updates.sort_by_key(|u| u.date);
    }
}

/// The Spotler API routes, relative to the Spotler prefix.
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/contact/bounces/list", get(list_bounces))
        .route("/contact/updates/list", get(list_updates))
}

/// The `/_sandbox/spotler/...` routes (absolute paths).
pub(crate) fn inspect_router() -> Router<Sandbox> {
    Router::new()
        .route("/_sandbox/spotler/bounces", get(get_bounces).post(post_bounces))
        .route("/_sandbox/spotler/updates", get(get_updates).post(post_updates))
}

/// `yyyy-mm-ddThh:mm:ss` in UTC.
fn spotler_date(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    at.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Reads `yyyy-mm-ddThh:mm:ss` as UTC, or RFC 3339 with its offset.
fn parse_date(raw: &str) -> Option<OffsetDateTime> {
    let raw = raw.trim();
    OffsetDateTime::parse(raw, &Rfc3339).ok().or_else(|| {
        PrimitiveDateTime::parse(
            raw,
            format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        )
        .ok()
        .map(PrimitiveDateTime::assume_utc)
    })
}

fn check_contact(contact: &SpotlerChangedContact) -> Result<(), String> {
    if contact.external_id.trim().is_empty() {
        return Err("contact.externalId must not be empty".to_owned());
    }
    if let Some(bad) = contact
        .channels
        .iter()
        .flatten()
        .find(|c| c.name != "EMAIL" && c.name != "SMS")
    {
        return Err(format!("unknown channel {} (use EMAIL or SMS)", bad.name));
    }
    Ok(())
}

impl Sandbox {
    /// Adds bounces to `GET /contact/bounces/list`. Fails (adding nothing) on a type other
    /// than `HARDBOUNCE`/`SOFTBOUNCE`, an empty external id or an unknown channel.
    pub fn add_spotler_bounces(&self, bounces: Vec<SpotlerBounce>) -> Result<(), String> {
        for bounce in &bounces {
            if bounce.bounce_type != "HARDBOUNCE" && bounce.bounce_type != "SOFTBOUNCE" {
                return Err(format!(
                    "type must be HARDBOUNCE or SOFTBOUNCE, not {}",
                    bounce.bounce_type
                ));
            }
            check_contact(&bounce.contact)?;
        }
        self.spotler_changes().add_bounces(bounces);
        Ok(())
    }

    /// Adds one bounce (see [`Sandbox::add_spotler_bounces`]).
    pub fn add_spotler_bounce(&self, bounce: SpotlerBounce) -> Result<(), String> {
        self.add_spotler_bounces(vec![bounce])
    }

    /// Adds changed contacts to `GET /contact/updates/list`. Fails (adding nothing) on an
    /// empty external id or an unknown channel.
    pub fn add_spotler_updates(&self, updates: Vec<SpotlerUpdate>) -> Result<(), String> {
        for update in &updates {
            check_contact(&update.contact)?;
        }
        self.spotler_changes().add_updates(updates);
        Ok(())
    }

    /// Adds one changed contact (see [`Sandbox::add_spotler_updates`]).
    pub fn add_spotler_update(&self, update: SpotlerUpdate) -> Result<(), String> {
        self.add_spotler_updates(vec![update])
    }

    /// Every bounce added, ordered by date.
    pub fn spotler_bounces(&self) -> Vec<SpotlerBounce> {
        self.spotler_changes().bounces.clone()
    }

    /// Every changed contact added, ordered by date.
    pub fn spotler_updates(&self) -> Vec<SpotlerUpdate> {
        self.spotler_changes().updates.clone()
    }
}

/// A list query: `(from, to, page size, offset)`.
#[derive(Debug, PartialEq)]
struct ListQuery {
    from: OffsetDateTime,
    to: OffsetDateTime,
    page_size: usize,
    after: usize,
}

fn parse_query(query: &str) -> Result<ListQuery, String> {
    let (mut from, mut to, mut page_size, mut after) = (None, None, None, 0);
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "fromDate" => from = Some(parse_date(&value).ok_or("fromDate must be yyyy-mm-ddThh:mm:ss")?),
            "toDate" => to = Some(parse_date(&value).ok_or("toDate must be yyyy-mm-ddThh:mm:ss")?),
            "pageSize" => {
                page_size = Some(
                    value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                        .ok_or("pageSize must be between 1 and 10000")?,
                );
            }
            "after" => after = value.parse::<usize>().map_err(|_| "after must be a whole number")?,
            _ => {}
        }
    }
    Ok(ListQuery {
        from: from.ok_or("fromDate is required")?,
        to: to.ok_or("toDate is required")?,
        page_size: page_size.ok_or("pageSize is required")?,
        after,
    })
}

/// The page of `records` (already ordered) in the query's window, with Spotler's paging.
fn page<T>(
    records: &[T],
    date: impl Fn(&T) -> OffsetDateTime,
    query: &ListQuery,
    resource: &str,
) -> (Vec<usize>, Value) {
    let in_window: Vec<usize> = (0..records.len())
        .filter(|&i| {
            let at = date(&records[i]);
            query.from <= at && at < query.to
        })
        .collect();
    let total = in_window.len();
    let chosen: Vec<usize> = in_window.into_iter().skip(query.after).take(query.page_size).collect();
    let next_after = query.after + chosen.len();
    let next = (next_after < total).then(|| {
        json!(format!(
            "/contact/{resource}/list?fromDate={}&toDate={}&after={next_after}&pageSize={}",
            spotler_date(query.from),
            spotler_date(query.to),
            query.page_size
        ))
    });
    (chosen, json!({"next": next, "after": next_after}))
}

fn contact_json(contact: &SpotlerChangedContact, last_changed: Option<OffsetDateTime>) -> Value {
    let mut value = json!({
        "externalId": contact.external_id,
        "properties": contact.properties,
        "temporary": false,
    });
    if let Some(channels) = &contact.channels {
        value["channels"] = json!(channels);
    }
    if let Some(at) = last_changed {
        value["lastChanged"] = json!(spotler_date(at));
    }
    value
}

fn bad_query(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "INVALID_PARAMS", message)
}

/// `GET /contact/bounces/list`.
async fn list_bounces(State(sandbox): State<Sandbox>, RawQuery(query): RawQuery) -> Response {
    let query = match parse_query(query.as_deref().unwrap_or_default()) {
        Ok(query) => query,
        Err(message) => return bad_query(&message),
    };
    let changes = sandbox.spotler_changes();
    let (chosen, paging) = page(&changes.bounces, |b| b.date, &query, "bounces");
    let bounces: Vec<Value> = chosen
        .into_iter()
        .map(|i| {
            let bounce = &changes.bounces[i];
            let mut value = json!({
                "date": spotler_date(bounce.date),
                "type": bounce.bounce_type,
                "contact": contact_json(&bounce.contact, None),
            });
            if let Some(act) = &bounce.encrypted_act_id {
                value["encryptedActId"] = json!(act);
            }
            value
        })
        .collect();
    drop(changes);
    Json(json!({"paging": paging, "bounces": bounces})).into_response()
}

/// `GET /contact/updates/list`.
async fn list_updates(State(sandbox): State<Sandbox>, RawQuery(query): RawQuery) -> Response {
    let query = match parse_query(query.as_deref().unwrap_or_default()) {
        Ok(query) => query,
        Err(message) => return bad_query(&message),
    };
    let changes = sandbox.spotler_changes();
    let (chosen, paging) = page(&changes.updates, |u| u.date, &query, "updates");
    let contacts: Vec<Value> = chosen
        .into_iter()
        .map(|i| contact_json(&changes.updates[i].contact, Some(changes.updates[i].date)))
        .collect();
    drop(changes);
    Json(json!({"paging": paging, "contacts": contacts})).into_response()
}

/// One record or an array of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Self::Many(items) => items,
            Self::One(item) => vec![item],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BounceInput {
    date: Option<String>,
    #[serde(rename = "type")]
    bounce_type: String,
    contact: SpotlerChangedContact,
    encrypted_act_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateInput {
    date: Option<String>,
    contact: SpotlerChangedContact,
}

fn record_date(raw: Option<&str>) -> Result<OffsetDateTime, String> {
    match raw {
        None => Ok(now_utc()),
        Some(raw) => parse_date(raw).ok_or_else(|| "date must be yyyy-mm-ddThh:mm:ss or RFC 3339".to_owned()),
    }
}

fn parse_records<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<Vec<T>, String> {
    let records = serde_json::from_slice::<OneOrMany<T>>(body)
        .map(OneOrMany::into_vec)
        .map_err(|e| format!("invalid records: {e}"))?;
    if records.len() > MAX_RECORDS_PER_ADD {
        return Err(format!("at most {MAX_RECORDS_PER_ADD} records per call"));
    }
    Ok(records)
}

fn added(count: usize) -> Response {
    (StatusCode::CREATED, Json(json!({"added": count}))).into_response()
}

async fn post_bounces(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let inputs: Vec<BounceInput> = match parse_records(&body) {
        Ok(inputs) => inputs,
        Err(message) => return inspect::error(StatusCode::BAD_REQUEST, &message),
    };
    let mut bounces = Vec::with_capacity(inputs.len());
    for input in inputs {
        let date = match record_date(input.date.as_deref()) {
            Ok(date) => date,
            Err(message) => return inspect::error(StatusCode::BAD_REQUEST, &message),
        };
        bounces.push(SpotlerBounce {
            date,
            bounce_type: input.bounce_type,
            contact: input.contact,
            encrypted_act_id: input.encrypted_act_id,
        });
    }
    let count = bounces.len();
    match sandbox.add_spotler_bounces(bounces) {
        Ok(()) => added(count),
        Err(message) => inspect::error(StatusCode::BAD_REQUEST, &message),
    }
}

async fn post_updates(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let inputs: Vec<UpdateInput> = match parse_records(&body) {
        Ok(inputs) => inputs,
        Err(message) => return inspect::error(StatusCode::BAD_REQUEST, &message),
    };
    let mut updates = Vec::with_capacity(inputs.len());
    for input in inputs {
        let date = match record_date(input.date.as_deref()) {
            Ok(date) => date,
            Err(message) => return inspect::error(StatusCode::BAD_REQUEST, &message),
        };
        updates.push(SpotlerUpdate {
            date,
            contact: input.contact,
        });
    }
    let count = updates.len();
    match sandbox.add_spotler_updates(updates) {
        Ok(()) => added(count),
        Err(message) => inspect::error(StatusCode::BAD_REQUEST, &message),
    }
}

async fn get_bounces(State(sandbox): State<Sandbox>) -> Response {
    let bounces: Vec<Value> = sandbox
        .spotler_bounces()
        .iter()
        .map(|b| {
            json!({
                "date": rfc3339_millis(b.date),
                "type": b.bounce_type,
                "contact": b.contact,
                "encryptedActId": b.encrypted_act_id,
            })
        })
        .collect();
    Json(bounces).into_response()
}

async fn get_updates(State(sandbox): State<Sandbox>) -> Response {
    let updates: Vec<Value> = sandbox
        .spotler_updates()
        .iter()
        .map(|u| json!({"date": rfc3339_millis(u.date), "contact": u.contact}))
        .collect();
    Json(updates).into_response()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn query(from: OffsetDateTime, to: OffsetDateTime, page_size: usize, after: usize) -> ListQuery {
        ListQuery {
            from,
            to,
            page_size,
            after,
        }
    }

    #[test]
    fn queries_need_the_window_and_a_page_size() {
        assert_eq!(
            parse_query("fromDate=2026-01-01T00:00:00&toDate=2026-01-02T00:00:00&pageSize=10&after=5"),
            Ok(query(
                datetime!(2026-01-01 00:00:00 UTC),
                datetime!(2026-01-02 00:00:00 UTC),
                10,
                5
            ))
        );
        for bad in [
            "toDate=2026-01-02T00:00:00&pageSize=10",
            "fromDate=2026-01-01T00:00:00&pageSize=10",
            "fromDate=2026-01-01T00:00:00&toDate=2026-01-02T00:00:00",
            "fromDate=2026-01-01T00:00:00&toDate=2026-01-02T00:00:00&pageSize=10001",
            "fromDate=yesterday&toDate=2026-01-02T00:00:00&pageSize=1",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_cover_the_half_open_window_in_order() {
        let dates: Vec<OffsetDateTime> = (0..5)
            .map(|i| datetime!(2026-01-01 00:00:00 UTC) + time::Duration::seconds(i))
            .collect();
        let window = |after| query(dates[1], dates[4], 2, after);
        let (first, paging) = page(&dates, |d| *d, &window(0), "bounces");
        assert_eq!(first, vec![1, 2]);
        assert_eq!(paging["after"], 2);
        assert!(paging["next"].is_string());
        let (second, paging) = page(&dates, |d| *d, &window(2), "bounces");
        assert_eq!(second, vec![3], "toDate is exclusive");
        assert!(paging["next"].is_null());
    }
}
