//! The lockout script on Redis against the in-memory store: the same pseudo-random sequence of
//! checks, failures and resets, at the same moments, on a few addresses, with escalation; every
//! answer must be the same. A real `redis-server` started by the test.
#![cfg(feature = "redis")]

#[path = "common/redis_server.rs"]
mod redis_server;

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use tower_jwt_guard::client_ip::IpKey;
use tower_jwt_guard::lockout::{
    Escalation, FailureOutcome, LockoutPolicy, LockoutStore, MemoryLockoutStore,
};
use tower_jwt_guard::redis::{OutagePolicy, RedisClient, RedisLockoutStore};

use redis_server::RedisServer;

/// A small deterministic generator (xorshift), so that a failure can be replayed.
struct Steps(u64);

impl Steps {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[tokio::test]
async fn the_lua_script_answers_as_the_in_memory_store_does() {
    let redis = RedisServer::start();
    let client = RedisClient::builder(redis.url(0))
        .timeout(Duration::from_secs(2))
        // Any Redis error is a test failure, never a silent answer from the fallback (which
        // is the in-memory store this test compares with).
        .outage_policy(OutagePolicy::FailClosed)
        .build()
        .unwrap();
    let policy = LockoutPolicy::new()
        .max_failures(NonZeroU32::new(3).unwrap())
        .window(Duration::from_secs(60))
        .lock_duration(Duration::from_secs(30))
        .escalation(Escalation {
            factor: 2,
            max: Duration::from_secs(300),
        });
    let on_redis = RedisLockoutStore::new(client, &policy);
    let memory = MemoryLockoutStore::new(1_000);
    let ips: Vec<IpKey> = (1..=4)
        .map(|i| IpKey::new(IpAddr::V4(Ipv4Addr::new(10, 9, 0, i)), 64))
        .collect();
    let mut steps = Steps(0x9e37_79b9_7f4a_7c15);
    // Whole milliseconds, from a fixed moment.
    let mut now = Duration::from_millis(1_800_000_000_000);
    let (mut locks, mut escalated) = (0, 0);
    for step in 0..3_000 {
        // Mostly small steps (failures in one window), sometimes past a lock or a window.
        now += Duration::from_millis(match steps.next(10) {
            0..=5 => steps.next(5_000),
            6..=8 => steps.next(40_000),
            _ => steps.next(400_000),
        });
        let ip = ips[steps.next(ips.len() as u64) as usize];
        match steps.next(10) {
            0..=3 => {
                let (m, r) = (
                    memory.check(ip, now).await.unwrap(),
                    on_redis.check(ip, now).await.unwrap(),
                );
                assert_eq!(m, r, "step {step}: check of {ip} at {now:?}");
            }
            4..=8 => {
                let m: FailureOutcome = memory.record_failure(ip, now, &policy).await.unwrap();
                let r = on_redis.record_failure(ip, now, &policy).await.unwrap();
                assert_eq!(m, r, "step {step}: failure of {ip} at {now:?}");
                if let Some(d) = m.locked_for {
                    locks += 1;
                    if d > Duration::from_secs(30) {
                        escalated += 1;
                    }
                }
            }
            _ => {
                memory.reset(ip, now).await.unwrap();
                on_redis.reset(ip, now).await.unwrap();
            }
        }
    }
    // The answers came from Redis: the addresses' keys are there.
    let keys: u64 = redis.cli(&["DBSIZE"]).parse().unwrap();
    assert!(keys > 0, "no key on Redis");
    // The sequence went through locks and escalations, not only through open checks.
    assert!(
        locks > 50 && escalated > 5,
        "{locks} locks, {escalated} escalated"
    );
    eprintln!("3 000 steps agreed: {locks} locks, {escalated} of them escalated");
}

/// A lock earned in the in-memory fallback while Redis was down still holds once Redis
/// answers again (which knows nothing of it).
#[tokio::test]
async fn a_lock_earned_during_an_outage_holds_after_it() {
    let mut redis = RedisServer::start();
    let client = RedisClient::builder(redis.url(0))
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let policy = LockoutPolicy::new();
    let store = RedisLockoutStore::new(client, &policy);
    let ip = IpKey::new(IpAddr::V4(Ipv4Addr::new(10, 9, 1, 1)), 64);
    let now = Duration::from_millis(1_800_000_000_000);
    redis.kill();
    let mut locked = None;
    for _ in 0..5 {
        locked = store
            .record_failure(ip, now, &policy)
            .await
            .unwrap()
            .locked_for;
    }
    assert!(locked.is_some(), "the fallback locks");
    redis.restart();
    // Until a check has reached the restarted Redis (one probe a second during an outage),
    // and once it has: locked, by the fallback's lock.
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let status = store.check(ip, now).await.unwrap();
        assert!(
            matches!(status, tower_jwt_guard::lockout::LockStatus::Locked { .. }),
            "{status:?}"
        );
        if redis
            .cli(&["INFO", "commandstats"])
            .contains("cmdstat_evalsha")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "Redis never answered"
        );
    }
    assert_eq!(redis.cli(&["DBSIZE"]), "0", "Redis itself knows of no lock");
}
