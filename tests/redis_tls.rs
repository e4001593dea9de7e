//! TLS to Redis (`rediss://`, feature `redis-tls`): a real `redis-server` that speaks only TLS,
//! with a certificate signed by a CA the test makes. With that CA trusted, two instances share
//! their lockout over TLS; without it (the webpki roots), the certificate is refused and the
//! instance answers from memory, as in any outage.
#![cfg(all(feature = "redis-tls", feature = "axum"))]

mod common;
#[path = "common/redis_app.rs"]
mod redis_app;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::redis::RedisClient;

use redis_app::{ask, redis_app, redis_app_token};

#[tokio::test]
async fn rediss_with_the_servers_ca_shares_state_and_an_untrusted_certificate_is_refused() {
    let (redis, ca) = redis_server::start_tls();
    // The scheme in capitals: still TLS (schemes are case-insensitive).
    let url = format!("REDISS://{}/0", redis.addr);
    let clock = FakeClock::starting_now();
    let trusted = || {
        RedisClient::builder(url.as_str())
            .timeout(Duration::from_millis(500))
            .tls_root_certificate(ca.clone())
            .build()
            .unwrap()
    };
    let a = redis_app(trusted(), &clock, 1_000_000).await;
    let b = redis_app(trusted(), &clock, 1_000_000).await;
    let ok = redis_app_token(&clock, "tls-user");
    for app in [&a, &b, &a, &b] {
        assert_eq!(ask(app, "127.0.4.1", "not.a.jwt").await.status, 401);
    }
    assert_eq!(ask(&b, "127.0.4.1", &ok).await.status, 200);
    assert_eq!(ask(&a, "127.0.4.1", "not.a.jwt").await.status, 401);
    assert_eq!(
        ask(&b, "127.0.4.1", &ok).await.status,
        429,
        "locked through Redis over TLS"
    );
    let keys: u64 = redis.cli(&["DBSIZE"]).parse().unwrap();
    assert!(keys > 0);

    // The webpki roots do not hold the test's CA: the handshake fails, nothing reaches Redis.
    let untrusted = RedisClient::builder(url.as_str())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let c = redis_app(untrusted, &clock, 1_000_000).await;
    assert_eq!(
        ask(&c, "127.0.4.1", &ok).await.status,
        200,
        "c cannot read the shared lock"
    );
    redis.cli(&["FLUSHALL"]);
    assert_eq!(ask(&c, "127.0.4.2", &ok).await.status, 200);
    assert_eq!(
        redis.cli(&["DBSIZE"]),
        "0",
        "nothing written without TLS trust"
    );

    // Plain redis:// to a TLS-only port is an outage too, never a hang.
    let plain = RedisClient::builder(format!("redis://{}/0", redis.addr))
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let d = redis_app(plain, &clock, 1_000_000).await;
    let answer = ask(&d, "127.0.4.3", &ok).await;
    assert_eq!(answer.status, 200);
    assert!(answer.took < Duration::from_secs(1), "{answer:?}");
}

#[test]
fn a_root_certificate_that_is_not_pem_is_a_configuration_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let error = RedisClient::builder("rediss://127.0.0.1:1/0")
        .tls_root_certificate(b"not a certificate".to_vec())
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("TLS"), "{error}");
    // A CA for a plaintext URL: refused, never a plaintext connection the user did not mean.
    let pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec();
    let error = RedisClient::builder("redis://127.0.0.1:1/0")
        .tls_root_certificate(pem)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("not rediss://"), "{error}");
}
