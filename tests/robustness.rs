//! Bad input of any shape gets a clear rejection, never a panic: a bounded, deterministic
//! random-input smoke over extraction and validation, run in every CI build.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use serde::Deserialize;
use tower_jwt_guard::extract::TokenExtractor;
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::validate::Validator;
use tower_jwt_guard::{ErrorCode, clock::FakeClock};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const PIECES: &[&str] = &[
    "Bearer ",
    "bearer",
    "Basic ",
    " ",
    "\t",
    ".",
    "..",
    "=",
    "%",
    "%2",
    "%zz",
    "+",
    "&",
    ";",
    ",",
    "\"",
    "token",
    "token=",
    "jwt=",
    "eyJ",
    "e30",
    "eyJhbGciOiJub25lIn0",
    "base64url.bearer.authorization.jwt.",
    "AAAA",
    "____",
    "----",
    "{}",
    "[]",
    "null",
    "\u{7f}",
];

fn fragment(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(12) {
        if rng.below(4) == 0 {
            let raw = rng.bytes(24);
            s.push_str(&URL_SAFE_NO_PAD.encode(raw));
        } else {
            s.push_str(rng.pick(PIECES));
        }
    }
    s
}

#[derive(Debug, Clone, Deserialize)]
struct AnyClaims {}

#[test]
fn random_requests_never_panic() {
    let extractor = TokenExtractor::new()
        .bearer()
        .query("token")
        .header(HeaderName::from_static("x-auth-token"))
        .header_with_prefix(HeaderName::from_static("x-prefixed"), "Token ")
        .cookie("jwt")
        .websocket_protocol()
        .max_token_len(512);
    let validator = Validator::<AnyClaims>::builder()
        .key(Key::hmac([9u8; 32]).unwrap())
        .clock(FakeClock::at_unix_secs(1_700_000_000))
        .build()
        .unwrap();
    let names = [
        "authorization",
        "x-auth-token",
        "x-prefixed",
        "cookie",
        "sec-websocket-protocol",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut outcomes = [0usize; 3];
    for _ in 0..20_000 {
        let mut headers = HeaderMap::new();
        for _ in 0..rng.below(4) {
            let name = HeaderName::from_static(names[rng.below(names.len())]);
            let value = if rng.below(8) == 0 {
                HeaderValue::from_bytes(&rng.bytes(40)).ok()
            } else {
                HeaderValue::from_str(&fragment(&mut rng)).ok()
            };
            if let Some(value) = value {
                headers.append(name, value);
            }
        }
        let uri: Uri = format!("/p?{}", fragment(&mut rng))
            .parse()
            .unwrap_or_else(|_| Uri::from_static("/p"));
        match extractor.extract(&headers, &uri, true) {
            Err(_) => outcomes[0] += 1,
            Ok(None) => outcomes[1] += 1,
            Ok(Some(token)) => {
                outcomes[2] += 1;
                let err = validator
                    .validate(token.as_str())
                    .expect_err("a random token never validates");
                assert_eq!(err.code(), ErrorCode::InvalidToken);
            }
        }
    }
    // The generator must reach every branch, or this test proves little.
    assert!(outcomes.iter().all(|&n| n > 100), "{outcomes:?}");
}

#[test]
fn random_jws_shapes_are_invalid_tokens() {
    let validator = Validator::<AnyClaims>::builder()
        .key(Key::hmac([9u8; 32]).unwrap())
        .clock(FakeClock::at_unix_secs(1_700_000_000))
        .build()
        .unwrap();
    let headers = [
        r#"{"alg":"HS256"}"#,
        r#"{"alg":"none"}"#,
        r#"{"alg":"RS256"}"#,
        r#"{"alg":"HS256","kid":7}"#,
        r#"{"alg":["HS256"]}"#,
        r#"{}"#,
        "not json",
    ];
    let payloads = [
        r#"{"sub":"a","exp":99999999999}"#,
        r#"{"exp":"x"}"#,
        r#"{"exp":1e400}"#,
        r#"{"exp":-5}"#,
        "[]",
        "",
        "\u{0}",
    ];
    let mut rng = Rng(42);
    for _ in 0..5_000 {
        let h = URL_SAFE_NO_PAD.encode(headers[rng.below(headers.len())]);
        let p = URL_SAFE_NO_PAD.encode(payloads[rng.below(payloads.len())]);
        let sig = URL_SAFE_NO_PAD.encode(rng.bytes(40));
        let token = match rng.below(4) {
            0 => format!("{h}.{p}.{sig}"),
            1 => format!("{h}.{p}"),
            2 => format!("{h}.{p}.{sig}.{sig}"),
            _ => format!("{h}.{p}."),
        };
        let err = validator.validate(&token).expect_err("never valid");
        assert_eq!(err.code(), ErrorCode::InvalidToken, "{token}");
    }
}
