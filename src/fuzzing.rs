//! Entry points into internal parsers for the crate's fuzz targets (`fuzz/`).
//!
//! Compiled only under `--cfg fuzzing`, which `cargo fuzz` sets; never part of the API, never
//! in a normal build.

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
