use std::fmt;
use std::sync::Arc;

use http::Extensions;

use super::{MemoryRateLimitStore, PlanQuotas, RateLimitStore};
use crate::clock::Clock;
use crate::context::AuthContext;
use crate::error::{AuthError, ConfigError, ErrorCode};
use crate::response::Responder;

/// Reads the rate-limit key from a request's extensions (e.g. a tenant claim). Return an
/// `Arc<str>` held in the extensions where you can, so that no request allocates.
pub type KeyFn = fn(&Extensions) -> Option<Arc<str>>;

/// Reads the plan name that selects the quota: from a request's extensions (the
/// [`UserRateLimitLayer`]) or from the typed claims (WebSocket sessions).
pub type PlanFn<T> = fn(&T) -> Option<&str>;

/// Where the key comes from.
pub(crate) enum KeySource {
    /// The subject of the `AuthContext`, borrowed: no reference count is touched.
    Subject,
    /// A user function.
    Custom(KeyFn),
}

pub(crate) struct RateLimitConfig<St> {
    pub(crate) store: St,
    pub(crate) key: KeySource,
    pub(crate) plan: Option<PlanFn<Extensions>>,
    pub(crate) reject_unauthenticated: bool,
    pub(crate) headers: bool,
    pub(crate) responder: Arc<dyn Responder>,
}

impl<St: fmt::Debug> fmt::Debug for RateLimitConfig<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitConfig")
            .field("store", &self.store)
            .field("reject_unauthenticated", &self.reject_unauthenticated)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// The rejection of a user over quota.
pub(crate) fn rate_limited(retry_after: std::time::Duration) -> AuthError {
    AuthError::new(ErrorCode::RateLimited, "rate limit exceeded; slow down")
        .with_retry_after(retry_after)
}

/// A store that failed lets the request (or message) through, unless the store fails closed
/// ([`RateLimitStore::fails_closed`](super::RateLimitStore::fails_closed)), and then it is
/// refused. The error describes the store, never the request. At most one `ERROR` event per 10
/// seconds, with the number of failures since the last one, so that a store outage under load
/// does not flood the log.
pub(crate) fn store_failed(error: &dyn std::error::Error, fails_closed: bool) {
    static THROTTLE: crate::audit::Throttle = crate::audit::Throttle::new();
    let Some(failures) = THROTTLE.ready(10_000) else {
        return;
    };
    if fails_closed {
        tracing::error!(
            target: crate::audit::AUDIT_TARGET,
            error = %error,
            failures,
            "rate-limit store failed; requests and messages refused (fail-closed)"
        );
    } else {
        tracing::error!(
            target: crate::audit::AUDIT_TARGET,
            error = %error,
            failures,
            "rate-limit store failed; requests and messages let through (fail-open)"
        );
    }
}

/// The refusal of a request whose quota could not be checked (a fail-closed store failed).
pub(crate) fn store_unavailable() -> AuthError {
    AuthError::unavailable("the rate-limit store is unavailable; try again shortly")
}

impl KeySource {
    /// The key of a request, borrowed from its extensions when it can be.
    #[inline]
    pub(crate) fn key<'e>(
        &self,
        extensions: &'e Extensions,
    ) -> Option<std::borrow::Cow<'e, Arc<str>>> {
        match self {
            Self::Subject => extensions
                .get::<AuthContext>()
                .and_then(AuthContext::subject_arc)
                .map(std::borrow::Cow::Borrowed),
            Self::Custom(f) => f(extensions).map(std::borrow::Cow::Owned),
        }
    }
}

crate::scaffold::middleware! {
    /// A [`Layer`](tower_layer::Layer) that limits each authenticated user's requests; see the
    /// [module docs](crate::rate_limit).
    pub struct UserRateLimitLayer<St = MemoryRateLimitStore>;
    /// The service produced by [`UserRateLimitLayer`].
    pub struct UserRateLimit;
    config: RateLimitConfig;
}

impl UserRateLimitLayer<MemoryRateLimitStore> {
    /// Starts a configuration counting `quotas` in memory.
    pub fn builder(quotas: PlanQuotas) -> UserRateLimitBuilder<MemoryRateLimitStore> {
        UserRateLimitBuilder {
            store: MemoryRateLimitStore::new(quotas.clone()),
            quotas,
            clock: None,
            key: KeySource::Subject,
            plan: None,
            reject_unauthenticated: false,
            headers: false,
            responder: crate::response::default_responder(),
        }
    }
}

impl<St> UserRateLimitLayer<St> {
    /// The store.
    pub fn store(&self) -> &St {
        &self.config.store
    }
}

/// Configuration of a [`UserRateLimitLayer`].
pub struct UserRateLimitBuilder<St> {
    store: St,
    quotas: PlanQuotas,
    clock: Option<Arc<dyn Clock>>,
    key: KeySource,
    plan: Option<PlanFn<Extensions>>,
    reject_unauthenticated: bool,
    headers: bool,
    responder: Arc<dyn Responder>,
}

impl<St: fmt::Debug> fmt::Debug for UserRateLimitBuilder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRateLimitBuilder")
            .field("store", &self.store)
            .field("quotas", &self.quotas)
            .finish_non_exhaustive()
    }
}

impl<St: RateLimitStore> UserRateLimitBuilder<St> {
    /// Counts in `store` instead of memory (for example a store shared by a fleet). The store
    /// must count the layer's quotas ([`RateLimitStore::quotas`]); [`build`](Self::build)
    /// refuses one that does not.
    pub fn store<St2: RateLimitStore>(self, store: St2) -> UserRateLimitBuilder<St2> {
        UserRateLimitBuilder {
            store,
            quotas: self.quotas,
            clock: self.clock,
            key: self.key,
            plan: self.plan,
            reject_unauthenticated: self.reject_unauthenticated,
            headers: self.headers,
            responder: self.responder,
        }
    }

    /// The clock the store counts time with (default: the in-memory store's fast monotonic
    /// clock); see [`Clock`] for sharing one. A store that keeps its own time ignores it
    /// ([`RateLimitStore::with_clock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(clock.into_shared());
        self
    }

    /// Keys on something other than the subject: any value read from the extensions, e.g. a
    /// claim of [`Claims<C>`](crate::Claims) or a tenant id. Key on verified values: see the
    /// module docs on hashing.
    pub fn key_by(mut self, key: KeyFn) -> Self {
        self.key = KeySource::Custom(key);
        self
    }

    /// Reads the plan that selects the quota, e.g.
    /// `|ext| ext.get::<Claims<MyClaims>>()?.plan.as_deref()`.
    pub fn plan_by(mut self, plan: PlanFn<Extensions>) -> Self {
        self.plan = Some(plan);
        self
    }

    /// Requests without a key (not authenticated) get `401 MISSING_TOKEN` instead of passing
    /// through.
    pub fn reject_unauthenticated(mut self) -> Self {
        self.reject_unauthenticated = true;
        self
    }

    /// Adds the IETF `RateLimit-Policy` and `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers)
    /// to limited and allowed responses.
    pub fn rate_limit_headers(mut self) -> Self {
        self.headers = true;
        self
    }

    /// How `RATE_LIMITED` rejections are rendered (default [`default_responder`](crate::response::default_responder)); see
    /// [`response`](crate::response). Give every layer of a stack the same one.
    pub fn responder(mut self, responder: impl Responder) -> Self {
        self.responder = Arc::new(responder);
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    /// When the store counts other quotas than the ones the builder was started with.
    pub fn build(self) -> Result<UserRateLimitLayer<St>, ConfigError> {
        if *self.store.quotas() != self.quotas {
            return Err(ConfigError::new(
                "the rate-limit store counts other quotas than the layer's",
            ));
        }
        let store = match self.clock {
            Some(clock) => self.store.with_clock(clock),
            None => self.store,
        };
        Ok(UserRateLimitLayer::from_config(RateLimitConfig {
            store,
            key: self.key,
            plan: self.plan,
            reject_unauthenticated: self.reject_unauthenticated,
            headers: self.headers,
            responder: self.responder,
        }))
    }
}
