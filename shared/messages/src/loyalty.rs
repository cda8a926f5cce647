//! Loyalty topics (`points.*`, `pin.changed`, `loyalty.*`): the Ellity × Ecomail flow.
//!
//! Inputs: `points.changed`, `points.expiring`, `pin.changed` (from the loyalty system) and
//! `loyalty.subscription.changed` (from `inbound`, Ecomail's list webhook). Results:
//! `loyalty.notified` (what was sent to Ecomail, or why nothing was) and
//! `loyalty.points.adjust.requested` (award or deduct points for joining or leaving the list).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::catalog::MessageSpec;

/// The message types of this family.
pub(crate) const SPECS: &[MessageSpec] = &[
    crate::spec!("points.changed", 1, Input),
    crate::spec!("points.expiring", 1, Input),
    crate::spec!("pin.changed", 1, Input),
    crate::spec!("loyalty.subscription.changed", 1, Input),
    crate::spec!("loyalty.notified", 1, Result),
    crate::spec!("loyalty.points.adjust.requested", 1, Result),
];

time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

/// `points.changed` v1: a customer's balance changed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PointsChanged {
    /// Stable id in the loyalty system.
    pub customer_id: String,
    /// E-mail, the Ecomail subscriber key. Personal data: never log it.
    pub customer_email: String,
    /// The new balance.
    pub balance: i64,
    /// The change that led to it (negative for a spend or an expiry).
    pub delta: i64,
    /// Why it changed (`purchase`, `redemption`, …); no personal data.
    pub reason: String,
    /// The next expiration after this change, if any.
    pub next_expiration: Option<Expiration>,
    /// When it changed.
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
}

/// Points that expire on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Expiration {
    /// How many points.
    pub points: i64,
    /// The day they expire.
    #[serde(with = "iso_date")]
    pub expires_on: Date,
}

/// `points.expiring` v1: points of a customer will expire.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PointsExpiring {
    /// Stable id in the loyalty system.
    pub customer_id: String,
    /// E-mail, the Ecomail subscriber key. Personal data: never log it.
    pub customer_email: String,
    /// Points that will expire.
    pub points: i64,
    /// The day they expire.
    #[serde(with = "iso_date")]
    pub expires_on: Date,
    /// The current balance.
    pub balance: i64,
    /// When the loyalty system computed this: "today" for the notice rules.
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: OffsetDateTime,
}

/// `pin.changed` v1: a customer's PIN changed. Its `Debug` never shows the PIN.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct PinChanged {
    /// Stable id in the loyalty system.
    pub customer_id: String,
    /// E-mail, the Ecomail subscriber key. Personal data: never log it.
    pub customer_email: String,
    /// The new PIN. A secret: never log it or put it in an error or a result.
    pub pin: String,
    /// When it changed.
    #[serde(with = "time::serde::rfc3339")]
    pub changed_at: OffsetDateTime,
}

impl fmt::Debug for PinChanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinChanged")
            .field("customer_id", &self.customer_id)
            .field("customer_email", &"<redacted>")
            .field("pin", &"<redacted>")
            .field("changed_at", &self.changed_at)
            .finish()
    }
}

/// Whether someone joined or left the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubscriptionStatus {
    /// Joined the list.
    Subscribed,
    /// Left the list.
    Unsubscribed,
}

/// `loyalty.subscription.changed` v1: someone joined or left the Ecomail list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubscriptionChanged {
    /// E-mail. Personal data: never log it.
    pub email: String,
    /// Joined or left.
    pub status: SubscriptionStatus,
    /// The Ecomail list.
    pub list_id: u64,
    /// When it happened (or was received).
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The webhook delivery id, if any.
    pub event_id: Option<String>,
}

/// Which input a `loyalty.notified` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceType {
    /// `points.changed`.
    #[serde(rename = "points.changed")]
    PointsChanged,
    /// `points.expiring`.
    #[serde(rename = "points.expiring")]
    PointsExpiring,
    /// `pin.changed`.
    #[serde(rename = "pin.changed")]
    PinChanged,
    /// `loyalty.subscription.changed`.
    #[serde(rename = "loyalty.subscription.changed")]
    SubscriptionChanged,
}

/// What happened to a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeStatus {
    /// Fields written and the tracker event accepted.
    Sent,
    /// Nothing to send; see [`SkipReason`].
    Skipped,
    /// Gave up; see the error.
    Failed,
}

/// The tracker event label (category `ellity`, action `change`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventLabel {
    /// The balance changed.
    Credit,
    /// Points will expire.
    Expiry,
    /// The PIN changed.
    Pin,
}

impl EventLabel {
    /// The label text sent to Ecomail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credit => "credit",
            Self::Expiry => "expiry",
            Self::Pin => "pin",
        }
    }
}

/// Why nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// This customer already got an expiry notice on this local day.
    AlreadyNotifiedToday,
    /// No points expire.
    ZeroPoints,
    /// Expiry notices are switched off (`LOYALTY_EXPIRY_NOTICE_DAYS=off`).
    NoticesDisabled,
    /// The expiry is further away than the notice window, or already past.
    OutsideNoticeWindow,
    /// The customer is not a subscriber of the Ecomail list.
    NotInList,
    /// The subscription change is about another Ecomail list.
    OtherList,
}

impl SkipReason {
    /// The reason text (also a metric label value).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlreadyNotifiedToday => "already_notified_today",
            Self::ZeroPoints => "zero_points",
            Self::NoticesDisabled => "notices_disabled",
            Self::OutsideNoticeWindow => "outside_notice_window",
            Self::NotInList => "not_in_list",
            Self::OtherList => "other_list",
        }
    }
}

/// `loyalty.notified` v1: what was sent to Ecomail for one input, or why nothing was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoyaltyNotified {
    /// The customer (absent for subscription changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// The input's type.
    pub source_type: SourceType,
    /// Sent, skipped or failed.
    pub status: NoticeStatus,
    /// The tracker event label sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_label: Option<EventLabel>,
    /// Custom fields written (names only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Why nothing was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<SkipReason>,
    /// Why it failed, without personal data or secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The input message.
    pub source_message_id: String,
}

/// Why points are adjusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustReason {
    /// Joined the newsletter list: an award.
    NewsletterSubscribed,
    /// Left the newsletter list: a deduction.
    NewsletterUnsubscribed,
}

/// `loyalty.points.adjust.requested` v1: award or deduct points in the loyalty system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointsAdjustRequested {
    /// The customer's e-mail (the loyalty system's lookup key). Personal data.
    pub email: String,
    /// Hex SHA-256 of the trimmed, lowercased e-mail.
    pub email_sha256: String,
    /// Points to add (positive) or remove (negative); never 0.
    pub points: i64,
    /// Why.
    pub reason: AdjustReason,
    /// The Ecomail list.
    pub list_id: u64,
    /// When the subscription changed.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The webhook delivery id of the input, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_event_id: Option<String>,
    /// The input message.
    pub source_message_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Schemas;
    use crate::testing::check_examples;

    #[test]
    fn every_example_validates_and_deserializes() {
        let changed = check_examples::<PointsChanged>("points.changed");
        assert!(changed.iter().any(|c| c.next_expiration.is_some()));
        let expiring = check_examples::<PointsExpiring>("points.expiring");
        assert!(expiring.iter().all(|e| e.expires_on.year() >= 2026));
        check_examples::<PinChanged>("pin.changed");
        let subscriptions = check_examples::<SubscriptionChanged>("loyalty.subscription.changed");
        assert!(
            subscriptions
                .iter()
                .any(|s| s.status == SubscriptionStatus::Unsubscribed)
        );
        check_examples::<LoyaltyNotified>("loyalty.notified");
        let adjustments = check_examples::<PointsAdjustRequested>("loyalty.points.adjust.requested");
        assert!(adjustments.iter().any(|a| a.points < 0));
    }

    #[test]
    fn results_serialize_to_valid_messages() {
        let schemas = Schemas::load(crate::DEFAULT_MAX_BODY_BYTES).unwrap_or_else(|e| panic!("{e}"));
        let notified = LoyaltyNotified {
            customer_id: Some("c-1".into()),
            source_type: SourceType::PointsExpiring,
            status: NoticeStatus::Skipped,
            event_label: None,
            fields: Vec::new(),
            reason: Some(SkipReason::OutsideNoticeWindow),
            error: None,
            source_message_id: "m-1".into(),
        };
        let body = serde_json::to_vec(&notified).unwrap_or_default();
        assert!(schemas.check("loyalty.notified", &body).is_ok());
        let adjust = PointsAdjustRequested {
            email: "a@example.com".into(),
            email_sha256: "0".repeat(64),
            points: -50,
            reason: AdjustReason::NewsletterUnsubscribed,
            list_id: 7,
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            source_event_id: None,
            source_message_id: "m-2".into(),
        };
        let body = serde_json::to_vec(&adjust).unwrap_or_default();
        let checked = schemas.check("loyalty.points.adjust.requested", &body);
        assert!(checked.is_ok(), "{checked:?}");
    }

    #[test]
    fn zero_adjustments_and_bad_pins_are_invalid() {
        let schemas = Schemas::load(crate::DEFAULT_MAX_BODY_BYTES).unwrap_or_else(|e| panic!("{e}"));
        let zero = br#"{"email":"a@example.com","email_sha256":"0000000000000000000000000000000000000000000000000000000000000000","points":0,"reason":"newsletter_subscribed","list_id":7,"occurred_at":"2026-01-01T00:00:00Z","source_message_id":"m"}"#;
        assert!(schemas.check("loyalty.points.adjust.requested", zero).is_err());
        let pin = br#"{"customer_id":"c","customer_email":"a@example.com","pin":"12 34","changed_at":"2026-01-01T00:00:00Z"}"#;
        let error = schemas
            .check("pin.changed", pin)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("/pin") && !error.contains("12 34"), "{error}");
    }

    #[test]
    fn pin_debug_hides_the_pin_and_the_address() {
        let pin = PinChanged {
            customer_id: "c-1".into(),
            customer_email: "jana@example.com".into(),
            pin: "4821".into(),
            changed_at: OffsetDateTime::UNIX_EPOCH,
        };
        let shown = format!("{pin:?}");
        assert!(!shown.contains("4821") && !shown.contains("jana@"), "{shown}");
    }
}
