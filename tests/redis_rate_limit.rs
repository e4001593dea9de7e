//! Per-user quotas on Redis: two app instances (real axum servers on loopback) share one real
//! `redis-server` started by the test. A user's quota is one budget across the instances, time
//! comes from Redis's clock, and with Redis killed every request is still answered.
#![cfg(all(feature = "redis", feature = "axum"))]

mod common;
#[path = "common/redis_app.rs"]
mod redis_app;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::redis::RedisClient;

use redis_app::{RedisApp, ask, redis_app, redis_app_token};
use redis_server::RedisServer;

/// An instance whose route allows 4 requests per minute per user, counted on `redis_url`.
async fn instance(redis_url: &str) -> RedisApp {
    let client = RedisClient::builder(redis_url)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    redis_app(client, &FakeClock::starting_now(), 4).await
}

fn token(sub: &str) -> String {
    redis_app_token(&FakeClock::starting_now(), sub)
}

/// Status and `Retry-After` of `GET /` with `token`, within 2 s.
async fn request(instance: &RedisApp, token: &str) -> (u16, Option<u64>) {
    let answer = ask(instance, "127.0.0.1", token).await;
    (answer.status, answer.retry_after)
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

/// Two stores with the same quotas share their users' buckets only under the same namespace.
#[tokio::test]
async fn namespaces_keep_equal_quotas_apart() {
    use std::num::NonZeroU32;
    use std::sync::Arc;
    use tower_jwt_guard::rate_limit::{PlanQuotas, Quota, RateDecision, RateLimitStore};
    use tower_jwt_guard::redis::RedisRateLimitStore;

    let redis = RedisServer::start();
    let client = RedisClient::builder(redis.url(0))
        .timeout(Duration::from_millis(500))
        .outage_policy(tower_jwt_guard::redis::OutagePolicy::FailClosed)
        .build()
        .unwrap();
    let quotas = PlanQuotas::new(Quota::per_minute(NonZeroU32::new(2).unwrap()));
    let store =
        |name: &str| RedisRateLimitStore::new(client.clone(), quotas.clone()).namespace(name);
    let (orders, also_orders, messages) = (store("orders"), store("orders"), store("messages"));
    let user: Arc<str> = Arc::from("a:b}c{d");
    let allowed = |d: RateDecision| matches!(d, RateDecision::Allowed { .. });
    assert!(allowed(orders.check(&user, None, false).await.unwrap()));
    assert!(allowed(
        also_orders.check(&user, None, false).await.unwrap()
    ));
    // The third in the minute, on the shared "orders" bucket: refused.
    assert!(!allowed(orders.check(&user, None, false).await.unwrap()));
    // "messages" has a bucket of its own.
    assert!(allowed(messages.check(&user, None, false).await.unwrap()));
    assert!(allowed(messages.check(&user, None, false).await.unwrap()));
    assert_eq!(redis.cli(&["DBSIZE"]), "2");
}
