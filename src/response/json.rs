//! The default rendering: a JSON body, RFC 6750 `WWW-Authenticate`, `Retry-After`.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Response};

use std::fmt;
use std::sync::{Arc, OnceLock};

use super::Responder;
use crate::error::{AuthError, ErrorCode};

/// The default responder: JSON body, RFC 6750 `WWW-Authenticate`, `Retry-After`.
///
/// The body and the `WWW-Authenticate` value of a rejection depend only on its code, its
/// message (a `&'static str`) and the realm, so each is rendered once and kept: a responder
/// remembers up to 64 of them (a fixed table, filled as rejections are seen,
/// never evicted; a rejection whose place is taken is rendered each time), and a refusal costs
/// two reference counts instead of three allocations and the JSON escaping. Responders without
/// a realm share one process-wide table, whose renderings are `'static` (at most 64 for the
/// life of the process), so that a refusal copies two pointers.
///
/// [`respond`](Responder::respond) answers in the refused request's header map, emptied (see
/// there).
#[derive(Debug, Clone, Default)]
pub struct JsonResponder {
    realm: Option<Box<str>>,
    /// The renderings for this realm; `None`: the shared table of responders without one.
    kept: Option<Arc<Kept>>,
}

/// How many renderings a [`JsonResponder`] keeps (per realm; those without a realm share one
/// table).
const RENDER_SLOTS: usize = 64;

/// A rendered rejection, for one (code, message).
struct Rendering {
    code: ErrorCode,
    message: &'static str,
    body: Bytes,
    www_authenticate: Option<HeaderValue>,
}

/// A fixed table of renderings, placed by code and message address.
struct Kept([OnceLock<Rendering>; RENDER_SLOTS]);

impl Kept {
    const fn new() -> Self {
        Self([const { OnceLock::new() }; RENDER_SLOTS])
    }

    fn slot(&self, error: &AuthError) -> &OnceLock<Rendering> {
        let address = error.message().as_ptr() as usize;
        let mixed = (address >> 3) ^ (error.message().len() << 7) ^ (error.code() as usize);
        &self.0[mixed.wrapping_mul(0x9E37_79B9) >> 8 & (RENDER_SLOTS - 1)]
    }
}

impl fmt::Debug for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let used = self.0.iter().filter(|s| s.get().is_some()).count();
        write!(f, "Kept({used} of {RENDER_SLOTS})")
    }
}

/// The renderings of responders without a realm.
static PLAIN: Kept = Kept::new();

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
        self.kept = Some(Arc::new(Kept::new()));
        self
    }

    /// The body and `WWW-Authenticate` value for `error`, rendered once per (code, message).
    fn rendering(&self, error: &AuthError) -> (Bytes, Option<HeaderValue>) {
        let kept = self.kept.as_deref().unwrap_or(&PLAIN);
        let slot = kept.slot(error);
        let fresh = || Rendering {
            code: error.code(),
            message: error.message(),
            body: json_body(error),
            www_authenticate: self.www_authenticate(error),
        };
        let rendering = slot.get_or_init(|| {
            let mut rendering = fresh();
            if self.kept.is_none() {
                // The process-wide table: at most `RENDER_SLOTS` renderings for the life of
                // the process, made `'static` so that a refusal copies two pointers rather
                // than counting references on a line every core shares.
                let body: &'static [u8] = Vec::leak(rendering.body.to_vec());
                rendering.body = Bytes::from_static(body);
                if let Some(value) = &rendering.www_authenticate
                    && let Ok(text) = value.to_str()
                {
                    let text: &'static str = String::leak(text.to_owned());
                    rendering.www_authenticate = Some(HeaderValue::from_static(text));
                }
            }
            rendering
        });
        if rendering.code == error.code() && std::ptr::eq(rendering.message, error.message()) {
            (rendering.body.clone(), rendering.www_authenticate.clone())
        } else {
            // Another rejection holds the place: render this one each time.
            let Rendering {
                body,
                www_authenticate,
                ..
            } = fresh();
            (body, www_authenticate)
        }
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
        HeaderValue::from_maybe_shared(Bytes::from(value)).ok()
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
    let mut rest = s;
    while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || (c as u32) < 0x20) {
        out.push_str(&rest[..at]);
        let c = rest.as_bytes()[at];
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            c => {
                let _ = write!(out, "\\u{:04x}", c);
            }
        }
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

impl JsonResponder {
    /// The JSON response for `error`, whatever the request.
    pub fn render(&self, error: &AuthError) -> Response<Bytes> {
        self.render_into(error, HeaderMap::new())
    }

    /// [`render`](Self::render), with `headers` (empty) as the response's header map.
    fn render_into(&self, error: &AuthError, mut headers: HeaderMap) -> Response<Bytes> {
        let (body, www_authenticate) = self.rendering(error);
        headers.reserve(3);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(value) = www_authenticate {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        if let Some(secs) = error.retry_after_secs() {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        let mut response = Response::new(body);
        *response.status_mut() = error.status();
        *response.headers_mut() = headers;
        response
    }
}

impl Responder for JsonResponder {
    /// [`render`](Self::render)s `error`, into the refused request's header map: it is taken
    /// from `request` and emptied (no request header reaches the response), and its allocation
    /// serves the response, which saves two allocations per refusal. A responder that wraps
    /// this one reads the request's headers before calling it.
    fn respond(&self, request: &mut Parts, error: &AuthError) -> Response<Bytes> {
        let mut headers = std::mem::take(&mut request.headers);
        headers.clear();
        self.render_into(error, headers)
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

    #[test]
    fn kept_renderings_never_answer_for_another_rejection() {
        // More distinct messages than places, each twice: every answer is its own rendering.
        let messages: Vec<&'static str> = (0..3 * RENDER_SLOTS)
            .map(|i| &*Box::leak(format!("reason {i}").into_boxed_str()))
            .collect();
        let plain = JsonResponder::new();
        let realm = JsonResponder::new().realm("r");
        for _ in 0..2 {
            for (i, message) in messages.iter().enumerate() {
                let code = if i % 2 == 0 {
                    ErrorCode::InvalidToken
                } else {
                    ErrorCode::Forbidden
                };
                let e = AuthError::new(code, message);
                for (r, prefix) in [
                    (&plain, "Bearer error="),
                    (&realm, "Bearer realm=\"r\", error="),
                ] {
                    let response = r.render(&e);
                    assert_eq!(response.body(), &json_body(&e));
                    let www = header(&response, WWW_AUTHENTICATE).unwrap();
                    assert!(www.starts_with(prefix), "{www}");
                    assert!(
                        www.ends_with(&format!("error_description=\"{message}\"")),
                        "{www}"
                    );
                }
            }
        }
        // The same message under another code is another rejection.
        let e = AuthError::new(ErrorCode::TokenExpired, messages[0]);
        let v: serde_json::Value = serde_json::from_slice(plain.render(&e).body()).unwrap();
        assert_eq!(v["error"]["code"], "TOKEN_EXPIRED");
    }

    #[test]
    fn responding_reuses_the_request_headers_but_none_of_their_entries() {
        let (mut parts, ()) = http::Request::get("/")
            .header("authorization", "Bearer secret-token")
            .header("cookie", "jwt=secret-token")
            .header("host", "example.com")
            .body(())
            .unwrap()
            .into_parts();
        let response = JsonResponder::new().respond(&mut parts, &AuthError::expired());
        let names: Vec<&str> = response.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "www-authenticate"]);
        assert!(parts.headers.is_empty());
    }
}
