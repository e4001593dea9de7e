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

/// Sends a close frame, then reads until the client's close reply ends the stream (at most two
/// seconds), so the closing handshake completes (RFC 6455 §5.5.1). Errors are ignored: the
/// connection is ending either way.
pub(crate) async fn close_gracefully<S, M, E>(socket: &mut S, code: u16, reason: &'static str)
where
    S: futures_util::Stream<Item = Result<M, E>> + futures_util::Sink<M, Error = E> + Unpin,
    M: SocketMessage,
{
    use futures_util::{SinkExt, StreamExt};
    if socket.send(M::close(code, reason)).await.is_ok() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            while let Some(Ok(_)) = socket.next().await {}
        })
        .await;
    }
}
