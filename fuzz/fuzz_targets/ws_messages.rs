//! The WebSocket session's parser of client text messages: which are re-authentications, and
//! with which token.
//!
//! Properties, besides "no panic":
//! - differential: the parser agrees with a reference reading of the message by `serde_json`
//!   (every member kept, in order, duplicates included): a message is a re-authentication when
//!   it is a JSON object with a member `"type": "reauth"`, and its token is usable only when
//!   there is exactly one `token` member and it is a string of valid Unicode (a lone surrogate
//!   escape, which JSON grammar allows, hides nothing and makes a token unusable); a leading
//!   byte order mark is ignored;
//! - round trip: a re-authentication written by `serde_json`, with extra members in any order,
//!   yields exactly its token.
#![no_main]

use std::fmt;

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use tower_jwt_guard::fuzzing::parse_reauth;

/// Every member of a JSON object, in order: names as the bytes their escapes stand for (a
/// lone surrogate is JSON grammar), values as raw JSON text.
struct Members(Vec<(Vec<u8>, Box<RawValue>)>);

struct Name(Vec<u8>);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Name, E> {
                Ok(Name(v.to_vec()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Name, E> {
                Ok(Name(v.as_bytes().to_vec()))
            }
        }
        d.deserialize_bytes(V)
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some((Name(name), value)) = map.next_entry::<Name, Box<RawValue>>()? {
                    members.push((name, value));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

fn as_string(raw: &RawValue) -> Option<String> {
    raw.get()
        .starts_with('"')
        .then(|| serde_json::from_str::<String>(raw.get()).ok())
        .flatten()
}

fn reference(text: &str) -> Option<Option<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Members(members) = serde_json::from_str::<Members>(text).ok()?;
    let is_reauth = members
        .iter()
        .any(|(k, v)| k == b"type" && as_string(v).as_deref() == Some("reauth"));
    if !is_reauth {
        return None;
    }
    let mut tokens = members.iter().filter(|(k, _)| k == b"token");
    Some(match (tokens.next(), tokens.next()) {
        (Some((_, v)), None) => as_string(v),
        _ => None,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        assert_eq!(parse_reauth(text), reference(text), "{text:?}");
    } else {
        // A re-authentication written by serde_json: the token, members before and after.
        let (token, extra) = match rest.iter().position(|b| *b == 0xff) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        let token = String::from_utf8_lossy(token);
        let extra = String::from_utf8_lossy(extra);
        let mut members = vec![
            format!(r#""type":"reauth""#),
            format!(r#""token":{}"#, serde_json::to_string(&token).unwrap()),
        ];
        // An extra member with a fuzz-made name (never one of ours) and value.
        if !extra.is_empty() && extra != "type" && extra != "token" {
            let member = format!(
                "{}:{}",
                serde_json::to_string(&extra).unwrap(),
                serde_json::to_string(&extra).unwrap()
            );
            members.insert(usize::from(mode >> 1) % 3, member);
        }
        if mode & 0x80 != 0 {
            members.swap(0, 1);
        }
        let text = format!("{{{}}}", members.join(","));
        assert_eq!(
            parse_reauth(&text),
            Some(Some(token.into_owned())),
            "{text:?}"
        );
    }
});
