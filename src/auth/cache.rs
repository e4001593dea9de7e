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
//! Bounds: `capacity` entries (default [`DEFAULT_CAPACITY`]), rounded up to a multiple of the
//! 16 shards; tokens longer than [`MAX_CACHED_TOKEN`] bytes and tokens without `exp` are never
//! kept; only tokens that passed are ever inserted, so an attacker cannot fill the cache with
//! forged ones. A full shard makes room for a new token by evicting one entry: an expired one
//! among the first few it looks at, else whichever comes first in the map's (randomly seeded)
//! order. So a client holding many valid tokens of its own can churn the cache but not pin it:
//! new tokens keep being cached, and no insert costs more than a handful of entries looked at,
//! however large the cache. The cache holds the tokens themselves in memory; it never logs them
//! and its `Debug` shows only counts.

use std::collections::HashMap;
use std::fmt;
use std::sync::{PoisonError, RwLock};

use crate::validate::{Validator, Verified};

/// Default number of verified tokens a layer keeps.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Tokens longer than this are not kept.
pub const MAX_CACHED_TOKEN: usize = 2048;

struct Entry<C> {
    token: Box<str>,
    verified: Verified<C>,
    /// The validator's [key generation](Validator::key_generation) before the token was
    /// verified: once a remote set's key is removed or replaced, or its keys go stale, the
    /// token is verified again (a key removed by the issuer stops verifying cached tokens too).
    generation: u64,
}

/// Shards of the map: a hit takes one shard's read lock, so concurrent requests rarely meet.
const SHARDS: usize = 16;

type Shard<C> = RwLock<HashMap<Box<str>, Entry<C>, foldhash::fast::RandomState>>;

pub(crate) struct VerifiedCache<C> {
    /// Keyed by the signature segment; the entry holds the whole token. Each shard's map hashes
    /// with foldhash under a random seed of its own. Keys are signatures of tokens that passed
    /// verification, which a client cannot choose.
    shards: Box<[Shard<C>]>,
    /// Entries per shard at most.
    shard_capacity: usize,
}

/// How many entries a full shard looks at for an expired one before it evicts the first.
const EVICTION_SCAN: usize = 8;

impl<C> fmt::Debug for VerifiedCache<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("capacity", &(self.shard_capacity * SHARDS))
            .field("len", &self.len())
            .finish()
    }
}

impl<C> VerifiedCache<C> {
    /// Entries held (takes each shard's read lock in turn: for `Debug` and tests).
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
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
            shard_capacity: capacity.div_ceil(SHARDS),
        })
    }

    /// The shard of a signature: the low 4 bits of the 6 its middle character encodes. A
    /// signature is the base64url of an HMAC or a public-key signature, so its middle
    /// characters are spread evenly (its first character is not: an RSA signature is below the
    /// modulus) and unpredictable without the key, and only tokens that verified are ever
    /// stored; picking the shard this way saves hashing the signature twice on every request.
    #[inline]
    fn shard(&self, sig: &str) -> &Shard<C> {
        let middle = sig.as_bytes().get(sig.len() / 2).copied().unwrap_or(0);
        &self.shards[usize::from(base64url_value(middle)) % SHARDS]
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
        let generation = validator.key_generation();
        let hit = {
            let map = shard.read().unwrap_or_else(PoisonError::into_inner);
            map.get(sig)
                .filter(|entry| *entry.token == *token && entry.generation == generation)
                .map(|entry| entry.verified.clone())
        };
        if let Some(verified) = hit {
            match validator.recheck(&verified) {
                Ok(()) => return Ok(verified),
                // Revoked: refused at the cost of a lookup, the entry kept (it stays revoked
                // until it expires, and is evicted as any other).
                Err(Some(refusal)) => return Err((refusal, verified.context.subject.clone())),
                Err(None) => {}
            }
            // Out of its time window, or a requirement now says no: forget it, and let the
            // validator give the usual answer.
            shard
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(sig);
        }
        let verified = validator.validate_with_subject(token)?;
        self.insert(validator, sig, token, &verified, generation);
        Ok(verified)
    }

    fn insert(
        &self,
        validator: &Validator<C>,
        sig: &str,
        token: &str,
        verified: &Verified<C>,
        generation: u64,
    ) {
        if token.len() > MAX_CACHED_TOKEN || verified.context.expires_at.is_none() {
            return;
        }
        let entry = Entry {
            token: token.into(),
            verified: verified.clone(),
            generation,
        };
        let mut map = self
            .shard(sig)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.shard_capacity && !map.contains_key(sig) {
            // Full: an expired entry among the first few, else the first. The map's order
            // follows its random seed, so which live entry goes is not the client's choice.
            let victim = map
                .iter()
                .take(EVICTION_SCAN)
                .find(|(_, e)| !validator.still_current(&e.verified.context))
                .or_else(|| map.iter().next())
                .map(|(key, _)| key.clone());
            if let Some(victim) = victim {
                map.remove(&victim);
            }
        }
        map.insert(sig.into(), entry);
    }
}

/// The 6-bit value of a base64url character (0 for any other byte).
#[inline]
const fn base64url_value(c: u8) -> u8 {
    match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => 0,
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
    fn signatures_spread_over_every_shard() {
        let cache = VerifiedCache::<Claims>::new(16).unwrap();
        let mut used = [0usize; SHARDS];
        for i in 0..1_600 {
            let t = token(serde_json::json!({"sub": format!("u{i}"), "exp": 2_000}));
            let shard = cache.shard(signature_of(&t).unwrap()) as *const Shard<Claims>;
            let index = cache
                .shards
                .iter()
                .position(|s| std::ptr::eq(s, shard))
                .unwrap();
            used[index] += 1;
        }
        // 100 expected per shard; an even spread stays well within 50..150.
        assert!(used.iter().all(|&n| (50..150).contains(&n)), "{used:?}");
    }

    #[test]
    fn a_full_shard_evicts_an_expired_entry_first() {
        let clock = FakeClock::at_unix_secs(1_000);
        let v = validator(&clock, true);
        // Two entries per shard.
        let cache = VerifiedCache::new(SHARDS * 2).unwrap();
        let shard_of = |t: &str| cache.shard(signature_of(t).unwrap()) as *const Shard<Claims>;
        // Three tokens of one shard: the first short-lived, the other two not.
        let first = token(serde_json::json!({"sub": "short", "exp": 1_020}));
        let target = shard_of(&first);
        let same: Vec<String> = (0..)
            .map(|i| token(serde_json::json!({"sub": format!("u{i}"), "exp": 5_000})))
            .filter(|t| shard_of(t) == target)
            .take(2)
            .collect();
        assert!(cache.validate(&v, &first).is_ok());
        assert!(cache.validate(&v, &same[0]).is_ok());
        // `first` is now past exp + leeway: the third token evicts it, not the live one.
        clock.advance(Duration::from_secs(31));
        assert!(cache.validate(&v, &same[1]).is_ok());
        let map = cache.shard(signature_of(&first).unwrap()).read().unwrap();
        assert_eq!(map.len(), 2);
        assert!(!map.contains_key(signature_of(&first).unwrap()));
        assert!(map.contains_key(signature_of(&same[0]).unwrap()));
        assert!(map.contains_key(signature_of(&same[1]).unwrap()));
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

        // Full shards evict: the cache stays within its bound (2 rounds up to one entry per
        // shard) and every new token is still kept, so old ones cannot pin it.
        let tokens: Vec<String> = (0..200)
            .map(|i| token(serde_json::json!({"sub": format!("u{i}"), "exp": 2_000 + i})))
            .collect();
        for t in &tokens {
            assert!(cache.validate(&v, t).is_ok());
            let sig = signature_of(t).unwrap();
            let kept = cache
                .shard(sig)
                .read()
                .unwrap()
                .get(sig)
                .is_some_and(|e| *e.token == **t);
            assert!(kept, "the newest token is kept");
            assert!(cache.len() <= SHARDS);
        }
        assert_eq!(cache.len(), SHARDS, "every shard is in use");
        assert!(VerifiedCache::<Claims>::new(0).is_none());
        assert!(!format!("{cache:?}").contains(&tokens[3][..20]));
    }
}
