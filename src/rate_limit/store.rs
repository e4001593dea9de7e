use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::PlanQuotas;
use crate::clock::Clock;

/// The answer of a rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Within quota.
    Allowed {
        /// The quota's burst (requests per window).
        limit: u32,
        /// Requests left right now; `None` unless the check asked for details (computing it
        /// costs a division per check, and only the `RateLimit` headers need it).
        remaining: Option<u32>,
        /// The quota's window (time to refill the whole burst).
        window: Duration,
    },
    /// Over quota.
    Limited {
        /// The quota's burst.
        limit: u32,
        /// The quota's window.
        window: Duration,
        /// The earliest time a retry can succeed.
        retry_after: Duration,
    },
}

/// Where per-user quotas are counted: in memory ([`MemoryRateLimitStore`](super::MemoryRateLimitStore))
/// or, for a fleet of instances, in a shared store.
///
/// As for the lockout store, the future is an associated type and [`check_now`](Self::check_now)
/// lets a store answer at once, so the in-memory path neither boxes nor allocates.
pub trait RateLimitStore: Send + Sync + 'static {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The future of [`check`](Self::check).
    type Future: Future<Output = Result<RateDecision, Self::Error>> + Send + 'static;

    /// Counts one request (or message) of `key` on `plan`'s quota; `detailed` asks for
    /// [`RateDecision::Allowed::remaining`].
    fn check(&self, key: &Arc<str>, plan: Option<&str>, detailed: bool) -> Self::Future;

    /// The quotas this store counts.
    fn quotas(&self) -> &PlanQuotas;

    /// This store counting time with `clock` (set with the builders' `.clock(…)`). The default
    /// keeps the store as it is: right for a store that takes time from elsewhere (a shared
    /// store reading its server's clock, so that instances' clocks do not matter).
    fn with_clock(self, clock: Arc<dyn Clock>) -> Self
    where
        Self: Sized,
    {
        let _ = clock;
        self
    }

    /// What an error of this store does: `false` (the default) lets the request or message
    /// through, and logs (fail-open); `true` refuses it with `AUTH_FAILED` (HTTP 503 with
    /// `Retry-After`, gRPC 14; a WebSocket message is dropped as over quota): fail-closed.
    fn fails_closed(&self) -> bool {
        false
    }

    /// The same answer without a future, when the store can give it at once.
    fn check_now(
        &self,
        key: &Arc<str>,
        plan: Option<&str>,
        detailed: bool,
    ) -> Option<Result<RateDecision, Self::Error>> {
        let _ = (key, plan, detailed);
        None
    }
}
