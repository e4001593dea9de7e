//! What a request learns once it is authenticated.
//!
//! On success the authentication layer inserts into the request's extensions:
//! - an [`AuthContext`]: subject, token id, timestamps, key id and token source; not generic, so
//!   any later layer (rate limiting, logging, WebSocket sessions) can read it;
//! - a [`Claims<C>`] with the claims deserialized into the application's own type.
//!
//! Handlers read them from the extensions, or with the axum extractors (feature `axum`).

use std::sync::Arc;

use crate::extract::TokenSourceKind;

/// The standard facts about an authenticated request.
///
/// Holds no token text; safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthContext {
    pub(crate) subject: Option<Arc<str>>,
    pub(crate) token_id: Option<String>,
    pub(crate) issued_at: Option<u64>,
    pub(crate) expires_at: Option<u64>,
    pub(crate) not_before: Option<u64>,
    pub(crate) key_id: Option<Arc<str>>,
    pub(crate) source: Option<TokenSourceKind>,
}

impl AuthContext {
    /// A context with only a subject, for tests of downstream layers and for custom
    /// authentication that still wants this crate's rate limiting and sessions.
    pub fn for_subject(subject: impl Into<Arc<str>>) -> Self {
        Self {
            subject: Some(subject.into()),
            token_id: None,
            issued_at: None,
            expires_at: None,
            not_before: None,
            key_id: None,
            source: None,
        }
    }

    /// Sets the expiry (Unix seconds).
    pub fn with_expires_at(mut self, expires_at: Option<u64>) -> Self {
        self.expires_at = expires_at;
        self
    }

    /// The `sub` claim.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The `sub` claim, shared: cloning it does not allocate (rate limiters key on it).
    pub fn subject_arc(&self) -> Option<&Arc<str>> {
        self.subject.as_ref()
    }

    /// The `jti` claim.
    pub fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }

    /// The `iat` claim, in seconds since the Unix epoch.
    pub fn issued_at(&self) -> Option<u64> {
        self.issued_at
    }

    /// The `exp` claim, in seconds since the Unix epoch (absent only when the validator was
    /// configured to accept tokens without expiry).
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// The `nbf` claim, in seconds since the Unix epoch.
    pub fn not_before(&self) -> Option<u64> {
        self.not_before
    }

    /// The `kid` of the key that verified the token, if that key has one.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// Where the token was found; `None` when it was validated outside a request (for example a
    /// WebSocket re-authentication message).
    pub fn source(&self) -> Option<TokenSourceKind> {
        self.source
    }

    /// Sets where the token was found.
    pub(crate) fn set_source(&mut self, source: Option<TokenSourceKind>) {
        self.source = source;
    }
}

/// The token's claims, deserialized into the application's type `C`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims<C>(pub C);

impl<C> std::ops::Deref for Claims<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.0
    }
}
