//! Audit events: every authentication decision as a `tracing` event on the target
//! [`AUDIT_TARGET`] (`tower_jwt_guard::audit`).
//!
//! | decision | level | fields |
//! |---|---|---|
//! | accepted | `DEBUG` | `outcome="accepted"`, `subject`, `source`, `client`, `method`, `path` |
//! | anonymous (optional mode, no token) | `DEBUG` | `outcome="anonymous"`, `client`, `method`, `path` |
//! | rejected: a failed attempt (`INVALID_TOKEN`, `TOKEN_EXPIRED`), `FORBIDDEN`, `INVALID_REQUEST` | `INFO` | `outcome="rejected"`, `code`, `reason`, `subject` when known, `client`, `method`, `path` |
//! | rejected: `AUTH_FAILED` | `WARN` | the same |
//! | rejected: `MISSING_TOKEN`, `LOCKED_OUT`, `RATE_LIMITED` | `DEBUG` | the same |
//! | summary of the `DEBUG`-only refusals, at most once a minute | `INFO` | `outcome="rejected_summary"`, `missing_token`, `locked_out`, `rate_limited`, `period_secs` |
//! | address locked out (lockout layer) | `WARN` | `outcome="locked"`, `client` (the grouped address), `failures`, `lock_secs`, `lockouts` |
//! | lockout store failed (request let through) | `ERROR` | `operation`, `error` |
//!
//! `path` is the URI path only: the query string, which may hold a token, is never recorded, and
//! neither is any header value. `reason` is the fixed message of the rejection.
//!
//! Values a client controls (`subject`, `path`, and the subject in the WebSocket session
//! events) are recorded with their `Debug` form, quoted and escaped, so that a subscriber that
//! writes fields as they come still never writes a raw newline or escape character from a
//! client: a `sub` of `"x\nINFO forged"` cannot start a log line of its own, and ANSI escapes
//! never reach a terminal.
//!
//! A flood is mostly refusals that need no line each: requests without a token (scanners), from
//! an address already locked, or over a rate limit. Those are written at `DEBUG` and counted;
//! the first such refusal a minute or more after the last summary writes the counts in one
//! `INFO` event. The lock itself is one `WARN` event. So a flood of 100 000 refusals writes a
//! line a minute at `INFO`, not 100 000. The counts are kept only while a subscriber takes the
//! audit target's `INFO` events (no one would read them otherwise).
//!
//! Enable them with a filter such as `RUST_LOG=tower_jwt_guard::audit=debug`.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Method, Uri};

use crate::context::AuthContext;
use crate::error::{AuthError, ErrorCode};

/// The `tracing` target of audit events.
pub const AUDIT_TARGET: &str = "tower_jwt_guard::audit";

/// What the audit events say about the request itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestInfo<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    /// Where the client's address is found, read only when an event is written.
    extensions: &'a http::Extensions,
}

impl<'a> RequestInfo<'a> {
    /// The client's address, when the server put it in the extensions (see
    /// [`peer_addr`](crate::peer::peer_addr)).
    pub(crate) fn client(&self) -> Option<SocketAddr> {
        crate::peer::peer_addr(self.extensions)
    }

    pub(crate) fn of<B>(req: &'a http::Request<B>) -> Self {
        Self {
            method: req.method(),
            uri: req.uri(),
            extensions: req.extensions(),
        }
    }

    pub(crate) fn of_parts(parts: &'a http::request::Parts) -> Self {
        Self {
            method: &parts.method,
            uri: &parts.uri,
            extensions: &parts.extensions,
        }
    }
}

pub(crate) fn accepted(ctx: &AuthContext, req: RequestInfo<'_>) {
    tracing::debug!(
        target: AUDIT_TARGET,
        outcome = "accepted",
        subject = ctx.subject().map(tracing::field::debug),
        source = ctx.source().map(|s| s.as_str()),
        client = req.client().map(tracing::field::display),
        method = %req.method,
        path = ?req.uri.path(),
        "request authenticated"
    );
}

pub(crate) fn anonymous(req: RequestInfo<'_>) {
    tracing::debug!(
        target: AUDIT_TARGET,
        outcome = "anonymous",
        client = req.client().map(tracing::field::display),
        method = %req.method,
        path = ?req.uri.path(),
        "request passed without a token"
    );
}

pub(crate) fn rejected(err: &AuthError, subject: Option<&str>, req: RequestInfo<'_>) {
    macro_rules! emit {
        ($level:expr) => {
            tracing::event!(
                target: AUDIT_TARGET,
                $level,
                outcome = "rejected",
                code = err.code().as_str(),
                reason = err.message(),
                subject = subject.map(tracing::field::debug),
                client = req.client().map(tracing::field::display),
                method = %req.method,
                path = ?req.uri.path(),
                "request rejected"
            )
        };
    }
    match err.code() {
        // A store that does not answer, under fail-closed, or a remote key set without keys:
        // the store or the set logs its outage once; each refusal only at DEBUG, and a count.
        code @ ErrorCode::AuthFailed if err.is_quiet() => {
            emit!(tracing::Level::DEBUG);
            SUMMARY.count_heard(code);
        }
        ErrorCode::AuthFailed => emit!(tracing::Level::WARN),
        code @ (ErrorCode::MissingToken | ErrorCode::LockedOut | ErrorCode::RateLimited) => {
            // The refusals a flood is made of: one line each only at DEBUG, and a count.
            emit!(tracing::Level::DEBUG);
            SUMMARY.count_heard(code);
        }
        _ => emit!(tracing::Level::INFO),
    }
}

/// How often the refusal counts are written.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Milliseconds since the first call (a process-wide monotonic clock, for throttling log
/// events).
pub(crate) fn summary_clock() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// At most one event per period for a process-wide condition (a store that fails on every
/// request): [`ready`](Self::ready) says when to write one, and for how many occurrences.
#[cfg(any(feature = "lockout", feature = "rate-limit"))]
pub(crate) struct Throttle {
    /// When the last event was written (ms on [`summary_clock`], offset by one period).
    last_ms: AtomicU64,
    since: AtomicU64,
}

#[cfg(any(feature = "lockout", feature = "rate-limit"))]
impl Throttle {
    pub(crate) const fn new() -> Self {
        Self {
            last_ms: AtomicU64::new(0),
            since: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence; `Some(n)` when an event is due, `n` the occurrences it stands for
    /// (this one included). The very first occurrence is always due.
    pub(crate) fn ready(&self, every_ms: u64) -> Option<u64> {
        self.since.fetch_add(1, Ordering::Relaxed);
        let now = summary_clock().saturating_add(every_ms);
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < every_ms
            || self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        Some(self.since.swap(0, Ordering::Relaxed))
    }
}

/// Counts of the refusals logged at `DEBUG` only, written as one `INFO` event per period.
struct Summary {
    missing_token: AtomicU64,
    locked_out: AtomicU64,
    rate_limited: AtomicU64,
    unavailable: AtomicU64,
    /// When the last summary was written (ms on [`summary_clock`]).
    written_at: AtomicU64,
}

static SUMMARY: Summary = Summary {
    missing_token: AtomicU64::new(0),
    locked_out: AtomicU64::new(0),
    rate_limited: AtomicU64::new(0),
    unavailable: AtomicU64::new(0),
    written_at: AtomicU64::new(0),
};

impl Summary {
    /// [`count`](Self::count)s one refusal now, when a subscriber takes the summary's events:
    /// otherwise nothing is counted and the clock is not read (a flood of refusals with audit
    /// logging off pays for neither).
    fn count_heard(&self, code: ErrorCode) {
        if tracing::enabled!(target: AUDIT_TARGET, tracing::Level::INFO) {
            self.count(code, summary_clock());
        }
    }

    /// Counts one refusal at `now_ms`; writes the summary when a period has passed since the
    /// last one (the first refusal after the period writes it, so a quiet period writes
    /// nothing).
    fn count(&self, code: ErrorCode, now_ms: u64) {
        let counter = match code {
            ErrorCode::MissingToken => &self.missing_token,
            ErrorCode::LockedOut => &self.locked_out,
            ErrorCode::AuthFailed => &self.unavailable,
            _ => &self.rate_limited,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let last = self.written_at.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < SUMMARY_EVERY.as_millis() as u64
            || self
                .written_at
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let (missing_token, locked_out, rate_limited, store_unavailable) = (
            self.missing_token.swap(0, Ordering::Relaxed),
            self.locked_out.swap(0, Ordering::Relaxed),
            self.rate_limited.swap(0, Ordering::Relaxed),
            self.unavailable.swap(0, Ordering::Relaxed),
        );
        tracing::info!(
            target: AUDIT_TARGET,
            outcome = "rejected_summary",
            missing_token,
            locked_out,
            rate_limited,
            store_unavailable,
            period_secs = now_ms.saturating_sub(last) / 1000,
            "requests refused without a token, from locked addresses, over a rate limit or \
             with a fail-closed store unavailable since the last summary (each one is logged \
             at DEBUG)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_refusals_are_counted_and_summarised_once_a_period() {
        let summary = Summary {
            missing_token: AtomicU64::new(0),
            locked_out: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
            written_at: AtomicU64::new(0),
        };
        for _ in 0..1000 {
            summary.count(ErrorCode::LockedOut, 1_000);
        }
        summary.count(ErrorCode::MissingToken, 2_000);
        assert_eq!(summary.locked_out.load(Ordering::Relaxed), 1000);
        // A period later, the next refusal writes the counts and starts them over.
        summary.count(ErrorCode::RateLimited, 61_000);
        assert_eq!(summary.locked_out.load(Ordering::Relaxed), 0);
        assert_eq!(summary.missing_token.load(Ordering::Relaxed), 0);
        assert_eq!(summary.written_at.load(Ordering::Relaxed), 61_000);
        summary.count(ErrorCode::RateLimited, 62_000);
        assert_eq!(summary.rate_limited.load(Ordering::Relaxed), 1);
    }
}
