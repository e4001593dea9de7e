//! The authentication layer: extract the token, validate it, and either call the inner service
//! with the claims in the request's extensions or answer with a rejection.
//!
//! ```
//! use axum::{Router, routing::get};
//! use serde::Deserialize;
//! use tower_jwt_guard::{Claims, JwtAuthLayer, keys::Key, validate::Validator};
//!
//! #[derive(Debug, Clone, Deserialize)]
//! struct MyClaims { sub: String }
//!
//! async fn me(Claims(claims): Claims<MyClaims>) -> String {
//!     claims.sub
//! }
//!
//! let validator = Validator::<MyClaims>::builder()
//!     .key(Key::hmac(b"0123456789abcdef0123456789abcdef")?)
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .layer(JwtAuthLayer::new(validator));
//! # Ok::<(), tower_jwt_guard::ConfigError>(())
//! ```
//!
//! - The service never returns an error of its own: a rejection is an `Ok` response whose body
//!   is a [`GuardBody`](crate::body::GuardBody) (so any inner body type works) and whose
//!   extensions carry an [`AuthRejection`](crate::outcome::AuthRejection); an accepted request
//!   gets the [`AuthContext`](crate::AuthContext) and [`Claims`](crate::Claims) (see
//!   [`outcome`](crate::outcome) for this contract between layers).
//! - In [optional mode](JwtAuthBuilder::optional) a request without any token passes with no
//!   claims (an [`Unauthenticated`](crate::outcome::Unauthenticated) marker is inserted
//!   instead); a bad token is still refused.
//! - Rejections are rendered by the [`Responder`](crate::response::Responder) given to
//!   [`JwtAuthBuilder::responder`] (JSON by default; close frames for WebSocket upgrades with
//!   [`CloseFrameResponder`](crate::ws::CloseFrameResponder)).
//! - `poll_ready` only forwards to the inner service; nothing is allocated for a request beyond
//!   what the validator and `http::Extensions` need, and no future is boxed unless a revocation
//!   hook is configured or the request waits for a remote key set's fetch (a `kid` not fetched
//!   yet).
//! - A token presented again is taken from a bounded cache of verified tokens (matched on its
//!   whole text; `exp`, `nbf`, the typed requirements and the revocation hook are still applied
//!   on every request); see
//!   [`JwtAuthBuilder::verified_token_cache`].

mod cache;
mod future;
mod layer;
mod service;

pub use cache::{DEFAULT_CAPACITY as DEFAULT_VERIFIED_CACHE, MAX_CACHED_TOKEN};
pub use future::ResponseFuture;
pub use layer::{JwtAuth, JwtAuthBuilder, JwtAuthLayer};
