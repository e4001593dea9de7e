//! An arbitrary or fuzz-shaped token against a validator holding keys of every family (HMAC,
//! RSA, EC P-256, Ed25519).
//!
//! Properties, besides "no panic":
//! - whatever passes was signed by a configured key, with the algorithm its header names, that
//!   algorithm allowed, and the `kid` (when given) that key's; a token changed in any byte after
//!   signing never passes; an HMAC token keyed with a public key (algorithm confusion) never
//!   passes;
//! - `exp` is honoured: a passing token has one, and the clock is before `exp` + leeway; `nbf`,
//!   `iss` and `aud` hold as configured;
//! - differential: the one-pass payload reader (claims as `serde_json::Value`), the two-pass
//!   reader (claims as `IgnoredAny`) and `serde_json` itself agree on what passes and on every
//!   registered claim;
//! - a well-formed token of the configured kind passes exactly when its times say it should;
//! - with one key, `kid` is not consulted: whatever passes verifies under that key.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::Value;
use tower_jwt_guard::Algorithm;
use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::jsonwebtoken::{DecodingKey, EncodingKey, crypto};
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::validate::{Validator, Verified};

const NOW: u64 = 1_700_000_000;
const LEEWAY: u64 = 10;
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "api";
const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret!";
const OTHER_SECRET: &[u8] = b"another-secret-another-secret-another";

const RSA_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/rsa_public.pem");
const RSA2_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/rsa2_private.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/ec_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/ed_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/ed_public.pem");

const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];
const ALLOWED: [Algorithm; 6] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];
const KIDS: [Option<&str>; 8] = [
    None,
    Some("h"),
    Some("r"),
    Some("e"),
    Some("d"),
    Some("unknown"),
    Some("../../etc/passwd"),
    Some("h\0"),
];
const TYPES: [Option<&str>; 6] = [
    None,
    Some("JWT"),
    Some("at+jwt"),
    Some("AT+JWT"),
    Some("application/at+jwt"),
    Some("jwt+at"),
];

/// Who signs: the configured keys, keys the validator does not hold, and the public keys used
/// as HMAC secrets (the RS256/ES256 → HS256 confusion).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Signer {
    Hmac,
    OtherHmac,
    RsaPublicAsSecret,
    EcPublicAsSecret,
    Ec,
    Ed,
    Rsa,
    OtherRsa,
}

const SIGNERS: [Signer; 8] = [
    Signer::Hmac,
    Signer::OtherHmac,
    Signer::RsaPublicAsSecret,
    Signer::EcPublicAsSecret,
    Signer::Ec,
    Signer::Ed,
    Signer::Rsa,
    Signer::OtherRsa,
];

impl Signer {
    /// The kid of the configured key this signer holds, if it holds one.
    fn configured_kid(self) -> Option<&'static str> {
        match self {
            Self::Hmac => Some("h"),
            Self::Ec => Some("e"),
            Self::Ed => Some("d"),
            Self::Rsa => Some("r"),
            _ => None,
        }
    }

    fn key(self) -> EncodingKey {
        match self {
            Self::Hmac => EncodingKey::from_secret(SECRET).unwrap(),
            Self::OtherHmac => EncodingKey::from_secret(OTHER_SECRET).unwrap(),
            Self::RsaPublicAsSecret => EncodingKey::from_secret(RSA_PUBLIC).unwrap(),
            Self::EcPublicAsSecret => EncodingKey::from_secret(EC_PUBLIC).unwrap(),
            Self::Ec => EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
            Self::Ed => EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
            Self::Rsa => EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
            Self::OtherRsa => EncodingKey::from_rsa_pem(RSA2_PRIVATE).unwrap(),
        }
    }

    /// The algorithm this signer signs with when asked for `alg`: `alg` itself when its
    /// family fits (then the header is honest), else the signer's own.
    fn signing_alg(self, alg: Algorithm) -> Algorithm {
        use Algorithm::*;
        let fits = match self {
            Self::Ec => matches!(alg, ES256),
            Self::Ed => matches!(alg, EdDSA),
            Self::Rsa | Self::OtherRsa => {
                matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
            }
            _ => matches!(alg, HS256 | HS384 | HS512),
        };
        if fits {
            alg
        } else {
            match self {
                Self::Ec => ES256,
                Self::Ed => EdDSA,
                Self::Rsa | Self::OtherRsa => RS256,
                _ => HS256,
            }
        }
    }
}

struct Fixture {
    /// Claims read in one pass.
    value: Validator<Value>,
    /// Claims skipped: the registered claims are read in a second pass.
    skipped: Validator<IgnoredAny>,
    /// Only `at+jwt` tokens.
    typed: Validator<IgnoredAny>,
    /// The HMAC key alone: `kid` is not consulted then.
    single: Validator<IgnoredAny>,
    keys: Vec<EncodingKey>,
    /// The configured keys, by kid, for an independent verification with `jsonwebtoken`.
    verifiers: Vec<(&'static str, DecodingKey)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let keys = || {
            [
                Key::hmac(SECRET).unwrap().with_kid("h"),
                Key::rsa_pem(RSA_PUBLIC).unwrap().with_kid("r"),
                Key::ec_pem(EC_PUBLIC).unwrap().with_kid("e"),
                Key::ed_pem(ED_PUBLIC).unwrap().with_kid("d"),
            ]
        };
        fn build<C: serde::de::DeserializeOwned + Send + Sync + 'static>(
            keys: [Key; 4],
            typed: bool,
        ) -> Validator<C> {
            let mut builder = Validator::<C>::builder()
                .keys(keys)
                .algorithms(ALLOWED)
                .issuers([ISSUER])
                .audiences([AUDIENCE])
                .clock(FakeClock::at_unix_secs(NOW));
            if typed {
                builder = builder.token_types(["at+jwt"]);
            }
            builder.build().unwrap()
        }
        Fixture {
            value: build(keys(), false),
            skipped: build(keys(), false),
            typed: build(keys(), true),
            single: Validator::builder()
                .key(Key::hmac(SECRET).unwrap().with_kid("h"))
                .algorithms(ALLOWED)
                .issuers([ISSUER])
                .audiences([AUDIENCE])
                .clock(FakeClock::at_unix_secs(NOW))
                .build()
                .unwrap(),
            keys: SIGNERS.iter().map(|s| s.key()).collect(),
            verifiers: vec![
                ("h", DecodingKey::from_secret(SECRET).unwrap()),
                ("r", DecodingKey::from_rsa_pem(RSA_PUBLIC).unwrap()),
                ("e", DecodingKey::from_ec_pem(EC_PUBLIC).unwrap()),
                ("d", DecodingKey::from_ed_pem(ED_PUBLIC).unwrap()),
            ],
        }
    })
}

/// How the token was made, for the properties.
struct Made {
    signer: Signer,
    header_alg: Algorithm,
    signing_alg: Algorithm,
    kid: Option<&'static str>,
}

fn sign(signer: Signer, header: &[u8], payload: &[u8], alg: Algorithm) -> String {
    let message = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let key = &fixture().keys[SIGNERS.iter().position(|s| *s == signer).unwrap()];
    let signature = crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

fn header_json(alg: Algorithm, kid: Option<&str>, typ: Option<&str>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("alg".into(), serde_json::to_value(alg).unwrap());
    if let Some(kid) = kid {
        header.insert("kid".into(), kid.into());
    }
    if let Some(typ) = typ {
        header.insert("typ".into(), typ.into());
    }
    serde_json::to_vec(&header).unwrap()
}

/// RSA signing is slow: RSA tokens are signed once, over fixed payloads, and then mutated.
fn rsa_token(signer: Signer, alg: Algorithm, kid: Option<&'static str>, index: usize) -> String {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    let payloads = [
        format!(
            r#"{{"sub":"u","exp":{},"iss":"{ISSUER}","aud":"{AUDIENCE}"}}"#,
            NOW + 60
        ),
        format!(
            r#"{{"sub":"u","exp":{},"iss":"{ISSUER}","aud":["x","{AUDIENCE}"]}}"#,
            NOW - 60
        ),
    ];
    let tokens = TOKENS.get_or_init(|| {
        let mut tokens = Vec::new();
        for s in [Signer::Rsa, Signer::OtherRsa] {
            for a in [Algorithm::RS256, Algorithm::PS256, Algorithm::RS384] {
                for k in KIDS {
                    for p in &payloads {
                        tokens.push(sign(s, &header_json(a, k, None), p.as_bytes(), a));
                    }
                }
            }
        }
        tokens
    });
    let s = usize::from(signer == Signer::OtherRsa);
    let a = [Algorithm::RS256, Algorithm::PS256, Algorithm::RS384]
        .iter()
        .position(|x| *x == alg)
        .unwrap_or(0);
    let k = KIDS.iter().position(|x| *x == kid).unwrap();
    tokens[((s * 3 + a) * KIDS.len() + k) * payloads.len() + index % payloads.len()].clone()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        // Any string as a token.
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                check(token, None, None);
            }
        }
        // A signed token with a fuzz-made payload (and optionally a fuzz-made header).
        1 | 2 => {
            let [s, a, k, t, flags, p0, p1, v, body @ ..] = rest else {
                return;
            };
            let mut signer = SIGNERS[usize::from(*s) % SIGNERS.len()];
            let header_alg = ALGORITHMS[usize::from(*a) % ALGORITHMS.len()];
            let kid = KIDS[usize::from(*k) % KIDS.len()];
            let typ = TYPES[usize::from(*t) % TYPES.len()];
            let (token, made, raw_header) = if matches!(signer, Signer::Rsa | Signer::OtherRsa) {
                let alg = match header_alg {
                    Algorithm::PS256 => Algorithm::PS256,
                    Algorithm::RS384 => Algorithm::RS384,
                    _ => Algorithm::RS256,
                };
                let made = Made {
                    signer,
                    header_alg: alg,
                    signing_alg: alg,
                    kid,
                };
                (rsa_token(signer, alg, kid, usize::from(*v)), made, None)
            } else if mode % 4 == 2 {
                // The header is fuzz input too: HMAC only (cheap), with `alg` as written.
                signer = if *s & 1 == 0 {
                    Signer::Hmac
                } else {
                    Signer::OtherHmac
                };
                let (header, payload) = split_at_byte(body, 0xff);
                let made = Made {
                    signer,
                    header_alg: Algorithm::HS256,
                    signing_alg: Algorithm::HS256,
                    kid: None,
                };
                (
                    sign(signer, header, payload, Algorithm::HS256),
                    made,
                    Some(header),
                )
            } else {
                let signing_alg = signer.signing_alg(header_alg);
                let made = Made {
                    signer,
                    header_alg,
                    signing_alg,
                    kid,
                };
                (
                    sign(
                        signer,
                        &header_json(header_alg, kid, typ),
                        body,
                        signing_alg,
                    ),
                    made,
                    None,
                )
            };
            // Optionally one byte changed after signing.
            let mut mutated = token.clone().into_bytes();
            if flags & 1 == 1 && !mutated.is_empty() {
                let at = usize::from(u16::from_le_bytes([*p0, *p1])) % mutated.len();
                mutated[at] = *v;
            }
            let Ok(mutated) = String::from_utf8(mutated) else {
                return;
            };
            let changed = mutated != token;
            let passed = check(&mutated, Some(&made), raw_header);
            if passed {
                assert!(!changed, "a token changed after signing passed");
            }
        }
        // A well-formed token of a configured kind: passes exactly when its times allow.
        _ => {
            let [s, e0, e1, n0, n1, has_nbf, sub @ ..] = rest else {
                return;
            };
            let signer = [Signer::Hmac, Signer::Ec, Signer::Ed][usize::from(*s) % 3];
            let alg = signer.signing_alg(Algorithm::HS256);
            let exp = (NOW as i64 + i64::from(i16::from_le_bytes([*e0, *e1]))) as u64;
            let nbf = (NOW as i64 + i64::from(i16::from_le_bytes([*n0, *n1]))) as u64;
            let mut payload = serde_json::json!({
                "sub": String::from_utf8_lossy(sub),
                "exp": exp,
                "iss": ISSUER,
                "aud": AUDIENCE,
            });
            if has_nbf & 1 == 1 {
                payload["nbf"] = nbf.into();
            }
            let kid = signer.configured_kid();
            let token = sign(
                signer,
                &header_json(alg, kid, Some("JWT")),
                payload.to_string().as_bytes(),
                alg,
            );
            let made = Made {
                signer,
                header_alg: alg,
                signing_alg: alg,
                kid,
            };
            let passed = check(&token, Some(&made), None);
            let should = NOW < exp + LEEWAY && (has_nbf & 1 == 0 || nbf <= NOW + LEEWAY);
            assert_eq!(
                passed, should,
                "exp {exp} nbf {nbf} now {NOW}: passed {passed}"
            );
        }
    }
});

fn split_at_byte(data: &[u8], byte: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == byte) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Validates `token` three ways, checks the properties, and says whether it passed.
fn check(token: &str, made: Option<&Made>, raw_header: Option<&[u8]>) -> bool {
    let f = fixture();
    let one = f.value.validate(token);
    let two = f.skipped.validate(token);
    let typed = f.typed.validate(token);
    if f.single.validate(token).is_ok() {
        // Whatever its kid says, it verifies under the one key, with an HMAC algorithm allowed.
        let (message, signature) = token.rsplit_once('.').unwrap();
        let header = B64.decode(token.split('.').next().unwrap()).unwrap();
        let header: Value = serde_json::from_slice(&header).unwrap();
        let alg: Algorithm = serde_json::from_value(header["alg"].clone()).unwrap();
        assert!(
            matches!(alg, Algorithm::HS256 | Algorithm::HS384),
            "{alg:?} with an HMAC key"
        );
        let key = &f.verifiers[0].1;
        assert!(crypto::verify(signature, message.as_bytes(), key, alg).unwrap_or(false));
    }
    // The one-pass and the two-pass readers agree, refusal code included.
    match (&one, &two) {
        (Ok(a), Ok(b)) => assert_eq!(a.context, b.context, "the two readers disagree"),
        (Err(a), Err(b)) => assert_eq!(a.code(), b.code(), "the two readers refuse differently"),
        _ => panic!(
            "one pass {:?}, two passes {:?}",
            one.as_ref().map(|_| ()),
            two.as_ref().map(|_| ())
        ),
    }
    if typed.is_ok() {
        assert!(
            one.is_ok(),
            "the typed validator passed what the untyped one refused"
        );
    }
    let Ok(verified) = one else {
        return false;
    };
    let mut segments = token.split('.');
    let (header, payload) = (segments.next().unwrap(), segments.next().unwrap());
    let header: Value = serde_json::from_slice(&B64.decode(header).unwrap()).unwrap();
    let payload_bytes = B64.decode(payload).expect("a passing payload is base64url");
    let payload: Value = serde_json::from_slice(&payload_bytes).expect("a passing payload is JSON");
    registered_claims_hold(&verified, &payload);
    let alg: Algorithm = serde_json::from_value(header["alg"].clone()).unwrap();
    assert!(
        ALLOWED.contains(&alg),
        "a passing token's algorithm is not allowed"
    );
    assert!(header.get("crit").is_none(), "a token with crit passed");
    if typed.is_ok() {
        let typ = header["typ"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            typ == "at+jwt" || typ == "application/at+jwt",
            "typ {typ:?} passed as at+jwt"
        );
    }
    // Whoever made it, it verifies under the key that passed it, with the header's algorithm.
    let (message, signature) = token.rsplit_once('.').unwrap();
    let key_id = verified
        .context
        .key_id()
        .expect("every configured key has a kid");
    let (_, key) = f.verifiers.iter().find(|(kid, _)| *kid == key_id).unwrap();
    assert!(
        crypto::verify(signature, message.as_bytes(), key, alg).unwrap_or(false),
        "passed, but jsonwebtoken does not verify it under key {key_id} with {alg:?}"
    );
    if let Some(kid) = header.get("kid") {
        assert_eq!(
            kid.as_str(),
            Some(key_id),
            "passed under another key than its kid's"
        );
    }
    if let Some(made) = made {
        {
            let kid = made.signer.configured_kid();
            assert!(kid.is_some(), "a token signed by {:?} passed", made.signer);
            assert_eq!(
                made.header_alg, made.signing_alg,
                "a header naming another algorithm passed"
            );
            if raw_header.is_none() {
                assert!(
                    made.kid.is_none() || made.kid == kid,
                    "a token passed under another kid"
                );
            }
            assert_eq!(verified.context.key_id(), kid, "verified by another key");
        }
    }
    true
}

/// `exp` honoured, `nbf`, `iss` and `aud` as configured, and the context is `serde_json`'s
/// reading of the payload.
fn registered_claims_hold(verified: &Verified<Value>, payload: &Value) {
    assert_eq!(
        &verified.claims, payload,
        "the one-pass claims differ from serde_json's"
    );
    let object = payload.as_object().expect("a passing payload is an object");
    let exp = object
        .get("exp")
        .and_then(Value::as_f64)
        .expect("passed without a numeric exp");
    assert!(
        (NOW as f64) < exp + LEEWAY as f64,
        "passed after exp + leeway"
    );
    if let Some(nbf) = object.get("nbf") {
        assert!(
            nbf.as_f64().unwrap() <= (NOW + LEEWAY) as f64,
            "passed before nbf - leeway"
        );
    }
    assert_eq!(
        object.get("iss").and_then(Value::as_str),
        Some(ISSUER),
        "another issuer passed"
    );
    match &object["aud"] {
        Value::String(aud) => assert_eq!(aud, AUDIENCE),
        Value::Array(auds) => assert!(
            auds.iter().any(|a| a == AUDIENCE),
            "another audience passed"
        ),
        other => panic!("aud {other} passed"),
    }
    let context = &verified.context;
    assert_eq!(
        context.subject(),
        object.get("sub").and_then(Value::as_str),
        "sub"
    );
    assert_eq!(
        context.token_id(),
        object.get("jti").and_then(Value::as_str),
        "jti"
    );
    if let Some(exp) = object["exp"].as_u64() {
        assert_eq!(context.expires_at(), Some(exp), "exp");
    }
    if let Some(iat) = object.get("iat").and_then(Value::as_u64) {
        assert_eq!(context.issued_at(), Some(iat), "iat");
    }
}
