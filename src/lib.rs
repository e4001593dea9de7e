//! Tower layers that authenticate HTTP, WebSocket and gRPC traffic with JWTs, for any
//! hyper-based server: axum, tonic, or hyper itself (see the README's sections on each).
//!
//! Every public item, by module (a newcomer finds each concern by its file name, laid out as
//! in tower-http: each middleware's `mod.rs` holds its docs, then `layer.rs`, `service.rs` and
//! `future.rs`, then what it needs of its own):
//!
//! | module | what it does | public items |
//! |---|---|---|
//! | [`extract`] | finds the token: `Authorization: Bearer`, query, header, cookie, WebSocket subprotocol (upgrades only); ordered, size-capped, conflicts refused | [`TokenExtractor`](extract::TokenExtractor), [`TokenSource`](extract::TokenSource), [`TokenSourceKind`](extract::TokenSourceKind), [`ExtractedToken`](extract::ExtractedToken), [`ExtractError`](extract::ExtractError), [`application_protocols`](extract::application_protocols), [`is_application_protocol`](extract::is_application_protocol), [`is_websocket_upgrade`](extract::is_websocket_upgrade), [`is_websocket_upgrade_parts`](extract::is_websocket_upgrade_parts), `DEFAULT_MAX_TOKEN_LEN`, `DEFAULT_WEBSOCKET_PROTOCOL_PREFIX`, `MAX_APPLICATION_PROTOCOL_LEN` |
//! | [`keys`] | verification keys bound to their algorithm family and `kid`: secrets, PEM, JWK, JWKS | [`Key`](keys::Key), [`keys_from_jwks`](keys::keys_from_jwks), `MIN_HMAC_SECRET_LEN` |
//! | [`jwks`] | JWK sets from an identity provider, read key by key and strictly (`use`, `key_ops`, `kty`, curve, `alg`, RSA size, no `oct` unless allowed, duplicate `kid`s, a bound): one bad key never discards the others | [`RemoteJwks`](jwks::RemoteJwks), [`JwksPolicy`](jwks::JwksPolicy), [`SkippedJwk`](jwks::SkippedJwk) |
//! | `remote_keys` (feature `remote-keys`) | a JWKS fetched from a URL and kept fresh: lock-free reads, one shared fetch at a time, one per cooldown for unknown kids, stale-if-error with a maximum staleness, your own fetcher; not yet wired into the validator | `RemoteKeySet`, `RemoteKeySetBuilder`, `JwksFetcher`, `FetchFuture`, `FetchError`, `KeySnapshot`, `RemoteKeyStats` |
//! | [`validate`] | verifies the token with `jsonwebtoken` and checks `exp`/`nbf` (with leeway), `iss`, `aud`, required claims, typed predicates, revocation | [`Validator`](validate::Validator), [`ValidatorBuilder`](validate::ValidatorBuilder), [`Verified`](validate::Verified), [`Revocation`](validate::Revocation), [`RevocationFuture`](validate::RevocationFuture), `DEFAULT_LEEWAY` |
//! | [`auth`] | the authentication layer | [`JwtAuthLayer`], [`JwtAuth`], [`JwtAuthBuilder`](auth::JwtAuthBuilder), [`ResponseFuture`](auth::ResponseFuture), `DEFAULT_VERIFIED_CACHE`, `MAX_CACHED_TOKEN` |
//! | [`outcome`] | the contract between an authentication layer and the layers around it | [`AuthRejection`](outcome::AuthRejection), [`SuccessSignal`](outcome::SuccessSignal), [`Unauthenticated`](outcome::Unauthenticated), [`authenticated`](outcome::authenticated) |
//! | [`response`] | the one rejection seam: rendering an [`AuthError`] for the refused request, in JSON or (feature `tonic`) as a gRPC status | [`Responder`](response::Responder), [`JsonResponder`](response::JsonResponder), [`default_responder`](response::default_responder), [`from_fn`](response::from_fn), [`ResponderFn`](response::ResponderFn), [`json_body`](response::json_body); with `tonic`: `GrpcResponder`, `grpc_status`, `grpc_code`, `is_grpc`, `is_grpc_request`, `ERROR_DOMAIN` |
//! | `stream_expiry` (feature `stream-expiry`) | streaming responses (gRPC streams, SSE, chunked bodies) that end when their token expires | `StreamExpiryLayer`, `StreamExpiry`, `StreamExpiryBuilder`, `ExpiringBody`, `ResponseFuture`, `DEFAULT_MAX_TICK` |
//! | [`revocation`] | revoked subjects (as of a moment) and tokens (by `jti`), in memory, checked on every request; bounded, self-expiring | [`RevocationList`](revocation::RevocationList), [`RevocationListBuilder`](revocation::RevocationListBuilder), [`Revoked`](revocation::Revoked), [`RevocationError`](revocation::RevocationError), `DEFAULT_CAPACITY`, `DEFAULT_LIST_LEEWAY` |
//! | `redis` (feature `redis`) | shared state on Redis: the lockout and rate-limit stores, revocations, notifications and session statistics across instances; bounded calls, fail-open (memory as fallback) or fail-closed | `RedisClient`, `RedisClientBuilder`, `OutagePolicy`, `RedisLockoutStore`, `RedisRateLimitStore`, `RedisFanout`, `FleetStats`, `FanoutError`, `RedisError`, `RedisConfigError`, `RedisFuture`, `DEFAULT_TIMEOUT` |
//! | [`error`] | stable rejection codes | [`ErrorCode`], [`AuthError`], [`ConfigError`] |
//! | [`body`] | the response body of every layer | [`GuardBody`](body::GuardBody) |
//! | [`context`] | what handlers get | [`AuthContext`], [`Claims<C>`] |
//! | [`audit`] | `tracing` events for every decision, never with token text | `AUDIT_TARGET` |
//! | [`lockout`] (feature `lockout`) | per-IP lockout after repeated failed attempts, bounded memory | [`LockoutLayer`](lockout::LockoutLayer), [`Lockout`](lockout::Lockout), [`LockoutBuilder`](lockout::LockoutBuilder), [`ResponseFuture`](lockout::ResponseFuture), [`LockoutPolicy`](lockout::LockoutPolicy), [`Escalation`](lockout::Escalation), [`LockEvent`](lockout::LockEvent), [`LockoutStore`](lockout::LockoutStore), [`MemoryLockoutStore`](lockout::MemoryLockoutStore), [`LockStatus`](lockout::LockStatus), [`FailureOutcome`](lockout::FailureOutcome), [`FailureReport`](lockout::FailureReport) |
//! | [`client_ip`] (feature `lockout`) | the client address: peer only, proxy headers only behind trusted proxies | [`ClientIpResolver`](client_ip::ClientIpResolver), [`IpKey`](client_ip::IpKey), [`ProxyHeader`](client_ip::ProxyHeader), `DEFAULT_IPV6_PREFIX` |
//! | [`rate_limit`] (feature `rate-limit`) | per-user quotas (per plan, per route) for requests and WebSocket messages, keyed on the validated subject | [`UserRateLimitLayer`](rate_limit::UserRateLimitLayer), [`UserRateLimit`](rate_limit::UserRateLimit), [`UserRateLimitBuilder`](rate_limit::UserRateLimitBuilder), [`ResponseFuture`](rate_limit::ResponseFuture), [`PlanQuotas`](rate_limit::PlanQuotas), [`Quota`](rate_limit::Quota), [`strict_quota`](rate_limit::strict_quota), [`KeyFn`](rate_limit::KeyFn), [`PlanFn`](rate_limit::PlanFn), [`RateLimitStore`](rate_limit::RateLimitStore), [`MemoryRateLimitStore`](rate_limit::MemoryRateLimitStore), [`RateDecision`](rate_limit::RateDecision), [`MessageLimiter`](rate_limit::MessageLimiter), [`MessageLimiterBuilder`](rate_limit::MessageLimiterBuilder), [`MessageGate`](rate_limit::MessageGate), [`MessageVerdict`](rate_limit::MessageVerdict), `DEFAULT_FLOOD_FACTOR`, `DEFAULT_FLOOD_WINDOW` |
//! | [`ws`] (feature `websocket`) | WebSocket refusals by close frame, and authenticated sessions: expiry, warnings, re-auth, message limits, connection limits, revocation, fan-out | [`CloseFrameResponder`](ws::CloseFrameResponder), [`CloseFrameRule`](ws::CloseFrameRule), [`refuse_upgrade`](ws::refuse_upgrade), `MAX_LINGERING_REFUSALS`, [`close_code`](ws::close_code) and the `CLOSE_*` codes, [`WsSessions`](ws::WsSessions), [`WsSessionsBuilder`](ws::WsSessionsBuilder), [`WsSession`](ws::WsSession), [`AuthenticatedSocket`](ws::AuthenticatedSocket), [`SessionClosed`](ws::SessionClosed), [`Transport`](ws::Transport), [`SocketMessage`](ws::SocketMessage), [`MessageKind`](ws::MessageKind), [`RateLimitedSocket`](ws::RateLimitedSocket), [`SessionRegistry`](ws::SessionRegistry), [`ConnectionLimits`](ws::ConnectionLimits), [`SessionStats`](ws::SessionStats), the `DEFAULT_*` session settings |
//! | [`axum`] (feature `axum`) | extractors for [`Claims`] and [`AuthContext`] | [`ClaimsRejection`](axum::ClaimsRejection) |
//! | [`clock`] | injectable time, so tests never sleep | [`Clock`](clock::Clock), [`SystemClock`](clock::SystemClock), [`FakeClock`](clock::FakeClock) |
//! | [`peer`] | the connection's peer address (yours, axum's `ConnectInfo`, tonic's `TcpConnectInfo`) | [`PeerAddr`](peer::PeerAddr), [`peer_addr`](peer::peer_addr) |
//! | [`crypto`] | the crypto backend | [`backend_name`](crypto::backend_name), [`install_crypto_provider`](crypto::install_crypto_provider) |
//!
//! Every layer takes its collaborators the same way on its builder: `.responder(…)` (one
//! [`Responder`](response::Responder) for the whole stack), `.clock(…)` (any
//! [`Clock`](clock::Clock), `Arc<dyn Clock>` included) where it keeps time of its own (the
//! validator, lockout, rate limit, message limiter, stream expiry; the authentication layer
//! and WebSocket sessions use their validator's), and, where state is kept, `.store(…)`.
//! `build()` returns a `Result` where the configuration can be wrong.
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
//! | `lockout` | yes | the [`lockout`] and [`client_ip`] modules (dashmap, ipnet) |
//! | `rate-limit` | yes | the [`rate_limit`] module (governor, dashmap) |
//! | `stream-expiry` | yes | the `stream_expiry` module (tokio's timer) |
//! | `tonic` | no | gRPC statuses for rejections (`response::GrpcResponder`, then every layer's default), the peer address from tonic's `TcpConnectInfo`; turns on `stream-expiry` |
//! | `tonic-tls` | no | the peer address from tonic's `TlsConnectInfo` too (tonic's TLS types only, no crypto provider) |
//! | `websocket` | yes | the [`ws`] module, over tokio-tungstenite and (with `axum`) axum's `WebSocket`; turns on `lockout` and `rate-limit`, since sessions count refused re-authentications and message quotas |
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
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod jwks;
pub mod keys;
#[cfg(feature = "lockout")]
pub mod lockout;
#[cfg(feature = "outbound")]
pub mod outbound;
pub mod outcome;
pub mod peer;
#[cfg(feature = "rate-limit")]
pub mod rate_limit;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "remote-keys")]
pub mod remote_keys;
pub mod response;
pub mod revocation;
mod scaffold;
#[cfg(feature = "stream-expiry")]
pub mod stream_expiry;
pub mod validate;
#[cfg(feature = "websocket")]
pub mod ws;

pub use auth::{JwtAuth, JwtAuthLayer};
pub use context::{AuthContext, Claims};
pub use error::{AuthError, ConfigError, ErrorCode};
pub use jsonwebtoken::{self, Algorithm};

/// The README's `no_run` examples, compiled as doc tests so that they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
