use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use jsonwebtoken::errors::ErrorKind;
use serde::de::DeserializeOwned;

use super::claims::{ClaimSpec, Match, STACK_PAYLOAD, StdClaims, decode_segment};
use super::header;
use super::payload::read_claims;
use super::signature::{self, KeySlot};
use super::{Revocation, RevocationFuture};
use crate::clock::{Clock, SystemClock};
use crate::context::AuthContext;
use crate::crypto::install_crypto_provider;
use crate::error::{AuthError, ConfigError};
use crate::keys::Key;

/// The default clock tolerance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(10);

/// At most this many required claim names.
const MAX_REQUIRED_CLAIMS: usize = 64;

/// A verified token: its standard facts and the application's claims.
#[derive(Debug, Clone)]
pub struct Verified<C> {
    /// Subject, timestamps, key id and source.
    pub context: AuthContext,
    /// The claims, deserialized into the application's type.
    pub claims: C,
}

type Predicate<C> = Box<dyn Fn(&C) -> bool + Send + Sync>;

struct Requirement<C> {
    message: &'static str,
    check: Predicate<C>,
}

struct KeyEntry {
    key: Key,
    /// This entry's verifiers in the per-thread caches.
    slot: KeySlot,
    /// The allow-list narrowed to this key's family (and bound algorithm).
    algorithms: Box<[Algorithm]>,
}

struct Inner<C> {
    keys: Box<[KeyEntry]>,
    issuers: Option<Box<[Box<str>]>>,
    audiences: Option<Box<[Box<str>]>>,
    subject: Option<Box<str>>,
    leeway: u64,
    require_exp: bool,
    required: Box<[Box<str>]>,
    required_mask: u64,
    requirements: Box<[Requirement<C>]>,
    clock: Arc<dyn Clock>,
    revocation: Option<Arc<dyn Revocation>>,
    /// The longest lifetime accepted, in seconds.
    max_lifetime: Option<u64>,
}

/// Verifies tokens and checks their claims; cheap to clone (one `Arc`).
///
/// See the [module docs](crate::validate) for what it checks.
pub struct Validator<C> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for Validator<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C> fmt::Debug for Validator<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Validator")
            .field("keys", &i.keys.iter().map(|k| &k.key).collect::<Vec<_>>())
            .field("leeway_secs", &i.leeway)
            .field("require_exp", &i.require_exp)
            .field("required_claims", &i.required)
            .field(
                "requirements",
                &i.requirements.iter().map(|r| r.message).collect::<Vec<_>>(),
            )
            .field("clock", &i.clock)
            .field("revocation", &i.revocation.is_some())
            .finish()
    }
}

fn map_jwt_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::invalid_token("the token signature is invalid"),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            AuthError::invalid_token("the token algorithm is not allowed")
        }
        ErrorKind::InvalidIssuer => AuthError::invalid_token("the token issuer is not accepted"),
        ErrorKind::InvalidAudience => {
            AuthError::invalid_token("the token audience is not accepted")
        }
        ErrorKind::InvalidSubject => AuthError::invalid_token("the token subject is not accepted"),
        ErrorKind::MissingRequiredClaim(_) => {
            AuthError::invalid_token("the token lacks a required claim")
        }
        ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) => {
            AuthError::invalid_token("the token claims are malformed")
        }
        ErrorKind::ExpiredSignature => AuthError::expired(),
        ErrorKind::ImmatureSignature => AuthError::invalid_token("the token is not valid yet"),
        // A key that cannot verify this token's algorithm (e.g. a key/curve mismatch) is the
        // token's problem, not the server's: it must not turn attacker input into 500s.
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::Provider(_) => {
            AuthError::invalid_token("the token cannot be verified with the configured keys")
        }
        _ => AuthError::invalid_token("the token is malformed"),
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

    /// Verifies `token` and checks its claims (everything except the revocation hook).
    ///
    /// The returned context has no [`source`](AuthContext::source); the caller sets it.
    ///
    /// # Errors
    /// `INVALID_TOKEN`, `TOKEN_EXPIRED` or `FORBIDDEN`, with a fixed message.
    pub fn validate(&self, token: &str) -> Result<Verified<C>, AuthError> {
        self.validate_with_subject(token).map_err(|(e, _)| e)
    }

    /// [`validate`](Self::validate), and on failure the subject when the signature was good
    /// (for audit events).
    pub(crate) fn validate_with_subject(
        &self,
        token: &str,
    ) -> Result<Verified<C>, (AuthError, Option<Arc<str>>)> {
        let inner = &*self.inner;
        let (entry, payload) = self.verify_signature(token).map_err(|e| (e, None))?;
        let malformed = || {
            (
                AuthError::invalid_token("the token claims are malformed"),
                None,
            )
        };
        let (mut stack, mut heap) = ([0u8; STACK_PAYLOAD], Vec::new());
        let payload = decode_segment(payload, &mut stack, &mut heap).map_err(|_| malformed())?;
        // RFC 8259 §8.1: JSON text is UTF-8. serde_json does not look inside the strings it
        // skips, so invalid bytes in an ignored claim would otherwise pass.
        std::str::from_utf8(payload).map_err(|_| malformed())?;
        let spec = ClaimSpec {
            required: &inner.required,
            issuers: inner.issuers.as_deref(),
            audiences: inner.audiences.as_deref(),
        };
        let (std, claims) = read_claims::<C>(payload, spec).map_err(|_| malformed())?;
        if let Err(e) = self.check_claims(&std) {
            return Err((e, std.sub));
        }
        if let Some(failed) = self.failed_requirement(&claims) {
            return Err((AuthError::forbidden(failed.message), std.sub));
        }
        Ok(Verified {
            context: AuthContext {
                subject: std.sub,
                token_id: std.jti,
                issued_at: std.iat,
                expires_at: std.exp,
                not_before: std.nbf,
                key_id: entry.key.kid.clone(),
                source: None,
            },
            claims,
        })
    }

    /// [`validate`](Self::validate), then the revocation hook if one is configured.
    ///
    /// # Errors
    /// As `validate`; `INVALID_TOKEN` when revoked; `AUTH_FAILED` when the hook fails.
    pub async fn validate_and_check_revocation(
        &self,
        token: &str,
    ) -> Result<Verified<C>, AuthError> {
        let verified = self.validate(token)?;
        match self.revocation_check(&verified.context) {
            None => Ok(verified),
            Some(check) => revocation_outcome(check.await).map(|()| verified),
        }
    }

    /// The revocation hook's future for `context`, or `None` when no hook is configured.
    pub fn revocation_check(&self, context: &AuthContext) -> Option<RevocationFuture> {
        self.inner
            .revocation
            .as_ref()
            .map(|r| r.is_revoked(context))
    }

    /// The configured clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The configured leeway.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.inner.leeway)
    }

    /// Whether a token this validator accepted would still be accepted now, short of the
    /// signature and the payload's shape: `exp` and `nbf` checked again against the clock (with
    /// the leeway; `false` without `exp`), and the typed requirements run again (they may read
    /// state of their own).
    pub(crate) fn still_accepts(&self, verified: &Verified<C>) -> bool {
        self.still_current(&verified.context) && self.failed_requirement(&verified.claims).is_none()
    }

    /// The first typed requirement `claims` fails, if any.
    fn failed_requirement(&self, claims: &C) -> Option<&Requirement<C>> {
        self.inner.requirements.iter().find(|r| !(r.check)(claims))
    }

    /// Whether a context this validator produced is still within its time window now: `exp`
    /// and `nbf` checked again, with the leeway, against the clock. `false` without `exp`.
    pub(crate) fn still_current(&self, context: &AuthContext) -> bool {
        context.expires_at.is_some()
            && self
                .time_window(context.expires_at, context.not_before, context.issued_at)
                .is_ok()
    }

    /// `exp` and `nbf` against the clock, with the leeway (an absent one passes), and the
    /// maximum lifetime when one is configured.
    fn time_window(
        &self,
        exp: Option<u64>,
        nbf: Option<u64>,
        iat: Option<u64>,
    ) -> Result<(), AuthError> {
        let inner = &*self.inner;
        let now = inner.clock.now().as_secs();
        // RFC 7519 §4.1.4: not accepted on or after `exp` (here: after `exp + leeway`).
        if exp.is_some_and(|exp| now >= exp.saturating_add(inner.leeway)) {
            return Err(AuthError::expired());
        }
        if let (Some(max), Some(exp)) = (inner.max_lifetime, exp)
            && (exp > now.saturating_add(max).saturating_add(inner.leeway)
                || iat.is_some_and(|iat| exp.saturating_sub(iat) > max))
        {
            return Err(AuthError::invalid_token(
                "the token lives longer than the maximum lifetime",
            ));
        }
        if nbf.is_some_and(|nbf| now.saturating_add(inner.leeway) < nbf) {
            return Err(AuthError::invalid_token("the token is not valid yet"));
        }
        Ok(())
    }

    /// Checks the compact form, the algorithm and the signature; returns the key that
    /// verified the token and the payload segment.
    fn verify_signature<'t>(&self, token: &'t str) -> Result<(&KeyEntry, &'t str), AuthError> {
        let malformed = AuthError::invalid_token("the token is malformed");
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed);
        };
        let header = header::parse(header)?;
        let alg = header.alg;
        let message = &token.as_bytes()[..token.len() - signature_b64.len() - 1];
        let keys = &self.inner.keys;
        let not_allowed = AuthError::invalid_token("the token algorithm is not allowed");
        let verify = |entry: &KeyEntry| -> Result<bool, AuthError> {
            // The algorithm is checked against the key's own list before any crypto runs, so
            // a key is never used with an algorithm of another family.
            if !entry.algorithms.contains(&alg) {
                return Err(not_allowed.clone());
            }
            signature::verify(entry.slot, &entry.key.decoding, alg, message, signature_b64)
                .map_err(|e| map_jwt_error(e.kind()))
        };
        let bad_signature = || AuthError::invalid_token("the token signature is invalid");
        // One key: `kid` is not consulted.
        if let [only] = &keys[..] {
            return if verify(only)? {
                Ok((only, payload))
            } else {
                Err(bad_signature())
            };
        }
        if let Some(kid) = header.kid.as_deref() {
            let entry = keys
                .iter()
                .find(|k| k.key.kid.as_deref() == Some(kid))
                .ok_or(AuthError::invalid_token("the token key id is unknown"))?;
            return if verify(entry)? {
                Ok((entry, payload))
            } else {
                Err(bad_signature())
            };
        }
        // No kid: each key that accepts this algorithm, in configuration order.
        let mut tried = false;
        for entry in keys.iter().filter(|k| k.algorithms.contains(&alg)) {
            tried = true;
            if verify(entry)? {
                return Ok((entry, payload));
            }
        }
        Err(if tried { bad_signature() } else { not_allowed })
    }

    fn check_claims(&self, std: &StdClaims) -> Result<(), AuthError> {
        let inner = &*self.inner;
        if inner.issuers.is_some() {
            match std.iss {
                Match::Matched => {}
                Match::Absent => {
                    return Err(AuthError::invalid_token("the token lacks a required claim"));
                }
                Match::Unmatched => {
                    return Err(AuthError::invalid_token("the token issuer is not accepted"));
                }
            }
        }
        // RFC 7519 §4.1.3: a recipient that does not identify itself with a value of a present
        // `aud` must reject the token.
        match (inner.audiences.is_some(), std.aud) {
            (true, Match::Matched) | (false, Match::Absent) => {}
            (true, Match::Absent) => {
                return Err(AuthError::invalid_token("the token lacks a required claim"));
            }
            _ => {
                return Err(AuthError::invalid_token(
                    "the token audience is not accepted",
                ));
            }
        }
        if let Some(expected) = &inner.subject
            && std.sub.as_deref() != Some(&**expected)
        {
            return Err(AuthError::invalid_token(
                "the token subject is not accepted",
            ));
        }
        self.check_time_and_presence(std)
    }

    fn check_time_and_presence(&self, std: &StdClaims) -> Result<(), AuthError> {
        let inner = &*self.inner;
        if std.exp.is_none() && inner.require_exp {
            return Err(AuthError::invalid_token("the token has no expiry (exp)"));
        }
        self.time_window(std.exp, std.nbf, std.iat)?;
        if std.present & inner.required_mask != inner.required_mask {
            return Err(AuthError::invalid_token("the token lacks a required claim"));
        }
        Ok(())
    }
}

pub(crate) fn revocation_outcome(
    result: Result<bool, Box<dyn std::error::Error + Send + Sync>>,
) -> Result<(), AuthError> {
    match result {
        Ok(false) => Ok(()),
        Ok(true) => Err(AuthError::invalid_token("the token has been revoked")),
        Err(_) => Err(AuthError::auth_failed(
            "the revocation check could not be completed",
        )),
    }
}

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
    _claims: PhantomData<fn() -> C>,
    max_lifetime: Option<Duration>,
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

impl<C> ValidatorBuilder<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    fn new() -> Self {
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
            max_lifetime: None,
            _claims: PhantomData,
        }
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

    /// An async revocation hook, asked after every successful verification.
    pub fn revocation(mut self, hook: impl Revocation) -> Self {
        self.revocation = Some(Arc::new(hook));
        self
    }

    /// Checks the configuration and builds the validator.
    ///
    /// # Errors
    /// No key; a key left with no allowed algorithm; two keys with the same `kid`; more than 64
    /// required claims.
    pub fn build(self) -> Result<Validator<C>, ConfigError> {
        install_crypto_provider();
        if self.keys.is_empty() {
            return Err(ConfigError::new("at least one key is needed"));
        }
        if self.required.len() > MAX_REQUIRED_CLAIMS {
            return Err(ConfigError::new(format!(
                "at most {MAX_REQUIRED_CLAIMS} required claims are supported"
            )));
        }
        let mut kids = HashSet::new();
        for key in &self.keys {
            if let Some(kid) = key.kid()
                && !kids.insert(kid)
            {
                return Err(ConfigError::new(format!("duplicate key id {kid:?}")));
            }
        }
        let mut entries = Vec::with_capacity(self.keys.len());
        for key in self.keys {
            let algorithms: Box<[Algorithm]> = key
                .family
                .algorithms()
                .iter()
                .copied()
                .filter(|a| key.algorithm.is_none_or(|only| only == *a))
                .filter(|a| {
                    self.algorithms
                        .as_ref()
                        .is_none_or(|allow| allow.contains(a))
                })
                .collect();
            if algorithms.is_empty() {
                return Err(ConfigError::new(format!(
                    "key {:?} ({:?}) has no algorithm left in the allow-list",
                    key.kid(),
                    key.family
                )));
            }
            entries.push(KeyEntry {
                key,
                slot: KeySlot::next(),
                algorithms,
            });
        }
        let boxed = |list: Option<Vec<String>>| {
            list.map(|l| {
                l.into_iter()
                    .map(String::into_boxed_str)
                    .collect::<Box<[_]>>()
            })
        };
        let required_mask = if self.required.is_empty() {
            0
        } else {
            u64::MAX >> (64 - self.required.len())
        };
        Ok(Validator {
            inner: Arc::new(Inner {
                keys: entries.into_boxed_slice(),
                issuers: boxed(self.issuers),
                audiences: boxed(self.audiences),
                subject: self.subject.map(String::into_boxed_str),
                leeway: self.leeway.as_secs(),
                require_exp: self.require_exp,
                required: self.required.into_boxed_slice(),
                required_mask,
                requirements: self.requirements.into_boxed_slice(),
                clock: self.clock,
                revocation: self.revocation,
                max_lifetime: self.max_lifetime.map(|d| d.as_secs()),
            }),
        })
    }
}
