//! Turning an [`AuthError`] into an HTTP response.
//!
//! The default [`JsonResponder`] answers with the code's status, a JSON body
//! `{"error": {"code": "...", "message": "..."}}`, `WWW-Authenticate: Bearer` per RFC 6750 for
//! `401`/`403` (with `error="invalid_token"` or `error="insufficient_scope"`, and no `error`
//! when the token is missing), and `Retry-After` (whole seconds) for `429`.
//!
//! Replace it with any [`Responder`], including a closure:
//!
//! ```
//! use bytes::Bytes;
//! use http::{Response, StatusCode};
//! use tower_jwt_guard::{AuthError, response::Responder};
//!
//! let plain = |err: &AuthError| -> Response<Bytes> {
//!     Response::builder()
//!         .status(err.status())
//!         .body(Bytes::from_static(b"no"))
//!         .unwrap()
//! };
//! let response = plain.respond(&AuthError::missing_token());
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! ```
//!
//! Whatever the responder returns, the crate adds an [`AuthRejection`] to the response's
//! extensions, so that an outer layer (lockout, metrics) learns why the request was refused.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response};

use crate::error::{AuthError, ErrorCode};

/// Builds the response for a rejection.
pub trait Responder: Send + Sync + 'static {
    /// The response for `error`.
    fn respond(&self, error: &AuthError) -> Response<Bytes>;
}

impl<F> Responder for F
where
    F: Fn(&AuthError) -> Response<Bytes> + Send + Sync + 'static,
{
    fn respond(&self, error: &AuthError) -> Response<Bytes> {
        self(error)
    }
}

/// Marker in a rejection's response extensions: which code refused the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRejection {
    /// The rejection's code.
    pub code: ErrorCode,
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

impl Responder for JsonResponder {
    fn respond(&self, error: &AuthError) -> Response<Bytes> {
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

/// The response for a rejection of `req`: with `close_frames` set (to the token subprotocol
/// prefix, if any), a WebSocket upgrade is completed and closed with the error's close code;
/// anything else gets `responder`'s answer. Shared by every layer that rejects.
pub(crate) fn reject_request<B>(
    responder: &dyn Responder,
    req: &mut http::Request<B>,
    error: &AuthError,
    close_frames: Option<Option<&str>>,
) -> Response<Bytes> {
    #[cfg(feature = "websocket")]
    if let Some(token_prefix) = close_frames
        && let Some(response) = crate::ws::close_frame_rejection(req, error, token_prefix)
    {
        return response;
    }
    #[cfg(not(feature = "websocket"))]
    let _ = (req, close_frames);
    reject(responder, error)
}

/// Runs `responder` and marks the response with [`AuthRejection`].
pub(crate) fn reject(responder: &dyn Responder, error: &AuthError) -> Response<Bytes> {
    let mut response = responder.respond(error);
    response
        .extensions_mut()
        .insert(AuthRejection { code: error.code() });
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn header(r: &Response<Bytes>, name: http::HeaderName) -> Option<&str> {
        r.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn missing_token_has_no_error_parameter() {
        let r = JsonResponder::new().respond(&AuthError::missing_token());
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
            .respond(&AuthError::expired());
        let www = header(&r, WWW_AUTHENTICATE).unwrap();
        assert!(
            www.starts_with("Bearer realm=\"api x\", error=\"invalid_token\""),
            "{www}"
        );
        let r = JsonResponder::new().respond(&AuthError::forbidden("no"));
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
        let r = JsonResponder::new().respond(&e);
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
        let r = reject(&JsonResponder::new(), &AuthError::expired());
        assert_eq!(
            r.extensions().get::<AuthRejection>(),
            Some(&AuthRejection {
                code: ErrorCode::TokenExpired
            })
        );
    }
}
