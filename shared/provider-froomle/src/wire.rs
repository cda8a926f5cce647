//! Froomle's JSON: request and answer DTOs, converted explicitly to and from [`crate::model`].

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::{Event, Item, Recommendations, RecommendedList, Request};

/// `POST /oauth/token` answer.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    /// Seconds; Froomle's default is 86400.
    pub(crate) expires_in: Option<u64>,
    pub(crate) token_type: Option<String>,
}

/// `POST /api/{environment}/recommendations/requests` body.
#[derive(Debug, Serialize)]
pub(crate) struct RecommendationsRequest<'a> {
    channel: &'a str,
    device_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    page_type: &'a str,
    lists: Vec<ListSpec<'a>>,
}

#[derive(Debug, Serialize)]
struct ListSpec<'a> {
    list_name: &'a str,
    list_size: u32,
}

impl<'a> RecommendationsRequest<'a> {
    pub(crate) fn new(channel: &'a str, request: &'a Request) -> Self {
        Self {
            channel,
            device_id: &request.device_id,
            user_id: request.user_id.as_deref(),
            page_type: &request.page_type,
            lists: request
                .lists
                .iter()
                .map(|list| ListSpec {
                    list_name: &list.list_name,
                    list_size: list.list_size,
                })
                .collect(),
        }
    }
}

/// Ids come as strings in the documentation, but numbers are accepted too.
fn id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        _ => Err(serde::de::Error::custom("expected a string or a number")),
    }
}

fn optional_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(serde::de::Error::custom("expected a string or a number")),
    }
}

/// The recommendations answer.
#[derive(Deserialize)]
pub(crate) struct RecommendationsResponse {
    #[serde(default, deserialize_with = "optional_id")]
    device_id: Option<String>,
    #[serde(default, deserialize_with = "optional_id")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "optional_id")]
    user_group: Option<String>,
    #[serde(default, deserialize_with = "optional_id")]
    version: Option<String>,
    #[serde(deserialize_with = "id")]
    request_id: String,
    #[serde(default)]
    lists: Vec<ListResponse>,
}

#[derive(Deserialize)]
struct ListResponse {
    list_name: String,
    #[serde(default, deserialize_with = "optional_id")]
    list_key: Option<String>,
    /// The v2 guide names the array `recommendations` in one example.
    #[serde(default, alias = "recommendations")]
    items: Vec<ItemResponse>,
}

#[derive(Deserialize)]
struct ItemResponse {
    #[serde(deserialize_with = "id")]
    item_id: String,
    rank: u32,
    title: Option<String>,
    uri: Option<String>,
    #[serde(default)]
    images: Vec<String>,
    description: Option<String>,
}

impl From<RecommendationsResponse> for Recommendations {
    fn from(wire: RecommendationsResponse) -> Self {
        Self {
            device_id: wire.device_id,
            user_id: wire.user_id,
            user_group: wire.user_group,
            version: wire.version,
            request_id: wire.request_id,
            lists: wire
                .lists
                .into_iter()
                .map(|list| {
                    let mut items: Vec<Item> = list
                        .items
                        .into_iter()
                        .map(|item| Item {
                            item_id: item.item_id,
                            rank: item.rank,
                            title: item.title,
                            url: item.uri,
                            image_url: item.images.into_iter().next(),
                            description: item.description,
                        })
                        .collect();
                    items.sort_by_key(|item| item.rank);
                    RecommendedList {
                        list_name: list.list_name,
                        list_key: list.list_key,
                        items,
                    }
                })
                .collect(),
        }
    }
}

/// `POST /api/{environment}/events` body.
#[derive(Debug, Serialize)]
pub(crate) struct EventsRequest<'a> {
    events: Vec<WireEvent<'a>>,
}

#[derive(Debug, Serialize)]
struct WireEvent<'a> {
    event_type: &'static str,
    device_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    page_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    list_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action_item: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action_item_type: Option<&'a str>,
}

impl<'a> EventsRequest<'a> {
    pub(crate) fn new(channel: &'a str, events: &'a [Event]) -> Self {
        Self {
            events: events.iter().map(|event| WireEvent::new(channel, event)).collect(),
        }
    }
}

impl<'a> WireEvent<'a> {
    fn new(channel: &'a str, event: &'a Event) -> Self {
        let base = |device_id: &'a str, user_id: &'a Option<String>| WireEvent {
            event_type: event.event_type(),
            device_id,
            user_id: user_id.as_deref(),
            channel,
            page_type: None,
            campaign_id: None,
            list_name: None,
            request_id: None,
            action_item: None,
            action_item_type: None,
        };
        match event {
            Event::BatchOpen {
                device_id,
                user_id,
                campaign_id,
            } => WireEvent {
                campaign_id: Some(campaign_id),
                ..base(device_id, user_id)
            },
            Event::BatchClickOnRecommendation {
                device_id,
                user_id,
                campaign_id,
                list_name,
                request_id,
                item_id,
                item_type,
            } => WireEvent {
                campaign_id: Some(campaign_id),
                list_name: Some(list_name),
                request_id: Some(request_id),
                action_item: Some(item_id),
                action_item_type: Some(item_type),
                ..base(device_id, user_id)
            },
            Event::DetailPageview {
                device_id,
                user_id,
                page_type,
                item_id,
                item_type,
            } => WireEvent {
                page_type: Some(page_type),
                action_item: Some(item_id),
                action_item_type: Some(item_type),
                ..base(device_id, user_id)
            },
        }
    }
}

/// An OAuth or API error body: `{error, error_description}` or `{message}` / `{detail}`.
#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    error: Option<serde_json::Value>,
    error_description: Option<String>,
    message: Option<String>,
    detail: Option<String>,
}

impl ErrorBody {
    /// The most specific text the body offers.
    pub(crate) fn text(self) -> Option<String> {
        let error = self.error.and_then(|e| match e {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        });
        let parts: Vec<String> = [error, self.error_description, self.message, self.detail]
            .into_iter()
            .flatten()
            .filter(|s| !s.trim().is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(": "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::ListRequest;

    #[test]
    fn answer_maps_to_items_with_metadata_in_rank_order() {
        let answer = json!({
            "device_id": "d-1", "user_id": "u-1", "user_group": "froomle", "version": "froomle_1",
            "request_id": 2141141,
            "lists": [{
                "list_name": "newsletter_top", "list_key": "k-1", "list_size": 2, "limit": 2,
                "items": [
                    {"item_id": "b", "rank": 2, "title": "B", "uri": "https://x/b", "images": [], "description": "bb"},
                    {"item_id": 17, "rank": 1, "title": "A", "uri": "https://x/a",
                     "images": ["https://img/a1.jpg", "https://img/a2.jpg"], "description": "aa"}
                ]
            }]
        });
        let wire: RecommendationsResponse =
            serde_json::from_value(answer).unwrap_or_else(|e| panic!("answer must parse: {e}"));
        let recommendations = Recommendations::from(wire);
        assert_eq!(recommendations.request_id, "2141141");
        assert_eq!(recommendations.user_group.as_deref(), Some("froomle"));
        let list = recommendations
            .list("newsletter_top")
            .unwrap_or_else(|| panic!("list missing"));
        assert_eq!(
            list.items,
            vec![
                Item {
                    item_id: "17".into(),
                    rank: 1,
                    title: Some("A".into()),
                    url: Some("https://x/a".into()),
                    image_url: Some("https://img/a1.jpg".into()),
                    description: Some("aa".into()),
                },
                Item {
                    item_id: "b".into(),
                    rank: 2,
                    title: Some("B".into()),
                    url: Some("https://x/b".into()),
                    image_url: None,
                    description: Some("bb".into()),
                },
            ]
        );
    }

    #[test]
    fn recommendations_alias_and_missing_information_fields_are_accepted() {
        let answer = json!({
            "request_id": "r", "lists": [{"list_name": "l", "recommendations": [{"item_id": "i", "rank": 1}]}]
        });
        let wire: RecommendationsResponse =
            serde_json::from_value(answer).unwrap_or_else(|e| panic!("answer must parse: {e}"));
        let recommendations = Recommendations::from(wire);
        let items = recommendations.list("l").map(|l| l.items.clone()).unwrap_or_default();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].title, None);
    }

    #[test]
    fn request_body_has_channel_and_lists() {
        let request = Request {
            device_id: "d".into(),
            user_id: None,
            page_type: "newsletter".into(),
            lists: vec![ListRequest {
                list_name: "top".into(),
                list_size: 3,
            }],
        };
        let body = serde_json::to_value(RecommendationsRequest::new("email", &request)).unwrap_or_default();
        assert_eq!(
            body,
            json!({"channel": "email", "device_id": "d", "page_type": "newsletter",
                   "lists": [{"list_name": "top", "list_size": 3}]})
        );
    }

    #[test]
    fn click_and_pageview_carry_the_mandatory_fields() {
        let events = [
            Event::BatchOpen {
                device_id: "d".into(),
                user_id: Some("u".into()),
                campaign_id: "c".into(),
            },
            Event::BatchClickOnRecommendation {
                device_id: "d".into(),
                user_id: Some("u".into()),
                campaign_id: "c".into(),
                list_name: "top".into(),
                request_id: "r".into(),
                item_id: "i".into(),
                item_type: "article".into(),
            },
            Event::DetailPageview {
                device_id: "d".into(),
                user_id: Some("u".into()),
                page_type: "article_detail".into(),
                item_id: "i".into(),
                item_type: "article".into(),
            },
        ];
        let body = serde_json::to_value(EventsRequest::new("email", &events)).unwrap_or_default();
        assert_eq!(
            body,
            json!({"events": [
                {"event_type": "batch_open", "device_id": "d", "user_id": "u", "channel": "email", "campaign_id": "c"},
                {"event_type": "batch_click_on_recommendation", "device_id": "d", "user_id": "u", "channel": "email",
                 "campaign_id": "c", "list_name": "top", "request_id": "r", "action_item": "i", "action_item_type": "article"},
                {"event_type": "detail_pageview", "device_id": "d", "user_id": "u", "channel": "email",
                 "page_type": "article_detail", "action_item": "i", "action_item_type": "article"}
            ]})
        );
    }

    #[test]
    fn error_bodies_yield_their_texts() {
        let body: ErrorBody = serde_json::from_value(json!({"error": "invalid_client", "error_description": "bad"}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body.text().as_deref(), Some("invalid_client: bad"));
        let body: ErrorBody = serde_json::from_value(json!({})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body.text(), None);
    }
}
