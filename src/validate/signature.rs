//! Signature verification, with the verifiers kept per thread.
//!
//! `jsonwebtoken::crypto::verify` asks the provider for a new boxed verifier on every call,
//! which for HMAC rebuilds the key's inner and outer hash states (and for RSA re-reads the key),
//! and base64-decodes the signature into a new `Vec`. Its verifiers are not `Send`, so they
//! cannot live in the shared [`Validator`](super::Validator); each thread keeps the verifiers of
//! the last [`CAPACITY`] keys it used instead, with a reusable signature buffer.
//!
//! HS256, HS384 and HS512 are verified with RustCrypto's `hmac` and `sha2` whatever the
//! backend (the same code `jsonwebtoken`'s `rust_crypto` backend runs): its keyed state is a
//! few hundred bytes to copy per verification where aws-lc-rs copies its whole `HMAC_CTX`
//! twice, which made HMAC a third slower on the paths that verify (a first use, a forged
//! token). The comparison is `hmac`'s `verify_slice`, constant-time. RSA, ECDSA and EdDSA go
//! through the backend's provider. A provider installed by the application (not this crate's)
//! is used for every algorithm.
//!
//! A verifier holds key material derived from its key: a thread's cache keeps it until
//! [`CAPACITY`] other keys have been used on that thread, or the thread ends, even after the
//! validator that owned the key is dropped.

use std::cell::RefCell;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::crypto::JwtVerifier;
use jsonwebtoken::errors::Error;
use jsonwebtoken::{Algorithm, DecodingKey};
use sha2::{Sha256, Sha384, Sha512};

use crate::crypto::own_provider;
use crate::keys::KeySlot;

/// Verifiers kept per thread.
pub(crate) const CAPACITY: usize = 16;

/// A signature buffer that grew past this is not kept.
const MAX_KEPT_SIGNATURE: usize = 1024;

struct Cached {
    slot: KeySlot,
    alg: Algorithm,
    verifier: Verifier,
}

/// A key's verifier for one algorithm.
enum Verifier {
    Hs256(Hmac<Sha256>),
    Hs384(Hmac<Sha384>),
    Hs512(Hmac<Sha512>),
    Provider(Box<dyn JwtVerifier>),
}

impl Verifier {
    fn new(
        provider: &jsonwebtoken::crypto::CryptoProvider,
        alg: Algorithm,
        key: &DecodingKey,
    ) -> Result<Self, Error> {
        let hmac = matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
            && key.family() == jsonwebtoken::AlgorithmFamily::Hmac;
        if !hmac {
            return (provider.verifier_factory)(&alg, key).map(Self::Provider);
        }
        let secret = key.try_get_as_bytes()?;
        let invalid = |_| Error::from(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat);
        Ok(match alg {
            Algorithm::HS256 => Self::Hs256(Hmac::new_from_slice(secret).map_err(invalid)?),
            Algorithm::HS384 => Self::Hs384(Hmac::new_from_slice(secret).map_err(invalid)?),
            _ => Self::Hs512(Hmac::new_from_slice(secret).map_err(invalid)?),
        })
    }

    /// Whether `signature` (decoded) is the signature of `message`.
    // A `Vec`: what the provider's `Verifier<Vec<u8>>` takes.
    #[allow(clippy::ptr_arg)]
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> bool {
        fn mac<M: Mac + Clone>(keyed: &M, message: &[u8], signature: &[u8]) -> bool {
            let mut mac = keyed.clone();
            mac.update(message);
            mac.verify_slice(signature).is_ok()
        }
        match self {
            Self::Hs256(keyed) => mac(keyed, message, signature),
            Self::Hs384(keyed) => mac(keyed, message, signature),
            Self::Hs512(keyed) => mac(keyed, message, signature),
            Self::Provider(verifier) => verifier.verify(message, signature).is_ok(),
        }
    }
}

#[derive(Default)]
struct Cache {
    entries: Vec<Cached>,
    /// The entry to replace next once full (round robin).
    next: usize,
    signature: Vec<u8>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// Verifies `signature` (base64url, unpadded) over `message` with `key` and `alg`.
///
/// As `jsonwebtoken::crypto::verify`: `Ok(false)` for a signature that does not verify, `Err`
/// for one that is not base64url or when the provider cannot build a verifier for this key and
/// algorithm.
pub(crate) fn verify(
    slot: KeySlot,
    key: &DecodingKey,
    alg: Algorithm,
    message: &[u8],
    signature: &str,
) -> Result<bool, Error> {
    let Some(provider) = own_provider() else {
        // The application's provider: its limits are its own, so it sees every signature.
        return jsonwebtoken::crypto::verify(signature, message, key, alg);
    };
    if !length_fits(alg, signature.len()) {
        // A signature of this length cannot verify with any key of `alg` that the crate's
        // backends accept: no decoding, no crypto.
        return Ok(false);
    }
    let cached = CACHE.try_with(|cache| {
        // Not re-entered: nothing below calls back into this module.
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return None;
        };
        let Cache {
            entries,
            next,
            signature: buffer,
        } = &mut *cache;
        buffer.clear();
        if let Err(e) = URL_SAFE_NO_PAD.decode_vec(signature, buffer) {
            // What `jsonwebtoken::crypto::verify` answers for a signature that is not base64url.
            return Some(Err(Error::from(e)));
        }
        let index = match entries.iter().position(|e| e.slot == slot && e.alg == alg) {
            Some(i) => i,
            None => {
                let verifier = match Verifier::new(provider, alg, key) {
                    Ok(v) => v,
                    Err(e) => return Some(Err(e)),
                };
                let entry = Cached {
                    slot,
                    alg,
                    verifier,
                };
                if entries.len() < CAPACITY {
                    entries.push(entry);
                    entries.len() - 1
                } else {
                    let i = *next;
                    *next = (i + 1) % CAPACITY;
                    entries[i] = entry;
                    i
                }
            }
        };
        let ok = entries[index].verifier.verify(message, buffer);
        if buffer.capacity() > MAX_KEPT_SIGNATURE {
            *buffer = Vec::new();
        }
        Some(Ok(ok))
    });
    match cached {
        Ok(Some(result)) => result,
        // The thread is ending (its locals are gone), or a verifier's code re-entered.
        _ => jsonwebtoken::crypto::verify(signature, message, key, alg),
    }
}

/// Whether a base64url (unpadded) signature of `len` characters can be one of `alg`'s: the
/// exact length for HMAC, ECDSA and EdDSA; for RSA, that of a modulus of 1 024 to 16 384 bits
/// (the key's own size is not at hand; aws-lc-rs accepts 2 048 bits and more, the RustCrypto
/// `rsa` crate 1 024 and more).
fn length_fits(alg: Algorithm, len: usize) -> bool {
    let encoded = |bytes: usize| (bytes * 4).div_ceil(3);
    match alg {
        Algorithm::HS256 => len == encoded(32),
        Algorithm::HS384 => len == encoded(48),
        Algorithm::HS512 | Algorithm::ES256 | Algorithm::EdDSA => len == encoded(64),
        Algorithm::ES384 => len == encoded(96),
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => (encoded(128)..=encoded(2048)).contains(&len),
        // An algorithm added to `jsonwebtoken` later: its provider decides.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    fn parts(token: &str) -> (&[u8], &str) {
        let dot = token.rfind('.').unwrap();
        (&token.as_bytes()[..dot], &token[dot + 1..])
    }

    #[test]
    fn agrees_with_jsonwebtoken_and_evicts_round_robin() {
        crate::crypto::install_crypto_provider();
        let secret = b"0123456789abcdef0123456789abcdef";
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "a", "exp": 1}),
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap();
        let (message, sig) = parts(&token);
        let good = DecodingKey::from_secret(secret).unwrap();
        let bad = DecodingKey::from_secret(b"another-secret-another-secret-xx").unwrap();
        // More keys than the cache holds, twice over, so entries are replaced and rebuilt.
        let slots: Vec<KeySlot> = (0..CAPACITY * 2 + 3).map(|_| KeySlot::next()).collect();
        for _ in 0..2 {
            for (i, slot) in slots.iter().enumerate() {
                let key = if i % 2 == 0 { &good } else { &bad };
                let expected =
                    jsonwebtoken::crypto::verify(sig, message, key, Algorithm::HS256).unwrap();
                assert_eq!(
                    verify(*slot, key, Algorithm::HS256, message, sig).unwrap(),
                    expected
                );
                assert_eq!(expected, i % 2 == 0);
            }
        }
        CACHE.with(|c| assert_eq!(c.borrow().entries.len(), CAPACITY));
        // The same slot with another algorithm is another verifier.
        assert!(!verify(slots[0], &good, Algorithm::HS384, message, sig).unwrap());
        // A signature that is not base64url, or too long to keep its buffer (an RSA one of
        // 16 384 bits).
        let not_base64 = "!".repeat(sig.len());
        assert!(verify(slots[0], &good, Algorithm::HS256, message, &not_base64).is_err());
        let rsa = DecodingKey::from_rsa_pem(include_bytes!("../../tests/fixtures/rsa_public.pem"))
            .unwrap();
        let long = "A".repeat((2048 * 4usize).div_ceil(3));
        const { assert!(2048 > MAX_KEPT_SIGNATURE) };
        assert!(!verify(slots[1], &rsa, Algorithm::RS256, message, &long).unwrap());
        CACHE.with(|c| assert_eq!(c.borrow().signature.capacity(), 0));
        assert!(verify(slots[0], &good, Algorithm::HS256, message, sig).unwrap());
    }

    #[test]
    fn signature_lengths_match_what_the_algorithms_produce() {
        for (alg, bytes) in [
            (Algorithm::HS256, 32),
            (Algorithm::HS384, 48),
            (Algorithm::HS512, 64),
            (Algorithm::ES256, 64),
            (Algorithm::ES384, 96),
            (Algorithm::EdDSA, 64),
        ] {
            let len = URL_SAFE_NO_PAD.encode(vec![7u8; bytes]).len();
            assert!(length_fits(alg, len), "{alg:?}");
            assert!(
                !length_fits(alg, len - 1) && !length_fits(alg, len + 1),
                "{alg:?}"
            );
        }
        for bits in [1024usize, 2047, 2048, 3000, 3072, 4096, 16384] {
            let len = URL_SAFE_NO_PAD.encode(vec![7u8; bits.div_ceil(8)]).len();
            assert!(length_fits(Algorithm::RS256, len) && length_fits(Algorithm::PS512, len));
        }
        let small = URL_SAFE_NO_PAD.encode(vec![7u8; 127]).len();
        assert!(!length_fits(Algorithm::RS256, small));
        // A truncated signature is refused as not verifying, before any decoding.
        crate::crypto::install_crypto_provider();
        let key = DecodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
        assert!(!verify(KeySlot::next(), &key, Algorithm::HS256, b"m", "!!!").unwrap());
    }

    #[test]
    fn every_hmac_algorithm_verifies_what_jsonwebtoken_signs() {
        crate::crypto::install_crypto_provider();
        let secret = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let key = DecodingKey::from_secret(secret).unwrap();
        let slot = KeySlot::next();
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let token = jsonwebtoken::encode(
                &Header::new(alg),
                &serde_json::json!({"sub": "a", "exp": 1}),
                &EncodingKey::from_secret(secret).unwrap(),
            )
            .unwrap();
            let (message, sig) = parts(&token);
            assert!(verify(slot, &key, alg, message, sig).unwrap(), "{alg:?}");
            // One changed byte of the message, or of the signature, and it does not verify.
            let mut tampered = message.to_vec();
            tampered[0] ^= 1;
            assert!(!verify(slot, &key, alg, &tampered, sig).unwrap(), "{alg:?}");
            let mut bad_sig = sig.to_owned().into_bytes();
            bad_sig[3] = if bad_sig[3] == b'A' { b'B' } else { b'A' };
            let bad_sig = String::from_utf8(bad_sig).unwrap();
            assert!(
                !verify(slot, &key, alg, message, &bad_sig).unwrap(),
                "{alg:?}"
            );
            let other = DecodingKey::from_secret(b"another-secret-another-secret-xx").unwrap();
            assert!(!verify(KeySlot::next(), &other, alg, message, sig).unwrap());
        }
    }
}
