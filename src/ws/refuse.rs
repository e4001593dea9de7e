//! Refusing a WebSocket upgrade with a close frame, for browsers.
//!
//! A browser cannot read the status of a refused handshake: a `401` shows up in the page as a
//! bare close with code 1006. [`CloseFrameResponder`] answers an HTTP/1.1 upgrade that a layer
//! refuses by completing the handshake and closing at once with the rejection's close code
//! ([`close_code`]); every other request gets the wrapped responder's answer. Give the same
//! responder to every layer of the stack (`.responder(…)` on each builder, and on
//! [`WsSessionsBuilder`](super::WsSessionsBuilder) for connection limits).
//!
//! [`refuse_upgrade`] is the one place where the crate takes hyper's upgrade handle from a
//! refused request and spawns the task that sends the close frame.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::close::close_code;
use crate::error::AuthError;
use crate::response::{JsonResponder, Responder};

/// Which refused requests get a close frame: by default every HTTP/1.1 WebSocket upgrade.
pub type CloseFrameRule = fn(&Parts) -> bool;

/// A [`Responder`] that refuses HTTP/1.1 WebSocket upgrades with a close frame (4001 missing
/// token, 4002 invalid, 4003 expired, 4029 locked out or rate limited, 4000 other) and answers
/// everything else, HTTP/2 upgrades included, with the wrapped responder. A browser cannot read
/// the status of a refused handshake (a `401` shows up in the page as a bare close with 1006);
/// a close frame it can read. Give the same responder to every layer of the stack
/// (`.responder(…)` on each builder, and on [`WsSessionsBuilder`](super::WsSessionsBuilder) for
/// connection limits).
///
/// ```
/// use tower_jwt_guard::response::JsonResponder;
/// use tower_jwt_guard::ws::CloseFrameResponder;
///
/// let responder = CloseFrameResponder::new(JsonResponder::new());
/// // …then `.responder(responder.clone())` on the lockout, auth and rate-limit builders.
/// # let _ = responder;
/// ```
///
/// The subprotocol answered (browsers fail a handshake that answers none of those they
/// offered) is the first application protocol the client offered, never a token
/// ([`application_protocols`](crate::extract::application_protocols)).
#[derive(Debug, Clone)]
pub struct CloseFrameResponder<R = JsonResponder> {
    inner: R,
    rule: Option<CloseFrameRule>,
}

impl<R: Responder> CloseFrameResponder<R> {
    /// Close frames for refused upgrades, `inner`'s answer for the rest.
    pub fn new(inner: R) -> Self {
        Self { inner, rule: None }
    }

    /// Sends close frames only to the upgrades `rule` accepts (for example those carrying an
    /// `Origin` header, which browsers always send); the others get `inner`'s HTTP answer.
    pub fn when(mut self, rule: CloseFrameRule) -> Self {
        self.rule = Some(rule);
        self
    }
}

impl<R: Responder> Responder for CloseFrameResponder<R> {
    fn respond(&self, request: &mut Parts, error: &AuthError) -> Response<Bytes> {
        if self.rule.is_none_or(|rule| rule(request))
            && let Some(response) = refuse_upgrade(request, error)
        {
            return response;
        }
        self.inner.respond(request, error)
    }
}

/// How many refused sockets may wait for their client's close reply at once.
pub const MAX_LINGERING_REFUSALS: usize = 1024;

/// Refused sockets waiting for their client's close reply.
static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// Completes the HTTP/1.1 WebSocket upgrade `request` only to close it at once with the close
/// code of `error`: takes hyper's upgrade handle from the request and spawns the task that
/// sends the close frame once the `101` has gone out. `None` (and nothing taken) when the
/// request is not an upgrade hyper can complete; the caller then answers over HTTP.
///
/// After the close frame the task waits up to 5 s for the client's close reply, so that the
/// TCP close is clean; at most [`MAX_LINGERING_REFUSALS`] refused sockets wait at once, and
/// beyond that a socket is dropped right after its close frame, so a flood of refused upgrades
/// (from a locked address, say) holds no more tasks or connections than that for long.
pub fn refuse_upgrade(request: &mut Parts, error: &AuthError) -> Option<Response<Bytes>> {
    let headers = &request.headers;
    if !crate::extract::is_http1_upgrade(&request.method, headers)
        || headers
            .get(SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
    {
        return None;
    }
    let key = headers.get(SEC_WEBSOCKET_KEY)?;
    let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes())).ok()?;
    let protocol = crate::extract::application_protocols(headers)
        .next()
        .and_then(|p| HeaderValue::from_str(p).ok());
    let on_upgrade = request.extensions.remove::<hyper::upgrade::OnUpgrade>()?;

    let code = close_code(error.code());
    let reason = error.code().as_str();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let mut socket = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        let frame = CloseFrame {
            code: code.into(),
            reason: reason.into(),
        };
        if socket.send(Message::Close(Some(frame))).await.is_ok() {
            let lingering = LINGERING.fetch_add(1, Ordering::Relaxed);
            if lingering < MAX_LINGERING_REFUSALS {
                // Wait briefly for the client's close reply so the TCP close is clean.
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    while let Some(Ok(_)) = socket.next().await {}
                })
                .await;
            }
            LINGERING.fetch_sub(1, Ordering::Relaxed);
        }
    });

    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(protocol) = protocol {
        h.insert(http::header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::SEC_WEBSOCKET_PROTOCOL;

    fn upgrade(protocols: &str) -> Parts {
        let (parts, ()) = http::Request::get("/ws")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header(SEC_WEBSOCKET_PROTOCOL, protocols)
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn without_hyper_s_upgrade_handle_the_answer_is_http() {
        let responder = CloseFrameResponder::new(JsonResponder::new());
        let mut parts = upgrade("echo");
        let r = responder.respond(&mut parts, &AuthError::missing_token());
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn a_rule_keeps_other_upgrades_on_http() {
        let responder = CloseFrameResponder::new(JsonResponder::new())
            .when(|p| p.headers.contains_key("origin"));
        let mut parts = upgrade("echo");
        assert_eq!(
            responder
                .respond(&mut parts, &AuthError::expired())
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
}
