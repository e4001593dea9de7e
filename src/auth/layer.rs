use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::Request;
use serde::de::DeserializeOwned;

use super::cache::VerifiedCache;
use crate::audit::{self, RequestInfo};
use crate::context::Claims;
use crate::error::{AuthError, ConfigError};
use crate::extract::TokenExtractor;
use crate::response::Responder;
use crate::validate::{Validator, Verified};

/// A validation result; on failure, the subject when the signature was good (for audit).
pub(crate) type Outcome<C> = Result<Option<Verified<C>>, (AuthError, Option<Arc<str>>)>;

/// Everything a [`JwtAuth`] service needs, built once and shared.
pub(crate) struct AuthConfig<C> {
    pub(crate) validator: Validator<C>,
    pub(crate) extractor: TokenExtractor,
    pub(crate) optional: bool,
    pub(crate) responder: Arc<dyn Responder>,
    /// Tokens already verified; `None` when disabled.
    pub(crate) cache: Option<VerifiedCache<C>>,
    /// Requests waiting for a remote key set's fetch (at most [`MAX_KEY_WAITERS`]).
    pub(crate) key_waiters: AtomicUsize,
}

/// At most this many requests of one layer wait for a remote key set's fetch at once; past
/// it, a token naming a key not yet fetched is refused at once (as without a remote set).
pub(crate) const MAX_KEY_WAITERS: usize = 1024;

/// One of the [`MAX_KEY_WAITERS`] places, given back when dropped.
pub(crate) struct KeyWaiter<C>(Arc<AuthConfig<C>>);

impl<C> KeyWaiter<C> {
    /// A place, if one is free.
    pub(crate) fn take(config: &Arc<AuthConfig<C>>) -> Option<Self> {
        config
            .key_waiters
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_KEY_WAITERS).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(Arc::clone(config)))
    }

    pub(crate) fn config(&self) -> &Arc<AuthConfig<C>> {
        &self.0
    }
}

impl<C> Drop for KeyWaiter<C> {
    fn drop(&mut self) {
        self.0.key_waiters.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<C> fmt::Debug for AuthConfig<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("validator", &self.validator)
            .field("extractor", &self.extractor)
            .field("optional", &self.optional)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<C> AuthConfig<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Extracts and validates the request's token: `Ok(None)` when it has none and the layer
    /// is optional; on failure, the subject when the signature was good (for audit).
    pub(crate) fn outcome<B>(&self, req: &Request<B>) -> Outcome<C> {
        match self.extractor.extract_request(req) {
            Err(e) => Err((e.into(), None)),
            Ok(None) if self.optional => Ok(None),
            Ok(None) => Err((AuthError::missing_token(), None)),
            Ok(Some(token)) => self.validate(token.as_str()).map(|mut v| {
                v.context.set_source(Some(token.source()));
                Some(v)
            }),
        }
    }

    /// Validates `token`, through the cache of verified tokens when it is on.
    pub(crate) fn validate(
        &self,
        token: &str,
    ) -> Result<Verified<C>, (AuthError, Option<Arc<str>>)> {
        match &self.cache {
            Some(cache) => cache.validate(&self.validator, token),
            None => self.validator.validate_with_subject(token),
        }
    }
}

/// Puts the verified context and claims where handlers find them, and tells outer layers
/// (see [`outcome`](crate::outcome)).
pub(crate) fn authenticate<B, C>(req: &mut Request<B>, verified: Verified<C>)
where
    C: Clone + Send + Sync + 'static,
{
    audit::accepted(&verified.context, RequestInfo::of(req));
    let extensions = req.extensions_mut();
    crate::outcome::authenticated(extensions, verified.context);
    extensions.insert(Claims(verified.claims));
}

crate::scaffold::middleware! {
    /// A [`Layer`](tower_layer::Layer) that authenticates requests with JWTs; see the
    /// [module docs](crate::auth).
    pub struct JwtAuthLayer<C>;
    /// The service produced by [`JwtAuthLayer`].
    pub struct JwtAuth;
    config: AuthConfig;
}

impl<C> JwtAuthLayer<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// A layer reading `Authorization: Bearer`, requiring a token, answering with
    /// [`default_responder`](crate::response::default_responder).
    /// Keeps up to [`DEFAULT_VERIFIED_CACHE`](super::DEFAULT_VERIFIED_CACHE) verified tokens
    /// (see [`JwtAuthBuilder::verified_token_cache`]).
    pub fn new(validator: Validator<C>) -> Self {
        Self::from_config(AuthConfig {
            validator,
            extractor: TokenExtractor::default(),
            optional: false,
            responder: crate::response::default_responder(),
            cache: VerifiedCache::new(super::DEFAULT_VERIFIED_CACHE),
            key_waiters: AtomicUsize::new(0),
        })
    }

    /// Starts a configuration.
    pub fn builder(validator: Validator<C>) -> JwtAuthBuilder<C> {
        JwtAuthBuilder {
            validator,
            extractor: TokenExtractor::default(),
            optional: false,
            responder: crate::response::default_responder(),
            cache_capacity: super::DEFAULT_VERIFIED_CACHE,
        }
    }

    /// The validator, e.g. to re-authenticate a WebSocket session with the same rules.
    pub fn validator(&self) -> &Validator<C> {
        &self.config.validator
    }
}

/// Configuration of a [`JwtAuthLayer`].
pub struct JwtAuthBuilder<C> {
    validator: Validator<C>,
    extractor: TokenExtractor,
    optional: bool,
    responder: Arc<dyn Responder>,
    cache_capacity: usize,
}

impl<C> fmt::Debug for JwtAuthBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthBuilder")
            .field("extractor", &self.extractor)
            .field("optional", &self.optional)
            .field("cache_capacity", &self.cache_capacity)
            .finish_non_exhaustive()
    }
}

impl<C> JwtAuthBuilder<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Where to look for the token (default: `Authorization: Bearer` only).
    pub fn extractor(mut self, extractor: TokenExtractor) -> Self {
        self.extractor = extractor;
        self
    }

    /// Lets requests without any token through, with no claims. A token that is present but
    /// invalid is still refused.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// How rejections are rendered (default [`default_responder`](crate::response::default_responder)); see
    /// [`response`](crate::response). Give every layer of a stack the same one.
    pub fn responder(mut self, responder: impl Responder) -> Self {
        self.responder = Arc::new(responder);
        self
    }

    /// How many verified tokens to keep so that a token presented again is not verified from
    /// scratch (default [`DEFAULT_VERIFIED_CACHE`](super::DEFAULT_VERIFIED_CACHE); `0` turns
    /// the cache off). A kept token is matched on its whole text; `exp`, `nbf` and the typed
    /// requirements are checked again, and the revocation hook runs, on every request. Tokens
    /// without `exp` or longer than [`MAX_CACHED_TOKEN`](super::MAX_CACHED_TOKEN) bytes are
    /// never kept. Memory: the tokens themselves plus a clone of their claims.
    pub fn verified_token_cache(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Builds the layer.
    ///
    /// # Errors
    /// When the extractor has no source.
    pub fn build(self) -> Result<JwtAuthLayer<C>, ConfigError> {
        if self.extractor.sources().is_empty() {
            return Err(ConfigError::new("the token extractor has no source"));
        }
        for source in self.extractor.sources() {
            if let crate::extract::TokenSource::WebSocketProtocol { prefix } = source {
                // A subprotocol is an RFC 7230 token: no separators, no whitespace. An empty
                // prefix would claim every offered subprotocol as a token.
                let valid = !prefix.is_empty()
                    && prefix
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                if !valid {
                    return Err(ConfigError::new(
                        "the WebSocket token subprotocol prefix must be a non-empty RFC 7230 \
                         token (letters, digits, and !#$%&'*+-.^_`|~)",
                    ));
                }
            }
        }
        Ok(JwtAuthLayer::from_config(AuthConfig {
            validator: self.validator,
            extractor: self.extractor,
            optional: self.optional,
            responder: self.responder,
            cache: VerifiedCache::new(self.cache_capacity),
            key_waiters: AtomicUsize::new(0),
        }))
    }
}
