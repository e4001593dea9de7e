use std::fmt;
use std::sync::Arc;

use http::Extensions;
use tower_layer::Layer;

use super::{MemoryRateStore, PlanQuotas, RateLimitStore};
use crate::clock::Clock;
use crate::context::AuthContext;
use crate::error::ConfigError;
use crate::response::{JsonResponder, Responder};

/// Reads the rate-limit key from a request's extensions.
pub type KeyFn = Box<dyn Fn(&Extensions) -> Option<Arc<str>> + Send + Sync>;

/// Reads the plan name from a request's extensions (e.g. from the typed claims).
pub type PlanFn = fn(&Extensions) -> Option<&str>;

/// Where the key comes from.
pub(crate) enum KeySource {
    /// The subject of the `AuthContext`, borrowed: no reference count is touched.
    Subject,
    /// A user function.
    Custom(KeyFn),
}

pub(crate) struct Shared<St> {
    pub(crate) store: St,
    pub(crate) key: KeySource,
    pub(crate) plan: Option<PlanFn>,
    pub(crate) reject_unauthenticated: bool,
    pub(crate) headers: bool,
    pub(crate) responder: Box<dyn Responder>,
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

/// A [`Layer`] that limits each authenticated user's requests; see the
/// [module docs](crate::rate_limit).
pub struct RateLimitLayer<St = MemoryRateStore> {
    shared: Arc<Shared<St>>,
}

impl<St> Clone for RateLimitLayer<St> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for RateLimitLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("store", &self.shared.store)
            .field(
                "reject_unauthenticated",
                &self.shared.reject_unauthenticated,
            )
            .field("headers", &self.shared.headers)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer<MemoryRateStore> {
    /// Starts a configuration with an in-memory store for `quotas`.
    pub fn builder(quotas: PlanQuotas) -> RateLimitBuilder<MemoryRateStore> {
        RateLimitBuilder::with_store(MemoryRateStore::new(quotas))
    }
}

impl<St> RateLimitLayer<St> {
    /// The store.
    pub fn store(&self) -> &St {
        &self.shared.store
    }
}

impl<S, St> Layer<S> for RateLimitLayer<St> {
    type Service = super::RateLimit<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        super::RateLimit::from_parts(inner, Arc::clone(&self.shared))
    }
}

/// Configuration of a [`RateLimitLayer`].
pub struct RateLimitBuilder<St> {
    store: St,
    key: KeySource,
    plan: Option<PlanFn>,
    reject_unauthenticated: bool,
    headers: bool,
    responder: Box<dyn Responder>,
}

impl<St: fmt::Debug> fmt::Debug for RateLimitBuilder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitBuilder")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl RateLimitBuilder<MemoryRateStore> {
    /// The clock of the in-memory store (default: a fast monotonic clock). Tests pass a
    /// `FakeClock`.
    pub fn clock(self, clock: impl Clock) -> Self {
        self.shared_clock(Arc::new(clock))
    }

    /// The clock, already shared.
    pub fn shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.store = MemoryRateStore::with_clock(self.store.quotas().clone(), clock);
        self
    }
}

impl<St: RateLimitStore> RateLimitBuilder<St> {
    /// A configuration over any store (for example a shared one).
    pub fn with_store(store: St) -> Self {
        Self {
            store,
            key: KeySource::Subject,
            plan: None,
            reject_unauthenticated: false,
            headers: false,
            responder: Box::new(JsonResponder::new()),
        }
    }

    /// Keys on something other than the subject: any value read from the extensions, e.g. a
    /// claim of [`Claims<C>`](crate::Claims) or a tenant id. Return a shared `Arc<str>` held in
    /// the extensions where you can, so that no request allocates.
    pub fn key_by(
        mut self,
        key: impl Fn(&Extensions) -> Option<Arc<str>> + Send + Sync + 'static,
    ) -> Self {
        self.key = KeySource::Custom(Box::new(key));
        self
    }

    /// Reads the plan that selects the quota, e.g.
    /// `|ext| ext.get::<Claims<MyClaims>>()?.plan.as_deref()`.
    pub fn plan_by(mut self, plan: PlanFn) -> Self {
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

    /// Replaces the [`JsonResponder`].
    pub fn responder(mut self, responder: impl Responder) -> Self {
        self.responder = Box::new(responder);
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    /// None today; kept fallible so that stores and options can validate.
    pub fn build(self) -> Result<RateLimitLayer<St>, ConfigError> {
        Ok(RateLimitLayer {
            shared: Arc::new(Shared {
                store: self.store,
                key: self.key,
                plan: self.plan,
                reject_unauthenticated: self.reject_unauthenticated,
                headers: self.headers,
                responder: self.responder,
            }),
        })
    }
}
