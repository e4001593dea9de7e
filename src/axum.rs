//! axum extractors (feature `axum`).
//!
//! - [`Claims<C>`](crate::Claims): the typed claims; `Option<Claims<C>>` for optional routes.
//! - [`AuthContext`]: subject, timestamps, key id, source; `Option<AuthContext>` likewise.
//!
//! When the value is missing the extractor answers with the crate's JSON rejection (with its
//! audit event and the [`AuthRejection`](crate::outcome::AuthRejection) marker, as every
//! rejection of the crate): `401 MISSING_TOKEN` when the layer ran in optional mode and no
//! token came, and `500 AUTH_FAILED` when no authentication layer ran on the route at all (a
//! wiring mistake, logged at `ERROR` on the audit target). These extractors serve axum
//! handlers, so the answer is JSON; [`WsSession`](crate::ws::WsSession) renders its refusals
//! with the sessions' responder instead (close frames for browsers, when configured).

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::audit::AUDIT_TARGET;
use crate::context::{AuthContext, Claims};
use crate::error::AuthError;
use crate::outcome::Unauthenticated;
use crate::response::JsonResponder;

/// Why an extractor found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimsRejection {
    /// The layer ran in optional mode and the request had no token.
    Unauthenticated,
    /// No authentication layer ran for this route.
    LayerMissing,
}

impl ClaimsRejection {
    /// Why `parts` has no claims; records the refusal's audit event.
    fn of(parts: &Parts) -> Self {
        if parts.extensions.get::<Unauthenticated>().is_some() {
            crate::audit::rejected(
                &AuthError::missing_token(),
                None,
                crate::audit::RequestInfo::of_parts(parts),
            );
            Self::Unauthenticated
        } else {
            tracing::error!(
                target: AUDIT_TARGET,
                path = ?parts.uri.path(),
                "claims extracted on a route without the JwtAuthLayer"
            );
            Self::LayerMissing
        }
    }

    /// The rejection as an [`AuthError`].
    pub fn as_auth_error(self) -> AuthError {
        match self {
            Self::Unauthenticated => AuthError::missing_token(),
            Self::LayerMissing => {
                AuthError::auth_failed("authentication is not configured for this route")
            }
        }
    }
}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        let error = self.as_auth_error();
        let mut response = JsonResponder::new().render(&error);
        response
            .extensions_mut()
            .insert(crate::outcome::AuthRejection { code: error.code() });
        response.map(axum::body::Body::from)
    }
}

fn get<T: Clone + Send + Sync + 'static>(parts: &Parts) -> Result<T, ClaimsRejection> {
    parts
        .extensions
        .get::<T>()
        .cloned()
        .ok_or_else(|| ClaimsRejection::of(parts))
}

impl<S, C> FromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        get::<Self>(parts)
    }
}

impl<S, C> OptionalFromRequestParts<S> for Claims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}

impl<S> FromRequestParts<S> for AuthContext
where
    S: Send + Sync,
{
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        get::<Self>(parts)
    }
}

impl<S> OptionalFromRequestParts<S> for AuthContext
where
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}
