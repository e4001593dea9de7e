//! `examples/hyper.rs`, the full stack on a bare hyper server, called by hyper-util's client on
//! loopback: claims reach the handler, rejections carry their codes, the lockout counts the
//! peer the example records, and the rate limit keys on the user.
#![cfg(all(feature = "lockout", feature = "rate-limit"))]

#[path = "../examples/hyper.rs"]
#[allow(dead_code)]
mod example;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tower_jwt_guard::clock::{Clock, FakeClock};
use tower_jwt_guard::jsonwebtoken::{EncodingKey, Header, encode};

const SECRET: &[u8] = b"hyper-example-test-secret-0123456789abcdef";

async fn start() -> (SocketAddr, FakeClock) {
    tower_jwt_guard::crypto::install_crypto_provider();
    let clock = FakeClock::starting_now();
    let stack = example::stack(SECRET, Arc::new(clock.clone())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(example::serve(listener, stack, std::future::pending()));
    (addr, clock)
}

fn client_from(last: u8) -> Client<HttpConnector, Empty<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))));
    Client::builder(TokioExecutor::new()).build(connector)
}

fn token(clock: &FakeClock, sub: &str) -> String {
    let claims = serde_json::json!({"sub": sub, "exp": clock.now().as_secs() + 600});
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

/// `GET /me` with `token`: the status and the JSON body.
async fn me(
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    token: &str,
) -> (u16, Value) {
    let request = Request::get(format!("http://{addr}/me"))
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::new())
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        let response = client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    })
    .await
    .expect("answered in time")
}

#[tokio::test]
async fn the_example_authenticates_locks_out_and_rate_limits() {
    let (addr, clock) = start().await;
    let alice = client_from(40);
    let (status, body) = me(&alice, addr, &token(&clock, "alice")).await;
    assert_eq!(status, 200);
    assert_eq!(body["sub"], "alice");

    let (status, body) = me(&alice, addr, "not.a.token").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "INVALID_TOKEN");

    // Five failures from .41: locked, even with a valid token; .40 is not.
    let attacker = client_from(41);
    for _ in 0..5 {
        assert_eq!(me(&attacker, addr, "not.a.token").await.0, 401);
    }
    let (status, body) = me(&attacker, addr, &token(&clock, "mallory")).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "LOCKED_OUT");
    assert_eq!(me(&alice, addr, &token(&clock, "alice")).await.0, 200);

    // 60 per minute per user (the clock still): bob's 61st is refused, carol is not.
    let bob = token(&clock, "bob");
    for i in 0..60 {
        assert_eq!(me(&alice, addr, &bob).await.0, 200, "request {i}");
    }
    let (status, body) = me(&alice, addr, &bob).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    assert_eq!(me(&alice, addr, &token(&clock, "carol")).await.0, 200);
}
