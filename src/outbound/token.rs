//! The tokens a provider gives, and the provider itself.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use zeroize::Zeroizing;

/// The scheme in front of the token in `Authorization`.
const BEARER: &str = "Bearer ";

/// A token in use: redacted in `Debug`, zeroized when the last copy is dropped.
///
/// It holds its header values, built once: `Authorization: Bearer <token>` and the bare token,
/// both marked sensitive (HTTP/2 never indexes them in HPACK) and sharing the token's
/// zeroized buffer, so that a request costs a reference count, not a copy. The copies the
/// HTTP stack makes as it writes a request are beyond the crate's reach.
pub struct SecretToken {
    /// `Bearer <token>`.
    text: Arc<Zeroizing<String>>,
    bearer: HeaderValue,
    bare: HeaderValue,
}

/// The buffer behind the header values: zeroized once the token and every header value made
/// from it are gone.
struct Shared(Arc<Zeroizing<String>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl SecretToken {
    /// `None` when `token` is empty or cannot travel in a header (a control character, a line
    /// break): no header injection, whatever the provider returned.
    fn new(token: &str) -> Option<Self> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let mut text = Zeroizing::new(String::with_capacity(BEARER.len() + token.len()));
        text.push_str(BEARER);
        text.push_str(token);
        let text = Arc::new(text);
        let bytes = Bytes::from_owner(Shared(Arc::clone(&text)));
        let mut bearer = HeaderValue::from_maybe_shared(bytes.clone()).ok()?;
        let mut bare = HeaderValue::from_maybe_shared(bytes.slice(BEARER.len()..)).ok()?;
        bearer.set_sensitive(true);
        bare.set_sensitive(true);
        Some(Self { text, bearer, bare })
    }

    /// The token, e.g. for a client of one's own (`reqwest`'s `bearer_auth`).
    pub fn as_str(&self) -> &str {
        // "Bearer " is ASCII: a character boundary.
        &self.text[BEARER.len()..]
    }

    /// `Bearer <token>`, as `Authorization`'s value (sensitive).
    pub fn bearer_header(&self) -> &HeaderValue {
        &self.bearer
    }

    /// The bare token, as the value of a header of one's choice or gRPC metadata (sensitive).
    pub fn header(&self) -> &HeaderValue {
        &self.bare
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken([redacted])")
    }
}

/// The longest token accepted from a provider (64 KiB): no header a server takes is longer.
const MAX_TOKEN_LEN: usize = 64 * 1024;

/// What a provider returns: the token and, when the issuer says, its lifetime.
pub struct IssuedToken {
    token: Zeroizing<String>,
    expires_in: Option<Duration>,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

impl IssuedToken {
    /// A token; its lifetime is read from its own `exp` unless [`expires_in`](Self::expires_in)
    /// gives it.
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: Zeroizing::new(token.into()),
            expires_in: None,
        }
    }

    /// The lifetime the issuer gave (OAuth 2.0's `expires_in`).
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_in = Some(lifetime);
        self
    }

    /// The token as given.
    pub(super) fn text(&self) -> &str {
        &self.token
    }

    /// The lifetime, when the issuer gave it.
    pub(super) fn lifetime(&self) -> Option<Duration> {
        self.expires_in
    }

    /// The token to use, or `None` when it cannot travel in a header.
    pub(super) fn into_secret(self) -> Option<SecretToken> {
        SecretToken::new(&self.token)
    }
}

/// Why a provider could not give a token (a fixed text: no token, no response body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError(pub &'static str);

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no token: {}", self.0)
    }
}

impl std::error::Error for ProviderError {}

/// The future of [`TokenProvider::fetch`]: a login costs far more than the box.
pub type ProviderFuture = Pin<Box<dyn Future<Output = Result<IssuedToken, ProviderError>> + Send>>;

/// Gets a new token: a login, a refresh-token exchange, a client-credentials grant, a signer.
/// Any `Fn() -> impl Future<Output = Result<IssuedToken, ProviderError>>` is one. The source
/// bounds each call by its wait bound.
pub trait TokenProvider: Send + Sync + 'static {
    /// A new token.
    fn fetch(&self) -> ProviderFuture;
}

impl<F, Fut> TokenProvider for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<IssuedToken, ProviderError>> + Send + 'static,
{
    fn fetch(&self) -> ProviderFuture {
        Box::pin(self())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_and_their_headers_sensitive() {
        let issued = IssuedToken::new("eyJ-secret").expires_in(Duration::from_secs(1));
        assert!(!format!("{issued:?}").contains("secret"));
        let token = issued.into_secret().unwrap();
        assert!(!format!("{token:?}").contains("secret"));
        assert_eq!(token.as_str(), "eyJ-secret");
        assert_eq!(token.bearer_header(), "Bearer eyJ-secret");
        assert_eq!(token.header(), "eyJ-secret");
        assert!(token.bearer_header().is_sensitive() && token.header().is_sensitive());
        assert!(!format!("{:?}", token.bearer_header()).contains("secret"));
    }

    #[test]
    fn a_token_that_cannot_travel_in_a_header_is_refused() {
        for bad in [
            "",
            "a\r\nX-Injected: 1",
            "a\0b",
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(IssuedToken::new(bad).into_secret().is_none(), "{bad:.20?}");
        }
    }
}
