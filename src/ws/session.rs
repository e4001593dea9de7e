//! Authenticated WebSocket sessions: who is connected, and keeping that honest over time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{Extensions, HeaderMap};
use serde::de::DeserializeOwned;

use super::registry::{Reservation, SessionRegistry};
use crate::context::{AuthContext, Claims};
use crate::error::{AuthError, ConfigError};
use crate::lockout::FailureReport;
use crate::rate_limit::{MessageGates, MessageLimiter, PlanFn, RateLimitStore};
use crate::response::{JsonResponder, Responder};
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
    pub(crate) send_timeout: Duration,
    pub(crate) max_failed_reauth: u32,
}

/// Everything sessions share: the validator (for re-authentication), the registry, the message
/// limiter and the timings. Built once; cheap to clone.
///
/// With axum, add it to the router as an `Extension` and take a [`WsSession`] in the handler;
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
    /// [`JsonResponder`]); give it the stack's responder, e.g. a
    /// [`CloseFrameResponder`](super::CloseFrameResponder). See [`response`](crate::response).
    pub fn responder(mut self, responder: impl Responder) -> Self {
        self.inner.responder = Arc::new(responder);
        self
    }

    /// The largest incoming message (default 64 KiB); a larger one closes the socket with 1009.
    /// Give the same limit to the WebSocket library, so that it never buffers more
    /// ([`WsSession::configure`] for axum, [`WsSessions::websocket_config`] for
    /// tokio-tungstenite).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.inner.max_message_size = bytes;
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
                responder: Arc::new(JsonResponder::new()),
                max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
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
    pub(crate) fn responder(&self) -> &dyn Responder {
        &*self.inner.responder
    }

    /// The incoming message size limit.
    pub fn max_message_size(&self) -> usize {
        self.inner.max_message_size
    }

    /// A tokio-tungstenite configuration with the session's message size limit, for
    /// `WebSocketStream::from_raw_socket` (axum users call [`WsSession::configure`]).
    pub fn websocket_config(&self) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
        let limit = self.inner.max_message_size;
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(limit))
            .max_frame_size(Some(limit))
    }

    /// Opens a session for an authenticated upgrade request, from its headers and extensions:
    /// the [`AuthContext`] and [`Claims<C>`] the authentication layer put there, and the
    /// lockout's [`FailureReport`] when a [`LockoutLayer`](crate::lockout::LockoutLayer) runs in
    /// front (refused re-authentications then count toward the socket's address). Reserves the
    /// connection slot.
    ///
    /// # Errors
    /// `AUTH_FAILED` when the request was not authenticated by the layer; `INVALID_TOKEN` when
    /// the token has no subject; `RATE_LIMITED` over a connection limit.
    pub fn open(
        &self,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<WsSession<C>, AuthError> {
        let not_authenticated =
            || AuthError::auth_failed("the WebSocket route is not behind the authentication layer");
        let context = extensions
            .get::<AuthContext>()
            .cloned()
            .ok_or_else(not_authenticated)?;
        let Claims(claims) = extensions
            .get::<Claims<C>>()
            .cloned()
            .ok_or_else(not_authenticated)?;
        let subject = context
            .subject_arc()
            .cloned()
            .ok_or(AuthError::invalid_token(
                "a WebSocket session needs a subject (sub)",
            ))?;
        let plan = self
            .inner
            .plan
            .and_then(|f| f(&claims))
            .map(Box::<str>::from);
        let reservation = self
            .inner
            .registry
            .reserve(Arc::clone(&subject), plan.as_deref())?;
        Ok(WsSession {
            subject,
            plan,
            authenticated_at: self.inner.validator.clock().now().as_secs(),
            expires_at: context.expires_at(),
            protocols: crate::extract::application_protocols(headers)
                .map(Box::from)
                .collect(),
            context,
            claims,
            reservation,
            failures: extensions.get::<FailureReport>().cloned(),
            sessions: self.clone(),
        })
    }
}

/// One authenticated connection before the upgrade: who it is and until when. Its
/// [`attach`](Self::attach) turns the upgraded socket into an
/// [`AuthenticatedSocket`](super::AuthenticatedSocket).
pub struct WsSession<C> {
    pub(crate) subject: Arc<str>,
    pub(crate) plan: Option<Box<str>>,
    authenticated_at: u64,
    pub(crate) expires_at: Option<u64>,
    protocols: Vec<Box<str>>,
    pub(crate) context: AuthContext,
    pub(crate) claims: C,
    pub(crate) reservation: Reservation,
    pub(crate) failures: Option<FailureReport>,
    pub(crate) sessions: WsSessions<C>,
}

impl<C: fmt::Debug> fmt::Debug for WsSession<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsSession")
            .field("id", &self.reservation.id())
            .field("subject", &self.subject)
            .field("plan", &self.plan)
            .field("authenticated_at", &self.authenticated_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl<C> WsSession<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// The unique session id (distinct for each device of one user).
    pub fn id(&self) -> u64 {
        self.reservation.id()
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The plan, if the sessions read one.
    pub fn plan(&self) -> Option<&str> {
        self.plan.as_deref()
    }

    /// The claims of the token that opened the session.
    pub fn claims(&self) -> &C {
        &self.claims
    }

    /// The authentication context of the token that opened the session.
    pub fn context(&self) -> &AuthContext {
        &self.context
    }

    /// When the session was authenticated (Unix seconds).
    pub fn authenticated_at(&self) -> u64 {
        self.authenticated_at
    }

    /// When the token expires (Unix seconds); the session closes at this time plus the leeway.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// The subprotocols the client offered that may be selected, never the token one (see
    /// [`application_protocols`](crate::extract::application_protocols)): pass them to the
    /// upgrade (`WebSocketUpgrade::protocols`) so that the response selects one of them.
    pub fn application_protocols(&self) -> impl Iterator<Item = &str> {
        self.protocols.iter().map(|p| &**p)
    }
}
