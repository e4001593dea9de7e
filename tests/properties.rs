//! Property tests (proptest): the extraction precedence and conflicting-source rule over every
//! combination of the five sources (the WebSocket subprotocol included) and repeated headers,
//! and the client-address rule over arbitrary proxy chains, for each proxy header.
#![cfg(feature = "lockout")]

use std::net::{IpAddr, Ipv4Addr};

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use proptest::prelude::*;
use tower_jwt_guard::client_ip::{ClientIpResolver, ProxyHeader};
use tower_jwt_guard::extract::{
    DEFAULT_WEBSOCKET_PROTOCOL_PREFIX, ExtractError, TokenExtractor, TokenSourceKind,
};

/// A token-shaped value: three base64url segments.
fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,24}\\.[A-Za-z0-9_-]{1,24}\\.[A-Za-z0-9_-]{1,24}"
}

const KINDS: [TokenSourceKind; 5] = [
    TokenSourceKind::Bearer,
    TokenSourceKind::Query,
    TokenSourceKind::Header,
    TokenSourceKind::Cookie,
    TokenSourceKind::WebSocketProtocol,
];

fn extractor(first_match: bool) -> TokenExtractor {
    let e = TokenExtractor::new()
        .bearer()
        .query("token")
        .header(HeaderName::from_static("x-auth-token"))
        .cookie("session")
        .websocket_protocol();
    if first_match { e.first_match() } else { e }
}

/// The request carrying `values[i]` in the i-th source (bearer, query, header, cookie,
/// subprotocol beside an application one).
fn request(values: &[Option<String>; 5]) -> (HeaderMap, Uri) {
    let mut headers = HeaderMap::new();
    if let Some(v) = &values[0] {
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {v}")).unwrap(),
        );
    }
    if let Some(v) = &values[2] {
        headers.insert("x-auth-token", HeaderValue::from_str(v).unwrap());
    }
    if let Some(v) = &values[3] {
        headers.insert(
            "cookie",
            HeaderValue::from_str(&format!("theme=dark; session={v}")).unwrap(),
        );
    }
    if let Some(v) = &values[4] {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let value = format!("chat, {DEFAULT_WEBSOCKET_PROTOCOL_PREFIX}{encoded}");
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    let uri = match &values[1] {
        Some(v) => format!("/me?x=1&token={v}"),
        None => "/me?x=1".to_owned(),
    };
    (headers, uri.parse().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Agreeing sources give their token, reported as found in the first configured source
    /// that holds it; two different tokens are refused (`Conflicting`); with `first_match`,
    /// the first source wins. An extracted token is always one of the values sent.
    #[test]
    fn precedence_and_conflicts(
        a in token(),
        b in token(),
        picks in proptest::array::uniform5(proptest::option::of(any::<bool>())),
    ) {
        let values: [Option<String>; 5] =
            picks.map(|p| p.map(|second| if second { b.clone() } else { a.clone() }));
        let (headers, uri) = request(&values);
        let present: Vec<(usize, &String)> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i, v)))
            .collect();

        // An upgrade, so that the subprotocol source is read.
        let strict = extractor(false).extract(&headers, &uri, true);
        let first = extractor(true).extract(&headers, &uri, true);
        match present.first() {
            None => {
                prop_assert!(matches!(strict, Ok(None)));
                prop_assert!(matches!(first, Ok(None)));
            }
            Some(&(i, v)) => {
                let first = first.unwrap().unwrap();
                prop_assert_eq!(first.as_str(), v.as_str());
                prop_assert_eq!(first.source(), KINDS[i]);
                if present.iter().all(|(_, w)| *w == v) {
                    let t = strict.unwrap().unwrap();
                    prop_assert_eq!(t.as_str(), v.as_str());
                    prop_assert_eq!(t.source(), KINDS[i]);
                } else {
                    prop_assert_eq!(strict.unwrap_err(), ExtractError::Conflicting);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A header source that may appear once (`Authorization`, `x-auth-token`) sent twice is
    /// refused, the same value or not, wherever it stands among the sources: never one of the
    /// two guessed.
    #[test]
    fn a_repeated_single_header_is_refused(
        a in token(),
        b in token(),
        same in any::<bool>(),
        which in 0..2usize,
        cookie in proptest::option::of(token()),
    ) {
        let second = if same { a.clone() } else { b };
        let (name, prefix) = [("authorization", "Bearer "), ("x-auth-token", "")][which];
        let mut headers = HeaderMap::new();
        for v in [&a, &second] {
            headers.append(name, HeaderValue::from_str(&format!("{prefix}{v}")).unwrap());
        }
        if let Some(c) = cookie {
            headers.insert("cookie", HeaderValue::from_str(&format!("session={c}")).unwrap());
        }
        let uri: Uri = "/me".parse().unwrap();
        for first_match in [false, true] {
            prop_assert_eq!(
                extractor(first_match).extract(&headers, &uri, false).unwrap_err(),
                ExtractError::DuplicateHeader
            );
        }
    }
}

/// An address of the trusted proxy range (10.0.0.0/8) or a public one.
fn hop() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 3]>().prop_map(|[a, b, c]| IpAddr::V4(Ipv4Addr::new(10, a, b, c))),
        any::<[u8; 3]>().prop_map(|[a, b, c]| IpAddr::V4(Ipv4Addr::new(203, a, b, c))),
    ]
}

fn trusted(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 10)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Behind trusted proxies (10.0.0.0/8), `X-Forwarded-For` and `Forwarded` are read right
    /// to left: the result is the right-most untrusted hop when there is one (never a trusted
    /// proxy then), the left-most hop when every hop is trusted, the peer when the header is
    /// absent, and the peer itself when the peer is not trusted, whatever the header says.
    /// `X-Real-IP`, one address, is the client when the peer is trusted.
    #[test]
    fn the_client_is_the_rightmost_untrusted_hop(
        peer in hop(),
        chain in proptest::collection::vec(hop(), 0..6),
        kind in 0..3usize,
        split in any::<bool>(),
    ) {
        let (header, name) = [
            (ProxyHeader::XForwardedFor, "x-forwarded-for"),
            (ProxyHeader::Forwarded, "forwarded"),
            (ProxyHeader::XRealIp, "x-real-ip"),
        ][kind];
        let chain = if header == ProxyHeader::XRealIp { chain.into_iter().take(1).collect() } else { chain };
        let resolver = ClientIpResolver::new()
            .trusted_proxies(["10.0.0.0/8"])
            .unwrap()
            .proxy_header(header);
        let element = |ip: &IpAddr| match header {
            ProxyHeader::Forwarded => format!("for={ip};proto=https"),
            _ => ip.to_string(),
        };
        let mut headers = HeaderMap::new();
        if split {
            // One header line per hop, as several proxies may write them.
            for ip in &chain {
                headers.append(name, HeaderValue::from_str(&element(ip)).unwrap());
            }
        } else if !chain.is_empty() {
            let value = chain.iter().map(element).collect::<Vec<_>>().join(", ");
            headers.insert(name, HeaderValue::from_str(&value).unwrap());
        }
        let client = resolver.client_ip(peer, &headers);
        let expected = if !trusted(&peer) || chain.is_empty() {
            peer
        } else {
            *chain.iter().rev().find(|ip| !trusted(ip)).unwrap_or(&chain[0])
        };
        prop_assert_eq!(client, expected);
        if trusted(&peer) && chain.iter().any(|ip| !trusted(ip)) {
            prop_assert!(!trusted(&client));
        }
    }

    /// Arbitrary header bytes never make the resolver panic, and never produce an address
    /// that is neither the peer nor written in the header.
    #[test]
    fn arbitrary_forwarded_headers_never_invent_an_address(
        peer in hop(),
        raw in "[0-9a-f.:, \\[\\]=;\"A-Za-z]{0,80}",
    ) {
        let resolver = ClientIpResolver::new()
            .trusted_proxies(["10.0.0.0/8"])
            .unwrap();
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&raw) {
            headers.insert("x-forwarded-for", value);
        }
        let client = resolver.client_ip(peer, &headers);
        prop_assert!(client == peer || raw.contains(&client.to_string()));
    }
}
