//! A load command for the full stack with its state on Redis: an axum server on loopback with
//! lockout → auth → per-user rate limit in front of one route (a valid HS256 token per
//! connection, a quota never reached), driven over real HTTP/1.1 keep-alive connections, in
//! phases that alternate the in-memory stores and the Redis stores (memory, Redis, memory,
//! Redis, …) so that both see the same machine.
//!
//! ```text
//! cargo run --release --features redis --example redis_load
//! ```
//!
//! Environment: `REDIS_URL` (default: a `redis-server` the command starts on a free loopback
//! port and stops at the end), `CONNECTIONS` (default 64), `PHASE_SECS` (default 5), `ROUNDS`
//! (pairs of phases, default 2), `SERVER_THREADS` (the server's tokio workers, default 2; the
//! load runs on a runtime of its own with one worker). For each phase it prints requests per
//! second, the median and 99th-percentile latency, and (Redis phases) the script calls per
//! request counted by `INFO commandstats`. Every response must be a 200; any other ends the
//! run with an error.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::jsonwebtoken::{EncodingKey, Header, encode};
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy};
use tower_jwt_guard::rate_limit::{PlanQuotas, Quota, UserRateLimitLayer};
use tower_jwt_guard::redis::{RedisClient, RedisLockoutStore, RedisRateLimitStore};
use tower_jwt_guard::validate::Validator;

#[path = "../tests/common/redis_server.rs"]
mod redis_server;

type Error = Box<dyn std::error::Error + Send + Sync>;

const SECRET: &[u8] = b"redis-load-secret-0123456789abcdefghijklmn";

#[derive(Clone, serde::Deserialize)]
struct Claims {
    #[allow(dead_code)]
    sub: String,
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The stack, its stores in memory (`redis: None`) or on Redis.
fn app(redis: Option<&RedisClient>) -> Result<Router, Error> {
    let validator = Validator::<Claims>::builder()
        .key(Key::hmac(SECRET)?)
        .build()?;
    let policy = LockoutPolicy::new();
    let quotas = PlanQuotas::new(Quota::per_second(NonZeroU32::MAX));
    let router = Router::new().route("/orders", get(|| async { "ok" }));
    let limit = UserRateLimitLayer::builder(quotas.clone());
    let lockout = LockoutLayer::builder(policy.clone());
    Ok(match redis {
        Some(client) => router
            .layer(
                limit
                    .store(RedisRateLimitStore::new(client.clone(), quotas))
                    .build()?,
            )
            .layer(JwtAuthLayer::new(validator))
            .layer(
                lockout
                    .store(RedisLockoutStore::new(client.clone(), &policy))
                    .build()?,
            ),
        None => router
            .layer(limit.build()?)
            .layer(JwtAuthLayer::new(validator))
            .layer(lockout.build()?),
    })
}

async fn serve(router: Router) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    Ok(addr)
}

/// One connection sending requests back to back until `stop`; its latencies.
async fn connection(
    addr: SocketAddr,
    token: String,
    stop: Arc<AtomicBool>,
) -> Result<Vec<Duration>, Error> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let authorization = format!("Bearer {token}");
    let mut latencies = Vec::with_capacity(1 << 16);
    while !stop.load(Ordering::Relaxed) {
        sender.ready().await?;
        let request = Request::get("/orders")
            .header("host", "127.0.0.1")
            .header("authorization", &authorization)
            .body(Empty::<Bytes>::new())?;
        let started = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        latencies.push(started.elapsed());
        if status != 200 {
            return Err(format!("a response was {status}, not 200").into());
        }
    }
    Ok(latencies)
}

/// Script calls so far (`evalsha` and `eval` in `INFO commandstats`).
async fn script_calls(client: &::redis::Client) -> Result<u64, Error> {
    let mut connection = client.get_multiplexed_async_connection().await?;
    let info: String = ::redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await?;
    Ok(info
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum())
}

fn main() -> Result<(), Error> {
    tower_jwt_guard::crypto::install_crypto_provider();
    let connections = env_or("CONNECTIONS", 64);
    let phase = Duration::from_secs(env_or("PHASE_SECS", 5));
    let rounds = env_or("ROUNDS", 2);
    let server_threads = usize::try_from(env_or("SERVER_THREADS", 2))?;

    let own_redis = std::env::var("REDIS_URL")
        .is_err()
        .then(redis_server::RedisServer::start);
    let url = match &own_redis {
        Some(server) => server.url(0),
        None => std::env::var("REDIS_URL")?,
    };

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .enable_all()
        .build()?;
    let (memory_addr, redis_addr) = server_rt.block_on(async {
        let client = RedisClient::builder(url.as_str()).build()?;
        let memory = serve(app(None)?).await?;
        let redis = serve(app(Some(&client))?).await?;
        Ok::<_, Error>((memory, redis))
    })?;
    let stats = ::redis::Client::open(url.as_str())?;

    let load_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let tokens: Vec<String> = (0..connections)
        .map(|i| {
            encode(
                &Header::default(),
                &serde_json::json!({"sub": format!("load-user-{i}"), "exp": now + 3600}),
                &EncodingKey::from_secret(SECRET).expect("an HMAC key"),
            )
            .expect("a token")
        })
        .collect();

    println!(
        "redis_load: {connections} connections, {} s phases, server on {server_threads} worker(s), \
         load on 1, backend {}",
        phase.as_secs(),
        tower_jwt_guard::crypto::backend_name()
    );
    println!("| phase | stores | requests/s | median | p99 | script calls per request |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut n = 0;
    for _ in 0..rounds {
        for (name, addr) in [("memory", memory_addr), ("redis", redis_addr)] {
            n += 1;
            let before = script_calls_blocking(&load_rt, &stats)?;
            let (count, median, p99) = load_rt.block_on(async {
                let stop = Arc::new(AtomicBool::new(false));
                let tasks: Vec<_> = tokens
                    .iter()
                    .map(|t| tokio::spawn(connection(addr, t.clone(), Arc::clone(&stop))))
                    .collect();
                tokio::time::sleep(phase).await;
                stop.store(true, Ordering::Relaxed);
                let mut all = Vec::new();
                for task in tasks {
                    all.extend(task.await??);
                }
                all.sort_unstable();
                let at = |q: f64| all[((all.len() as f64 - 1.0) * q) as usize];
                Ok::<_, Error>((all.len(), at(0.5), at(0.99)))
            })?;
            let calls = script_calls_blocking(&load_rt, &stats)? - before;
            let per_request = if name == "redis" {
                format!("{:.3}", calls as f64 / count as f64)
            } else {
                format!("{calls} in all")
            };
            println!(
                "| {n} | {name} | {:.0} | {:.0} µs | {:.0} µs | {per_request} |",
                count as f64 / phase.as_secs_f64(),
                median.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6,
            );
        }
    }
    drop(own_redis);
    Ok(())
}

fn script_calls_blocking(
    rt: &tokio::runtime::Runtime,
    client: &::redis::Client,
) -> Result<u64, Error> {
    rt.block_on(script_calls(client))
}
