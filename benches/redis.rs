//! Shared state on Redis against the in-memory stores, with a real `redis-server` on loopback
//! that the bench starts itself (as the tests do; Debian's `redis-server` package).
//!
//! - `redis_store/*`: one lockout check, one recorded failure, one rate-limit check, awaited one
//!   after the other: the latency of one call (a Redis round trip, or a map lookup);
//! - `redis_store_concurrent/*`: batches of 64 calls in flight at once on the one multiplexed
//!   connection, time per call: its inverse is the checks (or requests) per second one
//!   instance gets from one connection;
//! - `redis_stack/*`: one in-process request through lockout → auth → per-user rate limit in
//!   front of an axum route (a valid, cached token; a quota never reached), the stores in
//!   memory or on Redis, and the bare route; the difference is what each adds.
//!
//! Before measuring, it counts the Redis commands per request with `INFO commandstats` (one
//! script call per check: two per valid request, two per refused one) and asserts them.
//!
//! Run: `cargo bench --all-features --bench redis -- --measurement-time 5` (see BENCHMARKS.md).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, StatusCode, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tower::ServiceExt;
use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::client_ip::IpKey;
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy, LockoutStore, MemoryLockoutStore};
use tower_jwt_guard::rate_limit::{
    MemoryRateLimitStore, PlanQuotas, Quota, RateLimitStore, UserRateLimitLayer,
};
use tower_jwt_guard::redis::{RedisClient, RedisLockoutStore, RedisRateLimitStore};
use tower_jwt_guard::validate::Validator;

mod common;
#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use common::{BenchClaims, SECRET, claims};
use redis_server::RedisServer;

const CONCURRENCY: usize = 64;

fn request(token: &str) -> Request<Body> {
    request_from(token, [127, 0, 0, 1])
}

/// A request whose peer (axum's `ConnectInfo`, which the lockout reads) is `ip`.
fn request_from(token: &str, ip: [u8; 4]) -> Request<Body> {
    let peer = std::net::SocketAddr::from((ip, 40_000));
    Request::get("/")
        .extension(axum::extract::ConnectInfo(peer))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("a valid request")
}

fn stack<L, R>(validator: &Validator<BenchClaims>, lockout: L, rate: R) -> Router
where
    L: LockoutStore,
    R: RateLimitStore,
{
    let quotas = PlanQuotas::new(Quota::per_second(NonZeroU32::MAX));
    Router::new()
        .route("/", get(|| async { "hello, world" }))
        .layer(
            UserRateLimitLayer::builder(quotas)
                .store(rate)
                .build()
                .expect("a valid configuration"),
        )
        .layer(JwtAuthLayer::new(validator.clone()))
        .layer(
            LockoutLayer::builder(LockoutPolicy::new())
                .store(lockout)
                .build()
                .expect("a valid configuration"),
        )
}

/// `cmdstat_<name>:calls=N,…` lines of `INFO commandstats`, summed over the script calls
/// (`evalsha`, `eval`: one round trip each), and over the commands that are neither those nor
/// one the scripts run inside Redis (which Redis counts too): the client's other round trips.
fn commands(redis: &RedisServer) -> (u64, u64) {
    let info = redis.cli(&["INFO", "commandstats"]);
    let (mut scripts, mut all) = (0, 0);
    for line in info.lines() {
        let Some((name, rest)) = line.trim().split_once(':') else {
            continue;
        };
        let Some(calls) = rest
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        match name {
            "cmdstat_evalsha" | "cmdstat_eval" => scripts += calls,
            // Run by the scripts: lockout (HMGET, HSET, PEXPIRE), GCRA (TIME, GET, SET).
            "cmdstat_hmget" | "cmdstat_hset" | "cmdstat_pexpire" | "cmdstat_time"
            | "cmdstat_get" | "cmdstat_set" => {}
            _ => all += calls,
        }
    }
    (scripts, all)
}

fn bench_redis(c: &mut Criterion) {
    tower_jwt_guard::crypto::install_crypto_provider();
    let redis = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let client = rt.block_on(async {
        RedisClient::builder(redis.url(0))
            .build()
            .expect("a Redis client")
    });
    let policy = LockoutPolicy::new();
    let quotas = PlanQuotas::new(Quota::per_second(NonZeroU32::MAX));
    let memory_lockout = Arc::new(MemoryLockoutStore::new(policy.tracked_capacity()));
    let redis_lockout = RedisLockoutStore::new(client.clone(), &policy);
    let memory_rate = MemoryRateLimitStore::new(quotas.clone());
    let redis_rate = RedisRateLimitStore::new(client.clone(), quotas.clone());

    let validator = Validator::<BenchClaims>::builder()
        .key(Key::hmac(SECRET).expect("a 32+ byte secret"))
        .build()
        .expect("a valid configuration");
    let valid = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap();
    let bare = Router::new().route("/", get(|| async { "hello, world" }));
    let in_memory = stack(
        &validator,
        MemoryLockoutStore::new(policy.tracked_capacity()),
        MemoryRateLimitStore::new(quotas.clone()),
    );
    let on_redis = stack(&validator, redis_lockout.clone(), redis_rate.clone());

    // Sanity, and the Redis commands per request.
    rt.block_on(async {
        for router in [&bare, &in_memory, &on_redis] {
            let status = router
                .clone()
                .oneshot(request(&valid))
                .await
                .unwrap()
                .status();
            assert_eq!(status, StatusCode::OK);
        }
        redis.cli(&["CONFIG", "RESETSTAT"]);
        const N: u64 = 1_000;
        for _ in 0..N {
            let status = on_redis
                .clone()
                .oneshot(request(&valid))
                .await
                .unwrap()
                .status();
            assert_eq!(status, StatusCode::OK);
        }
        let (scripts, other) = commands(&redis);
        eprintln!(
            "redis bench: {N} valid requests made {scripts} script calls and {other} other \
             commands (INFO commandstats, which counts itself)"
        );
        assert_eq!(
            scripts,
            2 * N,
            "one lockout check and one quota check per request"
        );
        assert!(other <= 1, "no round trip besides the scripts: {other}");
        redis.cli(&["CONFIG", "RESETSTAT"]);
        for _ in 0..N {
            let status = on_redis
                .clone()
                .oneshot(request_from("not.a.jwt", [127, 0, 0, 9]))
                .await
                .unwrap()
                .status();
            assert!(matches!(status.as_u16(), 401 | 429), "{status}");
        }
        let (scripts, _) = commands(&redis);
        eprintln!("redis bench: {N} refused requests made {scripts} script calls");
        assert!(
            scripts <= 2 * N,
            "at most a check and a recorded failure per refused request"
        );
    });

    let ip = |i: u32| IpKey::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 64);
    let now = Duration::from_secs(1_800_000_000);
    let user: Arc<str> = Arc::from("user-7f3c2a91");

    let mut group = c.benchmark_group("redis_store");
    group.bench_function("lockout_check/memory", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(memory_lockout.check(ip(1), now).await.unwrap()) });
    });
    group.bench_function("lockout_check/redis", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(redis_lockout.check(ip(1), now).await.unwrap()) });
    });
    // Failures of ever new addresses, so none locks (a locked address is not counted).
    let mut next = 1_000_000u32;
    group.bench_function("lockout_record_failure/memory", |b| {
        b.to_async(&rt).iter(|| {
            next += 1;
            let f = memory_lockout.record_failure(ip(next), now, &policy);
            async { black_box(f.await.unwrap()) }
        });
    });
    group.bench_function("lockout_record_failure/redis", |b| {
        b.to_async(&rt).iter(|| {
            next += 1;
            let f = redis_lockout.record_failure(ip(next), now, &policy);
            async { black_box(f.await.unwrap()) }
        });
    });
    group.bench_function("rate_limit_check/memory", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(memory_rate.check(&user, None, false).await.unwrap()) });
    });
    group.bench_function("rate_limit_check/redis", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(redis_rate.check(&user, None, false).await.unwrap()) });
    });
    group.finish();

    // 64 calls in flight at once; the time reported is per call.
    let mut group = c.benchmark_group("redis_store_concurrent");
    group.bench_function("lockout_check/redis", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let store = redis_lockout.clone();
            async move {
                let started = std::time::Instant::now();
                for _ in 0..iters.div_ceil(CONCURRENCY as u64) {
                    let calls: Vec<_> = (0..CONCURRENCY as u32)
                        .map(|i| store.check(ip(i), now))
                        .collect();
                    for call in futures_util::future::join_all(calls).await {
                        black_box(call.unwrap());
                    }
                }
                started.elapsed()
            }
        });
    });
    group.bench_function("rate_limit_check/redis", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let store = redis_rate.clone();
            let users: Vec<Arc<str>> = (0..CONCURRENCY)
                .map(|i| Arc::from(format!("user-{i}")))
                .collect();
            async move {
                let started = std::time::Instant::now();
                for _ in 0..iters.div_ceil(CONCURRENCY as u64) {
                    let calls: Vec<_> = users.iter().map(|u| store.check(u, None, false)).collect();
                    for call in futures_util::future::join_all(calls).await {
                        black_box(call.unwrap());
                    }
                }
                started.elapsed()
            }
        });
    });
    group.bench_function("stack_request/redis", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (router, token) = (on_redis.clone(), valid.clone());
            async move {
                let started = std::time::Instant::now();
                for _ in 0..iters.div_ceil(CONCURRENCY as u64) {
                    let calls: Vec<_> = (0..CONCURRENCY)
                        .map(|_| router.clone().oneshot(request(&token)))
                        .collect();
                    for response in futures_util::future::join_all(calls).await {
                        assert_eq!(response.unwrap().status(), StatusCode::OK);
                    }
                }
                started.elapsed()
            }
        });
    });
    group.finish();

    let mut group = c.benchmark_group("redis_stack");
    for (name, router) in [
        ("bare", &bare),
        ("memory", &in_memory),
        ("redis", &on_redis),
    ] {
        group.bench_function(format!("{name}/valid"), |b| {
            b.to_async(&rt).iter(|| async {
                let response = router.clone().oneshot(request(black_box(&valid))).await;
                black_box(response.unwrap().status())
            });
        });
    }
    group.finish();
    drop(redis);
}

criterion_group!(benches, bench_redis);
criterion_main!(benches);
