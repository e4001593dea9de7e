use std::fmt;

use crate::error::{AuthError, ErrorCode};

/// Why a token could not be taken from a request. Variants about the token map to
/// `INVALID_TOKEN`; those about the request's shape ([`ExtractError::code`]) to
/// `INVALID_REQUEST`, which is never counted as a failed attempt.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractError {
    /// The token is longer than the configured maximum.
    TooLarge,
    /// Two sources (or two values of one source) carry different tokens (`INVALID_REQUEST`).
    Conflicting,
    /// A header that may appear once appeared several times (`INVALID_REQUEST`).
    DuplicateHeader,
    /// A source is present but its value is not a usable token (empty, wrong prefix, not
    /// visible ASCII).
    Malformed,
    /// More than one WebSocket subprotocol carries a token (`INVALID_REQUEST`).
    MultipleSubprotocols,
    /// The token subprotocol is not unpadded base64url of UTF-8 text.
    BadSubprotocolEncoding,
    /// A WebSocket upgrade offered the token subprotocol and no other: the handshake must
    /// select one of the offered subprotocols, and never the token (`INVALID_REQUEST`).
    NoApplicationProtocol,
    /// A WebSocket upgrade's `Sec-WebSocket-Protocol` header is not visible ASCII
    /// (`INVALID_REQUEST`).
    BadSubprotocolHeader,
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
            Self::NoApplicationProtocol => {
                "a token subprotocol needs an application subprotocol beside it"
            }
            Self::BadSubprotocolHeader => "the Sec-WebSocket-Protocol header is malformed",
        }
    }

    /// The rejection code: `INVALID_REQUEST` for the request's shape, `INVALID_TOKEN` for the
    /// token.
    pub const fn code(self) -> ErrorCode {
        match self {
            // Two credentials (RFC 6750 §3.1: "uses more than one method for including an access
            // token" is `invalid_request`), or none that can be used: no token was validated, so
            // nothing was guessed, and a valid token beside junk is never counted as a failure.
            Self::Conflicting
            | Self::DuplicateHeader
            | Self::MultipleSubprotocols
            | Self::NoApplicationProtocol
            | Self::BadSubprotocolHeader => ErrorCode::InvalidRequest,
            _ => ErrorCode::InvalidToken,
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
        AuthError::new(e.code(), e.message())
    }
}
