use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{AUTHORIZATION, COOKIE, SEC_WEBSOCKET_PROTOCOL};
use http::{HeaderMap, HeaderName, Uri};

use super::ExtractError;

/// The subprotocol prefix that carries a token on a WebSocket upgrade, as Kubernetes uses it:
/// `base64url.bearer.authorization.jwt.<unpadded base64url of the token>`.
pub const DEFAULT_WEBSOCKET_PROTOCOL_PREFIX: &str = "base64url.bearer.authorization.jwt.";

/// Where a token may be found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer <token>`; the scheme is matched case-insensitively and surrounding
    /// whitespace is tolerated. Other schemes (e.g. `Basic`) are left alone.
    Bearer,
    /// A query parameter, percent-decoded.
    Query {
        /// The parameter name, e.g. `token`.
        name: Box<str>,
    },
    /// A named header, with an optional prefix before the token (matched case-insensitively).
    Header {
        /// The header name.
        name: HeaderName,
        /// A prefix the value must start with, e.g. `Token `.
        prefix: Option<Box<str>>,
    },
    /// A named cookie.
    Cookie {
        /// The cookie name.
        name: Box<str>,
    },
    /// A WebSocket subprotocol `<prefix><unpadded base64url of the token>`.
    WebSocketProtocol {
        /// The prefix, by default [`DEFAULT_WEBSOCKET_PROTOCOL_PREFIX`].
        prefix: Box<str>,
    },
}

/// Which kind of source a token came from; recorded in the authentication context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenSourceKind {
    /// `Authorization: Bearer`.
    Bearer,
    /// A query parameter.
    Query,
    /// A named header.
    Header,
    /// A cookie.
    Cookie,
    /// A WebSocket subprotocol.
    WebSocketProtocol,
}

impl TokenSourceKind {
    /// A short name for logs: `bearer`, `query`, `header`, `cookie`, `websocket_protocol`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Query => "query",
            Self::Header => "header",
            Self::Cookie => "cookie",
            Self::WebSocketProtocol => "websocket_protocol",
        }
    }
}

impl TokenSource {
    /// The kind of this source.
    pub fn kind(&self) -> TokenSourceKind {
        match self {
            Self::Bearer => TokenSourceKind::Bearer,
            Self::Query { .. } => TokenSourceKind::Query,
            Self::Header { .. } => TokenSourceKind::Header,
            Self::Cookie { .. } => TokenSourceKind::Cookie,
            Self::WebSocketProtocol { .. } => TokenSourceKind::WebSocketProtocol,
        }
    }

    /// Looks for a token in this source. `Ok(None)` when the source is absent, and always for
    /// the subprotocol source on a request that is not a WebSocket upgrade.
    pub(crate) fn find<'a>(
        &self,
        headers: &'a HeaderMap,
        uri: &'a Uri,
        max_len: usize,
        websocket_upgrade: bool,
    ) -> Result<Option<Cow<'a, str>>, ExtractError> {
        match self {
            Self::Bearer => bearer(headers, max_len),
            Self::Query { name } => query(uri, name, max_len),
            Self::Header { name, prefix } => header(headers, name, prefix.as_deref(), max_len),
            Self::Cookie { name } => cookie(headers, name, max_len),
            Self::WebSocketProtocol { .. } if !websocket_upgrade => Ok(None),
            Self::WebSocketProtocol { prefix } => websocket_protocol(headers, prefix, max_len),
        }
    }
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The single value of a header that must not repeat, as visible ASCII.
fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a str>, ExtractError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ExtractError::DuplicateHeader);
    }
    value
        .to_str()
        .map(|s| Some(s.trim_matches(is_ws)))
        .map_err(|_| ExtractError::Malformed)
}

fn checked(token: &str, max_len: usize) -> Result<&str, ExtractError> {
    if token.len() > max_len {
        Err(ExtractError::TooLarge)
    } else if token.is_empty() {
        Err(ExtractError::Malformed)
    } else {
        Ok(token)
    }
}

/// Keeps the first value found and refuses a different second one.
fn merge<'a>(found: &mut Option<Cow<'a, str>>, next: Cow<'a, str>) -> Result<(), ExtractError> {
    match found {
        None => {
            *found = Some(next);
            Ok(())
        }
        Some(prev) if super::extractor::same_token(prev, &next) => Ok(()),
        Some(_) => Err(ExtractError::Conflicting),
    }
}

fn bearer(headers: &HeaderMap, max_len: usize) -> Result<Option<Cow<'_, str>>, ExtractError> {
    let Some(value) = single_header(headers, &AUTHORIZATION)? else {
        return Ok(None);
    };
    let (scheme, rest) = value.split_once(is_ws).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    checked(rest.trim_matches(is_ws), max_len).map(|t| Some(Cow::Borrowed(t)))
}

fn query<'a>(
    uri: &'a Uri,
    name: &str,
    max_len: usize,
) -> Result<Option<Cow<'a, str>>, ExtractError> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    let mut found = None;
    for pair in query.split('&') {
        let raw_key = pair.split_once('=').map_or(pair, |(k, _)| k);
        // Keys are compared decoded, but only keys that could possibly match are decoded.
        if raw_key.len() < name.len() {
            continue;
        }
        let raw_value = pair.get(raw_key.len() + 1..).unwrap_or("");
        let Some((key, _)) = form_urlencoded::parse(raw_key.as_bytes()).next() else {
            continue;
        };
        if key != name {
            continue;
        }
        // The cap applies to the encoded value, before any decoding work.
        if raw_value.len() > max_len {
            return Err(ExtractError::TooLarge);
        }
        let value = decode_query_value(raw_value)?;
        checked(&value, max_len)?;
        merge(&mut found, value)?;
    }
    Ok(found)
}

/// The form-decoded value (`+` is a space, `%XX` a byte; a `%` not followed by two hex digits
/// stays as is). Bytes that do not decode to UTF-8 are a malformed token, never replaced: a
/// lossy decoding would make different requests carry the same token.
fn decode_query_value(raw: &str) -> Result<Cow<'_, str>, ExtractError> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(raw));
    }
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| ExtractError::Malformed)
}

fn header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    prefix: Option<&str>,
    max_len: usize,
) -> Result<Option<Cow<'a, str>>, ExtractError> {
    let Some(value) = single_header(headers, name)? else {
        return Ok(None);
    };
    let token = match prefix {
        None => value,
        Some(prefix) => {
            let head = value.get(..prefix.len()).ok_or(ExtractError::Malformed)?;
            if !head.eq_ignore_ascii_case(prefix) {
                return Err(ExtractError::Malformed);
            }
            value[prefix.len()..].trim_matches(is_ws)
        }
    };
    checked(token, max_len).map(|t| Some(Cow::Borrowed(t)))
}

fn cookie<'a>(
    headers: &'a HeaderMap,
    name: &str,
    max_len: usize,
) -> Result<Option<Cow<'a, str>>, ExtractError> {
    let mut found = None;
    for value in headers.get_all(COOKIE) {
        let Ok(value) = value.to_str() else {
            // Not visible ASCII: another cookie may hold such bytes (ignored), but a JWT
            // cannot, so a value under our name here is a malformed token, not a missing one.
            let ours = value.as_bytes().split(|&b| b == b';').any(|pair| {
                pair.iter()
                    .position(|&b| b == b'=')
                    .is_some_and(|eq| pair[..eq].trim_ascii() == name.as_bytes())
            });
            if ours {
                return Err(ExtractError::Malformed);
            }
            continue;
        };
        for pair in value.split(';') {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            if k.trim_matches(is_ws) != name {
                continue;
            }
            let v = v.trim_matches(is_ws);
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            merge(&mut found, Cow::Borrowed(checked(v, max_len)?))?;
        }
    }
    Ok(found)
}

/// The longest subprotocol name that may be selected in a response. Application protocols are
/// short names (`echo`, `graphql-ws`, `v12.stomp`); a token is always longer (a signed JWT is
/// over 64 bytes before the subprotocol source base64url-encodes it again), so whatever prefix
/// carries it, a token is never sent back.
pub const MAX_APPLICATION_PROTOCOL_LEN: usize = 64;

/// Whether `protocol` may be selected in a response: not empty, not under the default token
/// prefix, and at most [`MAX_APPLICATION_PROTOCOL_LEN`] bytes. The rule needs no knowledge of a
/// custom prefix (see [`MAX_APPLICATION_PROTOCOL_LEN`]), so every part of a stack (a refusal
/// with a close frame, a session's selection) applies the same one.
pub fn is_application_protocol(protocol: &str) -> bool {
    !protocol.is_empty()
        && protocol.len() <= MAX_APPLICATION_PROTOCOL_LEN
        && !protocol.starts_with(DEFAULT_WEBSOCKET_PROTOCOL_PREFIX)
}

/// The subprotocols a client offered that may be selected (see [`is_application_protocol`]),
/// in the client's order.
pub fn application_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim_matches(is_ws))
        .filter(|p| is_application_protocol(p))
}

fn websocket_protocol<'a>(
    headers: &'a HeaderMap,
    prefix: &str,
    max_len: usize,
) -> Result<Option<Cow<'a, str>>, ExtractError> {
    let mut encoded: Option<&str> = None;
    let mut application = false;
    for value in headers.get_all(SEC_WEBSOCKET_PROTOCOL) {
        let value = value
            .to_str()
            .map_err(|_| ExtractError::BadSubprotocolHeader)?;
        for protocol in value.split(',') {
            let protocol = protocol.trim_matches(is_ws);
            if let Some(enc) = protocol.strip_prefix(prefix) {
                if encoded.is_some() {
                    return Err(ExtractError::MultipleSubprotocols);
                }
                encoded = Some(enc);
            } else if is_application_protocol(protocol) {
                application = true;
            }
        }
    }
    let Some(encoded) = encoded else {
        return Ok(None);
    };
    if !application {
        // The handshake must select one of the client's offers and never the token: with
        // nothing else offered it cannot succeed, whatever the token (browsers fail a 101
        // that selects none of their offers). Refused before the token is read.
        return Err(ExtractError::NoApplicationProtocol);
    }
    // Unpadded base64 of `max_len` bytes is at most ceil(4 * max_len / 3) characters.
    if encoded.len() > max_len.div_ceil(3).saturating_mul(4) {
        return Err(ExtractError::TooLarge);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| ExtractError::BadSubprotocolEncoding)?;
    let token = String::from_utf8(bytes).map_err(|_| ExtractError::BadSubprotocolEncoding)?;
    checked(&token, max_len)?;
    Ok(Some(Cow::Owned(token)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const MAX: usize = 8192;

    #[test]
    fn application_protocols_skip_the_token_in_the_clients_order() {
        let mut h = HeaderMap::new();
        h.append(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("base64url.bearer.authorization.jwt.abc, echo"),
        );
        h.append(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(" chat ,,"));
        assert_eq!(
            application_protocols(&h).collect::<Vec<_>>(),
            ["echo", "chat"]
        );
    }

    #[test]
    fn long_or_default_prefixed_protocols_are_never_selectable() {
        let mut h = HeaderMap::new();
        let custom_token = format!("x.jwt.{}", "a".repeat(80));
        h.append(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(&format!(
                "{custom_token}, base64url.bearer.authorization.jwt.abc, v12.stomp"
            ))
            .unwrap(),
        );
        // Whatever prefix carries a token, it is never offered back.
        assert_eq!(application_protocols(&h).collect::<Vec<_>>(), ["v12.stomp"]);
        assert!(!is_application_protocol(""));
        assert!(is_application_protocol(
            &"a".repeat(MAX_APPLICATION_PROTOCOL_LEN)
        ));
        assert!(!is_application_protocol(
            &"a".repeat(MAX_APPLICATION_PROTOCOL_LEN + 1)
        ));
    }

    /// The length rule relies on every token being longer than 64 bytes once the subprotocol
    /// source encodes it: the smallest compact JWS a validator can accept (`{"alg":"HS256"}`,
    /// an empty payload, a 32-byte HMAC) is 68 bytes, 91 encoded.
    #[test]
    fn the_smallest_acceptable_token_is_longer_than_any_selectable_protocol() {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(b"{}");
        let signature = URL_SAFE_NO_PAD.encode([0u8; 32]);
        let token = format!("{header}.{payload}.{signature}");
        assert_eq!(token.len(), 68);
        assert!(token.len() > MAX_APPLICATION_PROTOCOL_LEN);
        assert!(URL_SAFE_NO_PAD.encode(&token).len() > MAX_APPLICATION_PROTOCOL_LEN);
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_whitespace_tolerant() {
        let h = headers(&[("authorization", "  bEaReR \t a.b.c  ")]);
        assert_eq!(bearer(&h, MAX).unwrap().as_deref(), Some("a.b.c"));
    }

    #[test]
    fn bearer_ignores_other_schemes() {
        let h = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
        assert_eq!(bearer(&h, MAX).unwrap(), None);
    }

    #[test]
    fn bearer_without_token_is_malformed() {
        for v in ["Bearer", "Bearer   ", "bearer\t"] {
            let h = headers(&[("authorization", v)]);
            assert_eq!(bearer(&h, MAX), Err(ExtractError::Malformed), "{v:?}");
        }
    }

    #[test]
    fn two_authorization_headers_are_refused() {
        let h = headers(&[
            ("authorization", "Bearer a.b.c"),
            ("authorization", "Bearer a.b.c"),
        ]);
        assert_eq!(bearer(&h, MAX), Err(ExtractError::DuplicateHeader));
    }

    #[test]
    fn non_ascii_authorization_is_malformed() {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        );
        assert_eq!(bearer(&h, MAX), Err(ExtractError::Malformed));
    }

    #[test]
    fn bearer_over_cap_is_refused() {
        let h = headers(&[("authorization", "Bearer 0123456789")]);
        assert_eq!(bearer(&h, 9), Err(ExtractError::TooLarge));
        assert!(bearer(&h, 10).unwrap().is_some());
    }

    #[test]
    fn a_query_value_that_is_not_utf8_is_malformed_not_replaced() {
        for q in ["/p?token=a%FFb", "/p?token=%cc", "/p?token=a%C3"] {
            let uri: Uri = q.parse().unwrap();
            assert_eq!(
                query(&uri, "token", MAX),
                Err(ExtractError::Malformed),
                "{q}"
            );
        }
        let uri: Uri = "/p?token=%C3%A9%zz%".parse().unwrap();
        assert_eq!(query(&uri, "token", MAX).unwrap().as_deref(), Some("é%zz%"));
    }

    #[test]
    fn query_is_percent_decoded() {
        let uri: Uri = "/p?a=1&token=ab%2Ecd.e+f&b".parse().unwrap();
        assert_eq!(
            query(&uri, "token", MAX).unwrap().as_deref(),
            Some("ab.cd.e f")
        );
        let uri: Uri = "/p?tok%65n=x.y.z".parse().unwrap();
        assert_eq!(query(&uri, "token", MAX).unwrap().as_deref(), Some("x.y.z"));
    }

    #[test]
    fn query_absent_or_other_names() {
        let uri: Uri = "/p?tokens=1&xtoken=2".parse().unwrap();
        assert_eq!(query(&uri, "token", MAX).unwrap(), None);
        let uri: Uri = "/p".parse().unwrap();
        assert_eq!(query(&uri, "token", MAX).unwrap(), None);
    }

    #[test]
    fn query_repeated_parameter() {
        let uri: Uri = "/p?token=a.b.c&token=a.b.c".parse().unwrap();
        assert_eq!(query(&uri, "token", MAX).unwrap().as_deref(), Some("a.b.c"));
        let uri: Uri = "/p?token=a.b.c&token=x.y.z".parse().unwrap();
        assert_eq!(query(&uri, "token", MAX), Err(ExtractError::Conflicting));
        let uri: Uri = "/p?token=".parse().unwrap();
        assert_eq!(query(&uri, "token", MAX), Err(ExtractError::Malformed));
    }

    #[test]
    fn query_cap_applies_before_decoding() {
        let uri: Uri = "/p?token=%41%41%41".parse().unwrap();
        assert_eq!(query(&uri, "token", 8), Err(ExtractError::TooLarge));
    }

    #[test]
    fn header_with_prefix() {
        let name = HeaderName::from_static("x-auth-token");
        let h = headers(&[("x-auth-token", "token  a.b.c")]);
        assert_eq!(
            header(&h, &name, Some("Token "), MAX).unwrap().as_deref(),
            Some("a.b.c")
        );
        assert_eq!(
            header(&h, &name, Some("Bearer "), MAX),
            Err(ExtractError::Malformed)
        );
        assert_eq!(
            header(&h, &name, None, MAX).unwrap().as_deref(),
            Some("token  a.b.c")
        );
        let h = headers(&[("x-auth-token", "tok")]);
        assert_eq!(
            header(&h, &name, Some("Token "), MAX),
            Err(ExtractError::Malformed)
        );
    }

    #[test]
    fn cookie_found_among_others_and_quoted() {
        let h = headers(&[("cookie", "a=1; jwt=\"x.y.z\"; b=2"), ("cookie", "c=3")]);
        assert_eq!(cookie(&h, "jwt", MAX).unwrap().as_deref(), Some("x.y.z"));
        assert_eq!(cookie(&h, "zzz", MAX).unwrap(), None);
    }

    #[test]
    fn cookie_conflict() {
        let h = headers(&[("cookie", "jwt=a.b.c"), ("cookie", "jwt=d.e.f")]);
        assert_eq!(cookie(&h, "jwt", MAX), Err(ExtractError::Conflicting));
    }

    #[test]
    fn websocket_protocol_decodes_and_leaves_others() {
        let enc = URL_SAFE_NO_PAD.encode("a.b.c");
        let value = format!("echo, {DEFAULT_WEBSOCKET_PROTOCOL_PREFIX}{enc}");
        let mut h = HeaderMap::new();
        h.insert(SEC_WEBSOCKET_PROTOCOL, value.parse().unwrap());
        assert_eq!(
            websocket_protocol(&h, DEFAULT_WEBSOCKET_PROTOCOL_PREFIX, MAX)
                .unwrap()
                .as_deref(),
            Some("a.b.c")
        );
    }

    #[test]
    fn websocket_protocol_rejections() {
        let p = DEFAULT_WEBSOCKET_PROTOCOL_PREFIX;
        let two = format!("{p}YS5iLmM, {p}YS5iLmM");
        let padded = format!("{p}YS5iLmM=");
        let not_utf8 = format!("{p}{}", URL_SAFE_NO_PAD.encode([0xff, 0xfe]));
        let alone = format!("{p}YS5iLmM");
        let cases = [
            (alone, ExtractError::NoApplicationProtocol),
            (two, ExtractError::MultipleSubprotocols),
            (padded, ExtractError::BadSubprotocolEncoding),
            (not_utf8, ExtractError::BadSubprotocolEncoding),
            (format!("{p}!!!"), ExtractError::BadSubprotocolEncoding),
        ];
        for (value, want) in cases {
            let mut h = HeaderMap::new();
            let value = if want == ExtractError::NoApplicationProtocol {
                value
            } else {
                format!("echo, {value}")
            };
            h.insert(SEC_WEBSOCKET_PROTOCOL, value.parse().unwrap());
            assert_eq!(websocket_protocol(&h, p, MAX), Err(want), "{value}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_bytes(b"echo, \xff").unwrap(),
        );
        assert_eq!(
            websocket_protocol(&h, p, MAX),
            Err(ExtractError::BadSubprotocolHeader)
        );
    }

    #[test]
    fn the_subprotocol_source_is_ignored_on_other_requests() {
        let p = DEFAULT_WEBSOCKET_PROTOCOL_PREFIX;
        let mut h = HeaderMap::new();
        h.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_bytes(&[format!("echo, {p}YS5iLmM, ").as_bytes(), b"\xff"].concat())
                .unwrap(),
        );
        let source = TokenSource::WebSocketProtocol { prefix: p.into() };
        let uri = Uri::from_static("/");
        assert_eq!(source.find(&h, &uri, MAX, false), Ok(None));
        assert_eq!(
            source.find(&h, &uri, MAX, true),
            Err(ExtractError::BadSubprotocolHeader)
        );
    }

    #[test]
    fn websocket_protocol_cap_checked_on_encoded_length() {
        let p = DEFAULT_WEBSOCKET_PROTOCOL_PREFIX;
        let mut h = HeaderMap::new();
        let value = format!("chat, {p}{}", URL_SAFE_NO_PAD.encode([b'a'; 100]));
        h.insert(SEC_WEBSOCKET_PROTOCOL, value.parse().unwrap());
        assert_eq!(websocket_protocol(&h, p, 99), Err(ExtractError::TooLarge));
        assert!(websocket_protocol(&h, p, 100).unwrap().is_some());
    }
}
