//! The contract between an authentication layer and the layers around it.
//!
//! The lockout and the rate limit do not care which layer authenticated a request: they read
//! its outcome from the request and the response, through the public types of this module. An
//! authentication layer of your own takes part by setting them as [`JwtAuthLayer`] does:
//!
//! | outcome | what the authentication layer does | who reads it |
//! |---|---|---|
//! | success | [`authenticated`]: puts the [`AuthContext`] (subject, expiry, …) into the request's extensions and sets the [`SuccessSignal`] an outer layer may have planted | the rate limit (keys on the subject), WebSocket sessions, the axum extractors; the lockout, when success resets failures |
//! | refusal | answers with a response whose extensions hold an [`AuthRejection`] with the code | the lockout (counts `INVALID_TOKEN` and `TOKEN_EXPIRED` as failed attempts), the rate limit (adds no quota headers to a refusal), metrics |
//! | no token, in optional mode | puts [`Unauthenticated`] into the request's extensions | the axum extractors (`401 MISSING_TOKEN` instead of `500`) |
//!
//! Every layer of this crate marks its own refusals with [`AuthRejection`] (a locked address,
//! a rate-limited user), so an outer layer sees every refusal of the stack, whichever layer
//! made it.
//!
//! ```
//! use tower_jwt_guard::AuthContext;
//! use tower_jwt_guard::outcome::{self, SuccessSignal};
//!
//! // An outer layer that wants to learn about success plants a signal…
//! let mut request = http::Request::new(());
//! let signal = SuccessSignal::new();
//! request.extensions_mut().insert(signal.clone());
//!
//! // …and the authentication layer, having verified the caller, says so.
//! outcome::authenticated(request.extensions_mut(), AuthContext::for_subject("alice"));
//! assert!(signal.is_set());
//! assert_eq!(request.extensions().get::<AuthContext>().unwrap().subject(), Some("alice"));
//! ```
//!
//! [`JwtAuthLayer`]: crate::JwtAuthLayer

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::Extensions;

use crate::context::AuthContext;
use crate::error::ErrorCode;

/// In a refusal's response extensions: the code that refused the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRejection {
    /// The rejection's code.
    pub code: ErrorCode,
}

/// In a request's extensions when the authentication layer runs in optional mode and the
/// request carried no token: it passes with no claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unauthenticated;

/// Planted in a request's extensions by an outer layer that must learn whether the request
/// authenticated (the lockout, when success resets an address's failures); set by the
/// authentication layer through [`authenticated`]. Clones share one flag.
///
/// A request without one costs the authentication layer nothing beyond the lookup.
#[derive(Debug, Clone, Default)]
pub struct SuccessSignal(Arc<AtomicBool>);

impl SuccessSignal {
    /// A signal not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the request authenticated.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// What an authentication layer does when it accepts a request: inserts `context` into the
/// request's `extensions` and sets the [`SuccessSignal`] found there, if any.
#[inline]
pub fn authenticated(extensions: &mut Extensions, context: AuthContext) {
    if let Some(signal) = extensions.get::<SuccessSignal>() {
        signal.set();
    }
    extensions.insert(context);
}
