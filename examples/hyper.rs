//! The full stack (lockout → authentication → per-user rate limit) on a bare hyper 1 server, no
//! framework: `cargo run --example hyper`.
//!
//! What a bare server has to do itself, and this example shows:
//! - put the connection's peer address in each request ([`PeerAddr`]), or the lockout has no
//!   address to count (it then lets requests through and warns once);
//! - adapt the Tower stack to hyper with hyper-util's `TowerToHyperService`;
//! - use any body type: the handler answers with `Full<Bytes>`, and the crate's layers wrap it
//!   in their `GuardBody`, so a rejection needs no conversion.
//!
//! Environment: `HYPER_ADDR` (default `127.0.0.1:3001`), `JWT_SECRET` (at least 32 bytes; a
//! random one when unset). It prints a token for `alice` and a `curl` line to try.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tower::ServiceBuilder;
use tower_jwt_guard::clock::Clock;
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy};
use tower_jwt_guard::peer::PeerAddr;
use tower_jwt_guard::rate_limit::{PlanQuotas, Quota, UserRateLimitLayer};
use tower_jwt_guard::validate::Validator;
use tower_jwt_guard::{AuthContext, Claims, ConfigError, JwtAuthLayer};

/// The example's claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExampleClaims {
    /// The user.
    pub sub: String,
    /// Expiry.
    pub exp: u64,
}

/// The three layers, built once and cloned into every connection's service.
#[derive(Clone)]
pub struct Stack {
    lockout: LockoutLayer,
    auth: JwtAuthLayer<ExampleClaims>,
    limit: UserRateLimitLayer,
}

/// The stack: 5 failures in 15 minutes lock an address, HS256 tokens signed with `secret`,
/// 60 requests per minute per user; time from `clock`.
pub fn stack(secret: &[u8], clock: Arc<dyn Clock>) -> Result<Stack, ConfigError> {
    let validator = Validator::<ExampleClaims>::builder()
        .key(Key::hmac(secret)?)
        .clock(Arc::clone(&clock))
        .build()?;
    Ok(Stack {
        lockout: LockoutLayer::builder(LockoutPolicy::new())
            .clock(Arc::clone(&clock))
            .build()?,
        auth: JwtAuthLayer::new(validator),
        limit: UserRateLimitLayer::builder(PlanQuotas::new(Quota::per_minute(
            NonZeroU32::new(60).expect("not zero"),
        )))
        .clock(clock)
        .build()?,
    })
}

/// `GET /me`: who the token says the caller is. Reached only by authenticated requests.
async fn handler(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/me" {
        let mut not_found = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        return Ok(not_found);
    }
    let subject = req
        .extensions()
        .get::<AuthContext>()
        .and_then(AuthContext::subject);
    let exp = req
        .extensions()
        .get::<Claims<ExampleClaims>>()
        .map(|c| c.exp);
    let body = serde_json::json!({ "sub": subject, "exp": exp }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Serves `stack` around [`handler`] on `listener` (HTTP/1.1 and HTTP/2) until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    stack: Stack,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let service = ServiceBuilder::new()
            // The peer of this connection, for the lockout (and the audit events).
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                req
            })
            .layer(stack.lockout.clone())
            .layer(stack.auth.clone())
            .layer(stack.limit.clone())
            .service_fn(handler);
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .await;
        });
    }
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use tower_jwt_guard::clock::SystemClock;
    use tower_jwt_guard::jsonwebtoken::{EncodingKey, Header, encode};

    tower_jwt_guard::crypto::install_crypto_provider();
    let secret = match std::env::var("JWT_SECRET") {
        Ok(s) if !s.is_empty() => s.into_bytes(),
        _ => rand::random::<[u8; 32]>().to_vec(),
    };
    let stack = stack(&secret, Arc::new(SystemClock))?;
    let addr: SocketAddr = std::env::var("HYPER_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3001".to_owned())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let claims = ExampleClaims {
        sub: "alice".into(),
        exp: SystemClock.now().as_secs() + 900,
    };
    let token = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(&secret)?,
    )?;
    println!(
        "hyper example on http://{local}\n  curl -s http://{local}/me -H \"Authorization: Bearer {token}\""
    );
    serve(listener, stack, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
