//! Time as a value you can control.
//!
//! Every decision that depends on time (token expiry, `nbf`, and in later layers lockout windows
//! and session timers) reads it from a [`Clock`]. Production code uses [`SystemClock`]; tests use
//! [`FakeClock`] and move time by hand, so that no test has to sleep.
//!
//! ```
//! use std::time::Duration;
//! use tower_jwt_guard::clock::{Clock, FakeClock};
//!
//! let clock = FakeClock::at_unix_secs(1_700_000_000);
//! clock.advance(Duration::from_secs(90));
//! assert_eq!(clock.now().as_secs(), 1_700_000_090);
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, as a duration since the Unix epoch.
///
/// Implementations must be cheap to call: the authentication layer reads the clock once per
/// request.
///
/// Every builder of the crate that keeps time of its own takes its clock with
/// `.clock(impl Clock)` (the authentication layer and WebSocket sessions use their
/// validator's); to share one clock
/// between several of them, pass clones of a [`FakeClock`] (clones share their time) or of an
/// `Arc<dyn Clock>`, which is itself a `Clock` (and is used as is, not wrapped again).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time as a duration since `1970-01-01T00:00:00Z`.
    fn now(&self) -> Duration;

    /// This clock behind an `Arc`, as the layers keep it. Implementations need not override it.
    fn into_shared(self) -> Arc<dyn Clock>
    where
        Self: Sized,
    {
        Arc::new(self)
    }
}

impl Clock for Arc<dyn Clock> {
    fn now(&self) -> Duration {
        (**self).now()
    }

    fn into_shared(self) -> Arc<dyn Clock> {
        self
    }
}

impl<T: Clock> Clock for Arc<T> {
    fn now(&self) -> Duration {
        (**self).now()
    }

    fn into_shared(self) -> Arc<dyn Clock> {
        self
    }
}

/// The operating system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        // A clock set before 1970 is a broken host; treat it as the epoch rather than panic.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// Resolution is one millisecond.
#[derive(Debug, Clone, Default)]
pub struct FakeClock {
    millis: Arc<AtomicU64>,
}

impl FakeClock {
    /// A clock showing `secs` seconds after the Unix epoch.
    pub fn at_unix_secs(secs: u64) -> Self {
        Self {
            millis: Arc::new(AtomicU64::new(secs.saturating_mul(1000))),
        }
    }

    /// A clock showing the current system time (it then stays there until moved).
    pub fn starting_now() -> Self {
        let now = SystemClock.now();
        Self {
            millis: Arc::new(AtomicU64::new(now.as_millis() as u64)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.millis
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// Sets the clock to `secs` seconds after the Unix epoch (it may move backwards).
    pub fn set_unix_secs(&self, secs: u64) {
        self.millis
            .store(secs.saturating_mul(1000), Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_clones_share_time() {
        let a = FakeClock::at_unix_secs(10);
        let b = a.clone();
        a.advance(Duration::from_millis(1500));
        assert_eq!(b.now(), Duration::from_millis(11_500));
        b.set_unix_secs(5);
        assert_eq!(a.now().as_secs(), 5);
    }

    #[test]
    fn a_shared_clock_is_not_wrapped_again() {
        let fake = FakeClock::at_unix_secs(7);
        let shared: Arc<dyn Clock> = Arc::new(fake.clone());
        let again = Arc::clone(&shared).into_shared();
        assert!(Arc::ptr_eq(&shared, &again));
        assert_eq!(Arc::new(fake).into_shared().now().as_secs(), 7);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now().as_secs() > 1_577_836_800);
    }
}
