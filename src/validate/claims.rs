//! One pass over the verified payload for the registered claims this crate checks itself
//! (`sub`, `jti`, `exp`, `nbf`, `iat`) and for the presence of required claims.
//!
//! `jsonwebtoken` verifies the signature, the algorithm, `iss`, `aud` and deserializes the
//! application's claims; time-based checks are done here so that they read the injectable
//! [`Clock`](crate::clock::Clock).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// The registered claims, as read from the payload.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct StdClaims {
    pub sub: Option<Arc<str>>,
    pub jti: Option<String>,
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
    /// Bit `i` is set when `required[i]` is present.
    pub present: u64,
}

/// Why the payload could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PayloadError;

/// Payloads up to this size are decoded on the stack.
const STACK_PAYLOAD: usize = 1536;

/// Reads the registered claims from a compact JWS, whose signature has already been verified.
pub(crate) fn parse_std_claims(
    token: &str,
    required: &[Box<str>],
) -> Result<StdClaims, PayloadError> {
    let mut parts = token.splitn(3, '.');
    let (_, Some(payload), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(PayloadError);
    };
    let seed = Seed { required };
    let decoded_len = base64::decoded_len_estimate(payload.len());
    if decoded_len <= STACK_PAYLOAD {
        let mut buf = [0u8; STACK_PAYLOAD];
        let n = URL_SAFE_NO_PAD
            .decode_slice(payload, &mut buf)
            .map_err(|_| PayloadError)?;
        from_json(&buf[..n], seed)
    } else {
        let buf = URL_SAFE_NO_PAD.decode(payload).map_err(|_| PayloadError)?;
        from_json(&buf, seed)
    }
}

fn from_json(json: &[u8], seed: Seed<'_>) -> Result<StdClaims, PayloadError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let claims = seed.deserialize(&mut de).map_err(|_| PayloadError)?;
    de.end().map_err(|_| PayloadError)?;
    Ok(claims)
}

struct Seed<'r> {
    required: &'r [Box<str>],
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

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = StdClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StdClaims, A::Error> {
        let mut out = StdClaims::default();
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            if let Some(i) = self.required.iter().position(|r| **r == *key)
                && i < 64
            {
                out.present |= 1 << i;
            }
            match &*key {
                "sub" => set_once(
                    &mut out.sub,
                    Arc::from(&*map.next_value::<CowStr<'de>>()?.0),
                    "sub",
                )?,
                "jti" => set_once(&mut out.jti, map.next_value::<String>()?, "jti")?,
                "exp" => set_once(&mut out.exp, map.next_value::<NumericDate>()?.0, "exp")?,
                "nbf" => set_once(&mut out.nbf, map.next_value::<NumericDate>()?.0, "nbf")?,
                "iat" => set_once(&mut out.iat, map.next_value::<NumericDate>()?.0, "iat")?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// A map key, borrowed from the input when it has no escapes.
struct CowStr<'de>(Cow<'de, str>);

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

/// RFC 7519 NumericDate: seconds since the epoch, integer or fractional (floored), not negative.
struct NumericDate(u64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                u64::try_from(v)
                    .map(NumericDate)
                    .map_err(|_| E::custom("negative NumericDate"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
                    Ok(NumericDate(v as u64))
                } else {
                    Err(E::custom("NumericDate out of range"))
                }
            }
        }
        d.deserialize_any(V)
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

    #[test]
    fn large_payload_uses_heap_path() {
        let big = format!(r#"{{"sub":"s","pad":"{}"}}"#, "x".repeat(4000));
        let c = parse_std_claims(&token(&big), &[]).unwrap();
        assert_eq!(c.sub.as_deref(), Some("s"));
    }
}
