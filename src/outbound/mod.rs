//! The outbound side (feature `outbound`, issue 15 in progress): a [`TokenSource`] that keeps a
//! token fresh for calls to other services. The client layer that attaches it to requests, and
//! per-user sources, are still to come.
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
//! - The lifetime comes from the provider's `expires_in`, or else the token's own `exp` (read,
//!   not verified: the token is the issuer's business), against the source's [`Clock`].
//! - Tokens are redacted in `Debug` and zeroized when dropped ([`SecretToken`]).
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

mod future;
mod layer;
mod replay;
mod source;
mod token;
mod users;

pub use future::ResponseFuture;
pub use layer::{BoxError, NoUser, TokenLayer, TokenService};
pub use replay::{CloneBodies, EmptyBodies, NoRetry, ReplayBody};
pub use source::{TokenSource, TokenSourceBuilder};
pub use token::{IssuedToken, ProviderError, ProviderFuture, SecretToken, TokenProvider};
pub use users::{ForUser, MAX_USER_ID_LEN, UserSources, UserSourcesBuilder, UserTokenProvider};

#[cfg(doc)]
use crate::clock::Clock;
