//! Several issuers in one validator: each token's `iss` picks the keys, audiences, algorithms
//! and token types it is checked with ([`Issuer`]), so that a token naming one issuer is never
//! verified with another's keys.

use std::borrow::Cow;
use std::fmt;

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::registered::PayloadError;
use crate::keys::Key;
#[cfg(feature = "remote-keys")]
use crate::remote_keys::RemoteKeySet;

/// The keys and claim rules for the tokens of one route: the validator's own configuration
/// (tokens without `iss`, or naming none of the [`Issuer`]s), or one issuer's.
pub(super) struct Route {
    /// Keys given in the configuration.
    pub(super) keys: Box<[Key]>,
    /// A key set fetched from the issuer, read after `keys`.
    #[cfg(feature = "remote-keys")]
    pub(super) remote: Option<RemoteKeySet>,
    /// The algorithm allow-list; `None`: each key's family (or its bound algorithm).
    pub(super) algorithms: Option<Box<[Algorithm]>>,
    /// Accepted `iss` values (an issuer's route: its own, exactly); `iss` is then required.
    pub(super) issuers: Option<Box<[Box<str>]>>,
    pub(super) audiences: Option<Box<[Box<str>]>>,
    /// `aud` is not looked at ([`Issuer::accept_any_audience`]).
    pub(super) any_audience: bool,
    /// The accepted `typ` header values, when the type is checked.
    pub(super) types: Option<Box<[Box<str>]>>,
}

impl Route {
    /// Whether this route has a remote key set.
    pub(super) fn has_remote(&self) -> bool {
        #[cfg(feature = "remote-keys")]
        return self.remote.is_some();
        #[cfg(not(feature = "remote-keys"))]
        false
    }

    /// Whether this route's remote set's last fetch failed.
    pub(super) fn remote_failing(&self) -> bool {
        #[cfg(feature = "remote-keys")]
        return self.remote.as_ref().is_some_and(RemoteKeySet::failing);
        #[cfg(not(feature = "remote-keys"))]
        false
    }

    /// Whether `key` may verify a token signed with `alg` on this route: the key's family,
    /// the algorithm it is bound to, and the allow-list.
    #[inline]
    pub(super) fn accepts(&self, key: &Key, alg: Algorithm) -> bool {
        alg.family() == key.family
            && key.algorithm.is_none_or(|only| only == alg)
            && self.algorithms.as_deref().is_none_or(|l| l.contains(&alg))
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Route");
        d.field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("keys", &self.keys);
        #[cfg(feature = "remote-keys")]
        d.field("remote", &self.remote);
        d.finish()
    }
}

/// One more issuer a [`Validator`](super::Validator) accepts tokens from, with keys, audiences,
/// algorithms and token types of its own; added with
/// [`ValidatorBuilder::issuer`](super::ValidatorBuilder::issuer).
///
/// A token whose `iss` is exactly this issuer is checked with this configuration only (its
/// signature with these keys, its `aud` against these audiences); any other token with the
/// validator's own. The leeway, `exp`, required claims, typed requirements and revocation are
/// the validator's, for every issuer.
///
/// ```
/// use tower_jwt_guard::{Algorithm, keys::Key, validate::{Issuer, Validator}};
/// # let partner_pem = include_bytes!("../../tests/fixtures/ec_public.pem");
///
/// let validator = Validator::<serde_json::Value>::builder()
///     // The service's own tokens: HS256, with no `iss` or any `iss` but the partner's.
///     .key(Key::hmac(b"0123456789abcdef0123456789abcdef")?)
///     // A partner's tokens: ES256 with its key, for this audience only.
///     .issuer(
///         Issuer::new("https://partner.example")
///             .key(Key::ec_pem(partner_pem)?)
///             .algorithms([Algorithm::ES256])
///             .audiences(["urn:orders"]),
///     )
///     .build()?;
/// # let _ = validator;
/// # Ok::<(), tower_jwt_guard::ConfigError>(())
/// ```
pub struct Issuer {
    pub(super) name: String,
    pub(super) keys: Vec<Key>,
    #[cfg(feature = "remote-keys")]
    pub(super) remote: Option<RemoteKeySet>,
    pub(super) algorithms: Option<Vec<Algorithm>>,
    pub(super) audiences: Option<Vec<String>>,
    pub(super) any_audience: bool,
    pub(super) types: Option<Vec<Box<str>>>,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("name", &self.name)
            .field("keys", &self.keys)
            .field("algorithms", &self.algorithms)
            .field("audiences", &self.audiences)
            .field("any_audience", &self.any_audience)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// The issuer whose tokens carry `iss` equal to `name` (compared exactly).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            keys: Vec::new(),
            #[cfg(feature = "remote-keys")]
            remote: None,
            algorithms: None,
            audiences: None,
            any_audience: false,
            types: None,
        }
    }

    /// Adds a key of this issuer.
    pub fn key(mut self, key: Key) -> Self {
        self.keys.push(key);
        self
    }

    /// Adds keys of this issuer.
    pub fn keys(mut self, keys: impl IntoIterator<Item = Key>) -> Self {
        self.keys.extend(keys);
        self
    }

    /// This issuer's keys, fetched and kept fresh (feature `remote-keys`): e.g.
    /// [`RemoteKeySet::discover`] with this issuer's URL. Read after the keys given with
    /// [`key`](Self::key). Start its refresher
    /// ([`RemoteKeySet::spawn_refresher`]) so that keys are there before the first token.
    #[cfg(feature = "remote-keys")]
    pub fn remote_keys(mut self, set: RemoteKeySet) -> Self {
        self.remote = Some(set);
        self
    }

    /// This issuer's algorithm allow-list (each key's family without it).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// The audiences this issuer's tokens must name one of; `aud` is then required. Without
    /// it, a token of this issuer carrying an `aud` is refused (RFC 7519 §4.1.3).
    pub fn audiences<I: IntoIterator<Item = S>, S: Into<String>>(mut self, audiences: I) -> Self {
        self.audiences = Some(audiences.into_iter().map(Into::into).collect());
        self
    }

    /// Does not look at this issuer's `aud` at all: any token the issuer signed is accepted,
    /// whichever service it was meant for. An identity provider issues tokens for many
    /// services; without an audience check, a token one of them receives can be replayed to
    /// you. Use it only where the issuer serves you alone (the demo does when
    /// `OIDC_AUDIENCE` is unset, and says so in a warning). Ignored when
    /// [`audiences`](Self::audiences) is set.
    pub fn accept_any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// The `typ` header values this issuer's tokens must carry (see
    /// [`ValidatorBuilder::token_types`](super::ValidatorBuilder::token_types)); not checked
    /// without it.
    pub fn token_types<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, types: I) -> Self {
        self.types
            .get_or_insert_with(Vec::new)
            .extend(types.into_iter().map(|t| Box::from(t.as_ref())));
        self
    }
}

/// The `iss` of a decoded payload, read before the signature is checked, only to pick the
/// route (the claim itself is checked again against the route once the signature is good).
///
/// # Errors
/// Not a JSON object, a non-string `iss`, or two of them.
pub(super) fn peek_issuer(payload: &[u8]) -> Result<Option<Cow<'_, str>>, PayloadError> {
    #[derive(Deserialize)]
    struct Iss<'a> {
        #[serde(borrow, default)]
        iss: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<Iss<'_>>(payload)
        .map(|p| p.iss)
        .map_err(|_| PayloadError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_is_read_strictly() {
        assert_eq!(
            peek_issuer(br#"{"sub":"a","iss":"https://idp"}"#).unwrap(),
            Some(Cow::Borrowed("https://idp"))
        );
        assert_eq!(peek_issuer(br#"{"sub":"a"}"#).unwrap(), None);
        // Escapes are decoded, so `\/` cannot dodge the route.
        assert_eq!(
            peek_issuer(br#"{"iss":"https:\/\/idp"}"#)
                .unwrap()
                .as_deref(),
            Some("https://idp")
        );
        assert!(peek_issuer(br#"{"iss":"a","iss":"b"}"#).is_err());
        assert!(peek_issuer(br#"{"iss":["a"]}"#).is_err());
        assert!(peek_issuer(br#"{"iss":null}"#).unwrap().is_none());
        assert!(peek_issuer(b"[1]").is_err());
        assert!(peek_issuer(b"{").is_err());
    }
}
