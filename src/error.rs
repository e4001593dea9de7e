//! Why a request was refused: stable codes and the [`AuthError`] that carries them.
//!
//! Every layer of this crate rejects with an [`AuthError`]. Its [`ErrorCode`] is stable (it is
//! part of the public contract of services built on the crate, e.g. `body.error.code` in the
//! default JSON response); its message is meant for humans and may change. Neither ever contains
//! token text, a secret or a query string.

use std::fmt;
use std::time::Duration;

use http::StatusCode;

/// The stable code of a rejection.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No token was presented (`401`, `WWW-Authenticate: Bearer` without `error=`).
    MissingToken,
    /// The token is malformed, badly signed, uses a refused algorithm, lacks a required claim,
    /// conflicts with a second token or exceeds the size cap (`401`).
    InvalidToken,
    /// The token's `exp` has passed, beyond the configured leeway (`401`).
    TokenExpired,
    /// The token is genuine but was revoked: its subject as of a moment at or after its `iat`,
    /// or its `jti` (`401`, `invalid_token`). Not a failed attempt.
    TokenRevoked,
    /// The token is valid but a claim requirement failed (`403`).
    Forbidden,
    /// The client address is locked out after repeated failed attempts (`429`).
    LockedOut,
    /// The caller exceeded a rate limit (`429`).
    RateLimited,
    /// Authentication could not be completed for a reason that is not the client's (`500`; `503`
    /// with `Retry-After` when the cause is temporary, e.g. a fail-closed shared store that does
    /// not answer: see [`AuthError::unavailable`]).
    AuthFailed,
    /// The request's shape, not its token, is wrong (`400`, RFC 6750 `invalid_request`): for
    /// example a WebSocket upgrade whose only subprotocol is the token one, so that no
    /// subprotocol can be selected. Never a failed attempt.
    InvalidRequest,
}

impl ErrorCode {
    /// The code as it appears on the wire, e.g. `"INVALID_TOKEN"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MissingToken => "MISSING_TOKEN",
            Self::InvalidToken => "INVALID_TOKEN",
            Self::TokenExpired => "TOKEN_EXPIRED",
            Self::TokenRevoked => "TOKEN_REVOKED",
            Self::Forbidden => "FORBIDDEN",
            Self::LockedOut => "LOCKED_OUT",
            Self::RateLimited => "RATE_LIMITED",
            Self::AuthFailed => "AUTH_FAILED",
            Self::InvalidRequest => "INVALID_REQUEST",
        }
    }

    /// The HTTP status the default responder uses for this code.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken | Self::TokenExpired | Self::TokenRevoked => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::LockedOut | Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::AuthFailed => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
        }
    }

    /// The RFC 6750 `error` parameter for `WWW-Authenticate`, if this code has one.
    ///
    /// `None` for a missing token (RFC 6750 §3.1: no error code when the request lacks any
    /// authentication information) and for codes that are not about the token itself.
    pub const fn bearer_error(self) -> Option<&'static str> {
        match self {
            Self::InvalidToken | Self::TokenExpired | Self::TokenRevoked => Some("invalid_token"),
            Self::Forbidden => Some("insufficient_scope"),
            Self::InvalidRequest => Some("invalid_request"),
            _ => None,
        }
    }

    /// Whether this rejection is a failed authentication attempt: a token was presented and
    /// refused. Lockout counts these by default. A revoked token is not one: it was genuine.
    pub const fn is_failed_attempt(self) -> bool {
        matches!(self, Self::InvalidToken | Self::TokenExpired)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejection: a stable [`ErrorCode`], a fixed human-readable message, and for `429` codes the
/// time after which a retry may succeed.
///
/// The message is always a `&'static str` chosen by this crate or by the user's configuration,
/// so no request data (and so no token) can end up in it.
#[derive(Clone)]
pub struct AuthError {
    code: ErrorCode,
    message: &'static str,
    retry_after: Option<Duration>,
    /// Made by [`AuthError::unavailable`]: a store that does not answer.
    unavailable: bool,
    /// A remote key set is fetching keys that may settle this token: the authentication
    /// layer waits for the fetch and validates the token again, once. Not part of equality.
    awaiting_keys: bool,
    /// A remote key set has no usable keys for now: audited at `DEBUG` with a count, as
    /// [`AuthError::unavailable`] refusals are (a flood of such tokens is not a log flood).
    keys_unavailable: bool,
}

impl PartialEq for AuthError {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
            && self.message == other.message
            && self.retry_after == other.retry_after
            && self.unavailable == other.unavailable
            && self.keys_unavailable == other.keys_unavailable
    }
}

impl Eq for AuthError {}

impl AuthError {
    /// A rejection with `code` and `message`.
    pub const fn new(code: ErrorCode, message: &'static str) -> Self {
        Self {
            code,
            message,
            retry_after: None,
            unavailable: false,
            awaiting_keys: false,
            keys_unavailable: false,
        }
    }

    /// `MISSING_TOKEN`: no token in any configured source.
    pub const fn missing_token() -> Self {
        Self::new(ErrorCode::MissingToken, "no bearer token was presented")
    }

    /// `INVALID_TOKEN` with `message`.
    pub const fn invalid_token(message: &'static str) -> Self {
        Self::new(ErrorCode::InvalidToken, message)
    }

    /// `TOKEN_EXPIRED`.
    pub const fn expired() -> Self {
        Self::new(ErrorCode::TokenExpired, "the token has expired")
    }

    /// `TOKEN_REVOKED`.
    pub const fn revoked() -> Self {
        Self::new(ErrorCode::TokenRevoked, "the token has been revoked")
    }

    /// `FORBIDDEN` with `message`.
    pub const fn forbidden(message: &'static str) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// `INVALID_REQUEST` with `message`.
    pub const fn invalid_request(message: &'static str) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// `AUTH_FAILED` with `message`.
    pub const fn auth_failed(message: &'static str) -> Self {
        Self::new(ErrorCode::AuthFailed, message)
    }

    /// `AUTH_FAILED` because something the check needs is unavailable for now (a shared store
    /// that does not answer, with the fail-closed policy): HTTP `503` with `Retry-After: 1`, gRPC
    /// 14 `UNAVAILABLE` with a `RetryInfo`. Not a failed attempt.
    pub const fn unavailable(message: &'static str) -> Self {
        let mut error =
            Self::new(ErrorCode::AuthFailed, message).with_retry_after(Duration::from_secs(1));
        error.unavailable = true;
        error
    }

    /// Marks a refusal that a remote key set's fetch under way may turn into an acceptance.
    #[cfg_attr(not(feature = "remote-keys"), allow(dead_code))]
    pub(crate) const fn awaiting_keys(mut self) -> Self {
        self.awaiting_keys = true;
        self
    }

    /// `AUTH_FAILED` (500) because a remote key set has no usable keys for now (not fetched
    /// yet, stale, or its last fetch failed): not a failed attempt, audited quietly.
    #[cfg_attr(not(feature = "remote-keys"), allow(dead_code))]
    pub(crate) const fn keys_unavailable(message: &'static str) -> Self {
        let mut error = Self::new(ErrorCode::AuthFailed, message);
        error.keys_unavailable = true;
        error
    }

    /// Refusals audited at `DEBUG` with a periodic count rather than one `WARN` each.
    pub(crate) const fn is_quiet(&self) -> bool {
        self.unavailable || self.keys_unavailable
    }

    /// Whether a fetch of keys under way may settle the token (see `awaiting_keys`).
    pub(crate) const fn is_awaiting_keys(&self) -> bool {
        self.awaiting_keys
    }

    /// Whether this is an [`AuthError::unavailable`] refusal.
    pub const fn is_unavailable(&self) -> bool {
        self.unavailable
    }

    /// Sets the time after which the client may retry (sent as `Retry-After`).
    pub const fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// The stable code.
    pub const fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human-readable message.
    pub const fn message(&self) -> &'static str {
        self.message
    }

    /// The HTTP status for this rejection: the code's, except `503` for
    /// [`AuthError::unavailable`].
    pub const fn status(&self) -> StatusCode {
        if self.unavailable {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            self.code.status()
        }
    }

    /// The time after which a retry may succeed, for `429` rejections.
    pub const fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// `retry_after` in whole seconds, rounded up, as sent in `Retry-After`.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| {
            let secs = d.as_secs();
            if d.subsec_nanos() > 0 { secs + 1 } else { secs }
        })
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("code", &self.code)
            .field("message", &self.message)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AuthError {}

/// A configuration mistake found while building a layer, a validator or a key.
///
/// Returned once, at start-up; a running layer never produces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid tower-jwt-guard configuration: {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_rfc6750_statuses() {
        assert_eq!(ErrorCode::MissingToken.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ErrorCode::MissingToken.bearer_error(), None);
        assert_eq!(
            ErrorCode::TokenExpired.bearer_error(),
            Some("invalid_token")
        );
        assert_eq!(ErrorCode::Forbidden.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            ErrorCode::Forbidden.bearer_error(),
            Some("insufficient_scope")
        );
        assert_eq!(ErrorCode::LockedOut.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            ErrorCode::AuthFailed.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn an_unavailable_store_is_a_503_with_retry_after() {
        let e = AuthError::unavailable("the shared store does not answer");
        assert_eq!(e.code(), ErrorCode::AuthFailed);
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after_secs(), Some(1));
        assert!(!e.code().is_failed_attempt());
        assert_eq!(
            AuthError::auth_failed("x").status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        // An application's own AUTH_FAILED with a retry time is not taken for one.
        let own = AuthError::auth_failed("x").with_retry_after(Duration::from_secs(5));
        assert!(!own.is_unavailable());
        assert_eq!(own.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn retry_after_rounds_up() {
        let e = AuthError::new(ErrorCode::RateLimited, "slow down")
            .with_retry_after(Duration::from_millis(1001));
        assert_eq!(e.retry_after_secs(), Some(2));
        let e = e.with_retry_after(Duration::from_secs(3));
        assert_eq!(e.retry_after_secs(), Some(3));
    }

    #[test]
    fn only_presented_bad_tokens_are_failed_attempts() {
        assert!(ErrorCode::InvalidToken.is_failed_attempt());
        assert!(ErrorCode::TokenExpired.is_failed_attempt());
        assert!(!ErrorCode::MissingToken.is_failed_attempt());
        assert!(
            !ErrorCode::TokenRevoked.is_failed_attempt(),
            "a revoked token was genuine"
        );
        assert_eq!(ErrorCode::TokenRevoked.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            ErrorCode::TokenRevoked.bearer_error(),
            Some("invalid_token")
        );
        assert!(!ErrorCode::Forbidden.is_failed_attempt());
        assert!(!ErrorCode::InvalidRequest.is_failed_attempt());
    }

    #[test]
    fn invalid_request_is_a_400_with_its_rfc6750_code() {
        assert_eq!(ErrorCode::InvalidRequest.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            ErrorCode::InvalidRequest.bearer_error(),
            Some("invalid_request")
        );
        assert_eq!(ErrorCode::InvalidRequest.as_str(), "INVALID_REQUEST");
    }
}
