//! Finding the token in a request.
//!
//! A [`TokenExtractor`] looks for a token in an ordered list of [`TokenSource`]s:
//!
//! | source | example | notes |
//! |---|---|---|
//! | [`TokenSource::Bearer`] | `Authorization: Bearer eyJ…` | scheme case-insensitive; two `Authorization` headers are refused, never merged |
//! | [`TokenSource::Query`] | `/ws?token=eyJ…` | percent-decoded; a second, different value is refused |
//! | [`TokenSource::Header`] | `X-Auth-Token: eyJ…` | optional value prefix |
//! | [`TokenSource::Cookie`] | `Cookie: session=eyJ…` | |
//! | [`TokenSource::WebSocketProtocol`] | `Sec-WebSocket-Protocol: echo, base64url.bearer.authorization.jwt.ZXlK…` | unpadded base64url; for browsers, which cannot set headers on a WebSocket; **read on WebSocket upgrades only** ([`is_websocket_upgrade`]), ignored on every other request; an upgrade must offer an application subprotocol beside it (`400 INVALID_REQUEST` otherwise, never counted as a failed attempt) |
//!
//! By default every configured source is examined and **two sources carrying different tokens are
//! refused** (`INVALID_TOKEN`), so that a proxy or a browser extension adding a second credential
//! can never change who the request is authenticated as. [`TokenExtractor::first_match`] opts into
//! "first source wins" instead. A token longer than [`TokenExtractor::max_token_len`] (8 KiB by
//! default) is refused before it is decoded.
//!
//! Extraction is a pure function of the headers and the URI, so it can be tested and fuzzed on its
//! own:
//!
//! ```
//! use http::{HeaderName, Request};
//! use tower_jwt_guard::extract::{TokenExtractor, TokenSourceKind};
//!
//! let extractor = TokenExtractor::new()
//!     .bearer()
//!     .query("token")
//!     .header(HeaderName::from_static("x-auth-token"));
//!
//! let req = Request::get("/me?token=abc.def.ghi").body(()).unwrap();
//! let (parts, _) = req.into_parts();
//! // The last argument says whether the request is a WebSocket upgrade (the subprotocol
//! // source is read only then); `extract_parts` and `extract_request` work it out themselves.
//! let found = extractor.extract(&parts.headers, &parts.uri, false).unwrap().unwrap();
//! assert_eq!(found.as_str(), "abc.def.ghi");
//! assert_eq!(found.source(), TokenSourceKind::Query);
//! ```
//!
//! The token text is never logged and [`ExtractedToken`]'s `Debug` output redacts it.

mod error;
mod extractor;
mod sources;
mod upgrade;

pub use error::ExtractError;
pub use extractor::{DEFAULT_MAX_TOKEN_LEN, ExtractedToken, TokenExtractor};
pub use sources::{
    DEFAULT_WEBSOCKET_PROTOCOL_PREFIX, MAX_APPLICATION_PROTOCOL_LEN, TokenSource, TokenSourceKind,
    application_protocols, is_application_protocol,
};
#[cfg(feature = "websocket")]
pub(crate) use upgrade::is_http1_upgrade;
pub use upgrade::{is_websocket_upgrade, is_websocket_upgrade_parts};
