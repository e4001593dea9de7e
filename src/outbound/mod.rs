//! The outbound side (feature `outbound`): tokens for calls to other services.
//!
//! - [`TokenSource`] keeps one token fresh from a [`TokenProvider`] you write (a login, an
//!   OAuth 2.0 client-credentials grant, a refresh-token exchange, a signer).
//! - [`TokenLayer`] puts it on every request of a tonic `Channel` or a hyper-util client
//!   (`Authorization: Bearer` by default), replaces a refused one and retries once.
//! - [`UserSources`] gives each user a client acts for a source of their own.
//!
//! # The token source
//!
//! - **Readers never wait** while the token is fresh: it is an immutable snapshot behind an
//!   `arc-swap`, read with one atomic load (once a refresh is due, each read also takes a short
//!   lock to see whether one runs; none is held across a refresh).
//! - **Refreshed ahead of expiry**: once 60 % of its lifetime has passed (configurable), with a
//!   jitter (±10 % of the lifetime by default) so that a fleet does not refresh in step. Until it
//!   expires the current token keeps being handed out while the refresh runs in the background.
//! - **Never an expired token**: a token is taken as expired a margin before its end (a tenth of
//!   its lifetime, at most 2 s), so that it does not expire on its way; then callers wait for
//!   the refresh.
//! - **One refresh at a time**, however many callers wait (single-flight): they share its result.
//!   A provider call is bounded by the wait bound (30 s by default), and its lifetime is counted
//!   from when it was asked for; a lifetime beyond a year is taken as a year.
//! - **A failing provider backs off** (1 s doubling to 60 s by default); a still-valid token keeps
//!   being used meanwhile; callers without one get the provider's error at once during a
//!   backoff rather than a call to a provider that just failed.
//! - **A refused token** ([`TokenSource::force_refresh`]) is replaced once for every caller that
//!   saw it, and at most once per force cooldown (5 s): a server that refuses every token costs
//!   one provider call per cooldown, not one per request. During a backoff a refused token that
//!   is still valid is kept: no refresh could replace it yet.
//! - The lifetime comes from the provider's `expires_in`, or else the token's own `exp` (read,
//!   not verified: the token is the issuer's business), against the source's [`Clock`].
//! - Tokens are redacted in `Debug` and zeroized when dropped ([`SecretToken`]); a token that
//!   cannot be a header value (a line break, a control character) is the provider's error.
//!
//! Time runs on tokio's monotonic clock (tests drive it with paused time); the [`Clock`] only
//! turns a token's `exp` into a lifetime.
//!
//! ```
//! use std::time::Duration;
//! use tower_jwt_guard::outbound::{IssuedToken, ProviderError, TokenSource};
//!
//! # async fn run() -> Result<(), ProviderError> {
//! let source = TokenSource::builder(|| async {
//!     // Log in, exchange a refresh token, run a client-credentials grant...
//!     Ok::<_, ProviderError>(IssuedToken::new("eyJ...").expires_in(Duration::from_secs(300)))
//! })
//! .build();
//! let token = source.token().await?;
//! assert_eq!(token.as_str(), "eyJ...");
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
//! #     .block_on(run()).unwrap();
//! ```
//!
//! # The layer
//!
//! On a tonic `Channel` (the generated client takes the layered service as it is) or any
//! `Service<http::Request<B>>` that is `Clone`, such as hyper-util's legacy client:
//!
//! ```
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use tower_jwt_guard::outbound::{IssuedToken, ProviderError, TokenLayer, TokenSource};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let source = TokenSource::builder(|| async {
//!     Ok::<_, ProviderError>(IssuedToken::new("eyJ...").expires_in(Duration::from_secs(300)))
//! })
//! .build();
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
//! let channel = ServiceBuilder::new().layer(TokenLayer::new(source)).service(channel);
//! // MyServiceClient::new(channel): every call carries `authorization: Bearer eyJ...`.
//! # let _ = channel; Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
//! #     .block_on(run()).unwrap();
//! ```
//!
//! - A fresh token costs a request one atomic load and a reference count (its header value is
//!   built once per token). A request that finds no valid token waits for the shared refresh.
//! - **After a refusal** (HTTP 401, or `grpc-status: 16` in a trailers-only response) the token
//!   is replaced once for every request that carried it, and the request is sent once more when
//!   its body can be replayed ([`ReplayBody`] states the rule: empty bodies by default). Two
//!   attempts at most, never a loop; when no replacement comes, the refusal is handed back.
//! - **Per user**: [`TokenLayer::per_user`] with [`UserSources`]; the user comes from a
//!   [`ForUser`] extension or a header the layer removes ([`TokenLayer::user_header`]). A
//!   request naming no user fails with [`NoUser`] and is not sent.
//! - Errors are boxed ([`BoxError`]), as tower's own layers do: the inner service's, a
//!   [`ProviderError`] (no token could be had), or [`NoUser`].

mod config;
mod future;
mod layer;
mod replay;
mod source;
mod token;
mod users;

pub use config::{BoxError, NoUser};
pub use future::ResponseFuture;
pub use layer::{TokenLayer, TokenService};
pub use replay::{CloneBodies, EmptyBodies, NoRetry, ReplayBody};
pub use source::{TokenSource, TokenSourceBuilder};
pub use token::{IssuedToken, ProviderError, ProviderFuture, SecretToken, TokenProvider};
pub use users::{ForUser, MAX_USER_ID_LEN, UserSources, UserSourcesBuilder, UserTokenProvider};

#[cfg(doc)]
use crate::clock::Clock;
