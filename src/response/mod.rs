//! Turning an [`AuthError`] into an HTTP response.
//!
//! [`JsonResponder`] answers with the code's status, a JSON body
//! `{"error": {"code": "...", "message": "..."}}`, `WWW-Authenticate: Bearer` per RFC 6750 for
//! `401`/`403` (with `error="invalid_token"` or `error="insufficient_scope"`, and no `error`
//! when the token is missing), and `Retry-After` (whole seconds) for `429`.
//!
//! With the `tonic` feature, `GrpcResponder` answers gRPC requests (HTTP/2 `POST`s with a gRPC
//! `content-type`) with gRPC statuses
//! (trailers-only, `google.rpc.ErrorInfo` and `RetryInfo` details; see its docs for the
//! mapping) and hands every other request to the responder it wraps. [`default_responder`],
//! what every layer uses unless given another, is `JsonResponder`, behind a `GrpcResponder`
//! when `tonic` is on: a tonic server gets gRPC statuses from every layer without configuring
//! anything.
//!
//! Every layer of the crate (authentication, lockout, rate limit, WebSocket sessions) renders
//! its rejections through a [`Responder`], set with `.responder(…)` on its builder, which sees
//! the refused request's [`Parts`] (method, URI, headers, extensions): the same rejection can be
//! answered differently for different requests. Build one responder and give a clone of it to
//! every layer; [`ws::CloseFrameResponder`](crate::ws::CloseFrameResponder) is such a wrapper
//! for WebSocket upgrades, and `GrpcResponder` (feature `tonic`) another.
//!
//! A closure becomes a responder with [`from_fn`]:
//!
//! ```
//! use bytes::Bytes;
//! use http::{Response, StatusCode, request::Parts};
//! use tower_jwt_guard::{AuthError, response::{self, Responder}};
//!
//! let plain = response::from_fn(|_request: &Parts, err: &AuthError| {
//!     let mut response = Response::new(Bytes::from_static(b"no"));
//!     *response.status_mut() = err.status();
//!     response
//! });
//! let (mut parts, ()) = http::Request::new(()).into_parts();
//! let response = plain.respond(&mut parts, &AuthError::missing_token());
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! ```
//!
//! Whatever the responder returns, the crate adds an [`AuthRejection`] to the response's
//! extensions, so that an outer layer (lockout, metrics) learns why the request was refused
//! (see [`outcome`](crate::outcome)).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Extensions, Request, Response};

use crate::error::AuthError;
use crate::outcome::AuthRejection;

#[cfg(feature = "tonic")]
mod grpc;
mod json;

#[cfg(feature = "tonic")]
pub(crate) use grpc::grpc_trailers;
#[cfg(feature = "tonic")]
pub use grpc::{ERROR_DOMAIN, GrpcResponder, grpc_code, grpc_status, is_grpc, is_grpc_request};
#[cfg(all(feature = "tonic", fuzzing))]
pub(crate) use grpc::{status_for, trailers_for};
pub use json::{JsonResponder, json_body};

/// The responder of every layer that is not given one: [`JsonResponder`], behind a
/// [`GrpcResponder`] when the `tonic` feature is on (gRPC requests get gRPC statuses, every
/// other request JSON).
pub fn default_responder() -> Arc<dyn Responder> {
    #[cfg(feature = "tonic")]
    {
        Arc::new(GrpcResponder::new())
    }
    #[cfg(not(feature = "tonic"))]
    {
        Arc::new(JsonResponder::new())
    }
}

/// Renders a rejection as a response, for the request it refuses.
///
/// `request` is the refused request's head; the request is dropped once the response is
/// built, so a responder may take from its extensions what answering needs (the WebSocket
/// responder takes hyper's upgrade handle). Rendering must not fail and must not panic: every
/// layer of the crate calls it on its rejection path.
pub trait Responder: Send + Sync + 'static {
    /// The response refusing `request` with `error`.
    fn respond(&self, request: &mut Parts, error: &AuthError) -> Response<Bytes>;
}

impl<R: Responder + ?Sized> Responder for Arc<R> {
    fn respond(&self, request: &mut Parts, error: &AuthError) -> Response<Bytes> {
        (**self).respond(request, error)
    }
}

impl<R: Responder + ?Sized> Responder for Box<R> {
    fn respond(&self, request: &mut Parts, error: &AuthError) -> Response<Bytes> {
        (**self).respond(request, error)
    }
}

/// A [`Responder`] made of a closure; see [`from_fn`].
#[derive(Clone, Copy)]
pub struct ResponderFn<F>(F);

impl<F> fmt::Debug for ResponderFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponderFn")
    }
}

/// A [`Responder`] that calls `f` with the refused request's head and the rejection.
pub fn from_fn<F>(f: F) -> ResponderFn<F>
where
    F: Fn(&Parts, &AuthError) -> Response<Bytes> + Send + Sync + 'static,
{
    ResponderFn(f)
}

impl<F> Responder for ResponderFn<F>
where
    F: Fn(&Parts, &AuthError) -> Response<Bytes> + Send + Sync + 'static,
{
    fn respond(&self, request: &mut Parts, error: &AuthError) -> Response<Bytes> {
        (self.0)(request, error)
    }
}

/// The one rejection path of every layer: the audit event (with `subject` when the caller
/// knows it), then `responder`'s rendering, marked with [`AuthRejection`]. The request is
/// dropped.
pub(crate) fn reject<B>(
    responder: &dyn Responder,
    request: Request<B>,
    error: &AuthError,
    subject: Option<&str>,
) -> Response<Bytes> {
    let (mut parts, body) = request.into_parts();
    drop(body);
    crate::audit::rejected(error, subject, crate::audit::RequestInfo::of_parts(&parts));
    let mut response = responder.respond(&mut parts, error);
    // The refused request's extension map would be freed with the request.
    mark(&mut response, error, Some(&mut parts.extensions));
    response
}

/// Adds the [`AuthRejection`] mark. When the responder left the response's extensions empty,
/// `spare` (a map about to be dropped) is emptied and carries it: a new map costs two
/// allocations more than the mark itself.
fn mark(response: &mut Response<Bytes>, error: &AuthError, spare: Option<&mut Extensions>) {
    let extensions = response.extensions_mut();
    if let Some(spare) = spare
        && extensions.is_empty()
    {
        let mut recycled = std::mem::take(spare);
        recycled.clear();
        *extensions = recycled;
    }
    extensions.insert(AuthRejection { code: error.code() });
}

/// [`reject`] for a request of which only the head is at hand (extractors): `parts` is left as
/// it is but for what the responder takes.
#[cfg_attr(not(all(feature = "websocket", feature = "axum")), allow(dead_code))]
pub(crate) fn reject_parts(
    responder: &dyn Responder,
    parts: &mut Parts,
    error: &AuthError,
    subject: Option<&str>,
) -> Response<Bytes> {
    crate::audit::rejected(error, subject, crate::audit::RequestInfo::of_parts(parts));
    // A responder may take the headers (`JsonResponder` reuses their map); these parts live on.
    let headers = parts.headers.clone();
    let mut response = responder.respond(parts, error);
    parts.headers = headers;
    mark(&mut response, error, None);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_marks_the_response() {
        let r = reject(
            &JsonResponder::new(),
            http::Request::new(()),
            &AuthError::expired(),
            None,
        );
        assert_eq!(
            r.extensions().get::<AuthRejection>(),
            Some(&AuthRejection {
                code: crate::error::ErrorCode::TokenExpired
            })
        );
    }
}
