//! Arbitrary headers, URI and cookies into the extractor. Properties: no panic; an extracted
//! token is never longer than the cap and is a substring of the input or the decoding of one
//! (the subprotocol source base64url-decodes); two sources that disagree are never accepted.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use tower_jwt_guard::extract::TokenExtractor;

const CAP: usize = 512;

fuzz_target!(|data: &[u8]| {
    // Layout: fields separated by 0xFF: authorization, x-auth-token, cookie, query, protocol.
    let mut fields = data.split(|&b| b == 0xff);
    let mut headers = HeaderMap::new();
    let mut raw: Vec<&[u8]> = Vec::new();
    for name in ["authorization", "x-auth-token", "cookie"] {
        if let Some(field) = fields.next() {
            raw.push(field);
            if let Ok(value) = HeaderValue::from_bytes(field) {
                headers.append(HeaderName::from_static(name), value);
            }
        }
    }
    let query = fields.next().unwrap_or_default();
    raw.push(query);
    let uri = std::str::from_utf8(query)
        .ok()
        .and_then(|q| format!("/p?{q}").parse::<Uri>().ok())
        .unwrap_or_else(|| Uri::from_static("/p"));
    if let Some(protocol) = fields.next() {
        raw.push(protocol);
        if let Ok(value) = HeaderValue::from_bytes(protocol) {
            headers.append("sec-websocket-protocol", value);
        }
    }
    for first_match in [false, true] {
        let mut extractor = TokenExtractor::new()
            .bearer()
            .query("token")
            .header(HeaderName::from_static("x-auth-token"))
            .cookie("session")
            .websocket_protocol()
            .max_token_len(CAP);
        if first_match {
            extractor = extractor.first_match();
        }
        for upgrade in [false, true] {
            let Ok(Some(token)) = extractor.extract(&headers, &uri, upgrade) else {
                continue;
            };
            let t = token.as_str().as_bytes();
            assert!(t.len() <= CAP, "token over the cap");
            assert!(!t.is_empty(), "empty token");
            let found = raw.iter().any(|field| contains(field, t) || decodes_to(field, t))
                // The query is percent-decoded.
                || contains(&percent_decoded(query), t);
            assert!(found, "a token that is not in the input");
        }
    }
});

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether some base64url run in `field` decodes to `token`.
fn decodes_to(field: &[u8], token: &[u8]) -> bool {
    use base64::Engine;
    field
        .split(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'))
        .filter_map(|run| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(run)
                .ok()
        })
        .any(|decoded| decoded == token)
}

fn percent_decoded(q: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(q.len());
    let mut i = 0;
    while i < q.len() {
        match q[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < q.len()
                && q[i + 1].is_ascii_hexdigit()
                && q[i + 2].is_ascii_hexdigit() =>
            {
                let hex = std::str::from_utf8(&q[i + 1..i + 3]).unwrap_or("0");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}
