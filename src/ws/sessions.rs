//! What every WebSocket session shares ([`WsSessions`]), and its configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::registry::SessionRegistry;
use crate::error::ConfigError;
use crate::rate_limit::{MessageGates, MessageLimiter, PlanFn, RateLimitStore};
use crate::response::Responder;
use crate::validate::Validator;

/// The default warning time before a session's token expires: 5 minutes.
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(5 * 60);

/// The default limit on an incoming message: 64 KiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// The default time a write to the client may take before the client is deemed not to read
/// and is disconnected: 10 seconds.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The default number of refused re-authentications after which a socket is closed: 3.
pub const DEFAULT_MAX_FAILED_REAUTH: u32 = 3;

pub(crate) struct Inner<C> {
    pub(crate) validator: Validator<C>,
    pub(crate) registry: SessionRegistry,
    pub(crate) messages: Option<MessageGates>,
    pub(crate) plan: Option<PlanFn<C>>,
    pub(crate) warn_before: Duration,
    pub(crate) max_tick: Duration,
    pub(crate) responder: Arc<dyn Responder>,
    pub(crate) max_message_size: usize,
    pub(crate) max_token_len: usize,
    pub(crate) send_timeout: Duration,
    pub(crate) max_failed_reauth: u32,
}

/// Everything sessions share: the validator (for re-authentication), the registry, the message
/// limiter and the timings. Built once; cheap to clone.
///
/// With axum, add it to the router as an `Extension` and take a [`WsSession`](super::WsSession) in the handler;
/// elsewhere call [`WsSessions::open`].
pub struct WsSessions<C> {
    pub(crate) inner: Arc<Inner<C>>,
}

impl<C> Clone for WsSessions<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C> fmt::Debug for WsSessions<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsSessions")
            .field("registry", &self.inner.registry)
            .field("messages", &self.inner.messages)
            .field("warn_before", &self.inner.warn_before)
            .finish_non_exhaustive()
    }
}

/// Configuration of [`WsSessions`].
pub struct WsSessionsBuilder<C> {
    inner: Inner<C>,
}

impl<C> fmt::Debug for WsSessionsBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsSessionsBuilder").finish_non_exhaustive()
    }
}

impl<C> WsSessionsBuilder<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// The registry (connection limits, statistics, revocation). Default: no limits.
    pub fn registry(mut self, registry: SessionRegistry) -> Self {
        self.inner.registry = registry;
        self
    }

    /// Per-user message limits, shared by all of a user's sessions.
    pub fn message_limiter<St: RateLimitStore>(mut self, limiter: MessageLimiter<St>) -> Self {
        self.inner.messages = Some(limiter.gates());
        self
    }

    /// Reads the plan from the claims (selects message quotas and connection limits).
    pub fn plan_by(mut self, plan: PlanFn<C>) -> Self {
        self.inner.plan = Some(plan);
        self
    }

    /// How long before expiry the client is warned (default 5 minutes).
    pub fn expiry_warning(mut self, before: Duration) -> Self {
        self.inner.warn_before = before;
        self
    }

    /// The longest a session waits before looking at the clock again (default 30 s). Deadlines
    /// are exact with the system clock; this bounds how late a session notices a clock that is
    /// moved by hand (tests use a few milliseconds).
    pub fn max_tick(mut self, tick: Duration) -> Self {
        self.inner.max_tick = tick;
        self
    }

    /// How a refused session (over a connection limit) is rendered (default
    /// [`default_responder`](crate::response::default_responder)); give it the stack's responder, e.g. a
    /// [`CloseFrameResponder`](super::CloseFrameResponder). See [`response`](crate::response).
    pub fn responder(mut self, responder: impl Responder) -> Self {
        self.inner.responder = Arc::new(responder);
        self
    }

    /// The largest incoming message (default 64 KiB); a larger one closes the socket with 1009.
    /// Give the same limit to the WebSocket library, so that it never buffers more
    /// ([`WsSession::configure`](super::WsSession::configure) for axum, [`WsSessions::websocket_config`] for
    /// tokio-tungstenite).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.inner.max_message_size = bytes;
        self
    }

    /// The longest token a re-authentication may carry (default
    /// [`DEFAULT_MAX_TOKEN_LEN`](crate::extract::DEFAULT_MAX_TOKEN_LEN), the extractor's
    /// default). Give it the authentication layer's cap
    /// ([`TokenExtractor::max_len`](crate::extract::TokenExtractor::max_len)) when you change
    /// that one: a longer token is refused as `INVALID_TOKEN` and counted as a failed attempt,
    /// as an oversized token is over HTTP, so a cap lower than HTTP's would count tokens that
    /// pass there.
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.inner.max_token_len = bytes;
        self
    }

    /// How long one write to the client may take (default 10 s). A client that does not read
    /// fills its connection's buffers; when a write cannot complete in time, the socket is
    /// closed (1008) and dropped, so nothing piles up for it.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.inner.send_timeout = timeout;
        self
    }

    /// After this many refused re-authentications on one socket it is closed with 1008
    /// (default 3).
    pub fn max_failed_reauth(mut self, n: u32) -> Self {
        self.inner.max_failed_reauth = n;
        self
    }

    /// Builds the shared session configuration.
    ///
    /// # Errors
    /// When `max_tick`, `send_timeout`, `max_message_size` or `max_failed_reauth` is zero.
    pub fn build(self) -> Result<WsSessions<C>, ConfigError> {
        let inner = self.inner;
        if inner.max_tick.is_zero() || inner.send_timeout.is_zero() {
            return Err(ConfigError::new(
                "the session tick and send timeout must not be zero",
            ));
        }
        if inner.max_message_size == 0 || inner.max_failed_reauth == 0 {
            return Err(ConfigError::new(
                "the message size limit and the re-authentication limit must not be zero",
            ));
        }
        Ok(WsSessions {
            inner: Arc::new(inner),
        })
    }
}

impl<C> WsSessions<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Starts a configuration; `validator` re-authenticates sessions (use the one of the
    /// authentication layer).
    pub fn builder(validator: Validator<C>) -> WsSessionsBuilder<C> {
        WsSessionsBuilder {
            inner: Inner {
                validator,
                registry: SessionRegistry::default(),
                messages: None,
                plan: None,
                warn_before: DEFAULT_EXPIRY_WARNING,
                max_tick: Duration::from_secs(30),
                responder: crate::response::default_responder(),
                max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
                max_token_len: crate::extract::DEFAULT_MAX_TOKEN_LEN,
                send_timeout: DEFAULT_SEND_TIMEOUT,
                max_failed_reauth: DEFAULT_MAX_FAILED_REAUTH,
            },
        }
    }

    /// The registry.
    pub fn registry(&self) -> &SessionRegistry {
        &self.inner.registry
    }

    /// The responder for refused sessions.
    #[cfg(feature = "axum")]
    pub(crate) fn responder(&self) -> &dyn Responder {
        &*self.inner.responder
    }

    /// The incoming message size limit.
    pub fn max_message_size(&self) -> usize {
        self.inner.max_message_size
    }

    /// A tokio-tungstenite configuration with the session's message size limit, for
    /// `WebSocketStream::from_raw_socket` (axum users call [`WsSession::configure`](super::WsSession::configure)).
    pub fn websocket_config(&self) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
        let limit = self.inner.max_message_size;
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(limit))
            .max_frame_size(Some(limit))
    }
}
