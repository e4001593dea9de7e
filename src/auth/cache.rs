//! Tokens this layer has verified, so that a client presenting the same token again is not
//! verified from scratch.
//!
//! A client sends one access token with every request until it expires. Verifying it means
//! base64, JSON and a signature every time (tens of microseconds for RS256 and ES256). The
//! layer keeps what it verified, keyed by the token's signature segment and confirmed by
//! comparing the **whole token** byte for byte, so a hit is exactly a token that passed every
//! check before. What the checks do not fix once and for all is run again on every hit: `exp`
//! and `nbf` against the clock, the typed requirements (`ValidatorBuilder::require`, which may
//! read state of their own), and the revocation hook, which runs after validation as before. An
//! entry that fails them is dropped and the token validated afresh, so the rejection is the
//! usual one.
//!
//! The whole-token comparison is an ordinary byte comparison: it only runs against the entry
//! found under the presented signature segment, in a map hashed with a per-process random seed,
//! and a hit tells a client only that its own token was accepted before.
//!
//! Bounds: at most `capacity` entries (default [`DEFAULT_CAPACITY`]); tokens longer than
//! [`MAX_CACHED_TOKEN`] bytes and tokens without `exp` are never kept; only tokens that passed
//! are ever inserted, so an attacker cannot fill the cache with forged ones. When full, expired
//! entries are swept (at most once a second) and new tokens are verified without being kept
//! until room frees up. The cache holds the tokens themselves in memory; it never logs them and
//! its `Debug` shows only counts.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::validate::{Validator, Verified};

/// Default number of verified tokens a layer keeps.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Tokens longer than this are not kept.
pub const MAX_CACHED_TOKEN: usize = 2048;

struct Entry<C> {
    token: Box<str>,
    verified: Verified<C>,
}

/// Shards of the map: a hit takes one shard's read lock, so concurrent requests rarely meet.
const SHARDS: usize = 16;

type Shard<C> = RwLock<HashMap<Box<str>, Entry<C>, foldhash::fast::RandomState>>;

pub(crate) struct VerifiedCache<C> {
    /// Keyed by the signature segment; the entry holds the whole token. Each shard's map hashes
    /// with foldhash under a random seed of its own. Keys are signatures of tokens that passed
    /// verification, which a client cannot choose.
    shards: Box<[Shard<C>]>,
    capacity: usize,
    len: AtomicUsize,
    /// Clock second of the last sweep.
    last_sweep: AtomicU64,
}

impl<C> fmt::Debug for VerifiedCache<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len.load(Ordering::Relaxed))
            .finish()
    }
}

/// The signature segment of a compact JWS (what follows the last dot).
fn signature_of(token: &str) -> Option<&str> {
    token.rsplit_once('.').map(|(_, sig)| sig)
}

impl<C> VerifiedCache<C>
where
    C: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// `None` when `capacity` is 0.
    pub(crate) fn new(capacity: usize) -> Option<Self> {
        (capacity > 0).then(|| Self {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(HashMap::with_hasher(Default::default())))
                .collect(),
            capacity,
            len: AtomicUsize::new(0),
            last_sweep: AtomicU64::new(0),
        })
    }

    /// The shard of a signature: by its first character. A signature is the base64url of an
    /// HMAC or a public-key signature, so its characters are spread evenly and unpredictable
    /// without the key, and only tokens that verified are ever stored; picking the shard this
    /// way saves hashing the signature twice on every request. A client holding many valid
    /// tokens of its own could at worst crowd one shard's lock.
    #[inline]
    fn shard(&self, sig: &str) -> &Shard<C> {
        let first = sig.as_bytes().first().copied().unwrap_or(0);
        &self.shards[usize::from(first) % SHARDS]
    }

    /// Validates `token` with `validator`, through the cache.
    pub(crate) fn validate(
        &self,
        validator: &Validator<C>,
        token: &str,
    ) -> Result<Verified<C>, (crate::error::AuthError, Option<std::sync::Arc<str>>)> {
        let Some(sig) = signature_of(token) else {
            return validator.validate_with_subject(token);
        };
        let shard = self.shard(sig);
        let hit = {
            let map = shard.read().unwrap_or_else(PoisonError::into_inner);
            map.get(sig)
                .filter(|entry| *entry.token == *token)
                .map(|entry| entry.verified.clone())
        };
        if let Some(verified) = hit {
            if validator.still_accepts(&verified) {
                return Ok(verified);
            }
            // Out of its time window, or a requirement now says no: forget it, and let the
            // validator give the usual answer.
            let removed = shard
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(sig);
            if removed.is_some() {
                // Saturating: a sweep may have counted this removal already.
                let _ = self
                    .len
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.saturating_sub(1))
                    });
            }
        }
        let verified = validator.validate_with_subject(token)?;
        self.insert(validator, sig, token, &verified);
        Ok(verified)
    }

    fn insert(&self, validator: &Validator<C>, sig: &str, token: &str, verified: &Verified<C>) {
        if token.len() > MAX_CACHED_TOKEN || verified.context.expires_at.is_none() {
            return;
        }
        if self.len.load(Ordering::Relaxed) >= self.capacity {
            self.sweep(validator);
            if self.len.load(Ordering::Relaxed) >= self.capacity {
                return;
            }
        }
        let entry = Entry {
            token: token.into(),
            verified: verified.clone(),
        };
        let previous = self
            .shard(sig)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sig.into(), entry);
        if previous.is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops expired entries, at most once per clock second.
    fn sweep(&self, validator: &Validator<C>) {
        let now = validator.clock().now().as_secs();
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now <= last
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let mut len = 0;
        for shard in self.shards.iter() {
            let mut map = shard.write().unwrap_or_else(PoisonError::into_inner);
            map.retain(|_, e| validator.still_current(&e.verified.context));
            len += map.len();
        }
        self.len.store(len, Ordering::Relaxed);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde::Deserialize;

    use super::*;
    use crate::clock::FakeClock;
    use crate::error::ErrorCode;
    use crate::keys::Key;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[derive(Debug, Clone, Deserialize)]
    struct Claims {
        sub: String,
    }

    fn token(claims: serde_json::Value) -> String {
        crate::crypto::install_crypto_provider();
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap()
    }

    fn validator(clock: &FakeClock, require_exp: bool) -> Validator<Claims> {
        let mut b = Validator::builder()
            .key(Key::hmac(SECRET).unwrap())
            .leeway(Duration::from_secs(10))
            .clock(clock.clone());
        if !require_exp {
            b = b.allow_missing_exp();
        }
        b.build().unwrap()
    }

    #[test]
    fn a_hit_is_the_same_token_and_time_is_checked_again() {
        let clock = FakeClock::at_unix_secs(1_000);
        let v = validator(&clock, true);
        let cache = VerifiedCache::new(8).unwrap();
        let good = token(serde_json::json!({"sub": "alice", "exp": 1_100, "nbf": 990}));
        assert_eq!(cache.validate(&v, &good).unwrap().claims.sub, "alice");
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.validate(&v, &good).unwrap().claims.sub, "alice");

        // Same signature segment, another payload: not the cached token, so verified (and
        // refused) in full.
        let (_, sig) = good.rsplit_once('.').unwrap();
        let other = token(serde_json::json!({"sub": "mallory", "exp": 1_100}));
        let (rest, _) = other.rsplit_once('.').unwrap();
        let forged = format!("{rest}.{sig}");
        let err = cache.validate(&v, &forged).unwrap_err().0;
        assert_eq!(err.code(), ErrorCode::InvalidToken);
        assert_eq!(cache.len(), 1);

        // Past exp + leeway, the entry goes and the usual rejection comes back.
        clock.advance(Duration::from_secs(109));
        assert!(cache.validate(&v, &good).is_ok());
        clock.advance(Duration::from_secs(1));
        let (err, subject) = cache.validate(&v, &good).unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenExpired);
        assert_eq!(subject.as_deref(), Some("alice"));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn bounded_and_never_keeps_failures_long_tokens_or_tokens_without_exp() {
        let clock = FakeClock::at_unix_secs(1_000);
        let v = validator(&clock, false);
        let cache = VerifiedCache::new(2).unwrap();
        assert!(
            cache
                .validate(&v, &token(serde_json::json!({"sub": "a"})))
                .is_ok()
        );
        let long = "x".repeat(MAX_CACHED_TOKEN);
        let long = token(serde_json::json!({"sub": "a", "exp": 2_000, "pad": long}));
        assert!(cache.validate(&v, &long).is_ok());
        assert!(cache.validate(&v, "a.b.c").is_err());
        assert_eq!(cache.len(), 0);

        let tokens: Vec<String> = (0..4)
            .map(|i| {
                let exp = if i < 2 { 1_050 + i } else { 2_000 };
                token(serde_json::json!({"sub": format!("u{i}"), "exp": exp}))
            })
            .collect();
        for t in &tokens {
            assert!(cache.validate(&v, t).is_ok());
        }
        assert_eq!(cache.len(), 2, "full: later tokens are verified, not kept");
        // Once the first two expire, a sweep makes room.
        clock.advance(Duration::from_secs(70));
        assert!(cache.validate(&v, &tokens[3]).is_ok());
        assert_eq!(cache.len(), 1);
        assert!(VerifiedCache::<Claims>::new(0).is_none());
        assert!(!format!("{cache:?}").contains(&tokens[3][..20]));
    }
}
