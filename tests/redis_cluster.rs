//! Lockout, quotas and revocations on a real 3-node Redis Cluster (`redis-server
//! --cluster-enabled yes`, joined with `redis-cli --cluster create`): two app instances share
//! it through `RedisClient::cluster`. Every script touches one key, whose hash tag puts it on
//! one slot; the keys of the test's many addresses and users land on every node.
#![cfg(all(feature = "redis", feature = "axum"))]

mod common;
#[path = "common/redis_app.rs"]
mod redis_app;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::redis::{RedisClient, RedisFanout};
use tower_jwt_guard::revocation::RevocationList;

use redis_app::{ask, redis_app, redis_app_token};
use redis_server::RedisCluster;

fn client(cluster: &RedisCluster) -> RedisClient {
    RedisClient::cluster(cluster.urls())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

#[tokio::test]
async fn lockout_and_quotas_are_shared_on_a_cluster() {
    let cluster = RedisCluster::start();
    let clock = FakeClock::starting_now();
    let a = redis_app(client(&cluster), &clock, 3).await;
    let b = redis_app(client(&cluster), &clock, 3).await;

    // Lockout: for each of 12 addresses, four failures split over the instances do not lock,
    // the fifth does, on both.
    for i in 1..=12 {
        let ip = format!("127.0.2.{i}");
        let ok = redis_app_token(&clock, &format!("lock-{i}"));
        for app in [&a, &b, &a, &b] {
            assert_eq!(ask(app, &ip, "not.a.jwt").await.status, 401);
        }
        assert_eq!(
            ask(&a, &ip, &ok).await.status,
            200,
            "{ip}: 4 failures do not lock"
        );
        assert_eq!(ask(&b, &ip, "not.a.jwt").await.status, 401);
        assert_eq!(ask(&a, &ip, &ok).await.status, 429, "{ip}: locked on a");
        assert_eq!(ask(&b, &ip, &ok).await.status, 429, "{ip}: locked on b");
    }

    // Quotas: 3 a minute per user, one budget across the instances, for 12 users.
    for i in 1..=12 {
        let token = redis_app_token(&clock, &format!("quota-{i}"));
        for app in [&a, &b, &a] {
            assert_eq!(ask(app, "127.0.3.1", &token).await.status, 200);
        }
        let refused = ask(&b, "127.0.3.1", &token).await;
        assert_eq!(refused.status, 429, "user {i}: the 4th in the minute");
        assert_eq!(refused.code.as_deref(), Some("RATE_LIMITED"));
    }

    // The keys are spread over the three nodes: the scripts ran on every slot's owner.
    for node in &cluster.nodes {
        let keys: u64 = node.cli(&["DBSIZE"]).parse().unwrap();
        assert!(keys > 0, "node {} holds no key", node.addr);
    }
}

#[tokio::test]
async fn a_revocation_reaches_the_other_instance_through_the_cluster() {
    let cluster = RedisCluster::start();
    let lists: Vec<RevocationList> = (0..2)
        .map(|_| RevocationList::builder(Duration::from_secs(3600)).build())
        .collect();
    let a = RedisFanout::start(client(&cluster), lists[0].clone(), |_, _| {});
    let _b = RedisFanout::start(client(&cluster), lists[1].clone(), |_, _| {});
    cluster.nodes[0].await_subscribers("tjg:revoked", 2).await;
    let at = a
        .revoke_subject("bob")
        .await
        .expect("published on the cluster");
    let started = Instant::now();
    while lists[1].subject_revoked_at("bob") != Some(at) {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the revocation did not reach the other instance"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // And an instance that starts later loads it from the cluster's hash.
    let late = RevocationList::builder(Duration::from_secs(3600)).build();
    let _c = RedisFanout::start(client(&cluster), late.clone(), |_, _| {});
    let started = Instant::now();
    while late.subject_revoked_at("bob") != Some(at) {
        assert!(started.elapsed() < Duration::from_secs(3), "not reloaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
