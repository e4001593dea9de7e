//! Building a [`Validator`]: the configuration is checked once, at start-up.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::de::DeserializeOwned;

use super::issuers::{Issuer, Route};
use super::rules::ClaimRules;
use super::validator::{Inner, Requirement};
use super::{DEFAULT_LEEWAY, Revocation, Validator};
use crate::clock::{Clock, SystemClock};
use crate::crypto::install_crypto_provider;
use crate::error::ConfigError;
use crate::keys::Key;
#[cfg(feature = "remote-keys")]
use crate::remote_keys::RemoteKeySet;
use crate::revocation::{RevocationList, check_coverage};

/// At most this many required claim names.
const MAX_REQUIRED_CLAIMS: usize = 64;

/// Configuration of a [`Validator`]; see the [module docs](crate::validate).
pub struct ValidatorBuilder<C> {
    keys: Vec<Key>,
    algorithms: Option<Vec<Algorithm>>,
    leeway: Duration,
    require_exp: bool,
    issuers: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
    subject: Option<String>,
    required: Vec<Box<str>>,
    requirements: Vec<Requirement<C>>,
    clock: Arc<dyn Clock>,
    revocation: Option<Arc<dyn Revocation>>,
    revocations: Option<RevocationList>,
    _claims: PhantomData<fn() -> C>,
    max_lifetime: Option<Duration>,
    types: Option<Vec<Box<str>>>,
    /// More issuers, each picked by `iss`.
    extra: Vec<Issuer>,
    #[cfg(feature = "remote-keys")]
    remote: Option<RemoteKeySet>,
}

impl<C> fmt::Debug for ValidatorBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatorBuilder")
            .field("keys", &self.keys)
            .field("algorithms", &self.algorithms)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl<C> Validator<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    /// Starts a configuration.
    pub fn builder() -> ValidatorBuilder<C> {
        ValidatorBuilder::new()
    }
}

impl<C> ValidatorBuilder<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    pub(super) fn new() -> Self {
        Self {
            keys: Vec::new(),
            algorithms: None,
            leeway: DEFAULT_LEEWAY,
            require_exp: true,
            issuers: None,
            audiences: None,
            subject: None,
            required: Vec::new(),
            requirements: Vec::new(),
            clock: Arc::new(SystemClock),
            revocation: None,
            revocations: None,
            max_lifetime: None,
            types: None,
            extra: Vec::new(),
            #[cfg(feature = "remote-keys")]
            remote: None,
            _claims: PhantomData,
        }
    }

    /// Accepts only tokens whose `typ` header is one of `types` (`INVALID_TOKEN` otherwise,
    /// a missing `typ` included): explicit typing, RFC 8725 §3.11, so that a token minted for
    /// another purpose (an ID token, a refresh token, a logout token) signed by the same key is
    /// not taken as an access token. `at+jwt` is the access-token type of RFC 9068; compared
    /// without case and without an `application/` prefix. Off by default (many issuers send
    /// `JWT` or nothing). Several calls add to the list.
    pub fn token_types<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, types: I) -> Self {
        self.types
            .get_or_insert_with(Vec::new)
            .extend(types.into_iter().map(|t| Box::from(t.as_ref())));
        self
    }

    /// Refuses tokens that live longer than `max` (`INVALID_TOKEN`): whose `exp` is more than
    /// `max` (plus the leeway) from now, or more than `max` after their `iat`. Off by default;
    /// without it a token with `exp` far in the future (even `u64::MAX`) is accepted until
    /// then, so set it to what your issuer actually issues (RFC 8725 §3.10 leaves lifetimes to
    /// the application).
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = Some(max);
        self
    }

    /// Adds a verification key.
    pub fn key(mut self, key: Key) -> Self {
        self.keys.push(key);
        self
    }

    /// Adds several keys (e.g. from [`keys_from_jwks`](crate::keys::keys_from_jwks)).
    pub fn keys(mut self, keys: impl IntoIterator<Item = Key>) -> Self {
        self.keys.extend(keys);
        self
    }

    /// Keys fetched and kept fresh (feature `remote-keys`), read after the keys given with
    /// [`key`](Self::key): a token's `kid` must then name a key (an unknown one makes the set
    /// refetch, at most once per its cooldown, and the authentication layer waits for that
    /// fetch), and a token without `kid` is tried only when a single key of its algorithm is
    /// known. Until the set's first fetch succeeds (or once its keys are too old), tokens that
    /// need it are refused with `AUTH_FAILED`. [`issuers`](Self::issuers) is then required
    /// (`build` refuses without it): keys an identity provider publishes sign tokens only it
    /// should be trusted for. For several issuers, see [`issuer`](Self::issuer).
    #[cfg(feature = "remote-keys")]
    pub fn remote_keys(mut self, set: RemoteKeySet) -> Self {
        self.remote = Some(set);
        self
    }

    /// Accepts tokens from one more issuer, with keys, audiences, algorithms and token types
    /// of its own: a token whose `iss` equals the issuer's name is checked with that
    /// configuration only, any other token with this builder's (see [`Issuer`]). Several calls
    /// add several issuers.
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.extra.push(issuer);
        self
    }

    /// The algorithm allow-list. Without it, each key accepts the algorithms of its own family
    /// (or the one it is bound to). A token's `alg` header never widens this list.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Clock tolerance for `exp` and `nbf` (default 10 s), in whole seconds (rounded down).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Accepts tokens without `exp`. Such tokens never expire: only do this when every token is
    /// also checked by a revocation hook.
    pub fn allow_missing_exp(mut self) -> Self {
        self.require_exp = false;
        self
    }

    /// Accepted issuers; `iss` then becomes required.
    pub fn issuers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, issuers: I) -> Self {
        self.issuers = Some(issuers.into_iter().map(Into::into).collect());
        self
    }

    /// Accepted audiences; `aud` then becomes required.
    pub fn audiences<I: IntoIterator<Item = S>, S: Into<String>>(mut self, audiences: I) -> Self {
        self.audiences = Some(audiences.into_iter().map(Into::into).collect());
        self
    }

    /// The only accepted `sub`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Claims that must be present (any name, registered or not), e.g. `["sub", "iat"]`.
    pub fn required_claims<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, names: I) -> Self {
        self.required
            .extend(names.into_iter().map(|n| Box::from(n.as_ref())));
        self
    }

    /// A requirement on the application's claims. When `check` returns `false` the request is
    /// refused with `FORBIDDEN` and `message` (shown to the client: keep it generic).
    pub fn require(
        mut self,
        message: &'static str,
        check: impl Fn(&C) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.requirements.push(Requirement {
            message,
            check: Box::new(check),
        });
        self
    }

    /// The clock used for `exp` and `nbf` (default: the system clock); the authentication
    /// layer and WebSocket sessions read time from the validator's clock. See [`Clock`] for
    /// sharing one.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = clock.into_shared();
        self
    }

    /// Refuses tokens that `list` says are revoked (`TOKEN_REVOKED`), checked in memory on
    /// every request, cached ones included. The validator then needs
    /// [`max_lifetime`](Self::max_lifetime), no longer than the list's (see the
    /// [`revocation`](crate::revocation) module docs for why).
    pub fn revocations(mut self, list: RevocationList) -> Self {
        self.revocations = Some(list);
        self
    }

    /// An async revocation hook, asked after every successful verification.
    pub fn revocation(mut self, hook: impl Revocation) -> Self {
        self.revocation = Some(Arc::new(hook));
        self
    }

    /// Checks the configuration and builds the validator.
    ///
    /// # Errors
    /// No key; a key left with no allowed algorithm; two keys with the same `kid`; more than 64
    /// required claims; an empty `token_types` list or name; a revocation list without a
    /// `max_lifetime` within the list's.
    pub fn build(self) -> Result<Validator<C>, ConfigError> {
        install_crypto_provider();
        if let Some(list) = &self.revocations {
            check_coverage(list, self.max_lifetime, self.leeway, self.require_exp)?;
        }
        #[cfg(feature = "remote-keys")]
        let remote = self.remote;
        #[cfg(feature = "remote-keys")]
        let has_remote = remote.is_some();
        #[cfg(not(feature = "remote-keys"))]
        let has_remote = false;
        if self.keys.is_empty() && !has_remote && self.extra.is_empty() {
            return Err(ConfigError::new("at least one key is needed"));
        }
        if has_remote && self.issuers.is_none() {
            // An identity provider's keys sign tokens for whoever it serves, under its `iss`.
            return Err(ConfigError::new(
                "remote_keys needs issuers([...]): the issuer whose tokens the keys sign",
            ));
        }
        if self.required.len() > MAX_REQUIRED_CLAIMS {
            return Err(ConfigError::new(format!(
                "at most {MAX_REQUIRED_CLAIMS} required claims are supported"
            )));
        }
        let own_issuers = self.issuers.clone().unwrap_or_default();
        let primary = route(RouteParts {
            what: "the validator",
            keys: self.keys,
            #[cfg(feature = "remote-keys")]
            remote,
            algorithms: self.algorithms,
            issuers: self.issuers,
            audiences: self.audiences,
            any_audience: false,
            types: self.types,
        })?;
        let mut names = HashSet::new();
        let mut issuers = Vec::with_capacity(self.extra.len());
        for issuer in self.extra {
            if issuer.name.is_empty() {
                return Err(ConfigError::new("an issuer's name is empty"));
            }
            if !names.insert(issuer.name.clone()) || own_issuers.contains(&issuer.name) {
                return Err(ConfigError::new(format!(
                    "issuer {:?} is configured twice",
                    issuer.name
                )));
            }
            #[cfg(feature = "remote-keys")]
            let has_remote = issuer.remote.is_some();
            #[cfg(not(feature = "remote-keys"))]
            let has_remote = false;
            if issuer.keys.is_empty() && !has_remote {
                return Err(ConfigError::new(format!(
                    "issuer {:?} has no key",
                    issuer.name
                )));
            }
            issuers.push(route(RouteParts {
                what: "an issuer",
                keys: issuer.keys,
                #[cfg(feature = "remote-keys")]
                remote: issuer.remote,
                algorithms: issuer.algorithms,
                issuers: Some(vec![issuer.name]),
                audiences: issuer.audiences,
                any_audience: issuer.any_audience,
                types: issuer.types,
            })?);
        }
        #[cfg(feature = "remote-keys")]
        let remote_sets = std::iter::once(&primary)
            .chain(&issuers)
            .filter(|r| r.remote.is_some())
            .count();
        let required_mask = if self.required.is_empty() {
            0
        } else {
            u64::MAX >> (64 - self.required.len())
        };
        Ok(Validator {
            inner: Arc::new(Inner {
                primary,
                issuers: issuers.into_boxed_slice(),
                rules: ClaimRules {
                    subject: self.subject.map(String::into_boxed_str),
                    leeway: self.leeway.as_secs(),
                    require_exp: self.require_exp,
                    required: self.required.into_boxed_slice(),
                    required_mask,
                    clock: self.clock,
                    max_lifetime: self.max_lifetime.map(|d| d.as_secs()),
                },
                requirements: self.requirements.into_boxed_slice(),
                revocation: self.revocation,
                revocations: self.revocations,
                #[cfg(feature = "remote-keys")]
                remote_sets,
            }),
        })
    }
}

/// The configuration of one route, before it is checked.
struct RouteParts {
    what: &'static str,
    keys: Vec<Key>,
    #[cfg(feature = "remote-keys")]
    remote: Option<RemoteKeySet>,
    algorithms: Option<Vec<Algorithm>>,
    issuers: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
    any_audience: bool,
    types: Option<Vec<Box<str>>>,
}

/// Checks one route's configuration: distinct key ids, an algorithm left for every key, a
/// non-empty list of token types.
fn route(parts: RouteParts) -> Result<Route, ConfigError> {
    let what = parts.what;
    if let Some(types) = &parts.types
        && (types.is_empty() || types.iter().any(|t| t.trim().is_empty()))
    {
        return Err(ConfigError::new(format!(
            "token_types of {what}: the list of accepted token types is empty or has an empty \
             name"
        )));
    }
    if parts.algorithms.as_ref().is_some_and(Vec::is_empty) {
        return Err(ConfigError::new(format!(
            "the algorithm allow-list of {what} is empty"
        )));
    }
    let mut kids = HashSet::new();
    for key in &parts.keys {
        if let Some(kid) = key.kid()
            && !kids.insert(kid)
        {
            return Err(ConfigError::new(format!("duplicate key id {kid:?}")));
        }
    }
    let algorithms = parts.algorithms.map(Vec::into_boxed_slice);
    for key in &parts.keys {
        let left = key
            .family
            .algorithms()
            .iter()
            .filter(|a| key.algorithm.is_none_or(|only| only == **a))
            .any(|a| algorithms.as_deref().is_none_or(|allow| allow.contains(a)));
        if !left {
            return Err(ConfigError::new(format!(
                "key {:?} ({:?}) has no algorithm left in the allow-list",
                key.kid(),
                key.family
            )));
        }
    }
    let boxed = |list: Option<Vec<String>>| {
        list.map(|l| {
            l.into_iter()
                .map(String::into_boxed_str)
                .collect::<Box<[_]>>()
        })
    };
    Ok(Route {
        keys: parts.keys.into_boxed_slice(),
        #[cfg(feature = "remote-keys")]
        remote: parts.remote,
        algorithms,
        issuers: boxed(parts.issuers),
        audiences: boxed(parts.audiences),
        any_audience: parts.any_audience,
        types: parts.types.map(Vec::into_boxed_slice),
    })
}
