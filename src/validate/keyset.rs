//! Picking the key for a token (by `kid` when several are configured, each bound to its
//! algorithm family and the allow-list) and verifying the signature with it.

use super::header;
use super::signature::{self, KeySlot};
use crate::error::AuthError;
use crate::keys::Key;
use jsonwebtoken::Algorithm;
use jsonwebtoken::errors::ErrorKind;

/// A configured key, with what verifying with it needs.
pub(super) struct KeyEntry {
    pub(super) key: Key,
    /// This entry's verifiers in the per-thread caches.
    pub(super) slot: KeySlot,
    /// The allow-list narrowed to this key's family (and bound algorithm).
    pub(super) algorithms: Box<[Algorithm]>,
}

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

/// Checks the compact form, the algorithm and the signature; returns the key that
/// verified the token and the payload segment.
pub(super) fn verify_signature<'k, 't>(
    keys: &'k [KeyEntry],
    types: Option<&[Box<str>]>,
    token: &'t str,
) -> Result<(&'k KeyEntry, &'t str), AuthError> {
    let malformed = AuthError::invalid_token("the token is malformed");
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed);
    };
    let header = header::parse(header)?;
    if let Some(types) = types
        && !header::type_accepted(header.typ.as_deref(), types)
    {
        return Err(AuthError::invalid_token("the token type is not accepted"));
    }
    let alg = header.alg;
    let message = &token.as_bytes()[..token.len() - signature_b64.len() - 1];
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
    if let [only] = keys {
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
