//! Spotler `GET /contact/search?MPSearchQuery=<property>=<value>&pageSize&after`: contacts
//! whose property equals the value, paged like every Spotler list (`after` is the offset,
//! `pageSize` at most 10000, default 1000), answered as `{paging: {next, after}, contacts}`.

use axum::{
    Json,
    extract::{RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{contact_json, error};
use crate::Sandbox;

/// The default page size of Spotler lists.
const DEFAULT_PAGE_SIZE: usize = 1000;
/// The largest page size Spotler accepts.
const MAX_PAGE_SIZE: usize = 10_000;

/// The parsed query: `(property, value, page size, offset)`.
fn parse_query(query: &str) -> Result<(String, String, usize, usize), &'static str> {
    let mut criterion = None;
    let mut page_size = DEFAULT_PAGE_SIZE;
    let mut after = 0;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "MPSearchQuery" => criterion = Some(value.into_owned()),
            "pageSize" => {
                page_size = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                    .ok_or("pageSize must be between 1 and 10000")?;
            }
            "after" => after = value.parse::<usize>().map_err(|_| "after must be a whole number")?,
            _ => {}
        }
    }
    let criterion = criterion.ok_or("MPSearchQuery is required")?;
    let (property, value) = criterion
        .split_once('=')
        .filter(|(property, _)| !property.trim().is_empty())
        .ok_or("MPSearchQuery must have the form <property>=<value>")?;
    Ok((property.trim().to_owned(), value.to_owned(), page_size, after))
}

/// `GET /contact/search`.
pub(super) async fn search(State(sandbox): State<Sandbox>, RawQuery(query): RawQuery) -> Response {
    let (property, value, page_size, after) = match parse_query(query.as_deref().unwrap_or_default()) {
        Ok(parsed) => parsed,
        Err(message) => return error(StatusCode::BAD_REQUEST, "INVALID_PARAMS", message),
    };
    let store = sandbox.spotler_store();
    let found = store.search(&property, &value);
    let total = found.len();
    let page: Vec<Value> = found
        .into_iter()
        .skip(after)
        .take(page_size)
        .map(contact_json)
        .collect();
    drop(store);
    let next_after = after + page.len();
    let next = (next_after < total).then(|| {
        json!(format!(
            "/contact/search?MPSearchQuery={}&pageSize={page_size}&after={next_after}",
            url::form_urlencoded::byte_serialize(format!("{property}={value}").as_bytes()).collect::<String>()
        ))
    });
    Json(json!({
        "paging": {"next": next, "after": next_after},
        "contacts": page,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_needs_a_property_and_bounds_the_page() {
        assert_eq!(
            parse_query("MPSearchQuery=code%3DX-1&pageSize=5&after=2"),
            Ok(("code".to_owned(), "X-1".to_owned(), 5, 2))
        );
        assert_eq!(
            parse_query("MPSearchQuery=email%3Da%40b.cz"),
            Ok(("email".to_owned(), "a@b.cz".to_owned(), DEFAULT_PAGE_SIZE, 0))
        );
        assert!(parse_query("pageSize=5").is_err());
        assert!(parse_query("MPSearchQuery=novalue").is_err());
        assert!(parse_query("MPSearchQuery=a%3D1&pageSize=0").is_err());
    }
}
