//! Per-IP lockout through a real axum server on loopback. Clients bind distinct source addresses
//! in 127.0.0.0/8; behind a trusted proxy (the loopback peer) forwarding headers pick the client,
//! which is how IPv6 grouping is exercised. Time moves with a FakeClock.
#![cfg(all(feature = "axum", feature = "lockout"))]

mod common;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{Router, routing::get};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceBuilder;
use tower_jwt_guard::client_ip::{ClientIpResolver, IpKey};
use tower_jwt_guard::clock::{Clock, FakeClock};
use tower_jwt_guard::jsonwebtoken::{EncodingKey, Header, encode};
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::lockout::{
    Escalation, LockEvent, LockoutLayer, LockoutPolicy, LockoutStore, MemoryLockoutStore,
};
use tower_jwt_guard::validate::Validator;
use tower_jwt_guard::{Algorithm, JwtAuthLayer};

const SECRET: &[u8] = b"lockout-test-secret-lockout-test-secret-0123";

#[derive(Debug, Clone, Deserialize)]
struct Sub {
    #[allow(dead_code)]
    sub: String,
}

struct Server {
    base: String,
    clock: FakeClock,
    events: Arc<Mutex<Vec<LockEvent>>>,
    _server: common::TestServer,
}

async fn serve(policy: LockoutPolicy, resolver: ClientIpResolver) -> Server {
    tower_jwt_guard::crypto::install_crypto_provider();
    let clock = FakeClock::at_unix_secs(1_700_000_000);
    let validator = Validator::<Sub>::builder()
        .key(Key::hmac(SECRET).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let lockout = LockoutLayer::builder(policy)
        .resolver(resolver)
        .clock(clock.clone())
        .on_lock(move |e| sink.lock().unwrap().push(*e))
        .build()
        .unwrap();
    let app = Router::new().route("/", get(|| async { "ok" })).layer(
        ServiceBuilder::new()
            .layer(lockout)
            .layer(JwtAuthLayer::new(validator)),
    );
    let server = common::serve(app).await;
    Server {
        base: server.url("/"),
        clock,
        events,
        _server: server,
    }
}

fn client(ip: &str) -> reqwest::Client {
    common::client_from(ip)
}

impl Server {
    fn token(&self) -> String {
        let now = self.clock.now().as_secs();
        encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "u", "exp": now + 3600}),
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap()
    }

    async fn get(
        &self,
        c: &reqwest::Client,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Option<u64>, Value) {
        let mut req = c.get(&self.base);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let retry = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        (status, retry, res.json().await.unwrap_or(Value::Null))
    }

    async fn fail(&self, c: &reqwest::Client, n: usize, headers: &[(&str, &str)]) {
        for _ in 0..n {
            let (s, _, _) = self.get(c, Some("not.a.jwt"), headers).await;
            assert_eq!(s, 401);
        }
    }
}

fn quick() -> LockoutPolicy {
    LockoutPolicy::new()
        .max_failures(NonZeroU32::new(3).unwrap())
        .window(Duration::from_secs(60))
        .lock_duration(Duration::from_secs(100))
}

#[tokio::test]
async fn locks_after_max_failures_and_fires_the_hook_once() {
    let s = serve(quick(), ClientIpResolver::new()).await;
    let c = client("127.0.0.11");
    s.fail(&c, 3, &[]).await;
    let token = s.token();
    let (status, retry, body) = s.get(&c, Some(&token), &[]).await;
    assert_eq!((status, retry), (429, Some(100)));
    assert_eq!(body["error"]["code"], "LOCKED_OUT");
    // Further refused requests do not fire the hook again.
    s.get(&c, Some("not.a.jwt"), &[]).await;
    let events = s.events.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].failures, 3);
    assert_eq!(events[0].lock_duration, Duration::from_secs(100));
    assert_eq!(events[0].ip.ip(), "127.0.0.11".parse::<IpAddr>().unwrap());
    // Other addresses are unaffected; the lock ends on time.
    assert_eq!(s.get(&client("127.0.0.12"), Some(&token), &[]).await.0, 200);
    s.clock.advance(Duration::from_secs(99));
    assert_eq!(s.get(&c, Some(&token), &[]).await.1, Some(1));
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(s.get(&c, Some(&token), &[]).await.0, 200);
}

#[tokio::test]
async fn escalation_lengthens_each_lockout() {
    let policy = quick().escalation(Escalation {
        factor: 4,
        max: Duration::from_secs(1000),
    });
    let s = serve(policy, ClientIpResolver::new()).await;
    let c = client("127.0.0.13");
    for expected in [100, 400, 1000, 1000] {
        s.fail(&c, 3, &[]).await;
        let (status, retry, _) = s.get(&c, None, &[]).await;
        assert_eq!((status, retry), (429, Some(expected)));
        s.clock.advance(Duration::from_secs(expected));
    }
    let events = s.events.lock().unwrap();
    let lockouts: Vec<u32> = events.iter().map(|e| e.lockouts).collect();
    assert_eq!(lockouts, [1, 2, 3, 4]);
}

#[tokio::test]
async fn allow_listed_addresses_are_never_locked() {
    let s = serve(
        quick().allow(["127.0.0.16/30"]).unwrap(),
        ClientIpResolver::new(),
    )
    .await;
    let c = client("127.0.0.17");
    s.fail(&c, 10, &[]).await;
    assert_eq!(s.get(&c, Some(&s.token()), &[]).await.0, 200);
    assert!(s.events.lock().unwrap().is_empty());
}

#[tokio::test]
async fn success_resets_nothing_by_default_but_can() {
    let s = serve(quick(), ClientIpResolver::new()).await;
    let c = client("127.0.0.21");
    let token = s.token();
    s.fail(&c, 2, &[]).await;
    assert_eq!(s.get(&c, Some(&token), &[]).await.0, 200);
    s.fail(&c, 1, &[]).await;
    assert_eq!(
        s.get(&c, Some(&token), &[]).await.0,
        429,
        "a valid token washed nothing"
    );

    let s = serve(quick().reset_on_success(), ClientIpResolver::new()).await;
    let token = s.token();
    s.fail(&c, 2, &[]).await;
    assert_eq!(s.get(&c, Some(&token), &[]).await.0, 200);
    s.fail(&c, 2, &[]).await;
    assert_eq!(
        s.get(&c, Some(&token), &[]).await.0,
        200,
        "success reset the count"
    );
}

#[tokio::test]
async fn trusted_proxy_headers_pick_the_rightmost_untrusted_client() {
    // The loopback peer is the trusted proxy, so X-Forwarded-For names the client.
    let resolver = ClientIpResolver::new()
        .trusted_proxies(["127.0.0.0/8", "10.0.0.0/8"])
        .unwrap();
    let s = serve(quick(), resolver).await;
    let proxy = client("127.0.0.31");
    let chain = [("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.0.0.7")];
    s.fail(&proxy, 3, &chain).await;
    assert_eq!(s.get(&proxy, None, &chain).await.0, 429);
    assert_eq!(
        s.events.lock().unwrap()[0].ip.ip(),
        "203.0.113.5".parse::<IpAddr>().unwrap()
    );
    // Another client behind the same proxy is not locked; nor is the proxy itself.
    let other = [("x-forwarded-for", "198.51.100.1")];
    assert_eq!(s.get(&proxy, Some(&s.token()), &other).await.0, 200);
    assert_eq!(s.get(&proxy, Some(&s.token()), &[]).await.0, 200);
    // Malformed headers fall back to the peer: they hide nobody.
    let bad = [("x-forwarded-for", "garbage, 10.0.0.1")];
    assert_eq!(s.get(&proxy, Some(&s.token()), &bad).await.0, 200);
}

/// Found by the `client_ip` fuzz target: bytes that are not visible ASCII in a hop the client
/// wrote (left of the one its proxy appended) made the whole header unreadable, so the client
/// was counted as its proxy: its failures locked out everyone behind that proxy, and it could
/// leave its own lockout. Each hop is now read on its own.
#[tokio::test]
async fn fuzz_regression_a_non_ascii_hop_never_makes_the_client_its_proxy() {
    let resolver = ClientIpResolver::new()
        .trusted_proxies(["127.0.0.0/8", "10.0.0.0/8"])
        .unwrap();
    let s = serve(quick(), resolver).await;
    let proxy = client("127.0.0.51");
    let forged = http::HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.77").unwrap();
    let send = |token: String, xff: Option<http::HeaderValue>| {
        let mut req = proxy.get(&s.base).bearer_auth(token);
        if let Some(xff) = xff {
            req = req.header("x-forwarded-for", xff);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for _ in 0..3 {
        assert_eq!(send("not.a.jwt".into(), Some(forged.clone())).await, 401);
    }
    assert_eq!(send(s.token(), Some(forged.clone())).await, 429);
    assert_eq!(
        s.events.lock().unwrap()[0].ip.ip(),
        "203.0.113.77".parse::<IpAddr>().unwrap()
    );
    // The proxy, and so everyone else behind it, is not locked.
    assert_eq!(send(s.token(), None).await, 200);
}

#[tokio::test]
async fn ipv6_clients_are_grouped_by_their_64() {
    let resolver = ClientIpResolver::new()
        .trusted_proxies(["127.0.0.0/8"])
        .unwrap();
    let s = serve(quick(), resolver).await;
    let proxy = client("127.0.0.41");
    for host in ["2001:db8:1:2::a", "2001:db8:1:2::b", "2001:db8:1:2:ffff::c"] {
        s.fail(&proxy, 1, &[("x-forwarded-for", host)]).await;
    }
    let (status, _, _) = s
        .get(&proxy, None, &[("x-forwarded-for", "2001:db8:1:2::99")])
        .await;
    assert_eq!(status, 429, "one /64 is one client");
    let (status, _, _) = s
        .get(
            &proxy,
            Some(&s.token()),
            &[("x-forwarded-for", "2001:db8:1:3::1")],
        )
        .await;
    assert_eq!(status, 200, "the next /64 is another client");
}

#[test]
fn spray_of_a_million_addresses_stays_within_capacity_and_keeps_locks() {
    let policy = LockoutPolicy::new().capacity(100_000);
    let store = MemoryLockoutStore::new(policy.tracked_capacity());
    let now = Duration::from_secs(1_700_000_000);
    let key = |n: u32| IpKey::new(IpAddr::from(n.to_be_bytes()), 64);
    // 1 000 addresses locked before the spray.
    for n in 0..1_000u32 {
        for _ in 0..5 {
            store
                .record_failure(key(n), now, &policy)
                .into_inner()
                .unwrap();
        }
    }
    let mut max_len = 0;
    for n in 1_000_000..2_000_000u32 {
        store
            .record_failure(
                key(n),
                now + Duration::from_millis(u64::from(n) / 1000),
                &policy,
            )
            .into_inner()
            .unwrap();
        max_len = max_len.max(store.len());
    }
    assert!(max_len <= 100_000, "tracked {max_len}");
    // The locks (15 minutes from `now`) are all still in force after the spray.
    let after = now + Duration::from_secs(800);
    for n in 0..1_000u32 {
        let status = store.check_now(key(n), after).unwrap().unwrap();
        assert!(
            matches!(status, tower_jwt_guard::lockout::LockStatus::Locked { .. }),
            "address {n} lost its lock"
        );
    }
}

#[tokio::test]
async fn without_a_peer_address_requests_pass_uncounted() {
    use tower::ServiceExt;
    tower_jwt_guard::crypto::install_crypto_provider();
    let validator = Validator::<Sub>::builder()
        .key(Key::hmac(SECRET).unwrap())
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(LockoutLayer::builder(quick()).build().unwrap())
        .layer(JwtAuthLayer::new(validator))
        .service(tower::service_fn(|_req: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<
                bytes::Bytes,
            >::new()))
        }));
    for _ in 0..10 {
        let req = http::Request::get("/")
            .header("authorization", "Bearer not.a.jwt")
            .body(())
            .unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 401);
    }
}

/// Defect 1 of the hardening review: a store full of locked addresses stopped locking. Fill a
/// small store (32 addresses) with locks from distinct loopback addresses, then a new address
/// must still be refused after 5 failures, and so must its /24; another /24 is not.
#[tokio::test]
async fn a_full_store_still_locks_new_addresses() {
    let policy = LockoutPolicy::new().capacity(32);
    let s = serve(policy, ClientIpResolver::new()).await;
    for n in 0..32 {
        let c = client(&format!("127.20.0.{}", n + 1));
        s.fail(&c, 5, &[]).await;
        let (status, _, body) = s.get(&c, Some(&s.token()), &[]).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (429, Some("LOCKED_OUT"))
        );
    }
    // The store is full of locks. A newcomer from another /24 gets its 5 attempts, then 429.
    let newcomer = client("127.21.0.1");
    s.fail(&newcomer, 5, &[]).await;
    let (status, retry, body) = s.get(&newcomer, Some("not.a.jwt"), &[]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("LOCKED_OUT"))
    );
    assert!(retry.is_some_and(|r| r >= 900), "{retry:?}");
    // Its /24 neighbour is refused too, with a valid token; another /24 is served.
    let neighbour = client("127.21.0.2");
    let (status, _, _) = s.get(&neighbour, Some(&s.token()), &[]).await;
    assert_eq!(status, 429);
    let elsewhere = client("127.22.0.1");
    let (status, _, _) = s.get(&elsewhere, Some(&s.token()), &[]).await;
    assert_eq!(status, 200);
    // The hook hears of the prefix lock, as of any other.
    let events = s.events.lock().unwrap().clone();
    assert_eq!(events.len(), 33);
    assert_eq!(events[32].ip.ip(), "127.21.0.0".parse::<IpAddr>().unwrap());
}
