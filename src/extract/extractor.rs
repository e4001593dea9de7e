use std::borrow::Cow;
use std::fmt;

use http::request::Parts;
use http::{HeaderMap, HeaderName, Uri};
use subtle::ConstantTimeEq;

use super::{DEFAULT_WEBSOCKET_PROTOCOL_PREFIX, ExtractError, TokenSource, TokenSourceKind};

/// The default cap on a token's length: 8 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// A token found in a request, and where it was found.
///
/// Its `Debug` output never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct ExtractedToken<'a> {
    token: Cow<'a, str>,
    source: TokenSourceKind,
}

impl<'a> ExtractedToken<'a> {
    /// The token text. Handle with care: never log it.
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// The kind of source it came from.
    pub fn source(&self) -> TokenSourceKind {
        self.source
    }

    /// The token as an owned string (allocates only if it was borrowed).
    pub fn into_string(self) -> String {
        self.token.into_owned()
    }
}

impl fmt::Debug for ExtractedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtractedToken")
            .field("token", &"[redacted]")
            .field("len", &self.token.len())
            .field("source", &self.source)
            .finish()
    }
}

/// Token equality in constant time for equal lengths, so that comparing a second token with the
/// first reveals nothing through timing.
pub(crate) fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// An ordered list of token sources, a size cap and a conflict policy.
///
/// [`TokenExtractor::default`] reads `Authorization: Bearer` only; [`TokenExtractor::new`] starts
/// with no source, to be added in the order they should be tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenExtractor {
    sources: Vec<TokenSource>,
    max_len: usize,
    first_match: bool,
}

impl Default for TokenExtractor {
    fn default() -> Self {
        Self::new().bearer()
    }
}

impl TokenExtractor {
    /// An extractor with no source yet, an 8 KiB cap, and conflicting tokens refused.
    pub fn new() -> Self {
        Self {
            sources: Vec::new(),
            max_len: DEFAULT_MAX_TOKEN_LEN,
            first_match: false,
        }
    }

    /// Adds a source.
    pub fn source(mut self, source: TokenSource) -> Self {
        self.sources.push(source);
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer(self) -> Self {
        self.source(TokenSource::Bearer)
    }

    /// Adds the query parameter `name`.
    pub fn query(self, name: impl Into<Box<str>>) -> Self {
        self.source(TokenSource::Query { name: name.into() })
    }

    /// Adds the header `name`, whose whole value is the token.
    pub fn header(self, name: HeaderName) -> Self {
        self.source(TokenSource::Header { name, prefix: None })
    }

    /// Adds the header `name`, whose value is `prefix` (case-insensitive) then the token.
    pub fn header_with_prefix(self, name: HeaderName, prefix: impl Into<Box<str>>) -> Self {
        self.source(TokenSource::Header {
            name,
            prefix: Some(prefix.into()),
        })
    }

    /// Adds the cookie `name`.
    pub fn cookie(self, name: impl Into<Box<str>>) -> Self {
        self.source(TokenSource::Cookie { name: name.into() })
    }

    /// Adds the WebSocket subprotocol with the default prefix
    /// ([`DEFAULT_WEBSOCKET_PROTOCOL_PREFIX`]).
    pub fn websocket_protocol(self) -> Self {
        self.websocket_protocol_with_prefix(DEFAULT_WEBSOCKET_PROTOCOL_PREFIX)
    }

    /// Adds the WebSocket subprotocol `<prefix><unpadded base64url token>`.
    pub fn websocket_protocol_with_prefix(self, prefix: impl Into<Box<str>>) -> Self {
        self.source(TokenSource::WebSocketProtocol {
            prefix: prefix.into(),
        })
    }

    /// Sets the maximum token length in bytes (default 8 KiB). Longer tokens are refused
    /// before any decoding.
    pub fn max_token_len(mut self, max: usize) -> Self {
        self.max_len = max;
        self
    }

    /// The first source (in configuration order) that holds a token wins, and later sources are
    /// not examined. By default all sources are examined and different tokens are refused.
    pub fn first_match(mut self) -> Self {
        self.first_match = true;
        self
    }

    /// The configured sources, in order.
    pub fn sources(&self) -> &[TokenSource] {
        &self.sources
    }

    /// The configured cap.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Whether first-match precedence is on.
    pub fn is_first_match(&self) -> bool {
        self.first_match
    }

    /// Finds the token in `parts`, reading the subprotocol source only if the request is a
    /// WebSocket upgrade ([`is_websocket_upgrade_parts`](super::is_websocket_upgrade_parts)).
    /// See [`TokenExtractor::extract`].
    ///
    /// # Errors
    /// As [`TokenExtractor::extract`].
    pub fn extract_parts<'a>(
        &self,
        parts: &'a Parts,
    ) -> Result<Option<ExtractedToken<'a>>, ExtractError> {
        let upgrade =
            super::is_websocket_upgrade_parts(&parts.method, &parts.headers, &parts.extensions);
        self.extract(&parts.headers, &parts.uri, upgrade)
    }

    /// [`extract_parts`](Self::extract_parts) for a whole request.
    ///
    /// # Errors
    /// As [`TokenExtractor::extract`].
    pub fn extract_request<'a, B>(
        &self,
        req: &'a http::Request<B>,
    ) -> Result<Option<ExtractedToken<'a>>, ExtractError> {
        // The upgrade test reads several headers: only when a source needs its answer.
        let upgrade = self
            .sources
            .iter()
            .any(|s| matches!(s, TokenSource::WebSocketProtocol { .. }))
            && super::is_websocket_upgrade(req);
        self.extract(req.headers(), req.uri(), upgrade)
    }

    /// Finds the token in a request's headers and URI. `websocket_upgrade` says whether the
    /// request is a WebSocket upgrade: the subprotocol source is read only then (on any other
    /// request a `Sec-WebSocket-Protocol` header, well-formed or not, changes nothing).
    ///
    /// `Ok(None)` when no configured source holds a token.
    ///
    /// # Errors
    /// An [`ExtractError`] when a source is present but unusable, a token is over the cap, or
    /// (unless [`first_match`](Self::first_match) is set) two sources disagree.
    pub fn extract<'a>(
        &self,
        headers: &'a HeaderMap,
        uri: &'a Uri,
        websocket_upgrade: bool,
    ) -> Result<Option<ExtractedToken<'a>>, ExtractError> {
        let mut found: Option<ExtractedToken<'a>> = None;
        for source in &self.sources {
            let Some(token) = source.find(headers, uri, self.max_len, websocket_upgrade)? else {
                continue;
            };
            match &found {
                None => {
                    found = Some(ExtractedToken {
                        token,
                        source: source.kind(),
                    });
                    if self.first_match {
                        break;
                    }
                }
                Some(prev) if same_token(&prev.token, &token) => {}
                Some(_) => return Err(ExtractError::Conflicting),
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(req: http::request::Builder) -> Parts {
        req.body(()).unwrap().into_parts().0
    }

    fn all_sources() -> TokenExtractor {
        TokenExtractor::new()
            .bearer()
            .query("token")
            .header(HeaderName::from_static("x-auth-token"))
            .cookie("jwt")
            .websocket_protocol()
    }

    #[test]
    fn default_reads_bearer_only() {
        let ex = TokenExtractor::default();
        let p = parts(Request::get("/?token=q.q.q").header("authorization", "Bearer a.b.c"));
        let t = ex.extract_parts(&p).unwrap().unwrap();
        assert_eq!((t.as_str(), t.source()), ("a.b.c", TokenSourceKind::Bearer));
    }

    #[test]
    fn no_source_present_is_none() {
        let p = parts(Request::get("/x?y=1"));
        assert_eq!(all_sources().extract_parts(&p).unwrap(), None);
    }

    #[test]
    fn same_token_in_two_sources_is_accepted() {
        let p = parts(
            Request::get("/?token=a.b.c")
                .header("authorization", "Bearer a.b.c")
                .header("cookie", "jwt=a.b.c"),
        );
        let t = all_sources().extract_parts(&p).unwrap().unwrap();
        assert_eq!(t.source(), TokenSourceKind::Bearer);
    }

    #[test]
    fn different_tokens_conflict() {
        let p = parts(Request::get("/?token=x.y.z").header("authorization", "Bearer a.b.c"));
        assert_eq!(
            all_sources().extract_parts(&p),
            Err(ExtractError::Conflicting)
        );
    }

    #[test]
    fn first_match_takes_configured_order() {
        let p = parts(Request::get("/?token=x.y.z").header("x-auth-token", "a.b.c"));
        let ex = TokenExtractor::new()
            .header(HeaderName::from_static("x-auth-token"))
            .query("token")
            .first_match();
        let t = ex.extract_parts(&p).unwrap().unwrap();
        assert_eq!((t.as_str(), t.source()), ("a.b.c", TokenSourceKind::Header));
    }

    #[test]
    fn debug_redacts_token() {
        let p = parts(Request::get("/").header("authorization", "Bearer secret.token.text"));
        let t = all_sources().extract_parts(&p).unwrap().unwrap();
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("secret"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn constant_time_equality() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
    }
}
