//! [`UserSources`]: a token source for each user a client acts for, in a bounded cache.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::source::{TokenSource, TokenSourceBuilder};
use super::token::{IssuedToken, ProviderError, ProviderFuture, TokenProvider};

/// Gets a new token for one user (a token exchange, a login on the user's behalf, a signer).
/// Any `Fn(&str) -> impl Future<Output = Result<IssuedToken, ProviderError>>` is one (the
/// future owns what it needs: copy the user id into it).
pub trait UserTokenProvider: Send + Sync + 'static {
    /// A new token for `user`.
    fn fetch(&self, user: &str) -> ProviderFuture;
}

impl<F, Fut> UserTokenProvider for F
where
    F: Fn(&str) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<IssuedToken, ProviderError>> + Send + 'static,
{
    fn fetch(&self, user: &str) -> ProviderFuture {
        Box::pin(self(user))
    }
}

/// The user a request is sent for, as a request extension (the layer also reads a header of
/// one's choice, which it removes: [`TokenLayer::user_header`](super::TokenLayer::user_header)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForUser(pub Arc<str>);

impl ForUser {
    /// The user `id`.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }
}

/// The longest user id taken (256 bytes): the cache's keys stay small.
pub const MAX_USER_ID_LEN: usize = 256;

/// One user's provider: the shared provider, with the user's id.
struct OneUser {
    provider: Arc<dyn UserTokenProvider>,
    user: Arc<str>,
}

impl TokenProvider for OneUser {
    fn fetch(&self) -> ProviderFuture {
        self.provider.fetch(&self.user)
    }
}

type Configure = dyn Fn(TokenSourceBuilder) -> TokenSourceBuilder + Send + Sync;

/// The sources, in two generations: used ones move to `current`; when `current` is full or
/// the idle time has passed since the last turn, `previous` is dropped and `current` becomes
/// it.
struct Table {
    current: HashMap<Arc<str>, TokenSource>,
    previous: HashMap<Arc<str>, TokenSource>,
    rotated_at: Instant,
}

struct Inner {
    provider: Arc<dyn UserTokenProvider>,
    configure: Box<Configure>,
    /// Entries in each generation, at most.
    half: usize,
    idle: Duration,
    table: Mutex<Table>,
}

/// A [`TokenSource`] for each user, so that one client acts for many users without mixing
/// their tokens; cheap to clone.
///
/// Each user's source has its own provider calls, refreshes and backoff, with the settings
/// [`configure`](UserSourcesBuilder::configure) gives. The cache is bounded: at most
/// `max_users` sources (10 000 by default), each lookup a hash of the user id under a short
/// lock. Sources move between two generations: a source used recently stays; one unused for
/// the idle time (15 min by default) is dropped, with its token, within twice that time once
/// requests go on; when more
/// users arrive than the cache holds, the ones used least recently are dropped first. A dropped
/// user's next request fetches a new token: under a flood of users, the cost is more provider
/// calls, never more memory.
#[derive(Clone)]
pub struct UserSources {
    inner: Arc<Inner>,
}

impl fmt::Debug for UserSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSources")
            .field("users", &self.len())
            .finish_non_exhaustive()
    }
}

/// Builds [`UserSources`].
pub struct UserSourcesBuilder {
    provider: Arc<dyn UserTokenProvider>,
    configure: Box<Configure>,
    max_users: usize,
    idle: Duration,
}

impl fmt::Debug for UserSourcesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSourcesBuilder")
            .field("max_users", &self.max_users)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl UserSources {
    /// Sources calling `provider` with each user's id.
    pub fn builder(provider: impl UserTokenProvider) -> UserSourcesBuilder {
        UserSourcesBuilder {
            provider: Arc::new(provider),
            configure: Box::new(|builder| builder),
            max_users: 10_000,
            idle: Duration::from_secs(15 * 60),
        }
    }

    /// The source of `user`, made on first use.
    pub fn source(&self, user: &str) -> TokenSource {
        let inner = &*self.inner;
        let now = Instant::now();
        let mut table = inner.table.lock().unwrap_or_else(PoisonError::into_inner);
        let mut dropped = None;
        if table.current.len() >= inner.half
            || now.saturating_duration_since(table.rotated_at) >= inner.idle
        {
            let current = std::mem::take(&mut table.current);
            dropped = Some(std::mem::replace(&mut table.previous, current));
            table.rotated_at = now;
        }
        let source = if let Some(source) = table.current.get(user) {
            source.clone()
        } else if let Some((user, source)) = table.previous.remove_entry(user) {
            table.current.insert(user, source.clone());
            source
        } else {
            let user: Arc<str> = Arc::from(user);
            let provider = OneUser {
                provider: Arc::clone(&inner.provider),
                user: Arc::clone(&user),
            };
            let source = (inner.configure)(TokenSource::builder(provider)).build();
            table.current.insert(user, source.clone());
            source
        };
        drop(table);
        if let Some(dropped) = dropped.filter(|d| !d.is_empty()) {
            // Dropping a generation costs its size: off this request, when a runtime runs.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || drop(dropped))),
                Err(_) => drop(dropped),
            }
        }
        source
    }

    /// The number of users with a source.
    pub fn len(&self) -> usize {
        let table = self
            .inner
            .table
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        table.current.len() + table.previous.len()
    }

    /// Whether no user has a source.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl UserSourcesBuilder {
    /// The settings of each user's source, applied to its builder (by default those of
    /// [`TokenSource::builder`]).
    pub fn configure(
        mut self,
        configure: impl Fn(TokenSourceBuilder) -> TokenSourceBuilder + Send + Sync + 'static,
    ) -> Self {
        self.configure = Box::new(configure);
        self
    }

    /// The most users kept (default 10 000, at least 2; rounded up to an even number).
    pub fn max_users(mut self, max: usize) -> Self {
        self.max_users = max.max(2);
        self
    }

    /// How long an unused source is kept at least (default 15 minutes, at least 1 s): it is
    /// dropped between once and twice that time after its last use, once requests go on (or
    /// sooner when more users arrive than the cache holds).
    pub fn idle(mut self, idle: Duration) -> Self {
        self.idle = idle.max(Duration::from_secs(1));
        self
    }

    /// The sources.
    pub fn build(self) -> UserSources {
        let half = self.max_users.div_ceil(2);
        UserSources {
            inner: Arc::new(Inner {
                provider: self.provider,
                configure: self.configure,
                half,
                idle: self.idle,
                table: Mutex::new(Table {
                    current: HashMap::with_capacity(half.min(1024)),
                    previous: HashMap::new(),
                    rotated_at: Instant::now(),
                }),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn users(max: usize, idle: Duration, calls: &Arc<AtomicU64>) -> UserSources {
        let calls = Arc::clone(calls);
        UserSources::builder(move |user: &str| {
            calls.fetch_add(1, Ordering::SeqCst);
            let token = format!("token-of-{user}");
            async move { Ok(IssuedToken::new(token).expires_in(Duration::from_secs(3_600))) }
        })
        .max_users(max)
        .idle(idle)
        .build()
    }

    #[tokio::test(start_paused = true)]
    async fn each_user_has_their_own_token() {
        let calls = Arc::new(AtomicU64::new(0));
        let users = users(100, Duration::from_secs(600), &calls);
        for round in 0..3 {
            for user in ["alice", "bob", "carol"] {
                let token = users.source(user).token().await.unwrap();
                assert_eq!(token.as_str(), format!("token-of-{user}"), "round {round}");
            }
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(users.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_stays_bounded_and_keeps_users_in_use() {
        let calls = Arc::new(AtomicU64::new(0));
        let users = users(100, Duration::from_secs(600), &calls);
        for n in 0..10_000 {
            users.source(&format!("flood-{n}"));
            // alice is used throughout: she is never dropped.
            if n % 10 == 0 {
                users.source("alice").token().await.unwrap();
            }
            assert!(users.len() <= 100);
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "alice's token fetched once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_users_are_dropped() {
        let calls = Arc::new(AtomicU64::new(0));
        let users = users(100, Duration::from_secs(600), &calls);
        users.source("alice").token().await.unwrap();
        for _ in 0..4 {
            tokio::time::advance(Duration::from_secs(300)).await;
            users.source("bob");
        }
        assert_eq!(users.len(), 1, "alice, unused for 20 minutes, is gone");
        users.source("alice").token().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Used a little more often than the idle time, through three turns (and well within
        // the token's refresh time): never dropped.
        for _ in 0..3 {
            for _ in 0..5 {
                tokio::time::advance(Duration::from_secs(118)).await;
                users.source("bob");
            }
            users.source("alice").token().await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "alice's token kept");
        // An idle time of zero is taken as 1 s, not a turn on every request.
        let users = super::tests::users(100, Duration::ZERO, &calls);
        assert_eq!(users.inner.idle, Duration::from_secs(1));
    }
}
