//! A real HTTP client (reqwest, no proxy, bounded timeouts) and what the tests assert about
//! its replies.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use super::TestServer;

/// Upper bound for any single HTTP exchange in a test.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A reqwest client with no proxy and bounded timeouts.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .build()
        .expect("reqwest client")
}

/// A client whose connections come from `ip` (any address in 127.0.0.0/8 is loopback), so
/// that per-address rules (the lockout) tell clients apart.
pub fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(ip.parse::<IpAddr>().expect("an IP address"))
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .build()
        .expect("reqwest client")
}

/// What the tests look at in a response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// The body as JSON; panics (showing status and body) when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}); status {}: {:?}",
                self.status, self.text
            )
        })
    }

    /// `body.error.code`, if the body is a rejection.
    pub fn code(&self) -> Option<String> {
        serde_json::from_str::<Value>(&self.text)
            .ok()?
            .pointer("/error/code")?
            .as_str()
            .map(str::to_owned)
    }
}

/// Sends `request` with a hard upper bound on the whole exchange.
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let exchange = async {
        let response = request.send().await.expect("request failed");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("response body");
        Reply {
            status,
            headers,
            text,
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .expect("the exchange did not finish in time")
}

/// `GET url` with `Authorization: Bearer <token>`.
pub async fn get_bearer(server: &TestServer, token: &str) -> Reply {
    send(
        client()
            .get(server.url("/me"))
            .header("authorization", format!("Bearer {token}")),
    )
    .await
}

/// Asserts a successful pass through the layer for `subject`.
pub fn assert_accepted(reply: &Reply, subject: &str) {
    assert_eq!(reply.status, 200, "expected 200, got body {:?}", reply.text);
    let body = reply.json();
    assert_eq!(body["authenticated"], true, "{body}");
    assert_eq!(body["subject"], subject, "{body}");
    assert_eq!(body["claims_sub"], subject, "{body}");
}

/// The HTTP status and RFC 6750 `error` parameter the default responder uses for `code`.
fn expected_for(code: &str) -> (u16, Option<&'static str>) {
    match code {
        "MISSING_TOKEN" => (401, None),
        "INVALID_TOKEN" | "TOKEN_EXPIRED" | "TOKEN_REVOKED" => (401, Some("invalid_token")),
        "FORBIDDEN" => (403, Some("insufficient_scope")),
        "LOCKED_OUT" | "RATE_LIMITED" => (429, None),
        "AUTH_FAILED" => (500, None),
        "INVALID_REQUEST" => (400, Some("invalid_request")),
        other => panic!("unknown code {other}"),
    }
}

/// Asserts that `reply` is the default JSON rejection with `code`: status, JSON shape,
/// content type and `WWW-Authenticate` per RFC 6750.
pub fn assert_rejected(reply: &Reply, code: &str) {
    let (status, bearer_error) = expected_for(code);
    assert_eq!(
        reply.status, status,
        "expected {status} {code}, got body {:?}",
        reply.text
    );
    assert_eq!(reply.code().as_deref(), Some(code), "body {:?}", reply.text);
    let body = reply.json();
    let error = body["error"].as_object().expect("error object");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    assert_eq!(error.len(), 2, "{body}");
    let message = error["message"].as_str().expect("message string");
    assert!(!message.is_empty(), "{body}");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let www = reply.header("www-authenticate");
    match (status, bearer_error) {
        (401 | 403, None) => assert_eq!(www, Some("Bearer"), "{code}"),
        (400 | 401 | 403, Some(e)) => {
            let www = www.expect("WWW-Authenticate");
            assert!(www.starts_with("Bearer "), "{www}");
            assert!(www.contains(&format!("error=\"{e}\"")), "{www}");
        }
        _ => assert_eq!(www, None, "{code}"),
    }
}
