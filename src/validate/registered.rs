//! One pass over the verified payload for the registered claims (`sub`, `jti`, `exp`, `nbf`,
//! `iat`, `iss`, `aud`) and for the presence of required claims.
//!
//! The signature is verified by `jsonwebtoken`'s crypto provider before the payload is read;
//! the claims are checked here so that time reads the injectable
//! [`Clock`](crate::clock::Clock) and the payload is decoded once, not three times.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Whether a claim compared against a configured set matched.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Match {
    /// The claim is absent.
    #[default]
    Absent,
    /// Present, and (when a set is configured) one of its values is in the set.
    Matched,
    /// Present, and none of its values is in the configured set.
    Unmatched,
}

/// The registered claims, as read from the payload.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct StdClaims {
    pub sub: Option<Arc<str>>,
    pub jti: Option<String>,
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
    pub iss: Match,
    pub aud: Match,
    /// Bit `i` is set when `required[i]` is present.
    pub present: u64,
}

/// What the parse compares claims against.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ClaimSpec<'r> {
    pub required: &'r [Box<str>],
    pub issuers: Option<&'r [Box<str>]>,
    pub audiences: Option<&'r [Box<str>]>,
}

/// Why the payload could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PayloadError;

/// Payloads up to this size are decoded into a stack buffer.
pub(crate) const STACK_PAYLOAD: usize = 1024;

/// Headers up to this size are decoded into a stack buffer.
pub(crate) const STACK_HEADER: usize = 256;

/// Decodes one unpadded base64url segment into `stack` when it fits, else into `heap`.
///
/// The buffers belong to the caller, so that nothing is moved or copied after decoding (a
/// decoded buffer returned by value cost a kilobyte of copying per request).
pub(crate) fn decode_segment<'b>(
    segment: &str,
    stack: &'b mut [u8],
    heap: &'b mut Vec<u8>,
) -> Result<&'b [u8], PayloadError> {
    if base64::decoded_len_estimate(segment.len()) <= stack.len() {
        let n = URL_SAFE_NO_PAD
            .decode_slice(segment, stack)
            .map_err(|_| PayloadError)?;
        Ok(&stack[..n])
    } else {
        *heap = URL_SAFE_NO_PAD.decode(segment).map_err(|_| PayloadError)?;
        Ok(heap)
    }
}

/// Reads the registered claims from a compact JWS (used by tests; the validator decodes the
/// payload once and calls [`parse_std_claims_json`]).
#[cfg(test)]
pub(crate) fn parse_std_claims(
    token: &str,
    required: &[Box<str>],
) -> Result<StdClaims, PayloadError> {
    let mut parts = token.splitn(3, '.');
    let (_, Some(payload), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(PayloadError);
    };
    let (mut stack, mut heap) = ([0u8; STACK_PAYLOAD], Vec::new());
    let decoded = decode_segment(payload, &mut stack, &mut heap)?;
    parse_std_claims_json(
        decoded,
        ClaimSpec {
            required,
            ..ClaimSpec::default()
        },
    )
}

/// Reads the registered claims from the decoded payload.
pub(crate) fn parse_std_claims_json(
    json: &[u8],
    spec: ClaimSpec<'_>,
) -> Result<StdClaims, PayloadError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let claims = Seed { spec }
        .deserialize(&mut de)
        .map_err(|_| PayloadError)?;
    de.end().map_err(|_| PayloadError)?;
    Ok(claims)
}

struct Seed<'r> {
    spec: ClaimSpec<'r>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = StdClaims;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<StdClaims, D::Error> {
        d.deserialize_map(self)
    }
}

fn set_once<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

fn match_once<E: de::Error>(slot: &mut Match, value: Match, name: &'static str) -> Result<(), E> {
    if *slot != Match::Absent {
        return Err(E::duplicate_field(name));
    }
    *slot = value;
    Ok(())
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = StdClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StdClaims, A::Error> {
        let mut reader = StdReader::new(self.spec);
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            match reader.key(&key) {
                Some(claim) => map.next_value_seed(reader.value(claim))?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(reader.finish())
    }
}

/// A registered claim this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registered {
    Sub,
    Jti,
    Exp,
    Nbf,
    Iat,
    Iss,
    Aud,
}

/// Collects the registered claims, key by key, from either pass.
pub(crate) struct StdReader<'r> {
    spec: ClaimSpec<'r>,
    out: StdClaims,
}

impl<'r> StdReader<'r> {
    pub(crate) fn new(spec: ClaimSpec<'r>) -> Self {
        Self {
            spec,
            out: StdClaims::default(),
        }
    }

    /// Notes `key` for the required-claims mask; the registered claim it names, if any.
    pub(crate) fn key(&mut self, key: &str) -> Option<Registered> {
        if let Some(i) = self.spec.required.iter().position(|r| **r == *key)
            && i < 64
        {
            self.out.present |= 1 << i;
        }
        Some(match key {
            "sub" => Registered::Sub,
            "jti" => Registered::Jti,
            "exp" => Registered::Exp,
            "nbf" => Registered::Nbf,
            "iat" => Registered::Iat,
            "iss" => Registered::Iss,
            "aud" => Registered::Aud,
            _ => return None,
        })
    }

    /// Reads the value of `claim` (duplicates are refused).
    pub(crate) fn value(&mut self, claim: Registered) -> ValueSeed<'_, 'r> {
        ValueSeed {
            reader: self,
            claim,
        }
    }

    /// Takes a string value read by someone else (`sub`, `jti` only).
    pub(crate) fn take_str<E: de::Error>(&mut self, claim: Registered, v: &str) -> Result<(), E> {
        match claim {
            Registered::Sub => set_once(&mut self.out.sub, Arc::from(v), "sub"),
            Registered::Jti => set_once(&mut self.out.jti, v.to_owned(), "jti"),
            _ => Err(E::custom("not a string claim")),
        }
    }

    /// Takes a number read by someone else (`exp`, `nbf`, `iat` only).
    pub(crate) fn take_number<E: de::Error>(
        &mut self,
        claim: Registered,
        n: serde_json::Number,
    ) -> Result<(), E> {
        let v = n.deserialize_any(NumericDateVisitor).map_err(E::custom)?.0;
        let (slot, name) = match claim {
            Registered::Exp => (&mut self.out.exp, "exp"),
            Registered::Nbf => (&mut self.out.nbf, "nbf"),
            Registered::Iat => (&mut self.out.iat, "iat"),
            _ => return Err(E::custom("not a date claim")),
        };
        set_once(slot, v, name)
    }

    pub(crate) fn finish(self) -> StdClaims {
        self.out
    }
}

/// Reads one registered claim's value into a [`StdReader`].
pub(crate) struct ValueSeed<'a, 'r> {
    reader: &'a mut StdReader<'r>,
    claim: Registered,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let StdReader { spec, out } = self.reader;
        match self.claim {
            Registered::Sub => {
                set_once(&mut out.sub, Arc::from(&*CowStr::deserialize(d)?.0), "sub")
            }
            Registered::Jti => set_once(&mut out.jti, String::deserialize(d)?, "jti"),
            Registered::Exp => set_once(&mut out.exp, NumericDate::deserialize(d)?.0, "exp"),
            Registered::Nbf => set_once(&mut out.nbf, NumericDate::deserialize(d)?.0, "nbf"),
            Registered::Iat => set_once(&mut out.iat, NumericDate::deserialize(d)?.0, "iat"),
            Registered::Iss => {
                let m = OneOrMany { set: spec.issuers }.deserialize(d)?;
                match_once(&mut out.iss, m, "iss")
            }
            Registered::Aud => {
                let m = OneOrMany {
                    set: spec.audiences,
                }
                .deserialize(d)?;
                match_once(&mut out.aud, m, "aud")
            }
        }
    }
}

/// A string or an array of strings (`iss`, `aud`), matched against a configured set.
struct OneOrMany<'r> {
    set: Option<&'r [Box<str>]>,
}

impl OneOrMany<'_> {
    fn matches(&self, value: &str) -> bool {
        self.set.is_none_or(|set| set.iter().any(|s| &**s == value))
    }
}

impl<'de> DeserializeSeed<'de> for OneOrMany<'_> {
    type Value = Match;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Match, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for OneOrMany<'_> {
    type Value = Match;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of strings")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Match, E> {
        Ok(if self.matches(v) {
            Match::Matched
        } else {
            Match::Unmatched
        })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Match, A::Error> {
        let mut any = false;
        while let Some(CowStr(v)) = seq.next_element::<CowStr<'de>>()? {
            any |= self.matches(&v);
        }
        Ok(if any {
            Match::Matched
        } else {
            Match::Unmatched
        })
    }
}

/// A map key, borrowed from the input when it has no escapes.
pub(crate) struct CowStr<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// RFC 7519 NumericDate: seconds since the epoch, integer or fractional (floored), from 0 to
/// `i64::MAX`. Larger values (past the year 292 billion) are refused rather than read: other
/// implementations store NumericDate in an `i64`, and one that wraps or saturates differently
/// from this crate must not agree on a token this crate accepts.
struct NumericDate(u64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumericDateVisitor)
    }
}

struct NumericDateVisitor;

impl Visitor<'_> for NumericDateVisitor {
    type Value = NumericDate;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative number of seconds")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
        if i64::try_from(v).is_ok() {
            Ok(NumericDate(v))
        } else {
            Err(E::custom("NumericDate out of range"))
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
        u64::try_from(v)
            .map(NumericDate)
            .map_err(|_| E::custom("negative NumericDate"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
        // 2^63: the first value past `i64::MAX` (which f64 cannot hold exactly).
        if (0.0..9_223_372_036_854_775_808.0).contains(&v) {
            Ok(NumericDate(v as u64))
        } else {
            Err(E::custom("NumericDate out of range"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &str) -> String {
        format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn reads_registered_claims() {
        let t = token(
            r#"{"sub":"alice","exp":1700000000,"nbf":1.9,"iat":5,"jti":"j1","x":[1,{"y":2}]}"#,
        );
        let c = parse_std_claims(&t, &[]).unwrap();
        assert_eq!(c.sub.as_deref(), Some("alice"));
        assert_eq!(c.jti.as_deref(), Some("j1"));
        assert_eq!(
            (c.exp, c.nbf, c.iat),
            (Some(1_700_000_000), Some(1), Some(5))
        );
    }

    #[test]
    fn tracks_required_names_including_escaped_keys() {
        let required: Vec<Box<str>> = vec!["type".into(), "userId".into(), "sub".into()];
        let t = token(r#"{"typ\u0065":"access","sub":"a"}"#);
        let c = parse_std_claims(&t, &required).unwrap();
        assert_eq!(c.present, 0b101);
    }

    #[test]
    fn rejects_bad_shapes() {
        for p in [
            r#"{"exp":"soon"}"#,
            r#"{"exp":-1}"#,
            r#"{"exp":1,"exp":2}"#,
            r#"{"sub":42}"#,
            r#"[1,2]"#,
            r#"{"a":1} trailing"#,
            "not json",
        ] {
            assert_eq!(parse_std_claims(&token(p), &[]), Err(PayloadError), "{p}");
        }
        assert_eq!(parse_std_claims("onlyone", &[]), Err(PayloadError));
        assert_eq!(parse_std_claims("a.!!.c", &[]), Err(PayloadError));
    }

    fn spec_parse(payload: &str, issuers: &[Box<str>], audiences: &[Box<str>]) -> StdClaims {
        parse_std_claims_json(
            payload.as_bytes(),
            ClaimSpec {
                required: &[],
                issuers: Some(issuers),
                audiences: Some(audiences),
            },
        )
        .unwrap()
    }

    #[test]
    fn issuer_and_audience_are_matched_as_string_or_array() {
        let iss: Vec<Box<str>> = vec!["https://a".into()];
        let aud: Vec<Box<str>> = vec!["api".into(), "web".into()];
        let c = spec_parse(r#"{"iss":"https://a","aud":["x","web"]}"#, &iss, &aud);
        assert_eq!((c.iss, c.aud), (Match::Matched, Match::Matched));
        let c = spec_parse(r#"{"iss":["https://b"],"aud":"x"}"#, &iss, &aud);
        assert_eq!((c.iss, c.aud), (Match::Unmatched, Match::Unmatched));
        let c = spec_parse(r#"{"aud":[]}"#, &iss, &aud);
        assert_eq!((c.iss, c.aud), (Match::Absent, Match::Unmatched));
        for bad in [r#"{"iss":7}"#, r#"{"aud":[1]}"#, r#"{"aud":"a","aud":"b"}"#] {
            assert!(
                parse_std_claims_json(bad.as_bytes(), ClaimSpec::default()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn large_payload_uses_heap_path() {
        let big = format!(r#"{{"sub":"s","pad":"{}"}}"#, "x".repeat(4000));
        let c = parse_std_claims(&token(&big), &[]).unwrap();
        assert_eq!(c.sub.as_deref(), Some("s"));
    }
}
