//! The default rendering: a JSON body, RFC 6750 `WWW-Authenticate`, `Retry-After`.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderValue, Response};

use super::Responder;
use crate::error::AuthError;

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
}
