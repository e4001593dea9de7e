use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tower_layer::Layer;

use super::JwtAuth;
use super::cache::VerifiedCache;
use crate::error::ConfigError;
use crate::extract::TokenExtractor;
use crate::response::{JsonResponder, Responder};
use crate::validate::Validator;

/// Everything a [`JwtAuth`] service needs, built once and shared.
pub(crate) struct AuthConfig<C> {
    pub(crate) validator: Validator<C>,
    pub(crate) extractor: TokenExtractor,
    pub(crate) optional: bool,
    pub(crate) responder: Box<dyn Responder>,
    /// Refuse WebSocket upgrades with a close frame instead of an HTTP status.
    pub(crate) close_frames: bool,
    /// Tokens already verified; `None` when disabled.
    pub(crate) cache: Option<VerifiedCache<C>>,
}

impl<C> AuthConfig<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Validates `token`, through the cache of verified tokens when it is on.
    pub(crate) fn validate(
        &self,
        token: &str,
    ) -> Result<crate::validate::Verified<C>, (crate::error::AuthError, Option<Arc<str>>)> {
        match &self.cache {
            Some(cache) => cache.validate(&self.validator, token),
            None => self.validator.validate_with_subject(token),
        }
    }
}

impl<C> AuthConfig<C> {
    /// The prefix of the token subprotocol, if that source is configured.
    pub(crate) fn token_protocol_prefix(&self) -> Option<&str> {
        self.extractor.sources().iter().find_map(|s| match s {
            crate::extract::TokenSource::WebSocketProtocol { prefix } => Some(&**prefix),
            _ => None,
        })
    }

    /// The response for a rejection of `req`: a close frame for WebSocket upgrades in
    /// close-frame mode, the responder's answer otherwise.
    pub(crate) fn rejection<B>(
        &self,
        req: &mut http::Request<B>,
        error: &crate::error::AuthError,
    ) -> http::Response<bytes::Bytes> {
        crate::response::reject_request(
            &*self.responder,
            req,
            error,
            self.close_frames.then(|| self.token_protocol_prefix()),
        )
    }
}

/// A [`Layer`] that authenticates requests with JWTs; see the [module docs](crate::auth).
pub struct JwtAuthLayer<C> {
    config: Arc<AuthConfig<C>>,
}

impl<C> Clone for JwtAuthLayer<C> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
        }
    }
}

impl<C> fmt::Debug for JwtAuthLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayer")
            .field("validator", &self.config.validator)
            .field("extractor", &self.config.extractor)
            .field("optional", &self.config.optional)
            .field("cache", &self.config.cache)
            .finish_non_exhaustive()
    }
}

impl<C> JwtAuthLayer<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// A layer reading `Authorization: Bearer`, requiring a token, answering with
    /// [`JsonResponder`].
    /// Keeps up to [`DEFAULT_VERIFIED_CACHE`](super::DEFAULT_VERIFIED_CACHE) verified tokens
    /// (see [`JwtAuthBuilder::verified_token_cache`]).
    pub fn new(validator: Validator<C>) -> Self {
        Self::from_config(AuthConfig {
            validator,
            extractor: TokenExtractor::default(),
            optional: false,
            responder: Box::new(JsonResponder::new()),
            close_frames: false,
            cache: VerifiedCache::new(super::DEFAULT_VERIFIED_CACHE),
        })
    }

    fn from_config(config: AuthConfig<C>) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// Starts a configuration.
    pub fn builder(validator: Validator<C>) -> JwtAuthBuilder<C> {
        JwtAuthBuilder {
            validator,
            extractor: TokenExtractor::default(),
            optional: false,
            responder: Box::new(JsonResponder::new()),
            close_frames: false,
            cache_capacity: super::DEFAULT_VERIFIED_CACHE,
        }
    }

    /// The validator, e.g. to re-authenticate a WebSocket session with the same rules.
    pub fn validator(&self) -> &Validator<C> {
        &self.config.validator
    }
}

impl<S, C> Layer<S> for JwtAuthLayer<C> {
    type Service = JwtAuth<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth::from_parts(inner, Arc::clone(&self.config))
    }
}

/// Configuration of a [`JwtAuthLayer`].
pub struct JwtAuthBuilder<C> {
    validator: Validator<C>,
    extractor: TokenExtractor,
    optional: bool,
    responder: Box<dyn Responder>,
    close_frames: bool,
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

    /// Replaces the [`JsonResponder`].
    pub fn responder(mut self, responder: impl Responder) -> Self {
        self.responder = Box::new(responder);
        self
    }

    /// Refuses WebSocket upgrades (HTTP/1.1) by completing them and closing at once with 4001
    /// (missing token), 4002 (invalid), 4003 (expired) or 4000 (other), for browsers, which
    /// cannot read a failed handshake's status. Other requests keep the HTTP responses.
    #[cfg(feature = "websocket")]
    pub fn websocket_close_frames(mut self) -> Self {
        self.close_frames = true;
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
        Ok(JwtAuthLayer::from_config(AuthConfig {
            validator: self.validator,
            extractor: self.extractor,
            optional: self.optional,
            responder: self.responder,
            close_frames: self.close_frames,
            cache: VerifiedCache::new(self.cache_capacity),
        }))
    }
}
