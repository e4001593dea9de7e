//! The IETF `RateLimit-Policy` / `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers).

use http::{HeaderMap, HeaderName, HeaderValue};

use super::RateDecision;

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The IETF `RateLimit-Policy` / `RateLimit` header values for `decision`.
pub(crate) fn ietf_headers(
    decision: &RateDecision,
    policy: &str,
) -> [(HeaderName, HeaderValue); 2] {
    let name: String = policy
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    let name = if name.is_empty() {
        "default".to_owned()
    } else {
        name
    };
    let (limit, window, remaining, reset) = match *decision {
        RateDecision::Allowed {
            limit,
            remaining,
            window,
        } => {
            // Time until the whole burst is back, at the quota's refill rate.
            let remaining = remaining.unwrap_or(limit);
            let used = limit.saturating_sub(remaining);
            let reset = window.mul_f64(f64::from(used) / f64::from(limit.max(1)));
            (limit, window, remaining, reset)
        }
        RateDecision::Limited {
            limit,
            window,
            retry_after,
        } => (limit, window, 0, retry_after),
    };
    let secs = |d: std::time::Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let policy = format!("\"{name}\";q={limit};w={}", secs(window).max(1));
    let state = format!("\"{name}\";r={remaining};t={}", secs(reset));
    [
        (
            RATELIMIT_POLICY,
            HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("\"default\"")),
        ),
        (
            RATELIMIT,
            HeaderValue::from_str(&state).unwrap_or(HeaderValue::from_static("\"default\"")),
        ),
    ]
}

/// Sets the header pairs on a response.
pub(crate) fn add_headers(headers: &mut HeaderMap, pairs: [(HeaderName, HeaderValue); 2]) {
    for (name, value) in pairs {
        headers.insert(name, value);
    }
}
