//! The [`Validator`]: what it holds, and the order of its checks (signature, payload, claim
//! rules, typed requirements). The steps live beside it: `keyset.rs` picks the key and
//! verifies the signature, `rules.rs` checks the registered claims, `builder.rs` validates the
//! configuration once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::header;
use super::issuers::{Route, peek_issuer};
use super::keyset::{KeyFailure, verify_signature};
use super::payload::read_claims;
use super::registered::{ClaimSpec, STACK_PAYLOAD, decode_segment};
use super::revocation::revocation_outcome;
use super::rules::ClaimRules;
use super::{Revocation, RevocationFuture};
use crate::clock::Clock;
use crate::context::AuthContext;
use crate::error::AuthError;
use crate::revocation::RevocationList;

/// A refusal, and the subject when the signature was good (for audit events).
pub(crate) type Refusal = (AuthError, Option<Arc<str>>);

/// The default clock tolerance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(10);

/// A verified token: its standard facts and the application's claims.
#[derive(Debug, Clone)]
pub struct Verified<C> {
    /// Subject, timestamps, key id and source.
    pub context: AuthContext,
    /// The claims, deserialized into the application's type.
    pub claims: C,
}

/// See [`Validator::keys_wait`].
pub(crate) type KeysWait = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

pub(super) type Predicate<C> = Box<dyn Fn(&C) -> bool + Send + Sync>;

pub(super) struct Requirement<C> {
    pub(super) message: &'static str,
    pub(super) check: Predicate<C>,
}

pub(super) struct Inner<C> {
    /// Tokens without `iss`, or naming none of `issuers`.
    pub(super) primary: Route,
    /// The [`Issuer`](super::Issuer)s, each picked by a token's `iss` equal to its one name.
    pub(super) issuers: Box<[Route]>,
    pub(super) rules: ClaimRules,
    pub(super) requirements: Box<[Requirement<C>]>,
    pub(super) revocation: Option<Arc<dyn Revocation>>,
    pub(super) revocations: Option<RevocationList>,
    /// How many routes have a remote set.
    #[cfg(feature = "remote-keys")]
    pub(super) remote_sets: usize,
}

/// Verifies tokens and checks their claims; cheap to clone (one `Arc`).
///
/// See the [module docs](crate::validate) for what it checks.
pub struct Validator<C> {
    pub(super) inner: Arc<Inner<C>>,
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
            .field("primary", &i.primary)
            .field("issuers", &i.issuers)
            .field("leeway_secs", &i.rules.leeway)
            .field("require_exp", &i.rules.require_exp)
            .field("required_claims", &i.rules.required)
            .field(
                "requirements",
                &i.requirements.iter().map(|r| r.message).collect::<Vec<_>>(),
            )
            .field("clock", &i.rules.clock)
            .field("revocation", &i.revocation.is_some())
            .finish()
    }
}

impl<C> Validator<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    /// Verifies `token` and checks its claims and the revocation list, if one is configured
    /// (everything except the async revocation hook).
    ///
    /// The returned context has no [`source`](AuthContext::source); the caller sets it.
    ///
    /// With a remote key set, a token naming a `kid` the set lacks (or any token while it has
    /// no keys) asks the set for a fetch, within its cooldown and when a tokio runtime runs,
    /// and is refused at once: [`validate_and_check_revocation`](Self::validate_and_check_revocation)
    /// and the authentication layer wait for that fetch instead.
    ///
    /// # Errors
    /// `INVALID_TOKEN`, `TOKEN_EXPIRED`, `TOKEN_REVOKED` or `FORBIDDEN`, with a fixed message;
    /// `AUTH_FAILED` while a remote key set has no usable keys or cannot be refreshed.
    pub fn validate(&self, token: &str) -> Result<Verified<C>, AuthError> {
        self.validate_with_subject(token).map_err(|(e, _)| e)
    }

    /// [`validate`](Self::validate), and on failure the subject when the signature was good
    /// (for audit events).
    pub(crate) fn validate_with_subject(&self, token: &str) -> Result<Verified<C>, Refusal> {
        let inner = &*self.inner;
        let malformed = || {
            (
                AuthError::invalid_token("the token claims are malformed"),
                None,
            )
        };
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err((AuthError::invalid_token("the token is malformed"), None));
        };
        let header = header::parse(header).map_err(|e| (e, None))?;
        let message = &token.as_bytes()[..token.len() - signature_b64.len() - 1];
        // Set where the payload is decoded: zeroing the kilobyte is not free, and a forged
        // token with one route never needs it.
        let (mut stack, mut heap): ([u8; STACK_PAYLOAD], Vec<u8>);
        let decode = |stack, heap| {
            let payload = decode_segment(payload, stack, heap).map_err(|_| malformed())?;
            // RFC 8259 §8.1: JSON text is UTF-8. serde_json does not look inside the strings
            // it skips, so invalid bytes in an ignored claim would otherwise pass.
            std::str::from_utf8(payload).map_err(|_| malformed())?;
            Ok(payload)
        };
        let (route, key, payload) = if inner.issuers.is_empty() {
            // One route: the signature is checked before the payload is even decoded, so a
            // forged token costs no base64 or UTF-8 pass over its claims.
            let key = self.signing_key(&inner.primary, &header, message, signature_b64);
            (stack, heap) = ([0u8; STACK_PAYLOAD], Vec::new());
            let key = match key {
                Ok(key) => key,
                // A refusal that is not a failed attempt (the issuer's keys are not at hand)
                // is kept for a token that could verify at all: a malformed payload is
                // refused as such, and counted.
                Err((e, subject)) if e.is_awaiting_keys() || e.is_quiet() => {
                    decode(&mut stack, &mut heap)?;
                    return Err((e, subject));
                }
                Err(refused) => return Err(refused),
            };
            (&inner.primary, key, decode(&mut stack, &mut heap)?)
        } else {
            (stack, heap) = ([0u8; STACK_PAYLOAD], Vec::new());
            let payload = decode(&mut stack, &mut heap)?;
            let route = self.route(payload).map_err(|()| malformed())?;
            let key = self.signing_key(route, &header, message, signature_b64)?;
            (route, key, payload)
        };
        let spec = ClaimSpec {
            required: &inner.rules.required,
            issuers: route.issuers.as_deref(),
            audiences: route.audiences.as_deref(),
        };
        let (std, claims) = read_claims::<C>(payload, spec).map_err(|_| malformed())?;
        if let Err(e) = inner.rules.check_claims(&std, route) {
            return Err((e, std.sub));
        }
        let context = AuthContext {
            subject: std.sub,
            token_id: std.jti,
            issued_at: std.iat,
            expires_at: std.exp,
            not_before: std.nbf,
            key_id: key,
            source: None,
        };
        // A revocation covers tokens issued at or before its moment: with a list, a token dated
        // in the future (beyond the leeway) could never be covered, so it is refused.
        if inner.revocations.is_some()
            && context.issued_at.is_some_and(|iat| {
                iat > inner
                    .rules
                    .clock
                    .now()
                    .as_secs()
                    .saturating_add(inner.rules.leeway)
            })
        {
            return Err((
                AuthError::invalid_token("the token is issued in the future"),
                context.subject,
            ));
        }
        // Revocation first: a revoked token is refused as revoked, whatever else it fails.
        if self.is_listed_revoked(&context) {
            return Err((AuthError::revoked(), context.subject));
        }
        if let Some(failed) = self.failed_requirement(&claims) {
            return Err((AuthError::forbidden(failed.message), context.subject));
        }
        Ok(Verified { context, claims })
    }

    /// The route of a token whose decoded payload is `payload`: the issuer its `iss` names
    /// exactly, else the validator's own configuration.
    fn route(&self, payload: &[u8]) -> Result<&Route, ()> {
        let inner = &*self.inner;
        if inner.issuers.is_empty() {
            return Ok(&inner.primary);
        }
        let iss = peek_issuer(payload).map_err(|_| ())?;
        Ok(iss
            .and_then(|iss| {
                inner.issuers.iter().find(|r| {
                    r.issuers
                        .as_deref()
                        .and_then(<[_]>::first)
                        .is_some_and(|n| **n == *iss)
                })
            })
            .unwrap_or(&inner.primary))
    }

    /// The `kid` of the key of `route` that signed `message` (what the context keeps of it),
    /// or the refusal.
    fn signing_key(
        &self,
        route: &Route,
        header: &super::header::Header,
        message: &[u8],
        signature_b64: &str,
    ) -> Result<Option<Arc<str>>, Refusal> {
        if route.keys.is_empty() && !route.has_remote() {
            // Only issuers were configured, and the token names none of them.
            return Err((
                AuthError::invalid_token("the token issuer is not accepted"),
                None,
            ));
        }
        #[cfg(feature = "remote-keys")]
        let fetched = route.remote.as_ref().and_then(|set| set.usable());
        #[cfg(feature = "remote-keys")]
        let fetched_keys: &[crate::keys::Key] = fetched.as_ref().map_or(&[], |s| &s.keys);
        #[cfg(not(feature = "remote-keys"))]
        let fetched_keys: &[crate::keys::Key] = &[];
        match verify_signature(route, fetched_keys, header, message, signature_b64) {
            Ok(key) => Ok(key.kid.clone()),
            Err(KeyFailure::Refused(e)) => Err((e, None)),
            Err(KeyFailure::UnknownKid) => {
                // While the set cannot be refreshed, a kid it lacks may be a new key of the
                // issuer's: not the client's fault, so not a failed attempt.
                let error = if route.remote_failing() {
                    AuthError::keys_unavailable("the issuer's keys could not be refreshed")
                } else {
                    AuthError::invalid_token("the token key id is unknown")
                };
                Err((self.awaiting(route, true, error), None))
            }
            Err(KeyFailure::NoKeys) => Err((
                self.awaiting(
                    route,
                    false,
                    AuthError::keys_unavailable("the issuer's keys are not available"),
                ),
                None,
            )),
        }
    }

    /// `error`, marked as worth a retry once the route's remote set has fetched, when a
    /// fetch is wanted (this asks for one, if the cooldown allows): for a `kid` the set lacks
    /// (`unknown_kid`), or because it has no usable keys.
    #[cfg_attr(
        not(feature = "remote-keys"),
        allow(unused_variables, clippy::unused_self)
    )]
    fn awaiting(&self, route: &Route, unknown_kid: bool, error: AuthError) -> AuthError {
        #[cfg(feature = "remote-keys")]
        if let Some(set) = &route.remote {
            let wanted = if unknown_kid {
                set.note_unknown_kid()
            } else {
                set.note_no_keys()
            };
            if wanted.is_some() {
                return error.awaiting_keys();
            }
        }
        error
    }

    /// When the refusal of `token` [awaits keys](AuthError::is_awaiting_keys): a future that
    /// completes once the fetch its issuer's remote set wants has completed (bounded by twice
    /// the set's fetch timeout and a second), after which the token is worth validating again.
    /// `None` when no fetch is wanted, or outside a tokio runtime. Boxed: only tokens naming
    /// keys not yet fetched pay for it.
    pub(crate) fn keys_wait(&self, token: &str) -> Option<KeysWait> {
        #[cfg(feature = "remote-keys")]
        {
            tokio::runtime::Handle::try_current().ok()?;
            let payload = token.split('.').nth(1)?;
            let (mut stack, mut heap) = ([0u8; STACK_PAYLOAD], Vec::new());
            let payload = decode_segment(payload, &mut stack, &mut heap).ok()?;
            let set = self.route(payload).ok()?.remote.as_ref()?;
            let target = set.pending()?;
            Some(Box::pin(set.wait_for(target)))
        }
        #[cfg(not(feature = "remote-keys"))]
        {
            let _ = token;
            None
        }
    }

    /// Changes whenever the keys of a remote set change (see the verified-token cache): 0
    /// without remote sets.
    pub(crate) fn key_generation(&self) -> u64 {
        #[cfg(feature = "remote-keys")]
        {
            let inner = &*self.inner;
            if inner.remote_sets == 0 {
                return 0;
            }
            std::iter::once(&inner.primary)
                .chain(inner.issuers.iter())
                .filter_map(|r| r.remote.as_ref())
                // Mixed per position, so that one set's change cannot cancel another's.
                .fold(0u64, |mix, set| {
                    (mix ^ set.generation()).wrapping_mul(0x0100_0000_01b3)
                })
        }
        #[cfg(not(feature = "remote-keys"))]
        0
    }

    /// [`validate`](Self::validate), then the revocation hook if one is configured.
    ///
    /// # Errors
    /// As `validate`; `TOKEN_REVOKED` when revoked; `AUTH_FAILED` when the hook fails.
    pub async fn validate_and_check_revocation(
        &self,
        token: &str,
    ) -> Result<Verified<C>, AuthError> {
        let verified = match self.validate(token) {
            Err(e) if e.is_awaiting_keys() => match self.keys_wait(token) {
                Some(wait) => {
                    wait.await;
                    self.validate(token)?
                }
                None => return Err(e),
            },
            other => other?,
        };
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
        &self.inner.rules.clock
    }

    /// The configured leeway.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.inner.rules.leeway)
    }

    /// Whether a token this validator accepted would still be accepted now, short of the
    /// signature and the payload's shape: `exp` and `nbf` checked again against the clock (with
    /// the leeway; `false` without `exp`), and the typed requirements run again (they may read
    /// state of their own).
    ///
    /// `Err(Some(error))`: refuse with `error` without verifying again (the token is revoked:
    /// its signature is known good, so a revoked token costs a lookup, not a verification);
    /// `Err(None)`: verify it in full again.
    pub(crate) fn recheck(&self, verified: &Verified<C>) -> Result<(), Option<AuthError>> {
        if !self.still_current(&verified.context) {
            return Err(None);
        }
        if self.is_listed_revoked(&verified.context) {
            return Err(Some(AuthError::revoked()));
        }
        if self.failed_requirement(&verified.claims).is_some() {
            return Err(None);
        }
        Ok(())
    }

    /// Whether the revocation list, if one is configured, says `context` is revoked.
    fn is_listed_revoked(&self, context: &AuthContext) -> bool {
        self.inner
            .revocations
            .as_ref()
            .is_some_and(|list| list.is_revoked(context))
    }

    /// The revocation list, if one is configured.
    pub fn revocations(&self) -> Option<&RevocationList> {
        self.inner.revocations.as_ref()
    }

    /// The first typed requirement `claims` fails, if any.
    pub(super) fn failed_requirement(&self, claims: &C) -> Option<&Requirement<C>> {
        self.inner.requirements.iter().find(|r| !(r.check)(claims))
    }

    /// Whether a context this validator produced is still within its time window now: `exp`
    /// and `nbf` checked again, with the leeway, against the clock. `false` without `exp`.
    pub(crate) fn still_current(&self, context: &AuthContext) -> bool {
        context.expires_at.is_some()
            && self
                .inner
                .rules
                .time_window(context.expires_at, context.not_before, context.issued_at)
                .is_ok()
    }
}
