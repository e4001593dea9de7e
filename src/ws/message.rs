//! One view of WebSocket messages over axum's and tokio-tungstenite's types.

/// What a message is, as far as sessions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageKind<'a> {
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary,
    /// A ping (answered by the WebSocket library).
    Ping,
    /// A pong.
    Pong,
    /// A close frame, with its code when it has one.
    Close(Option<u16>),
    /// Anything else (raw frames).
    Other,
}

impl MessageKind<'_> {
    /// Whether the message carries application data (counted by message limits).
    pub fn is_data(&self) -> bool {
        matches!(self, Self::Text(_) | Self::Binary)
    }
}

/// A WebSocket message type the session helpers can read and build: implemented for axum's
/// `Message` (features `axum` + `websocket`) and tokio-tungstenite's `Message`.
pub trait SocketMessage: Send + Sized + 'static {
    /// What the message is.
    fn kind(&self) -> MessageKind<'_>;
    /// The payload's length in bytes (what the message-size limit measures).
    fn payload_len(&self) -> usize;
    /// A text message.
    fn text(text: String) -> Self;
    /// A close frame with `code` and `reason`.
    fn close(code: u16, reason: &'static str) -> Self;
}

impl SocketMessage for tokio_tungstenite::tungstenite::Message {
    fn kind(&self) -> MessageKind<'_> {
        use tokio_tungstenite::tungstenite::Message;
        match self {
            Message::Text(t) => MessageKind::Text(t.as_str()),
            Message::Binary(_) => MessageKind::Binary,
            Message::Ping(_) => MessageKind::Ping,
            Message::Pong(_) => MessageKind::Pong,
            Message::Close(frame) => MessageKind::Close(frame.as_ref().map(|f| u16::from(f.code))),
            Message::Frame(_) => MessageKind::Other,
        }
    }

    fn payload_len(&self) -> usize {
        self.len()
    }

    fn text(text: String) -> Self {
        Self::Text(text.into())
    }

    fn close(code: u16, reason: &'static str) -> Self {
        Self::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }))
    }
}

#[cfg(feature = "axum")]
impl SocketMessage for axum::extract::ws::Message {
    fn kind(&self) -> MessageKind<'_> {
        use axum::extract::ws::Message;
        match self {
            Message::Text(t) => MessageKind::Text(t.as_str()),
            Message::Binary(_) => MessageKind::Binary,
            Message::Ping(_) => MessageKind::Ping,
            Message::Pong(_) => MessageKind::Pong,
            Message::Close(frame) => MessageKind::Close(frame.as_ref().map(|f| f.code)),
        }
    }

    fn payload_len(&self) -> usize {
        use axum::extract::ws::Message;
        match self {
            Message::Text(t) => t.len(),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
            Message::Close(frame) => frame.as_ref().map_or(0, |f| 2 + f.reason.len()),
        }
    }

    fn text(text: String) -> Self {
        Self::Text(text.into())
    }

    fn close(code: u16, reason: &'static str) -> Self {
        Self::Close(Some(axum::extract::ws::CloseFrame {
            code,
            reason: reason.into(),
        }))
    }
}

/// How long a closing handshake may take: the close frame's send, then the client's reply.
pub(crate) const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Sends a close frame, then reads until the client's close reply ends the stream, so the
/// closing handshake completes (RFC 6455 §5.5.1); all of it within [`CLOSE_WAIT`], so a client
/// that does not read cannot hold the connection. Errors are ignored: the connection is ending
/// either way.
pub(crate) async fn close_gracefully<S, M, E>(socket: &mut S, code: u16, reason: &'static str)
where
    S: futures_util::Stream<Item = Result<M, E>> + futures_util::Sink<M, Error = E> + Unpin,
    M: SocketMessage,
{
    use futures_util::{SinkExt, StreamExt};
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        if socket.send(M::close(code, reason)).await.is_ok() {
            while let Some(Ok(_)) = socket.next().await {}
        }
    })
    .await;
}

/// Whether a WebSocket error means a message or frame over the configured size (tungstenite's
/// capacity error, also when wrapped, as axum wraps it).
pub(crate) fn is_too_big(error: &(dyn std::error::Error + 'static)) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(Error::Capacity(_)) = e.downcast_ref::<Error>() {
            return true;
        }
        current = e.source();
    }
    false
}
