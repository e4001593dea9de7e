//! gRPC statuses for rejections (feature `tonic`); see [`GrpcResponder`].

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{HeaderMap, Response};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{JsonResponder, Responder};
use crate::error::{AuthError, ErrorCode};

/// The `domain` of the `google.rpc.ErrorInfo` in every gRPC rejection of the crate.
pub const ERROR_DOMAIN: &str = "tower-jwt-guard";

/// The gRPC status code for a rejection code (see [`GrpcResponder`] for the table).
pub const fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::MissingToken
        | ErrorCode::InvalidToken
        | ErrorCode::TokenExpired
        | ErrorCode::TokenRevoked => Code::Unauthenticated,
        ErrorCode::Forbidden => Code::PermissionDenied,
        ErrorCode::LockedOut | ErrorCode::RateLimited => Code::ResourceExhausted,
        ErrorCode::AuthFailed => Code::Unavailable,
        ErrorCode::InvalidRequest => Code::InvalidArgument,
    }
}

/// The gRPC status for `error`: its code, its message, and the `ErrorInfo` (plus `RetryInfo`
/// for a rejection with a retry time) details.
pub fn grpc_status(error: &AuthError) -> Status {
    status_for(error.code(), error.message(), error.retry_after())
}

/// [`grpc_status`] from its parts (the message is any text here, for the fuzz target).
pub(crate) fn status_for(code: ErrorCode, message: &str, retry_after: Option<Duration>) -> Status {
    let mut details = ErrorDetails::with_error_info(code.as_str(), ERROR_DOMAIN, HashMap::new());
    if let Some(retry_after) = retry_after {
        // Never zero: a client that reads 0 would retry at once.
        details.set_retry_info(Some(retry_after.max(Duration::from_millis(1))));
    }
    Status::with_error_details(grpc_code(code), message, details)
}

/// The trailers that end a gRPC response with `error` (the status of [`grpc_status`], as
/// header fields).
pub(crate) fn grpc_trailers(error: &AuthError) -> HeaderMap {
    trailers_for(grpc_status(error))
}

/// `status` as header fields. `add_header` fails only on a message that is not a valid header
/// value once percent-encoded, which a percent-encoded text always is; the code alone is sent
/// then.
pub(crate) fn trailers_for(status: Status) -> HeaderMap {
    let mut trailers = HeaderMap::with_capacity(3);
    if status.add_header(&mut trailers).is_err() {
        trailers.clear();
        trailers.insert("grpc-status", http::HeaderValue::from(status.code() as i32));
    }
    trailers
}

/// Whether `request` is a gRPC call: an HTTP/2 `POST` with a gRPC `content-type` (see
/// [`is_grpc`]).
pub fn is_grpc_request(request: &Parts) -> bool {
    request.version == http::Version::HTTP_2
        && request.method == http::Method::POST
        && is_grpc(&request.headers)
}

/// Whether `headers` carry a gRPC `content-type`: `application/grpc`,
/// `application/grpc+<codec>` or `application/grpc;<params>` (a response's, or one condition of
/// [`is_grpc_request`]).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return false;
    };
    let value = value.as_bytes();
    const GRPC: &[u8] = b"application/grpc";
    value.len() >= GRPC.len()
        && value[..GRPC.len()].eq_ignore_ascii_case(GRPC)
        && matches!(value.get(GRPC.len()), None | Some(b'+' | b';'))
}

/// Answers gRPC requests with gRPC statuses and every other request with the responder it
/// wraps ([`JsonResponder`] by default).
///
/// A gRPC client reads the outcome of a call from `grpc-status`, never from the HTTP status: a
/// bare `401` reaches it as `UNKNOWN`/"mapped from HTTP status", and a `429` as `UNAVAILABLE`,
/// which clients retry at once. [`GrpcResponder`] answers a gRPC request as a gRPC server
/// would: HTTP `200`, `content-type: application/grpc`, and a trailers-only response (the
/// status in the headers, no body) with
/// - `grpc-status`: the code of the table below;
/// - `grpc-message`: the rejection's message, percent-encoded (by tonic) as the gRPC spec says;
/// - `grpc-status-details-bin`: a `google.rpc.Status` whose details hold a
///   `google.rpc.ErrorInfo { reason: <the crate's code>, domain: "tower-jwt-guard" }`, and for
///   `LOCKED_OUT` and `RATE_LIMITED` a `google.rpc.RetryInfo` whose `retry_delay` is the time
///   after which a retry may succeed (the `Retry-After` of HTTP, never zero).
///
/// | code | gRPC status |
/// |---|---|
/// | `MISSING_TOKEN`, `INVALID_TOKEN`, `TOKEN_EXPIRED`, `TOKEN_REVOKED` | 16 `UNAUTHENTICATED` |
/// | `FORBIDDEN` | 7 `PERMISSION_DENIED` |
/// | `LOCKED_OUT`, `RATE_LIMITED` | 8 `RESOURCE_EXHAUSTED` (not retried by default) |
/// | `AUTH_FAILED` | 14 `UNAVAILABLE`: the crate uses it when authentication could not be completed for a reason that is not the client's and may pass (keys not fetched yet, a store out of reach), which is what `UNAVAILABLE` means to a client: retry with backoff. It also covers wiring mistakes (an extractor on a route without the layer), which no retry fixes; those are logged at `ERROR` |
/// | `INVALID_REQUEST` | 3 `INVALID_ARGUMENT` |
///
/// The statuses are built by tonic (`Status::into_http`) and the details by `tonic-types`;
/// a tonic client reads them with `tonic_types::StatusExt::get_error_details`.
///
/// **Which requests are gRPC.** A request is answered in gRPC when it is an HTTP/2 `POST`
/// whose `content-type` is `application/grpc` or starts with `application/grpc+` or
/// `application/grpc;` (what every gRPC client sends, and gRPC requires all three), or always
/// with [`GrpcResponder::always`]. The content type alone is the client's to choose: an
/// HTTP/1.1 `GET` claiming to be gRPC still gets its `401`, so refusals never show up as
/// `200` in access logs, metrics or status-based alerting. gRPC refusals also carry
/// `cache-control: no-store`, so that no cache keeps an empty `200`. gRPC-Web requests
/// (`application/grpc-web*`) are not recognised: translate them to gRPC before the crate's
/// layers see them (tonic-web's `GrpcWebLayer`, placed outside them, does); the crate's tests
/// do not cover gRPC-Web.
///
/// ```
/// use http::request::Parts;
/// use tower_jwt_guard::{AuthError, response::{GrpcResponder, Responder}};
///
/// let responder = GrpcResponder::new();
/// let (mut parts, ()) = http::Request::post("/pkg.Svc/Call")
///     .version(http::Version::HTTP_2)
///     .header("content-type", "application/grpc")
///     .body(())
///     .unwrap()
///     .into_parts();
/// let response = responder.respond(&mut parts, &AuthError::missing_token());
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["grpc-status"], "16");
/// ```
#[derive(Debug, Clone, Default)]
pub struct GrpcResponder<R = JsonResponder> {
    other: R,
    always: bool,
}

impl GrpcResponder {
    /// gRPC for gRPC requests, [`JsonResponder`] for the others.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<R> GrpcResponder<R> {
    /// gRPC for gRPC requests, `other` for the others (e.g. a
    /// [`CloseFrameResponder`](crate::ws::CloseFrameResponder) for WebSocket upgrades).
    pub fn with_fallback(other: R) -> Self {
        Self {
            other,
            always: false,
        }
    }

    /// Answers every request in gRPC, whatever its `content-type` (a server that serves
    /// nothing else).
    pub fn always(mut self) -> Self {
        self.always = true;
        self
    }

    /// The gRPC response for `error`: HTTP `200`, trailers-only, empty body.
    pub fn render(&self, error: &AuthError) -> Response<Bytes> {
        let mut response = grpc_status(error).into_http::<Bytes>();
        // The status is in the headers; tonic also stores it in the extensions, which nobody
        // downstream of a rejection reads.
        response.extensions_mut().clear();
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        response
    }
}

impl<R: Responder> Responder for GrpcResponder<R> {
    fn respond(&self, request: &mut Parts, error: &AuthError) -> Response<Bytes> {
        if self.always || is_grpc_request(request) {
            self.render(error)
        } else {
            self.other.respond(request, error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(content_type: Option<&str>) -> Parts {
        let mut builder = http::Request::post("/svc/Method").version(http::Version::HTTP_2);
        if let Some(ct) = content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn grpc_content_types_are_recognised() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "application/GRPC+json",
            "application/grpc;charset=utf-8",
        ] {
            assert!(is_grpc(&parts(Some(ct)).headers), "{ct}");
        }
        for ct in [
            "application/json",
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpcx",
            "text/plain",
        ] {
            assert!(!is_grpc(&parts(Some(ct)).headers), "{ct}");
        }
        assert!(!is_grpc(&parts(None).headers));
    }

    #[test]
    fn only_an_http2_post_is_answered_in_grpc() {
        let missing = AuthError::missing_token();
        let responder = GrpcResponder::new();
        let mut h2_post = parts(Some("application/grpc"));
        assert_eq!(responder.respond(&mut h2_post, &missing).status(), 200);
        let mut h1_post = parts(Some("application/grpc"));
        h1_post.version = http::Version::HTTP_11;
        assert_eq!(responder.respond(&mut h1_post, &missing).status(), 401);
        let mut h2_get = parts(Some("application/grpc"));
        h2_get.method = http::Method::GET;
        assert_eq!(responder.respond(&mut h2_get, &missing).status(), 401);
    }

    #[test]
    fn every_code_maps_as_documented() {
        use ErrorCode::*;
        let table = [
            (MissingToken, Code::Unauthenticated),
            (InvalidToken, Code::Unauthenticated),
            (TokenExpired, Code::Unauthenticated),
            (TokenRevoked, Code::Unauthenticated),
            (Forbidden, Code::PermissionDenied),
            (LockedOut, Code::ResourceExhausted),
            (RateLimited, Code::ResourceExhausted),
            (AuthFailed, Code::Unavailable),
            (InvalidRequest, Code::InvalidArgument),
        ];
        for (code, grpc) in table {
            assert_eq!(grpc_code(code), grpc, "{code}");
        }
    }

    #[test]
    fn a_rejection_is_a_trailers_only_grpc_response_with_details() {
        let error = AuthError::new(ErrorCode::RateLimited, "slow down: 100% used")
            .with_retry_after(Duration::from_millis(1500));
        let mut request = parts(Some("application/grpc"));
        let response = GrpcResponder::new().respond(&mut request, &error);
        assert_eq!(response.status(), 200);
        assert!(response.body().is_empty());
        let headers = response.headers();
        assert_eq!(headers[CONTENT_TYPE], "application/grpc");
        assert_eq!(headers[http::header::CACHE_CONTROL], "no-store");
        assert_eq!(headers["grpc-status"], "8");
        // Percent-encoded, as the gRPC spec asks (tonic encodes spaces too).
        assert_eq!(headers["grpc-message"], "slow%20down:%20100%25%20used");
        let status = Status::from_header_map(headers).unwrap();
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(info.reason, "RATE_LIMITED");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(
            details.retry_info().unwrap().retry_delay,
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn an_unavailable_store_is_unavailable_with_a_retry_time() {
        let error = AuthError::unavailable("the lockout store is unavailable; try again shortly");
        let mut request = parts(Some("application/grpc"));
        let response = GrpcResponder::new().respond(&mut request, &error);
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["grpc-status"], "14");
        let details = Status::from_header_map(response.headers())
            .unwrap()
            .get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "AUTH_FAILED");
        assert_eq!(
            details.retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(1))
        );
        // The same rejection for a plain HTTP request: 503 with Retry-After.
        let mut request = parts(Some("application/json"));
        let response = GrpcResponder::new().respond(&mut request, &error);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
    }

    #[test]
    fn other_requests_go_to_the_fallback_unless_always() {
        let mut request = parts(Some("application/json"));
        let response = GrpcResponder::new().respond(&mut request, &AuthError::missing_token());
        assert_eq!(response.status(), 401);
        let response = GrpcResponder::new()
            .always()
            .respond(&mut request, &AuthError::missing_token());
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["grpc-status"], "16");
        assert!(
            Status::from_header_map(response.headers())
                .unwrap()
                .get_error_details()
                .retry_info()
                .is_none()
        );
    }

    #[test]
    fn a_zero_retry_time_is_sent_as_a_positive_one() {
        let error = AuthError::new(ErrorCode::LockedOut, "locked").with_retry_after(Duration::ZERO);
        let trailers = grpc_trailers(&error);
        let status = Status::from_header_map(&trailers).unwrap();
        assert!(
            status
                .get_error_details()
                .retry_info()
                .unwrap()
                .retry_delay
                .unwrap()
                > Duration::ZERO
        );
        assert!(!trailers.contains_key(CONTENT_TYPE));
    }
}
