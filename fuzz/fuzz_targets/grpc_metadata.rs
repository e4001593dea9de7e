//! gRPC: the rejection statuses the crate writes (headers of a trailers-only response, and the
//! trailers that end an expired stream) read back by tonic, and the request metadata it reads.
//!
//! Properties, besides "no panic":
//! - round trip: tonic reads back the code of the documented table, the message exactly (its
//!   percent-encoding undone; the crate's fixed messages, and any text written the same way), the `ErrorInfo` (reason = the rejection code, domain) and the
//!   `RetryInfo` (the retry time, at least 1 ms, at most what the message type can carry);
//! - `is_grpc` agrees with a reference reading of the first `content-type`;
//! - a token taken from request metadata is what tonic's `MetadataMap` shows the application
//!   in an `authorization` entry.
#![no_main]

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};
use tonic_types::{RetryInfo, StatusExt};
use tower_jwt_guard::extract::TokenExtractor;
use tower_jwt_guard::fuzzing::{grpc_trailers, grpc_trailers_with};
use tower_jwt_guard::response::{ERROR_DOMAIN, GrpcResponder, grpc_code, is_grpc};
use tower_jwt_guard::{AuthError, ErrorCode};

/// Every code and its gRPC status, as `GrpcResponder`'s documentation writes the table.
const CODES: [(ErrorCode, Code); 9] = [
    (ErrorCode::MissingToken, Code::Unauthenticated),
    (ErrorCode::InvalidToken, Code::Unauthenticated),
    (ErrorCode::TokenExpired, Code::Unauthenticated),
    (ErrorCode::TokenRevoked, Code::Unauthenticated),
    (ErrorCode::Forbidden, Code::PermissionDenied),
    (ErrorCode::LockedOut, Code::ResourceExhausted),
    (ErrorCode::RateLimited, Code::ResourceExhausted),
    (ErrorCode::AuthFailed, Code::Unavailable),
    (ErrorCode::InvalidRequest, Code::InvalidArgument),
];

/// Messages are `&'static str` in the crate; these are the awkward ones for `grpc-message`.
const MESSAGES: [&str; 8] = [
    "the token has expired",
    "",
    "100% used: slow down",
    "%41 is not A",
    "déjà vu 中文 🙂",
    "line\nbreak\ttab\r",
    "\0nul",
    "  spaced  ",
];

fuzz_target!(|data: &[u8]| {
    let [c, m, flags, r @ ..] = data else {
        return;
    };
    let (retry, metadata) = if r.len() >= 8 {
        let (retry, metadata) = r.split_at(8);
        (u64::from_le_bytes(retry.try_into().unwrap()), metadata)
    } else {
        (0, r)
    };
    let (code, grpc) = CODES[usize::from(*c) % CODES.len()];
    let message = MESSAGES[usize::from(*m) % MESSAGES.len()];
    let mut error = AuthError::new(code, message);
    let retry_after = if flags & 1 == 1 {
        // Nanoseconds, or (second bit) seconds: up to Duration::MAX.
        let d = if flags & 2 == 2 {
            Duration::from_secs(retry)
        } else {
            Duration::from_nanos(retry)
        };
        error = error.with_retry_after(d);
        Some(d)
    } else {
        None
    };

    let response = GrpcResponder::new().always().render(&error);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert!(
        response.body().is_empty(),
        "a trailers-only response has no body"
    );
    read_back(response.headers(), code, grpc, message, retry_after);
    read_back(&grpc_trailers(&error), code, grpc, message, retry_after);

    // Any text as the message, through the same writer: up to the first 0xFE.
    let (text, metadata) = match metadata.iter().position(|b| *b == 0xfe) {
        Some(i) => (&metadata[..i], &metadata[i + 1..]),
        None => (&[][..], metadata),
    };
    let text = String::from_utf8_lossy(text);
    read_back(
        &grpc_trailers_with(code, &text, retry_after),
        code,
        grpc,
        &text,
        retry_after,
    );

    // Request metadata: "name: value" lines.
    let mut headers = HeaderMap::new();
    for line in metadata.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii_start()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let expected = headers.get("content-type").is_some_and(|v| {
        let v = v.as_bytes().to_ascii_lowercase();
        v.strip_prefix(b"application/grpc")
            .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';')
    });
    assert_eq!(is_grpc(&headers), expected, "is_grpc");

    let extractor = TokenExtractor::new().bearer();
    let uri = Uri::from_static("/s/M");
    let extracted = extractor.extract(&headers, &uri, false);
    if let Ok(Some(token)) = extracted {
        let metadata = MetadataMap::from_headers(headers.clone());
        let shown = metadata
            .get_all("authorization")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(token.as_str()));
        assert!(shown, "a token that tonic's metadata does not show");
    }
});

fn read_back(
    headers: &HeaderMap,
    code: ErrorCode,
    grpc: Code,
    message: &str,
    retry_after: Option<Duration>,
) {
    let status = Status::from_header_map(headers).expect("a grpc-status tonic can read");
    assert_eq!(status.code(), grpc, "code of the documented table");
    assert_eq!(grpc_code(code), grpc, "grpc_code of the documented table");
    assert_eq!(status.message(), message, "message round trip");
    let details = status.get_error_details();
    let info = details.error_info().expect("an ErrorInfo");
    assert_eq!(info.reason, code.as_str());
    assert_eq!(info.domain, ERROR_DOMAIN);
    let expected = retry_after.map(|d| {
        d.max(Duration::from_millis(1))
            .min(RetryInfo::MAX_RETRY_DELAY)
    });
    assert_eq!(
        details.retry_info().and_then(|r| r.retry_delay),
        expected,
        "retry"
    );
}
