use futures_util::{Sink, SinkExt, Stream, StreamExt};

use super::SocketMessage;
use super::close::CLOSE_POLICY_VIOLATION;
use crate::rate_limit::{MessageGate, MessageVerdict};

/// A WebSocket whose incoming data messages pass through a [`MessageGate`]: an excess message
/// is not delivered and the client gets a `rate_limited` notice; a client that keeps flooding is
/// closed with 1008. Works over axum's `WebSocket` and tokio-tungstenite's `WebSocketStream`.
///
/// For the full session treatment (expiry, re-authentication, revocation, limits) use
/// [`AuthenticatedSocket`](super::AuthenticatedSocket), which does this too.
#[derive(Debug)]
pub struct RateLimitedSocket<S> {
    socket: S,
    gate: MessageGate,
    closed: bool,
}

impl<S, M, E> RateLimitedSocket<S>
where
    S: Stream<Item = Result<M, E>> + Sink<M, Error = E> + Unpin,
    M: SocketMessage,
{
    /// Wraps `socket`.
    pub fn new(socket: S, gate: MessageGate) -> Self {
        Self {
            socket,
            gate,
            closed: false,
        }
    }

    /// The next message within quota (control frames pass through); `None` when the
    /// connection is over, including after a 1008 close for flooding.
    pub async fn recv(&mut self) -> Option<Result<M, E>> {
        while !self.closed {
            let message = match self.socket.next().await? {
                Ok(message) => message,
                Err(e) => return Some(Err(e)),
            };
            if !message.kind().is_data() {
                // A client's close is handed over; the next read lets the WebSocket library
                // answer it and then ends the stream.
                return Some(Ok(message));
            }
            let verdict = self.gate.check().await;
            match verdict {
                MessageVerdict::Deliver => return Some(Ok(message)),
                MessageVerdict::Reject { .. } => {
                    let notice = verdict.notice().unwrap_or_default();
                    if let Err(e) = self.socket.send(M::text(notice)).await {
                        return Some(Err(e));
                    }
                }
                MessageVerdict::Close { reason } => {
                    let code = CLOSE_POLICY_VIOLATION;
                    self.closed = true;
                    crate::ws::close_gracefully(&mut self.socket, code, reason).await;
                }
            }
        }
        None
    }

    /// Sends a message.
    ///
    /// # Errors
    /// The socket's error.
    pub async fn send(&mut self, message: M) -> Result<(), E> {
        self.socket.send(message).await
    }

    /// The gate.
    pub fn gate(&self) -> &MessageGate {
        &self.gate
    }

    /// Unwraps the socket.
    pub fn into_inner(self) -> S {
        self.socket
    }
}
