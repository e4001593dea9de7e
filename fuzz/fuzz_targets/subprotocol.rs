//! The WebSocket `Sec-WebSocket-Protocol` token source and the application-protocol selection.
//!
//! Properties, besides "no panic":
//! - differential: the token source gives exactly what a reference model of the documented rule
//!   gives, error codes included, under the default prefix and a short one: the entry under the
//!   prefix (one at most), base64url without padding, UTF-8, within the cap, and only when
//!   another, selectable protocol is offered;
//! - selection: the selectable protocols are exactly the offered entries (in the client's
//!   order) that are 1 to 64 bytes and not under the token prefix, so the token entry is never
//!   one of them and never echoed in a response header.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use tower_jwt_guard::extract::{
    DEFAULT_WEBSOCKET_PROTOCOL_PREFIX, ExtractError, MAX_APPLICATION_PROTOCOL_LEN, TokenExtractor,
    application_protocols,
};

const CAP: usize = 256;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in rest.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append("sec-websocket-protocol", value);
        }
    }
    let uri = Uri::from_static("/ws");
    let prefix = if flags & 1 == 0 {
        DEFAULT_WEBSOCKET_PROTOCOL_PREFIX
    } else {
        "t."
    };
    let extractor = TokenExtractor::new()
        .max_token_len(CAP)
        .websocket_protocol_with_prefix(prefix);
    let extracted = extractor
        .extract(&headers, &uri, true)
        .map(|t| t.map(|t| t.as_str().to_owned()));
    assert_eq!(extracted, reference(&headers, prefix), "the token source");

    let selected: Vec<&str> = application_protocols(&headers).collect();
    let expected: Vec<&str> = entries(&headers)
        .into_iter()
        .filter(|e| {
            !e.is_empty()
                && e.len() <= MAX_APPLICATION_PROTOCOL_LEN
                && !e.starts_with(DEFAULT_WEBSOCKET_PROTOCOL_PREFIX)
        })
        .collect();
    assert_eq!(selected, expected, "the selectable protocols");
    if prefix == DEFAULT_WEBSOCKET_PROTOCOL_PREFIX {
        assert!(
            selected.iter().all(|p| !p.starts_with(prefix)),
            "the token entry is selectable"
        );
    }
});

/// Every offered entry of the visible-ASCII values, trimmed of spaces and tabs, in order.
fn entries(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim_matches([' ', '\t']))
        .collect()
}

/// The documented rule, written out.
fn reference(headers: &HeaderMap, prefix: &str) -> Result<Option<String>, ExtractError> {
    let mut encoded = None;
    let mut application = false;
    for value in headers.get_all("sec-websocket-protocol") {
        let value = value
            .to_str()
            .map_err(|_| ExtractError::BadSubprotocolHeader)?;
        for entry in value.split(',').map(|p| p.trim_matches([' ', '\t'])) {
            if let Some(rest) = entry.strip_prefix(prefix) {
                if encoded.replace(rest).is_some() {
                    return Err(ExtractError::MultipleSubprotocols);
                }
            } else if !entry.is_empty()
                && entry.len() <= MAX_APPLICATION_PROTOCOL_LEN
                && !entry.starts_with(DEFAULT_WEBSOCKET_PROTOCOL_PREFIX)
            {
                application = true;
            }
        }
    }
    let Some(encoded) = encoded else {
        return Ok(None);
    };
    if !application {
        return Err(ExtractError::NoApplicationProtocol);
    }
    if encoded.len() > CAP.div_ceil(3) * 4 {
        return Err(ExtractError::TooLarge);
    }
    let token = URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(ExtractError::BadSubprotocolEncoding)?;
    match token.len() {
        0 => Err(ExtractError::Malformed),
        n if n > CAP => Err(ExtractError::TooLarge),
        _ => Ok(Some(token)),
    }
}
