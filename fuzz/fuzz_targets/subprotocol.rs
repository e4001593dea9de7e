//! The WebSocket `Sec-WebSocket-Protocol` token source and the application-protocol selection.
//! Properties: no panic; a selected protocol is never the token one, never longer than 64
//! bytes, and always one of the offered names.
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
        if let Ok(Some(token)) = &extracted {
            assert_ne!(protocol, token.as_str(), "the token selected as a protocol");
        }
    }
});
