//! The layer's settings, shared by its services and their futures, and its errors.

use std::fmt;

use http::header::AUTHORIZATION;
use http::{HeaderName, Method, Request};

use super::source::TokenSource;
use super::token::SecretToken;
use super::users::{ForUser, MAX_USER_ID_LEN, UserSources};

/// The error of a [`TokenService`](super::TokenService): the inner service's, or [`NoUser`], or the provider's
/// [`ProviderError`](super::ProviderError), boxed as tower's own layers do (tonic and
/// hyper-util take it as it is; downcast to tell them apart).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request for per-user sources named no user (no [`ForUser`] extension, no user header, or
/// one that is not a visible-ASCII id of at most [`MAX_USER_ID_LEN`] bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoUser;

impl fmt::Display for NoUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request names no user to send it for")
    }
}

impl std::error::Error for NoUser {}

/// Whose token a request carries.
#[derive(Debug, Clone)]
pub(super) enum Tokens {
    One(TokenSource),
    Users(UserSources),
}

/// Where the token goes.
#[derive(Debug, Clone)]
pub(super) enum Attach {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// `<name>: <token>`.
    Header(HeaderName),
}

/// The layer's settings, shared by its services and their futures.
#[derive(Debug, Clone)]
pub(super) struct Config {
    pub(super) tokens: Tokens,
    pub(super) attach: Attach,
    pub(super) user_header: Option<HeaderName>,
    /// Only idempotent methods are retried.
    pub(super) idempotent_only: bool,
}

impl Config {
    /// Puts `token` on `request`, replacing what the caller put under that name.
    pub(super) fn attach<B>(&self, request: &mut Request<B>, token: &SecretToken) {
        let headers = request.headers_mut();
        match &self.attach {
            Attach::Bearer => headers.insert(AUTHORIZATION, token.bearer_header().clone()),
            Attach::Header(name) => headers.insert(name.clone(), token.header().clone()),
        };
    }

    /// Whether a request with `method` may be retried at all.
    pub(super) fn may_retry(&self, method: &Method) -> bool {
        !self.idempotent_only
            || matches!(
                *method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::TRACE
                    | Method::PUT
                    | Method::DELETE
            )
    }

    /// The source for `request`, taking the user header off it.
    pub(super) fn source<B>(&self, request: &mut Request<B>) -> Result<TokenSource, NoUser> {
        // Removed whatever follows; more than one value names no single user.
        let header = self.user_header.as_ref().and_then(|name| {
            let several = request.headers().get_all(name).iter().nth(1).is_some();
            let first = request.headers_mut().remove(name);
            if several { Some(None) } else { first.map(Some) }
        });
        match &self.tokens {
            Tokens::One(source) => Ok(source.clone()),
            Tokens::Users(users) => {
                if let Some(user) = request.extensions().get::<ForUser>() {
                    return user_id(user.0.as_bytes()).map(|id| users.source(id));
                }
                let header = header.flatten().ok_or(NoUser)?;
                user_id(header.as_bytes()).map(|id| users.source(id))
            }
        }
    }
}

/// `id` as a user id: visible ASCII, 1 to [`MAX_USER_ID_LEN`] bytes.
fn user_id(id: &[u8]) -> Result<&str, NoUser> {
    if id.is_empty() || id.len() > MAX_USER_ID_LEN || !id.iter().all(u8::is_ascii_graphic) {
        return Err(NoUser);
    }
    std::str::from_utf8(id).map_err(|_| NoUser)
}
