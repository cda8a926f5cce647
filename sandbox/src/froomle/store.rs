//! Froomle state: issued access tokens (valid for `expires_in` seconds or until expired on
//! purpose), recommendation requests with the items answered, and every accepted event. Also
//! the built-in article catalog and the deterministic per-user ranking.
//!
//! Plain data with no I/O; `froomle.rs` validates requests.

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

/// How long an access token is valid (`expires_in`).
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);

/// Titles of the built-in catalog (30 articles).
const TITLES: [&str; 30] = [
    "City council approves new cycling lanes",
    "Five recipes for a quick weekday dinner",
    "Local team wins the regional championship",
    "How to save on your energy bill this winter",
    "Museum reopens with a new modern art wing",
    "The best hiking trails within an hour of town",
    "Startup raises funding for recycling robots",
    "What the new tax rules mean for families",
    "Review: the season's most talked-about thriller",
    "Ten tips for better sleep",
    "Farmers market moves to the old station square",
    "Interview: the chef behind the new bistro",
    "Rail line upgrade to cut commute times",
    "Schools trial a four-day week",
    "A beginner's guide to growing tomatoes",
    "Concert series brings jazz to the park",
    "Housing prices cool for the third month",
    "Volunteers restore the riverside path",
    "The science of a perfect cup of coffee",
    "New library opens with a makerspace",
    "Storm warning issued for the weekend",
    "Marathon route announced for the spring race",
    "How to spot a phishing e-mail",
    "Vintage car show draws record crowds",
    "Budget travel: three cities by train",
    "Hospital adds a new children's ward",
    "Photo essay: autumn in the old town",
    "Chess club celebrates its centenary",
    "Electric buses join the city fleet",
    "Ask the expert: choosing a first bike",
];

/// A catalog item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Article {
    pub(crate) item_id: String,
    pub(crate) title: &'static str,
    pub(crate) uri: String,
    pub(crate) image: String,
    pub(crate) description: String,
}

/// The built-in catalog: `article-001` ... `article-030`, built once (every recommendation
/// request reads it).
pub(crate) fn catalog() -> &'static [Article] {
    static CATALOG: std::sync::LazyLock<Vec<Article>> = std::sync::LazyLock::new(build_catalog);
    &CATALOG
}

fn build_catalog() -> Vec<Article> {
    TITLES
        .iter()
        .enumerate()
        .map(|(index, &title)| {
            let number = index + 1;
            let slug: String = title
                .to_ascii_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>()
                .split('-')
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("-");
            Article {
                item_id: format!("article-{number:03}"),
                title,
                uri: format!("https://news.example.com/articles/{number:03}-{slug}"),
                image: format!("https://img.example.com/articles/{number:03}.jpg"),
                description: format!("{title}: the full story, with background and reactions."),
            }
        })
        .collect()
}

/// FNV-1a, for a stable seed per user and list.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The catalog indices in the order recommended to `user` for `list_name` (the same every
/// time for the same pair).
pub(crate) fn ranking(user: &str, list_name: &str, catalog_len: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..catalog_len).collect();
    let mut state = fnv1a(&format!("{user}\u{0}{list_name}")) | 1;
    for i in (1..order.len()).rev() {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = usize::try_from(state % (i as u64 + 1)).unwrap_or(0);
        order.swap(i, j);
    }
    order
}

/// One list of a stored request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RequestedList {
    pub(crate) list_name: String,
    pub(crate) list_key: String,
    pub(crate) list_size: u64,
    pub(crate) limit: u64,
    /// The item ids answered, in rank order.
    pub(crate) item_ids: Vec<String>,
}

/// A recommendations request as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct FroomleRequest {
    pub(crate) request_id: String,
    pub(crate) environment: String,
    pub(crate) channel: String,
    pub(crate) page_type: String,
    pub(crate) device_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) lists: Vec<RequestedList>,
    /// RFC 3339 UTC with milliseconds.
    pub(crate) received_at: String,
}

/// An accepted event as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct FroomleEvent {
    pub(crate) environment: String,
    pub(crate) event_type: String,
    /// The event exactly as sent.
    pub(crate) event: Map<String, Value>,
    /// RFC 3339 UTC with milliseconds.
    pub(crate) received_at: String,
}

/// The Froomle store.
#[derive(Debug, Default)]
pub(crate) struct FroomleStore {
    /// Token → when it was issued.
    tokens: BTreeMap<String, Instant>,
    issued: usize,
    requests: Vec<FroomleRequest>,
    events: Vec<FroomleEvent>,
}

impl FroomleStore {
    /// Remembers a newly issued token.
    pub(crate) fn issue(&mut self, token: String, now: Instant) {
        self.tokens
            .retain(|_, issued| now.saturating_duration_since(*issued) < TOKEN_LIFETIME);
        self.tokens.insert(token, now);
        self.issued += 1;
    }

    /// True if `token` was issued, has not expired and was not invalidated.
    pub(crate) fn is_valid(&self, token: &str, now: Instant) -> bool {
        self.tokens
            .get(token)
            .is_some_and(|issued| now.saturating_duration_since(*issued) < TOKEN_LIFETIME)
    }

    /// Invalidates every token issued so far.
    pub(crate) fn expire_tokens(&mut self) {
        self.tokens.clear();
    }

    /// How many tokens were issued.
    pub(crate) fn tokens_issued(&self) -> usize {
        self.issued
    }

    /// The next request id (numeric text, unique within the sandbox).
    pub(crate) fn next_request_id(&self) -> String {
        (1_000_001 + self.requests.len()).to_string()
    }

    /// Stores an answered request.
    pub(crate) fn add_request(&mut self, request: FroomleRequest) {
        self.requests.push(request);
    }

    /// Stores accepted events.
    pub(crate) fn add_events(&mut self, events: impl IntoIterator<Item = FroomleEvent>) {
        self.events.extend(events);
    }

    /// Every request, in arrival order.
    pub(crate) fn requests(&self) -> &[FroomleRequest] {
        &self.requests
    }

    /// Every event, in arrival order.
    pub(crate) fn events(&self) -> &[FroomleEvent] {
        &self.events
    }
}

/// An item of a recommendations answer.
#[derive(Debug, Serialize)]
pub(crate) struct ItemView<'a> {
    item_id: &'a str,
    rank: usize,
    title: &'a str,
    uri: &'a str,
    images: [&'a str; 1],
    description: &'a str,
}

impl<'a> ItemView<'a> {
    /// `article` at `rank` (1 is the first).
    pub(crate) fn new(article: &'a Article, rank: usize) -> Self {
        Self {
            item_id: &article.item_id,
            rank,
            title: article.title,
            uri: &article.uri,
            images: [&article.image],
            description: &article.description,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_has_thirty_distinct_articles() {
        let catalog = catalog();
        assert_eq!(catalog.len(), 30);
        assert_eq!(catalog[0].item_id, "article-001");
        assert_eq!(
            catalog[0].uri,
            "https://news.example.com/articles/001-city-council-approves-new-cycling-lanes"
        );
        let mut ids: Vec<&str> = catalog.iter().map(|a| a.item_id.as_str()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 30);
    }

    #[test]
    fn ranking_is_a_permutation_stable_per_user_and_list() {
        let a = ranking("user-1", "home", 30);
        assert_eq!(a, ranking("user-1", "home", 30));
        assert_ne!(a, ranking("user-2", "home", 30));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..30).collect::<Vec<_>>());
    }

    #[test]
    fn tokens_are_valid_until_expired_or_too_old() {
        let now = Instant::now();
        let mut store = FroomleStore::default();
        store.issue("t1".to_owned(), now);
        assert!(store.is_valid("t1", now + Duration::from_secs(10)));
        assert!(!store.is_valid("t1", now + TOKEN_LIFETIME));
        assert!(!store.is_valid("t2", now));
        store.expire_tokens();
        assert!(!store.is_valid("t1", now));
        assert_eq!(store.tokens_issued(), 1);
    }
}
