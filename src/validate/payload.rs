//! One pass over the verified payload for the application's claims *and* the registered ones.
//!
//! The application's claims type `C` is deserialized from the payload through a thin wrapper
//! around `serde_json`'s deserializer. When `C` reads the payload as a map (a struct, a map, or
//! `serde_json::Value`), the wrapper sees each top-level key on the way: the registered claims
//! (`sub`, `jti`, `exp`, `nbf`, `iat`, `iss`, `aud`) are captured as raw JSON text and read by
//! both this crate and `C` from that same text, and every other value goes to `C` untouched.
//! Required-claim names are noted as keys go by. If `C` reads the payload some other way (for
//! instance `IgnoredAny`), or stops before the end of the map, the registered claims are read in
//! a second pass, as before: the result is the same either way, only the cost differs.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, Error as _, MapAccess,
    SeqAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use serde_json::value::RawValue;

use super::registered::{
    ClaimSpec, CowStr, PayloadError, Registered, StdClaims, StdReader, parse_std_claims_json,
};

/// Deserializes `C` from the decoded payload and reads the registered claims, in one pass when
/// `C` allows it.
pub(crate) fn read_claims<C: DeserializeOwned>(
    json: &[u8],
    spec: ClaimSpec<'_>,
) -> Result<(StdClaims, C), PayloadError> {
    read(json, spec).map(|(std, claims, _)| (std, claims))
}

/// [`read_claims`], and whether it took one pass.
fn read<C: DeserializeOwned>(
    json: &[u8],
    spec: ClaimSpec<'_>,
) -> Result<(StdClaims, C, bool), PayloadError> {
    let mut state = State {
        reader: StdReader::new(spec),
        complete: false,
        failed: false,
    };
    let mut de = serde_json::Deserializer::from_slice(json);
    let claims = C::deserialize(Tap {
        de: &mut de,
        state: &mut state,
    })
    .map_err(|_| PayloadError)?;
    de.end().map_err(|_| PayloadError)?;
    if state.failed {
        // An error went through the tap and `C` carried on regardless (a lenient hand-written
        // visitor): the payload is refused as the two-pass reading would have refused it.
        return Err(PayloadError);
    }
    if state.complete {
        Ok((state.reader.finish(), claims, true))
    } else {
        Ok((parse_std_claims_json(json, spec)?, claims, false))
    }
}

struct State<'r> {
    reader: StdReader<'r>,
    /// The top-level map was read to its end through the tap.
    complete: bool,
    /// An error passed through the tap, whatever `C` did with it.
    failed: bool,
}

type JsonDe<'de> = serde_json::Deserializer<serde_json::de::SliceRead<'de>>;

/// `serde_json`'s deserializer, tapping the top-level map.
struct Tap<'a, 'r, 'de> {
    de: &'a mut JsonDe<'de>,
    state: &'a mut State<'r>,
}

macro_rules! forward_plain {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.de.$method(visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for Tap<'_, '_, 'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.de.deserialize_any(TapVisitor {
            inner: visitor,
            state: self.state,
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.de.deserialize_map(TapVisitor {
            inner: visitor,
            state: self.state,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.deserialize_struct(
            name,
            fields,
            TapVisitor {
                inner: visitor,
                state: self.state,
            },
        )
    }

    forward_plain! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_option
        deserialize_unit deserialize_seq deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.deserialize_enum(name, variants, visitor)
    }
}

/// `C`'s visitor; a map is read through [`TapMap`], anything else goes straight to `C`.
struct TapVisitor<'a, 'r, V> {
    inner: V,
    state: &'a mut State<'r>,
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for TapVisitor<'_, '_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(TapMap {
            map,
            state: self.state,
            pending: None,
        })
    }

    forward_visit! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64)
        visit_i128(i128) visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64)
        visit_u128(u128) visit_f32(f32) visit_f64(f64) visit_char(char) visit_str(&str)
        visit_borrowed_str(&'de str) visit_string(String) visit_bytes(&[u8])
        visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_seq(seq)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(data)
    }
}

/// The top-level map as `C` reads it: keys are noted, registered claims read twice from
/// their raw text, everything else passed through.
struct TapMap<'a, 'r, A> {
    map: A,
    state: &'a mut State<'r>,
    pending: Option<Registered>,
}

impl<'de, A: MapAccess<'de>> TapMap<'_, '_, A> {
    fn key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        let Some(CowStr(key)) = self.map.next_key::<CowStr<'de>>()? else {
            self.state.complete = true;
            return Ok(None);
        };
        self.pending = self.state.reader.key(&key);
        seed.deserialize(Captured::Key(key).into_deserializer())
            .map(Some)
    }

    fn value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let Some(claim) = self.pending.take() else {
            return self.map.next_value_seed(seed);
        };
        let reader = &mut self.state.reader;
        match claim {
            Registered::Sub | Registered::Jti => {
                // Only a string is accepted for these, so the string is all `C` needs to see.
                let CowStr(v) = self.map.next_value()?;
                reader.take_str::<A::Error>(claim, &v)?;
                seed.deserialize(Captured::Str(v).into_deserializer())
            }
            Registered::Exp | Registered::Nbf | Registered::Iat => {
                let n = self.map.next_value_seed(NumberSeed)?;
                reader.take_number::<A::Error>(claim, n.clone())?;
                seed.deserialize(Captured::Number(n).into_deserializer())
            }
            Registered::Iss | Registered::Aud => {
                // A string or an array: both readers read the same raw JSON text.
                let raw: &'de RawValue = self.map.next_value()?;
                let mut de = serde_json::Deserializer::from_str(raw.get());
                reader
                    .value(claim)
                    .deserialize(&mut de)
                    .map_err(A::Error::custom)?;
                let mut de = serde_json::Deserializer::from_str(raw.get());
                seed.deserialize(&mut de).map_err(A::Error::custom)
            }
        }
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for TapMap<'_, '_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let result = self.key_seed(seed);
        self.state.failed |= result.is_err();
        result
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let result = self.value_seed(seed);
        self.state.failed |= result.is_err();
        result
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A JSON number, as `serde_json` reads it (no other type).
struct NumberSeed;

impl<'de> DeserializeSeed<'de> for NumberSeed {
    type Value = serde_json::Number;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<serde_json::Number, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = serde_json::Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<serde_json::Number, E> {
                Ok(v.into())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<serde_json::Number, E> {
                Ok(v.into())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<serde_json::Number, E> {
                serde_json::Number::from_f64(v).ok_or_else(|| E::custom("not a finite number"))
            }
        }
        d.deserialize_any(V)
    }
}

/// What `C` is handed instead of `serde_json`'s own deserializer: a map key, or a registered
/// claim's value read once; either is handed over as `serde_json` would have.
enum Captured<'de> {
    /// A map key: a string, or a number or a boolean written as a string when `C` asks for one.
    Key(Cow<'de, str>),
    /// A string value (`sub`, `jti`).
    Str(Cow<'de, str>),
    /// A number value (`exp`, `nbf`, `iat`).
    Number(serde_json::Number),
}

impl<'de> Captured<'de> {
    fn into_deserializer<E>(self) -> CapturedDeserializer<'de, E> {
        CapturedDeserializer {
            value: self,
            error: std::marker::PhantomData,
        }
    }
}

struct CapturedDeserializer<'de, E> {
    value: Captured<'de>,
    error: std::marker::PhantomData<E>,
}

impl<'de, E: de::Error> CapturedDeserializer<'de, E> {
    /// A key read as a number when it is one, as `serde_json` reads `HashMap<u32, _>` keys: a
    /// JSON number filling the whole key (no sign but `-`, no leading zero, no spaces).
    fn number<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        if let Captured::Key(key) = &self.value
            && key.starts_with(|c: char| c == '-' || c.is_ascii_digit())
            && !key.ends_with(|c: char| c.is_ascii_whitespace())
            && let Ok(n) = serde_json::from_str::<serde_json::Number>(key)
        {
            return n.deserialize_any(visitor).map_err(E::custom);
        }
        self.deserialize_any(visitor)
    }
}

macro_rules! numeric {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
            self.number(visitor)
        }
    )*};
}

impl<'de, E: de::Error> Deserializer<'de> for CapturedDeserializer<'de, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Captured::Key(Cow::Borrowed(s)) | Captured::Str(Cow::Borrowed(s)) => {
                visitor.visit_borrowed_str(s)
            }
            // `serde_json` hands an unescaped string over as `visit_str`.
            Captured::Key(Cow::Owned(s)) | Captured::Str(Cow::Owned(s)) => visitor.visit_str(&s),
            Captured::Number(n) => n.deserialize_any(visitor).map_err(E::custom),
        }
    }

    numeric! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match &self.value {
            Captured::Key(key) if key == "true" => visitor.visit_bool(true),
            Captured::Key(key) if key == "false" => visitor.visit_bool(false),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        match self.value {
            Captured::Key(Cow::Borrowed(s)) | Captured::Str(Cow::Borrowed(s)) => {
                BorrowedStrDeserializer::new(s).deserialize_enum(name, variants, visitor)
            }
            Captured::Key(Cow::Owned(s)) | Captured::Str(Cow::Owned(s)) => {
                StringDeserializer::new(s).deserialize_enum(name, variants, visitor)
            }
            Captured::Number(_) => self.deserialize_any(visitor),
        }
    }

    forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::Deserialize;
    use serde::de::IgnoredAny;

    use super::*;
    use crate::validate::registered::Match;

    fn spec<'r>(required: &'r [Box<str>], iss: &'r [Box<str>]) -> ClaimSpec<'r> {
        ClaimSpec {
            required,
            issuers: Some(iss),
            audiences: None,
        }
    }

    /// Both passes must agree, whatever shape `C` reads the payload in.
    fn agree<C: DeserializeOwned + fmt::Debug + PartialEq>(json: &str) -> Option<C> {
        agree_in::<C>(json, None)
    }

    /// [`agree`], and when the payload is accepted, whether it took one pass.
    fn agree_in<C: DeserializeOwned + fmt::Debug + PartialEq>(
        json: &str,
        one_pass: Option<bool>,
    ) -> Option<C> {
        let required: Vec<Box<str>> = vec!["role".into(), "sub".into(), "7".into()];
        let iss: Vec<Box<str>> = vec!["https://a".into()];
        let one = read::<C>(json.as_bytes(), spec(&required, &iss));
        let separate = parse_std_claims_json(json.as_bytes(), spec(&required, &iss));
        let direct = serde_json::from_str::<C>(json);
        match (one, separate, direct) {
            (Ok((std, c, single)), Ok(std2), Ok(c2)) => {
                assert_eq!(std, std2, "{json}");
                assert_eq!(c, c2, "{json}");
                if let Some(expected) = one_pass {
                    assert_eq!(single, expected, "{json}: one pass");
                }
                Some(c)
            }
            (Err(_), _, _) => {
                let separate = parse_std_claims_json(json.as_bytes(), spec(&required, &iss));
                let direct = serde_json::from_str::<C>(json);
                assert!(separate.is_err() || direct.is_err(), "{json}");
                None
            }
            (Ok(_), s, d) => panic!("{json}: one pass accepted, separately {s:?} / {d:?}"),
        }
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Typed {
        sub: String,
        exp: f64,
        iss: Vec<String>,
        #[serde(default)]
        role: Option<String>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Wrapped(String);

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Iss {
        #[serde(rename = "https://a")]
        A,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Optional {
        sub: Option<Wrapped>,
        jti: Option<String>,
        exp: Option<f64>,
        nbf: Option<f64>,
        iat: Option<i32>,
        iss: Option<Iss>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Flat {
        sub: String,
        #[serde(flatten)]
        rest: BTreeMap<String, serde_json::Value>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Strict {
        sub: String,
    }

    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
    enum Kind {
        #[serde(rename = "sub")]
        Sub,
        #[serde(rename = "exp")]
        Exp,
        #[serde(other)]
        Other,
    }

    #[test]
    fn one_pass_agrees_with_two() {
        let payloads = [
            r#"{"sub":"alice","exp":1700000000.5,"iss":["https://a"],"role":"admin","7":1}"#,
            r#"{"s\u0075b":"bob","exp":1,"iss":["https://b"]}"#,
            r#"{"sub":"alice","exp":1,"iss":"https://a"}"#,
            r#"{"sub":"a","sub":"b","exp":1,"iss":[]}"#,
            r#"{"sub":"a","exp":-1,"iss":[]}"#,
            r#"{"sub":"a","exp":1,"iss":[],"aud":["x"],"jti":"j","nbf":2,"iat":3}"#,
            r#"{"sub":"a","exp":1,"iss":[],"extra":{"sub":"nested","exp":"x"}}"#,
            r#"{"exp":1,"iss":[]}"#,
            r#"[1,2]"#,
            r#"{"sub":7}"#,
            r#"{}"#,
            r#"{"sub":"a"} x"#,
            r#"{"sub":"\u0061lice","jti":"j\n","exp":1.5,"nbf":2.0,"iat":3,"iss":"https://a"}"#,
            r#"{"sub":"a","exp":1,"iat":-3,"iss":"https://a"}"#,
            r#"{"sub":"a","exp":1,"iat":99999999999,"iss":"https://a"}"#,
            r#"{"sub":null,"exp":1}"#,
            r#"{"sub":"a","exp":"1"}"#,
        ];
        for p in payloads {
            agree::<Typed>(p);
            agree::<Flat>(p);
            agree::<Strict>(p);
            agree::<Optional>(p);
            agree::<serde_json::Value>(p);
            agree::<HashMap<String, serde_json::Value>>(p);
            agree::<BTreeMap<Kind, serde_json::Value>>(p);
            agree::<Option<serde_json::Value>>(p);
        }
        let p = payloads[0];
        assert!(agree_in::<Typed>(p, Some(true)).is_some());
        assert!(agree_in::<Flat>(p, Some(true)).is_some());
        assert!(agree_in::<serde_json::Value>(p, Some(true)).is_some());
        assert!(agree_in::<HashMap<String, serde_json::Value>>(p, Some(true)).is_some());
        assert!(agree_in::<BTreeMap<Kind, serde_json::Value>>(p, Some(true)).is_some());
        assert!(agree_in::<Option<serde_json::Value>>(p, Some(false)).is_some());
        assert!(agree_in::<Strict>(r#"{"sub":"a"}"#, Some(true)).is_some());
        assert!(agree::<Typed>(payloads[3]).is_none(), "duplicate sub");
        let escaped = payloads[12];
        let c = agree_in::<Optional>(escaped, Some(true)).unwrap();
        assert_eq!(c.sub, Some(Wrapped("alice".into())));
        assert_eq!(
            (c.jti.as_deref(), c.exp, c.iss),
            (Some("j\n"), Some(1.5), Some(Iss::A))
        );
        assert!(agree::<Optional>(payloads[14]).is_none(), "iat out of i32");
    }

    /// A small deterministic generator of claim-like JSON objects: registered and other keys
    /// (some escaped, some numeric, some repeated), values of every JSON type.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[(self.next() % from.len() as u64) as usize]
        }

        fn value(&mut self, depth: u32) -> String {
            let atoms = [
                r#""alice""#,
                r#""\u0061lice""#,
                r#""a\"b""#,
                r#""https://a""#,
                r#""""#,
                "0",
                "7",
                "-3",
                "1.5",
                "1e3",
                "1700000000",
                "18446744073709551615",
                "-0",
                "true",
                "false",
                "null",
            ];
            match self.next() % 8 {
                0 if depth < 2 => {
                    let n = self.next() % 3;
                    let items: Vec<String> = (0..n).map(|_| self.value(depth + 1)).collect();
                    format!("[{}]", items.join(","))
                }
                1 if depth < 2 => self.object(depth + 1),
                _ => self.pick(&atoms).to_owned(),
            }
        }

        fn object(&mut self, depth: u32) -> String {
            let keys = [
                "sub",
                "exp",
                "iat",
                "nbf",
                "iss",
                "aud",
                "jti",
                "role",
                "7",
                "true",
                "x",
                "s\\u0075b",
                "e\\u0078p",
            ];
            let n = self.next() % 7;
            let members: Vec<String> = (0..n)
                .map(|_| format!(r#""{}":{}"#, self.pick(&keys), self.value(depth)))
                .collect();
            format!("{{{}}}", members.join(","))
        }
    }

    #[test]
    fn one_pass_agrees_with_two_on_generated_payloads() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for _ in 0..3_000 {
            let json = g.object(0);
            agree::<Typed>(&json);
            accepted += usize::from(agree::<Optional>(&json).is_some());
            agree::<Flat>(&json);
            agree::<serde_json::Value>(&json);
            agree::<HashMap<String, serde_json::Value>>(&json);
            agree::<BTreeMap<Kind, serde_json::Value>>(&json);
            agree::<HashMap<u32, serde_json::Value>>(&json);
        }
        // The generator must reach the accepting paths, not only the failures.
        assert!(accepted > 300, "only {accepted} payloads accepted");
    }

    /// A hand-written claims type that ignores errors in values and carries on.
    #[derive(Debug, PartialEq)]
    struct Lenient(usize);

    impl<'de> Deserialize<'de> for Lenient {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Lenient;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a map")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient, A::Error> {
                    let mut n = 0;
                    while map.next_key::<String>()?.is_some() {
                        n += usize::from(map.next_value::<serde_json::Value>().is_ok());
                    }
                    Ok(Lenient(n))
                }
            }
            d.deserialize_map(V)
        }
    }

    #[test]
    fn an_error_swallowed_by_the_claims_type_still_refuses_the_payload() {
        for json in [
            r#"{"sub":"a","exp":-5}"#,
            r#"{"exp":"soon"}"#,
            r#"{"nbf":1e400}"#,
            r#"{"aud":7}"#,
            r#"{"iss":[1]}"#,
            r#"{"exp":9999999999,"exp":1}"#,
            r#"{"sub":"a","sub":"b"}"#,
            r#"{"sub":7}"#,
        ] {
            assert_eq!(
                read::<Lenient>(json.as_bytes(), ClaimSpec::default()).map(|_| ()),
                Err(PayloadError),
                "{json}"
            );
        }
        let (std, c, one) =
            read::<Lenient>(br#"{"sub":"a","exp":5,"x":1}"#, ClaimSpec::default()).unwrap();
        assert_eq!(
            (std.sub.as_deref(), std.exp, c, one),
            (Some("a"), Some(5), Lenient(3), true)
        );
    }

    #[test]
    fn keys_read_as_numbers_and_booleans_like_serde_json() {
        agree::<HashMap<u32, u8>>(r#"{"7":1,"8":2}"#).unwrap();
        agree::<HashMap<i64, u8>>(r#"{"-7":1}"#).unwrap();
        agree::<HashMap<bool, u8>>(r#"{"true":1,"false":0}"#).unwrap();
        assert!(agree::<HashMap<u32, u8>>(r#"{"x":1}"#).is_none());
        for loose in [
            r#"{"+7":1}"#,
            r#"{"07":1}"#,
            r#"{" 7":1}"#,
            r#"{"7 ":1}"#,
            r#"{"0x7":1}"#,
        ] {
            assert!(agree::<HashMap<i64, u8>>(loose).is_none(), "{loose}");
        }
        agree::<HashMap<i64, u8>>(r#"{"-7":1,"12":2}"#).unwrap();
        agree::<HashMap<i64, u8>>(r#"{"-0":1}"#);
        agree::<HashMap<u64, u8>>(r#"{"18446744073709551615":1}"#).unwrap();
        assert!(agree::<HashMap<u64, u8>>(r#"{"1.5":1}"#).is_none());
    }

    #[test]
    fn other_shapes_fall_back_to_a_second_pass() {
        let iss: Vec<Box<str>> = vec!["https://a".into()];
        let json = br#"{"sub":"a","exp":5,"iss":"https://a"}"#;
        let (std, IgnoredAny) = read_claims::<IgnoredAny>(json, spec(&[], &iss)).unwrap();
        assert_eq!(std.sub.as_deref(), Some("a"));
        assert_eq!((std.exp, std.iss), (Some(5), Match::Matched));
        assert!(read_claims::<()>(b"null", ClaimSpec::default()).is_err());
    }
}
