//! [`TokenSource`]: the current token, refreshed ahead of expiry, one refresh at a time.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::time::Instant;

use super::token::{IssuedToken, ProviderError, SecretToken, TokenProvider};
use crate::clock::{Clock, SystemClock};

/// The token in use, and when to refresh and stop using it (tokio's monotonic clock).
struct Current {
    token: Arc<SecretToken>,
    refresh_at: Instant,
    expires_at: Instant,
}

/// The refreshes: one task runs them, so that no caller's cancellation aborts one.
#[derive(Default)]
struct Refreshes {
    running: bool,
    /// Refreshes started so far.
    started: u64,
    /// No refresh starts before this (after failures).
    retry_at: Option<Instant>,
    /// The backoff after the next failure.
    backoff: Duration,
    /// When the last refresh forced by a refused token started.
    last_forced: Option<Instant>,
    /// The last refresh's error, if it failed.
    last_error: Option<ProviderError>,
}

struct Inner {
    provider: Box<dyn TokenProvider>,
    clock: Arc<dyn Clock>,
    refresh_fraction: f64,
    jitter: f64,
    min_backoff: Duration,
    max_backoff: Duration,
    wait_bound: Duration,
    force_cooldown: Duration,
    current: ArcSwapOption<Current>,
    refreshes: Mutex<Refreshes>,
    /// The number of refreshes completed.
    completed: tokio::sync::watch::Sender<u64>,
    fetches: AtomicU64,
}

/// A token kept fresh; cheap to clone (see the [module docs](super)).
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("fetches", &self.fetches())
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenSource`].
pub struct TokenSourceBuilder {
    provider: Box<dyn TokenProvider>,
    clock: Arc<dyn Clock>,
    refresh_fraction: f64,
    jitter: f64,
    min_backoff: Duration,
    max_backoff: Duration,
    wait_bound: Duration,
    force_cooldown: Duration,
}

impl fmt::Debug for TokenSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSourceBuilder")
            .field("refresh_fraction", &self.refresh_fraction)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

/// A token is taken as expired this long before its end at most (a tenth of its lifetime for
/// shorter ones), so that it does not expire on its way.
const EXPIRY_MARGIN: Duration = Duration::from_secs(2);

/// The longest lifetime believed, whatever the issuer says.
const MAX_LIFETIME: Duration = Duration::from_secs(365 * 86_400);

/// The shortest backoff after a failure, and the shortest force cooldown.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// A provider call that outlived the wait bound.
const TIMED_OUT: ProviderError = ProviderError("the token provider did not answer in time");

impl TokenSource {
    /// A source calling `provider`; nothing is fetched before the first [`token`](Self::token).
    pub fn builder(provider: impl TokenProvider) -> TokenSourceBuilder {
        TokenSourceBuilder {
            provider: Box::new(provider),
            clock: Arc::new(SystemClock),
            refresh_fraction: 0.6,
            jitter: 0.1,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            wait_bound: Duration::from_secs(30),
            force_cooldown: Duration::from_secs(5),
        }
    }

    /// A token that is not expired: the current one (starting a refresh in the background
    /// once it is due), or, when there is none, the result of a refresh, shared with every
    /// caller waiting for it.
    ///
    /// # Errors
    /// The provider's error, when there is no valid token and the refresh failed (or, during
    /// a backoff, failed last time).
    pub async fn token(&self) -> Result<Arc<SecretToken>, ProviderError> {
        match self.token_now() {
            Some(token) => Ok(token),
            None => self.wait_for_fresh(None).await,
        }
    }

    /// The current token if it is not expired, without waiting (starting a refresh in the
    /// background once it is due); `None` when a caller would have to wait for a refresh.
    pub fn token_now(&self) -> Option<Arc<SecretToken>> {
        let current = self.inner.current.load();
        let current = current.as_ref()?;
        let now = Instant::now();
        if now < current.refresh_at {
            return Some(Arc::clone(&current.token));
        }
        if now < current.expires_at {
            self.inner.request(Some(current));
            return Some(Arc::clone(&current.token));
        }
        None
    }

    /// The server refused `seen` (HTTP 401, gRPC `UNAUTHENTICATED`): unless another caller
    /// already replaced it, it is dropped and one refresh runs, shared by every caller that
    /// saw the same token. Returns the new token.
    ///
    /// A refused token is replaced at most once per force cooldown (5 s by default): a server
    /// that refuses every token does not turn each request into a provider call.
    ///
    /// # Errors
    /// As [`token`](Self::token); and when `seen` is still the current token and a refresh
    /// was forced less than the cooldown ago.
    pub async fn force_refresh(
        &self,
        seen: &Arc<SecretToken>,
    ) -> Result<Arc<SecretToken>, ProviderError> {
        if !self.refused(seen) {
            return Err(ProviderError(
                "the server refused a token just refreshed; not refreshing again yet",
            ));
        }
        self.wait_for_fresh(Some(seen)).await
    }

    /// Notes that the server refused `seen`, without waiting: drops it and starts a refresh
    /// unless another caller did already. Returns whether a token other than `seen` is, or
    /// will be, there to retry with; `false` when `seen` is still the current token and a
    /// refresh was forced less than the force cooldown ago, or the provider is backing off
    /// after a failure (a still-valid token is kept then).
    pub fn refused(&self, seen: &Arc<SecretToken>) -> bool {
        let inner = &*self.inner;
        // Under the lock, so that of two callers who saw the same token the second finds it
        // gone (and shares the first one's refresh) rather than the cooldown.
        let mut refreshes = inner.lock();
        let now = Instant::now();
        match &*inner.current.load() {
            // Replaced already (or about to be: an expired one is refreshed on the next use).
            Some(current) if !Arc::ptr_eq(&current.token, seen) => return true,
            // Dropped by another caller who saw it: its refresh is shared.
            None => return true,
            Some(current) => {
                let cooling = refreshes
                    .last_forced
                    .is_some_and(|at| now.saturating_duration_since(at) < inner.force_cooldown);
                // While the provider backs off after a failure no refresh could replace the
                // token: a still-valid one is kept then too, rather than leave every caller
                // with none until the backoff ends.
                let backing_off = refreshes.retry_at.is_some_and(|at| now < at);
                if (cooling || backing_off) && now < current.expires_at {
                    return false;
                }
            }
        }
        // Dropped only if it is still the one refused (a refresh may have just installed
        // another: that one stays, and no refresh is forced).
        let mut removed = false;
        inner.current.rcu(|current| match current {
            Some(c) if Arc::ptr_eq(&c.token, seen) => {
                removed = true;
                None
            }
            other => {
                removed = false;
                other.clone()
            }
        });
        if removed {
            refreshes.last_forced = Some(now);
        }
        drop(refreshes);
        if removed {
            self.inner.request(None);
        }
        true
    }

    /// How many times the provider was called.
    pub fn fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// Waits for a valid token that is not `refused`: asks for a refresh (unless one runs,
    /// which is shared) and waits for it, bounded.
    async fn wait_for_fresh(
        &self,
        refused: Option<&Arc<SecretToken>>,
    ) -> Result<Arc<SecretToken>, ProviderError> {
        let inner = &*self.inner;
        let usable = |current: &Option<Arc<Current>>| {
            current.as_ref().and_then(|c| {
                let refused = refused.is_some_and(|r| Arc::ptr_eq(r, &c.token));
                (Instant::now() < c.expires_at && !refused).then(|| Arc::clone(&c.token))
            })
        };
        let deadline = Instant::now() + inner.wait_bound;
        // Three rounds at most: a refresh that ended just as this caller looked (or dropped a
        // refused token) sends it round once more, to the new token or to a new refresh.
        for _ in 0..3 {
            let mut completed = inner.completed.subscribe();
            let seen = inner.current.load_full();
            if let Some(token) = usable(&seen) {
                return Ok(token);
            }
            let Some(target) = self.inner.request(seen.as_ref()) else {
                // Backing off after a failure: the error at once.
                return Err(inner.error());
            };
            let waited =
                tokio::time::timeout_at(deadline, completed.wait_for(|done| *done >= target)).await;
            if waited.is_err() {
                return usable(&inner.current.load_full()).ok_or(TIMED_OUT);
            }
            if let Some(token) = usable(&inner.current.load_full()) {
                return Ok(token);
            }
            if inner.lock().last_error.is_some() {
                return Err(inner.error());
            }
        }
        usable(&inner.current.load_full()).ok_or_else(|| inner.error())
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Refreshes> {
        self.refreshes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn error(&self) -> ProviderError {
        self.lock()
            .last_error
            .clone()
            .unwrap_or(ProviderError("the token provider gave no token"))
    }

    /// Asks for a refresh, by a caller who saw `seen` as the current token: returns the
    /// number of the refresh to wait for (the one running, one started now, or, when the
    /// current token is no longer `seen`, the last one, already over), or `None` while backing
    /// off after a failure, or outside a tokio runtime.
    fn request(self: &Arc<Self>, seen: Option<&Arc<Current>>) -> Option<u64> {
        let mut refreshes = self.lock();
        if refreshes.running {
            return Some(refreshes.started);
        }
        // A refresh ended since the caller looked: its token is there, none is started twice
        // in a row.
        let unchanged = match (&*self.current.load(), seen) {
            (Some(now), Some(seen)) => Arc::ptr_eq(now, seen),
            (None, None) => true,
            _ => false,
        };
        if !unchanged {
            return Some(refreshes.started);
        }
        if refreshes.retry_at.is_some_and(|at| Instant::now() < at) {
            return None;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return None;
        }
        refreshes.running = true;
        refreshes.started += 1;
        let target = refreshes.started;
        drop(refreshes);
        // The guard exists before the task is first polled: a task dropped unpolled (its
        // runtime shutting down) still ends its refresh.
        let done = Done {
            inner: Arc::clone(self),
            outcome: None,
        };
        tokio::spawn(done.refresh());
        Some(target)
    }

    /// Makes `issued`, asked for at `started`, the current token.
    fn install(&self, issued: IssuedToken, started: Instant) -> Result<(), ProviderError> {
        let lifetime = match issued.lifetime() {
            Some(lifetime) => lifetime,
            None => {
                let exp = exp_of(issued.text()).ok_or(ProviderError(
                    "the token has no expires_in and no readable exp",
                ))?;
                Duration::from_secs(exp).saturating_sub(self.clock.now())
            }
        }
        // Whatever the issuer says, a year at most (and no overflow below).
        .min(MAX_LIFETIME);
        let margin = EXPIRY_MARGIN.min(lifetime / 10);
        // Counted from when the token was asked for: the provider's own time is part of it.
        let usable = lifetime.saturating_sub(margin);
        let expires_at = started + usable;
        if usable.is_zero() || expires_at <= Instant::now() {
            return Err(ProviderError("the token provider gave an expired token"));
        }
        // Refresh at the fraction, moved by up to ±jitter of the lifetime, within 5 % to 95 %.
        let spread = (rand_unit() * 2.0 - 1.0) * self.jitter;
        let fraction = (self.refresh_fraction + spread).clamp(0.05, 0.95);
        let refresh_in = lifetime.mul_f64(fraction).min(usable);
        let token = issued.into_secret().ok_or(ProviderError(
            "the token is empty, too long or not a valid header value",
        ))?;
        self.current.store(Some(Arc::new(Current {
            token: Arc::new(token),
            refresh_at: started + refresh_in,
            expires_at,
        })));
        Ok(())
    }
}

/// One refresh, and its end however its task ends (a provider that panics, or a task dropped
/// before it ran, included).
struct Done {
    inner: Arc<Inner>,
    outcome: Option<Result<(), ProviderError>>,
}

impl Done {
    async fn refresh(mut self) {
        let inner = Arc::clone(&self.inner);
        inner.fetches.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let fetched = tokio::time::timeout(inner.wait_bound, inner.provider.fetch())
            .await
            .unwrap_or(Err(TIMED_OUT));
        self.outcome = Some(fetched.and_then(|issued| inner.install(issued, started)));
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        let inner = &*self.inner;
        let outcome = self.outcome.take().unwrap_or(Err(ProviderError(
            "the token refresh ended early (panic or shutdown)",
        )));
        if let Err(e) = &outcome {
            tracing::warn!(
                target: crate::audit::AUDIT_TARGET,
                error = %e,
                "the token provider failed; retrying with a backoff"
            );
        }
        let done = {
            let mut refreshes = inner.lock();
            refreshes.running = false;
            match &outcome {
                Ok(()) => {
                    refreshes.retry_at = None;
                    refreshes.backoff = inner.min_backoff;
                }
                Err(_) => {
                    // Shortened at random by up to the jitter, so that a fleet whose provider
                    // failed does not call it again in step.
                    let backoff = refreshes.backoff.max(inner.min_backoff);
                    let wait = backoff.mul_f64(1.0 - rand_unit() * inner.jitter);
                    refreshes.retry_at = Instant::now().checked_add(wait.max(MIN_BACKOFF));
                    refreshes.backoff = backoff.saturating_mul(2).min(inner.max_backoff);
                }
            }
            refreshes.last_error = outcome.err();
            refreshes.started
        };
        inner.completed.send_if_modified(|completed| {
            let newer = done > *completed;
            if newer {
                *completed = done;
            }
            newer
        });
    }
}

/// A number in `[0, 1)`, from the process's random state (jitter needs no more).
fn rand_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(u64::from(std::process::id()));
    #[allow(clippy::cast_precision_loss)]
    let unit = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
    unit
}

/// The `exp` of a compact JWS, read without verifying it: a NumericDate, whole seconds or
/// not (a fraction is dropped); a negative one is in the past.
fn exp_of(token: &str) -> Option<u64> {
    use base64::Engine;
    #[derive(serde::Deserialize)]
    struct Exp {
        exp: serde_json::Number,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let exp = serde_json::from_slice::<Exp>(&bytes).ok()?.exp;
    if let Some(whole) = exp.as_u64() {
        return Some(whole);
    }
    let exp = exp.as_f64()?;
    // Saturating, as `as` is from a float: NaN cannot come from JSON.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = exp.max(0.0) as u64;
    Some(whole)
}

impl TokenSourceBuilder {
    /// The clock that turns a token's `exp` into a lifetime (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = clock.into_shared();
        self
    }

    /// The part of the lifetime after which a refresh starts (default 0.6), within 0.05 to
    /// 0.95.
    pub fn refresh_at(mut self, fraction: f64) -> Self {
        self.refresh_fraction = if fraction.is_finite() {
            fraction.clamp(0.05, 0.95)
        } else {
            0.6
        };
        self
    }

    /// How far (a part of the lifetime, either way) each refresh moves at random from the
    /// fraction (default 0.1, at most 0.3; 0 for none).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 0.3)
        } else {
            0.1
        };
        self
    }

    /// The wait after a first failure, doubling up to `max` (default 1 s to 60 s); each wait
    /// is shortened at random by up to the [`jitter`](Self::jitter).
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        // At least 100 ms, at most a day: a failing provider is never called on every request.
        let day = Duration::from_secs(86_400);
        self.min_backoff = first.clamp(MIN_BACKOFF, day);
        self.max_backoff = max.clamp(self.min_backoff, day);
        self
    }

    /// The longest a caller waits for a refresh (default 30 s, at most a day).
    pub fn wait_bound(mut self, bound: Duration) -> Self {
        self.wait_bound = bound.min(Duration::from_secs(86_400));
        self
    }

    /// How often at most a token the server refused is replaced (default 5 s): within that
    /// time of a forced refresh, a refusal of the token it brought is not another refresh (see
    /// [`TokenSource::force_refresh`]).
    ///
    /// It applies to any refused token, the first one too: a refusal within the cooldown of
    /// the last forced refresh keeps the token (unless it is expired). At least 100 ms, so
    /// that a server refusing everything never turns each request into a provider call.
    pub fn force_cooldown(mut self, cooldown: Duration) -> Self {
        self.force_cooldown = cooldown.max(MIN_BACKOFF);
        self
    }

    /// The source.
    pub fn build(self) -> TokenSource {
        TokenSource {
            inner: Arc::new(Inner {
                provider: self.provider,
                clock: self.clock,
                refresh_fraction: self.refresh_fraction,
                jitter: self.jitter,
                min_backoff: self.min_backoff,
                max_backoff: self.max_backoff,
                wait_bound: self.wait_bound,
                force_cooldown: self.force_cooldown,
                current: ArcSwapOption::empty(),
                refreshes: Mutex::new(Refreshes {
                    backoff: self.min_backoff,
                    ..Refreshes::default()
                }),
                completed: tokio::sync::watch::Sender::new(0),
                fetches: AtomicU64::new(0),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::outbound::ProviderFuture;
    use std::sync::atomic::AtomicBool;

    /// Counts its calls; each takes `delay`, then gives `token-N` for `lifetime`, or fails
    /// while `failing`.
    #[derive(Clone)]
    struct Counting {
        calls: Arc<AtomicU64>,
        failing: Arc<AtomicBool>,
        delay: Duration,
        lifetime: Duration,
    }

    impl Counting {
        fn new(delay: Duration, lifetime: Duration) -> Self {
            Self {
                calls: Arc::new(AtomicU64::new(0)),
                failing: Arc::new(AtomicBool::new(false)),
                delay,
                lifetime,
            }
        }
        fn calls(&self) -> u64 {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl TokenProvider for Counting {
        fn fetch(&self) -> ProviderFuture {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let (delay, lifetime) = (self.delay, self.lifetime);
            let failing = self.failing.load(Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                if failing {
                    return Err(ProviderError("down"));
                }
                Ok(IssuedToken::new(format!("token-{n}")).expires_in(lifetime))
            })
        }
    }

    fn source(provider: &Counting) -> TokenSource {
        TokenSource::builder(provider.clone()).jitter(0.0).build()
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refreshed_at_60_percent_and_never_handed_out_expired() {
        let provider = Counting::new(Duration::ZERO, Duration::from_secs(100));
        let source = source(&provider);
        assert_eq!(source.token().await.unwrap().as_str(), "token-1");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(source.token().await.unwrap().as_str(), "token-1");
        settle().await;
        assert_eq!(provider.calls(), 1, "not due before 60 %");
        tokio::time::advance(Duration::from_secs(2)).await;
        // Due: the current token still, and a refresh in the background.
        assert_eq!(source.token().await.unwrap().as_str(), "token-1");
        settle().await;
        assert_eq!(provider.calls(), 2);
        assert_eq!(source.token().await.unwrap().as_str(), "token-2");

        // The provider fails from now on: token-2 (fetched at 61 s, 100 s, margin 2 s) is used
        // until 61 + 98 s, never after.
        provider.failing.store(true, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(97)).await;
        assert_eq!(source.token().await.unwrap().as_str(), "token-2");
        tokio::time::advance(Duration::from_secs(2)).await;
        let refused = source.token().await;
        assert!(refused.is_err(), "{refused:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_who_looked_before_a_refresh_ended_starts_no_second_one() {
        let provider = Counting::new(Duration::ZERO, Duration::from_secs(100));
        let source = source(&provider);
        source.token().await.unwrap();
        // Due: a reader looks (the snapshot it saw), the refresh runs and ends, then the
        // reader asks for one.
        tokio::time::advance(Duration::from_secs(61)).await;
        let looked = source.inner.current.load_full();
        source.token_now().unwrap();
        settle().await;
        assert_eq!(provider.calls(), 2);
        assert!(source.inner.request(looked.as_ref()).is_some());
        settle().await;
        assert_eq!(
            provider.calls(),
            2,
            "the token it missed is there: no refresh"
        );
        // A caller who saw no token, while one is there now, starts none either.
        assert!(source.inner.request(None).is_some());
        settle().await;
        assert_eq!(provider.calls(), 2);
        assert_eq!(source.token().await.unwrap().as_str(), "token-2");
    }

    #[tokio::test(start_paused = true)]
    async fn the_backoff_is_shortened_by_the_jitter_at_most() {
        let provider = Counting::new(Duration::ZERO, Duration::from_secs(300));
        provider.failing.store(true, Ordering::SeqCst);
        let source = TokenSource::builder(provider.clone())
            .backoff(Duration::from_secs(10), Duration::from_secs(10))
            .jitter(0.3)
            .build();
        let mut waits = std::collections::HashSet::new();
        for _ in 0..50 {
            assert!(source.token().await.is_err());
            let wait = source.inner.lock().retry_at.unwrap() - Instant::now();
            assert!(
                wait >= Duration::from_secs(7) && wait <= Duration::from_secs(10),
                "{wait:?}"
            );
            waits.insert(wait.as_millis());
            tokio::time::advance(wait).await;
        }
        assert!(waits.len() > 10, "the waits vary: {waits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_token_is_kept_while_the_provider_backs_off() {
        let provider = Counting::new(Duration::ZERO, Duration::from_secs(100));
        let source = TokenSource::builder(provider.clone())
            .backoff(Duration::from_secs(8), Duration::from_secs(8))
            .jitter(0.0)
            .build();
        let first = source.token().await.unwrap();
        // Due at 60 s; the refresh fails: token-1 stays, the provider backs off 8 s.
        provider.failing.store(true, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(61)).await;
        source.token_now().unwrap();
        settle().await;
        assert_eq!(provider.calls(), 2);
        assert!(source.inner.lock().retry_at.is_some());
        // A 401 now: no refresh can replace the token, so it is kept, not dropped.
        assert!(!source.refused(&first), "kept during the backoff");
        assert_eq!(source.token().await.unwrap().as_str(), "token-1");
        assert_eq!(provider.calls(), 2);
        // After the backoff, with the provider back, the due refresh replaces it.
        provider.failing.store(false, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(9)).await;
        source.token_now().unwrap();
        settle().await;
        assert_eq!(source.token().await.unwrap().as_str(), "token-3");
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_waiters_share_one_refresh() {
        let provider = Counting::new(Duration::from_secs(1), Duration::from_secs(300));
        let source = source(&provider);
        let waiters: Vec<_> = (0..1_000)
            .map(|_| {
                let source = source.clone();
                tokio::spawn(async move { source.token().await })
            })
            .collect();
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap().unwrap().as_str(), "token-1");
        }
        assert_eq!(provider.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_provider_backs_off_and_recovers() {
        let provider = Counting::new(Duration::ZERO, Duration::from_secs(300));
        provider.failing.store(true, Ordering::SeqCst);
        let source = TokenSource::builder(provider.clone())
            .backoff(Duration::from_secs(1), Duration::from_secs(4))
            .jitter(0.0)
            .build();
        assert_eq!(source.token().await.unwrap_err(), ProviderError("down"));
        // During the backoff: the error at once, no call.
        assert_eq!(source.token().await.unwrap_err(), ProviderError("down"));
        assert_eq!(provider.calls(), 1);
        // 1 s, then 2 s, then 4 s (the cap), 4 s.
        for (wait, calls) in [(1, 2), (2, 3), (4, 4), (4, 5)] {
            tokio::time::advance(Duration::from_millis(wait * 1000 - 1)).await;
            assert!(source.token().await.is_err());
            assert_eq!(provider.calls(), calls - 1, "not before {wait} s");
            tokio::time::advance(Duration::from_millis(1)).await;
            assert!(source.token().await.is_err());
            assert_eq!(provider.calls(), calls);
        }
        provider.failing.store(false, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(source.token().await.unwrap().as_str(), "token-6");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_token_is_replaced_once_for_all_who_saw_it() {
        let provider = Counting::new(Duration::from_millis(100), Duration::from_secs(300));
        let source = source(&provider);
        let seen = source.token().await.unwrap();
        let refreshes: Vec<_> = (0..100)
            .map(|_| {
                let (source, seen) = (source.clone(), Arc::clone(&seen));
                tokio::spawn(async move { source.force_refresh(&seen).await })
            })
            .collect();
        for refresh in refreshes {
            assert_eq!(refresh.await.unwrap().unwrap().as_str(), "token-2");
        }
        assert_eq!(provider.calls(), 2);
        // A late caller with the old token gets the new one, without another call.
        assert_eq!(
            source.force_refresh(&seen).await.unwrap().as_str(),
            "token-2"
        );
        assert_eq!(provider.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_fresh_token_is_not_replaced_again_within_the_cooldown() {
        let provider = Counting::new(Duration::ZERO, Duration::from_secs(300));
        let source = source(&provider);
        let first = source.token().await.unwrap();
        let second = source.force_refresh(&first).await.unwrap();
        assert_eq!(second.as_str(), "token-2");
        // The new token refused at once: kept, no call, an error for the caller.
        assert!(!source.refused(&second));
        assert!(source.force_refresh(&second).await.is_err());
        assert_eq!(source.token().await.unwrap().as_str(), "token-2");
        assert_eq!(provider.calls(), 2);
        // After the cooldown, a refusal is a refresh again.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            source.force_refresh(&second).await.unwrap().as_str(),
            "token-3"
        );
        // A stale token reported late is answered with the current one, no call.
        assert!(source.refused(&first));
        assert_eq!(
            source.force_refresh(&first).await.unwrap().as_str(),
            "token-3"
        );
        assert_eq!(provider.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_that_is_no_header_value_is_a_provider_error() {
        let source = TokenSource::builder(|| async {
            Ok(IssuedToken::new("a\r\nX-Injected: yes").expires_in(Duration::from_secs(60)))
        })
        .build();
        let refused = source.token().await.unwrap_err();
        assert!(refused.0.contains("header"), "{refused}");
        assert!(source.token_now().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_lifetime_comes_from_exp_when_expires_in_is_absent() {
        use base64::Engine;
        let clock = FakeClock::at_unix_secs(1_800_000_000);
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"a","exp":1800000010}"#);
        let token = format!("eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln");
        let fractional =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1800000010.75}"#);
        assert_eq!(
            exp_of(&format!("e30.{fractional}.c2ln")),
            Some(1_800_000_010)
        );
        let negative = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":-5}"#);
        assert_eq!(exp_of(&format!("e30.{negative}.c2ln")), Some(0));
        let calls = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&calls);
        let source = TokenSource::builder(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let token = token.clone();
            async move { Ok(IssuedToken::new(token)) }
        })
        .clock(clock)
        .jitter(0.0)
        .build();
        source.token().await.unwrap();
        // 10 s lifetime: refreshed from 6 s on, not before.
        tokio::time::advance(Duration::from_millis(5_900)).await;
        source.token().await.unwrap();
        settle().await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_millis(200)).await;
        source.token().await.unwrap();
        settle().await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // No exp and no expires_in: refused, with a reason.
        let source = TokenSource::builder(|| async { Ok(IssuedToken::new("opaque")) }).build();
        assert_eq!(
            source.token().await.unwrap_err(),
            ProviderError("the token has no expires_in and no readable exp")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_within_its_bounds() {
        let provider = Counting::new(Duration::ZERO, Duration::from_secs(1_000));
        let source = TokenSource::builder(provider.clone())
            .jitter(0.1)
            .force_cooldown(Duration::ZERO)
            .build();
        assert_eq!(source.inner.force_cooldown, MIN_BACKOFF, "clamped");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let installed = Instant::now();
            let seen_token = source.token().await.unwrap();
            let current = source.inner.current.load_full().unwrap();
            let at = current.refresh_at - installed;
            assert!(
                at >= Duration::from_secs(500) && at <= Duration::from_secs(700),
                "{at:?}"
            );
            seen.insert(at.as_millis());
            tokio::time::advance(MIN_BACKOFF).await;
            source.force_refresh(&seen_token).await.unwrap();
        }
        assert!(seen.len() > 100, "the jitter varies: {} values", seen.len());
        assert!(seen.iter().any(|ms| *ms < 600_000) && seen.iter().any(|ms| *ms > 600_000));
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_lifetimes_and_a_panicking_provider_do_not_break_the_source() {
        // `expires_in` of u64::MAX seconds: believed for a year, no overflow.
        let source = TokenSource::builder(|| async {
            Ok(IssuedToken::new("long").expires_in(Duration::MAX))
        })
        .build();
        assert_eq!(source.token().await.unwrap().as_str(), "long");
        // A provider that panics: an error, then after the backoff a working call.
        let calls = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&calls);
        let source = TokenSource::builder(move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(n > 0, "a provider that panics");
                Ok(IssuedToken::new("after").expires_in(Duration::from_secs(60)))
            }
        })
        .build();
        assert!(source.token().await.is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(source.token().await.unwrap().as_str(), "after");
    }
}
