//! Revoked subjects and tokens, held in memory and checked on every request without I/O.
//!
//! A [`RevocationList`] answers one question for the validator: is this verified token
//! revoked? Two kinds of entries:
//!
//! - a **subject** revoked as of a moment: every token of that `sub` whose `iat` is at or
//!   before that moment is refused ([`revoke_subject`](RevocationList::revoke_subject)), so
//!   that tokens issued afterwards work;
//! - a single **token** by its `jti` ([`revoke_token`](RevocationList::revoke_token)).
//!
//! A revoked token is refused with [`TOKEN_REVOKED`](crate::ErrorCode::TokenRevoked) (HTTP 401
//! `invalid_token`, gRPC `UNAUTHENTICATED`, WebSocket close 4002), which is not a failed
//! attempt for the lockout: the token was genuine.
//!
//! Entries expire by themselves once no token they cover can still be accepted. That needs a
//! bound on how long a token lives: the list is built with the longest token lifetime `L` it
//! must cover, and a validator given the list must enforce a [`max_lifetime`] no longer than
//! that, and `exp` must be required (a token without one has no bound at all). A token without
//! `iat` is taken as issued at the earliest moment its `exp` allows, `exp - L - leeway` (the
//! validator accepts `exp` up to `now + L + leeway`): it is revoked when it could have been
//! issued at or before `at`, which errs towards refusing (such a token issued after the
//! revocation is refused too, until `exp - L - leeway` passes `at`; give tokens an `iat`).
//! Every token a subject revocation at `at` covers has `exp <= at + L + leeway` and is accepted
//! until `exp + leeway` at most, so the entry is kept until `at + L + 2 × leeway`; a revoked
//! `jti` is kept until its `exp + leeway`, or `now + L + 2 × leeway` when its `exp` is not
//! given.
//!
//! The list is bounded ([`DEFAULT_CAPACITY`] entries). Revocations are an administrator's
//! action, not a client's, so a full list is an error the administrator sees
//! ([`RevocationError::Full`], with a `WARN` event), never an eviction: evicting a revocation
//! would silently un-revoke tokens. Expired entries are purged when the list is full. A check
//! costs one hash lookup per kind of entry held (none while the list is empty).
//!
//! [`on_revoke`](RevocationList::on_revoke) hooks run on every revocation (to close the
//! subject's live WebSocket sessions with
//! [`SessionRegistry::revoke_user`](crate::ws::SessionRegistry::revoke_user), for instance).
//!
//! [`max_lifetime`]: crate::validate::ValidatorBuilder::max_lifetime
//!
//! ```
//! use std::time::Duration;
//! use tower_jwt_guard::revocation::RevocationList;
//!
//! let revocations = RevocationList::builder(Duration::from_secs(3600)).build();
//! let at = revocations.revoke_subject("bob").unwrap();
//! assert_eq!(revocations.subject_revoked_at("bob"), Some(at));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use foldhash::fast::RandomState;

use crate::clock::{Clock, SystemClock};
use crate::context::AuthContext;
use crate::error::ConfigError;

/// The default bound on the number of entries (subjects and tokens together).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// The default leeway of a list: the validator's default (`validate::DEFAULT_LEEWAY`, 10 s;
/// the validate module's tests keep the two equal).
pub const DEFAULT_LIST_LEEWAY: Duration = Duration::from_secs(10);

/// A revocation that was just recorded, as [`on_revoke`](RevocationList::on_revoke) hooks see
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revoked {
    /// Every token of `subject` issued at or before `at` (seconds since the epoch).
    Subject {
        /// The `sub`.
        subject: Arc<str>,
        /// Tokens whose `iat` is at or before this are refused.
        at: u64,
    },
    /// The token whose `jti` is `jti`.
    Token {
        /// The `jti`.
        jti: Arc<str>,
    },
}

/// Why a revocation was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationError {
    /// The list holds its capacity of live entries.
    Full,
    /// An empty subject or `jti`.
    Empty,
}

impl fmt::Display for RevocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full => "the revocation list is full",
            Self::Empty => "an empty subject or token id cannot be revoked",
        })
    }
}

impl std::error::Error for RevocationError {}

type Hook = Arc<dyn Fn(&Revoked) + Send + Sync>;

struct Inner {
    /// Subject → the moment it was revoked as of.
    subjects: RwLock<HashMap<Arc<str>, u64, RandomState>>,
    /// `jti` → the moment its entry expires.
    tokens: RwLock<HashMap<Arc<str>, u64, RandomState>>,
    /// Entries of both maps, read without a lock on the hot path.
    len: AtomicUsize,
    /// The earliest moment an entry expires (seconds; `u64::MAX`: none): a full list is not
    /// scanned again before then, so refused revocations cannot stall the requests' reads.
    next_expiry: AtomicU64,
    capacity: usize,
    /// The longest token lifetime covered, seconds.
    lifetime: u64,
    /// Seconds.
    leeway: u64,
    clock: Arc<dyn Clock>,
    hooks: RwLock<Vec<Hook>>,
}

/// Revoked subjects and tokens, in memory; cheap to clone (clones share the list). See the
/// [module docs](self).
#[derive(Clone)]
pub struct RevocationList {
    inner: Arc<Inner>,
}

impl fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationList")
            .field("len", &self.len())
            .field("capacity", &self.inner.capacity)
            .field("max_token_lifetime_secs", &self.inner.lifetime)
            .field("leeway_secs", &self.inner.leeway)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RevocationList`].
#[derive(Debug)]
pub struct RevocationListBuilder {
    lifetime: Duration,
    leeway: Duration,
    capacity: usize,
    clock: Option<Arc<dyn Clock>>,
}

impl RevocationList {
    /// A list covering tokens that live at most `max_token_lifetime` (the validator's
    /// [`max_lifetime`](crate::validate::ValidatorBuilder::max_lifetime) must not be longer).
    pub fn builder(max_token_lifetime: Duration) -> RevocationListBuilder {
        RevocationListBuilder {
            lifetime: max_token_lifetime,
            leeway: DEFAULT_LIST_LEEWAY,
            capacity: DEFAULT_CAPACITY,
            clock: None,
        }
    }

    /// Revokes every token of `subject` issued at or before now; returns now (seconds since
    /// the epoch).
    ///
    /// # Errors
    /// [`RevocationError::Full`] or [`RevocationError::Empty`].
    pub fn revoke_subject(&self, subject: &str) -> Result<u64, RevocationError> {
        let at = self.now();
        self.revoke_subject_at(subject, at).map(|()| at)
    }

    /// Revokes every token of `subject` issued at or before `at` (kept if an earlier
    /// revocation of the subject was later); for revocations made elsewhere (another instance).
    ///
    /// # Errors
    /// [`RevocationError::Full`] or [`RevocationError::Empty`].
    pub fn revoke_subject_at(&self, subject: &str, at: u64) -> Result<(), RevocationError> {
        if subject.is_empty() {
            return Err(RevocationError::Empty);
        }
        if self.subject_expired(at, self.now()) {
            // Covers no token any more (a stale entry reloaded from elsewhere): nothing to do.
            return Ok(());
        }
        let subject: Arc<str> = Arc::from(subject);
        let (at, changed) = self.record(&self.inner.subjects, Arc::clone(&subject), at)?;
        self.inner
            .next_expiry
            .fetch_min(self.subject_expiry(at), Ordering::AcqRel);
        // Hooks hear of a revocation once: applying one again (a reload after a reconnection)
        // must not close the sessions opened since with newer tokens.
        if changed {
            self.notify(&Revoked::Subject { subject, at });
        }
        Ok(())
    }

    /// Revokes the token whose `jti` is `jti`. `expires_at` is its `exp` when known (the entry
    /// is kept until then plus the leeway); `None` keeps it for the longest token lifetime.
    ///
    /// # Errors
    /// [`RevocationError::Full`] or [`RevocationError::Empty`].
    pub fn revoke_token(&self, jti: &str, expires_at: Option<u64>) -> Result<(), RevocationError> {
        self.revoke_token_until(jti, self.token_entry_until(expires_at))
    }

    /// Until when the entry of a token whose `exp` is `expires_at` is kept.
    pub(crate) fn token_entry_until(&self, expires_at: Option<u64>) -> u64 {
        let inner = &self.inner;
        // No token accepted with the list can live longer than this (the validator enforces
        // the lifetime), so no entry needs to.
        let longest = self
            .now()
            .saturating_add(inner.lifetime)
            .saturating_add(inner.leeway.saturating_mul(2));
        expires_at.map_or(longest, |exp| exp.saturating_add(inner.leeway).min(longest))
    }

    /// Until when the token whose `jti` is `jti` is revoked, if it is.
    #[cfg(feature = "redis")]
    pub(crate) fn token_revoked_until(&self, jti: &str) -> Option<u64> {
        let now = self.now();
        self.read(&self.inner.tokens)
            .get(jti)
            .copied()
            .filter(|until| *until > now)
    }

    /// Revokes the token whose `jti` is `jti` until `until` (for revocations made elsewhere,
    /// which carry their entry's end).
    pub(crate) fn revoke_token_until(&self, jti: &str, until: u64) -> Result<(), RevocationError> {
        if jti.is_empty() {
            return Err(RevocationError::Empty);
        }
        if until <= self.now() {
            return Ok(());
        }
        let inner = &self.inner;
        let jti: Arc<str> = Arc::from(jti);
        let (_, changed) = self.record(&inner.tokens, Arc::clone(&jti), until)?;
        inner.next_expiry.fetch_min(until, Ordering::AcqRel);
        if changed {
            self.notify(&Revoked::Token { jti });
        }
        Ok(())
    }

    /// Whether a subject entry made at `at` covers no token any more.
    #[cfg(feature = "redis")]
    pub(crate) fn subject_entry_expired(&self, at: u64) -> bool {
        self.subject_expired(at, self.now())
    }

    /// Whether the token described by `context` is revoked: its subject was revoked at or after
    /// its `iat` (without `iat`, `exp` minus the longest lifetime; without either, it counts
    /// as issued before), or its `jti` was revoked. Entries past their expiry revoke nothing.
    pub fn is_revoked(&self, context: &AuthContext) -> bool {
        let inner = &self.inner;
        if inner.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let now = self.now();
        if let Some(subject) = context.subject() {
            let at = self.read(&inner.subjects).get(subject).copied();
            if let Some(at) = at
                && !self.subject_expired(at, now)
                && self.issued_by(context).is_none_or(|issued| issued <= at)
            {
                return true;
            }
        }
        if let Some(jti) = context.token_id() {
            let until = self.read(&inner.tokens).get(jti).copied();
            if until.is_some_and(|until| now < until) {
                return true;
            }
        }
        false
    }

    /// The moment `subject` was revoked as of, if it is (and its entry has not expired).
    pub fn subject_revoked_at(&self, subject: &str) -> Option<u64> {
        let now = self.now();
        self.read(&self.inner.subjects)
            .get(subject)
            .copied()
            .filter(|at| !self.subject_expired(*at, now))
    }

    /// Runs `hook` on every revocation recorded from now on (by this handle or a clone, local
    /// or applied from elsewhere) that changes the list: one that is already there, as of the
    /// same or a later moment, is not heard of again. Hooks run on the revoking thread: keep
    /// them short.
    pub fn on_revoke(&self, hook: impl Fn(&Revoked) + Send + Sync + 'static) {
        self.write(&self.inner.hooks).push(Arc::new(hook));
    }

    /// Entries held (expired ones included until they are purged).
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Acquire)
    }

    /// Whether the list holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The longest token lifetime the list covers.
    pub fn max_token_lifetime(&self) -> Duration {
        Duration::from_secs(self.inner.lifetime)
    }

    /// The leeway the list adds to its entries' lifetimes.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.inner.leeway)
    }

    /// Seconds since the epoch, by the list's clock.
    pub fn now(&self) -> u64 {
        self.inner.clock.now().as_secs()
    }

    /// When the token was issued, or at the earliest could have been.
    fn issued_by(&self, context: &AuthContext) -> Option<u64> {
        context.issued_at().or_else(|| {
            context.expires_at().map(|exp| {
                exp.saturating_sub(self.inner.lifetime)
                    .saturating_sub(self.inner.leeway)
            })
        })
    }

    fn subject_expired(&self, at: u64, now: u64) -> bool {
        now >= self.subject_expiry(at)
    }

    /// When a subject entry made at `at` expires.
    fn subject_expiry(&self, at: u64) -> u64 {
        at.saturating_add(self.inner.lifetime)
            .saturating_add(self.inner.leeway.saturating_mul(2))
    }

    /// Records `key` → `value` in `map`, keeping the later value when `key` is there already;
    /// returns the value kept, and whether it changed.
    fn record(
        &self,
        map: &RwLock<HashMap<Arc<str>, u64, RandomState>>,
        key: Arc<str>,
        value: u64,
    ) -> Result<(u64, bool), RevocationError> {
        if let Some(existing) = self.write(map).get_mut(&key) {
            let changed = value > *existing;
            *existing = (*existing).max(value);
            return Ok((*existing, changed));
        }
        self.make_room()?;
        let inner = &self.inner;
        let mut map = self.write(map);
        let mut changed = true;
        let kept = map
            .entry(key)
            .and_modify(|v| {
                changed = value > *v;
                *v = (*v).max(value);
            })
            .or_insert_with(|| {
                inner.len.fetch_add(1, Ordering::AcqRel);
                value
            });
        Ok((*kept, changed))
    }

    /// Makes room for one entry: purges expired entries when the list is full, and refuses
    /// when that frees nothing. (Concurrent revocations may overshoot the capacity by one
    /// each.)
    fn make_room(&self) -> Result<(), RevocationError> {
        let inner = &self.inner;
        if inner.len.load(Ordering::Acquire) < inner.capacity {
            return Ok(());
        }
        let now = self.now();
        if now < inner.next_expiry.load(Ordering::Acquire) {
            // Nothing can have expired since the last scan.
            return Err(self.full());
        }
        let mut freed = 0;
        let mut next = u64::MAX;
        {
            let mut subjects = self.write(&inner.subjects);
            let before = subjects.len();
            subjects.retain(|_, at| !self.subject_expired(*at, now));
            freed += before - subjects.len();
            next = subjects
                .values()
                .map(|at| self.subject_expiry(*at))
                .fold(next, u64::min);
        }
        {
            let mut tokens = self.write(&inner.tokens);
            let before = tokens.len();
            tokens.retain(|_, until| now < *until);
            freed += before - tokens.len();
            next = tokens.values().copied().fold(next, u64::min);
        }
        inner.next_expiry.store(next, Ordering::Release);
        inner.len.fetch_sub(freed, Ordering::AcqRel);
        if freed > 0 {
            return Ok(());
        }
        Err(self.full())
    }

    fn full(&self) -> RevocationError {
        tracing::warn!(
            target: "tower_jwt_guard::audit",
            capacity = self.inner.capacity,
            "the revocation list is full: a revocation was refused"
        );
        RevocationError::Full
    }

    fn notify(&self, revoked: &Revoked) {
        let hooks: Vec<Hook> = self.read(&self.inner.hooks).clone();
        for hook in hooks {
            hook(revoked);
        }
    }

    fn read<'a, T>(&self, lock: &'a RwLock<T>) -> std::sync::RwLockReadGuard<'a, T> {
        lock.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write<'a, T>(&self, lock: &'a RwLock<T>) -> std::sync::RwLockWriteGuard<'a, T> {
        lock.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RevocationListBuilder {
    /// The leeway added to every entry's lifetime (default 10 s); at least the validator's.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The bound on entries (default [`DEFAULT_CAPACITY`]).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The clock that dates revocations and expires entries (default the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(clock.into_shared());
        self
    }

    /// Builds the list.
    pub fn build(self) -> RevocationList {
        RevocationList {
            inner: Arc::new(Inner {
                subjects: RwLock::new(HashMap::default()),
                tokens: RwLock::new(HashMap::default()),
                len: AtomicUsize::new(0),
                next_expiry: AtomicU64::new(u64::MAX),
                capacity: self.capacity.max(1),
                lifetime: self.lifetime.as_secs(),
                leeway: self.leeway.as_secs(),
                clock: self.clock.unwrap_or_else(|| SystemClock.into_shared()),
                hooks: RwLock::new(Vec::new()),
            }),
        }
    }
}

/// Checks that `list` covers every token a validator with `max_lifetime` and `leeway` accepts.
pub(crate) fn check_coverage(
    list: &RevocationList,
    max_lifetime: Option<Duration>,
    leeway: Duration,
    require_exp: bool,
) -> Result<(), ConfigError> {
    if !require_exp {
        return Err(ConfigError::new(
            "a validator with a revocation list must require exp: a token without one is never \
             bounded, so no revocation of it could expire",
        ));
    }
    let Some(max) = max_lifetime else {
        return Err(ConfigError::new(
            "a validator with a revocation list needs max_lifetime: without a bound on token \
             lifetimes, revocations could never expire",
        ));
    };
    if max > list.max_token_lifetime() || leeway > list.leeway() {
        return Err(ConfigError::new(format!(
            "the revocation list covers tokens living {}s with {}s of leeway; the validator \
             accepts {}s with {}s",
            list.max_token_lifetime().as_secs(),
            list.leeway().as_secs(),
            max.as_secs(),
            leeway.as_secs()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;

    const NOW: u64 = 1_700_000_000;

    fn list(clock: &FakeClock, capacity: usize) -> RevocationList {
        RevocationList::builder(Duration::from_secs(3600))
            .capacity(capacity)
            .clock(clock.clone())
            .build()
    }

    fn token(sub: &str, iat: Option<u64>, jti: Option<&str>) -> AuthContext {
        AuthContext {
            subject: Some(Arc::from(sub)),
            token_id: jti.map(str::to_owned),
            issued_at: iat,
            expires_at: Some(NOW + 600),
            not_before: None,
            key_id: None,
            source: None,
        }
    }

    #[test]
    fn a_subject_is_revoked_as_of_a_moment() {
        let clock = FakeClock::at_unix_secs(NOW);
        let l = list(&clock, 10);
        assert!(!l.is_revoked(&token("bob", Some(NOW), None)));
        assert_eq!(l.revoke_subject("bob"), Ok(NOW));
        assert!(l.is_revoked(&token("bob", Some(NOW - 100), None)));
        assert!(l.is_revoked(&token("bob", Some(NOW), None)), "at or before");
        assert!(
            l.is_revoked(&token("bob", None, None)),
            "no iat: could be issued before"
        );
        let mut late = token("bob", None, None);
        late.expires_at = Some(NOW + 3611);
        assert!(!l.is_revoked(&late), "no iat, but exp says issued after");
        late.expires_at = None;
        assert!(l.is_revoked(&late), "neither iat nor exp");
        assert!(
            !l.is_revoked(&token("bob", Some(NOW + 1), None)),
            "issued after"
        );
        assert!(!l.is_revoked(&token("alice", Some(NOW), None)));
        // An earlier moment never moves a revocation back.
        l.revoke_subject_at("bob", NOW - 50).unwrap();
        assert_eq!(l.subject_revoked_at("bob"), Some(NOW));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn entries_expire_once_no_token_they_cover_can_be_valid() {
        let clock = FakeClock::at_unix_secs(NOW);
        let l = list(&clock, 10);
        l.revoke_subject("bob").unwrap();
        l.revoke_token("j1", Some(NOW + 60)).unwrap();
        let old = token("bob", Some(NOW - 1), Some("j1"));
        clock.advance(Duration::from_secs(3600 + 20 - 1));
        assert!(l.is_revoked(&old));
        assert!(
            !l.is_revoked(&token("carol", None, Some("j1"))),
            "j1 ended at exp + leeway"
        );
        clock.advance(Duration::from_secs(1));
        assert!(!l.is_revoked(&old));
        assert_eq!(l.subject_revoked_at("bob"), None);
    }

    #[test]
    fn a_full_list_refuses_rather_than_evicts_and_purges_expired_entries() {
        let clock = FakeClock::at_unix_secs(NOW);
        let l = list(&clock, 2);
        l.revoke_subject("a").unwrap();
        l.revoke_token("j", Some(NOW + 5)).unwrap();
        assert_eq!(l.revoke_subject("b"), Err(RevocationError::Full));
        assert!(
            l.is_revoked(&token("a", Some(NOW), None)),
            "nothing was evicted"
        );
        // Once the token's entry has expired, there is room again.
        clock.advance(Duration::from_secs(16));
        assert_eq!(l.revoke_subject("b"), Ok(NOW + 16));
        assert_eq!(l.len(), 2);
        assert_eq!(l.revoke_subject(""), Err(RevocationError::Empty));
    }

    #[test]
    fn hooks_see_every_revocation() {
        let clock = FakeClock::at_unix_secs(NOW);
        let l = list(&clock, 10);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        l.clone()
            .on_revoke(move |r| sink.lock().unwrap().push(r.clone()));
        l.revoke_subject("bob").unwrap();
        l.revoke_token("j", None).unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [
                Revoked::Subject {
                    subject: Arc::from("bob"),
                    at: NOW
                },
                Revoked::Token {
                    jti: Arc::from("j")
                }
            ]
        );
    }

    #[test]
    fn coverage_needs_a_bounded_lifetime_within_the_lists() {
        let clock = FakeClock::at_unix_secs(NOW);
        let l = list(&clock, 10);
        let ten = Duration::from_secs(10);
        assert!(check_coverage(&l, None, ten, true).is_err());
        assert!(check_coverage(&l, Some(Duration::from_secs(3600)), ten, false).is_err());
        assert!(check_coverage(&l, Some(Duration::from_secs(7200)), ten, true).is_err());
        assert!(
            check_coverage(
                &l,
                Some(Duration::from_secs(3600)),
                Duration::from_secs(11),
                true
            )
            .is_err()
        );
        assert!(check_coverage(&l, Some(Duration::from_secs(3600)), ten, true).is_ok());
    }
}
