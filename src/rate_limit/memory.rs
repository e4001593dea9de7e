use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{NotUntil, RateLimiter};

use super::quota::window_of;
use super::{PlanQuotas, RateDecision, RateLimitStore};
use crate::clock::Clock;

/// Idle keys are dropped at most this often, from any check.
const CLEANUP_EVERY: Duration = Duration::from_secs(30);

/// The clock is looked at for cleanup once per this many checks, so that a check reads the
/// clock once (inside governor), not twice.
const CLEANUP_PROBE_EVERY: u64 = 256;

/// The clock the limiters read: by default a TSC-based monotonic clock (quanta, as governor
/// uses; a few nanoseconds a read), or an injected [`Clock`] (tests move a `FakeClock`).
#[derive(Clone)]
enum RateClock {
    Fast(quanta::Clock),
    Custom(Arc<dyn Clock>),
}

impl GovernorClock for RateClock {
    type Instant = Nanos;
    #[inline]
    fn now(&self) -> Nanos {
        match self {
            Self::Fast(clock) => Nanos::new(clock.delta_as_nanos(0, clock.raw())),
            Self::Custom(clock) => Nanos::from(clock.now()),
        }
    }
}

/// Users' keys are hashed with foldhash (seeded per map at random), not SipHash: hashing the key
/// was a third of a check. The default key is a verified subject, which a client cannot choose;
/// a `key_by` over client-chosen values still gets per-map random seeds (see the module docs).
type Hasher = foldhash::fast::RandomState;

type Limiter = RateLimiter<
    Arc<str>,
    DashMapStateStore<Arc<str>, Hasher>,
    RateClock,
    StateInformationMiddleware,
>;

/// The in-memory per-user store: one GCRA limiter (governor) per plan, keyed by user.
///
/// Keys are `Arc<str>` borrowed from the [`AuthContext`](crate::AuthContext), so a check
/// allocates nothing once the user is known. Users idle long enough to have their whole burst
/// back are forgotten during normal checks: every 256th check (counted per thread, so that no
/// shared counter is written on the hot path) looks at the clock, and forgets them when 30
/// seconds have passed since the last time; no cleanup task is needed.
pub struct MemoryRateLimitStore {
    quotas: PlanQuotas,
    /// One limiter per quota (the default first, then each plan), with its burst and window.
    limiters: Box<[(Limiter, u32, Duration)]>,
    clock: RateClock,
    last_cleanup: AtomicU64,
}

impl fmt::Debug for MemoryRateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRateLimitStore")
            .field("quotas", &self.quotas)
            .field("tracked", &self.len())
            .finish()
    }
}

impl MemoryRateLimitStore {
    /// A store for `quotas` on a fast monotonic clock.
    pub fn new(quotas: PlanQuotas) -> Self {
        Self::build(quotas, RateClock::Fast(quanta::Clock::new()))
    }

    /// This store, reading time from `clock` instead (for tests with a `FakeClock`); what it
    /// counted so far is forgotten.
    pub fn with_clock(self, clock: impl Clock) -> Self {
        Self::build(self.quotas, RateClock::Custom(clock.into_shared()))
    }

    fn build(quotas: PlanQuotas, clock: RateClock) -> Self {
        let limiters = quotas
            .all()
            .map(|q| {
                let limiter =
                    RateLimiter::dashmap_with_clock_and_hasher(q, clock.clone(), Hasher::default())
                        .with_middleware::<StateInformationMiddleware>();
                (limiter, q.burst_size().get(), window_of(&q))
            })
            .collect();
        Self {
            quotas,
            limiters,
            clock,
            last_cleanup: AtomicU64::new(0),
        }
    }

    /// How many (user, plan) pairs are tracked now.
    pub fn len(&self) -> usize {
        self.limiters.iter().map(|(l, ..)| l.len()).sum()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every user whose whole burst has refilled.
    pub fn cleanup(&self) {
        for (limiter, ..) in self.limiters.iter() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    #[cold]
    #[inline(never)]
    fn maybe_cleanup(&self) {
        let now = self.clock.now().as_u64() / 1_000_000;
        let last = self.last_cleanup.load(Ordering::Relaxed);
        let every = CLEANUP_EVERY.as_millis() as u64;
        if now.saturating_sub(last) >= every
            && self
                .last_cleanup
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            for (limiter, ..) in self.limiters.iter() {
                limiter.retain_recent();
            }
        }
    }

    /// Counts one request of `key` on `plan`'s quota.
    pub fn decide(&self, key: &Arc<str>, plan: Option<&str>) -> RateDecision {
        self.decide_with(key, plan, true)
    }

    /// [`decide`](Self::decide), computing `remaining` only when `detailed`.
    // Inlined into the service (generic, so compiled in the user's crate): called, the decision
    // makes a round trip through the stack, and reading it back stalls on the stores just made.
    #[inline(always)]
    pub fn decide_with(&self, key: &Arc<str>, plan: Option<&str>, detailed: bool) -> RateDecision {
        // A per-thread count: no shared cache line is written on the hot path.
        thread_local! {
            static CHECKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        }
        let n = CHECKS.with(|c| {
            let n = c.get();
            c.set(n.wrapping_add(1));
            n
        });
        if n.is_multiple_of(CLEANUP_PROBE_EVERY) {
            self.maybe_cleanup();
        }
        let index = match plan {
            None => 0,
            plan => self.quotas.index_of(plan).map_or(0, |i| i + 1),
        };
        let (limiter, limit, window) = &self.limiters[index];
        let (limit, window) = (*limit, *window);
        // Matched by reference: the snapshot is read only when `detailed` asks for it. Moving it
        // out (as `Ok(snapshot)` does) copies it on every check, and that copy stalls on the
        // stores governor has just made.
        match &limiter.check_key(key) {
            Ok(snapshot) => RateDecision::Allowed {
                limit,
                remaining: if detailed {
                    Some(snapshot.remaining_burst_capacity())
                } else {
                    None
                },
                window,
            },
            Err(not_until) => self.limited(not_until, limit, window),
        }
    }

    /// Out of line, so that the allowed path stays small enough to be inlined.
    #[cold]
    #[inline(never)]
    fn limited(&self, not_until: &NotUntil<Nanos>, limit: u32, window: Duration) -> RateDecision {
        RateDecision::Limited {
            limit,
            window,
            retry_after: not_until.wait_time_from(self.clock.now()),
        }
    }
}

impl RateLimitStore for MemoryRateLimitStore {
    type Error = Infallible;
    type Future = Ready<Result<RateDecision, Infallible>>;

    #[inline]
    fn check(&self, key: &Arc<str>, plan: Option<&str>, detailed: bool) -> Self::Future {
        ready(Ok(self.decide_with(key, plan, detailed)))
    }

    #[inline]
    fn check_now(
        &self,
        key: &Arc<str>,
        plan: Option<&str>,
        detailed: bool,
    ) -> Option<Result<RateDecision, Infallible>> {
        Some(Ok(self.decide_with(key, plan, detailed)))
    }

    fn quotas(&self) -> &PlanQuotas {
        &self.quotas
    }

    fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        MemoryRateLimitStore::with_clock(self, clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use governor::Quota;
    use std::num::NonZeroU32;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn thirty_per_minute_then_limited_with_retry_after() {
        let clock = FakeClock::at_unix_secs(1_700_000_000);
        let store = MemoryRateLimitStore::new(PlanQuotas::new(Quota::per_minute(nz(30))))
            .with_clock(clock.clone());
        let alice: Arc<str> = Arc::from("alice");
        for i in 0..30 {
            match store.decide(&alice, None) {
                RateDecision::Allowed {
                    remaining, limit, ..
                } => {
                    assert_eq!((limit, remaining), (30, Some(29 - i)));
                }
                other => panic!("request {i}: {other:?}"),
            }
        }
        let RateDecision::Limited { retry_after, .. } = store.decide(&alice, None) else {
            panic!("31st request allowed");
        };
        assert_eq!(retry_after, Duration::from_secs(2));
        let bob: Arc<str> = Arc::from("bob");
        assert!(matches!(
            store.decide(&bob, None),
            RateDecision::Allowed { .. }
        ));
        clock.advance(Duration::from_secs(2));
        assert!(matches!(
            store.decide(&alice, None),
            RateDecision::Allowed { .. }
        ));
    }

    #[test]
    fn plans_have_their_own_quotas() {
        let clock = FakeClock::at_unix_secs(1_700_000_000);
        let quotas = PlanQuotas::new(Quota::per_second(nz(1)))
            .plan("pro", Quota::per_second(nz(3)))
            .unwrap();
        let store = MemoryRateLimitStore::new(quotas).with_clock(clock);
        let u: Arc<str> = Arc::from("u");
        let allowed = |plan| {
            (0..10)
                .filter(|_| matches!(store.decide(&u, plan), RateDecision::Allowed { .. }))
                .count()
        };
        assert_eq!(allowed(Some("pro")), 3);
        assert_eq!(allowed(Some("unknown")), 1);
    }

    #[test]
    fn idle_users_are_forgotten() {
        let clock = FakeClock::at_unix_secs(1_700_000_000);
        let store = MemoryRateLimitStore::new(PlanQuotas::new(Quota::per_second(nz(5))))
            .with_clock(clock.clone());
        for n in 0..1000 {
            store.decide(&Arc::from(format!("user{n}")), None);
        }
        assert_eq!(store.len(), 1000);
        clock.advance(Duration::from_secs(60));
        let late: Arc<str> = Arc::from("late");
        for _ in 0..CLEANUP_PROBE_EVERY {
            store.decide(&late, None);
        }
        assert_eq!(store.len(), 1, "only the new user is left");
    }
}
