//! A key set fetched from a JWKS URL, or found by OpenID Connect discovery from an issuer
//! ([`RemoteKeySet::discover`]: the document's `issuer` must match exactly), and kept fresh
//! (feature `remote-keys`): the core of remote keys, whatever carries the bytes. Give it to a
//! validator with [`ValidatorBuilder::remote_keys`](crate::validate::ValidatorBuilder::remote_keys)
//! or, next to other issuers, [`Issuer::remote_keys`](crate::validate::Issuer::remote_keys), and
//! start its refresher ([`RemoteKeySet::spawn_refresher`]).
//!
//! - **Readers never wait.** The keys are an immutable snapshot behind an `arc-swap`: reading
//!   them is an atomic load, and no lock is ever held across a fetch.
//! - **One fetch at a time.** Callers that ask for a refresh while one is under way wait for
//!   that one and share its outcome; none starts a second.
//! - **An unknown `kid` refetches at most once per cooldown** (30 s by default), however many
//!   tokens name unknown kids: a flood of random kids is not a flood of fetches. The fetch it
//!   asks for starts after it (one under way may predate the new key: the new one runs right
//!   after it, never beside it); every token that meets the unknown kid meanwhile waits for
//!   that same fetch. While the set has no keys at all, a token joins the fetch under way.
//! - **Stale-if-error.** A fetch that fails, times out, or brings a document with no usable
//!   key keeps the keys already known, counts a failure, and logs a `WARN` (once per run of
//!   failures); the background refresher then retries with a backoff (1 s doubling to 60 s).
//!   Keys older than the maximum staleness (24 h by default) are no longer used (an `ERROR`
//!   says so, at the first failed fetch past it): tokens that need them are refused until a
//!   fetch succeeds.
//! - **Through the layer**: a token naming a `kid` the set lacks (or any token while it has no
//!   keys) asks for a fetch as above; the authentication layer then waits for the fetch wanted
//!   (shared by every such request, bounded by twice the fetch timeout and a second) and
//!   validates the token once more. [`Validator::validate`](crate::validate::Validator::validate),
//!   which is synchronous, asks for the fetch and refuses at once. Tokens cached as verified
//!   are verified again once a key of the set is removed or replaced under its `kid`, or the
//!   keys go stale (a key the issuer removed stops verifying at the next refresh).
//! - **One bad key never discards the others**: documents are read by
//!   [`RemoteJwks::parse`](crate::jwks::RemoteJwks::parse).
//! - **Bring your own HTTP client**: a [`JwksFetcher`] is one method returning the body; the
//!   crate's own, `HttpFetcher` (feature `remote-keys-http`), is hyper-util's client over
//!   rustls: https only (plain http to loopback addresses), a 5 s bound on the whole exchange,
//!   a 1 MiB cap on the body, no redirects. To go through a proxy or reuse your `reqwest`
//!   client, implement the trait with it:
//!
//! ```ignore
//! struct Reqwest(reqwest::Client);
//! impl JwksFetcher for Reqwest {
//!     fn fetch(&self, url: &str) -> FetchFuture {
//!         let request = self.0.get(url).timeout(Duration::from_secs(5)).send();
//!         Box::pin(async move {
//!             let response = request.await.map_err(|_| FetchError("request failed"))?;
//!             if !response.status().is_success() { return Err(FetchError("not 200")); }
//!             // Bound the body too (e.g. check `content_length`, or read chunks up to a cap).
//!             response.bytes().await.map(|b| b.to_vec()).map_err(|_| FetchError("body"))
//!         })
//!     }
//! }
//! ```
//!
//! The keys' age, the cooldown and the refresher's sleeps run on tokio's monotonic clock (a
//! wall clock that jumps neither expires nor revives keys; tests drive it with paused time);
//! the set's [`Clock`] only dates the fetches it reports (`KeySnapshot::fetched_at`).

#[cfg(feature = "remote-keys-http")]
mod http;

#[cfg(feature = "remote-keys-http")]
pub use http::{DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_BODY, HttpFetcher};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::jwks::{JwksPolicy, RemoteJwks};
use crate::keys::Key;

/// What a fetch failed with (no body text, no URL: either may carry secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError(pub &'static str);

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fetching the key set failed: {}", self.0)
    }
}

impl std::error::Error for FetchError {}

/// The future of [`JwksFetcher::fetch`]: a fetch costs far more than the box.
pub type FetchFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, FetchError>> + Send>>;

/// Brings the bytes of a JWK set document: the crate's HTTP client, or yours (a `reqwest`
/// client behind a proxy, a file, a test double). It must bound its own time and body size.
pub trait JwksFetcher: Send + Sync + 'static {
    /// The body of `url`.
    fn fetch(&self, url: &str) -> FetchFuture;
}

/// The keys as last fetched.
#[derive(Debug, Default)]
pub struct KeySnapshot {
    /// The usable keys.
    pub keys: Vec<Key>,
    /// When they were fetched (the clock's time since the epoch, for reports); `None` before
    /// the first successful fetch.
    pub fetched_at: Option<Duration>,
    /// The same moment on tokio's monotonic clock, for the keys' age: a wall clock that jumps
    /// must neither expire nor revive them.
    fetched: Option<tokio::time::Instant>,
}

/// Counters to export: fetches made, failures among them, the keys' age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteKeyStats {
    /// Fetches made (successful or not).
    pub fetches: u64,
    /// Fetches that failed (and kept the keys known).
    pub failures: u64,
    /// Usable keys now.
    pub keys: usize,
    /// Time since the last successful fetch.
    pub age: Option<Duration>,
}

/// A JWK set fetched from a URL, kept fresh; cheap to clone (see the [module docs](self)).
#[derive(Clone)]
pub struct RemoteKeySet {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    /// The JWKS URL found by discovery (under the fetch lock).
    discovered: std::sync::Mutex<Option<Arc<str>>>,
    fetcher: Arc<dyn JwksFetcher>,
    policy: JwksPolicy,
    clock: Arc<dyn Clock>,
    refresh_every: Duration,
    cooldown: Duration,
    max_stale: Duration,
    fetch_timeout: Duration,
    snapshot: ArcSwap<KeySnapshot>,
    /// Which fetches were started and which are wanted (see [`Fetches`]).
    fetches: std::sync::Mutex<Fetches>,
    /// The number of fetches completed, for the callers waiting on one.
    completed: tokio::sync::watch::Sender<u64>,
    /// The last fetch's outcome.
    last: std::sync::Mutex<Result<(), FetchError>>,
    fetch_count: AtomicU64,
    failures: AtomicU64,
    /// A run of failures has been logged.
    warned: AtomicBool,
    refresher: AtomicBool,
    /// Bumped whenever the keys in use change (a fetch installed, or the keys went stale):
    /// what was verified with the old ones is verified again.
    generation: AtomicU64,
    /// The keys have gone stale, and that was logged.
    stale: AtomicBool,
}

/// The fetches: one task runs them one after the other, so that no caller's cancellation
/// (a client that hangs up) ever aborts one, and no two run at once.
#[derive(Default)]
struct Fetches {
    /// The task is running a fetch.
    running: bool,
    /// Fetches started so far (the one running included).
    started: u64,
    /// The latest fetch some caller waits for (a number of `started`).
    wanted: u64,
    /// When an unknown kid last caused a fetch (tokio's monotonic clock).
    last_unknown: Option<tokio::time::Instant>,
}

impl std::fmt::Debug for RemoteKeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry a token or a password.
        f.debug_struct("RemoteKeySet")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Builds a [`RemoteKeySet`].
pub struct RemoteKeySetBuilder {
    source: Source,
    fetcher: Arc<dyn JwksFetcher>,
    policy: JwksPolicy,
    clock: Arc<dyn Clock>,
    refresh_every: Duration,
    cooldown: Duration,
    max_stale: Duration,
    fetch_timeout: Duration,
}

impl std::fmt::Debug for RemoteKeySetBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeySetBuilder")
            .field("refresh_every", &self.refresh_every)
            .field("cooldown", &self.cooldown)
            .field("max_stale", &self.max_stale)
            .finish_non_exhaustive()
    }
}

/// The default refresh interval (as Envoy's).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(600);
/// The default shortest time between two fetches caused by unknown kids.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);
/// The default age after which keys that could not be refreshed are no longer used.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(24 * 3600);

/// The default bound the set puts on one fetch (each of discovery and the key set), whatever
/// the fetcher does.
pub const DEFAULT_SET_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest fetch timeout accepted (requests that need a fetch wait for it).
pub const MAX_FETCH_TIMEOUT: Duration = Duration::from_secs(300);
/// The shortest cooldown accepted.
pub const MIN_COOLDOWN: Duration = Duration::from_secs(1);

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

impl RemoteKeySet {
    /// A set fetched from `url` by `fetcher`. Nothing is fetched until [`refresh`](Self::refresh)
    /// or the refresher ([`spawn_refresher`](Self::spawn_refresher)) runs.
    pub fn builder(url: impl Into<String>, fetcher: impl JwksFetcher) -> RemoteKeySetBuilder {
        Self::with_source(Source::Jwks(url.into().into_boxed_str()), fetcher)
    }

    /// A set found by OpenID Connect discovery: `{issuer}/.well-known/openid-configuration`
    /// is fetched first, its `issuer` must be `issuer` exactly (OpenID Connect Discovery
    /// §4.3), and its `jwks_uri` is the set's URL. Discovery runs again at every refresh, so
    /// a provider that moves its keys is followed; until it succeeds once there are no keys.
    pub fn discover(issuer: impl Into<String>, fetcher: impl JwksFetcher) -> RemoteKeySetBuilder {
        Self::with_source(Source::Issuer(issuer.into().into_boxed_str()), fetcher)
    }

    fn with_source(source: Source, fetcher: impl JwksFetcher) -> RemoteKeySetBuilder {
        RemoteKeySetBuilder {
            source,
            fetcher: Arc::new(fetcher),
            policy: JwksPolicy::default(),
            clock: Arc::new(SystemClock),
            refresh_every: DEFAULT_REFRESH,
            cooldown: DEFAULT_COOLDOWN,
            max_stale: DEFAULT_MAX_STALE,
            fetch_timeout: DEFAULT_SET_FETCH_TIMEOUT,
        }
    }

    /// The keys to verify with now: `None` before the first successful fetch, or once the
    /// keys are older than the maximum staleness. An atomic load, never a wait.
    pub fn current(&self) -> Option<Arc<KeySnapshot>> {
        self.usable().map(arc_swap::Guard::into_inner)
    }

    /// [`current`](Self::current) without touching the snapshot's reference count (the
    /// validator's read on every token: a shared count would be contended across cores).
    pub(crate) fn usable(&self) -> Option<arc_swap::Guard<Arc<KeySnapshot>>> {
        let snapshot = self.inner.snapshot.load();
        (snapshot.fetched?.elapsed() <= self.inner.max_stale).then_some(snapshot)
    }

    /// Whether the last fetch failed (the keys known, if any, are kept).
    pub(crate) fn failing(&self) -> bool {
        self.inner.warned.load(Ordering::Acquire)
    }

    /// Fetches the set now, unless a fetch is under way: then waits for that one and shares
    /// its outcome. On failure the keys already known stay. The fetch runs in a task of its
    /// own: dropping this future does not abort it.
    ///
    /// # Errors
    /// The fetch's error, or a document with no usable key.
    pub async fn refresh(&self) -> Result<(), FetchError> {
        let target = {
            let mut fetches = self.inner.lock_fetches();
            self.inner.request(&mut fetches, false)
        };
        self.inner.wait(target).await
    }

    /// A token named `kid`, which the keys may lack: when they do, one fetch that starts after
    /// this call if the cooldown allows (any number of such calls within it share it), or a
    /// wait for a fetch already wanted, or nothing; returns whether the keys now hold `kid`.
    /// Every wait is bounded: twice the fetch timeout and a second, for each fetch waited for
    /// (the one under way and the one after it, at most).
    pub async fn refresh_for_unknown_kid(&self, kid: Option<&str>) -> bool {
        let has = |set: &Self| {
            set.current()
                .is_some_and(|s| s.keys.iter().any(|k| k.kid() == kid))
        };
        if has(self) {
            return true;
        }
        if let Some(target) = self.note_unknown_kid() {
            let _ = self.inner.wait(target).await;
        }
        has(self)
    }

    /// The keys lack a kid a token names: starts a fetch if the cooldown allows and a tokio
    /// runtime is running (one that starts after this call: a fetch under way may predate the
    /// key, so it runs next), and returns the fetch worth waiting for, if one is wanted; never
    /// waits.
    pub(crate) fn note_unknown_kid(&self) -> Option<u64> {
        self.note_missing(true)
    }

    /// There are no usable keys: as [`note_unknown_kid`](Self::note_unknown_kid), except that
    /// a fetch under way is joined (whatever keys exist, it brings) without using the
    /// cooldown; when none is under way, a fetch it starts uses the cooldown as any.
    pub(crate) fn note_no_keys(&self) -> Option<u64> {
        self.note_missing(false)
    }

    fn note_missing(&self, fresh: bool) -> Option<u64> {
        let inner = &self.inner;
        let mut fetches = inner.lock_fetches();
        if !fresh && fetches.running {
            return Some(fetches.started);
        }
        let now = tokio::time::Instant::now();
        let due = fetches
            .last_unknown
            .is_none_or(|last| now.duration_since(last) >= inner.cooldown);
        if due && tokio::runtime::Handle::try_current().is_ok() {
            fetches.last_unknown = Some(now);
            Some(inner.request(&mut fetches, true))
        } else if fetches.wanted > *inner.completed.borrow() {
            // One is wanted (by the caller that started the cooldown, or the refresher):
            // share it, start none.
            Some(fetches.wanted)
        } else {
            None
        }
    }

    /// The fetch some caller waits for, while it has not completed.
    pub(crate) fn pending(&self) -> Option<u64> {
        let wanted = self.inner.lock_fetches().wanted;
        (wanted > *self.inner.completed.borrow()).then_some(wanted)
    }

    /// Waits (bounded as [`refresh_for_unknown_kid`](Self::refresh_for_unknown_kid)'s waits
    /// are) until fetch number `target` has completed.
    pub(crate) fn wait_for(&self, target: u64) -> impl Future<Output = ()> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        async move {
            let _ = inner.wait(target).await;
        }
    }

    /// Changes whenever a key in use may have gone: a fetch that removed one, and the keys
    /// going stale (or fresh again). A cache of tokens verified with this set's keys keys on
    /// it.
    pub(crate) fn generation(&self) -> u64 {
        let generation = self.inner.generation.load(Ordering::Acquire);
        let stale = self
            .inner
            .snapshot
            .load()
            .fetched
            .is_some_and(|at| at.elapsed() > self.inner.max_stale);
        generation.wrapping_mul(2) | u64::from(stale)
    }

    /// Fetches, counters and the keys' age.
    pub fn stats(&self) -> RemoteKeyStats {
        let inner = &self.inner;
        let snapshot = inner.snapshot.load();
        RemoteKeyStats {
            fetches: inner.fetch_count.load(Ordering::Relaxed),
            failures: inner.failures.load(Ordering::Relaxed),
            keys: snapshot.keys.len(),
            age: snapshot.fetched.map(|at| at.elapsed()),
        }
    }

    /// Starts the background refresher on the current tokio runtime: a fetch now, then one
    /// every refresh interval; after a failure, retries at 1 s doubling to 60 s. It ends when
    /// the last clone of this set is dropped. A second call starts nothing (`None`).
    ///
    /// # Panics
    /// Outside a tokio runtime (as `tokio::spawn`).
    pub fn spawn_refresher(&self) -> Option<tokio::task::JoinHandle<()>> {
        if self.inner.refresher.swap(true, Ordering::AcqRel) {
            return None;
        }
        let weak = Arc::downgrade(&self.inner);
        Some(tokio::spawn(async move {
            let mut backoff = BACKOFF_FIRST;
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let set = RemoteKeySet { inner };
                let wait = match set.refresh().await {
                    Ok(()) => {
                        backoff = BACKOFF_FIRST;
                        set.inner.refresh_every
                    }
                    Err(_) => {
                        let wait = backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        wait
                    }
                };
                drop(set);
                tokio::time::sleep(wait).await;
            }
        }))
    }
}

impl Inner {
    fn lock_fetches(&self) -> std::sync::MutexGuard<'_, Fetches> {
        self.fetches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks for a fetch and returns its number: the one running, or (`fresh`, or none running)
    /// one that starts after now. Starts the fetch task when it is idle.
    fn request(self: &Arc<Self>, fetches: &mut Fetches, fresh: bool) -> u64 {
        let target = if fetches.running && !fresh {
            fetches.started
        } else {
            fetches.started + 1
        };
        fetches.wanted = fetches.wanted.max(target);
        if !fetches.running {
            fetches.running = true;
            fetches.started += 1;
            tokio::spawn(Arc::clone(self).run_fetches());
        }
        target
    }

    /// The fetch task: fetches until none is wanted any more.
    async fn run_fetches(self: Arc<Self>) {
        /// Should the task end early (a fetcher that panics, a runtime shutting down), fetches
        /// must not stay "running" for ever: the next request starts one again, and waiters
        /// stop waiting.
        struct Ended<'a>(&'a Inner, bool);
        impl Drop for Ended<'_> {
            fn drop(&mut self) {
                if self.1 {
                    return;
                }
                let inner = self.0;
                *inner
                    .last
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Err(FetchError("the fetch task ended early"));
                inner.failures.fetch_add(1, Ordering::Relaxed);
                inner.warned.store(true, Ordering::Release);
                let mut fetches = inner.lock_fetches();
                fetches.running = false;
                // Every fetch wanted so far ends here, failed (its waiters stop waiting), and
                // the cooldown starts again, so that the next unknown kid may fetch.
                fetches.started = fetches.started.max(fetches.wanted);
                fetches.wanted = fetches.started;
                fetches.last_unknown = None;
                inner.complete(fetches.started);
            }
        }
        let mut ended = Ended(&self, false);
        loop {
            let outcome = self.fetch_once().await;
            *self
                .last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = outcome;
            let (done, again) = {
                let mut fetches = self.lock_fetches();
                let done = fetches.started;
                let again = fetches.wanted > done;
                if again {
                    fetches.started += 1;
                } else {
                    fetches.running = false;
                }
                (done, again)
            };
            self.complete(done);
            if !again {
                ended.1 = true;
                return;
            }
        }
    }

    /// The longest a caller waits for one fetch: discovery and the key set, each bounded, and
    /// a margin for the scheduler.
    fn wait_bound(&self) -> Duration {
        self.fetch_timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(1))
    }

    /// Says that the fetches up to number `done` have completed; never goes back.
    fn complete(&self, done: u64) {
        self.completed.send_if_modified(|completed| {
            let newer = done > *completed;
            if newer {
                *completed = done;
            }
            newer
        });
    }

    /// Waits (bounded) until fetch number `target` has completed; its outcome.
    async fn wait(&self, target: u64) -> Result<(), FetchError> {
        let mut completed = self.completed.subscribe();
        // Each fetch it waits for (the one under way, and one after it at most) is bounded.
        let ahead = target.saturating_sub(*completed.borrow()).clamp(1, 2);
        let bound = self
            .wait_bound()
            .saturating_mul(u32::try_from(ahead).unwrap_or(2));
        match tokio::time::timeout(bound, completed.wait_for(|done| *done >= target)).await {
            Ok(Ok(_)) => self
                .last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            _ => Err(FetchError("timed out waiting for the fetch")),
        }
    }

    /// One fetch (discovery first, for an issuer), bounded by the fetch timeout, and its
    /// outcome applied.
    async fn fetch_once(&self) -> Result<(), FetchError> {
        let timeout = self.fetch_timeout;
        let bounded = |future: FetchFuture| async move {
            tokio::time::timeout(timeout, future)
                .await
                .unwrap_or(Err(FetchError("timed out")))
        };
        let url = match &self.source {
            Source::Jwks(url) => Ok(Arc::<str>::from(&**url)),
            Source::Issuer(issuer) => {
                let found = match bounded(self.fetcher.fetch(&discovery_url(issuer))).await {
                    Ok(body) => jwks_uri_of(&body, issuer),
                    Err(e) => Err(e),
                };
                self.discovered_uri(found)
            }
        };
        let fetched = match url {
            Ok(url) => bounded(self.fetcher.fetch(&url)).await,
            Err(e) => Err(e),
        };
        let outcome = match fetched {
            Ok(body) => match RemoteJwks::parse(&body, &self.policy) {
                Ok(set) if !set.keys.is_empty() => Ok(set),
                Ok(_) => Err(FetchError("the document holds no usable key")),
                Err(_) => Err(FetchError("the document is not a JWK set")),
            },
            Err(e) => Err(e),
        };
        self.fetch_count.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(set) => {
                tracing::debug!(
                    target: crate::audit::AUDIT_TARGET,
                    keys = set.keys.len(),
                    skipped = set.skipped.len(),
                    "remote key set fetched"
                );
                self.install(set);
                if self.warned.swap(false, Ordering::AcqRel) {
                    tracing::info!(
                        target: crate::audit::AUDIT_TARGET,
                        "the remote key set was fetched again"
                    );
                }
                Ok(())
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let fetched = self.snapshot.load().fetched;
                if fetched.is_some_and(|at| at.elapsed() > self.max_stale)
                    && !self.stale.swap(true, Ordering::AcqRel)
                {
                    // Tokens verified with these keys (and cached) must be verified again.
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    tracing::error!(
                        target: crate::audit::AUDIT_TARGET,
                        error = %e,
                        max_stale_secs = self.max_stale.as_secs(),
                        "the remote key set is older than its maximum staleness and could not \
                         be refreshed; tokens that need it are refused until a fetch succeeds"
                    );
                }
                if !self.warned.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        target: crate::audit::AUDIT_TARGET,
                        error = %e,
                        keys_kept = self.snapshot.load().keys.len(),
                        "the remote key set could not be refreshed; the keys known are kept"
                    );
                }
                Err(e)
            }
        }
    }

    /// Remembers a `jwks_uri` found by discovery, or falls back to the last one found when
    /// the document cannot be had now (never when it names another issuer).
    fn discovered_uri(&self, found: Result<Arc<str>, FetchError>) -> Result<Arc<str>, FetchError> {
        let mut known = self
            .discovered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match found {
            Ok(uri) => {
                *known = Some(Arc::clone(&uri));
                Ok(uri)
            }
            Err(e) if e.0 == ISSUER_MISMATCH || e.0 == BAD_JWKS_URI => Err(e),
            Err(e) => known.clone().ok_or(e),
        }
    }

    /// Swaps in the new keys, and says which kids came and went.
    fn install(&self, set: RemoteJwks) {
        let old = self.snapshot.load();
        let kids = |keys: &[Key]| -> Vec<String> {
            keys.iter()
                .filter_map(|k| k.kid().map(str::to_owned))
                .collect()
        };
        let (before, after) = (kids(&old.keys), kids(&set.keys));
        let added: Vec<&String> = after.iter().filter(|k| !before.contains(k)).collect();
        let removed: Vec<&String> = before.iter().filter(|k| !after.contains(k)).collect();
        if !added.is_empty() || !removed.is_empty() {
            tracing::info!(
                target: crate::audit::AUDIT_TARGET,
                added = ?added,
                removed = ?removed,
                skipped = set.skipped.len(),
                "remote key set changed"
            );
        }
        if let Some(first) = set.skipped.first() {
            // One event, however many were skipped: a document may hold many bad entries.
            tracing::debug!(
                target: crate::audit::AUDIT_TARGET,
                skipped = set.skipped.len(),
                first_index = first.index,
                first_kid = ?first.kid,
                first_reason = first.reason,
                "JWKs of the remote set were skipped"
            );
        }
        // Tokens cached as verified are verified again when a key they may have used went
        // away (a kid removed or given other material, or keys without kid, which cannot be
        // told apart): added keys change nothing for them, so an attacker's unknown kids
        // cannot empty the cache.
        let replaced = old.keys.iter().any(|before| {
            set.keys
                .iter()
                .find(|after| after.kid().is_some() && after.kid() == before.kid())
                .is_some_and(|after| !before.same_as(after))
        });
        let gone = replaced || !removed.is_empty() || old.keys.iter().any(|k| k.kid().is_none());
        self.snapshot.store(Arc::new(KeySnapshot {
            keys: set.keys,
            fetched_at: Some(self.clock.now()),
            fetched: Some(tokio::time::Instant::now()),
        }));
        // The generation moves after the new keys are in: an entry cached meanwhile is
        // stamped with the old one, and verified again.
        if gone {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        self.stale.store(false, Ordering::Release);
    }
}

impl RemoteKeySetBuilder {
    /// The policy for the set's JWKs (default [`JwksPolicy::default`]).
    pub fn policy(mut self, policy: JwksPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The clock that dates the fetches reported in [`KeySnapshot::fetched_at`] (the keys' age
    /// and the cooldown run on tokio's monotonic clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How often the refresher fetches (default [`DEFAULT_REFRESH`]).
    pub fn refresh_every(mut self, every: Duration) -> Self {
        self.refresh_every = every;
        self
    }

    /// The shortest time between two fetches caused by unknown kids (default
    /// [`DEFAULT_COOLDOWN`]).
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The bound the set puts on each fetch, whatever the fetcher does (default
    /// [`DEFAULT_SET_FETCH_TIMEOUT`]); a caller waits for at most two (discovery and the set).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// How old keys that could not be refreshed may get before they are no longer used
    /// (default [`DEFAULT_MAX_STALE`]).
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// The set.
    ///
    /// # Errors
    /// An empty URL, a zero refresh interval, or a maximum staleness shorter than the refresh
    /// interval (the keys would expire between two refreshes).
    pub fn build(self) -> Result<RemoteKeySet, ConfigError> {
        let (Source::Jwks(url) | Source::Issuer(url)) = &self.source;
        if url.is_empty() {
            return Err(ConfigError::new("the key set URL or issuer is empty"));
        }
        if self.refresh_every.is_zero() {
            return Err(ConfigError::new("the refresh interval must not be zero"));
        }
        if self.max_stale < self.refresh_every.saturating_mul(2) {
            return Err(ConfigError::new(
                "the maximum staleness must be at least twice the refresh interval",
            ));
        }
        if self.cooldown < MIN_COOLDOWN {
            return Err(ConfigError::new(
                "the cooldown must be at least a second (each unknown kid would fetch)",
            ));
        }
        if self.fetch_timeout.is_zero() || self.fetch_timeout > MAX_FETCH_TIMEOUT {
            return Err(ConfigError::new(
                "the fetch timeout must be above zero and at most 5 minutes",
            ));
        }
        let uri = url
            .parse::<::http::Uri>()
            .map_err(|_| ConfigError::new("the key set URL or issuer is not a valid URL"))?;
        if !matches!(uri.scheme_str(), Some("https" | "http"))
            || uri.host().is_none()
            || uri.query().is_some()
        {
            return Err(ConfigError::new(
                "the key set URL or issuer must be an absolute http(s) URL without a query",
            ));
        }
        Ok(RemoteKeySet {
            inner: Arc::new(Inner {
                source: self.source,
                discovered: std::sync::Mutex::new(None),
                fetcher: self.fetcher,
                policy: self.policy,
                clock: self.clock,
                refresh_every: self.refresh_every,
                cooldown: self.cooldown,
                max_stale: self.max_stale,
                fetch_timeout: self.fetch_timeout,
                snapshot: ArcSwap::from_pointee(KeySnapshot::default()),
                fetches: std::sync::Mutex::new(Fetches::default()),
                completed: tokio::sync::watch::Sender::new(0),
                last: std::sync::Mutex::new(Err(FetchError("no fetch yet"))),
                fetch_count: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                warned: AtomicBool::new(false),
                refresher: AtomicBool::new(false),
                generation: AtomicU64::new(0),
                stale: AtomicBool::new(false),
            }),
        })
    }
}

/// Where the set's URL comes from.
enum Source {
    Jwks(Box<str>),
    Issuer(Box<str>),
}

const ISSUER_MISMATCH: &str = "the discovery document names another issuer";

const BAD_JWKS_URI: &str = "the discovery document's jwks_uri is not allowed";

/// `{issuer}/.well-known/openid-configuration`.
fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Whether `uri` names a loopback host by address.
fn is_loopback(uri: &::http::Uri) -> bool {
    let host = uri.host().unwrap_or("");
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The `jwks_uri` of a discovery document whose `issuer` is `issuer`: an absolute `https`
/// URL, or plain `http` to a loopback address when the issuer is one too (a test provider);
/// at most 2 KiB.
fn jwks_uri_of(body: &[u8], issuer: &str) -> Result<Arc<str>, FetchError> {
    #[derive(serde::Deserialize)]
    struct Discovery {
        issuer: String,
        jwks_uri: String,
    }
    let document: Discovery = serde_json::from_slice(body)
        .map_err(|_| FetchError("the discovery document lacks issuer or jwks_uri"))?;
    if document.issuer != issuer {
        return Err(FetchError(ISSUER_MISMATCH));
    }
    let uri = (document.jwks_uri.len() <= 2048)
        .then(|| document.jwks_uri.parse::<::http::Uri>().ok())
        .flatten()
        .ok_or(FetchError(BAD_JWKS_URI))?;
    let issuer_uri = issuer.parse::<::http::Uri>().ok();
    let allowed = match uri.scheme_str() {
        Some("https") => uri.host().is_some(),
        Some("http") => is_loopback(&uri) && issuer_uri.as_ref().is_some_and(is_loopback),
        _ => false,
    };
    if !allowed {
        return Err(FetchError(BAD_JWKS_URI));
    }
    Ok(Arc::from(document.jwks_uri))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use std::sync::Mutex;

    const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn set_of(kids: &[&str]) -> Vec<u8> {
        let keys: Vec<String> = kids
            .iter()
            .map(|k| {
                format!(r#"{{"kty":"EC","kid":"{k}","crv":"P-256","x":"{EC_X}","y":"{EC_Y}"}}"#)
            })
            .collect();
        format!(r#"{{"keys":[{}]}}"#, keys.join(",")).into_bytes()
    }

    /// Serves whatever the test puts in `body`, counting fetches; each fetch takes `delay`.
    #[derive(Clone)]
    struct Served {
        body: Arc<Mutex<Result<Vec<u8>, FetchError>>>,
        count: Arc<AtomicU64>,
        delay: Duration,
    }

    impl Served {
        fn new(body: Vec<u8>, delay: Duration) -> Self {
            Self {
                body: Arc::new(Mutex::new(Ok(body))),
                count: Arc::new(AtomicU64::new(0)),
                delay,
            }
        }
        fn serve(&self, body: Result<Vec<u8>, FetchError>) {
            *self.body.lock().unwrap() = body;
        }
        fn fetches(&self) -> u64 {
            self.count.load(Ordering::SeqCst)
        }
    }

    impl JwksFetcher for Served {
        fn fetch(&self, _url: &str) -> FetchFuture {
            self.count.fetch_add(1, Ordering::SeqCst);
            let (body, delay) = (self.body.lock().unwrap().clone(), self.delay);
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                body
            })
        }
    }

    fn build(served: &Served, clock: &FakeClock) -> RemoteKeySet {
        RemoteKeySet::builder("https://idp.example/jwks", served.clone())
            .clock(clock.clone())
            .build()
            .unwrap()
    }

    fn kids(set: &RemoteKeySet) -> Vec<String> {
        set.current()
            .map(|s| {
                s.keys
                    .iter()
                    .filter_map(|k| k.kid().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_before_the_first_fetch_then_the_keys() {
        let clock = FakeClock::at_unix_secs(1_800_000_000);
        let served = Served::new(set_of(&["a", "b"]), Duration::ZERO);
        let set = build(&served, &clock);
        assert!(set.current().is_none());
        set.refresh().await.unwrap();
        assert_eq!(kids(&set), ["a", "b"]);
        assert_eq!(set.stats().age, Some(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_refreshes_share_one_fetch() {
        let clock = FakeClock::at_unix_secs(1_800_000_000);
        let served = Served::new(set_of(&["a"]), Duration::from_millis(100));
        let set = build(&served, &clock);
        let all: Vec<_> = (0..50).map(|_| set.refresh()).collect();
        for r in futures_util::future::join_all(all).await {
            assert!(r.is_ok());
        }
        assert_eq!(served.fetches(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_kids_refetch_at_most_once_per_cooldown() {
        let clock = FakeClock::at_unix_secs(1_800_000_000);
        let served = Served::new(set_of(&["a"]), Duration::from_millis(10));
        let set = build(&served, &clock);
        set.refresh().await.unwrap();
        // The IdP rotates: "b" appears; the first token naming it fetches once, at once.
        served.serve(Ok(set_of(&["a", "b"])));
        let burst: Vec<_> = (0..1_000)
            .map(|_| set.refresh_for_unknown_kid(Some("b")))
            .collect();
        let found = futures_util::future::join_all(burst).await;
        assert!(found.iter().all(|f| *f), "every waiter saw the new key");
        assert_eq!(served.fetches(), 2, "one fetch for the whole burst");
        // 10 000 random kids within the cooldown: no fetch.
        for i in 0..10_000 {
            assert!(!set.refresh_for_unknown_kid(Some(&format!("r{i}"))).await);
        }
        assert_eq!(served.fetches(), 2);
        // After the cooldown (tokio's monotonic clock), one more.
        tokio::time::advance(DEFAULT_COOLDOWN).await;
        assert!(!set.refresh_for_unknown_kid(Some("zzz")).await);
        assert_eq!(served.fetches(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_garbage_fetch_keeps_the_keys_until_they_are_too_old() {
        let clock = FakeClock::at_unix_secs(1_800_000_000);
        let served = Served::new(set_of(&["a"]), Duration::ZERO);
        let set = build(&served, &clock);
        set.refresh().await.unwrap();
        for body in [
            Err(FetchError("timed out")),
            Ok(b"<html>500</html>".to_vec()),
            Ok(br#"{"keys":[{"kty":"oct","k":"AAAA"}]}"#.to_vec()),
        ] {
            served.serve(body);
            assert!(set.refresh().await.is_err());
            assert_eq!(kids(&set), ["a"], "kept");
        }
        assert_eq!(set.stats().failures, 3);
        tokio::time::advance(DEFAULT_MAX_STALE).await;
        assert_eq!(kids(&set), ["a"], "still within the maximum staleness");
        // The wall clock jumping does not matter; tokio's monotonic clock does.
        clock.advance(Duration::from_secs(10 * 86_400));
        assert_eq!(kids(&set), ["a"]);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(set.current().is_none(), "too old: no longer used");
        // A successful fetch brings them back, and a removed key is gone.
        served.serve(Ok(set_of(&["c"])));
        set.refresh().await.unwrap();
        assert_eq!(kids(&set), ["c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_refresher_fetches_every_interval_and_backs_off_after_failures() {
        let clock = FakeClock::at_unix_secs(1_800_000_000);
        let served = Served::new(set_of(&["a"]), Duration::ZERO);
        let set = RemoteKeySet::builder("https://idp.example/jwks", served.clone())
            .clock(clock.clone())
            .refresh_every(Duration::from_secs(600))
            .build()
            .unwrap();
        let task = set.spawn_refresher().expect("the first refresher");
        assert!(set.spawn_refresher().is_none(), "one refresher per set");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(served.fetches(), 1);
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(served.fetches(), 2);
        // Failing from the fetch at 1 200 s on: retries 1, 2 and 4 s after each failure.
        served.serve(Err(FetchError("down")));
        tokio::time::sleep(Duration::from_millis(599_500)).await;
        assert_eq!(served.fetches(), 3);
        tokio::time::sleep(Duration::from_secs(1 + 2 + 4)).await;
        assert_eq!(served.fetches(), 6);
        assert_eq!(kids(&set), ["a"]);
        drop(set);
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert!(task.is_finished(), "ends with the last clone");
    }

    /// Serves a discovery document at the well-known path and a key set elsewhere.
    struct Provider {
        discovery: Mutex<String>,
        jwks: Vec<u8>,
        urls: Mutex<Vec<String>>,
    }

    impl JwksFetcher for Arc<Provider> {
        fn fetch(&self, url: &str) -> FetchFuture {
            self.urls.lock().unwrap().push(url.to_owned());
            let body = if url.ends_with("/.well-known/openid-configuration") {
                self.discovery.lock().unwrap().clone().into_bytes()
            } else if url == "https://idp.example/keys" {
                self.jwks.clone()
            } else {
                b"not found".to_vec()
            };
            Box::pin(async move { Ok(body) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_gives_up_does_not_abort_the_fetch() {
        let clock = FakeClock::at_unix_secs(1_800_000_000);
        let served = Served::new(set_of(&["a"]), Duration::from_secs(2));
        let set = build(&served, &clock);
        // The caller that started the fetch hangs up after 100 ms.
        let gave_up = tokio::time::timeout(
            Duration::from_millis(100),
            set.refresh_for_unknown_kid(Some("a")),
        )
        .await;
        assert!(gave_up.is_err());
        // Another request for the same kid, within the cooldown, waits for that fetch.
        assert!(set.refresh_for_unknown_kid(Some("a")).await);
        assert_eq!(served.fetches(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_kid_wants_a_fetch_that_starts_after_it() {
        let clock = FakeClock::at_unix_secs(1_800_000_000);
        let served = Served::new(set_of(&["a"]), Duration::from_secs(1));
        let set = build(&served, &clock);
        // A periodic fetch is under way with the old document...
        let periodic = tokio::spawn({
            let set = set.clone();
            async move { set.refresh().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        // ...when the IdP rotates and a token names the new kid: the answer comes from a fetch
        // that starts after it, not from the one under way.
        served.serve(Ok(set_of(&["a", "b"])));
        assert!(set.refresh_for_unknown_kid(Some("b")).await);
        assert_eq!(served.fetches(), 2);
        periodic.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn discovery_finds_the_keys_and_checks_the_issuer() {
        let provider = Arc::new(Provider {
            discovery: Mutex::new(
                r#"{"issuer":"https://idp.example/realm","jwks_uri":"https://idp.example/keys"}"#
                    .to_owned(),
            ),
            jwks: set_of(&["a"]),
            urls: Mutex::new(Vec::new()),
        });
        let set = RemoteKeySet::discover("https://idp.example/realm", Arc::clone(&provider))
            .build()
            .unwrap();
        set.refresh().await.unwrap();
        assert_eq!(kids(&set), ["a"]);
        assert_eq!(
            *provider.urls.lock().unwrap(),
            [
                "https://idp.example/realm/.well-known/openid-configuration",
                "https://idp.example/keys"
            ]
        );
        // A document naming another issuer is refused, and the keys known stay.
        *provider.discovery.lock().unwrap() =
            r#"{"issuer":"https://evil.example","jwks_uri":"https://idp.example/keys"}"#.to_owned();
        let error = set.refresh().await.unwrap_err();
        assert_eq!(error.0, ISSUER_MISMATCH);
        assert_eq!(kids(&set), ["a"]);
        // A jwks_uri in plain http (to another host) is refused.
        *provider.discovery.lock().unwrap() =
            r#"{"issuer":"https://idp.example/realm","jwks_uri":"http://idp.example/keys"}"#
                .to_owned();
        assert_eq!(set.refresh().await.unwrap_err().0, BAD_JWKS_URI);
        // A set that never saw a matching document has no keys.
        let other = RemoteKeySet::discover("https://idp.example/other", Arc::clone(&provider))
            .build()
            .unwrap();
        assert!(other.refresh().await.is_err());
        assert!(other.current().is_none());
    }

    #[test]
    fn configuration_is_checked() {
        let served = Served::new(Vec::new(), Duration::ZERO);
        assert!(RemoteKeySet::builder("", served.clone()).build().is_err());
        assert!(
            RemoteKeySet::builder("https://idp.example/jwks", served.clone())
                .refresh_every(Duration::ZERO)
                .build()
                .is_err()
        );
        assert!(
            RemoteKeySet::builder("https://idp.example/jwks", served.clone())
                .max_stale(Duration::from_secs(1000))
                .build()
                .is_err(),
            "less than twice the refresh interval"
        );
        assert!(
            RemoteKeySet::builder("https://idp.example/jwks", served.clone())
                .cooldown(Duration::ZERO)
                .build()
                .is_err()
        );
        for bad in [
            "idp.example/jwks",
            "ftp://idp.example/jwks",
            "https://idp.example/j?x=1",
        ] {
            assert!(
                RemoteKeySet::builder(bad, served.clone()).build().is_err(),
                "{bad}"
            );
        }
        assert!(
            RemoteKeySet::builder("https://idp.example/jwks", served)
                .build()
                .is_ok()
        );
    }

    /// Panics on its first fetch, then serves `a`.
    struct PanicsOnce(AtomicBool);

    impl JwksFetcher for PanicsOnce {
        fn fetch(&self, _url: &str) -> FetchFuture {
            let first = !self.0.swap(true, Ordering::SeqCst);
            Box::pin(async move {
                assert!(!first, "a fetcher that panics");
                Ok(set_of(&["a"]))
            })
        }
    }

    #[tokio::test]
    async fn a_fetcher_that_panics_does_not_stop_fetches_for_good() {
        let set = RemoteKeySet::builder(
            "https://idp.example/jwks",
            PanicsOnce(AtomicBool::new(false)),
        )
        .build()
        .unwrap();
        let first = set.refresh().await;
        assert!(first.is_err(), "{first:?}");
        assert!(set.pending().is_none(), "nothing is left running");
        set.refresh().await.expect("the next fetch runs");
        assert_eq!(kids(&set), ["a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_removed_key_changes_the_generation() {
        let clock = FakeClock::at_unix_secs(1_800_000_000);
        let served = Served::new(set_of(&["a"]), Duration::ZERO);
        let set = build(&served, &clock);
        set.refresh().await.unwrap();
        let first = set.generation();
        // The same keys, then one more: what was verified stays verified.
        set.refresh().await.unwrap();
        served.serve(Ok(set_of(&["a", "b"])));
        set.refresh().await.unwrap();
        assert_eq!(set.generation(), first);
        // A key replaced under its kid (here by an Ed25519 key): verified again.
        served.serve(Ok(br#"{"keys":[{"kty":"OKP","kid":"a","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},{"kty":"EC","kid":"b","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#.to_vec()));
        set.refresh().await.unwrap();
        let replaced = set.generation();
        assert_ne!(replaced, first);
        // A key removed: everything cached is verified again.
        served.serve(Ok(set_of(&["b"])));
        set.refresh().await.unwrap();
        let removed = set.generation();
        assert_ne!(removed, replaced);
        // The keys going stale change it too, and fresh again.
        served.serve(Err(FetchError("down")));
        tokio::time::advance(DEFAULT_MAX_STALE + Duration::from_secs(1)).await;
        assert!(set.current().is_none());
        assert_ne!(set.generation(), removed);
    }
}
