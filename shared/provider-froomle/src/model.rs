//! The typed side of the Froomle API: what callers send and get back. No serde here; the
//! private `wire` module owns the JSON.

/// A recommendations request for one user (`POST /api/{environment}/recommendations/requests`).
/// The channel comes from the client's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Froomle device id (required by Froomle on every call).
    pub device_id: String,
    /// The user, when known.
    pub user_id: Option<String>,
    /// Page type, e.g. `home` or `newsletter`.
    pub page_type: String,
    /// The lists wanted (list names must be unique within a request).
    pub lists: Vec<ListRequest>,
}

/// One list in a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// List name as configured at Froomle.
    pub list_name: String,
    /// How many items.
    pub list_size: u32,
}

/// Froomle's answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommendations {
    /// Device id echoed back.
    pub device_id: Option<String>,
    /// User id echoed back.
    pub user_id: Option<String>,
    /// The A/B group the user is in (needed for attribution).
    pub user_group: Option<String>,
    /// The recommender version (needed for attribution).
    pub version: Option<String>,
    /// The request id events must refer to.
    pub request_id: String,
    /// One entry per requested list.
    pub lists: Vec<RecommendedList>,
}

impl Recommendations {
    /// The list called `name`, if Froomle returned it.
    pub fn list(&self, name: &str) -> Option<&RecommendedList> {
        self.lists.iter().find(|list| list.list_name == name)
    }
}

/// One list of recommended items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecommendedList {
    /// List name.
    pub list_name: String,
    /// Key for paging through the list later.
    pub list_key: Option<String>,
    /// Items, best first.
    pub items: Vec<Item>,
}

/// One recommended item with the information fields Froomle was configured to return (they
/// are configurable at Froomle, so each may be missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Item id.
    pub item_id: String,
    /// Rank, 1-based.
    pub rank: u32,
    /// Title.
    pub title: Option<String>,
    /// Link to the item (Froomle's `uri`).
    pub url: Option<String>,
    /// First image (Froomle's `images[0]`).
    pub image_url: Option<String>,
    /// Intro text.
    pub description: Option<String>,
}

/// A tracking event (`POST /api/{environment}/events`). The channel comes from the client's
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `batch_open`: a newsletter with batch recommendations was opened.
    BatchOpen {
        /// Device id.
        device_id: String,
        /// User id.
        user_id: Option<String>,
        /// The e-mail campaign.
        campaign_id: String,
    },
    /// `batch_click_on_recommendation`: a recommended item in a newsletter was clicked.
    BatchClickOnRecommendation {
        /// Device id.
        device_id: String,
        /// User id.
        user_id: Option<String>,
        /// The e-mail campaign.
        campaign_id: String,
        /// The list the item came from.
        list_name: String,
        /// The request id of the recommendations.
        request_id: String,
        /// The clicked item (`action_item`).
        item_id: String,
        /// Its type, e.g. `article` (`action_item_type`).
        item_type: String,
    },
    /// `detail_pageview`: the item's page was viewed (Froomle expects one after every click).
    DetailPageview {
        /// Device id.
        device_id: String,
        /// User id.
        user_id: Option<String>,
        /// Page type, e.g. `article_detail`.
        page_type: String,
        /// The viewed item (`action_item`).
        item_id: String,
        /// Its type (`action_item_type`).
        item_type: String,
    },
}

impl Event {
    /// Froomle's `event_type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::BatchOpen { .. } => "batch_open",
            Self::BatchClickOnRecommendation { .. } => "batch_click_on_recommendation",
            Self::DetailPageview { .. } => "detail_pageview",
        }
    }
}
