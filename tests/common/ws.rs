//! A real WebSocket client (tokio-tungstenite over a TCP connection from a chosen loopback
//! address), and what the tests assert about what it receives. Every wait is bounded by
//! [`WAIT`].

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{HeaderName, StatusCode};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Upper bound for any single wait on a socket.
pub const WAIT: Duration = Duration::from_secs(5);

/// A client socket.
pub type Ws = WebSocketStream<TcpStream>;
/// The server's answer to the handshake.
pub type Handshake = http::Response<Option<Vec<u8>>>;

pub fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Opens a WebSocket to `path` from `from`, with `headers`.
pub async fn connect_from(
    addr: SocketAddr,
    from: Ipv4Addr,
    path: &str,
    headers: &[(&str, String)],
) -> Result<(Ws, Handshake), WsError> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let handshake = async {
        let socket = TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddrV4::new(from, 0).into())
            .expect("bind a loopback source address");
        let stream = socket.connect(addr).await.expect("TCP connect");
        tokio_tungstenite::client_async(req, stream).await
    };
    timeout(WAIT, handshake).await.expect("handshake timed out")
}

pub fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

/// Opens a WebSocket to `path` from 127.0.0.1.
pub async fn connect(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
) -> Result<(Ws, Handshake), WsError> {
    connect_from(addr, ip(1), path, headers).await
}

/// The next text message, skipping control frames.
pub async fn next_text(ws: &mut Ws) -> String {
    loop {
        match timeout(WAIT, ws.next()).await.expect("no message in time") {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(Message::Close(frame))) => panic!("closed: {frame:?}"),
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

pub async fn json_text(ws: &mut Ws) -> Value {
    let text = next_text(ws).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Sends `text` and expects it back.
pub async fn assert_echo(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("send");
    assert_eq!(next_text(ws).await, text);
}

/// Reads to the close frame, asserting that no data message comes before it; returns its code.
pub async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match timeout(WAIT, ws.next()).await.expect("no close in time") {
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(Message::Text(t))) => panic!("data before the close frame: {t}"),
            Some(Ok(Message::Binary(b))) => panic!("data before the close frame: {b:?}"),
            Some(Ok(_)) => continue,
            other => panic!("ended without a close code: {other:?}"),
        }
    }
}

/// A refused upgrade in close-frame mode: 101, then a close with `code` and no echo of a
/// message sent right away.
pub async fn assert_closed_with(
    result: Result<(Ws, Handshake), WsError>,
    code: u16,
    reason: &str,
) -> Handshake {
    let (mut ws, response) = result.unwrap_or_else(|e| panic!("expected a 101, got {e:?}"));
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    // The client may already have the close frame; a send error is fine.
    let _ = ws.send(Message::text("must not be echoed")).await;
    let frame = loop {
        match timeout(WAIT, ws.next()).await.expect("no close in time") {
            Some(Ok(Message::Close(Some(frame)))) => break frame,
            Some(Ok(Message::Text(t))) => panic!("a refused client got data: {t}"),
            Some(Ok(Message::Binary(b))) => panic!("a refused client got data: {b:?}"),
            Some(Ok(_)) => continue,
            other => panic!("ended without a close code: {other:?}"),
        }
    };
    assert_eq!(u16::from(frame.code), code, "{frame:?}");
    assert_eq!(frame.reason.as_str(), reason);
    // Nothing follows the close.
    while let Ok(Some(Ok(message))) = timeout(WAIT, ws.next()).await {
        assert!(
            !message.is_text() && !message.is_binary(),
            "data after the close: {message:?}"
        );
    }
    response
}

/// A refused upgrade in HTTP mode: `status` and the JSON `code`, no upgrade.
pub fn assert_http(result: Result<(Ws, Handshake), WsError>, status: u16, code: &str) {
    match result {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status().as_u16(), status);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().expect("a body")).unwrap();
            assert_eq!(body["error"]["code"], code, "{body}");
        }
        Err(e) => panic!("expected HTTP {status}, got {e:?}"),
        Ok((_, response)) => panic!(
            "expected HTTP {status}, got an upgrade ({})",
            response.status()
        ),
    }
}

/// Waits for the close frame, skipping any message before it, and returns its code.
pub async fn wait_for_close(ws: &mut Ws) -> u16 {
    loop {
        match timeout(WAIT, ws.next()).await.expect("no close in time") {
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(_)) => continue,
            other => panic!("ended without a close code: {other:?}"),
        }
    }
}
