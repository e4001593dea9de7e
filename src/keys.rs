//! Verification keys, each bound to its algorithm family and optionally to a key id (`kid`).
//!
//! A [`Key`] can never be used outside its family: an RSA, EC or Ed25519 public key is never
//! tried as an HMAC secret, which closes the classic algorithm-confusion attack. HMAC secrets
//! shorter than 32 bytes (256 bits, RFC 7518 §3.2) are refused.
//!
//! ```
//! use tower_jwt_guard::keys::{Key, keys_from_jwks};
//!
//! let current = Key::hmac(b"0123456789abcdef0123456789abcdef")?.with_kid("2026-11");
//! let jwks = r#"{"keys":[{"kty":"oct","kid":"old","alg":"HS256",
//!     "k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0"}]}"#;
//! let mut keys = keys_from_jwks(jwks)?;
//! keys.push(current);
//! assert_eq!(keys.len(), 2);
//! # Ok::<(), tower_jwt_guard::ConfigError>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::crypto::install_crypto_provider;
use crate::error::ConfigError;

/// The minimum HMAC secret length in bytes.
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// A verification key. `Debug` never shows key material.
#[derive(Clone)]
pub struct Key {
    pub(crate) kid: Option<Arc<str>>,
    pub(crate) family: AlgorithmFamily,
    /// Restriction to one algorithm (from a JWK's `alg`, or [`Key::with_algorithm`]).
    pub(crate) algorithm: Option<Algorithm>,
    pub(crate) decoding: DecodingKey,
    /// Names this key material for the validator's per-thread verifier caches (clones share
    /// it: same material, same verifiers).
    pub(crate) slot: KeySlot,
}

/// Identifies one key's material for the per-thread verifier caches; never reused in a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeySlot(u64);

impl KeySlot {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

fn config_err(what: &str) -> impl FnOnce(jsonwebtoken::errors::Error) -> ConfigError + '_ {
    // The jsonwebtoken error describes the parse failure, never the key bytes.
    move |e| ConfigError::new(format!("{what}: {e}"))
}

impl Key {
    fn new(family: AlgorithmFamily, decoding: DecodingKey) -> Self {
        install_crypto_provider();
        Self {
            kid: None,
            family,
            algorithm: None,
            decoding,
            slot: KeySlot::next(),
        }
    }

    /// An HMAC secret (HS256, HS384, HS512).
    ///
    /// # Errors
    /// When the secret is shorter than [`MIN_HMAC_SECRET_LEN`] bytes.
    pub fn hmac(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let secret = secret.as_ref();
        if secret.len() < MIN_HMAC_SECRET_LEN {
            return Err(ConfigError::new(format!(
                "an HMAC secret must be at least {MIN_HMAC_SECRET_LEN} bytes, got {}",
                secret.len()
            )));
        }
        let key = DecodingKey::from_secret(secret)
            .map_err(|_| ConfigError::new("an HMAC secret must not be empty"))?;
        Ok(Self::new(AlgorithmFamily::Hmac, key))
    }

    /// An HMAC secret of any non-empty length, **below the RFC 7518 minimum** when shorter than
    /// [`MIN_HMAC_SECRET_LEN`]. Brute-forcing a short secret from one captured token is cheap:
    /// use this only to interoperate with an issuer you cannot change, and rotate.
    ///
    /// # Errors
    /// When the secret is empty.
    pub fn hmac_insecure_short(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let secret = secret.as_ref();
        if secret.is_empty() {
            return Err(ConfigError::new("an HMAC secret must not be empty"));
        }
        let key = DecodingKey::from_secret(secret)
            .map_err(|_| ConfigError::new("an HMAC secret must not be empty"))?;
        Ok(Self::new(AlgorithmFamily::Hmac, key))
    }

    /// An RSA public key in PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`), for RS* and PS*.
    ///
    /// # Errors
    /// When the PEM does not hold an RSA public key.
    pub fn rsa_pem(pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let key = DecodingKey::from_rsa_pem(pem.as_ref()).map_err(config_err("RSA PEM"))?;
        Ok(Self::new(AlgorithmFamily::Rsa, key))
    }

    /// An RSA public key from its base64url modulus and exponent.
    ///
    /// # Errors
    /// When either is not base64url.
    pub fn rsa_components(n: &str, e: &str) -> Result<Self, ConfigError> {
        let key = DecodingKey::from_rsa_components(n, e).map_err(config_err("RSA components"))?;
        Ok(Self::new(AlgorithmFamily::Rsa, key))
    }

    /// An EC public key (P-256 or P-384) in PEM, for ES256 / ES384.
    ///
    /// # Errors
    /// When the PEM does not hold an EC public key.
    pub fn ec_pem(pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let key = DecodingKey::from_ec_pem(pem.as_ref()).map_err(config_err("EC PEM"))?;
        Self::new(AlgorithmFamily::Ec, key).bind_ec_curve()
    }

    /// An Ed25519 public key in PEM, for EdDSA.
    ///
    /// # Errors
    /// When the PEM does not hold an Ed25519 public key.
    pub fn ed_pem(pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let key = DecodingKey::from_ed_pem(pem.as_ref()).map_err(config_err("Ed25519 PEM"))?;
        Ok(Self::new(AlgorithmFamily::Ed, key))
    }

    /// A key from a parsed JWK; its `kid` and `alg` are kept.
    ///
    /// # Errors
    /// When the JWK is of an unsupported type, is an encryption key (`use: enc`), names an
    /// algorithm of another family, or is an HMAC key shorter than [`MIN_HMAC_SECRET_LEN`].
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, ConfigError> {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return Err(ConfigError::new("JWK is an encryption key (use: enc)"));
        }
        let decoding = DecodingKey::from_jwk(jwk).map_err(config_err("JWK"))?;
        let family = decoding.family();
        if family == AlgorithmFamily::Hmac
            && decoding.try_get_as_bytes().map_or(0, <[u8]>::len) < MIN_HMAC_SECRET_LEN
        {
            return Err(ConfigError::new(format!(
                "an HMAC JWK must hold at least {MIN_HMAC_SECRET_LEN} bytes"
            )));
        }
        let mut key = Self::new(family, decoding);
        if family == AlgorithmFamily::Ec {
            key = key.bind_ec_curve()?;
        }
        key.kid = jwk.common.key_id.as_deref().map(Arc::from);
        if let Some(alg) = jwk.common.key_algorithm {
            let alg = Algorithm::try_from(alg).map_err(|_| {
                ConfigError::new(format!("JWK alg {alg} is not a signature algorithm"))
            })?;
            key = key.with_algorithm(alg)?;
        }
        Ok(key)
    }

    /// A key from one JWK as JSON.
    ///
    /// # Errors
    /// As [`Key::from_jwk`], or when the JSON is not a JWK.
    pub fn from_jwk_json(json: &str) -> Result<Self, ConfigError> {
        let jwk: Jwk =
            serde_json::from_str(json).map_err(|e| ConfigError::new(format!("JWK JSON: {e}")))?;
        Self::from_jwk(&jwk)
    }

    /// Binds an EC key to the one algorithm of its curve, so that a token cannot ask for the
    /// other one (an uncompressed P-256 point is 65 bytes, a P-384 point 97).
    fn bind_ec_curve(self) -> Result<Self, ConfigError> {
        let len = self.decoding.try_get_as_bytes().map_or(0, <[u8]>::len);
        match len {
            65 => self.with_algorithm(Algorithm::ES256),
            97 => self.with_algorithm(Algorithm::ES384),
            _ => Err(ConfigError::new(
                "EC key: only P-256 and P-384 public keys are supported",
            )),
        }
    }

    /// Sets the key id matched against a token's `kid` header.
    pub fn with_kid(mut self, kid: impl AsRef<str>) -> Self {
        self.kid = Some(Arc::from(kid.as_ref()));
        self
    }

    /// Restricts the key to one algorithm.
    ///
    /// # Errors
    /// When `alg` is not of the key's family, or the key is already bound to another algorithm
    /// (an EC key is bound to the algorithm of its curve).
    pub fn with_algorithm(mut self, alg: Algorithm) -> Result<Self, ConfigError> {
        if alg.family() != self.family {
            return Err(ConfigError::new(format!(
                "algorithm {alg:?} cannot be used with a {:?} key",
                self.family
            )));
        }
        if let Some(bound) = self.algorithm
            && bound != alg
        {
            return Err(ConfigError::new(format!(
                "this key is bound to {bound:?} and cannot be used with {alg:?}"
            )));
        }
        self.algorithm = Some(alg);
        Ok(self)
    }

    /// Whether `other` is this key: same family, bound algorithm and material (the `kid`
    /// aside).
    #[cfg(feature = "remote-keys")]
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        use jsonwebtoken::DecodingKeyKind as K;
        let same_material = match (self.decoding.kind(), other.decoding.kind()) {
            // Constant time: an `oct` key's material is a secret.
            (K::SecretOrDer(a), K::SecretOrDer(b)) => {
                subtle::ConstantTimeEq::ct_eq(a.as_slice(), b.as_slice()).into()
            }
            (K::RsaModulusExponent { n, e }, K::RsaModulusExponent { n: n2, e: e2 }) => {
                n == n2 && e == e2
            }
            _ => false,
        };
        self.family == other.family && self.algorithm == other.algorithm && same_material
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The key's algorithm family.
    pub fn family(&self) -> AlgorithmFamily {
        self.family
    }

    /// The single algorithm this key is restricted to, if any.
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.algorithm
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("algorithm", &self.algorithm)
            .field("material", &"[redacted]")
            .finish()
    }
}

/// Every signature key of a JWKS document (`{"keys": [...]}`).
///
/// Keys marked `use: enc` are skipped; any other key that cannot be used is an error, so that a
/// typo in a key set is found at start-up rather than as rejected tokens.
///
/// # Errors
/// When the JSON is not a JWKS, a key is unusable (see [`Key::from_jwk`]), or no key remains.
pub fn keys_from_jwks(json: &str) -> Result<Vec<Key>, ConfigError> {
    let set: JwkSet =
        serde_json::from_str(json).map_err(|e| ConfigError::new(format!("JWKS JSON: {e}")))?;
    let keys = set
        .keys
        .iter()
        .filter(|jwk| !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)))
        .map(Key::from_jwk)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(ConfigError::new("JWKS holds no signature key"));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hmac_secret_is_refused() {
        assert!(Key::hmac(b"").is_err());
        assert!(Key::hmac([7u8; 31]).is_err());
        assert!(Key::hmac([7u8; 32]).is_ok());
        assert!(Key::hmac_insecure_short(b"").is_err());
        assert!(Key::hmac_insecure_short(b"short").is_ok());
    }

    #[test]
    fn debug_never_shows_material() {
        let k = Key::hmac(b"super-secret-super-secret-super-secret").unwrap();
        let dbg = format!("{k:?}");
        assert!(!dbg.contains("super"), "{dbg}");
    }

    #[test]
    fn algorithm_must_match_family() {
        let k = Key::hmac([1u8; 32]).unwrap();
        assert!(k.clone().with_algorithm(Algorithm::RS256).is_err());
        assert!(k.with_algorithm(Algorithm::HS512).is_ok());
    }

    #[test]
    fn jwks_skips_encryption_keys_and_keeps_kid() {
        let json = r#"{"keys":[
            {"kty":"oct","use":"enc","k":"AAAA"},
            {"kty":"oct","kid":"a","alg":"HS384","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0"}
        ]}"#;
        let keys = keys_from_jwks(json).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid(), Some("a"));
        assert_eq!(keys[0].algorithm(), Some(Algorithm::HS384));
    }

    #[test]
    fn jwks_errors() {
        assert!(keys_from_jwks("not json").is_err());
        assert!(keys_from_jwks(r#"{"keys":[]}"#).is_err());
        // An HMAC JWK that is too short.
        assert!(keys_from_jwks(r#"{"keys":[{"kty":"oct","k":"AAAA"}]}"#).is_err());
    }
}
