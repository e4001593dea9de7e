//! Redis faults under load, under each outage policy: real axum instances on loopback whose
//! lockout and quotas live on a real `redis-server` that the test kills, restarts on the same
//! port, and puts to sleep (`DEBUG SLEEP`). Every request is answered within the contract's
//! second; fail-open answers from memory, fail-closed refuses with `AUTH_FAILED` (503,
//! `Retry-After: 1`); shared behaviour resumes within 5 s of Redis's return, with no restart.
//! Also: a password and a database in the URL.
#![cfg(all(feature = "redis", feature = "axum"))]

mod common;
#[path = "common/redis_app.rs"]
mod redis_app;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::redis::{OutagePolicy, RedisClient};

use redis_app::{Answer, RedisApp, ask, redis_app, redis_app_token};
use redis_server::RedisServer;

fn client(url: &str, policy: OutagePolicy) -> RedisClient {
    RedisClient::builder(url)
        .timeout(Duration::from_millis(200))
        .outage_policy(policy)
        .build()
        .unwrap()
}

/// Four clients, each from its own loopback address with its own user, sending valid
/// requests back to back until `stop`; every answer, with when it was sent.
fn load(
    app: &Arc<RedisApp>,
    clock: &FakeClock,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<(Instant, Answer)>>> {
    (0..4)
        .map(|i| {
            let (app, stop) = (Arc::clone(app), Arc::clone(stop));
            let token = redis_app_token(clock, &format!("load-{i}"));
            tokio::spawn(async move {
                let mut answers = Vec::new();
                // Bounded: the test stops the load after a few seconds.
                for _ in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let sent = Instant::now();
                    answers.push((sent, ask(&app, &format!("127.0.1.{}", i + 1), &token).await));
                }
                answers
            })
        })
        .collect()
}

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<Vec<(Instant, Answer)>>>,
) -> Vec<(Instant, Answer)> {
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("no load task panicked"));
    }
    all
}

/// Waits up to 5 s for Redis to hold a key again (the load's quotas); the time it took.
async fn keys_return(redis: &RedisServer) -> Duration {
    let started = Instant::now();
    while redis.cli(&["DBSIZE"]).parse::<u64>().unwrap_or(0) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "shared state did not resume within 5 s of Redis's return"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_under_load_every_request_is_answered_and_sharing_resumes() {
    let mut redis = RedisServer::start();
    let clock = FakeClock::starting_now();
    let app = Arc::new(
        redis_app(
            client(&redis.url(0), OutagePolicy::FailOpen),
            &clock,
            1_000_000,
        )
        .await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&app, &clock, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        redis.cli(&["DBSIZE"]).parse::<u64>().unwrap() > 0,
        "the quotas are on Redis"
    );

    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart();
    let resumed = keys_return(&redis).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let answers = collect(tasks).await;

    assert!(
        answers.len() > 100,
        "only {} requests were made",
        answers.len()
    );
    for (_, answer) in &answers {
        assert_eq!(
            answer.status, 200,
            "fail-open: every valid request passes: {answer:?}"
        );
        assert!(
            answer.took < Duration::from_secs(1),
            "answered within 1 s: {answer:?}"
        );
    }
    let slowest = answers.iter().map(|(_, a)| a.took).max().unwrap();
    println!(
        "fail-open: {} requests, slowest {slowest:?}, shared state back {resumed:?} after the restart",
        answers.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_under_load_refuses_with_503_and_recovers() {
    let mut redis = RedisServer::start();
    let clock = FakeClock::starting_now();
    let app = Arc::new(
        redis_app(
            client(&redis.url(0), OutagePolicy::FailClosed),
            &clock,
            1_000_000,
        )
        .await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = load(&app, &clock, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let killed = Instant::now();
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart();
    let restarted = Instant::now();
    keys_return(&redis).await;
    // Once a request passes again after the restart, the outage is over.
    let deadline = restarted + Duration::from_secs(5);
    loop {
        let answer = ask(&app, "127.0.1.9", &redis_app_token(&clock, "probe")).await;
        if answer.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused 5 s after Redis's return: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = restarted.elapsed();
    stop.store(true, Ordering::Relaxed);
    let answers = collect(tasks).await;

    let mut refused = 0;
    for (sent, answer) in &answers {
        assert!(
            answer.took < Duration::from_secs(1),
            "answered within 1 s: {answer:?}"
        );
        match answer.status {
            200 => {}
            503 => {
                // In flight when Redis was killed, at the earliest.
                assert!(
                    *sent + answer.took >= killed,
                    "refused before Redis was killed: {answer:?}"
                );
                assert_eq!(answer.code.as_deref(), Some("AUTH_FAILED"), "{answer:?}");
                assert_eq!(answer.retry_after, Some(1), "{answer:?}");
                refused += 1;
            }
            _ => panic!("fail-closed answers 200 or 503, never {answer:?}"),
        }
    }
    assert!(refused > 10, "the outage refused only {refused} requests");
    println!(
        "fail-closed: {} requests, {refused} refused with 503, passing again {recovered:?} after the restart",
        answers.len()
    );
}

/// A Redis that stops answering costs a request at most the timeout, under either policy.
#[tokio::test]
async fn a_sleeping_redis_hits_the_timeout_under_fail_closed() {
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let clock = FakeClock::starting_now();
    let app = redis_app(
        client(&redis.url(0), OutagePolicy::FailClosed),
        &clock,
        1_000_000,
    )
    .await;
    let token = redis_app_token(&clock, "sleepy");
    assert_eq!(ask(&app, "127.0.1.20", &token).await.status, 200);
    let sleeper = redis.sleep(2).await;
    let answer = ask(&app, "127.0.1.20", &token).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.took < Duration::from_millis(600), "{answer:?}");
    sleeper.await.unwrap();
}

/// `redis://:password@host:port/db`: the password is used, the database chosen, and neither
/// `Debug` nor the logs show the password; a wrong one is an outage like any other.
#[tokio::test]
async fn a_password_and_a_database_in_the_url() {
    let password = "pw-0123456789-secret";
    let redis = RedisServer::start_with(&["--requirepass", password]);
    let clock = FakeClock::starting_now();
    let url = format!("redis://:{password}@{}/3", redis.addr);
    let right = client(&url, OutagePolicy::FailOpen);
    assert!(!format!("{right:?}").contains(password));
    let (logs, _guard) = common::capture_logs();
    let a = redis_app(right.clone(), &clock, 1_000_000).await;
    let b = redis_app(client(&url, OutagePolicy::FailOpen), &clock, 1_000_000).await;
    let ok = redis_app_token(&clock, "pw-user");
    // Five failures split over the two instances lock the address on both: the state is in
    // Redis, database 3.
    for app in [&a, &b, &a, &b, &a] {
        assert_eq!(ask(app, "127.0.1.30", "not.a.jwt").await.status, 401);
    }
    assert_eq!(ask(&b, "127.0.1.30", &ok).await.status, 429);
    let in_db3 = redis.cli(&["-n", "3", "DBSIZE"]);
    assert_ne!(in_db3, "0", "the keys are in database 3");
    // A wrong password: refused by Redis, so the instance answers from memory.
    let wrong = format!("redis://:not-the-password@{}/3", redis.addr);
    let c = redis_app(client(&wrong, OutagePolicy::FailOpen), &clock, 1_000_000).await;
    assert_eq!(
        ask(&c, "127.0.1.30", &ok).await.status,
        200,
        "c does not see the shared lock"
    );
    let text = logs.text();
    assert!(
        !text.contains(password) && !text.contains("not-the-password"),
        "{text}"
    );
    assert!(text.contains("Redis is not answering"), "{text}");
}

/// WebSocket messages with Redis down: fail-open keeps counting in memory (10 pass, the 11th
/// is refused), fail-closed refuses every message until Redis answers again.
#[tokio::test]
async fn messages_with_redis_down_under_each_policy() {
    use std::num::NonZeroU32;
    use tower_jwt_guard::rate_limit::{
        MessageLimiter, MessageVerdict, PlanQuotas, Quota, RateDecision,
    };
    use tower_jwt_guard::redis::RedisRateLimitStore;

    let mut redis = RedisServer::start();
    let quotas = PlanQuotas::new(Quota::per_minute(NonZeroU32::new(10).unwrap()));
    let limiter = |policy| {
        MessageLimiter::builder(quotas.clone())
            .store(RedisRateLimitStore::new(
                client(&redis.url(0), policy),
                quotas.clone(),
            ))
            .build()
            .unwrap()
    };
    let (open, closed) = (
        limiter(OutagePolicy::FailOpen),
        limiter(OutagePolicy::FailClosed),
    );
    let user: Arc<str> = Arc::from("mallory");
    assert!(matches!(
        closed.check(&user, None).await,
        RateDecision::Allowed { .. }
    ));
    redis.kill();
    let mut passed = 0;
    for _ in 0..11 {
        if matches!(open.check(&user, None).await, RateDecision::Allowed { .. }) {
            passed += 1;
        }
    }
    assert_eq!(passed, 10, "fail-open: the fallback counts");
    for _ in 0..3 {
        let started = Instant::now();
        let decision = closed.check(&user, None).await;
        assert!(
            matches!(decision, RateDecision::Limited { retry_after, .. } if retry_after == Duration::from_secs(1)),
            "fail-closed refuses: {decision:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(600));
    }
    // A connection's gate refuses each message, and never closes it as flooding: the client
    // is not to blame.
    let mut gate = closed.gate(Arc::clone(&user), None);
    for _ in 0..50 {
        assert_eq!(
            gate.check().await,
            MessageVerdict::Reject {
                retry_after: Duration::from_secs(1)
            }
        );
    }
    redis.restart();
    let restarted = Instant::now();
    while !matches!(
        closed.check(&user, None).await,
        RateDecision::Allowed { .. }
    ) {
        assert!(
            restarted.elapsed() < Duration::from_secs(5),
            "not back within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An outage under fail-closed writes one `WARN` (Redis is not answering), not one per refused
/// request: those are at `DEBUG`, counted in the periodic summary.
#[tokio::test]
async fn a_fail_closed_outage_logs_one_warning_not_one_per_request() {
    let (logs, _guard) = common::capture_logs();
    let mut redis = RedisServer::start();
    let clock = FakeClock::starting_now();
    let app = redis_app(
        client(&redis.url(0), OutagePolicy::FailClosed),
        &clock,
        1_000_000,
    )
    .await;
    let token = redis_app_token(&clock, "quiet");
    assert_eq!(ask(&app, "127.0.1.40", &token).await.status, 200);
    redis.kill();
    for _ in 0..30 {
        assert_eq!(ask(&app, "127.0.1.40", &token).await.status, 503);
    }
    let text = logs.text();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("Redis is not answering"),
        "{warnings:#?}"
    );
    let refused = text
        .lines()
        .filter(|l| l.contains("DEBUG") && l.contains("AUTH_FAILED"))
        .count();
    assert_eq!(refused, 30, "each refusal at DEBUG");
}
