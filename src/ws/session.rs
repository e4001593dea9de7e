//! Authenticated WebSocket sessions: who is connected, and keeping that honest over time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use http::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::registry::{Control, Reservation, SessionRegistry};
use super::upgrade::{CLOSE_TOKEN_EXPIRED, application_protocols};
use super::{MessageKind, SocketMessage};
use crate::audit::AUDIT_TARGET;
use crate::context::AuthContext;
use crate::error::{AuthError, ConfigError};
use crate::extract::DEFAULT_WEBSOCKET_PROTOCOL_PREFIX;
use crate::rate_limit::{MessageGate, MessageLimiter, MessageVerdict};
use crate::validate::Validator;

/// The default warning time before a session's token expires: 5 minutes.
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(5 * 60);

/// Reads the plan from the typed claims (selects message quotas and connection limits).
pub type ClaimsPlanFn<C> = fn(&C) -> Option<&str>;

struct Inner<C> {
    validator: Validator<C>,
    registry: SessionRegistry,
    messages: Option<MessageLimiter>,
    plan: Option<ClaimsPlanFn<C>>,
    warn_before: Duration,
    max_tick: Duration,
    token_prefix: Box<str>,
    close_frames: bool,
}

/// Everything sessions share: the validator (for re-authentication), the registry, the message
/// limiter and the timings. Built once; cheap to clone.
///
/// With axum, add it to the router as an `Extension` and take a [`WsSession`] in the handler;
/// elsewhere call [`WsSessions::open`].
pub struct WsSessions<C> {
    inner: Arc<Inner<C>>,
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
    validator: Validator<C>,
    registry: SessionRegistry,
    messages: Option<MessageLimiter>,
    plan: Option<ClaimsPlanFn<C>>,
    warn_before: Duration,
    max_tick: Duration,
    token_prefix: Box<str>,
    close_frames: bool,
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
        self.registry = registry;
        self
    }

    /// Per-user message limits, shared by all of a user's sessions.
    pub fn message_limiter(mut self, limiter: MessageLimiter) -> Self {
        self.messages = Some(limiter);
        self
    }

    /// Reads the plan from the claims.
    pub fn plan_by(mut self, plan: ClaimsPlanFn<C>) -> Self {
        self.plan = Some(plan);
        self
    }

    /// How long before expiry the client is warned (default 5 minutes).
    pub fn expiry_warning(mut self, before: Duration) -> Self {
        self.warn_before = before;
        self
    }

    /// The longest a session waits before looking at the clock again (default 30 s). Deadlines
    /// are exact with the system clock; this bounds how late a session notices a clock that is
    /// moved by hand (tests use a few milliseconds).
    pub fn max_tick(mut self, tick: Duration) -> Self {
        self.max_tick = tick;
        self
    }

    /// The subprotocol prefix that carries tokens (default
    /// [`DEFAULT_WEBSOCKET_PROTOCOL_PREFIX`]), so it is never offered back to the client.
    pub fn token_protocol_prefix(mut self, prefix: impl Into<Box<str>>) -> Self {
        self.token_prefix = prefix.into();
        self
    }

    /// Refuses a session over a connection limit with an accepted upgrade closed at once (4029)
    /// instead of HTTP 429.
    pub fn close_frames(mut self) -> Self {
        self.close_frames = true;
        self
    }

    /// Builds the shared session configuration.
    ///
    /// # Errors
    /// When `max_tick` is zero.
    pub fn build(self) -> Result<WsSessions<C>, ConfigError> {
        if self.max_tick.is_zero() {
            return Err(ConfigError::new("the session tick must not be zero"));
        }
        Ok(WsSessions {
            inner: Arc::new(Inner {
                validator: self.validator,
                registry: self.registry,
                messages: self.messages,
                plan: self.plan,
                warn_before: self.warn_before,
                max_tick: self.max_tick,
                token_prefix: self.token_prefix,
                close_frames: self.close_frames,
            }),
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
            validator,
            registry: SessionRegistry::default(),
            messages: None,
            plan: None,
            warn_before: DEFAULT_EXPIRY_WARNING,
            max_tick: Duration::from_secs(30),
            token_prefix: DEFAULT_WEBSOCKET_PROTOCOL_PREFIX.into(),
            close_frames: false,
        }
    }

    /// The registry.
    pub fn registry(&self) -> &SessionRegistry {
        &self.inner.registry
    }

    /// Whether connection-limit refusals use close frames.
    pub fn uses_close_frames(&self) -> bool {
        self.inner.close_frames
    }

    pub(crate) fn token_prefix(&self) -> &str {
        &self.inner.token_prefix
    }

    /// Opens a session for an authenticated upgrade request: reserves its connection slot.
    ///
    /// # Errors
    /// `INVALID_TOKEN` when the token has no subject; `RATE_LIMITED` over a connection limit.
    pub fn open(
        &self,
        context: AuthContext,
        claims: C,
        headers: &HeaderMap,
    ) -> Result<WsSession<C>, AuthError> {
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
            protocols: application_protocols(headers, Some(&self.inner.token_prefix)),
            context,
            claims,
            reservation,
            sessions: self.clone(),
        })
    }
}

/// One authenticated connection, before and after the upgrade: who it is and until when.
pub struct WsSession<C> {
    subject: Arc<str>,
    plan: Option<Box<str>>,
    authenticated_at: u64,
    expires_at: Option<u64>,
    protocols: Vec<String>,
    context: AuthContext,
    claims: C,
    reservation: Reservation,
    sessions: WsSessions<C>,
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

    /// The claims (updated by re-authentication).
    pub fn claims(&self) -> &C {
        &self.claims
    }

    /// The authentication context of the latest token.
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

    /// The subprotocols the client offered, without the token one: pass them to the upgrade
    /// (`WebSocketUpgrade::protocols`) so that the response selects one of them.
    pub fn application_protocols(&self) -> &[String] {
        &self.protocols
    }

    /// Wraps the upgraded socket: from now on the session is live (reachable by the
    /// registry), expires, warns, re-authenticates and applies message limits.
    pub fn attach<S>(mut self, socket: S) -> AuthenticatedSocket<S, C> {
        let control = self.reservation.go_live();
        let gate = self
            .sessions
            .inner
            .messages
            .as_ref()
            .map(|l| l.gate(Arc::clone(&self.subject), self.plan.as_deref()));
        AuthenticatedSocket {
            socket,
            session: self,
            control,
            gate,
            warned: false,
            closed: false,
            control_open: true,
        }
    }
}

/// A live authenticated WebSocket; see [`crate::ws`] for what it does for the application.
///
/// Expiry, revocation and re-authentication are acted on while the application waits in
/// [`recv`](Self::recv): a handler that only pushes messages must still poll `recv` (for
/// example in a `tokio::select!` beside its own source), or an expired or revoked session is
/// not closed.
pub struct AuthenticatedSocket<S, C> {
    socket: S,
    session: WsSession<C>,
    control: mpsc::UnboundedReceiver<Control>,
    gate: Option<MessageGate>,
    warned: bool,
    closed: bool,
    control_open: bool,
}

impl<S, C: fmt::Debug> fmt::Debug for AuthenticatedSocket<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatedSocket")
            .field("session", &self.session)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Reauth {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    token: String,
}

/// A re-authentication request, if `text` is one.
fn reauth_token(text: &str) -> Option<String> {
    // A message this long cannot hold a token within the cap: not a re-authentication.
    if text.len() > 2 * crate::extract::DEFAULT_MAX_TOKEN_LEN || !text.contains("\"reauth\"") {
        return None;
    }
    let message: Reauth = serde_json::from_str(text).ok()?;
    (message.kind == "reauth").then_some(message.token)
}

enum Next<M> {
    Message(M),
    Control(Control),
    ControlClosed,
    Tick,
    Ended,
}

impl<S, M, E, C> AuthenticatedSocket<S, C>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin,
    M: SocketMessage,
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// The session.
    pub fn session(&self) -> &WsSession<C> {
        &self.session
    }

    /// Sends a message to the client.
    ///
    /// # Errors
    /// The socket's error.
    pub async fn send(&mut self, message: M) -> Result<(), E> {
        self.socket.send(message).await
    }

    /// The next application message: data within the message limit, and control frames.
    /// Re-authentication requests, limit notices, expiry warnings, expiry and revocation are
    /// handled here. `None` once the session is over (the client left, or the session closed
    /// it).
    pub async fn recv(&mut self) -> Option<Result<M, E>> {
        while !self.closed {
            let tick = match self.on_time().await {
                Ok(tick) => tick,
                Err(e) => return Some(Err(e)),
            };
            let Some(tick) = tick else { break };
            let next = tokio::select! {
                control = self.control.recv(), if self.control_open => {
                    control.map_or(Next::ControlClosed, Next::Control)
                }
                message = self.socket.next() => match message {
                    None => Next::Ended,
                    Some(Err(e)) => return Some(Err(e)),
                    Some(Ok(m)) => Next::Message(m),
                },
                () = tokio::time::sleep(tick) => Next::Tick,
            };
            match next {
                Next::Ended => {
                    self.closed = true;
                }
                Next::Tick => {}
                Next::ControlClosed => self.control_open = false,
                Next::Control(Control::Send(text)) => {
                    if let Err(e) = self.socket.send(M::text(text.to_string())).await {
                        return Some(Err(e));
                    }
                }
                Next::Control(Control::Close(code, reason)) => {
                    self.end(code, reason).await;
                }
                // A message that arrives as the deadline passes is not delivered.
                Next::Message(_) if self.expired() => {
                    self.end(CLOSE_TOKEN_EXPIRED, "token expired").await;
                }
                Next::Message(message) => match self.on_message(message).await {
                    Ok(Some(message)) => return Some(Ok(message)),
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                },
            }
        }
        None
    }

    /// Whether the token's expiry plus the leeway has passed.
    fn expired(&self) -> bool {
        let inner = &self.session.sessions.inner;
        self.session.expires_at.is_some_and(|exp| {
            inner.validator.clock().now()
                >= Duration::from_secs(exp).saturating_add(inner.validator.leeway())
        })
    }

    /// Handles expiry and the warning; returns how long to wait for the next event, or `None`
    /// when the session has just been closed.
    async fn on_time(&mut self) -> Result<Option<Duration>, E> {
        let inner = &self.session.sessions.inner;
        let max_tick = inner.max_tick;
        let Some(exp) = self.session.expires_at else {
            return Ok(Some(max_tick));
        };
        let now = inner.validator.clock().now();
        let end = Duration::from_secs(exp).saturating_add(inner.validator.leeway());
        if now >= end {
            self.end(CLOSE_TOKEN_EXPIRED, "token expired").await;
            return Ok(None);
        }
        let warn_at = end.saturating_sub(inner.warn_before);
        if !self.warned && now >= warn_at {
            self.warned = true;
            let warning = format!(r#"{{"type":"token.expiring","expires_at":{exp}}}"#);
            self.socket.send(M::text(warning)).await?;
        }
        let next = if self.warned { end } else { warn_at };
        Ok(Some(next.saturating_sub(now).min(max_tick)))
    }

    async fn on_message(&mut self, message: M) -> Result<Option<M>, E> {
        let kind = message.kind();
        if !kind.is_data() {
            // A client's close is handed to the application; the next read lets the WebSocket
            // library answer it and then ends the stream.
            return Ok(Some(message));
        }
        if let Some(gate) = &mut self.gate {
            let verdict = gate.check();
            match verdict {
                MessageVerdict::Deliver => {}
                MessageVerdict::Reject { .. } => {
                    let notice = verdict.notice().unwrap_or_default();
                    self.socket.send(M::text(notice)).await?;
                    return Ok(None);
                }
                MessageVerdict::Close { code, reason } => {
                    self.end(code, reason).await;
                    return Ok(None);
                }
            }
        }
        if let MessageKind::Text(text) = kind
            && let Some(token) = reauth_token(text)
        {
            let reply = self.reauthenticate(&token).await;
            self.socket.send(M::text(reply)).await?;
            return Ok(None);
        }
        Ok(Some(message))
    }

    async fn reauthenticate(&mut self, token: &str) -> String {
        if token.len() > crate::extract::DEFAULT_MAX_TOKEN_LEN {
            return reauth_failed("INVALID_TOKEN", &self.session.subject, self.session.id());
        }
        let validator = &self.session.sessions.inner.validator;
        match validator.validate_and_check_revocation(token).await {
            Ok(verified) if verified.context.subject() == Some(&*self.session.subject) => {
                let plan = self.session.sessions.inner.plan;
                self.session.expires_at = verified.context.expires_at();
                self.session.plan = plan.and_then(|f| f(&verified.claims)).map(Box::from);
                if let Some(gate) = &mut self.gate {
                    gate.set_plan(self.session.plan.as_deref());
                }
                self.session.claims = verified.claims;
                self.session.context = verified.context;
                self.warned = false;
                tracing::debug!(
                    target: AUDIT_TARGET,
                    subject = %self.session.subject,
                    session = self.session.id(),
                    "WebSocket session re-authenticated"
                );
                match self.session.expires_at {
                    Some(exp) => format!(r#"{{"type":"reauth.ok","expires_at":{exp}}}"#),
                    None => r#"{"type":"reauth.ok","expires_at":null}"#.to_owned(),
                }
            }
            Ok(_) => reauth_failed("FORBIDDEN", &self.session.subject, self.session.id()),
            Err(e) => reauth_failed(e.code().as_str(), &self.session.subject, self.session.id()),
        }
    }

    async fn end(&mut self, code: u16, reason: &'static str) {
        self.closed = true;
        tracing::debug!(
            target: AUDIT_TARGET,
            subject = %self.session.subject,
            session = self.session.id(),
            code,
            reason,
            "WebSocket session closed by the server"
        );
        super::message::close_gracefully(&mut self.socket, code, reason).await;
    }
}

fn reauth_failed(code: &str, subject: &str, session: u64) -> String {
    tracing::info!(
        target: AUDIT_TARGET,
        subject,
        session,
        code,
        "WebSocket re-authentication refused"
    );
    format!(r#"{{"type":"reauth.failed","code":"{code}"}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reauth_messages_are_recognized() {
        assert_eq!(
            reauth_token(r#"{"type":"reauth","token":"a.b.c"}"#).as_deref(),
            Some("a.b.c")
        );
        assert_eq!(reauth_token(r#"{"type":"chat","text":"\"reauth\""}"#), None);
        assert_eq!(reauth_token("hello"), None);
        assert_eq!(reauth_token(r#"{"type":"reauth"}"#).as_deref(), Some(""));
    }
}
