//! WebSocket upgrade gating and authenticated sessions (feature `websocket`).
//!
//! A WebSocket is authenticated once, at the upgrade, and then lives for minutes or hours. This
//! module keeps it honest:
//!
//! - **The gate** is the [`JwtAuthLayer`](crate::JwtAuthLayer) itself: with the
//!   [`websocket_protocol`](crate::extract::TokenExtractor::websocket_protocol) source, browsers
//!   can send the token as a subprotocol. By default a refused upgrade gets the usual HTTP
//!   401/403/429 before any `101`; in close-frame mode
//!   ([`JwtAuthBuilder::websocket_close_frames`](crate::auth::JwtAuthBuilder::websocket_close_frames),
//!   [`LockoutBuilder::websocket_close_frames`](crate::lockout::LockoutBuilder::websocket_close_frames))
//!   the upgrade completes and the socket is closed at once with 4001 (missing token), 4002
//!   (invalid), 4003 (expired), 4029 (locked out or rate limited) or 4000 (other), for browsers,
//!   which cannot read a failed handshake's status. HTTP/2 extended CONNECT upgrades (RFC 8441)
//!   are recognized; close-frame mode applies to HTTP/1.1 and HTTP/2 upgrades are answered over
//!   HTTP.
//! - **A session** ([`WsSession`]) knows its subject, a unique id, plan, claims,
//!   authenticated-at and expires-at. [`WsSessions::open`] (or the axum extractor) reserves its
//!   connection slot, so per-user and global limits ([`ConnectionLimits`]) are enforced before
//!   the upgrade.
//! - **The socket** ([`AuthenticatedSocket`], from [`WsSession::attach`]) hands the application
//!   only its own messages and takes care of the rest:
//!   - when `exp` plus the leeway passes, it closes with 4003; a configurable time before
//!     (default 5 minutes, or at once if less is left) it sends
//!     `{"type":"token.expiring","expires_at":...}`;
//!   - `{"type":"reauth","token":"..."}` is validated by the same validator; a token for the
//!     same subject extends the session (`{"type":"reauth.ok","expires_at":...}`), anything else
//!     is answered `{"type":"reauth.failed","code":"..."}` and changes nothing;
//!   - the per-user [`MessageLimiter`](crate::rate_limit::MessageLimiter) applies across all of
//!     the user's sessions (`rate_limited` notices, 1008 for flooding);
//!   - [`SessionRegistry::revoke_user`] closes every live socket of a user at once with 4002,
//!     and [`SessionRegistry::send_to_user`] reaches all of them;
//!   - when the client vanishes (no close frame), the slot is freed with the socket.
//!
//! With axum:
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::extract::ws::{Message, WebSocketUpgrade};
//! use axum::response::Response;
//! use tower_jwt_guard::ws::WsSession;
//! # #[derive(Clone, serde::Deserialize)] struct MyClaims {}
//!
//! // Take the session before the upgrade: axum's `WebSocketUpgrade` takes hyper's upgrade
//! // handle, which close-frame refusals of the session (connection limits) need.
//! async fn echo(session: WsSession<MyClaims>, upgrade: WebSocketUpgrade) -> Response {
//!     let protocols = session.application_protocols().to_vec();
//!     upgrade.protocols(protocols).on_upgrade(|socket| async move {
//!         let mut socket = session.attach(socket);
//!         while let Some(Ok(message)) = socket.recv().await {
//!             if let Message::Text(text) = message {
//!                 if socket.send(Message::Text(text)).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         }
//!     })
//! }
//! # }
//! ```
//!
//! The route sits behind the `JwtAuthLayer`, and the router carries the [`WsSessions`] as an
//! `Extension`. With tokio-tungstenite on plain hyper, call [`WsSessions::open`] with the
//! request's [`AuthContext`](crate::AuthContext) and [`Claims`](crate::Claims), upgrade, and
//! `attach` the `WebSocketStream`.

#[cfg(feature = "axum")]
mod axum;
mod message;
mod registry;
mod session;
mod upgrade;

pub(crate) use message::close_gracefully;
pub use message::{MessageKind, SocketMessage};
pub use registry::{ConnectionLimits, Reservation, SessionRegistry, SessionStats};
pub use session::{
    AuthenticatedSocket, ClaimsPlanFn, DEFAULT_EXPIRY_WARNING, WsSession, WsSessions,
    WsSessionsBuilder,
};
pub use upgrade::{
    CLOSE_AUTH_FAILED, CLOSE_INVALID_TOKEN, CLOSE_MISSING_TOKEN, CLOSE_TOKEN_EXPIRED,
    CLOSE_TOO_MANY, application_protocols, close_code,
};
pub(crate) use upgrade::{close_frame_rejection, close_frame_rejection_parts};
