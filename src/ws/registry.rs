//! Live sessions: connection limits, statistics, messages to a user, revocation.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dashmap::DashMap;
use tokio::sync::Notify;

use crate::error::{AuthError, ConfigError, ErrorCode};

/// How many notifications may wait for one session; more are not delivered to it (a session
/// that cannot keep up is closed by its send timeout anyway).
pub(crate) const MAILBOX_CAPACITY: usize = 32;

/// What the registry tells one live session: texts to send and a close, with a wake-up. Bounded,
/// so that notifications to a client that does not read never pile up.
#[derive(Default)]
pub(crate) struct Mailbox {
    texts: Mutex<VecDeque<Arc<str>>>,
    close: Mutex<Option<(u16, &'static str)>>,
    /// Woken when a text is posted.
    pub(crate) wake: Notify,
    /// Woken when a close is asked for.
    pub(crate) closing: Notify,
}

impl Mailbox {
    fn post(&self, text: &Arc<str>) -> bool {
        let mut texts = self.texts.lock().unwrap_or_else(PoisonError::into_inner);
        if texts.len() >= MAILBOX_CAPACITY {
            return false;
        }
        texts.push_back(Arc::clone(text));
        drop(texts);
        self.wake.notify_one();
        true
    }

    fn close(&self, code: u16, reason: &'static str) {
        *self.close.lock().unwrap_or_else(PoisonError::into_inner) = Some((code, reason));
        self.closing.notify_one();
    }

    /// The close asked for, if any.
    pub(crate) fn take_close(&self) -> Option<(u16, &'static str)> {
        self.close
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The next text to send, if any.
    pub(crate) fn next_text(&self) -> Option<Arc<str>> {
        self.texts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }
}

/// How many connections are allowed: per user (by plan) and in total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionLimits {
    per_user: Option<usize>,
    per_plan: Vec<(Box<str>, usize)>,
    global: Option<usize>,
}

impl ConnectionLimits {
    /// No limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `n` connections per user (the default for every plan).
    pub fn per_user(mut self, n: usize) -> Self {
        self.per_user = Some(n);
        self
    }

    /// At most `n` connections per user on `plan`.
    ///
    /// # Errors
    /// When `plan` already has a limit.
    pub fn per_user_on_plan(
        mut self,
        plan: impl Into<Box<str>>,
        n: usize,
    ) -> Result<Self, ConfigError> {
        let plan = plan.into();
        if self.per_plan.iter().any(|(p, _)| *p == plan) {
            return Err(ConfigError::new(format!(
                "plan {plan:?} has two connection limits"
            )));
        }
        self.per_plan.push((plan, n));
        Ok(self)
    }

    /// At most `n` connections in total.
    pub fn global(mut self, n: usize) -> Self {
        self.global = Some(n);
        self
    }

    fn for_plan(&self, plan: Option<&str>) -> Option<usize> {
        plan.and_then(|p| self.per_plan.iter().find(|(name, _)| &**name == p))
            .map(|(_, n)| *n)
            .or(self.per_user)
    }
}

#[derive(Default)]
struct UserSessions {
    /// Reserved or live connections.
    count: usize,
    /// The live ones' mailboxes, by session id.
    live: Vec<(u64, Arc<Mailbox>)>,
    /// Bumped by each revocation, so that a session reserved before it (still in its
    /// handshake) is closed as soon as it goes live.
    epoch: u64,
}

struct Inner {
    users: DashMap<Arc<str>, UserSessions>,
    total: AtomicUsize,
    next_id: AtomicU64,
    limits: ConnectionLimits,
}

/// The registry of live WebSocket sessions. Cheap to clone; clones share the registry.
#[derive(Clone)]
pub struct SessionRegistry {
    inner: Arc<Inner>,
}

impl fmt::Debug for SessionRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRegistry")
            .field("connections", &self.connections())
            .field("users", &self.users())
            .field("limits", &self.inner.limits)
            .finish()
    }
}

impl Default for SessionRegistry {
    fn default() -> Self {
        Self::new(ConnectionLimits::new())
    }
}

/// A snapshot of the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Connections (reserved at the upgrade or live).
    pub connections: usize,
    /// Distinct users with at least one connection.
    pub users: usize,
    /// Connections per user.
    pub per_user: HashMap<Arc<str>, usize>,
}

impl SessionRegistry {
    /// A registry enforcing `limits`.
    pub fn new(limits: ConnectionLimits) -> Self {
        Self {
            inner: Arc::new(Inner {
                users: DashMap::new(),
                total: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
                limits,
            }),
        }
    }

    /// Reserves a connection slot for `subject` before the upgrade; the slot is freed when the
    /// returned reservation (or the session it becomes) is dropped.
    ///
    /// # Errors
    /// `RATE_LIMITED` when the user's or the global limit is reached.
    pub(crate) fn reserve(
        &self,
        subject: Arc<str>,
        plan: Option<&str>,
    ) -> Result<Reservation, AuthError> {
        let inner = &self.inner;
        if let Some(global) = inner.limits.global {
            let claimed = inner
                .total
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < global).then_some(n + 1)
                });
            if claimed.is_err() {
                return Err(too_many("the server has too many WebSocket connections"));
            }
        } else {
            inner.total.fetch_add(1, Ordering::AcqRel);
        }
        let limit = inner.limits.for_plan(plan);
        let mut entry = inner.users.entry(Arc::clone(&subject)).or_default();
        if limit.is_some_and(|l| entry.count >= l) {
            drop(entry);
            inner.total.fetch_sub(1, Ordering::AcqRel);
            self.forget_if_empty(&subject);
            return Err(too_many("too many WebSocket connections for this user"));
        }
        entry.count += 1;
        let epoch = entry.epoch;
        drop(entry);
        Ok(Reservation {
            registry: self.clone(),
            subject,
            id: inner.next_id.fetch_add(1, Ordering::Relaxed),
            live: false,
            epoch,
        })
    }

    /// Sends `text` to every live session of `subject`; returns how many were reached. A
    /// session with 32 texts already waiting (its client is not reading) is not reached.
    pub fn send_to_user(&self, subject: &str, text: &str) -> usize {
        let text: Arc<str> = Arc::from(text);
        self.inner.users.get(subject).map_or(0, |u| {
            u.live
                .iter()
                .filter(|(_, mailbox)| mailbox.post(&text))
                .count()
        })
    }

    /// Sends `{"type":"notification","message":<message>}` to every live session of
    /// `subject`; returns how many were reached (as [`send_to_user`](Self::send_to_user)).
    pub fn notify_user(&self, subject: &str, message: &str) -> usize {
        let text = super::wire::Outbound::Notification { message }.to_text();
        self.send_to_user(subject, &text)
    }

    /// Closes every live session of `subject` at once with code 4002 ("credentials revoked"),
    /// and every session of theirs still in its handshake as soon as it goes live; returns how
    /// many live sessions were told.
    pub fn revoke_user(&self, subject: &str) -> usize {
        self.inner.users.get_mut(subject).map_or(0, |mut u| {
            u.epoch = u.epoch.wrapping_add(1);
            for (_, mailbox) in &u.live {
                mailbox.close(super::close::CLOSE_INVALID_TOKEN, "credentials revoked");
            }
            u.live.len()
        })
    }

    /// Connections now (reserved or live).
    pub fn connections(&self) -> usize {
        self.inner.total.load(Ordering::Acquire)
    }

    /// Distinct users now.
    pub fn users(&self) -> usize {
        self.inner.users.len()
    }

    /// Connections of `subject` now.
    pub fn connections_of(&self, subject: &str) -> usize {
        self.inner.users.get(subject).map_or(0, |u| u.count)
    }

    /// A snapshot of every counter.
    pub fn stats(&self) -> SessionStats {
        let per_user: HashMap<Arc<str>, usize> = self
            .inner
            .users
            .iter()
            .map(|e| (Arc::clone(e.key()), e.count))
            .collect();
        SessionStats {
            connections: self.connections(),
            users: per_user.len(),
            per_user,
        }
    }

    fn forget_if_empty(&self, subject: &Arc<str>) {
        self.inner.users.remove_if(subject, |_, u| u.count == 0);
    }

    fn release(&self, subject: &Arc<str>, id: u64, live: bool) {
        if let Some(mut u) = self.inner.users.get_mut(subject) {
            u.count = u.count.saturating_sub(1);
            if live {
                u.live.retain(|(sid, _)| *sid != id);
            }
        }
        self.forget_if_empty(subject);
        self.inner.total.fetch_sub(1, Ordering::AcqRel);
    }

    fn go_live(&self, subject: &Arc<str>, id: u64, epoch: u64) -> Arc<Mailbox> {
        let mailbox = Arc::new(Mailbox::default());
        if let Some(mut u) = self.inner.users.get_mut(subject) {
            if u.epoch != epoch {
                // Revoked while in the handshake.
                mailbox.close(super::close::CLOSE_INVALID_TOKEN, "credentials revoked");
            }
            u.live.push((id, Arc::clone(&mailbox)));
        }
        mailbox
    }
}

fn too_many(message: &'static str) -> AuthError {
    AuthError::new(ErrorCode::RateLimited, message)
}

/// A connection slot held from the upgrade to the end of the session. Dropping it (the
/// session ends, the client vanishes, the upgrade never happens) frees the slot.
pub(crate) struct Reservation {
    registry: SessionRegistry,
    subject: Arc<str>,
    id: u64,
    live: bool,
    epoch: u64,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("subject", &self.subject)
            .field("id", &self.id)
            .field("live", &self.live)
            .finish()
    }
}

impl Reservation {
    /// The session id, unique in this registry.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Makes the session reachable by `send_to_user` and `revoke_user`.
    pub(crate) fn go_live(&mut self) -> Arc<Mailbox> {
        self.live = true;
        self.registry.go_live(&self.subject, self.id, self.epoch)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.registry.release(&self.subject, self.id, self.live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_plan_and_global_limits() {
        let registry = SessionRegistry::new(
            ConnectionLimits::new()
                .per_user(2)
                .per_user_on_plan("pro", 3)
                .unwrap()
                .global(5),
        );
        let a: Arc<str> = Arc::from("a");
        let r1 = registry.reserve(Arc::clone(&a), None).unwrap();
        let _r2 = registry.reserve(Arc::clone(&a), None).unwrap();
        let err = registry.reserve(Arc::clone(&a), None).unwrap_err();
        assert_eq!(err.code(), ErrorCode::RateLimited);
        let p: Arc<str> = Arc::from("p");
        let _p = (0..3)
            .map(|_| registry.reserve(Arc::clone(&p), Some("pro")).unwrap())
            .collect::<Vec<_>>();
        assert!(
            registry.reserve(Arc::from("c"), None).is_err(),
            "global limit of 5"
        );
        drop(r1);
        let _c = registry.reserve(Arc::from("c"), None).unwrap();
        assert_eq!(registry.connections(), 5);
    }

    #[test]
    fn dropping_everything_returns_to_zero() {
        let registry = SessionRegistry::default();
        let mut held = Vec::new();
        for n in 0..50 {
            let mut r = registry
                .reserve(Arc::from(format!("u{}", n % 7)), None)
                .unwrap();
            if n % 2 == 0 {
                let _mailbox = r.go_live();
            }
            held.push(r);
        }
        assert_eq!(registry.connections(), 50);
        assert_eq!(registry.users(), 7);
        drop(held);
        assert_eq!(registry.stats(), SessionStats::default());
    }

    #[test]
    fn revoke_and_send_reach_live_sessions_only() {
        let registry = SessionRegistry::default();
        let mut live = registry.reserve(Arc::from("a"), None).unwrap();
        let mailbox = live.go_live();
        let _reserved = registry.reserve(Arc::from("a"), None).unwrap();
        assert_eq!(registry.send_to_user("a", "hi"), 1);
        assert_eq!(mailbox.next_text().as_deref(), Some("hi"));
        assert_eq!(mailbox.next_text(), None);
        assert_eq!(registry.revoke_user("a"), 1);
        assert!(matches!(mailbox.take_close(), Some((4002, _))));
        assert_eq!(registry.revoke_user("nobody"), 0);
    }

    #[test]
    fn a_mailbox_holds_a_bounded_number_of_texts() {
        let registry = SessionRegistry::default();
        let mut live = registry.reserve(Arc::from("a"), None).unwrap();
        let mailbox = live.go_live();
        for _ in 0..MAILBOX_CAPACITY {
            assert_eq!(registry.send_to_user("a", "x"), 1);
        }
        assert_eq!(registry.send_to_user("a", "x"), 0, "full: not reached");
        assert!(mailbox.next_text().is_some());
        assert_eq!(registry.send_to_user("a", "x"), 1);
    }

    #[test]
    fn a_session_revoked_during_its_handshake_closes_when_it_goes_live() {
        let registry = SessionRegistry::default();
        let mut pending = registry.reserve(Arc::from("a"), None).unwrap();
        assert_eq!(registry.revoke_user("a"), 0, "nothing live yet");
        let mailbox = pending.go_live();
        assert!(matches!(mailbox.take_close(), Some((4002, _))));
        // A session reserved after the revocation is not affected.
        let mut fresh = registry.reserve(Arc::from("a"), None).unwrap();
        assert_eq!(fresh.go_live().take_close(), None);
    }
}
