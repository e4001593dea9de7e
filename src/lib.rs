//! Tower layers that authenticate HTTP and WebSocket traffic with JWTs, for any hyper-based
//! server: axum, tonic, or hyper itself.
//!
//! | module | what it does |
//! |---|---|
//! | [`extract`] | finds the token: `Authorization: Bearer`, query, header, cookie, WebSocket subprotocol; ordered, size-capped, conflicts refused |
//! | [`keys`] | verification keys bound to their algorithm family and `kid`: secrets, PEM, JWK, JWKS |
//! | [`validate`] | verifies the token with `jsonwebtoken` and checks `exp`/`nbf` (with leeway), `iss`, `aud`, required claims, typed predicates, revocation |
//! | [`auth`] | the [`JwtAuthLayer`] tying it together |
//! | [`error`], [`response`], [`body`] | stable rejection codes, the default RFC 6750 JSON response, the body wrapper |
//! | [`context`] | what handlers get: [`AuthContext`] and [`Claims<C>`] |
//! | [`audit`] | `tracing` events for every decision, never with token text |
//! | [`lockout`] | per-IP lockout after repeated failed attempts, bounded memory |
//! | [`rate_limit`] | per-user quotas (per plan, per route) for requests and WebSocket messages, keyed on the validated subject |
//! | [`ws`] | WebSocket upgrade gating (HTTP or close-frame rejections) and authenticated sessions: expiry, warnings, re-auth, message limits, connection limits, revocation |
//! | [`client_ip`] | the client address: peer only, proxy headers only behind trusted proxies |
//! | [`clock`] | injectable time, so tests never sleep |
//! | [`peer`] | the connection's peer address |
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use serde::Deserialize;
//! use tower_jwt_guard::{Claims, JwtAuthLayer, keys::Key, validate::Validator};
//!
//! #[derive(Debug, Clone, Deserialize)]
//! struct MyClaims { sub: String }
//!
//! let validator = Validator::<MyClaims>::builder()
//!     .key(Key::hmac(b"0123456789abcdef0123456789abcdef")?)
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/me", get(|Claims(c): Claims<MyClaims>| async move { c.sub }))
//!     .layer(JwtAuthLayer::new(validator));
//! # Ok::<(), tower_jwt_guard::ConfigError>(())
//! ```
//!
//! # Features
//!
//! | feature | default | what it enables |
//! |---|---|---|
//! | `aws-lc-rs` | yes | crypto backend aws-lc-rs; chosen when both backends are enabled |
//! | `rust-crypto` | no | crypto backend from the RustCrypto crates (pure Rust) |
//! | `axum` | yes | axum extractors for [`Claims`] and [`AuthContext`], and reading axum's `ConnectInfo` |
//! | `websocket` | yes | the [`ws`] module and [`RateLimitedSocket`](ws::RateLimitedSocket), over tokio-tungstenite and (with `axum`) axum's `WebSocket` |
//!
//! One crypto backend is required: a build with neither fails to compile with a message saying
//! so (see [`crypto`]).
//!
//! # Security
//!
//! - Algorithms come from configuration only; keys are bound to their family; `none` never
//!   passes; `exp` is required unless explicitly waived; HMAC secrets under 32 bytes are refused.
//! - Two different tokens in one request are refused; tokens over the cap are refused before
//!   decoding.
//! - No token, secret or query string is ever written to a log, an error, a `Debug` output or a
//!   panic message; tokens from two sources are compared in constant time.
//! - Rejections are responses with stable codes, never errors of the service and never panics.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, rust_2018_idioms, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod audit;
pub mod auth;
#[cfg(feature = "axum")]
pub mod axum;
pub mod body;
#[cfg(feature = "lockout")]
pub mod client_ip;
pub mod clock;
pub mod context;
pub mod crypto;
pub mod error;
pub mod extract;
pub mod keys;
#[cfg(feature = "lockout")]
pub mod lockout;
pub mod outcome;
pub mod peer;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
pub mod response;
mod scaffold;
pub mod validate;
#[cfg(feature = "websocket")]
pub mod ws;

pub use auth::{JwtAuth, JwtAuthLayer};
pub use context::{AuthContext, Claims};
pub use error::{AuthError, ConfigError, ErrorCode};
pub use jsonwebtoken::{self, Algorithm};
