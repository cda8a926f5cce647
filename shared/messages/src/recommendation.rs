//! Recommendation topics (`recommendation.*`): the Froomle × Selligent flow.
//!
//! `recommendation.requested` (one user, one list) is answered by `recommendation.ready` with
//! the request's correlation id; `recommendation.tracked` carries newsletter opens and clicks
//! back to Froomle.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::catalog::MessageSpec;

/// The message types of this family.
pub(crate) const SPECS: &[MessageSpec] = &[
    crate::spec!("recommendation.requested", 1, Input),
    crate::spec!("recommendation.tracked", 1, Input),
    crate::spec!("recommendation.ready", 1, Result),
];

/// Smallest `list_size` Froomle is asked for.
pub const MIN_LIST_SIZE: u32 = 1;
/// Largest `list_size` (the schema's limit).
pub const MAX_LIST_SIZE: u32 = 100;

/// `recommendation.requested` v1: one list of recommendations for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecommendationRequested {
    /// Froomle environment (a path segment of the API).
    pub environment: String,
    /// The user, as known to the ESP and the online channels.
    pub user_id: String,
    /// Recommendation list configured at Froomle.
    pub list_name: String,
    /// Number of items, 1 to 100.
    pub list_size: u32,
    /// Froomle page type.
    pub page_type: String,
    /// The e-mail campaign the list is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    /// Froomle device id; `user_id` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

/// Whether a `recommendation.ready` holds a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    /// The list is there.
    Ready,
    /// No list could be had; `error` says why.
    Failed,
}

/// `recommendation.ready` v1: the answer to one `recommendation.requested`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecommendationReady {
    /// `ready` or `failed`.
    pub status: ReadyStatus,
    /// Froomle environment of the request.
    pub environment: String,
    /// The user.
    pub user_id: String,
    /// The list.
    pub list_name: String,
    /// The campaign, when the request named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    /// Froomle request id; tracking events must quote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Froomle A/B group of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_group: Option<String>,
    /// Froomle recommender version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The items, best first (present when `status` is `ready`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<RecommendedItem>>,
    /// Why it failed (when `status` is `failed`), without personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `message_id` of the request.
    pub source_message_id: String,
}

/// One recommended item with its metadata (each metadata field is configured at Froomle, so it
/// may be missing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecommendedItem {
    /// Rank, 1-based.
    pub rank: u32,
    /// Item id.
    pub item_id: String,
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Link to the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Image link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Intro text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The newsletter events Froomle attributes recommendations with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackedEvent {
    /// The newsletter was opened.
    BatchOpen,
    /// A recommendation in it was clicked.
    BatchClickOnRecommendation,
}

/// `recommendation.tracked` v1: a newsletter open or recommendation click.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecommendationTracked {
    /// What happened.
    pub event: TrackedEvent,
    /// Froomle environment.
    pub environment: String,
    /// The user.
    pub user_id: String,
    /// Froomle device id; `user_id` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The e-mail campaign.
    pub campaign_id: String,
    /// Clicks: the list the item came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_name: Option<String>,
    /// Clicks: the Froomle request id from `recommendation.ready`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Clicks: the clicked item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    /// Clicks: the item's type (e.g. `article`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_type: Option<String>,
    /// Clicks: page type of the `detail_pageview` (default `article_detail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_type: Option<String>,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Schemas;
    use crate::testing::check_examples;

    fn schemas() -> Schemas {
        Schemas::load(crate::DEFAULT_MAX_BODY_BYTES).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_example_validates_and_deserializes() {
        check_examples::<RecommendationRequested>("recommendation.requested");
        check_examples::<RecommendationReady>("recommendation.ready");
        check_examples::<RecommendationTracked>("recommendation.tracked");
    }

    #[test]
    fn list_size_is_bounded() {
        let schemas = schemas();
        for (size, ok) in [(0, false), (1, true), (100, true), (101, false)] {
            let body = format!(
                r#"{{"environment":"demo","user_id":"u","list_name":"top","list_size":{size},"page_type":"home"}}"#
            );
            assert_eq!(
                schemas.check("recommendation.requested", body.as_bytes()).is_ok(),
                ok,
                "list_size {size}"
            );
        }
    }

    #[test]
    fn a_click_without_its_attribution_fields_is_invalid() {
        let body = br#"{"event":"batch_click_on_recommendation","environment":"demo","user_id":"u","campaign_id":"c","occurred_at":"2026-11-21T07:16:30Z"}"#;
        let error = schemas()
            .check("recommendation.tracked", body)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("request_id"), "{error}");
    }

    #[test]
    fn a_failed_ready_needs_an_error_and_a_ready_one_needs_items() {
        let schemas = schemas();
        let failed =
            br#"{"status":"failed","environment":"demo","user_id":"u","list_name":"l","source_message_id":"m"}"#;
        assert!(schemas.check("recommendation.ready", failed).is_err());
        let ready = br#"{"status":"ready","environment":"demo","user_id":"u","list_name":"l","source_message_id":"m","request_id":"r"}"#;
        assert!(schemas.check("recommendation.ready", ready).is_err());
    }

    #[test]
    fn results_serialize_to_valid_messages() {
        let ready = RecommendationReady {
            status: ReadyStatus::Ready,
            environment: "demo".into(),
            user_id: "u".into(),
            list_name: "l".into(),
            campaign_id: None,
            request_id: Some("r".into()),
            user_group: Some("froomle".into()),
            version: None,
            items: Some(vec![RecommendedItem {
                rank: 1,
                item_id: "i".into(),
                title: Some("T".into()),
                url: None,
                image_url: None,
                description: None,
            }]),
            error: None,
            source_message_id: "m".into(),
        };
        let body = serde_json::to_vec(&ready).unwrap_or_default();
        assert!(schemas().check("recommendation.ready", &body).is_ok());
    }
}
