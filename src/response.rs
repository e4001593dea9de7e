//! Turning an [`AuthError`] into an HTTP response.
//!
//! The default [`JsonResponder`] answers with the code's status, a JSON body
//! `{"error": {"code": "...", "message": "..."}}`, `WWW-Authenticate: Bearer` per RFC 6750 for
//! `401`/`403` (with `error="invalid_token"` or `error="insufficient_scope"`, and no `error`
//! when the token is missing), and `Retry-After` (whole seconds) for `429`.
//!
//! Every layer of the crate (authentication, lockout, rate limit, WebSocket sessions) renders
//! its rejections through a [`Responder`], set with `.responder(…)` on its builder, which sees
//! the refused request's [`Parts`] (method, URI, headers, extensions): the same rejection can be
//! answered differently for different requests. Build one responder and give a clone of it to
//! every layer; [`ws::CloseFrameResponder`](crate::ws::CloseFrameResponder) is such a wrapper
//! for WebSocket upgrades, and gRPC statuses will be another.
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
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderValue, Request, Response};

use crate::error::AuthError;
use crate::outcome::AuthRejection;

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

/// The default responder: JSON body, RFC 6750 `WWW-Authenticate`, `Retry-After`.
#[derive(Debug, Clone, Default)]
pub struct JsonResponder {
    realm: Option<Box<str>>,
}

impl JsonResponder {
    /// A responder without a realm.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `realm="<realm>"` to `WWW-Authenticate`.
    ///
    /// Characters outside visible ASCII and `"` / `\` are dropped from the realm.
    pub fn realm(mut self, realm: &str) -> Self {
        let clean: String = realm
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .filter(|c| *c != '"' && *c != '\\')
            .collect();
        self.realm = Some(clean.into());
        self
    }

    fn www_authenticate(&self, error: &AuthError) -> Option<HeaderValue> {
        let code = error.code();
        if !matches!(code.status().as_u16(), 400 | 401 | 403) {
            return None;
        }
        // Built with `push_str` into one buffer: `format!` here cost a third of a rejection.
        let message = error.message();
        let realm_len = self.realm.as_deref().map_or(0, |r| r.len() + 10);
        let mut value = String::with_capacity(64 + realm_len + message.len());
        value.push_str("Bearer");
        let mut sep = " ";
        if let Some(realm) = &self.realm {
            value.push_str(sep);
            value.push_str("realm=\"");
            value.push_str(realm);
            value.push('"');
            sep = ", ";
        }
        if let Some(bearer_error) = code.bearer_error() {
            value.push_str(sep);
            value.push_str("error=\"");
            value.push_str(bearer_error);
            value.push_str("\", error_description=\"");
            value.extend(
                message
                    .chars()
                    .filter(|c| (c.is_ascii_graphic() || *c == ' ') && *c != '"' && *c != '\\'),
            );
            value.push('"');
        }
        HeaderValue::from_str(&value).ok()
    }
}

/// The JSON body `{"error":{"code":"...","message":"..."}}` for `error`.
pub fn json_body(error: &AuthError) -> Bytes {
    let message = error.message();
    let mut body = String::with_capacity(48 + message.len());
    body.push_str(r#"{"error":{"code":""#);
    body.push_str(error.code().as_str());
    body.push_str(r#"","message":""#);
    push_json_escaped(&mut body, message);
    body.push_str(r#""}}"#);
    Bytes::from(body)
}

/// Appends `s` as the inside of a JSON string.
fn push_json_escaped(out: &mut String, s: &str) {
    use std::fmt::Write;
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

impl JsonResponder {
    /// The JSON response for `error`, whatever the request.
    pub fn render(&self, error: &AuthError) -> Response<Bytes> {
        let mut response = Response::new(json_body(error));
        *response.status_mut() = error.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(value) = self.www_authenticate(error) {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        if let Some(secs) = error.retry_after_secs() {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl Responder for JsonResponder {
    fn respond(&self, _request: &mut Parts, error: &AuthError) -> Response<Bytes> {
        self.render(error)
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
    reject_parts(responder, &mut parts, error, subject)
}

/// [`reject`] for a request of which only the head is at hand (extractors).
pub(crate) fn reject_parts(
    responder: &dyn Responder,
    parts: &mut Parts,
    error: &AuthError,
    subject: Option<&str>,
) -> Response<Bytes> {
    crate::audit::rejected(error, subject, crate::audit::RequestInfo::of_parts(parts));
    let mut response = responder.respond(parts, error);
    response
        .extensions_mut()
        .insert(AuthRejection { code: error.code() });
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use std::time::Duration;

    fn header(r: &Response<Bytes>, name: http::HeaderName) -> Option<&str> {
        r.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn missing_token_has_no_error_parameter() {
        let r = JsonResponder::new().render(&AuthError::missing_token());
        assert_eq!(r.status(), 401);
        assert_eq!(header(&r, WWW_AUTHENTICATE), Some("Bearer"));
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(v["error"]["code"], "MISSING_TOKEN");
        assert!(v["error"]["message"].is_string());
    }

    #[test]
    fn invalid_and_forbidden_carry_rfc6750_errors() {
        let r = JsonResponder::new()
            .realm("api \"x\"")
            .render(&AuthError::expired());
        let www = header(&r, WWW_AUTHENTICATE).unwrap();
        assert!(
            www.starts_with("Bearer realm=\"api x\", error=\"invalid_token\""),
            "{www}"
        );
        let r = JsonResponder::new().render(&AuthError::forbidden("no"));
        assert_eq!(r.status(), 403);
        assert!(
            header(&r, WWW_AUTHENTICATE)
                .unwrap()
                .contains("insufficient_scope")
        );
    }

    #[test]
    fn too_many_requests_has_retry_after_and_no_challenge() {
        let e = AuthError::new(ErrorCode::LockedOut, "locked")
            .with_retry_after(Duration::from_millis(2500));
        let r = JsonResponder::new().render(&e);
        assert_eq!(r.status(), 429);
        assert_eq!(header(&r, RETRY_AFTER), Some("3"));
        assert_eq!(header(&r, WWW_AUTHENTICATE), None);
    }

    #[test]
    fn json_body_escapes_messages() {
        let e = AuthError::forbidden("a \"quoted\" \\ line\nbreak");
        let v: serde_json::Value = serde_json::from_slice(&json_body(&e)).unwrap();
        assert_eq!(v["error"]["code"], "FORBIDDEN");
        assert_eq!(v["error"]["message"], "a \"quoted\" \\ line\nbreak");
    }

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
