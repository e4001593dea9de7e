//! A live session: the task that owns the socket, and the application's handle to it.
//!
//! The task keeps the session honest whatever the application does: it reads from the client
//! only while the application has room for what it reads (at most 8 messages wait), writes what
//! the application sends (at most 8 wait, each write bounded by the send timeout), and closes
//! the socket at the deadline, on revocation, on flooding, on an oversized message and after
//! repeated failed re-authentications. So a handler that only pushes, or that stopped reading,
//! cannot keep an expired session open, and a client that stopped reading cannot make the
//! server buffer without bound.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::close::{
    CLOSE_INVALID_TOKEN, CLOSE_MESSAGE_TOO_BIG, CLOSE_NORMAL, CLOSE_POLICY_VIOLATION,
    CLOSE_TOKEN_EXPIRED,
};
use super::message::{CLOSE_WAIT, is_too_big};
use super::registry::{Mailbox, Reservation};
use super::wire::{Outbound, Reauth, parse_reauth};
use super::{MessageKind, SocketMessage};
use super::{WsSession, WsSessions};
use crate::audit::AUDIT_TARGET;
use crate::context::AuthContext;
use crate::error::ErrorCode;
use crate::lockout::FailureReport;
use crate::rate_limit::{MessageGate, MessageVerdict};

/// Messages waiting for the application, and for the client.
///
/// The queues hold boxed messages: tokio allocates a block of 32 slots per channel whatever
/// its bound, which for axum's 48-byte messages was 2 080 bytes per queue and 4 KiB of every
/// session's memory; boxed, 800 bytes per queue, for one allocation per message queued.
const QUEUE: usize = 8;

/// A WebSocket the session helpers can own: a stream and sink of [`SocketMessage`]s, such as
/// axum's `WebSocket` or tokio-tungstenite's `WebSocketStream`.
pub trait Transport:
    Stream<Item = Result<Self::Message, Self::SocketError>>
    + Sink<Self::Message, Error = Self::SocketError>
    + Send
    + Unpin
    + 'static
{
    /// The message type.
    type Message: SocketMessage;
    /// The socket's error.
    type SocketError: std::error::Error + Send + Sync + 'static;
}

impl<S, M, E> Transport for S
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Send + Unpin + 'static,
    M: SocketMessage,
    E: std::error::Error + Send + Sync + 'static,
{
    type Message = M;
    type SocketError = E;
}

/// The session is over: the socket was closed (by the client, or by the session at expiry,
/// revocation or a limit), so the message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClosed;

impl fmt::Display for SessionClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the WebSocket session is closed")
    }
}

impl std::error::Error for SessionClosed {}

/// What the application and the session task both see; the task updates it on
/// re-authentication.
struct Live<C> {
    id: u64,
    subject: Arc<str>,
    /// The token's `exp`, `u64::MAX` when it has none.
    expires_at: AtomicU64,
    current: Mutex<(AuthContext, C)>,
}

/// A live authenticated WebSocket, as the application sees it: [`recv`](Self::recv) gives the
/// client's own messages, [`send`](Self::send) queues one for the client. The session's task
/// (see [`WsSession::attach`]) does the rest, so the application may read, write, or both, at
/// its own pace. Dropping the handle closes the socket normally (1000).
pub struct AuthenticatedSocket<S: Transport, C> {
    incoming: mpsc::Receiver<Box<Result<S::Message, S::SocketError>>>,
    outgoing: mpsc::Sender<Box<S::Message>>,
    live: Arc<Live<C>>,
}

impl<S: Transport, C> fmt::Debug for AuthenticatedSocket<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatedSocket")
            .field("id", &self.live.id)
            .field("subject", &self.live.subject)
            .field("closed", &self.outgoing.is_closed())
            .finish_non_exhaustive()
    }
}

impl<S: Transport, C: Clone> AuthenticatedSocket<S, C> {
    /// The next application message from the client: data within the limits, and control
    /// frames (a client's close is passed on). Re-authentication requests and over-limit
    /// messages never reach here. `None` once the session is over.
    pub async fn recv(&mut self) -> Option<Result<S::Message, S::SocketError>> {
        self.incoming.recv().await.map(|message| *message)
    }

    /// Queues `message` for the client; waits while 8 are already waiting.
    ///
    /// # Errors
    /// [`SessionClosed`] once the session is over.
    pub async fn send(&self, message: S::Message) -> Result<(), SessionClosed> {
        self.outgoing
            .send(Box::new(message))
            .await
            .map_err(|_| SessionClosed)
    }

    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        self.outgoing.is_closed()
    }

    /// The session id.
    pub fn id(&self) -> u64 {
        self.live.id
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.live.subject
    }

    /// When the current token expires (Unix seconds), updated by re-authentication.
    pub fn expires_at(&self) -> Option<u64> {
        let exp = self.live.expires_at.load(Ordering::Acquire);
        (exp != u64::MAX).then_some(exp)
    }

    /// The claims of the current token (updated by re-authentication).
    pub fn claims(&self) -> C {
        self.live
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    /// The authentication context of the current token.
    pub fn context(&self) -> AuthContext {
        self.live
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }
}

impl<C> WsSession<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Hands the upgraded socket to the session, which from now on owns it: a task of its own
    /// (no matter whether the application reads or writes) closes it when the token expires
    /// (4003) or the user is revoked (4002), warns before expiry, answers re-authentications,
    /// applies the message rate and size limits, delivers notifications and drops a client
    /// that stops reading. The application talks through the returned
    /// [`AuthenticatedSocket`].
    ///
    /// # Panics
    /// Outside a Tokio runtime (the session's task is spawned on the current one).
    pub fn attach<S: Transport>(self, socket: S) -> AuthenticatedSocket<S, C> {
        attach(self, socket)
    }
}

/// Starts the session's task over `socket`.
fn attach<S, C>(session: WsSession<C>, socket: S) -> AuthenticatedSocket<S, C>
where
    S: Transport,
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    let WsSession {
        subject,
        plan,
        expires_at,
        context,
        claims,
        mut reservation,
        failures,
        sessions,
        ..
    } = session;
    let mailbox = reservation.go_live();
    let gate = sessions
        .inner
        .messages
        .as_ref()
        .map(|l| l.gate(Arc::clone(&subject), plan.as_deref()));
    let live = Arc::new(Live {
        id: reservation.id(),
        subject,
        expires_at: AtomicU64::new(expires_at.unwrap_or(u64::MAX)),
        current: Mutex::new((context, claims)),
    });
    let (sink, stream) = socket.split();
    let (to_app, incoming) = mpsc::channel(QUEUE);
    let (outgoing, from_app) = mpsc::channel(QUEUE);
    let driver = Driver {
        sink,
        stream,
        sessions,
        live: Arc::clone(&live),
        mailbox,
        gate,
        failures,
        to_app,
        from_app,
        expires_at,
        warned: false,
        failed_reauth: 0,
        _reservation: reservation,
    };
    tokio::spawn(driver.run());
    AuthenticatedSocket {
        incoming,
        outgoing,
        live,
    }
}

/// Why the session ends: with a close frame of ours, or because the connection already ended.
type End = Option<(u16, &'static str)>;

/// What woke the task.
enum Event<M, E> {
    Tick,
    Mailbox,
    FromApp(Option<M>),
    AppHasRoom,
    FromClient(Option<Result<M, E>>),
}

struct Driver<S: Transport, C> {
    sink: SplitSink<S, S::Message>,
    stream: SplitStream<S>,
    sessions: WsSessions<C>,
    live: Arc<Live<C>>,
    mailbox: Arc<Mailbox>,
    gate: Option<MessageGate>,
    failures: Option<FailureReport>,
    to_app: mpsc::Sender<Box<Result<S::Message, S::SocketError>>>,
    from_app: mpsc::Receiver<Box<S::Message>>,
    expires_at: Option<u64>,
    warned: bool,
    failed_reauth: u32,
    /// Frees the connection slot when the task ends.
    _reservation: Reservation,
}

impl<S, C> Driver<S, C>
where
    S: Transport,
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    async fn run(mut self) {
        let Err(end) = self.serve().await;
        if let Some((code, reason)) = end {
            self.close(code, reason).await;
        }
        // Dropping the task drops both halves of the socket (the connection closes), the
        // application's queue (its `recv` ends) and the reservation (the slot is freed).
    }

    /// The session's loop; returns how it ends.
    async fn serve(&mut self) -> Result<std::convert::Infallible, End> {
        loop {
            let wait = self.on_time().await?;
            if let Some(close) = self.mailbox.take_close() {
                return Err(Some(close));
            }
            while let Some(text) = self.mailbox.next_text() {
                self.write(S::Message::text(text.to_string())).await?;
            }
            let event = tokio::select! {
                biased;
                () = self.mailbox.closing.notified() => Event::Mailbox,
                () = self.mailbox.wake.notified() => Event::Mailbox,
                () = tokio::time::sleep(wait) => Event::Tick,
                message = self.from_app.recv() => Event::FromApp(message.map(|m| *m)),
                _ = self.to_app.reserve(), if self.to_app.capacity() == 0 => Event::AppHasRoom,
                message = self.stream.next(), if self.to_app.capacity() > 0 => {
                    Event::FromClient(message)
                }
            };
            match event {
                Event::Tick | Event::Mailbox | Event::AppHasRoom => {}
                Event::FromApp(Some(message)) => self.write(message).await?,
                // The application is done with the session: a normal close.
                Event::FromApp(None) => return Err(Some((CLOSE_NORMAL, ""))),
                Event::FromClient(None) => return Err(None),
                Event::FromClient(Some(Err(e))) => {
                    if is_too_big(&e) {
                        return Err(Some((CLOSE_MESSAGE_TOO_BIG, "message too big")));
                    }
                    let _ = self.to_app.try_send(Box::new(Err(e)));
                    return Err(None);
                }
                Event::FromClient(Some(Ok(message))) => self.on_message(message).await?,
            }
        }
    }

    /// The deadline: the token's `exp` plus the leeway.
    fn deadline(&self) -> Option<Duration> {
        let leeway = self.sessions.inner.validator.leeway();
        self.expires_at
            .map(|exp| Duration::from_secs(exp).saturating_add(leeway))
    }

    /// The time left until the deadline (zero once it has passed); `None` without `exp`.
    fn time_left(&self) -> Option<Duration> {
        let now = self.sessions.inner.validator.clock().now();
        self.deadline().map(|end| end.saturating_sub(now))
    }

    /// Ends the session at the deadline and sends the warning before it; returns how long to
    /// wait for the next event of time.
    async fn on_time(&mut self) -> Result<Duration, End> {
        let inner = &self.sessions.inner;
        let max_tick = inner.max_tick;
        // The validator's revocation list, looked at on every tick: a revocation by `jti`, or
        // one that raced the upgrade, ends the session within `max_tick` (a subject's
        // revocation usually ends it at once, through `SessionRegistry::revoke_user`).
        if let Some(list) = inner.validator.revocations()
            && !list.is_empty()
        {
            let current = self
                .live
                .current
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if list.is_revoked(&current.0) {
                return Err(Some((CLOSE_INVALID_TOKEN, "credentials revoked")));
            }
        }
        let (Some(end), Some(exp)) = (self.deadline(), self.expires_at) else {
            return Ok(max_tick);
        };
        let now = inner.validator.clock().now();
        if now >= end {
            return Err(Some((CLOSE_TOKEN_EXPIRED, "token expired")));
        }
        let warn_at = end.saturating_sub(inner.warn_before);
        if !self.warned && now >= warn_at {
            self.warned = true;
            let warning = Outbound::TokenExpiring { expires_at: exp }.to_text();
            self.write(S::Message::text(warning)).await?;
        }
        let next = if self.warned { end } else { warn_at };
        Ok(next.saturating_sub(now).min(max_tick))
    }

    /// Writes one message. While the write waits (the client is not reading), the deadline
    /// and a revocation still end the session on time; a write that has not completed within
    /// the send timeout ends it too.
    async fn write(&mut self, message: S::Message) -> Result<(), End> {
        let deadline = self.deadline();
        let inner = &self.sessions.inner;
        let clock = inner.validator.clock();
        let give_up = tokio::time::Instant::now() + inner.send_timeout;
        let send = self.sink.send(message);
        tokio::pin!(send);
        loop {
            let mut wait = give_up
                .saturating_duration_since(tokio::time::Instant::now())
                .min(inner.max_tick);
            if let Some(end) = deadline {
                let left = end.saturating_sub(clock.now());
                if left.is_zero() {
                    return Err(Some((CLOSE_TOKEN_EXPIRED, "token expired")));
                }
                wait = wait.min(left);
            }
            if wait.is_zero() {
                tracing::info!(
                    target: AUDIT_TARGET,
                    subject = ?self.live.subject,
                    session = self.live.id,
                    "WebSocket client is not reading; disconnected"
                );
                return Err(Some((CLOSE_POLICY_VIOLATION, "client not reading")));
            }
            tokio::select! {
                biased;
                sent = &mut send => return sent.map_err(|_| None),
                () = self.mailbox.closing.notified() => {
                    if let Some(close) = self.mailbox.take_close() {
                        return Err(Some(close));
                    }
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn expired(&self) -> bool {
        self.time_left().is_some_and(|left| left.is_zero())
    }

    async fn on_message(&mut self, message: S::Message) -> Result<(), End> {
        // A message that arrives as the deadline passes is not delivered.
        if self.expired() {
            return Err(Some((CLOSE_TOKEN_EXPIRED, "token expired")));
        }
        let kind = message.kind();
        if !kind.is_data() {
            // A client's close is handed to the application; the next read lets the WebSocket
            // library answer it and then ends the stream.
            let _ = self.to_app.try_send(Box::new(Ok(message)));
            return Ok(());
        }
        if message.payload_len() > self.sessions.inner.max_message_size {
            return Err(Some((CLOSE_MESSAGE_TOO_BIG, "message too big")));
        }
        if let Some(gate) = &mut self.gate {
            let verdict = gate.check().await;
            match verdict {
                MessageVerdict::Deliver => {}
                MessageVerdict::Reject { .. } => {
                    let notice = verdict.notice().unwrap_or_default();
                    return self.write(S::Message::text(notice)).await;
                }
                MessageVerdict::Close { reason } => {
                    return Err(Some((CLOSE_POLICY_VIOLATION, reason)));
                }
            }
        }
        if let MessageKind::Text(text) = kind
            && let Some(reauth) = parse_reauth(text)
        {
            let token = match reauth {
                Reauth::Token(token) => Some(token.into_owned()),
                Reauth::Unusable => None,
            };
            let reply = self.reauthenticate(token.as_deref()).await?;
            self.write(S::Message::text(reply)).await?;
            if self.failed_reauth >= self.sessions.inner.max_failed_reauth {
                return Err(Some((
                    CLOSE_POLICY_VIOLATION,
                    "too many failed re-authentications",
                )));
            }
            return Ok(());
        }
        let _ = self.to_app.try_send(Box::new(Ok(message)));
        Ok(())
    }

    /// Validates a re-authentication; returns the reply for the client, or how the session
    /// ends when the socket's address is locked.
    async fn reauthenticate(&mut self, token: Option<&str>) -> Result<String, End> {
        if let Some(report) = &self.failures
            && report.locked().await.is_some()
        {
            // A locked address is refused on every protocol, open sockets included.
            tracing::info!(
                target: AUDIT_TARGET,
                subject = ?self.live.subject,
                session = self.live.id,
                "WebSocket re-authentication from a locked address; closing"
            );
            let reply = Outbound::ReauthFailed {
                code: ErrorCode::LockedOut.as_str(),
            }
            .to_text();
            self.write(S::Message::text(reply)).await?;
            return Err(Some((CLOSE_POLICY_VIOLATION, "address locked out")));
        }
        let validator = &self.sessions.inner.validator;
        let outcome = match token {
            // Validation may wait on a revocation hook: never past the deadline. Only the
            // validation is bounded, so that a refusal is always reported to the lockout below.
            Some(token) if token.len() <= self.sessions.inner.max_token_len => {
                let validation = validator.validate_and_check_revocation(token);
                match self.time_left() {
                    Some(left) => tokio::time::timeout(left, validation)
                        .await
                        .map_err(|_| Some((CLOSE_TOKEN_EXPIRED, "token expired")))?,
                    None => validation.await,
                }
            }
            Some(_) => Err(crate::error::AuthError::invalid_token(
                "the token exceeds the maximum size",
            )),
            // No token to validate (absent, not a string, twice): nothing was guessed, so it is
            // refused without being reported to the lockout.
            None => Err(crate::error::AuthError::invalid_request(
                "the re-authentication carries no usable token",
            )),
        };
        let code = match outcome {
            Ok(verified) if verified.context.subject() == Some(&*self.live.subject) => {
                let inner = &self.sessions.inner;
                self.expires_at = verified.context.expires_at();
                self.live
                    .expires_at
                    .store(self.expires_at.unwrap_or(u64::MAX), Ordering::Release);
                let plan = inner.plan.and_then(|f| f(&verified.claims));
                if let Some(gate) = &mut self.gate {
                    gate.set_plan(plan);
                }
                *self
                    .live
                    .current
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = (verified.context, verified.claims);
                self.warned = false;
                tracing::debug!(
                    target: AUDIT_TARGET,
                    subject = ?self.live.subject,
                    session = self.live.id,
                    "WebSocket session re-authenticated"
                );
                return Ok(Outbound::ReauthOk {
                    expires_at: self.expires_at,
                }
                .to_text());
            }
            // A valid token for someone else: refused like a forged one, so the answer does not
            // tell the two apart; not a failed guess of a credential, so not counted.
            Ok(_) => ErrorCode::InvalidToken,
            Err(e) => {
                if let Some(report) = &self.failures {
                    report.report(e.code()).await;
                }
                e.code()
            }
        };
        self.failed_reauth += 1;
        tracing::info!(
            target: AUDIT_TARGET,
            subject = ?self.live.subject,
            session = self.live.id,
            code = code.as_str(),
            failed = self.failed_reauth,
            "WebSocket re-authentication refused"
        );
        Ok(Outbound::ReauthFailed {
            code: code.as_str(),
        }
        .to_text())
    }

    /// Sends our close frame and waits for the client's reply, all within [`CLOSE_WAIT`].
    async fn close(&mut self, code: u16, reason: &'static str) {
        tracing::debug!(
            target: AUDIT_TARGET,
            subject = ?self.live.subject,
            session = self.live.id,
            code,
            reason,
            revoked = code == CLOSE_INVALID_TOKEN,
            "WebSocket session closed by the server"
        );
        let (sink, stream) = (&mut self.sink, &mut self.stream);
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            if sink.send(S::Message::close(code, reason)).await.is_ok() {
                while let Some(Ok(_)) = stream.next().await {}
            }
        })
        .await;
    }
}
