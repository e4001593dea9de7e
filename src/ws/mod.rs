//! WebSocket upgrade gating and authenticated sessions (feature `websocket`).
//!
//! A WebSocket is authenticated once, at the upgrade, and then lives for minutes or hours. This
//! module keeps it honest:
//!
//! - **The gate** is the [`JwtAuthLayer`](crate::JwtAuthLayer) itself: with the
//!   [`websocket_protocol`](crate::extract::TokenExtractor::websocket_protocol) source, browsers
//!   can send the token as a subprotocol. By default a refused upgrade gets the usual HTTP
//!   401/403/429 before any `101`; with the [`CloseFrameResponder`] given to every layer
//!   (`.responder(…)`), the upgrade completes and the socket is closed at once with 4001
//!   (missing token), 4002 (invalid), 4003 (expired), 4029 (locked out or rate limited) or 4000
//!   (other), for browsers, which cannot read a failed handshake's status. HTTP/2 extended
//!   CONNECT upgrades (RFC 8441) are recognized; close frames apply to HTTP/1.1, and HTTP/2
//!   upgrades are answered over HTTP. Every close code is in one list ([`close_code`] and the
//!   `CLOSE_*` constants).
//! - **A session** ([`WsSession`]) knows its subject, a unique id, plan, claims,
//!   authenticated-at and expires-at. [`WsSessions::open`] (or the axum extractor) reserves its
//!   connection slot, so per-user and global limits ([`ConnectionLimits`]) are enforced before
//!   the upgrade.
//! - **The socket**: [`WsSession::attach`] hands the upgraded socket to a task of the session's
//!   own, and the application talks to it through an [`AuthenticatedSocket`]. The task acts
//!   whether or not the application reads or writes at that moment:
//!   - when `exp` plus the leeway passes, it closes with 4003; a configurable time before
//!     (default 5 minutes, or at once if less is left) it sends
//!     `{"type":"token.expiring","expires_at":...}`;
//!   - a text message that parses as JSON with `"type":"reauth"` (however it is escaped) is a
//!     re-authentication and never reaches the application: a valid token for the same
//!     subject extends the session (`{"type":"reauth.ok","expires_at":...}`); anything else,
//!     a valid token for another user included, is answered
//!     `{"type":"reauth.failed","code":"..."}` and changes nothing. Refusals with an invalid or
//!     expired token count toward the lockout of the socket's address (through the
//!     [`FailureReport`](crate::lockout::FailureReport) the lockout put in the upgrade
//!     request), and after 3 refusals on one socket it is closed with 1008;
//!   - the per-user [`MessageLimiter`](crate::rate_limit::MessageLimiter) applies across all of
//!     the user's sessions (`rate_limited` notices; 1008 for a client that keeps sending at more
//!     than twice its rate for 3 seconds);
//!   - a message over the size limit (default 64 KiB) closes with 1009; give the library the
//!     same limit ([`WsSession::configure`] for axum, [`WsSessions::websocket_config`]) so it
//!     never buffers more;
//!   - a client that stops reading is disconnected once a write has waited for the send
//!     timeout (default 10 s); at most 8 messages wait in each direction, and the
//!     application's `send` waits when 8 are queued, so memory stays bounded;
//!   - [`SessionRegistry::revoke_user`] closes every live socket of a user at once with 4002,
//!     and [`SessionRegistry::send_to_user`] (any text) or [`SessionRegistry::notify_user`]
//!     (`{"type":"notification","message":...}`) reaches all of them, at most 32 waiting per
//!     socket;
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
//!     // `configure` selects the client's own subprotocol and sets the message size limit.
//!     session.configure(upgrade).on_upgrade(|socket| async move {
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
//! request's headers and extensions, upgrade, build the `WebSocketStream` with
//! [`WsSessions::websocket_config`], and `attach` it.

#[cfg(feature = "axum")]
mod axum;
mod close;
mod message;
mod rate_limited;
mod refuse;
mod registry;
mod session;
mod sessions;
mod socket;
pub(crate) mod wire;

pub use close::{
    CLOSE_AUTH_FAILED, CLOSE_INVALID_TOKEN, CLOSE_MESSAGE_TOO_BIG, CLOSE_MISSING_TOKEN,
    CLOSE_NORMAL, CLOSE_POLICY_VIOLATION, CLOSE_TOKEN_EXPIRED, CLOSE_TOO_MANY, close_code,
};
pub(crate) use message::close_gracefully;
pub use message::{MessageKind, SocketMessage};
pub use rate_limited::RateLimitedSocket;
pub use refuse::{CloseFrameResponder, CloseFrameRule, MAX_LINGERING_REFUSALS, refuse_upgrade};
pub use registry::{ConnectionLimits, SessionRegistry, SessionStats};
pub use session::WsSession;
pub use sessions::{
    DEFAULT_EXPIRY_WARNING, DEFAULT_MAX_FAILED_REAUTH, DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_SEND_TIMEOUT, WsSessions, WsSessionsBuilder,
};
pub use socket::{AuthenticatedSocket, SessionClosed, Transport};
