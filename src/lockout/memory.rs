use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use super::{FailureOutcome, LockStatus, LockoutPolicy, LockoutStore};
use crate::audit::AUDIT_TARGET;
use crate::client_ip::IpKey;

/// How many slots a full shard examines to make room for a new address.
const EVICTION_PROBES: usize = 8;

/// Counters per row of the overflow sketch (two rows per generation, two generations).
const SKETCH_WIDTH: usize = 1 << 16;
const SKETCH_ROWS: usize = 2;

/// One tracked address: 32 bytes of state (times in milliseconds since the epoch).
#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: u64,
    locked_until: u64,
    /// When this entry may be forgotten (window over, lockout over, history kept long enough).
    expires: u64,
    failures: u32,
    lockouts: u32,
}

impl Entry {
    const NEW: Self = Self {
        window_start: 0,
        locked_until: 0,
        expires: 0,
        failures: 0,
        lockouts: 0,
    };

    /// Whether a newcomer may take this slot: only when the entry has nothing left to say (its
    /// window, lock and history are over). An entry still counting failures is kept: evicting
    /// it would let an attacker with more addresses than slots wash its own counts by
    /// rotating through them.
    fn evictable(&self, now: u64) -> bool {
        self.expires <= now
    }
}

/// One shard: its addresses, and the order in which they were admitted (each tracked address
/// appears once), which eviction walks from the front.
struct Shard {
    map: HashMap<IpKey, Entry, RandomState>,
    order: VecDeque<IpKey>,
    capacity: usize,
}

impl Shard {
    /// Frees one slot, looking at no more than [`EVICTION_PROBES`] candidates from the front of
    /// the admission order (the oldest, most likely finished); live ones move to the back.
    /// `false` when none of them could go.
    fn make_room(&mut self, now: u64) -> bool {
        for _ in 0..EVICTION_PROBES.min(self.order.len()) {
            let Some(candidate) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&candidate).is_none_or(|e| e.evictable(now)) {
                self.map.remove(&candidate);
                return true;
            }
            self.order.push_back(candidate);
        }
        false
    }
}

/// The in-memory lockout store: a fixed number of shards of tracked addresses, and a
/// fixed-size overflow count of wider prefixes for when they are full.
///
/// **Bounded, with a per-request cost that does not depend on what it holds.** It tracks at
/// most `capacity` addresses ([`LockoutPolicy::capacity`], 100 000 by default, about 120 bytes
/// each). A new failing address takes a free slot, or the slot of an entry that has nothing
/// left to say (its window, lock and history are over): at most 8 slots are examined, oldest
/// admitted first. An entry that still counts failures, holds a lock or a repeat offender's
/// history is never evicted, so an attacker cannot wash its own record by rotating through
/// more addresses than there are slots. Finished entries are reused as slots, so no cleanup
/// task and no sweep over the store is needed.
///
/// **When no examined slot can be freed** (the store is full of live entries, as during a
/// distributed brute force), the failure is counted against the address's wider prefix
/// ([`IpKey::wider`]: the /24 of an IPv4 address, the /48 of an IPv6 one) in a fixed 512 KiB
/// count-min sketch (conservative update), allocated the first time it is needed. A prefix
/// with [`max_failures`](LockoutPolicy::max_failures) such failures is locked: every request
/// from it that has no entry of its own is refused, for at least the lock duration and at most
/// twice `max(window, lock duration)` (the sketch keeps two generations of that length). So
/// with the store full an attacker still gets at most `max_failures` guesses per prefix per
/// generation, instead of unlimited ones.
///
/// The price, paid only while the store is full (a `WARN` event says when it starts):
/// addresses sharing a locked prefix with an attacker are refused too, and since the sketch
/// can only over-count, a prefix whose counters collide with attacking ones can be refused
/// early. With `n` locked prefixes in a generation, roughly `(1 - e^(-n/65 536))²` of the
/// other prefixes are refused: about 0.02 % at 1 000, 2 % at 10 000, 28 % at 50 000 (which
/// takes 50 000 /24s, 12.8 million IPv4 addresses, or most of an IPv6 /32).
pub struct MemoryLockoutStore {
    shards: Box<[Mutex<Shard>]>,
    /// Picks the shard: foldhash's quality variant, seeded at random (its fast variant's low
    /// bits, which pick the shard, came out skewed for sequential addresses under some
    /// seeds: a shard could fill at half the capacity; the maps inside use SipHash, which
    /// resists collision flooding by client-chosen addresses).
    shard_hasher: foldhash::quality::RandomState,
    capacity: usize,
    overflow: Overflow,
}

impl fmt::Debug for MemoryLockoutStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLockoutStore")
            .field("tracked", &self.len())
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic elsewhere while holding the lock leaves consistent entries: keep using them.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryLockoutStore {
    /// A store for at most `capacity` addresses.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let count = (capacity / 256).next_power_of_two().clamp(1, 64);
        let hasher = RandomState::new();
        let shards = (0..count)
            .map(|i| {
                Mutex::new(Shard {
                    map: HashMap::with_hasher(hasher.clone()),
                    order: VecDeque::new(),
                    // The first `capacity % count` shards take one more.
                    capacity: capacity / count + usize::from(i < capacity % count),
                })
            })
            .collect();
        Self {
            shards,
            shard_hasher: foldhash::quality::RandomState::default(),
            capacity,
            overflow: Overflow::new(),
        }
    }

    /// How many addresses are tracked now (finished entries included until their slot is
    /// reused or [`sweep`](Self::sweep) runs).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether failures are being counted by prefix at `now`, because the store was full
    /// during this generation or the previous one.
    pub fn is_counting_prefixes(&self, now: Duration) -> bool {
        self.overflow.active(ms(now))
    }

    /// Forgets every entry with nothing left to say at `now`. Never needed for correctness or
    /// for bounds (finished entries are reused as slots); it walks the whole store, so call it
    /// off the request path if at all.
    pub fn sweep(&self, now: Duration) {
        let now = ms(now);
        for shard in &self.shards {
            let mut shard = lock(shard);
            let Shard { map, order, .. } = &mut *shard;
            map.retain(|_, e| e.expires > now);
            order.retain(|k| map.contains_key(k));
        }
    }

    fn shard(&self, key: &IpKey) -> &Mutex<Shard> {
        // The shard count is a power of two.
        let hash = self.shard_hasher.hash_one(key);
        &self.shards[(hash as usize) & (self.shards.len() - 1)]
    }

    fn status(&self, key: &IpKey, now: Duration) -> LockStatus {
        self.status_and_record(key, || now).0
    }

    /// The status, and whether the address's own entry has failures a success would reset.
    /// `now` is called only for an address with an entry, or once the overflow sketch has been
    /// used: never for an address seen for the first time in normal operation.
    fn status_and_record(&self, key: &IpKey, now: impl FnOnce() -> Duration) -> (LockStatus, bool) {
        let (mut clock, mut read) = (Some(now), None);
        let mut now_ms =
            || *read.get_or_insert_with(|| ms(clock.take().map_or(Duration::ZERO, |now| now())));
        if let Some(e) = lock(self.shard(key)).map.get(key) {
            let now_ms = now_ms();
            if e.expires > now_ms {
                // A tracked address is judged by its own entry.
                if e.locked_until > now_ms {
                    let retry_after = Duration::from_millis(e.locked_until - now_ms);
                    return (LockStatus::Locked { retry_after }, e.failures > 0);
                }
                return (LockStatus::Open, e.failures > 0);
            }
        }
        // No entry of its own: a reset would find nothing (the overflow's prefix counts are
        // never reset by a success).
        if self.overflow.ever_used() {
            let now_ms = now_ms();
            if self.overflow.active(now_ms) {
                return (self.overflow.status(&key.wider(), now_ms), false);
            }
        }
        (LockStatus::Open, false)
    }

    fn failure(&self, key: IpKey, now: Duration, policy: &LockoutPolicy) -> FailureOutcome {
        let now_ms = ms(now);
        let window = ms(policy.window);
        let memory = ms(policy.memory());
        let mut shard = lock(self.shard(&key));
        if !shard.map.contains_key(&key) {
            if shard.map.len() >= shard.capacity && !shard.make_room(now_ms) {
                drop(shard);
                return self.overflow.record(key.wider(), now_ms, policy);
            }
            shard.map.insert(key, Entry::NEW);
            shard.order.push_back(key);
        }
        let e = shard.map.get_mut(&key).expect("inserted above");
        if e.locked_until > now_ms {
            // Already locked (a request that was in flight when the lock began).
            return FailureOutcome {
                failures: e.failures,
                locked_for: None,
                lockouts: e.lockouts,
                counted_as: None,
            };
        }
        if e.expires <= now_ms {
            // Nothing left to say: start afresh, history included.
            *e = Entry::NEW;
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
            counted_as: None,
        }
    }
}

/// Failure counts of wider prefixes, for when the address shards are full: a count-min sketch
/// (two rows of saturating 16-bit counters, indexed by seeded hashes) in two generations of
/// `max(window, lock duration)` each. Fixed size, lock-free, constant work per call; it can
/// only over-count.
struct Overflow {
    /// `[generation half][row][counter]`, allocated on first use.
    cells: OnceLock<Box<[AtomicU16]>>,
    /// The generation number each half holds (`u64::MAX`: none yet).
    halves: [AtomicU64; 2],
    /// The generation length in milliseconds (0 until first use).
    generation_ms: AtomicU64,
    /// The failures that lock a prefix.
    threshold: AtomicU32,
    /// The latest generation in which a failure was counted here (`u64::MAX`: never).
    last_used: AtomicU64,
    hasher: RandomState,
}

impl Overflow {
    fn new() -> Self {
        Self {
            cells: OnceLock::new(),
            halves: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
            generation_ms: AtomicU64::new(0),
            threshold: AtomicU32::new(u32::MAX),
            last_used: AtomicU64::new(u64::MAX),
            hasher: RandomState::new(),
        }
    }

    fn generation(&self, now: u64) -> Option<(u64, u64)> {
        let length = self.generation_ms.load(Ordering::Relaxed);
        (length > 0).then(|| (now / length, length))
    }

    /// Whether the sketch has ever counted a failure (no clock needed to say no).
    fn ever_used(&self) -> bool {
        self.last_used.load(Ordering::Relaxed) != u64::MAX
    }

    fn active(&self, now: u64) -> bool {
        let last = self.last_used.load(Ordering::Relaxed);
        last != u64::MAX
            && self
                .generation(now)
                .is_some_and(|(current, _)| current.saturating_sub(last) <= 1)
    }

    /// The two counters of `prefix` in `half`, one per row, from one seeded hash.
    fn cells_of(&self, half: u64, prefix: &IpKey) -> [usize; SKETCH_ROWS] {
        let hash = self.hasher.hash_one(prefix);
        let base = half as usize * SKETCH_ROWS * SKETCH_WIDTH;
        let column = |bits: u64| (bits as usize) & (SKETCH_WIDTH - 1);
        [
            base + column(hash),
            base + SKETCH_WIDTH + column(hash >> 32),
        ]
    }

    /// A half's generation while its counters are being zeroed: matches no generation.
    const RESETTING: u64 = u64::MAX - 1;

    /// The counts of `prefix` in generation `generation` (zero when no half holds it).
    fn counts(&self, cells: &[AtomicU16], generation: u64, prefix: &IpKey) -> u32 {
        let half = generation % 2;
        if self.halves[half as usize].load(Ordering::Acquire) != generation {
            return 0;
        }
        self.cells_of(half, prefix)
            .iter()
            .map(|i| u32::from(cells[*i].load(Ordering::Relaxed)))
            .min()
            .unwrap_or(0)
    }

    /// Locked when the counts of this generation and the previous one reach the threshold.
    fn status(&self, prefix: &IpKey, now: u64) -> LockStatus {
        let (Some(cells), Some((current, length))) = (self.cells.get(), self.generation(now))
        else {
            return LockStatus::Open;
        };
        let threshold = self.threshold.load(Ordering::Relaxed);
        let this = self.counts(cells, current, prefix);
        let before = current
            .checked_sub(1)
            .map_or(0, |g| self.counts(cells, g, prefix));
        verdict(this, before, threshold, current, length, now)
    }

    fn record(&self, prefix: IpKey, now: u64, policy: &LockoutPolicy) -> FailureOutcome {
        let length = ms(policy.window.max(policy.lock_duration)).max(1);
        self.generation_ms.store(length, Ordering::Relaxed);
        self.threshold
            .store(policy.max_failures.get(), Ordering::Relaxed);
        let current = now / length;
        let previous = self.last_used.fetch_max(current, Ordering::Relaxed);
        if previous == u64::MAX || current.saturating_sub(previous) > 1 {
            tracing::warn!(
                target: AUDIT_TARGET,
                "lockout store is full of live entries: failures from new addresses are \
                 now counted, and locked, by /24 (IPv4) or /48 (IPv6) prefix"
            );
        }
        if previous == u64::MAX {
            // `fetch_max` keeps u64::MAX ("never"): store the generation itself.
            self.last_used.store(current, Ordering::Relaxed);
        }
        let cells = self.cells.get_or_init(|| {
            (0..2 * SKETCH_ROWS * SKETCH_WIDTH)
                .map(|_| AtomicU16::new(0))
                .collect()
        });
        let half = current % 2;
        let slot = &self.halves[half as usize];
        let held = slot.load(Ordering::Acquire);
        if held != current
            && held != Self::RESETTING
            && slot
                .compare_exchange(held, Self::RESETTING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // This half held an older generation: zero it (once per generation), and only then
            // say which generation it holds, so that no reader takes old counts for new ones.
            let start = half as usize * SKETCH_ROWS * SKETCH_WIDTH;
            for cell in &cells[start..start + SKETCH_ROWS * SKETCH_WIDTH] {
                cell.store(0, Ordering::Relaxed);
            }
            slot.store(current, Ordering::Release);
        }
        let threshold = policy.max_failures.get();
        let before = current
            .checked_sub(1)
            .map_or(0, |g| self.counts(cells, g, &prefix));
        let indices = self.cells_of(half, &prefix);
        // Conservative update: only the counters at the prefix's current minimum go up, so
        // collisions inflate counts as little as a count-min sketch allows.
        let low = indices
            .iter()
            .map(|i| cells[*i].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        for i in indices {
            let _ = cells[i].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                (c <= low).then(|| c.saturating_add(1))
            });
        }
        let this = self.counts(cells, current, &prefix);
        let failures = this.saturating_add(before);
        let crossed = failures >= threshold && failures - 1 < threshold;
        let mut this = this;
        if crossed && this < threshold {
            // Part of the count is from the previous generation, which ends sooner than the
            // lock duration: count the lock in this one, so it lasts through the next.
            let top = u16::try_from(threshold).unwrap_or(u16::MAX);
            for i in indices {
                cells[i].fetch_max(top, Ordering::Relaxed);
            }
            this = threshold;
        }
        let locked_for =
            crossed.then(
                || match verdict(this, before, threshold, current, length, now) {
                    LockStatus::Locked { retry_after } => retry_after,
                    LockStatus::Open => Duration::ZERO,
                },
            );
        FailureOutcome {
            failures,
            locked_for,
            lockouts: u32::from(locked_for.is_some()),
            counted_as: Some(prefix),
        }
    }
}

/// The verdict on a prefix with `this` failures counted in generation `current` and `before` in
/// the one before it (generations of `length` ms).
fn verdict(
    this: u32,
    before: u32,
    threshold: u32,
    current: u64,
    length: u64,
    now: u64,
) -> LockStatus {
    if this.saturating_add(before) < threshold {
        return LockStatus::Open;
    }
    let end = (current + 1).saturating_mul(length);
    // Counted in this generation: refused through the next one too.
    let until = if this >= threshold {
        end.saturating_add(length)
    } else {
        end
    };
    LockStatus::Locked {
        retry_after: Duration::from_millis(until.saturating_sub(now).max(1)),
    }
}

impl LockoutStore for MemoryLockoutStore {
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

    fn check_now_and_record(
        &self,
        key: IpKey,
        now: impl FnOnce() -> Duration,
    ) -> Option<Result<(LockStatus, bool), Infallible>> {
        Some(Ok(self.status_and_record(&key, now)))
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
        if let Some(e) = lock(self.shard(&key)).map.get_mut(&key)
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
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::num::NonZeroU32;

    fn key(n: u32) -> IpKey {
        IpKey::new(IpAddr::V4(Ipv4Addr::from(n)), 64)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(1_700_000_000 + s)
    }

    /// Sequential addresses spread evenly over the shards whatever the seed: with half the
    /// capacity used, no shard may fill (which would send the others to prefix counting).
    #[test]
    fn sequential_addresses_never_fill_a_shard_early() {
        for _ in 0..300 {
            let store = MemoryLockoutStore::new(20_000);
            let mut loads = vec![0usize; store.shards.len()];
            for i in 0..10_000 {
                let k = key(i);
                let at = store
                    .shards
                    .iter()
                    .position(|s| std::ptr::eq(s, store.shard(&k)))
                    .unwrap();
                loads[at] += 1;
            }
            let max = *loads.iter().max().unwrap();
            assert!(max < 312, "a shard got {max} of 10 000 (capacity 312 each)");
        }
    }

    #[test]
    fn locks_on_the_fifth_failure_within_the_window() {
        let store = MemoryLockoutStore::new(10);
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
        let store = MemoryLockoutStore::new(10);
        let p = LockoutPolicy::new();
        for i in 0..4 {
            store.failure(key(1), secs(i), &p);
        }
        let o = store.failure(key(1), secs(900), &p);
        assert_eq!((o.failures, o.locked_for), (1, None));
    }

    #[test]
    fn escalation_lengthens_repeat_lockouts() {
        let store = MemoryLockoutStore::new(10);
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
    fn only_an_address_with_failures_on_record_asks_for_a_reset() {
        let store = MemoryLockoutStore::new(10);
        let p = LockoutPolicy::new();
        // Never seen: open, nothing a success could reset, and no clock read.
        assert_eq!(
            store.check_now_and_record(key(9), || panic!("the clock was read")),
            Some(Ok((LockStatus::Open, false)))
        );
        assert_eq!(
            store.check_now_and_record(key(1), || secs(0)),
            Some(Ok((LockStatus::Open, false)))
        );
        store.failure(key(1), secs(1), &p);
        assert_eq!(
            store.check_now_and_record(key(1), || secs(2)),
            Some(Ok((LockStatus::Open, true)))
        );
        // Reset: the entry stays, with no failure left to reset.
        drop(store.reset(key(1), secs(3)));
        assert_eq!(
            store.check_now_and_record(key(1), || secs(4)),
            Some(Ok((LockStatus::Open, false)))
        );
        // Locked: refused, whatever the flag.
        for i in 0..5 {
            store.failure(key(2), secs(10 + i), &p);
        }
        assert!(matches!(
            store.check_now_and_record(key(2), || secs(20)),
            Some(Ok((LockStatus::Locked { .. }, _)))
        ));
    }

    #[test]
    fn reset_clears_failures_but_not_a_lock() {
        let store = MemoryLockoutStore::new(10);
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
        let store = MemoryLockoutStore::new(10);
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
        let store = MemoryLockoutStore::new(100);
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
        let store = MemoryLockoutStore::new(100);
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
    fn store_full_of_locks_counts_newcomers_by_prefix() {
        let store = MemoryLockoutStore::new(3);
        let p = LockoutPolicy::new();
        for n in 0..3 {
            for i in 0..5 {
                store.failure(key(n), secs(i), &p);
            }
        }
        assert!(!store.is_counting_prefixes(secs(5)));
        // A newcomer with no room: its failures count against its /24, which locks at 5.
        let newcomer = key(9);
        for i in 1..=4 {
            let o = store.failure(newcomer, secs(10), &p);
            assert_eq!(
                (o.failures, o.locked_for, o.counted_as),
                (i, None, Some(newcomer.wider()))
            );
            assert_eq!(store.status(&newcomer, secs(10)), LockStatus::Open);
        }
        let o = store.failure(newcomer, secs(10), &p);
        assert_eq!(o.failures, 5);
        assert!(o.locked_for.is_some_and(|d| d >= Duration::from_secs(900)));
        assert!(store.is_counting_prefixes(secs(10)));
        assert_eq!(store.len(), 3);
        // The whole /24 is refused; another /24 is not.
        assert!(matches!(
            store.status(&key(200), secs(11)),
            LockStatus::Locked { .. }
        ));
        assert_eq!(store.status(&key(300), secs(11)), LockStatus::Open);
    }

    #[test]
    fn a_prefix_lock_lasts_at_least_the_lock_duration_and_then_ends() {
        let store = MemoryLockoutStore::new(1);
        let p = LockoutPolicy::new().max_failures(NonZeroU32::new(1).unwrap());
        store.failure(key(0), secs(0), &p);
        let o = store.failure(key(1000), secs(1), &p);
        let locked_for = o.locked_for.expect("the prefix is locked");
        assert!(locked_for >= Duration::from_secs(900) && locked_for <= Duration::from_secs(1800));
        let LockStatus::Locked { retry_after } = store.status(&key(1001), secs(1)) else {
            panic!("the prefix must be locked");
        };
        assert_eq!(retry_after, locked_for);
        let end = secs(1) + retry_after;
        assert!(matches!(
            store.status(&key(1001), end - Duration::from_millis(1)),
            LockStatus::Locked { .. }
        ));
        assert_eq!(store.status(&key(1001), end), LockStatus::Open);
    }

    #[test]
    fn ipv6_newcomers_are_counted_by_their_48() {
        let v6 = |hi: u128| IpKey::new(IpAddr::V6(Ipv6Addr::from(hi << 64)), 64);
        let store = MemoryLockoutStore::new(2);
        let p = LockoutPolicy::new();
        for n in [1, 2] {
            for i in 0..5 {
                store.failure(v6(n << 40), secs(i), &p);
            }
        }
        // Five different /64s of one /48: each fails once, and the /48 is locked.
        let base = 0x2001_0db8_0001_u128 << 16;
        for i in 0..5 {
            let o = store.failure(v6(base + i), secs(10), &p);
            assert_eq!(o.locked_for.is_some(), i == 4, "{i}");
        }
        assert!(matches!(
            store.status(&v6(base + 77), secs(11)),
            LockStatus::Locked { .. }
        ));
        assert_eq!(
            store.status(&v6((base + (1 << 16)) + 1), secs(11)),
            LockStatus::Open
        );
    }

    #[test]
    fn finished_entries_are_reused_without_a_sweep() {
        let store = MemoryLockoutStore::new(4);
        let p = LockoutPolicy::new();
        for n in 0..4 {
            for i in 0..5 {
                store.failure(key(n), secs(i), &p);
            }
        }
        // After the locks end, newcomers take the finished slots instead of overflowing.
        let later = secs(5 + 900);
        for n in 10..14 {
            assert_eq!(store.failure(key(n), later, &p).counted_as, None, "{n}");
        }
        assert_eq!(store.len(), 4);
        assert!(!store.is_counting_prefixes(later));
    }

    #[test]
    fn rotating_through_more_addresses_than_slots_washes_nothing() {
        // 4 failures each (one short of a lock), from 100 addresses of one /24 in turn, against
        // a store of 10: the failures that find no slot count against the /24, which locks.
        let store = MemoryLockoutStore::new(10);
        let p = LockoutPolicy::new();
        let mut locked_at = None;
        'rounds: for round in 0..4 {
            for n in 0..100 {
                let o = store.failure(key(n), secs(round), &p);
                if o.locked_for.is_some() {
                    locked_at = Some((round, n));
                    break 'rounds;
                }
            }
        }
        assert!(locked_at.is_some(), "the rotation was never locked");
        assert_eq!(store.len(), 10);
        // Every address of the /24 without an entry of its own is now refused.
        assert!(matches!(
            store.status(&key(99), secs(5)),
            LockStatus::Locked { .. }
        ));
    }

    #[test]
    fn a_prefix_lock_split_across_generations_still_lasts_the_lock_duration() {
        let store = MemoryLockoutStore::new(1);
        let p = LockoutPolicy::new();
        store.failure(key(0), secs(0), &p);
        // The generation is 900 s long: 3 failures at its very end, 2 at the next one's start.
        let end_of_first = Duration::from_millis(((1_700_000_000_000 / 900_000) + 1) * 900_000);
        for i in 0..3 {
            assert!(
                store
                    .failure(key(1000 + i), end_of_first - Duration::from_millis(10), &p)
                    .locked_for
                    .is_none()
            );
        }
        store.failure(key(1003), end_of_first, &p);
        let o = store.failure(key(1004), end_of_first, &p);
        let locked_for = o.locked_for.expect("locked at the fifth");
        assert!(locked_for >= Duration::from_secs(900), "{locked_for:?}");
        assert!(matches!(
            store.status(&key(1005), end_of_first + Duration::from_secs(899)),
            LockStatus::Locked { .. }
        ));
    }
}
