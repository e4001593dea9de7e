//! Per-IP lockout after repeated failed authentication attempts (brute-force protection).
//!
//! The [`LockoutLayer`] goes **outside** the authentication layer, so that it sees the
//! authentication layer's rejections and can refuse a locked address before any token is parsed:
//!
//! ```
//! use tower::ServiceBuilder;
//! use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy};
//! # use tower_jwt_guard::{JwtAuthLayer, keys::Key, validate::Validator};
//! # #[derive(Clone, serde::Deserialize)] struct MyClaims {}
//! # let validator = Validator::<MyClaims>::builder()
//! #     .key(Key::hmac(b"0123456789abcdef0123456789abcdef")?).build()?;
//!
//! let stack = ServiceBuilder::new()
//!     .layer(LockoutLayer::builder(LockoutPolicy::new()).build()?) // outer: sees failures
//!     .layer(JwtAuthLayer::new(validator));                        // inner: produces them
//! # let _ = stack;
//! # Ok::<(), tower_jwt_guard::ConfigError>(())
//! ```
//!
//! - A request whose response carries an [`AuthRejection`](crate::outcome::AuthRejection) with
//!   a counted code (by default `INVALID_TOKEN` and `TOKEN_EXPIRED`) is a failure of its client
//!   address. [`LockoutPolicy::max_failures`] failures within the window lock the address for the
//!   lock duration, optionally longer for repeat offenders ([`Escalation`]).
//! - A locked address gets `429 LOCKED_OUT` with `Retry-After` for every request, with or
//!   without a valid token; the inner service (and so the token parser) is not called.
//! - The client address is the peer address, or behind trusted proxies the one a
//!   [`ClientIpResolver`](crate::client_ip::ClientIpResolver) finds; IPv6 is grouped by /64.
//!   A request whose peer address is unknown (the server did not record it, see
//!   [`peer`](crate::peer)) passes unchecked and uncounted, with a `DEBUG` event (and a `WARN`
//!   the first time, since it usually means the server was wired without connection info).
//! - When an address becomes locked, a `WARN` event is emitted on the audit target and the
//!   [`on_lock`](LockoutBuilder::on_lock) hook runs once.
//! - State lives in a [`LockoutStore`]; the default [`MemoryLockoutStore`] is bounded, costs the same
//!   per request however full it is, and keeps locking when full (by /24 or /48 prefix; see
//!   its docs). It needs no cleanup task.
//! - On WebSocket upgrade requests the layer adds a [`FailureReport`] to the request's
//!   extensions, through which failures after the request (refused re-authentications on the
//!   live socket) count toward the same address.
//!
//! Placed inside the authentication layer instead, the lockout layer would never see a
//! rejection and would count nothing.

mod future;
mod layer;
mod memory;
mod policy;
mod report;
mod service;
mod store;

pub use future::ResponseFuture;
pub use layer::{LockEvent, Lockout, LockoutBuilder, LockoutLayer};
pub use memory::MemoryLockoutStore;
pub use policy::{Escalation, LockoutPolicy};
pub use report::FailureReport;
pub use store::{FailureOutcome, LockStatus, LockoutStore};
