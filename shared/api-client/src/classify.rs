//! Retry classification (after vector's `RetryStrategy::Default`) and `Retry-After`.

use std::time::Duration;

use reqwest::StatusCode;

/// What to do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Try again later (via a delay tier).
    Retriable,
    /// Over the vendor's limit: pause the destination and wait; never a failure.
    RateLimited,
    /// The request itself is wrong; retrying cannot help.
    Permanent,
}

/// The classification table: 429 → rate limited; 408 and 5xx except 501 → retriable;
/// everything else (400, 401, 403, 404, 409, 422, 501, …) → permanent.
pub fn classify_status(status: StatusCode) -> Class {
    match status {
        StatusCode::TOO_MANY_REQUESTS => Class::RateLimited,
        StatusCode::REQUEST_TIMEOUT => Class::Retriable,
        StatusCode::NOT_IMPLEMENTED => Class::Permanent,
        s if s.is_server_error() => Class::Retriable,
        _ => Class::Permanent,
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date (relative to `now_unix`).
pub fn parse_retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs));
    }
    let date = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let delta = date.unix_timestamp() - now_unix;
    Some(Duration::from_secs(u64::try_from(delta).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let cases = [
            (429, Class::RateLimited),
            (408, Class::Retriable),
            (500, Class::Retriable),
            (502, Class::Retriable),
            (503, Class::Retriable),
            (501, Class::Permanent),
            (400, Class::Permanent),
            (401, Class::Permanent),
            (403, Class::Permanent),
            (404, Class::Permanent),
            (409, Class::Permanent),
            (422, Class::Permanent),
        ];
        for (code, class) in cases {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT);
            assert_eq!(classify_status(status), class, "{code}");
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3", 0), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.5", 0), Some(Duration::from_millis(500)));
        let now = 1_445_412_470; // 2015-10-21 07:27:50 UTC
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now + 100),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }
}
