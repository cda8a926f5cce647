//! The expiry-notice rules as plain arithmetic: the local day of a message, the notice window
//! and the order the skip reasons are checked in. No I/O, no clock: "today" is always the local
//! date of the message's `as_of`.

use messages::loyalty::SkipReason;
use time::{Date, OffsetDateTime, UtcOffset};

/// When expiry notices go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticePolicy {
    /// Days before the expiry from which the notice may go out; `None` = notices off.
    pub days: Option<u32>,
    /// The loyalty program's time zone, as a fixed offset: it decides what "today" is.
    pub offset: UtcOffset,
}

/// What to do with a `points.expiring`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send a notice, at most once for this customer on `today`.
    Notify {
        /// The local day of `as_of`: the once-a-day key.
        today: Date,
    },
    /// Send nothing.
    Skip(SkipReason),
}

impl NoticePolicy {
    /// The local calendar day of `at`.
    pub fn local_date(&self, at: OffsetDateTime) -> Date {
        at.to_offset(self.offset).date()
    }

    /// Whether a notice is due for `points` expiring on `expires_on`, as of `as_of`: notices on,
    /// more than 0 points, and the expiry from today up to `days` days ahead (the expiry day
    /// itself included; a past expiry is outside the window). The once-a-day rule is checked
    /// afterwards, against the record.
    pub fn decide(&self, points: i64, expires_on: Date, as_of: OffsetDateTime) -> Decision {
        let Some(days) = self.days else {
            return Decision::Skip(SkipReason::NoticesDisabled);
        };
        if points <= 0 {
            return Decision::Skip(SkipReason::ZeroPoints);
        }
        let today = self.local_date(as_of);
        let ahead = (expires_on - today).whole_days();
        if ahead < 0 || ahead > i64::from(days) {
            return Decision::Skip(SkipReason::OutsideNoticeWindow);
        }
        Decision::Notify { today }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime, offset};

    use super::*;

    fn policy(days: Option<u32>, offset: UtcOffset) -> NoticePolicy {
        NoticePolicy { days, offset }
    }

    fn check(policy: NoticePolicy, points: i64, expires_on: Date, as_of: OffsetDateTime, expected: Decision) {
        assert_eq!(
            policy.decide(points, expires_on, as_of),
            expected,
            "{points} points on {expires_on} as of {as_of}"
        );
    }

    #[test]
    fn window_includes_today_and_the_nth_day_only() {
        let p = policy(Some(7), UtcOffset::UTC);
        let as_of = datetime!(2026-12-24 02:00 UTC);
        let notify = Decision::Notify {
            today: date!(2026 - 12 - 24),
        };
        check(p, 10, date!(2026 - 12 - 24), as_of, notify);
        check(p, 10, date!(2026 - 12 - 31), as_of, notify);
        check(
            p,
            10,
            date!(2027 - 01 - 01),
            as_of,
            Decision::Skip(SkipReason::OutsideNoticeWindow),
        );
        check(
            p,
            10,
            date!(2026 - 12 - 23),
            as_of,
            Decision::Skip(SkipReason::OutsideNoticeWindow),
        );
    }

    #[test]
    fn zero_days_means_on_the_expiry_day_only() {
        let p = policy(Some(0), UtcOffset::UTC);
        let as_of = datetime!(2026-12-31 01:00 UTC);
        check(
            p,
            5,
            date!(2026 - 12 - 31),
            as_of,
            Decision::Notify {
                today: date!(2026 - 12 - 31),
            },
        );
        check(
            p,
            5,
            date!(2027 - 01 - 01),
            as_of,
            Decision::Skip(SkipReason::OutsideNoticeWindow),
        );
    }

    #[test]
    fn today_is_the_local_date_of_as_of() {
        // 23:30 UTC on the 23rd is already the 24th in Prague (+01:00) ...
        let prague = policy(Some(7), offset!(+01:00));
        let as_of = datetime!(2026-12-23 23:30 UTC);
        assert_eq!(prague.local_date(as_of), date!(2026 - 12 - 24));
        check(
            prague,
            10,
            date!(2026 - 12 - 31),
            as_of,
            Decision::Notify {
                today: date!(2026 - 12 - 24),
            },
        );
        // ... so the 31st is 7 days ahead there, but 8 days ahead in UTC.
        check(
            policy(Some(7), UtcOffset::UTC),
            10,
            date!(2026 - 12 - 31),
            as_of,
            Decision::Skip(SkipReason::OutsideNoticeWindow),
        );
        // An as_of carrying its own offset is converted, not read literally.
        let new_york = datetime!(2026-12-24 20:00 -05:00);
        assert_eq!(prague.local_date(new_york), date!(2026 - 12 - 25));
    }

    #[test]
    fn reasons_are_checked_in_order() {
        let as_of = datetime!(2026-12-24 02:00 UTC);
        let far = date!(2027 - 06 - 01);
        check(
            policy(None, UtcOffset::UTC),
            0,
            far,
            as_of,
            Decision::Skip(SkipReason::NoticesDisabled),
        );
        check(
            policy(Some(7), UtcOffset::UTC),
            0,
            far,
            as_of,
            Decision::Skip(SkipReason::ZeroPoints),
        );
        check(
            policy(Some(7), UtcOffset::UTC),
            -3,
            date!(2026 - 12 - 25),
            as_of,
            Decision::Skip(SkipReason::ZeroPoints),
        );
    }

    #[test]
    fn window_spans_year_ends_and_leap_days() {
        let p = policy(Some(366), UtcOffset::UTC);
        let as_of = datetime!(2027-03-01 00:00 UTC);
        check(
            p,
            1,
            date!(2028 - 03 - 01),
            as_of,
            Decision::Notify {
                today: date!(2027 - 03 - 01),
            },
        );
        check(
            p,
            1,
            date!(2028 - 03 - 02),
            as_of,
            Decision::Skip(SkipReason::OutsideNoticeWindow),
        );
    }
}
