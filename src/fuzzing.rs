//! Entry points into internal parsers for the crate's fuzz targets (`fuzz/`).
//!
//! Compiled only under `--cfg fuzzing`, which `cargo fuzz` sets; never part of the API, never
//! in a normal build. (`cargo fuzz` sets that flag for every crate it builds, so an application
//! that fuzzes itself sees this module too: it is unstable, hidden, and not for use.)

/// The WebSocket re-authentication parser: `None` when `text` is not a re-authentication,
/// `Some(None)` when it is one without a usable token, `Some(Some(token))` otherwise.
#[cfg(feature = "websocket")]
pub fn parse_reauth(text: &str) -> Option<Option<String>> {
    use crate::ws::wire::{Reauth, parse_reauth};
    parse_reauth(text).map(|reauth| match reauth {
        Reauth::Token(token) => Some(token.into_owned()),
        Reauth::Unusable => None,
    })
}

/// The trailers that end a gRPC stream with `error` (stream expiry uses them).
#[cfg(feature = "tonic")]
pub fn grpc_trailers(error: &crate::AuthError) -> http::HeaderMap {
    crate::response::grpc_trailers(error)
}

/// The trailers of a gRPC rejection with `code`, any `message` and `retry_after`, written as
/// the crate writes its own (whose messages are fixed texts).
#[cfg(feature = "tonic")]
pub fn grpc_trailers_with(
    code: crate::ErrorCode,
    message: &str,
    retry_after: Option<std::time::Duration>,
) -> http::HeaderMap {
    crate::response::trailers_for(crate::response::status_for(code, message, retry_after))
}
