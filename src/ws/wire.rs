//! The JSON messages a session exchanges with its client, in one place.
//!
//! | direction | message |
//! |---|---|
//! | client → server | `{"type":"reauth","token":"<jwt>"}` |
//! | server → client | `{"type":"reauth.ok","expires_at":<unix s or null>}` |
//! | server → client | `{"type":"reauth.failed","code":"<CODE>"}` |
//! | server → client | `{"type":"token.expiring","expires_at":<unix s>}` |
//! | server → client | `{"type":"rate_limited","code":"RATE_LIMITED","retry_after_ms":<ms>}` ([`MessageVerdict::notice`](crate::rate_limit::MessageVerdict::notice)) |
//! | server → client | `{"type":"notification","message":"<text>"}` |
//!
//! A text message is a re-authentication when it parses as a JSON object with a member
//! `"type"` whose value is `"reauth"`, however it is escaped and wherever the member stands;
//! such a message is never handed to the application. Its token is usable when it has exactly
//! one member `"token"` and that is a string of valid Unicode; otherwise it is a refused
//! re-authentication. A lone surrogate escape (`"\ud800"`: JSON grammar allows it, RFC 8259
//! §8.2) anywhere in the message never makes it unreadable: in a name or in `type` it matches
//! nothing, in `token` it makes the token unusable. A leading byte order mark is ignored.
//!
//! A text that is not JSON (truncated, with text after the object, a trailing comma) is the
//! application's, even when it reads like a re-authentication: only the client knows what it
//! meant. A client that sends its token that way hands it to the application, as it would in
//! any other message.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub(crate) enum Outbound<'a> {
    #[serde(rename = "reauth.ok")]
    ReauthOk { expires_at: Option<u64> },
    #[serde(rename = "reauth.failed")]
    ReauthFailed { code: &'a str },
    #[serde(rename = "token.expiring")]
    TokenExpiring { expires_at: u64 },
    #[serde(rename = "notification")]
    Notification { message: &'a str },
}

impl Outbound<'_> {
    /// The message as JSON text.
    pub(crate) fn to_text(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A re-authentication request found in a text message.
#[derive(PartialEq, Eq)]
pub(crate) enum Reauth<'a> {
    /// The token to validate.
    Token(Cow<'a, str>),
    /// A re-authentication without a usable token (absent, not a string, given twice).
    Unusable,
}

impl fmt::Debug for Reauth<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(t) => write!(f, "Reauth::Token([redacted], {} bytes)", t.len()),
            Self::Unusable => f.write_str("Reauth::Unusable"),
        }
    }
}

/// `Some` when `text` is a re-authentication request (see the module docs).
pub(crate) fn parse_reauth(text: &str) -> Option<Reauth<'_>> {
    // RFC 8259 §8.1: a parser may ignore a byte order mark, and some clients send one.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Only a JSON object can be one; anything else is left alone without parsing.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let found = de.deserialize_map(ReauthVisitor).ok()?;
    de.end().ok()?;
    found
}

struct ReauthVisitor;

/// A member name, compared as the bytes its escapes stand for. Read without Unicode
/// validation, so that a lone surrogate (`"\ud800"`, valid JSON grammar, RFC 8259 §8.2) in a
/// name cannot make the whole message unreadable and so hide a re-authentication in it: such a
/// name is simply none of ours.
enum Name {
    Type,
    Token,
    Other,
}

impl<'de> de::Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Name, E> {
                Ok(match v {
                    b"type" => Name::Type,
                    b"token" => Name::Token,
                    _ => Name::Other,
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name, E> {
                self.visit_bytes(v.as_bytes())
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A member value: a string (borrowed when unescaped), or anything else.
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de> de::Deserialize<'de> for MaybeStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A member value: `Some` for a string that is valid Unicode, borrowed when unescaped; `None`
/// for any other value, a string with a lone surrogate included. The value is taken as raw
/// JSON text first (which skips it without decoding, so nothing in it can fail the message),
/// then decoded on its own.
fn string_value<'de>(raw: &'de RawValue) -> Option<Cow<'de, str>> {
    serde_json::from_str::<MaybeStr<'de>>(raw.get()).ok()?.0
}

impl<'de> Visitor<'de> for ReauthVisitor {
    type Value = Option<Reauth<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut is_reauth = false;
        let mut token: Option<Cow<'de, str>> = None;
        let mut unusable = false;
        while let Some(name) = map.next_key::<Name>()? {
            match name {
                // Any `"type": "reauth"` member makes it one, even beside another `type`.
                Name::Type => {
                    let value = map.next_value::<&'de RawValue>()?;
                    is_reauth |= string_value(value).as_deref() == Some("reauth");
                }
                Name::Token => match (string_value(map.next_value::<&'de RawValue>()?), &token) {
                    (Some(t), None) => token = Some(t),
                    // A second token, or one that is not a (valid) string: refused, never
                    // guessed.
                    _ => unusable = true,
                },
                Name::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let reauth = match token {
            Some(t) if !unusable => Reauth::Token(t),
            _ => Reauth::Unusable,
        };
        Ok(is_reauth.then_some(reauth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> Option<String> {
        match parse_reauth(text)? {
            Reauth::Token(t) => Some(t.into_owned()),
            Reauth::Unusable => Some("<unusable>".to_owned()),
        }
    }

    #[test]
    fn reauth_messages_are_recognized_however_written() {
        assert_eq!(
            token(r#"{"type":"reauth","token":"a.b.c"}"#).as_deref(),
            Some("a.b.c")
        );
        assert_eq!(
            token(r#"  {"token":"a.b.c", "type" : "reauth"}"#).as_deref(),
            Some("a.b.c")
        );
        // Escapes in keys and values.
        assert_eq!(
            token(r#"{"type":"re\u0061uth","token":"a.b.c"}"#).as_deref(),
            Some("a.b.c")
        );
        assert_eq!(
            token(r#"{"\u0074ype":"reauth","t\u006fken":"x.y.z"}"#).as_deref(),
            Some("x.y.z")
        );
        // Duplicate `type`: one of them says reauth, so it is one.
        assert_eq!(
            token(r#"{"type":"chat","type":"reauth","token":"a"}"#).as_deref(),
            Some("a")
        );
        // Large messages are recognized too (the size limit is the session's business).
        assert_eq!(
            token("\u{feff}{\"type\":\"reauth\",\"token\":\"a.b.c\"}").as_deref(),
            Some("a.b.c")
        );
        // A lone surrogate elsewhere (found by the ws_messages fuzz target) hides nothing.
        assert_eq!(
            token(r#"{"type":"reauth","token":"a.b.c","\udc00":"\ud800"}"#).as_deref(),
            Some("a.b.c")
        );
        assert_eq!(
            token(r#"{"type":"\ud800","type":"reauth","token":"a.b.c"}"#).as_deref(),
            Some("a.b.c")
        );
        let big = format!(r#"{{"type":"reauth","token":"{}"}}"#, "a".repeat(20_000));
        assert_eq!(token(&big).map(|t| t.len()), Some(20_000));
    }

    #[test]
    fn reauth_without_a_usable_token_is_still_a_reauth() {
        for text in [
            r#"{"type":"reauth"}"#,
            r#"{"type":"reauth","token":5}"#,
            r#"{"type":"reauth","token":"a","token":"b"}"#,
            r#"{"type":"reauth","token":null}"#,
            // Found by the ws_messages fuzz target: a lone surrogate made the message unreadable.
            r#"{"type":"reauth","token":"\ud800"}"#,
        ] {
            assert_eq!(parse_reauth(text), Some(Reauth::Unusable), "{text}");
        }
    }

    #[test]
    fn other_messages_are_not_reauth() {
        for text in [
            "hello",
            r#"{"type":"chat","text":"\"reauth\""}"#,
            r#"["reauth"]"#,
            r#"{"type":"reauth","token":"a"} trailing"#,
            r#"{"type":"reauth""#,
            r#"{"kind":"reauth"}"#,
            "",
        ] {
            assert_eq!(parse_reauth(text), None, "{text}");
        }
    }

    #[test]
    fn outbound_messages_are_the_documented_json() {
        let cases = [
            (
                Outbound::ReauthOk {
                    expires_at: Some(7),
                },
                r#"{"type":"reauth.ok","expires_at":7}"#,
            ),
            (
                Outbound::ReauthOk { expires_at: None },
                r#"{"type":"reauth.ok","expires_at":null}"#,
            ),
            (
                Outbound::ReauthFailed {
                    code: "INVALID_TOKEN",
                },
                r#"{"type":"reauth.failed","code":"INVALID_TOKEN"}"#,
            ),
            (
                Outbound::TokenExpiring { expires_at: 9 },
                r#"{"type":"token.expiring","expires_at":9}"#,
            ),
            (
                Outbound::Notification {
                    message: "hi \"x\"",
                },
                r#"{"type":"notification","message":"hi \"x\""}"#,
            ),
        ];
        for (message, json) in cases {
            assert_eq!(message.to_text(), json);
        }
    }
}
