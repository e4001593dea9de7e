use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

use super::{FailureOutcome, LockStatus, LockoutPolicy, LockoutStore};
use crate::client_ip::IpKey;

/// Stale entries are swept at most this often, from any call.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// One tracked address: 24 bytes of state (times in milliseconds since the epoch).
#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: u64,
    locked_until: u64,
    /// When this entry may be forgotten (window over, lockout over, history kept long enough).
    expires: u64,
    failures: u32,
    lockouts: u32,
}

/// The in-memory lockout store: a sharded concurrent map of tracked addresses.
///
/// It needs no background task: entries that have nothing left to say (their window and any
/// lockout are over) are swept during normal calls, at most every 30 seconds. It holds at most
/// `capacity` addresses ([`LockoutPolicy::capacity`]); when full it first sweeps, then forgets
/// the addresses with the fewest failures, then past offenders' history, **never a locked
/// one**. If every tracked address is
/// locked, a new failing address is not tracked until room frees up (reported as
/// [`FailureOutcome::untracked`]).
pub struct MemoryStore {
    map: DashMap<IpKey, Entry>,
    capacity: usize,
    last_sweep: AtomicU64,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tracked", &self.map.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl MemoryStore {
    /// A store for at most `capacity` addresses.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: DashMap::new(),
            capacity: capacity.max(1),
            last_sweep: AtomicU64::new(0),
        }
    }

    /// How many addresses are tracked now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every entry with nothing left to say at `now`.
    pub fn sweep(&self, now: Duration) {
        let now = ms(now);
        self.last_sweep.store(now, Ordering::Relaxed);
        self.map.retain(|_, e| e.expires > now);
    }

    fn maybe_sweep(&self, now: Duration) {
        let now_ms = ms(now);
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= ms(SWEEP_EVERY)
            && self
                .last_sweep
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.map.retain(|_, e| e.expires > now_ms);
        }
    }

    /// Makes room for one more entry; `false` when only locked addresses are left.
    fn make_room(&self, now: Duration, max_failures: u32) -> bool {
        if self.map.len() < self.capacity {
            return true;
        }
        self.sweep(now);
        // Down to 90% so that a spray does not trigger a pass on every insert.
        let target = self.capacity - self.capacity / 10;
        let now_ms = ms(now);
        // First the addresses with the fewest failures and no lockout history, then (only if
        // that was not enough) the history of past offenders; never a lock in force. Forgetting
        // history first would let an attacker with many addresses wash its own escalation.
        let mut threshold = 0;
        while self.map.len() > target && threshold < max_failures {
            threshold += 1;
            self.map
                .retain(|_, e| e.locked_until > now_ms || e.failures > threshold || e.lockouts > 0);
        }
        if self.map.len() > target {
            self.map.retain(|_, e| e.locked_until > now_ms);
        }
        self.map.len() < self.capacity
    }

    fn status(&self, key: &IpKey, now: Duration) -> LockStatus {
        let now_ms = ms(now);
        match self.map.get(key) {
            Some(e) if e.locked_until > now_ms => LockStatus::Locked {
                retry_after: Duration::from_millis(e.locked_until - now_ms),
            },
            _ => LockStatus::Open,
        }
    }

    fn failure(&self, key: IpKey, now: Duration, policy: &LockoutPolicy) -> FailureOutcome {
        self.maybe_sweep(now);
        let now_ms = ms(now);
        let window = ms(policy.window);
        let memory = ms(policy.memory());
        if !self.map.contains_key(&key) && !self.make_room(now, policy.max_failures.get()) {
            return FailureOutcome {
                untracked: true,
                ..FailureOutcome::default()
            };
        }
        let mut entry = self.map.entry(key).or_insert(Entry {
            window_start: now_ms,
            locked_until: 0,
            expires: 0,
            failures: 0,
            lockouts: 0,
        });
        let e = entry.value_mut();
        if e.locked_until > now_ms {
            // Already locked (a request that was in flight when the lock began).
            return FailureOutcome {
                failures: e.failures,
                locked_for: None,
                lockouts: e.lockouts,
                untracked: false,
            };
        }
        if now_ms.saturating_sub(e.window_start) >= window || e.failures == 0 {
            e.window_start = now_ms;
            e.failures = 0;
        }
        e.failures += 1;
        let mut locked_for = None;
        if e.failures >= policy.max_failures.get() {
            let duration = policy.lock_duration_for(e.lockouts);
            e.locked_until = now_ms.saturating_add(ms(duration));
            e.lockouts = e.lockouts.saturating_add(1);
            locked_for = Some(duration);
        }
        let failures = e.failures;
        if locked_for.is_some() {
            e.failures = 0;
        }
        e.expires = (e.window_start.saturating_add(window)).max(
            e.locked_until
                .saturating_add(if e.lockouts > 0 { memory } else { 0 }),
        );
        FailureOutcome {
            failures,
            locked_for,
            lockouts: e.lockouts,
            untracked: false,
        }
    }
}

impl LockoutStore for MemoryStore {
    type Error = Infallible;
    type CheckFuture = Ready<Result<LockStatus, Infallible>>;
    type FailureFuture = Ready<Result<FailureOutcome, Infallible>>;
    type ResetFuture = Ready<Result<(), Infallible>>;

    fn check(&self, key: IpKey, now: Duration) -> Self::CheckFuture {
        ready(Ok(self.status(&key, now)))
    }

    fn check_now(&self, key: IpKey, now: Duration) -> Option<Result<LockStatus, Infallible>> {
        Some(Ok(self.status(&key, now)))
    }

    fn record_failure(
        &self,
        key: IpKey,
        now: Duration,
        policy: &LockoutPolicy,
    ) -> Self::FailureFuture {
        ready(Ok(self.failure(key, now, policy)))
    }

    fn reset(&self, key: IpKey, now: Duration) -> Self::ResetFuture {
        let now_ms = ms(now);
        if let Some(mut e) = self.map.get_mut(&key)
            && e.locked_until <= now_ms
        {
            e.failures = 0;
        }
        ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use std::num::NonZeroU32;

    fn key(n: u32) -> IpKey {
        IpKey::new(IpAddr::V4(Ipv4Addr::from(n)), 64)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(1_700_000_000 + s)
    }

    #[test]
    fn locks_on_the_fifth_failure_within_the_window() {
        let store = MemoryStore::new(10);
        let p = LockoutPolicy::new();
        for i in 1..=4 {
            let o = store.failure(key(1), secs(i), &p);
            assert_eq!((o.failures, o.locked_for), (i as u32, None));
        }
        let o = store.failure(key(1), secs(5), &p);
        assert_eq!(o.locked_for, Some(Duration::from_secs(900)));
        assert_eq!(
            store.status(&key(1), secs(6)),
            LockStatus::Locked {
                retry_after: Duration::from_secs(899)
            }
        );
        assert_eq!(store.status(&key(2), secs(6)), LockStatus::Open);
        assert_eq!(store.status(&key(1), secs(5 + 900)), LockStatus::Open);
    }

    #[test]
    fn failures_outside_the_window_start_over() {
        let store = MemoryStore::new(10);
        let p = LockoutPolicy::new();
        for i in 0..4 {
            store.failure(key(1), secs(i), &p);
        }
        let o = store.failure(key(1), secs(900), &p);
        assert_eq!((o.failures, o.locked_for), (1, None));
    }

    #[test]
    fn escalation_lengthens_repeat_lockouts() {
        let store = MemoryStore::new(10);
        let p = LockoutPolicy::new()
            .max_failures(NonZeroU32::new(1).unwrap())
            .lock_duration(Duration::from_secs(60))
            .escalation(super::super::Escalation {
                factor: 2,
                max: Duration::from_secs(3600),
            });
        assert_eq!(
            store.failure(key(1), secs(0), &p).locked_for,
            Some(Duration::from_secs(60))
        );
        store.sweep(secs(61));
        assert_eq!(
            store.failure(key(1), secs(61), &p).locked_for,
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            store.failure(key(1), secs(300), &p).locked_for,
            Some(Duration::from_secs(240))
        );
    }

    #[test]
    fn reset_clears_failures_but_not_a_lock() {
        let store = MemoryStore::new(10);
        let p = LockoutPolicy::new();
        for i in 0..4 {
            store.failure(key(1), secs(i), &p);
        }
        drop(store.reset(key(1), secs(4)));
        assert_eq!(store.failure(key(1), secs(5), &p).failures, 1);
        for i in 0..5 {
            store.failure(key(2), secs(i), &p);
        }
        drop(store.reset(key(2), secs(6)));
        assert!(matches!(
            store.status(&key(2), secs(7)),
            LockStatus::Locked { .. }
        ));
    }

    #[test]
    fn sweeping_forgets_finished_entries_only() {
        let store = MemoryStore::new(10);
        let p = LockoutPolicy::new();
        store.failure(key(1), secs(0), &p);
        for i in 0..5 {
            store.failure(key(2), secs(i), &p);
        }
        store.sweep(secs(901));
        assert_eq!(store.len(), 1, "the locked address stays");
        store.sweep(secs(905));
        assert!(store.is_empty());
    }

    #[test]
    fn full_store_never_evicts_locked_addresses() {
        let store = MemoryStore::new(100);
        let p = LockoutPolicy::new().max_failures(NonZeroU32::new(2).unwrap());
        for n in 0..50 {
            store.failure(key(n), secs(0), &p);
            store.failure(key(n), secs(0), &p);
        }
        for n in 1000..20_000 {
            store.failure(key(n), secs(1), &p);
            assert!(store.len() <= 100);
        }
        for n in 0..50 {
            assert!(
                matches!(store.status(&key(n), secs(2)), LockStatus::Locked { .. }),
                "{n}"
            );
        }
    }

    #[test]
    fn offenders_history_outlives_merely_failing_addresses_under_pressure() {
        let store = MemoryStore::new(100);
        let p = LockoutPolicy::new()
            .max_failures(NonZeroU32::new(1).unwrap())
            .lock_duration(Duration::from_secs(10))
            .escalation(super::super::Escalation {
                factor: 2,
                max: Duration::from_secs(3600),
            });
        // Ten offenders, locked once; their locks end, their history stays.
        for n in 0..10 {
            store.failure(key(n), secs(0), &p);
        }
        let later = secs(20);
        let spray = LockoutPolicy::new()
            .lock_duration(Duration::from_secs(10))
            .escalation(super::super::Escalation {
                factor: 2,
                max: Duration::from_secs(3600),
            });
        for n in 1000..5000 {
            store.failure(key(n), later, &spray);
        }
        // Locked again, each offender's second lockout is longer: the history was kept.
        for n in 0..10 {
            assert_eq!(
                store.failure(key(n), secs(30), &p).locked_for,
                Some(Duration::from_secs(20)),
                "{n}"
            );
        }
    }

    #[test]
    fn store_full_of_locks_leaves_newcomers_untracked() {
        let store = MemoryStore::new(3);
        let p = LockoutPolicy::new().max_failures(NonZeroU32::new(1).unwrap());
        for n in 0..3 {
            assert!(store.failure(key(n), secs(0), &p).locked_for.is_some());
        }
        assert!(store.failure(key(9), secs(1), &p).untracked);
        assert_eq!(store.len(), 3);
    }
}
