//! The contract between layers (`tower_jwt_guard::outcome`), kept by an authentication layer
//! that is not this crate's: an axum `from_fn` middleware checking an API key. Behind it the
//! crate's lockout counts its refusals and resets on its successes, and the rate limit keys on
//! the subject it reports, through a real server on loopback.
#![cfg(all(feature = "axum", feature = "lockout", feature = "rate-limit"))]

mod common;

use std::num::NonZeroU32;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use tower_jwt_guard::AuthContext;
use tower_jwt_guard::ErrorCode;
use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy};
use tower_jwt_guard::outcome::{self, AuthRejection};
use tower_jwt_guard::rate_limit::{PlanQuotas, Quota, UserRateLimitLayer};

use common::{Reply, TestServer, client_from, send};

/// A hand-written authentication layer: `X-Api-Key: good-key` is the service `billing`.
async fn api_key_auth(mut req: Request, next: Next) -> Response {
    let key = req
        .headers()
        .get("x-api-key")
        .map(|v| v.as_bytes().to_vec());
    match key.as_deref() {
        Some(b"good-key") => {
            outcome::authenticated(req.extensions_mut(), AuthContext::for_subject("billing"));
            next.run(req).await
        }
        _ => {
            let mut response = (StatusCode::UNAUTHORIZED, "bad api key").into_response();
            response.extensions_mut().insert(AuthRejection {
                code: ErrorCode::InvalidToken,
            });
            response
        }
    }
}

async fn whoami(context: AuthContext) -> String {
    context.subject().unwrap_or_default().to_owned()
}

async fn serve() -> TestServer {
    let clock = FakeClock::at_unix_secs(common::NOW);
    let lockout = LockoutLayer::builder(
        LockoutPolicy::new()
            .max_failures(NonZeroU32::new(3).unwrap())
            .window(Duration::from_secs(60))
            .reset_on_success(),
    )
    .clock(clock.clone())
    .build()
    .unwrap();
    let rate_limit = UserRateLimitLayer::builder(PlanQuotas::new(Quota::per_minute(
        NonZeroU32::new(4).unwrap(),
    )))
    .clock(clock)
    .build()
    .unwrap();
    let app = Router::new()
        .route("/", get(whoami))
        .layer(rate_limit)
        .layer(middleware::from_fn(api_key_auth))
        .layer(lockout);
    common::serve(app).await
}

async fn call(server: &TestServer, from: &str, key: &str) -> Reply {
    send(
        client_from(from)
            .get(server.url("/"))
            .header("x-api-key", key),
    )
    .await
}

#[tokio::test]
async fn the_lockout_counts_a_foreign_layer_s_refusals() {
    let server = serve().await;
    for _ in 0..3 {
        assert_eq!(call(&server, "127.0.0.2", "guess").await.status, 401);
    }
    // Locked: even the right key is refused, before the foreign layer runs.
    let locked = call(&server, "127.0.0.2", "good-key").await;
    assert_eq!(locked.status, 429);
    assert_eq!(locked.code().as_deref(), Some("LOCKED_OUT"));
    // Another address is not.
    let other = call(&server, "127.0.0.3", "good-key").await;
    assert_eq!((other.status, other.text.as_str()), (200, "billing"));
}

#[tokio::test]
async fn a_foreign_layer_s_success_resets_the_failures() {
    let server = serve().await;
    for _ in 0..2 {
        assert_eq!(call(&server, "127.0.0.4", "guess").await.status, 401);
    }
    assert_eq!(call(&server, "127.0.0.4", "good-key").await.status, 200);
    // The count started again: two more failures do not lock.
    for _ in 0..2 {
        assert_eq!(call(&server, "127.0.0.4", "guess").await.status, 401);
    }
    assert_eq!(call(&server, "127.0.0.4", "good-key").await.status, 200);
}

#[tokio::test]
async fn the_rate_limit_keys_on_the_subject_a_foreign_layer_reports() {
    let server = serve().await;
    // Four requests from four addresses spend one quota: the subject's.
    for i in 0..4 {
        let reply = call(&server, &format!("127.0.1.{}", i + 1), "good-key").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let limited = call(&server, "127.0.1.9", "good-key").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.code().as_deref(), Some("RATE_LIMITED"));
    assert!(limited.header("retry-after").is_some());
}
