//! Verifying a token and checking its claims.
//!
//! A [`Validator`] is built once, at start-up, and shared (it is an `Arc` inside). Signatures
//! are verified by `jsonwebtoken`'s crypto provider (aws-lc-rs or RustCrypto, see
//! [`crypto`](crate::crypto)), whose verifiers each thread keeps for its last 16 keys (they are
//! not `Send`; `jsonwebtoken::crypto::verify` would build one, with its HMAC key state, per
//! token). The compact form and the header are read here (each thread remembers the last header
//! segment it parsed: one issuer's tokens share it byte for byte), and the payload is read in
//! **one pass** that fills both the application's claims type and the registered claims
//! (`jsonwebtoken::decode` parses the header twice and the claims twice). It:
//! - takes the algorithms from configuration only: each [`Key`](crate::keys::Key) is bound to
//!   its family, the allow-list narrows further, `none` is never accepted;
//! - picks the key by the token's `kid` when several keys are configured (rotation without
//!   downtime); with a single key, `kid` is not consulted; keys may also come from a
//!   [`RemoteKeySet`](crate::remote_keys::RemoteKeySet) (feature `remote-keys`), whose `kid`s
//!   must match;
//! - with [`Issuer`]s, picks the keys, audiences, algorithms and token types by the token's
//!   `iss` (read before the signature only to choose, checked again after): a token naming an
//!   issuer is verified with that issuer's keys and no other;
//! - requires `exp` by default, checks `nbf` when present, both with a leeway (default 10 s)
//!   against an injectable [`Clock`](crate::clock::Clock);
//! - checks `iss` and `aud` when configured, as a string or an array of strings (a configured
//!   issuer or audience is then required), and refuses a token carrying an `aud` when no audience
//!   is configured (RFC 7519 §4.1.3);
//! - refuses a header with `crit` (no extension is understood, RFC 7515 §4.1.11) and duplicate
//!   header or registered-claim members;
//! - with [`ValidatorBuilder::token_types`], accepts only the listed `typ` values (explicit
//!   typing, RFC 8725 §3.11; `at+jwt` for RFC 9068 access tokens); `typ` is ignored otherwise;
//! - requires named claims to be present, and runs typed predicates over the application's
//!   claims type (`FORBIDDEN` when one fails);
//! - optionally asks an async revocation hook.
//!
//! ```
//! use serde::Deserialize;
//! use std::time::Duration;
//! use tower_jwt_guard::{keys::Key, validate::Validator, Algorithm};
//!
//! #[derive(Debug, Clone, Deserialize)]
//! struct MyClaims {
//!     sub: String,
//!     #[serde(rename = "type")]
//!     kind: String,
//! }
//!
//! let validator = Validator::<MyClaims>::builder()
//!     .key(Key::hmac(b"0123456789abcdef0123456789abcdef")?)
//!     .algorithms([Algorithm::HS256])
//!     .leeway(Duration::from_secs(10))
//!     .required_claims(["sub", "iat"])
//!     .require("the token must be an access token", |c: &MyClaims| c.kind == "access")
//!     .build()?;
//! # let _ = validator;
//! # Ok::<(), tower_jwt_guard::ConfigError>(())
//! ```

mod builder;
mod header;
mod issuers;
mod keyset;
mod payload;
mod registered;
mod revocation;
mod rules;
mod signature;
mod validator;

pub use builder::ValidatorBuilder;
pub use issuers::Issuer;
pub(crate) use revocation::revocation_outcome;
pub use revocation::{Revocation, RevocationFuture};
pub(crate) use validator::KeysWait;
pub use validator::{DEFAULT_LEEWAY, Validator, Verified};

#[cfg(test)]
mod tests {
    #[test]
    fn a_revocation_lists_default_leeway_is_the_validators() {
        assert_eq!(
            crate::revocation::DEFAULT_LIST_LEEWAY,
            super::DEFAULT_LEEWAY
        );
    }
}
