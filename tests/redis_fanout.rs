//! Revocations and notifications across instances through a real `redis-server`: each
//! "instance" here is its own RevocationList and RedisFanout, as separate processes would hold.
#![cfg(feature = "redis")]

#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tower_jwt_guard::redis::{RedisClient, RedisFanout};
use tower_jwt_guard::revocation::RevocationList;

use redis_server::RedisServer;

struct Instance {
    revocations: RevocationList,
    fanout: RedisFanout,
    notes: Arc<Mutex<Vec<(String, String)>>>,
}

fn instance(url: &str) -> Instance {
    let client = RedisClient::builder(url)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let revocations = RevocationList::builder(Duration::from_secs(3600)).build();
    let notes = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&notes);
    let fanout = RedisFanout::start(client, revocations.clone(), move |sub, message| {
        sink.lock()
            .unwrap()
            .push((sub.to_owned(), message.to_owned()));
    });
    Instance {
        revocations,
        fanout,
        notes,
    }
}

/// Waits up to `within` for `condition`, and says how long it took.
async fn within(within: Duration, condition: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < within, "not within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn a_revocation_and_a_notification_reach_the_other_instance() {
    let redis = RedisServer::start();
    let a = instance(&redis.url(0));
    let b = instance(&redis.url(0));
    redis.await_subscribers("tjg:revoked", 2).await;
    let start = Instant::now();
    let at = a.fanout.revoke_subject("bob").await.unwrap();
    assert_eq!(
        a.revocations.subject_revoked_at("bob"),
        Some(at),
        "at once, here"
    );
    within(Duration::from_secs(2), || {
        b.revocations.subject_revoked_at("bob") == Some(at)
    })
    .await;
    eprintln!(
        "revocation reached the other instance {:?} after it was made",
        start.elapsed()
    );
    a.fanout.notify("bob", "hi").await.unwrap();
    eprintln!("notified");
    for i in [&a, &b] {
        within(Duration::from_secs(2), || {
            i.notes.lock().unwrap().as_slice() == [("bob".to_owned(), "hi".to_owned())]
        })
        .await;
    }
    eprintln!("both notified");
    // An instance that starts later loads the live revocations.
    let c = instance(&redis.url(0));
    within(Duration::from_secs(2), || {
        c.revocations.subject_revoked_at("bob") == Some(at)
    })
    .await;
}

#[tokio::test]
async fn after_a_redis_restart_the_subscriber_comes_back() {
    let mut redis = RedisServer::start();
    let a = instance(&redis.url(0));
    let b = instance(&redis.url(0));
    redis.await_subscribers("tjg:revoked", 2).await;
    redis.restart();
    // Publishing works again within 5 s of the restart, and reaches b.
    let start = Instant::now();
    let at = loop {
        match a.fanout.revoke_subject("carol").await {
            Ok(at) => break at,
            Err(_) => {
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "Redis never came back"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    within(Duration::from_secs(5), || {
        b.revocations.subject_revoked_at("carol") == Some(at)
    })
    .await;
}

#[tokio::test]
async fn a_token_revoked_by_jti_reaches_the_others_and_stale_entries_are_pruned() {
    let redis = RedisServer::start();
    // Entries that cover no token any more, as left by instances long gone.
    redis.cli(&["HSET", "tjg:revocations", "old-subject", "1000"]);
    redis.cli(&["HSET", "tjg:revoked-tokens", "old-jti", "1000"]);
    let a = instance(&redis.url(0));
    let b = instance(&redis.url(0));
    redis.await_subscribers("tjg:revoked-token", 2).await;
    let exp = b.revocations.now() + 600;
    a.fanout.revoke_token("jti-1", Some(exp)).await.unwrap();
    assert_eq!(a.revocations.len(), 1);
    within(Duration::from_secs(2), || b.revocations.len() == 1).await;
    // The hash holds it until exp + leeway; a later instance loads it.
    let until: u64 = redis
        .cli(&["HGET", "tjg:revoked-tokens", "jti-1"])
        .parse()
        .unwrap();
    assert_eq!(until, exp + 10);
    let c = instance(&redis.url(0));
    within(Duration::from_secs(2), || c.revocations.len() == 1).await;
    // The stale entries were deleted by the reloads, and revoke nothing.
    assert_eq!(
        redis.cli(&["HEXISTS", "tjg:revocations", "old-subject"]),
        "0"
    );
    assert_eq!(
        redis.cli(&["HEXISTS", "tjg:revoked-tokens", "old-jti"]),
        "0"
    );
    assert_eq!(c.revocations.subject_revoked_at("old-subject"), None);
}

/// The fan-out's background calls have their own, longer bound: a Redis that stalls for a
/// second (longer than the client's 200 ms, shorter than 2 s) delays `fleet_stats`, it does
/// not fail it, and the stores' outage state is untouched.
#[tokio::test]
async fn background_calls_outlast_the_request_timeout() {
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let a = instance(&redis.url(0));
    redis.await_subscribers("tjg:revoked", 1).await;
    let sleeper = redis.sleep(1).await;
    let started = Instant::now();
    let stats = a.fanout.fleet_stats().await;
    assert!(stats.is_ok(), "{stats:?}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    sleeper.await.unwrap();
}

/// A revocation dated ahead of this instance's clock (by more than the leeway) waits until
/// the clock reaches it, instead of refusing new tokens early; an entry applied once is not
/// heard of again at the next reload (a reconnection here), so hooks fire once.
#[tokio::test]
async fn future_dated_revocations_wait_and_hooks_fire_once() {
    let mut redis = RedisServer::start();
    let list = RevocationList::builder(Duration::from_secs(3600)).build();
    let now = list.now();
    redis.cli(&[
        "HSET",
        "tjg:revocations",
        "ahead",
        &(now + 3600).to_string(),
    ]);
    redis.cli(&["HSET", "tjg:revocations", "bob", &now.to_string()]);
    let fired = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&fired);
    list.on_revoke(move |r| sink.lock().unwrap().push(format!("{r:?}")));
    let client = RedisClient::builder(redis.url(0))
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let fanout = RedisFanout::start(client, list.clone(), |_, _| {});
    within(Duration::from_secs(2), || fanout.is_synced()).await;
    assert_eq!(list.subject_revoked_at("bob"), Some(now));
    assert_eq!(
        list.subject_revoked_at("ahead"),
        None,
        "not before its time"
    );
    // A reload after a reconnection applies nothing new.
    redis.restart();
    within(Duration::from_secs(3), || !fanout.is_synced()).await;
    within(Duration::from_secs(5), || fanout.is_synced()).await;
    assert_eq!(
        fired.lock().unwrap().len(),
        1,
        "{:?}",
        fired.lock().unwrap()
    );
    assert_eq!(list.subject_revoked_at("ahead"), None);
}
