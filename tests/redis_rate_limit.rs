//! Per-user quotas on Redis: two app instances (real axum servers on loopback) share one real
//! `redis-server` started by the test. A user's quota is one budget across the instances, time
//! comes from Redis's clock, and with Redis killed every request is still answered.
#![cfg(all(feature = "redis", feature = "axum"))]

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::num::NonZeroU32;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use governor::Quota;
use serde_json::json;
use tower::ServiceBuilder;
use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::jsonwebtoken::{EncodingKey, Header, encode};
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::rate_limit::{PlanQuotas, UserRateLimitLayer};
use tower_jwt_guard::redis::{RedisClient, RedisRateLimitStore};
use tower_jwt_guard::validate::Validator;

use redis_server::RedisServer;

const SECRET: &[u8] = b"redis-rate-limit-test-secret-0123456789abc";

#[derive(Clone, serde::Deserialize)]
struct Sub {
    #[allow(dead_code)]
    sub: String,
}

struct Instance {
    base: String,
    _server: common::TestServer,
}

/// An instance whose route allows 4 requests per minute per user, counted on `redis_url`.
async fn instance(redis_url: &str) -> Instance {
    tower_jwt_guard::crypto::install_crypto_provider();
    let validator = Validator::<Sub>::builder()
        .key(Key::hmac(SECRET).unwrap())
        .build()
        .unwrap();
    let quotas = PlanQuotas::new(Quota::per_minute(NonZeroU32::new(4).unwrap()));
    let client = RedisClient::builder(redis_url)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let limit = UserRateLimitLayer::builder(quotas.clone())
        .store(RedisRateLimitStore::new(client, quotas))
        .build()
        .unwrap();
    let app = Router::new().route("/", get(|| async { "ok" })).layer(
        ServiceBuilder::new()
            .layer(JwtAuthLayer::new(validator))
            .layer(limit),
    );
    let server = common::serve(app).await;
    Instance {
        base: server.url("/"),
        _server: server,
    }
}

fn token(sub: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    encode(
        &Header::default(),
        &json!({"sub": sub, "exp": now + 3600}),
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

/// Status and `Retry-After` of `GET /` with `token`, within 2 s.
async fn request(instance: &Instance, token: &str) -> (u16, Option<u64>) {
    let reply = tokio::time::timeout(
        Duration::from_secs(2),
        common::client_from("127.0.0.1")
            .get(&instance.base)
            .bearer_auth(token)
            .send(),
    )
    .await
    .expect("answered within 2 s")
    .unwrap();
    let retry = reply
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (reply.status().as_u16(), retry)
}

#[tokio::test]
async fn a_users_quota_is_one_budget_across_instances() {
    let redis = RedisServer::start();
    let a = instance(&redis.url(0)).await;
    let b = instance(&redis.url(0)).await;
    let alice = token("alice");
    for instance in [&a, &b, &a, &b] {
        assert_eq!(request(instance, &alice).await.0, 200);
    }
    // The fifth in the minute, on either instance, is refused; 4 per minute refill one every
    // 15 s.
    let (status, retry) = request(&a, &alice).await;
    assert_eq!(status, 429);
    assert!(matches!(retry, Some(14..=15)), "{retry:?}");
    assert_eq!(request(&b, &alice).await.0, 429);
    // Another user has a budget of their own.
    assert_eq!(request(&b, &token("bob")).await.0, 200);
}

#[tokio::test]
async fn with_redis_down_every_request_is_answered_by_the_fallback() {
    let mut redis = RedisServer::start();
    let a = instance(&redis.url(0)).await;
    redis.kill();
    let carol = token("carol");
    // The in-memory fallback counts on its own: 4 pass, the 5th is refused.
    for _ in 0..4 {
        assert_eq!(request(&a, &carol).await.0, 200);
    }
    assert_eq!(request(&a, &carol).await.0, 429);
}
