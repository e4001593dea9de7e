//! Arbitrary headers (repeated at will), URI and cookies into the extractor.
//!
//! Properties, besides "no panic":
//! - each source alone: a token is never empty, never over the cap, and is where that source
//!   reads it: in an `Authorization` value after the scheme, in an `x-auth-token` value, in a
//!   `Cookie` value, in the percent-decoded query, or the base64url decoding of a
//!   `Sec-WebSocket-Protocol` entry under the prefix (on upgrades only; never on other
//!   requests);
//! - composition (differential): the five-source extractor gives exactly what its sources give
//!   one by one, folded in order: the first error, else two different tokens are `Conflicting`
//!   (never accepted), else the first token; with `first_match`, the first token wins and later
//!   sources are not read.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use tower_jwt_guard::extract::{
    DEFAULT_WEBSOCKET_PROTOCOL_PREFIX, ExtractError, ExtractedToken, TokenExtractor,
    TokenSourceKind,
};

const CAP: usize = 512;
const HEADERS: [&str; 4] = [
    "authorization",
    "x-auth-token",
    "cookie",
    "sec-websocket-protocol",
];
const SHORT_PREFIX: &str = "t.";

fn extractors(prefix: &str) -> [TokenExtractor; 5] {
    let base = || TokenExtractor::new().max_token_len(CAP);
    [
        base().bearer(),
        base().query("token"),
        base().header(HeaderName::from_static("x-auth-token")),
        base().cookie("session"),
        base().websocket_protocol_with_prefix(prefix),
    ]
}

fn all(prefix: &str) -> TokenExtractor {
    TokenExtractor::new()
        .max_token_len(CAP)
        .bearer()
        .query("token")
        .header(HeaderName::from_static("x-auth-token"))
        .cookie("session")
        .websocket_protocol_with_prefix(prefix)
}

/// A result as plain values, to compare results of different extractors.
type Found = Result<Option<(String, TokenSourceKind)>, ExtractError>;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    // Records separated by 0xFF: a kind byte, then the value. Kinds 0-3 append a header (so
    // any header may repeat), 4 appends a query pair.
    let mut headers = HeaderMap::new();
    let mut query = Vec::new();
    for record in rest.split(|&b| b == 0xff) {
        let Some((&kind, value)) = record.split_first() else {
            continue;
        };
        match usize::from(kind) % 5 {
            4 => {
                if !query.is_empty() {
                    query.push(b'&');
                }
                query.extend_from_slice(value);
            }
            k => {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    headers.append(HeaderName::from_static(HEADERS[k]), value);
                }
            }
        }
    }
    let uri = std::str::from_utf8(&query)
        .ok()
        .and_then(|q| format!("/p?{q}").parse::<Uri>().ok())
        .unwrap_or_else(|| Uri::from_static("/p"));
    let prefix = if flags & 2 == 0 {
        DEFAULT_WEBSOCKET_PROTOCOL_PREFIX
    } else {
        SHORT_PREFIX
    };
    let upgrade = flags & 1 == 1;

    let singles: Vec<Found> = extractors(prefix)
        .iter()
        .map(|e| e.extract(&headers, &uri, upgrade).map(own))
        .collect();
    for (i, found) in singles.iter().enumerate() {
        if let Ok(Some(token)) = found {
            where_its_source_reads_it(i, token, &headers, &uri, prefix);
        }
    }
    if !upgrade {
        assert!(
            matches!(singles[4], Ok(None)),
            "the subprotocol read on a plain request"
        );
    }

    let combined = all(prefix).extract(&headers, &uri, upgrade).map(own);
    assert_eq!(
        combined,
        fold(&singles, false),
        "the sources composed differently"
    );
    let first = all(prefix)
        .first_match()
        .extract(&headers, &uri, upgrade)
        .map(own);
    assert_eq!(
        first,
        fold(&singles, true),
        "first_match composed differently"
    );
});

fn own(found: Option<ExtractedToken<'_>>) -> Option<(String, TokenSourceKind)> {
    found.map(|t| (t.as_str().to_owned(), t.source()))
}

/// What the sources give one by one, folded in order (the documented rule).
fn fold(singles: &[Found], first_match: bool) -> Found {
    let mut found: Option<(String, TokenSourceKind)> = None;
    for single in singles {
        match single {
            Err(e) => return Err(*e),
            Ok(None) => {}
            Ok(Some(token)) => match &found {
                None if first_match => return Ok(Some(token.clone())),
                None => found = Some(token.clone()),
                Some(prev) if prev.0 == token.0 => {}
                Some(_) => return Err(ExtractError::Conflicting),
            },
        }
    }
    Ok(found)
}

fn where_its_source_reads_it(
    i: usize,
    (t, source): &(String, TokenSourceKind),
    headers: &HeaderMap,
    uri: &Uri,
    prefix: &str,
) {
    let t = t.as_str();
    assert!(!t.is_empty() && t.len() <= CAP, "empty or over the cap");
    let values = |name: &str| -> Vec<Vec<u8>> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect()
    };
    let found = match i {
        0 => {
            assert_eq!(*source, TokenSourceKind::Bearer);
            values("authorization").iter().any(|v| {
                // A field value's surrounding whitespace is not part of it (RFC 9110 §5.5).
                let v = v.trim_ascii();
                // The scheme, then a space or a tab (RFC 9110 allows only the space; both are read).
                v.len() > 7
                    && v[..6].eq_ignore_ascii_case(b"bearer")
                    && matches!(v[6], b' ' | b'\t')
                    && contains(&v[7..], t.as_bytes())
            })
        }
        1 => contains(
            &percent_decoded(uri.query().unwrap_or("").as_bytes()),
            t.as_bytes(),
        ),
        2 => values("x-auth-token")
            .iter()
            .any(|v| contains(v, t.as_bytes())),
        3 => values("cookie").iter().any(|v| contains(v, t.as_bytes())),
        _ => values("sec-websocket-protocol").iter().any(|v| {
            v.split(|b| *b == b',').any(|entry| {
                let entry = entry.trim_ascii();
                entry.len() > prefix.len()
                    && entry[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
                    && URL_SAFE_NO_PAD
                        .decode(&entry[prefix.len()..])
                        .ok()
                        .as_deref()
                        == Some(t.as_bytes())
            })
        }),
    };
    assert!(
        found,
        "source {i}: a token that is not where the source reads it"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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
