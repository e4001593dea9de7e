//! Recognizing WebSocket upgrades and refusing them with a close frame.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use crate::error::{AuthError, ErrorCode};
use crate::response::AuthRejection;

/// Close code: no token (4001).
pub const CLOSE_MISSING_TOKEN: u16 = 4001;
/// Close code: invalid token, or credentials revoked during the session (4002).
pub const CLOSE_INVALID_TOKEN: u16 = 4002;
/// Close code: the token expired (4003), at the upgrade or during the session.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4003;
/// Close code: locked out or rate limited (4029).
pub const CLOSE_TOO_MANY: u16 = 4029;
/// Close code: any other authentication failure (4000).
pub const CLOSE_AUTH_FAILED: u16 = 4000;

/// The close code for a rejection in close-frame mode.
pub fn close_code(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::MissingToken => CLOSE_MISSING_TOKEN,
        ErrorCode::InvalidToken => CLOSE_INVALID_TOKEN,
        ErrorCode::TokenExpired => CLOSE_TOKEN_EXPIRED,
        ErrorCode::LockedOut | ErrorCode::RateLimited => CLOSE_TOO_MANY,
        _ => CLOSE_AUTH_FAILED,
    }
}

/// The subprotocols the client offered that may be selected: never one carrying a token (the
/// default prefix, `token_prefix`, or any name longer than
/// [`MAX_APPLICATION_PROTOCOL_LEN`](crate::extract::MAX_APPLICATION_PROTOCOL_LEN)).
pub fn application_protocols(headers: &HeaderMap, token_prefix: Option<&str>) -> Vec<String> {
    crate::extract::application_protocols(headers, token_prefix)
        .map(str::to_owned)
        .collect()
}

/// Accepts an HTTP/1.1 upgrade only to close it at once with the close code of `error`, for
/// clients (browsers) that cannot see a failed handshake's status. `None` when the request is
/// not an HTTP/1.1 upgrade hyper can complete; the caller then answers over HTTP.
pub(crate) fn close_frame_rejection<B>(
    req: &mut Request<B>,
    error: &AuthError,
    token_prefix: Option<&str>,
) -> Option<Response<Bytes>> {
    let handshake = Handshake::of(req.method(), req.headers(), token_prefix)?;
    handshake.close(req.extensions_mut(), error)
}

/// [`close_frame_rejection`] over request parts (for extractors).
pub(crate) fn close_frame_rejection_parts(
    parts: &mut http::request::Parts,
    error: &AuthError,
    token_prefix: Option<&str>,
) -> Option<Response<Bytes>> {
    let handshake = Handshake::of(&parts.method, &parts.headers, token_prefix)?;
    handshake.close(&mut parts.extensions, error)
}

/// What the 101 answer needs from the request.
struct Handshake {
    accept: HeaderValue,
    protocol: Option<HeaderValue>,
}

impl Handshake {
    fn of(method: &Method, headers: &HeaderMap, token_prefix: Option<&str>) -> Option<Self> {
        if !crate::extract::is_http1_upgrade(method, headers)
            || headers
                .get(SEC_WEBSOCKET_VERSION)
                .map(HeaderValue::as_bytes)
                != Some(b"13")
        {
            return None;
        }
        let key = headers.get(SEC_WEBSOCKET_KEY)?;
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes())).ok()?;
        // Browsers fail a handshake that answers none of their offered subprotocols: answer
        // one, never the token.
        let protocol = application_protocols(headers, token_prefix)
            .into_iter()
            .next()
            .and_then(|p| HeaderValue::from_str(&p).ok());
        Some(Self { accept, protocol })
    }

    fn close(
        self,
        extensions: &mut http::Extensions,
        error: &AuthError,
    ) -> Option<Response<Bytes>> {
        let on_upgrade = extensions.remove::<hyper::upgrade::OnUpgrade>()?;
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
                // Wait briefly for the client's close reply so the TCP close is clean.
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    while let Some(Ok(_)) = socket.next().await {}
                })
                .await;
            }
        });

        let mut response = Response::new(Bytes::new());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = response.headers_mut();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(SEC_WEBSOCKET_ACCEPT, self.accept);
        if let Some(protocol) = self.protocol {
            h.insert(SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        response
            .extensions_mut()
            .insert(AuthRejection { code: error.code() });
        Some(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_protocols_skip_the_token() {
        let mut h = HeaderMap::new();
        h.append(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("base64url.bearer.authorization.jwt.abc, echo"),
        );
        h.append(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("chat"));
        assert_eq!(
            application_protocols(&h, Some("base64url.bearer.authorization.jwt.")),
            ["echo", "chat"]
        );
    }

    #[test]
    fn long_or_default_prefixed_protocols_are_never_selectable() {
        let mut h = HeaderMap::new();
        let custom_token = format!("x.jwt.{}", "a".repeat(80));
        h.append(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(&format!(
                "{custom_token}, base64url.bearer.authorization.jwt.abc, v12.stomp"
            ))
            .unwrap(),
        );
        // Whatever prefix the caller believes in, neither token is offered back.
        assert_eq!(application_protocols(&h, None), ["v12.stomp"]);
        assert_eq!(application_protocols(&h, Some("other.")), ["v12.stomp"]);
    }

    #[test]
    fn close_codes() {
        assert_eq!(close_code(ErrorCode::MissingToken), 4001);
        assert_eq!(close_code(ErrorCode::InvalidToken), 4002);
        assert_eq!(close_code(ErrorCode::TokenExpired), 4003);
        assert_eq!(close_code(ErrorCode::LockedOut), 4029);
        assert_eq!(close_code(ErrorCode::RateLimited), 4029);
        assert_eq!(close_code(ErrorCode::AuthFailed), 4000);
        assert_eq!(close_code(ErrorCode::Forbidden), 4000);
    }
}
