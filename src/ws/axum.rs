use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::{WsSession, WsSessions};
use crate::axum::ClaimsRejection;
use crate::context::{AuthContext, Claims};
use crate::error::AuthError;
use crate::response::{JsonResponder, reject_parts};
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

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(sessions) = parts.extensions.get::<WsSessions<C>>().cloned() else {
            tracing::error!(
                target: crate::audit::AUDIT_TARGET,
                path = ?parts.uri.path(),
                "WsSession extracted without a WsSessions extension"
            );
            let error =
                AuthError::auth_failed("WebSocket sessions are not configured for this route");
            return Err(reject_parts(&JsonResponder::new(), parts, &error, None)
                .map(axum::body::Body::from));
        };
        // The usual extractor rejections when the layer did not run.
        AuthContext::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if parts.extensions.get::<Claims<C>>().is_none() {
            return Err(ClaimsRejection::LayerMissing.into_response());
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
