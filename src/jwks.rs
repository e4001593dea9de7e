//! JWK sets from elsewhere (an identity provider's `jwks_uri`), read key by key and strictly.
//!
//! [`keys_from_jwks`](crate::keys::keys_from_jwks) is for a set the application ships: any key
//! it cannot use is a configuration error, found at start-up. A set fetched from an identity
//! provider is different: it changes without the application, and one key it holds that this
//! crate cannot use (a new key type, an encryption key, a curve not supported) must not
//! discard the others. [`RemoteJwks::parse`] keeps every usable signature key and says why it
//! skipped each of the others:
//!
//! - `use` must be `sig` or absent; `key_ops`, when present, must allow `verify`;
//! - `kty` must be `RSA` (at least 2048 bits), `EC` (`P-256` with ES256, `P-384` with ES384),
//!   or `OKP` (`Ed25519`, EdDSA; a JWK `alg` of `Ed25519`, RFC 9864's name, is read as EdDSA);
//!   `oct` (a shared secret published in a key set) only when
//!   [`JwksPolicy::allow_symmetric`] says so;
//! - a JWK's `alg`, when present, narrows what the key verifies, and must agree with its type
//!   and curve;
//! - a second key with the same `kid` is skipped (a token naming it would be ambiguous);
//! - `x5c`, `x5u` and `jku` are never fetched nor trusted: the key is the JWK's own parameters;
//! - the key material is checked: an RSA modulus of 2048 to 8192 bits and an odd public
//!   exponent from 3 to 2^32 − 1, EC coordinates of their curve's size, an Ed25519 key of 32
//!   bytes (so that a truncated or broken document never replaces good keys); whether an EC
//!   point lies on its curve is left to the verification;
//! - a JWK that carries private parameters (`d`, `p`, `q`…) is skipped: a published private
//!   key is a compromised one; so is a `kid` over 256 bytes;
//! - at most [`JwksPolicy::max_keys`] keys (64 by default) are kept, and at most four times
//!   as many entries read.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations};

use crate::error::ConfigError;
use crate::keys::Key;

/// What a remote set may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksPolicy {
    /// Accept `oct` (HMAC) keys from the set (default `false`: a shared secret has no place in
    /// a published key set, and accepting one lets whoever serves the set sign tokens).
    pub allow_symmetric: bool,
    /// The most keys read from one document (default 64); the rest are skipped.
    pub max_keys: usize,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        Self {
            allow_symmetric: false,
            max_keys: 64,
        }
    }
}

/// A JWK that [`RemoteJwks::parse`] did not keep, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedJwk {
    /// Its place in the document's `keys`.
    pub index: usize,
    /// Its `kid`, if it had a string one (text from the document: escape it in logs, as
    /// `Debug` does).
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: &'static str,
}

/// The usable signature keys of a JWK set, and the JWKs skipped.
#[derive(Debug, Clone, Default)]
pub struct RemoteJwks {
    /// The keys, each bound to its algorithm family and, when the JWK says, its algorithm.
    pub keys: Vec<Key>,
    /// The JWKs left out, in document order.
    pub skipped: Vec<SkippedJwk>,
}

impl RemoteJwks {
    /// Reads `json`, a JWK set document (`{"keys": [...]}`), key by key under `policy`.
    ///
    /// # Errors
    /// Only when the document itself is not a JWK set (not JSON, not an object, no `keys`
    /// array): then nothing in it can be trusted. A set whose every key is skipped is not an
    /// error here; whoever fetched it decides (keeping the keys it had, for instance).
    pub fn parse(json: &[u8], policy: &JwksPolicy) -> Result<Self, ConfigError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(json)
            .map_err(|_| ConfigError::new("the JWK set is not a JSON object with a keys array"))?;
        let mut out = Self::default();
        let readable = policy.max_keys.saturating_mul(4).max(1);
        for (index, value) in document.keys.into_iter().enumerate() {
            if index >= readable {
                out.skipped.push(SkippedJwk {
                    index,
                    kid: None,
                    reason: "more entries than are read (the rest were not read)",
                });
                break;
            }
            let kid = value
                .get("kid")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
            let skip = |reason| SkippedJwk {
                index,
                kid: kid.clone(),
                reason,
            };
            if out.keys.len() >= policy.max_keys {
                out.skipped.push(skip("more keys than the set may hold"));
                continue;
            }
            if kid.is_some() && out.keys.iter().any(|k: &Key| k.kid() == kid.as_deref()) {
                out.skipped.push(skip("a second key with the same kid"));
                continue;
            }
            match key_of(value, policy) {
                Ok(key) => out.keys.push(key),
                Err(reason) => out.skipped.push(skip(reason)),
            }
        }
        Ok(out)
    }
}

/// One JWK as a key, or why not.
fn key_of(mut value: serde_json::Value, policy: &JwksPolicy) -> Result<Key, &'static str> {
    // Checked on the raw JSON first: an unknown `use` or `kty` would fail deserialization, and
    // deserves its own reason.
    match value.get("use") {
        None => {}
        Some(serde_json::Value::String(u)) if u == "sig" => {}
        Some(serde_json::Value::String(u)) if u == "enc" => {
            return Err("an encryption key (use: enc)");
        }
        Some(_) => return Err("a use other than sig"),
    }
    let is_oct = value.get("kty").and_then(serde_json::Value::as_str) == Some("oct");
    if !is_oct
        && ["d", "p", "q", "dp", "dq", "qi"]
            .iter()
            .any(|private| value.get(private).is_some())
    {
        return Err("a private key published in the set");
    }
    if value
        .get("kid")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|kid| kid.len() > 256)
    {
        return Err("a kid over 256 bytes");
    }
    let kty = match value.get("kty").and_then(serde_json::Value::as_str) {
        Some(kty @ ("RSA" | "EC" | "OKP")) => kty.to_owned(),
        Some("oct") if policy.allow_symmetric => "oct".to_owned(),
        Some("oct") => return Err("a symmetric (oct) key, not allowed from a key set"),
        Some(_) => return Err("an unknown key type (kty)"),
        None => return Err("no key type (kty)"),
    };
    // RFC 9864's fully specified `Ed25519` is EdDSA with that curve, the only one this crate
    // verifies (tokens must still say `EdDSA`, which `jsonwebtoken` knows).
    if kty == "OKP" && value.get("alg").and_then(serde_json::Value::as_str) == Some("Ed25519") {
        value["alg"] = serde_json::Value::from("EdDSA");
    }
    let jwk: Jwk = serde_json::from_value(value).map_err(|_| "not a valid JWK of its type")?;
    // `jsonwebtoken` reads the parameters by their shape: an `RSA` JWK carrying `crv`, `x`
    // and `y` would read as an EC key. The parameters must be those of the declared type.
    let declared = matches!(
        (kty.as_str(), &jwk.algorithm),
        ("RSA", AlgorithmParameters::RSA(_))
            | ("EC", AlgorithmParameters::EllipticCurve(_))
            | ("OKP", AlgorithmParameters::OctetKeyPair(_))
            | ("oct", AlgorithmParameters::OctetKey(_))
    );
    if !declared {
        return Err("parameters that are not those of its kty");
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.iter().any(|op| matches!(op, KeyOperations::Verify))
    {
        return Err("key_ops without verify");
    }
    check_material(&jwk.algorithm)?;
    Key::from_jwk(&jwk).map_err(
        |_| "unusable: its alg does not match its type or curve, or its parameters are invalid",
    )
}

/// The key material is what its type and curve need (see the module docs).
fn check_material(parameters: &AlgorithmParameters) -> Result<(), &'static str> {
    use base64::Engine;
    let decode = |text: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| "key parameters that are not base64url")
    };
    match parameters {
        AlgorithmParameters::RSA(rsa) => {
            let n = decode(&rsa.n)?;
            let n = strip_zeros(&n);
            let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
            if bits < 2048 {
                return Err("an RSA key shorter than 2048 bits");
            }
            if bits > 8192 {
                return Err("an RSA key longer than 8192 bits");
            }
            let e = decode(&rsa.e)?;
            let e = strip_zeros(&e);
            let value = (e.len() <= 4).then(|| e.iter().fold(0u64, |v, b| v << 8 | u64::from(*b)));
            if !value.is_some_and(|e| e >= 3 && e % 2 == 1) {
                return Err("an RSA exponent that is not an odd number from 3 to 2^32 - 1");
            }
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let size = match ec.curve {
                EllipticCurve::P256 => 32,
                EllipticCurve::P384 => 48,
                _ => return Err("an EC curve other than P-256 and P-384"),
            };
            if decode(&ec.x)?.len() != size || decode(&ec.y)?.len() != size {
                return Err("EC coordinates that are not of its curve's size");
            }
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            if !matches!(okp.curve, EllipticCurve::Ed25519) {
                return Err("an OKP curve other than Ed25519");
            }
            if decode(&okp.x)?.len() != 32 {
                return Err("an Ed25519 key that is not 32 bytes");
            }
        }
        AlgorithmParameters::OctetKey(_) => {}
        _ => return Err("a key type or curve that does not verify signatures"),
    }
    Ok(())
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::Algorithm;

    const RSA_N: &str = "1vAjckcG0dJgkgkkVpHuIWEP_FdtMC0BVSR1O8Kd07lH-Ru8dGzzSPuGlrQrYaOqZxHXotfihh_GoxyYMvuLt6Vm9bQlL_aurF84bg0WnFmTsFrE0t21njPT7eeaV_LBiwMPpmmy5Um_lJdzn9znHCbGwx98oYS94vfbnKV369BQzdYN69XTUkZWndFnqfvVhLO9cHDthKbBpXL8Vn7gASebfQR73Ctbuq9VAsliFEWHeRokrSYT1TR1iE7u-IW2tb71nMs27s0lcA9sraaIehOOov90zCeUpojh7gdkBgCXU9vMIwXcBEMAx6Kd6P_FwTiGLpa44kTJKIzzvi7Q2Q";
    // RFC 7515 A.3 (P-256) and RFC 8037 A.2 (Ed25519) public keys.
    const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    /// 48 zero bytes: a P-384 coordinate's size.
    const LONG: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0";

    fn parse(keys: &str) -> RemoteJwks {
        RemoteJwks::parse(
            format!(r#"{{"keys":[{keys}]}}"#).as_bytes(),
            &JwksPolicy::default(),
        )
        .unwrap()
    }

    fn reasons(set: &RemoteJwks) -> Vec<&'static str> {
        set.skipped.iter().map(|s| s.reason).collect()
    }

    #[test]
    fn good_keys_are_kept_with_their_algorithms() {
        let set = parse(&format!(
            r#"{{"kty":"RSA","kid":"r","use":"sig","alg":"PS256","n":"{RSA_N}","e":"AQAB"}},
               {{"kty":"EC","kid":"e","crv":"P-256","x":"{EC_X}","y":"{EC_Y}"}},
               {{"kty":"OKP","kid":"o","crv":"Ed25519","x":"{ED_X}","key_ops":["verify"]}},
               {{"kty":"OKP","kid":"o9864","alg":"Ed25519","crv":"Ed25519","x":"{ED_X}"}}"#
        ));
        assert!(set.skipped.is_empty(), "{:?}", set.skipped);
        let algs: Vec<_> = set.keys.iter().map(|k| (k.kid(), k.algorithm())).collect();
        assert_eq!(
            algs,
            [
                (Some("r"), Some(Algorithm::PS256)),
                (Some("e"), Some(Algorithm::ES256)),
                (Some("o"), None),
                (Some("o9864"), Some(Algorithm::EdDSA)),
            ]
        );
        assert_eq!(set.keys[2].family(), jsonwebtoken::AlgorithmFamily::Ed);
    }

    #[test]
    fn one_bad_key_does_not_discard_the_others() {
        let set = parse(&format!(
            r#"{{"kty":"RSA","kid":"enc","use":"enc","n":"{RSA_N}","e":"AQAB"}},
               {{"kty":"RSA","kid":"odd-use","use":"other","n":"{RSA_N}","e":"AQAB"}},
               {{"kty":"oct","kid":"secret","k":"{SECRET}"}},
               {{"kty":"XYZ","kid":"new-type"}},
               {{"kid":"no-type"}},
               "not an object",
               {{"kty":"EC","kid":"bad-alg","alg":"ES384","crv":"P-256","x":"{EC_X}","y":"{EC_Y}"}},
               {{"kty":"EC","kid":"p521","crv":"P-521","x":"{EC_X}","y":"{EC_Y}"}},
               {{"kty":"RSA","kid":"short","n":"0vx7agoebGcQSuuPiLJX","e":"AQAB"}},
               {{"kty":"RSA","kid":"sign-only","key_ops":["sign"],"n":"{RSA_N}","e":"AQAB"}},
               {{"kty":"OKP","kid":"x25519","crv":"X25519","x":"{ED_X}"}},
               {{"kty":"RSA","kid":"no-e","n":"{RSA_N}"}},
               {{"kty":"RSA","kid":"ec-in-rsa","crv":"P-256","x":"{EC_X}","y":"{EC_Y}"}},
               {{"kty":"RSA","kid":"private","n":"{RSA_N}","e":"AQAB","d":"AQAB"}},
               {{"kty":"RSA","kid":"even-e","n":"{RSA_N}","e":"AQAA"}},
               {{"kty":"EC","kid":"p256-long","crv":"P-256","x":"{LONG}","y":"{LONG}"}},
               {{"kty":"OKP","kid":"ed-short","crv":"Ed25519","x":"AAAAAAA"}},
               {{"kty":"RSA","kid":"good","alg":"RS256","n":"{RSA_N}","e":"AQAB"}},
               {{"kty":"EC","kid":"good","crv":"P-256","x":"{EC_X}","y":"{EC_Y}"}}"#
        ));
        let kept: Vec<_> = set.keys.iter().map(Key::kid).collect();
        assert_eq!(kept, [Some("good")]);
        assert_eq!(
            reasons(&set),
            [
                "an encryption key (use: enc)",
                "a use other than sig",
                "a symmetric (oct) key, not allowed from a key set",
                "an unknown key type (kty)",
                "no key type (kty)",
                "no key type (kty)",
                "unusable: its alg does not match its type or curve, or its parameters are invalid",
                "an EC curve other than P-256 and P-384",
                "an RSA key shorter than 2048 bits",
                "key_ops without verify",
                "parameters that are not those of its kty",
                "parameters that are not those of its kty",
                "parameters that are not those of its kty",
                "a private key published in the set",
                "an RSA exponent that is not an odd number from 3 to 2^32 - 1",
                "EC coordinates that are not of its curve's size",
                "an Ed25519 key that is not 32 bytes",
                "a second key with the same kid",
            ]
        );
        assert_eq!(set.skipped[0].kid.as_deref(), Some("enc"));
        assert_eq!(set.skipped[5].index, 5);
    }

    #[test]
    fn symmetric_keys_only_when_allowed_and_the_set_is_bounded() {
        let doc = format!(r#"{{"keys":[{{"kty":"oct","kid":"s","alg":"HS256","k":"{SECRET}"}}]}}"#);
        let allowed = JwksPolicy {
            allow_symmetric: true,
            ..JwksPolicy::default()
        };
        let set = RemoteJwks::parse(doc.as_bytes(), &allowed).unwrap();
        assert_eq!(set.keys.len(), 1);
        let many: Vec<String> = (0..70)
            .map(|i| {
                format!(r#"{{"kty":"EC","kid":"k{i}","crv":"P-256","x":"{EC_X}","y":"{EC_Y}"}}"#)
            })
            .collect();
        let set = parse(&many.join(","));
        assert_eq!(set.keys.len(), 64);
        assert_eq!(set.skipped.len(), 6);
        // A document of 100 000 entries: 256 read, one entry says the rest were not.
        let junk = vec!["{}"; 100_000].join(",");
        let set = parse(&junk);
        assert_eq!(set.skipped.len(), 257);
        assert_eq!(
            set.skipped.last().unwrap().reason,
            "more entries than are read (the rest were not read)"
        );
    }

    #[test]
    fn a_kept_key_verifies_and_names_its_kid() {
        // The fixtures' JWKS (two RSA keys) with a bad key before them.
        let fixture = include_str!("../tests/fixtures/jwks.json");
        let doc = fixture.replacen(
            r#""keys": ["#,
            r#""keys": [{"kty":"oct","kid":"x","k":"AAAA"},"#,
            1,
        );
        let set = RemoteJwks::parse(doc.as_bytes(), &JwksPolicy::default()).unwrap();
        assert_eq!(set.keys.len(), 2);
        assert_eq!(set.skipped.len(), 1);
        let validator = crate::validate::Validator::<serde_json::Value>::builder()
            .keys(set.keys)
            .build()
            .unwrap();
        let signing = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!(
            "../tests/fixtures/rsa2_private.pem"
        ))
        .unwrap();
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some("rsa-2026".into());
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let token = jsonwebtoken::encode(
            &header,
            &serde_json::json!({"sub": "a", "exp": exp}),
            &signing,
        )
        .unwrap();
        assert!(validator.validate(&token).is_ok());
        header.kid = Some("rsa-2025".into());
        let wrong = jsonwebtoken::encode(
            &header,
            &serde_json::json!({"sub": "a", "exp": exp}),
            &signing,
        )
        .unwrap();
        assert!(validator.validate(&wrong).is_err(), "another kid's key");
    }

    #[test]
    fn a_document_that_is_not_a_key_set_is_an_error() {
        for doc in [
            "",
            "[]",
            "{}",
            r#"{"keys":{}}"#,
            "not json",
            r#"{"keys":[1]"#,
        ] {
            assert!(
                RemoteJwks::parse(doc.as_bytes(), &JwksPolicy::default()).is_err(),
                "{doc}"
            );
        }
        // An empty set is a set.
        let set = RemoteJwks::parse(br#"{"keys":[]}"#, &JwksPolicy::default()).unwrap();
        assert!(set.keys.is_empty() && set.skipped.is_empty());
    }
}
