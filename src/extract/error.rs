use std::fmt;

use crate::error::AuthError;

/// Why a token could not be taken from a request. Every variant maps to `INVALID_TOKEN`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractError {
    /// The token is longer than the configured maximum.
    TooLarge,
    /// Two sources (or two values of one source) carry different tokens.
    Conflicting,
    /// A header that may appear once appeared several times.
    DuplicateHeader,
    /// A source is present but its value is not a usable token (empty, wrong prefix, not
    /// visible ASCII).
    Malformed,
    /// More than one WebSocket subprotocol carries a token.
    MultipleSubprotocols,
    /// The token subprotocol is not unpadded base64url of UTF-8 text.
    BadSubprotocolEncoding,
}

impl ExtractError {
    /// A fixed description, free of request data.
    pub const fn message(self) -> &'static str {
        match self {
            Self::TooLarge => "the token exceeds the maximum size",
            Self::Conflicting => "conflicting tokens were presented",
            Self::DuplicateHeader => "the token header was sent more than once",
            Self::Malformed => "the token could not be read from the request",
            Self::MultipleSubprotocols => "more than one token subprotocol was offered",
            Self::BadSubprotocolEncoding => "the token subprotocol is not valid base64url",
        }
    }
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ExtractError {}

impl From<ExtractError> for AuthError {
    fn from(e: ExtractError) -> Self {
        AuthError::invalid_token(e.message())
    }
}
