#![allow(dead_code)]
//! An app instance whose lockout and per-user quota live on Redis: a real axum server on
//! loopback with `LockoutLayer` → `JwtAuthLayer` → `UserRateLimitLayer` in front of `GET /`,
//! given the `RedisClient` to use (one server or a cluster, either outage policy).

use std::num::NonZeroU32;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use governor::Quota;
use serde_json::json;
use tower::ServiceBuilder;
use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::jsonwebtoken::{EncodingKey, Header, encode};
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy};
use tower_jwt_guard::rate_limit::{PlanQuotas, UserRateLimitLayer};
use tower_jwt_guard::redis::{RedisClient, RedisLockoutStore, RedisRateLimitStore};
use tower_jwt_guard::validate::Validator;

use crate::common::{TestServer, client_from, serve};

pub const SECRET: &[u8] = b"redis-app-test-secret-0123456789abcdefghij";

#[derive(Clone, serde::Deserialize)]
struct Sub {
    #[allow(dead_code)]
    sub: String,
}

/// A running instance.
pub struct RedisApp {
    pub base: String,
    _server: TestServer,
}

/// An instance on `client`: the default lockout policy (5 failures in 5 min lock for 15 min)
/// on `clock`, and `per_minute` requests a minute per user.
pub async fn redis_app(client: RedisClient, clock: &FakeClock, per_minute: u32) -> RedisApp {
    tower_jwt_guard::crypto::install_crypto_provider();
    let validator = Validator::<Sub>::builder()
        .key(Key::hmac(SECRET).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    let policy = LockoutPolicy::new();
    let lockout = LockoutLayer::builder(policy.clone())
        .store(RedisLockoutStore::new(client.clone(), &policy))
        .clock(clock.clone())
        .build()
        .unwrap();
    let quotas = PlanQuotas::new(Quota::per_minute(NonZeroU32::new(per_minute).unwrap()));
    let limit = UserRateLimitLayer::builder(quotas.clone())
        .store(RedisRateLimitStore::new(client, quotas))
        .build()
        .unwrap();
    let app = Router::new().route("/", get(|| async { "ok" })).layer(
        ServiceBuilder::new()
            .layer(lockout)
            .layer(JwtAuthLayer::new(validator))
            .layer(limit),
    );
    let server = serve(app).await;
    RedisApp {
        base: server.url("/"),
        _server: server,
    }
}

/// A valid token of `sub` for an hour from `clock`'s now.
pub fn redis_app_token(clock: &FakeClock, sub: &str) -> String {
    use tower_jwt_guard::clock::Clock;
    let now = clock.now().as_secs();
    encode(
        &Header::default(),
        &json!({"sub": sub, "exp": now + 3600}),
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

/// What one request got: status, `code` of a JSON refusal, `Retry-After`, and how long it took.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub code: Option<String>,
    pub retry_after: Option<u64>,
    pub took: Duration,
}

/// `GET /` on `app` from `from` with `token`; panics when it is not answered within 2 s.
pub async fn ask(app: &RedisApp, from: &str, token: &str) -> Answer {
    let started = std::time::Instant::now();
    let reply = tokio::time::timeout(
        Duration::from_secs(2),
        client_from(from).get(&app.base).bearer_auth(token).send(),
    )
    .await
    .expect("answered within 2 s")
    .expect("an HTTP answer");
    let status = reply.status().as_u16();
    let retry_after = reply
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body: serde_json::Value = reply.json().await.unwrap_or_default();
    Answer {
        status,
        code: body["error"]["code"].as_str().map(str::to_owned),
        retry_after,
        took: started.elapsed(),
    }
}
