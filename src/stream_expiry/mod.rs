//! Streaming responses bound to the token that opened them (feature `stream-expiry`).
//!
//! A token is checked once, when a request arrives; a response that streams for longer (a gRPC
//! server-streaming or bidirectional call, Server-Sent Events, a chunked download) would go on
//! after the token has expired. [`StreamExpiryLayer`], placed inside the authentication layer,
//! wraps the body of every authenticated response in an [`ExpiringBody`] that ends it when the
//! token's `exp` plus the validator's leeway passes, the way a WebSocket session closes with
//! 4003:
//!
//! - a gRPC response (`content-type: application/grpc*`, feature `tonic`) ends with trailers
//!   `grpc-status: 16` (`UNAUTHENTICATED`), `grpc-message` and `grpc-status-details-bin` with
//!   `ErrorInfo { reason: "TOKEN_EXPIRED", domain: "tower-jwt-guard" }`, in place of the
//!   service's own trailers (not yet sent); the client sees the call fail with that status;
//! - any other response simply ends: an SSE client reconnects (and meets the authentication
//!   layer with its expired token), a chunked body is cut short at a chunk boundary.
//!
//! The service's body is no longer polled from that point and is dropped with the response
//! (when the server is done with it), so a tonic handler's stream (or an SSE producer) sees
//! its receiver go away then. An `INFO` audit event (`outcome="stream_expired"`, `subject`)
//! records each such end. A body that has sent its own trailers has ended: nothing follows
//! them.
//!
//! Limits, by design or by the protocol:
//! - a non-gRPC body ends cleanly, so a client cannot tell a cut chunked download from a
//!   complete one by the framing alone (SSE clients reconnect either way);
//! - the end is sent when the server polls the body: a client that stops reading (an HTTP/2
//!   stream with no send window) keeps its stream open past the deadline until it reads, but
//!   receives nothing of the service's produced after the deadline, which is checked before
//!   every frame;
//! - the timer is tokio's: polling a waiting body on a runtime without the time driver
//!   panics ("timers are disabled"), as any tokio timer does.
//!
//! What is not wrapped: requests without an [`AuthContext`] or whose token has no `exp`
//! (optional authentication, tokens without expiry), and responses whose size is known in
//! advance (an exact `size_hint`: a body already produced is not a stream, and cutting it would
//! break its `content-length`).
//!
//! Cost: no task and no timer for a body that never waits. A timer (one allocation) is armed
//! the first time the service's body is pending, for the time left or `max_tick`, whichever is
//! shorter; at each wake the layer's clock is read again, so a [`FakeClock`] moved by a test
//! ends the stream within one `max_tick`. Needs a Tokio runtime with time enabled (tonic's and
//! axum's servers run on one).
//!
//! ```
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use tower_jwt_guard::{JwtAuthLayer, keys::Key, stream_expiry::StreamExpiryLayer, validate::Validator};
//!
//! # fn main() -> Result<(), tower_jwt_guard::ConfigError> {
//! let validator = Validator::<serde_json::Value>::builder()
//!     .key(Key::hmac(b"0123456789abcdef0123456789abcdef")?)
//!     .leeway(Duration::from_secs(5))
//!     .build()?;
//! let stack = ServiceBuilder::new()
//!     .layer(JwtAuthLayer::new(validator.clone()))
//!     // Inside the authentication layer: it reads the `AuthContext` auth inserts.
//!     .layer(StreamExpiryLayer::new(&validator));
//! # let _ = stack;
//! # Ok(()) }
//! ```
//!
//! [`AuthContext`]: crate::AuthContext
//! [`FakeClock`]: crate::clock::FakeClock

use std::time::Duration;

mod body;
mod future;
mod layer;

pub use body::ExpiringBody;
pub use future::ResponseFuture;
pub use layer::{StreamExpiry, StreamExpiryBuilder, StreamExpiryLayer};

/// How long a waiting stream sleeps at most before it reads the clock again, by default.
pub const DEFAULT_MAX_TICK: Duration = Duration::from_secs(30);
