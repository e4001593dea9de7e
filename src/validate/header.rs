//! The JOSE header: the fields this crate reads, with the last header seen on each thread
//! remembered.
//!
//! Tokens from one issuer share one header segment byte for byte (`{"alg":"HS256","typ":"JWT"}`
//! or the same with a `kid`), so each thread keeps the last segment it parsed successfully and
//! its result. The result is a function of the segment's bytes alone: a segment that differs in
//! any byte is parsed anew. Failures are never remembered.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::registered::{STACK_HEADER, decode_segment};
use crate::error::AuthError;

/// What the validator needs from the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub alg: Algorithm,
    pub kid: Option<Arc<str>>,
    /// `typ`, as sent.
    pub typ: Option<Arc<str>>,
}

/// The JOSE header fields this crate reads; unknown ones are ignored, duplicates refused.
#[derive(Deserialize)]
struct JwsHeader<'a> {
    alg: Algorithm,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    /// Present at all, even as `null` (RFC 7515 §4.1.11: when present it must be a non-empty
    /// list of extensions the recipient understands, and none is understood here).
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    /// Present at all (RFC 7797 unencoded payloads). It must be listed in `crit`, which is
    /// refused anyway; refused on its own too, so that a non-conforming `b64: false` is never
    /// read as an ordinary token, whatever other implementations do with it.
    #[serde(default, deserialize_with = "present")]
    b64: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

thread_local! {
    static LAST: RefCell<Option<(Box<str>, Header)>> = const { RefCell::new(None) };
}

/// Parses the header segment (base64url JSON) of a compact JWS.
///
/// # Errors
/// `INVALID_TOKEN`: not base64url JSON with a known `alg`, or a `crit` or `b64` member.
pub(crate) fn parse(segment: &str) -> Result<Header, AuthError> {
    let remembered = LAST
        .try_with(|last| {
            last.try_borrow()
                .ok()?
                .as_ref()
                .filter(|(seen, _)| **seen == *segment)
                .map(|(_, header)| header.clone())
        })
        .ok()
        .flatten();
    if let Some(header) = remembered {
        return Ok(header);
    }
    let header = parse_segment(segment)?;
    if segment.len() <= STACK_HEADER {
        let _ = LAST.try_with(|last| {
            if let Ok(mut last) = last.try_borrow_mut() {
                *last = Some((segment.into(), header.clone()));
            }
        });
    }
    Ok(header)
}

fn parse_segment(segment: &str) -> Result<Header, AuthError> {
    let malformed = || AuthError::invalid_token("the token is malformed");
    let (mut stack, mut heap) = ([0u8; STACK_HEADER], Vec::new());
    let json = decode_segment(segment, &mut stack, &mut heap).map_err(|_| malformed())?;
    std::str::from_utf8(json).map_err(|_| malformed())?;
    let header: JwsHeader<'_> = serde_json::from_slice(json).map_err(|_| malformed())?;
    if header.crit {
        // RFC 7515 §4.1.11: no extension is understood here, so none may be critical.
        return Err(AuthError::invalid_token(
            "the token has critical header extensions",
        ));
    }
    if header.b64 {
        return Err(AuthError::invalid_token(
            "the token uses an unencoded payload",
        ));
    }
    Ok(Header {
        alg: header.alg,
        kid: header.kid.map(|k| Arc::from(&*k)),
        typ: header.typ.map(|t| Arc::from(&*t)),
    })
}

/// Whether the header's `typ` is one of `accepted`: compared without case and without an
/// `application/` prefix (RFC 7515 §4.1.9). A missing `typ` is never accepted.
pub(super) fn type_accepted(typ: Option<&str>, accepted: &[Box<str>]) -> bool {
    fn bare(t: &str) -> &str {
        match t.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &t[12..],
            _ => t,
        }
    }
    typ.is_some_and(|typ| {
        accepted
            .iter()
            .any(|a| bare(a).eq_ignore_ascii_case(bare(typ)))
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    #[test]
    fn token_types_compare_without_case_or_application_prefix() {
        let accepted: Vec<Box<str>> = vec!["at+jwt".into()];
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
        ] {
            assert!(type_accepted(Some(typ), &accepted), "{typ}");
        }
        for typ in [
            "JWT",
            "jwt",
            "at+jwt ",
            "application/",
            "",
            "x-application/at+jwt",
        ] {
            assert!(!type_accepted(Some(typ), &accepted), "{typ:?}");
        }
        assert!(!type_accepted(None, &accepted));
    }

    fn seg(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn remembers_only_what_parsed_and_only_for_the_same_bytes() {
        let a = seg(r#"{"alg":"HS256","typ":"JWT"}"#);
        let b = seg(r#"{"alg":"HS384","kid":"k1"}"#);
        let crit = seg(r#"{"alg":"HS256","crit":["exp"]}"#);
        for _ in 0..2 {
            assert_eq!(parse(&a).unwrap().alg, Algorithm::HS256);
            let h = parse(&b).unwrap();
            assert_eq!((h.alg, h.kid.as_deref()), (Algorithm::HS384, Some("k1")));
            assert!(parse(&crit).is_err());
            for crit in [r#"null"#, r#"[]"#, r#""b64""#, r#"{}"#] {
                let h = seg(&format!(r#"{{"alg":"HS256","crit":{crit}}}"#));
                assert!(parse(&h).is_err(), "crit {crit}");
            }
            // Invalid UTF-8 inside an ignored member.
            let bad = URL_SAFE_NO_PAD.encode(b"{\"alg\":\"HS256\",\"x\":\"\xff\"}");
            assert!(parse(&bad).is_err());
            assert!(parse(&seg(r#"{"alg":"none"}"#)).is_err());
            assert!(parse(&seg(r#"{"alg":"HS256","alg":"HS512"}"#)).is_err());
            assert!(parse("!!").is_err());
        }
        // A failure does not replace the remembered header; a near miss is parsed anew.
        LAST.with(|l| assert_eq!(l.borrow().as_ref().unwrap().0.as_ref(), b.as_str()));
        let mut near = b.clone();
        near.pop();
        assert!(parse(&near).is_err());
        assert_eq!(parse(&b).unwrap().kid.as_deref(), Some("k1"));
    }
}
