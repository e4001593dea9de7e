//! The lockout on Redis: two app instances, each a real axum server on loopback with its own
//! lockout layer, share one real `redis-server` started by the test. Failures split across the
//! instances add up; a lock earned on one is enforced by the other; with Redis killed every
//! request is still answered (each instance falls back to memory), and after a restart on the
//! same port the shared behaviour resumes.
#![cfg(all(feature = "redis", feature = "axum"))]

mod common;
#[path = "common/redis_app.rs"]
mod redis_app;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::redis::RedisClient;

use redis_app::{RedisApp, ask, redis_app, redis_app_token};
use redis_server::RedisServer;

/// One app instance on `redis_url`, on the shared `clock` (a quota never reached).
async fn instance(redis_url: &str, clock: &FakeClock) -> RedisApp {
    let client = RedisClient::builder(redis_url)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    redis_app(client, clock, 1_000_000).await
}

fn valid(clock: &FakeClock) -> String {
    redis_app_token(clock, "u")
}

/// The status of `GET /` from `from` with `token`, within 2 s.
async fn status(instance: &RedisApp, from: &str, token: &str) -> u16 {
    ask(instance, from, token).await.status
}

#[tokio::test]
async fn failures_add_up_across_instances_and_a_lock_holds_on_both() {
    let redis = RedisServer::start();
    let clock = FakeClock::starting_now();
    let a = instance(&redis.url(0), &clock).await;
    let b = instance(&redis.url(0), &clock).await;
    let ok = valid(&clock);
    // Four failures, two on each instance: not locked (the policy locks at five).
    for instance in [&a, &b, &a, &b] {
        assert_eq!(status(instance, "127.0.0.21", "not.a.jwt").await, 401);
    }
    assert_eq!(status(&a, "127.0.0.21", &ok).await, 200);
    assert_eq!(status(&b, "127.0.0.21", &ok).await, 200);
    // The fifth, on either, locks the address on both.
    assert_eq!(status(&b, "127.0.0.21", "not.a.jwt").await, 401);
    assert_eq!(status(&a, "127.0.0.21", &ok).await, 429);
    assert_eq!(status(&b, "127.0.0.21", &ok).await, 429);
    // Another address is not affected.
    assert_eq!(status(&a, "127.0.0.22", &ok).await, 200);
    // The lock ends after 15 minutes, by the shared clock.
    clock.advance(Duration::from_secs(15 * 60 + 1));
    assert_eq!(status(&b, "127.0.0.21", &ok).await, 200);
}

#[tokio::test]
async fn redis_down_every_request_is_answered_and_sharing_resumes_after_a_restart() {
    let mut redis = RedisServer::start();
    let clock = FakeClock::starting_now();
    let a = instance(&redis.url(0), &clock).await;
    let b = instance(&redis.url(0), &clock).await;
    let ok = valid(&clock);
    assert_eq!(status(&a, "127.0.0.31", &ok).await, 200);

    redis.kill();
    // Every request is answered within the 2 s bound; valid tokens pass (fallback in memory).
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(status(&a, "127.0.0.32", &ok).await, 200);
    }
    // The fallback still counts failures, per instance.
    for _ in 0..5 {
        assert_eq!(status(&a, "127.0.0.33", "bad").await, 401);
    }
    assert_eq!(
        status(&a, "127.0.0.33", &ok).await,
        429,
        "the fallback locks too"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    redis.restart();
    // Shared behaviour resumes within 5 s, without restarting the app.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // 401, or 429 while b still counts in its fallback.
        let refused = status(&b, "127.0.0.34", "bad").await;
        assert!(refused == 401 || refused == 429, "{refused}");
        if Instant::now() > deadline {
            panic!("shared state did not resume within 5 s");
        }
        // Once Redis answers again, five failures on b lock the address on a.
        if status(&a, "127.0.0.34", &ok).await == 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Redis that stops answering (`DEBUG SLEEP`) costs the first call its timeout; then one
/// call a second probes it and the others fall back at once, so requests do not each wait.
#[tokio::test]
async fn a_slow_redis_hits_the_timeout_not_every_request() {
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let clock = FakeClock::starting_now();
    let a = instance(&redis.url(0), &clock).await;
    let ok = valid(&clock);
    assert_eq!(status(&a, "127.0.0.41", &ok).await, 200);
    let sleeper = redis.sleep(3).await;
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(status(&a, "127.0.0.41", &ok).await, 200);
    }
    let took = started.elapsed();
    // Without the probe, each of the ten would wait for the 200 ms timeout (2 s in all).
    assert!(
        took < Duration::from_millis(1500),
        "ten requests took {took:?}"
    );
    sleeper.await.unwrap();
}
