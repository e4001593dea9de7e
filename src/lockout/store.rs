use std::future::Future;
use std::time::Duration;

use super::LockoutPolicy;
use crate::client_ip::IpKey;

/// Whether an address may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStatus {
    /// Not locked.
    Open,
    /// Locked; a retry may succeed after `retry_after`.
    Locked {
        /// Time left on the lockout.
        retry_after: Duration,
    },
}

/// What recording a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureOutcome {
    /// Failures counted in the current window, this one included (0 when not tracked).
    pub failures: u32,
    /// `Some(duration)` when this failure locked the address.
    pub locked_for: Option<Duration>,
    /// How many lockouts this address has had, this one included.
    pub lockouts: u32,
    /// `Some(prefix)` when the store had no room for the address (every slot held a lock or
    /// a repeat offender's history) and the failure was counted against its wider prefix
    /// ([`IpKey::wider`]) instead; `locked_for` then says whether the prefix became locked.
    pub counted_as: Option<IpKey>,
}

/// Where lockout state lives: in memory ([`MemoryLockoutStore`](super::MemoryLockoutStore)) or, for a fleet
/// of instances, in a shared store.
///
/// The futures are associated types so that the in-memory store answers with
/// `std::future::Ready` and no request pays for a boxed future. A store may also answer a check
/// synchronously ([`check_now`](Self::check_now)), which lets the layer skip the async state
/// entirely.
pub trait LockoutStore: Send + Sync + 'static {
    /// The store's error (e.g. a lost connection).
    type Error: std::error::Error + Send + Sync + 'static;
    /// The future of [`check`](Self::check).
    type CheckFuture: Future<Output = Result<LockStatus, Self::Error>> + Send + 'static;
    /// The future of [`record_failure`](Self::record_failure).
    type FailureFuture: Future<Output = Result<FailureOutcome, Self::Error>> + Send + 'static;
    /// The future of [`reset`](Self::reset).
    type ResetFuture: Future<Output = Result<(), Self::Error>> + Send + 'static;

    /// Whether `key` is locked at `now` (time since the Unix epoch).
    fn check(&self, key: IpKey, now: Duration) -> Self::CheckFuture;

    /// The same answer without a future, when the store can give it at once. The default says
    /// it cannot.
    fn check_now(&self, key: IpKey, now: Duration) -> Option<Result<LockStatus, Self::Error>> {
        let _ = (key, now);
        None
    }

    /// [`check_now`](Self::check_now), and whether `key` may have failures on record that a
    /// success would [`reset`](Self::reset). The layer plants its success signal (an
    /// allocation) and resets after the response only when this says `true`, which the default
    /// always does. A store that says `false` for an address with nothing on record saves
    /// every clean request that work; a failure recorded concurrently by another request from
    /// the same address is then not reset by this one's success.
    ///
    /// `now` gives the time since the Unix epoch; a store calls it only if it needs it (the
    /// in-memory store does not for an address it has never seen, the common case).
    fn check_now_and_record(
        &self,
        key: IpKey,
        now: impl FnOnce() -> Duration,
    ) -> Option<Result<(LockStatus, bool), Self::Error>> {
        self.check_now(key, now())
            .map(|r| r.map(|status| (status, true)))
    }

    /// What an error of this store's [`check`](Self::check) does: `false` (the default) lets
    /// the request through, and logs (fail-open); `true` refuses it with `AUTH_FAILED` (HTTP
    /// 503 with `Retry-After`, gRPC 14): fail-closed.
    fn fails_closed(&self) -> bool {
        false
    }

    /// Counts a failure of `key` at `now` and locks it when `policy` says so.
    fn record_failure(
        &self,
        key: IpKey,
        now: Duration,
        policy: &LockoutPolicy,
    ) -> Self::FailureFuture;

    /// Clears the failure count of `key` (a lockout in force stays).
    fn reset(&self, key: IpKey, now: Duration) -> Self::ResetFuture;
}
