use axum::extract::FromRequestParts;
use axum::response::Response;
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::{WsSession, WsSessions};
use crate::axum::ClaimsRejection;
use crate::context::{AuthContext, Claims};
use crate::error::AuthError;
use crate::outcome::Unauthenticated;
use crate::response::{default_responder, reject_parts};
use axum::extract::ws::WebSocketUpgrade;

/// Opens the session of an authenticated upgrade request: needs the `JwtAuthLayer` on the route
/// and a `WsSessions<C>` in the extensions (`Router::layer(Extension(sessions))`). Over a
/// connection limit it answers `429 RATE_LIMITED` (or, with close frames, closes with 4029).
///
/// Take it **before** `WebSocketUpgrade` in the handler's arguments: axum's upgrade extractor
/// removes hyper's upgrade handle, without which a close-frame refusal falls back to HTTP 429.
impl<S, C> FromRequestParts<S> for WsSession<C>
where
    S: Send + Sync,
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(sessions) = parts.extensions.get::<WsSessions<C>>().cloned() else {
            tracing::error!(
                target: crate::audit::AUDIT_TARGET,
                path = ?parts.uri.path(),
                "WsSession extracted without a WsSessions extension"
            );
            let error =
                AuthError::auth_failed("WebSocket sessions are not configured for this route");
            return Err(reject_parts(&*default_responder(), parts, &error, None)
                .map(axum::body::Body::from));
        };
        // No claims: optional mode without a token (`MISSING_TOKEN`), or no layer on the route
        // (`AUTH_FAILED`), refused through the sessions' responder, so that a browser gets its
        // close frame.
        if parts.extensions.get::<AuthContext>().is_none()
            || parts.extensions.get::<Claims<C>>().is_none()
        {
            let error = if parts.extensions.get::<Unauthenticated>().is_some() {
                ClaimsRejection::Unauthenticated.as_auth_error()
            } else {
                tracing::error!(
                    target: crate::audit::AUDIT_TARGET,
                    path = ?parts.uri.path(),
                    "WsSession extracted on a route without the JwtAuthLayer"
                );
                ClaimsRejection::LayerMissing.as_auth_error()
            };
            return Err(
                reject_parts(sessions.responder(), parts, &error, None).map(axum::body::Body::from)
            );
        }
        sessions
            .open(&parts.headers, &parts.extensions)
            .map_err(|error| {
                let subject = parts
                    .extensions
                    .get::<AuthContext>()
                    .and_then(AuthContext::subject_arc)
                    .cloned();
                reject_parts(sessions.responder(), parts, &error, subject.as_deref())
                    .map(axum::body::Body::from)
            })
    }
}

impl<C> WsSession<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Prepares axum's upgrade for this session: selects one of the client's application
    /// subprotocols (never the token one) and gives axum the session's message size limit, so
    /// that a larger message or frame is refused before it is buffered (the socket is then
    /// closed with 1009).
    pub fn configure(&self, upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
        let limit = self.sessions.max_message_size();
        upgrade
            .protocols(
                self.application_protocols()
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            )
            .max_message_size(limit)
            .max_frame_size(limit)
    }
}
