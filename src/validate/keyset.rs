//! Picking the key for a token (by `kid` when several are configured, each bound to its
//! algorithm family and the route's allow-list) and verifying the signature with it.

use super::header::{self, Header};
use super::issuers::Route;
use super::signature;
use crate::error::AuthError;
use crate::keys::Key;
use jsonwebtoken::errors::ErrorKind;

/// What a `jsonwebtoken` error means for the client: always a refusal of the token with a
/// fixed message, never a server error (a key that cannot verify a token's algorithm is the
/// token's problem).
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

/// Why no key verified the token.
pub(super) enum KeyFailure {
    /// A refusal of the token.
    Refused(AuthError),
    /// The route's remote set lacks the token's `kid`: a refetch may bring it.
    UnknownKid,
    /// The route's remote set has no usable key (not fetched yet, or stale), and no
    /// configured key answers.
    NoKeys,
}

impl From<AuthError> for KeyFailure {
    fn from(e: AuthError) -> Self {
        Self::Refused(e)
    }
}

/// Checks the token type and the signature (`message` is the signing input, `signature_b64`
/// the third segment) with the route's keys: the configured ones, then `fetched` (the
/// route's remote set, as last fetched). Returns the key that verified the token.
///
/// With configured keys only and a single one, `kid` is not consulted. With a remote set,
/// a token's `kid` must name a key (else [`KeyFailure::UnknownKid`]), and a token without
/// `kid` is tried only with a single key of its algorithm: a forged token never costs more
/// than one verification.
pub(super) fn verify_signature<'k>(
    route: &'k Route,
    fetched: &'k [Key],
    header: &Header,
    message: &[u8],
    signature_b64: &str,
) -> Result<&'k Key, KeyFailure> {
    if let Some(types) = route.types.as_deref()
        && !header::type_accepted(header.typ.as_deref(), types)
    {
        return Err(AuthError::invalid_token("the token type is not accepted").into());
    }
    let alg = header.alg;
    let not_allowed = AuthError::invalid_token("the token algorithm is not allowed");
    let bad_signature = || AuthError::invalid_token("the token signature is invalid");
    // `Ok(false)`: the signature does not verify with this key.
    let check = |key: &Key| -> Result<bool, AuthError> {
        // The algorithm is checked against the key and the route before any crypto runs, so
        // a key is never used with an algorithm of another family.
        if !route.accepts(key, alg) {
            return Err(not_allowed.clone());
        }
        signature::verify(key.slot, &key.decoding, alg, message, signature_b64)
            .map_err(|e| map_jwt_error(e.kind()))
    };
    let verify = |key: &'k Key| -> Result<&'k Key, KeyFailure> {
        if check(key)? {
            Ok(key)
        } else {
            Err(bad_signature().into())
        }
    };
    let remote = route.has_remote();
    let mut keys = route.keys.iter().chain(fetched);
    if !remote && let [only] = &*route.keys {
        // One key: `kid` is not consulted.
        return verify(only);
    }
    if let Some(kid) = header.kid.as_deref() {
        return match keys.find(|k| k.kid.as_deref() == Some(kid)) {
            Some(key) => verify(key),
            // The set has no usable keys (not fetched yet, or stale).
            None if remote && fetched.is_empty() => Err(KeyFailure::NoKeys),
            None if remote => Err(KeyFailure::UnknownKid),
            None => Err(AuthError::invalid_token("the token key id is unknown").into()),
        };
    }
    if remote {
        if fetched.is_empty() && route.keys.is_empty() {
            return Err(KeyFailure::NoKeys);
        }
        let mut candidates = keys.filter(|k| route.accepts(k, alg));
        return match (candidates.next(), candidates.next()) {
            (Some(only), None) => verify(only),
            (None, _) => Err(not_allowed.into()),
            (Some(_), Some(_)) => {
                Err(AuthError::invalid_token("the token names no key id (kid)").into())
            }
        };
    }
    // No kid: each key that accepts this algorithm, in configuration order.
    let mut tried = false;
    for key in keys.filter(|k| route.accepts(k, alg)) {
        tried = true;
        if check(key)? {
            return Ok(key);
        }
    }
    Err(if tried { bad_signature() } else { not_allowed }.into())
}
