//! Per-user rate limiting, keyed on the validated identity (GCRA, via `governor`).
//!
//! The [`UserRateLimitLayer`] goes **inside** the authentication layer, where the request carries an
//! [`AuthContext`](crate::AuthContext): by default the key is the token's subject, so a user is
//! limited across all of its tokens and addresses, and an unauthenticated client cannot spend
//! someone else's quota.
//!
//! A store that fails (the in-memory one never does; a remote one can) lets requests and
//! WebSocket messages through: fail-open, so that an unreachable store does not take the
//! service down, with an `ERROR` event on the audit target at most every 10 seconds carrying
//! the number of failures since the previous one.
//!
//! ```
//! use std::num::NonZeroU32;
//! use axum::{Router, routing::post};
//! use tower_jwt_guard::rate_limit::{PlanQuotas, Quota, UserRateLimitLayer};
//! use tower_jwt_guard::{Claims, JwtAuthLayer, keys::Key, validate::Validator};
//!
//! #[derive(Clone, serde::Deserialize)]
//! struct MyClaims { plan: Option<String> }
//!
//! let nz = |n| NonZeroU32::new(n).unwrap();
//! // Global: 10/s on the free plan, 100/s on pro, read from the `plan` claim.
//! let global = UserRateLimitLayer::builder(
//!     PlanQuotas::new(Quota::per_second(nz(10))).plan("pro", Quota::per_second(nz(100)))?,
//! )
//! .plan_by(|ext| ext.get::<Claims<MyClaims>>()?.plan.as_deref())
//! .rate_limit_headers()
//! .build()?;
//! // One route: 30 orders per minute, on top of the global quota.
//! let orders = UserRateLimitLayer::builder(PlanQuotas::new(Quota::per_minute(nz(30)))).build()?;
//!
//! # let validator = Validator::<MyClaims>::builder()
//! #     .key(Key::hmac(b"0123456789abcdef0123456789abcdef")?).build()?;
//! let app: Router = Router::new()
//!     .route("/orders", post(|| async { "ok" }).layer(orders))
//!     .layer(global)                             // inside auth: sees the claims
//!     .layer(JwtAuthLayer::new(validator));      // outside: authenticates first
//! # Ok::<(), tower_jwt_guard::ConfigError>(())
//! ```
//!
//! - Over quota: `429 RATE_LIMITED` with `Retry-After` in whole seconds, rounded up; with
//!   [`rate_limit_headers`](UserRateLimitBuilder::rate_limit_headers), also the IETF
//!   `RateLimit-Policy` / `RateLimit` headers on every response.
//! - Requests without a key pass through untouched (another layer decides about them), or get
//!   `401 MISSING_TOKEN` with [`reject_unauthenticated`](UserRateLimitBuilder::reject_unauthenticated);
//!   never `429`.
//! - Route quotas stack with global ones: each layer has its own counters.
//! - The in-memory store drops idle users as it runs; no cleanup task. It hashes keys with
//!   foldhash, seeded at random per limiter, rather than SipHash (hashing was a third of a
//!   check). That is safe for the default key, a verified subject that clients cannot choose.
//!   foldhash is only "minimally" resistant to hash flooding: if a `key_by` keys on values a
//!   client chooses freely (a raw header, say), an attacker who could learn a limiter's seed
//!   could make its lookups slow; key on verified identities.
//! - [`MessageLimiter`] applies the same per-user quotas to WebSocket messages, across all of a
//!   user's connections.
//!
//! # Bursts: what "30 per minute" lets through
//!
//! A GCRA quota such as `Quota::per_minute(30)` is a burst of 30 that refills at one every
//! 2 seconds. So a fresh user gets 30 requests at once, then one every 2 s: up to **35 in the
//! first 10 seconds** and up to **59 in the first minute**, about twice the nominal figure,
//! before the long-run rate of 30 a minute holds. That is usually what an API wants (bursts of
//! real clients pass; sustained floods do not), but it is not "at most 30 in any minute".
//! Where that strict reading is needed (billing, contractual limits), use
//! [`strict_quota`]`(30, 60 s)`: a burst of one and one request every 60/29 s, so that no
//! window of a minute ever holds more than 30, at the cost of spacing requests out.

mod future;
mod headers;
mod layer;
mod memory;
mod messages;
mod quota;
mod service;
mod store;

pub use future::ResponseFuture;
pub use layer::{KeyFn, PlanFn, UserRateLimit, UserRateLimitBuilder, UserRateLimitLayer};
pub use memory::MemoryRateLimitStore;
#[cfg(feature = "websocket")]
pub(crate) use messages::MessageGates;
pub use messages::{
    DEFAULT_FLOOD_FACTOR, DEFAULT_FLOOD_WINDOW, MessageGate, MessageLimiter, MessageLimiterBuilder,
    MessageVerdict,
};
pub use quota::{PlanQuotas, Quota, strict_quota};
pub use store::{RateDecision, RateLimitStore};
