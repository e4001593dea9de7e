//! The WebSocket `Sec-WebSocket-Protocol` token source and the application-protocol selection.
//! Properties: no panic; a selected protocol is never the token-bearing entry, never longer
//! than 64 bytes, always one of the offered names, and never a real (over 64 bytes) token.
#![no_main]

use http::{HeaderMap, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use tower_jwt_guard::extract::{
    DEFAULT_WEBSOCKET_PROTOCOL_PREFIX, MAX_APPLICATION_PROTOCOL_LEN, TokenExtractor,
    application_protocols,
};

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append("sec-websocket-protocol", value);
        }
    }
    let uri = Uri::from_static("/ws");
    let extractor = TokenExtractor::new().websocket_protocol();
    let extracted = extractor.extract(&headers, &uri, true);
    for protocol in application_protocols(&headers) {
        assert!(!protocol.starts_with(DEFAULT_WEBSOCKET_PROTOCOL_PREFIX));
        assert!(!protocol.is_empty() && protocol.len() <= MAX_APPLICATION_PROTOCOL_LEN);
        assert!(
            data.windows(protocol.len())
                .any(|w| w == protocol.as_bytes())
        );
        // The token one is the prefixed entry (never selectable, above). A client may also
        // offer a short name equal to the decoded token; echoing a name the client offered
        // is harmless, and no real token is short enough (the smallest is 68 bytes).
        if let Ok(Some(token)) = &extracted
            && token.as_str().len() > MAX_APPLICATION_PROTOCOL_LEN
        {
            assert_ne!(protocol, token.as_str(), "the token selected as a protocol");
        }
    }
});
