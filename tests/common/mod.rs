//! Shared helpers for the integration tests: key fixtures, token signing, a real axum server on
//! loopback and a real reqwest client with bounded timeouts.
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::validate::{Validator, ValidatorBuilder};
use tower_jwt_guard::{AuthContext, Claims, JwtAuthLayer};

/// A test-only HMAC secret (45 bytes, above the 32-byte minimum).
pub const HMAC_SECRET: &[u8] = b"integration-test-only-hmac-secret-0123456789";

/// The fixed "now" of most tests, read through a [`FakeClock`].
pub const NOW: u64 = 1_700_000_000;

/// Upper bound for any single HTTP exchange in a test.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The claims type the test servers deserialize into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestClaims {
    pub sub: String,
    #[serde(default)]
    pub role: Option<String>,
}

/// Installs the crate's crypto provider; must run before `jsonwebtoken::encode` when no key or
/// validator has been built yet in this process.
pub fn init_crypto() {
    tower_jwt_guard::crypto::install_crypto_provider();
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// The bytes of a file in `tests/fixtures/`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

pub fn fixture_str(name: &str) -> String {
    String::from_utf8(fixture(name)).expect("fixture is UTF-8")
}

/// Claims `{"sub": sub, "exp": exp}`.
pub fn claims(sub: &str, exp: u64) -> Value {
    json!({ "sub": sub, "exp": exp })
}

/// Claims for `sub` valid for an hour after [`NOW`].
pub fn fresh_claims(sub: &str) -> Value {
    claims(sub, NOW + 3600)
}

/// Signs `claims` with `alg`, `key` and an optional `kid`.
pub fn sign_with(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    init_crypto();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("signing a test token")
}

/// Signs `claims` with HS256 and [`HMAC_SECRET`].
pub fn sign_hs256(claims: &Value) -> String {
    sign_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(HMAC_SECRET).unwrap(),
        None,
        claims,
    )
}

/// An HS256 token for `sub`, valid at [`NOW`].
pub fn token_for(sub: &str) -> String {
    sign_hs256(&fresh_claims(sub))
}

pub fn rsa_encoding_key() -> EncodingKey {
    init_crypto();
    EncodingKey::from_rsa_pem(&fixture("rsa_private.pem")).expect("RSA fixture")
}

pub fn rsa2_encoding_key() -> EncodingKey {
    init_crypto();
    EncodingKey::from_rsa_pem(&fixture("rsa2_private.pem")).expect("RSA fixture 2")
}

pub fn ec_encoding_key() -> EncodingKey {
    init_crypto();
    EncodingKey::from_ec_pem(&fixture("ec_private.pem")).expect("EC fixture")
}

pub fn ed_encoding_key() -> EncodingKey {
    init_crypto();
    EncodingKey::from_ed_pem(&fixture("ed_private.pem")).expect("Ed25519 fixture")
}

/// A validator builder with the HMAC key and a [`FakeClock`] at [`NOW`].
pub fn hmac_builder() -> ValidatorBuilder<TestClaims> {
    Validator::<TestClaims>::builder()
        .key(Key::hmac(HMAC_SECRET).expect("HMAC key"))
        .clock(FakeClock::at_unix_secs(NOW))
}

pub fn hmac_validator() -> Validator<TestClaims> {
    hmac_builder().build().expect("validator")
}

/// The handler behind every protected test route: reports what the layer put into the request.
pub async fn whoami(req: Request) -> Response {
    let ctx = req.extensions().get::<AuthContext>();
    let claims = req.extensions().get::<Claims<TestClaims>>();
    axum::Json(json!({
        "authenticated": ctx.is_some(),
        "subject": ctx.and_then(AuthContext::subject),
        "source": ctx.and_then(AuthContext::source).map(|s| s.as_str()),
        "kid": ctx.and_then(AuthContext::key_id),
        "claims_sub": claims.map(|c| c.sub.clone()),
        "claims_role": claims.and_then(|c| c.role.clone()),
    }))
    .into_response()
}

/// A router with `/me` (any method) answered by [`whoami`], behind `layer`.
pub fn protected_router(layer: JwtAuthLayer<TestClaims>) -> Router {
    Router::new()
        .route("/me", axum::routing::any(whoami))
        .layer(layer)
}

/// A running axum server on `127.0.0.1:<ephemeral>`; aborted when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TestServer {
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` (with `ConnectInfo<SocketAddr>`) on loopback, port 0.
pub async fn serve(router: Router) -> TestServer {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    assert!(addr.ip().is_loopback());
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("axum server");
    });
    TestServer { addr, task }
}

/// Serves [`protected_router`]`(layer)`.
pub async fn serve_layer(layer: JwtAuthLayer<TestClaims>) -> TestServer {
    serve(protected_router(layer)).await
}

/// A reqwest client with no proxy and bounded timeouts.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
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
        "INVALID_TOKEN" | "TOKEN_EXPIRED" => (401, Some("invalid_token")),
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

/// A log sink for `tracing_subscriber::fmt` (through `move || buffer.clone()`): appends
/// everything to a shared buffer that the test reads back.
#[derive(Clone, Default)]
pub struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
