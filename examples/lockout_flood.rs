//! A load command for the lockout under a distributed brute force: many source addresses on
//! loopback, each sending bad tokens to a running demo, while one well-behaved user calls `/me`.
//!
//! ```text
//! cargo build --release --example demo --example lockout_flood
//! target/release/examples/demo & DEMO_PID=$!
//! DEMO_PID=$DEMO_PID target/release/examples/lockout_flood
//! kill $DEMO_PID
//! ```
//!
//! Environment: `DEMO_URL` (default `http://127.0.0.1:3000`), `DEMO_PID` (to read the demo's
//! CPU time from `/proc`; without it only client-side figures are printed), `ADDRESSES` (how many
//! addresses fill the store, default 100 500: the demo's store holds 100 000), `PROBE` (new
//! addresses per measured phase, default 2 000), `CONCURRENCY` (default 32).
//!
//! Phases: (1) the store nearly empty: `PROBE` new addresses fail 5 times each while `/me` is
//! timed; (2) fill: addresses until `ADDRESSES` have failed 5 times each; (3) the store full:
//! the same measurement as (1) with new addresses; (4) one more new address sends 20 bad tokens:
//! how many are answered 401 before the 429s start. Source addresses are 127.16.0.0 upwards,
//! and 127.250.0.1 for (4) (Linux routes all of 127.0.0.0/8 to loopback).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Target {
    addr: SocketAddr,
    host: String,
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The demo's CPU time so far (user + system), from `/proc/PID/stat`.
fn cpu_of(pid: Option<u32>) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // CLK_TCK is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

fn source(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 16, 0, 0)) + i))
}

async fn connect_from(
    target: &Target,
    ip: IpAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, Error> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip, 0))?;
    let stream = socket.connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One address: `n` requests with a bad token from `ip`, on one connection while the server
/// keeps it open. Returns the statuses.
async fn fail_from(target: &Target, ip: IpAddr, n: usize) -> Result<Vec<u16>, Error> {
    let mut sender = connect_from(target, ip).await?;
    let mut statuses = Vec::with_capacity(n);
    while statuses.len() < n {
        if sender.ready().await.is_err() {
            sender = connect_from(target, ip).await?;
        }
        let req = Request::get("/me")
            .header("host", &target.host)
            .header("authorization", "Bearer not.a.token")
            .body(Empty::<Bytes>::new())?;
        let res = sender.send_request(req).await?;
        statuses.push(res.status().as_u16());
        res.into_body().collect().await?;
    }
    Ok(statuses)
}

/// What a flood got back: requests answered 401, answered 429, and connections that failed.
#[derive(Default)]
struct Tally {
    unauthorized: AtomicU64,
    locked: AtomicU64,
    errors: AtomicU64,
}

/// `count` new addresses from `first` on, 5 bad tokens each, `concurrency` at a time.
async fn flood(target: &Arc<Target>, first: u32, count: u32, concurrency: u32) -> Arc<Tally> {
    let next = Arc::new(AtomicU32::new(first));
    let end = first + count;
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (target, next, tally) = (Arc::clone(target), Arc::clone(&next), Arc::clone(&tally));
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                match tokio::time::timeout(
                    Duration::from_secs(30),
                    fail_from(&target, source(i), 5),
                )
                .await
                {
                    Ok(Ok(statuses)) => {
                        for status in statuses {
                            match status {
                                401 => tally.unauthorized.fetch_add(1, Ordering::Relaxed),
                                429 => tally.locked.fetch_add(1, Ordering::Relaxed),
                                _ => tally.errors.fetch_add(1, Ordering::Relaxed),
                            };
                        }
                    }
                    _ => {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    tally
}

async fn token(target: &Target) -> Result<String, Error> {
    let stream = tokio::net::TcpStream::connect(target.addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = Request::post("/auth/token")
        .header("host", &target.host)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"sub":"load-user"}"#)))?;
    let body = sender
        .send_request(req)
        .await?
        .into_body()
        .collect()
        .await?;
    let json: serde_json::Value = serde_json::from_slice(&body.to_bytes())?;
    Ok(json["access_token"].as_str().ok_or("no token")?.to_owned())
}

/// Times valid `/me` requests from 127.0.0.1 until `stop` is set; returns the latencies.
async fn time_me(target: Arc<Target>, token: String, stop: Arc<AtomicU32>) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let Ok(stream) = tokio::net::TcpStream::connect(target.addr).await else {
        return latencies;
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return latencies;
    };
    tokio::spawn(conn);
    while stop.load(Ordering::Relaxed) == 0 {
        let req = Request::get("/me")
            .header("host", &target.host)
            .header("authorization", format!("Bearer {token}"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        let start = Instant::now();
        let Ok(res) = sender.send_request(req).await else {
            break;
        };
        assert_eq!(res.status(), 200, "a valid /me must pass");
        let _ = res.into_body().collect().await;
        latencies.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// A flood of `count` new addresses with `/me` timed beside it.
async fn measured(
    label: &str,
    target: &Arc<Target>,
    token: &str,
    pid: Option<u32>,
    first: u32,
    count: u32,
) {
    let stop = Arc::new(AtomicU32::new(0));
    let timer = tokio::spawn(time_me(
        Arc::clone(target),
        token.to_owned(),
        Arc::clone(&stop),
    ));
    let cpu0 = cpu_of(pid);
    let start = Instant::now();
    let tally = flood(target, first, count, 8).await;
    let elapsed = start.elapsed();
    let (unauthorized, locked) = (
        tally.unauthorized.load(Ordering::Relaxed),
        tally.locked.load(Ordering::Relaxed),
    );
    let requests = unauthorized + locked;
    let cpu1 = cpu_of(pid);
    stop.store(1, Ordering::Relaxed);
    let mut latencies = timer.await.unwrap_or_default();
    latencies.sort();
    let per_failure = match (cpu0, cpu1) {
        (Some(a), Some(b)) => format!(
            "{:.1} µs",
            (b - a).as_secs_f64() * 1e6 / requests.max(1) as f64
        ),
        _ => "n/a (no DEMO_PID)".to_owned(),
    };
    println!(
        "{label}: {requests} bad-token requests from {count} new addresses in {:.2} s \
         ({:.0}/s; {unauthorized} answered 401, {locked} answered 429, {} errors); \
         demo CPU per request {per_failure}; \
         valid /me during it: p50 {:.2} ms, p99 {:.2} ms ({} samples)",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        tally.errors.load(Ordering::Relaxed),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::var("DEMO_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".to_owned());
    let authority = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let addr: SocketAddr = tokio::net::lookup_host(&authority)
        .await?
        .next()
        .ok_or("DEMO_URL has no address")?;
    let target = Arc::new(Target {
        addr,
        host: authority,
    });
    let pid = std::env::var("DEMO_PID").ok().and_then(|p| p.parse().ok());
    let addresses = env_u32("ADDRESSES", 100_500);
    let probe = env_u32("PROBE", 2_000);
    let concurrency = env_u32("CONCURRENCY", 32);
    let token = token(&target).await?;

    measured("store empty", &target, &token, pid, 0, probe).await;

    let start = Instant::now();
    let tally = flood(&target, probe, addresses - probe, concurrency).await;
    println!(
        "fill: {} answered 401 and {} answered 429 from {} addresses in {:.1} s ({} errors)",
        tally.unauthorized.load(Ordering::Relaxed),
        tally.locked.load(Ordering::Relaxed),
        addresses - probe,
        start.elapsed().as_secs_f64(),
        tally.errors.load(Ordering::Relaxed),
    );

    measured("store full", &target, &token, pid, addresses, probe).await;

    // An address of a /24 no earlier phase used.
    let last = IpAddr::V4(Ipv4Addr::new(127, 250, 0, 1));
    let statuses = fail_from(&target, last, 20).await?;
    let accepted_401 = statuses.iter().take_while(|s| **s == 401).count();
    let locked = statuses.iter().filter(|s| **s == 429).count();
    println!(
        "a new address sending 20 bad tokens with the store full: {accepted_401} answered 401, \
         then {locked} answered 429 LOCKED_OUT"
    );
    Ok(())
}
