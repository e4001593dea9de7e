//! The one answer to "is this request a WebSocket upgrade?", used by extraction (the
//! subprotocol source counts only on upgrades), the lockout and the `ws` module.

use http::header::{CONNECTION, UPGRADE};
use http::{Extensions, HeaderMap, HeaderValue, Method, Request};

fn has_token(value: Option<&HeaderValue>, token: &str) -> bool {
    value
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Whether `method` and `headers` ask for an HTTP/1.1 WebSocket upgrade: `GET` with
/// `Connection: upgrade` and `Upgrade: websocket` (tokens matched case-insensitively in
/// comma-separated lists).
pub(crate) fn is_http1_upgrade(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        && has_token(headers.get(CONNECTION), "upgrade")
        && has_token(headers.get(UPGRADE), "websocket")
}

/// Whether a request asks for a WebSocket: an HTTP/1.1 upgrade (see above), or, with the
/// `websocket` feature (which brings hyper's extension type), an HTTP/2 extended `CONNECT`
/// whose `:protocol` is `websocket` (RFC 8441).
pub fn is_websocket_upgrade_parts(
    method: &Method,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> bool {
    if is_http1_upgrade(method, headers) {
        return true;
    }
    #[cfg(feature = "websocket")]
    {
        method == Method::CONNECT
            && extensions
                .get::<hyper::ext::Protocol>()
                .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
    }
    #[cfg(not(feature = "websocket"))]
    {
        let _ = extensions;
        false
    }
}

/// [`is_websocket_upgrade_parts`] for a whole request.
pub fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    is_websocket_upgrade_parts(req.method(), req.headers(), req.extensions())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_http1_upgrades() {
        let req = Request::get("/ws")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "WebSocket")
            .body(())
            .unwrap();
        assert!(is_websocket_upgrade(&req));
        let plain = Request::get("/ws").body(()).unwrap();
        assert!(!is_websocket_upgrade(&plain));
        let post = Request::post("/ws")
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        assert!(!is_websocket_upgrade(&post));
        let h2c = Request::get("/ws")
            .header("connection", "upgrade")
            .header("upgrade", "h2c")
            .body(())
            .unwrap();
        assert!(!is_websocket_upgrade(&h2c));
    }

    #[cfg(feature = "websocket")]
    #[test]
    fn recognizes_http2_extended_connect() {
        let mut req = Request::connect("/ws").body(()).unwrap();
        assert!(!is_websocket_upgrade(&req), "CONNECT alone is a tunnel");
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        assert!(is_websocket_upgrade(&req));
    }
}
