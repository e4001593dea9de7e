//! The claim rules: `iss`, `aud` and `sub` against the configuration, `exp`, `nbf` and the
//! maximum lifetime against the clock (with the leeway), and the presence of required claims.

use std::sync::Arc;

use super::issuers::Route;
use super::registered::{Match, StdClaims};
use crate::clock::Clock;
use crate::error::AuthError;

/// The configured rules for the registered claims, checked on every token (`iss` and `aud`
/// against the token's [`Route`]).
pub(super) struct ClaimRules {
    pub(super) subject: Option<Box<str>>,
    /// Seconds.
    pub(super) leeway: u64,
    pub(super) require_exp: bool,
    pub(super) required: Box<[Box<str>]>,
    /// One bit per required claim name.
    pub(super) required_mask: u64,
    pub(super) clock: Arc<dyn Clock>,
    /// The longest lifetime accepted, in seconds.
    pub(super) max_lifetime: Option<u64>,
}

impl ClaimRules {
    /// `exp` and `nbf` against the clock, with the leeway (an absent one passes), and the
    /// maximum lifetime when one is configured.
    #[inline]
    pub(super) fn time_window(
        &self,
        exp: Option<u64>,
        nbf: Option<u64>,
        iat: Option<u64>,
    ) -> Result<(), AuthError> {
        let inner = self;
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

    pub(super) fn check_claims(&self, std: &StdClaims, route: &Route) -> Result<(), AuthError> {
        let inner = self;
        if route.issuers.is_some() {
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
        match (route.audiences.is_some(), std.aud) {
            (true, Match::Matched) | (false, Match::Absent) => {}
            (false, _) if route.any_audience => {}
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
        let inner = self;
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
