//! Signature verification through `jsonwebtoken`'s crypto provider, with the provider's
//! verifiers kept per thread.
//!
//! `jsonwebtoken::crypto::verify` asks the provider for a new boxed verifier on every call,
//! which for HMAC rebuilds the key's inner and outer hash states (and for RSA re-reads the key),
//! and base64-decodes the signature into a new `Vec`. Its verifiers are not `Send`, so they
//! cannot live in the shared [`Validator`](super::Validator); each thread keeps the verifiers of
//! the last [`CAPACITY`] keys it used instead, with a reusable signature buffer. The
//! verification itself is the provider's (constant-time for HMAC).
//!
//! A verifier holds key material derived from its key: a thread's cache keeps it until
//! [`CAPACITY`] other keys have been used on that thread, or the thread ends, even after the
//! validator that owned the key is dropped.

use std::cell::RefCell;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::JwtVerifier;
use jsonwebtoken::errors::Error;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::crypto::own_provider;
use crate::keys::KeySlot;

/// Verifiers kept per thread.
pub(crate) const CAPACITY: usize = 16;

/// A signature buffer that grew past this is not kept.
const MAX_KEPT_SIGNATURE: usize = 1024;

struct Cached {
    slot: KeySlot,
    alg: Algorithm,
    verifier: Box<dyn JwtVerifier>,
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
        return jsonwebtoken::crypto::verify(signature, message, key, alg);
    };
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
                let verifier = match (provider.verifier_factory)(&alg, key) {
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
        let ok = entries[index].verifier.verify(message, buffer).is_ok();
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
        // A signature that is not base64url, or too long to keep its buffer.
        assert!(verify(slots[0], &good, Algorithm::HS256, message, "!!").is_err());
        let long = "A".repeat(4 * MAX_KEPT_SIGNATURE);
        assert!(!verify(slots[0], &good, Algorithm::HS256, message, &long).unwrap());
        CACHE.with(|c| assert_eq!(c.borrow().signature.capacity(), 0));
        assert!(verify(slots[0], &good, Algorithm::HS256, message, sig).unwrap());
    }
}
