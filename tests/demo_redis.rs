//! The demo's "Shared state (`REDIS_URL`)" contract: two demo instances on one real
//! `redis-server` (started by the test) act as one service, through real HTTP and WebSocket
//! clients; with Redis down every request is still answered within a second.
#![cfg(all(
    feature = "axum",
    feature = "websocket",
    feature = "tonic",
    feature = "redis"
))]

mod common;
#[path = "common/demo.rs"]
mod demo;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower_jwt_guard::clock::Clock;

use demo::Demo;
use redis_server::RedisServer;

const SECRET: &[u8] = b"demo-redis-contract-test-secret-0123456789";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Status and code of `method path` on `d` from `from`, within 1 s.
async fn call(
    d: &Demo,
    from: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Option<String>) {
    let mut request = common::client_from(from)
        .request(method, format!("{}{path}", d.base()))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let reply = timeout(Duration::from_secs(1), request.send())
        .await
        .expect("answered within 1 s")
        .unwrap();
    let status = reply.status().as_u16();
    let body: Value = reply.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().map(str::to_owned))
}

fn admin(d: &Demo) -> String {
    let now = d.clock.now().as_secs();
    d.sign(json!({"sub": "root", "iat": now, "exp": now + 600, "type": "access", "role": "admin"}))
}

async fn connect(d: &Demo, token: &str) -> Ws {
    let mut request = format!("ws://{}/ws", d.addr).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("handshake in time")
    .expect("upgrade")
    .0
}

async fn next_event(ws: &mut Ws, within: Duration) -> Result<String, u16> {
    loop {
        match timeout(within, ws.next()).await.expect("an event in time") {
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Close(Some(frame)))) => return Err(u16::from(frame.code)),
            Some(Ok(_)) => continue,
            other => panic!("ended without a close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn two_instances_share_lockout_quota_revocations_and_notifications() {
    let redis = RedisServer::start();
    let a = demo::start_with_redis(SECRET, &redis.url(0)).await;
    let b = demo::start_with_redis(SECRET, &redis.url(0)).await;
    redis.await_subscribers("tjg:revoked", 2).await;
    use reqwest::Method;

    // Lockout: 4 failures split across the instances do not lock; the 5th does, on both.
    let alice = a.token("alice", 600);
    for d in [&a, &b, &a, &b] {
        assert_eq!(
            call(d, "127.0.0.61", Method::GET, "/me", "bad", None)
                .await
                .0,
            401
        );
    }
    assert_eq!(
        call(&a, "127.0.0.61", Method::GET, "/me", &alice, None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&b, "127.0.0.61", Method::GET, "/me", "bad", None)
            .await
            .0,
        401
    );
    for d in [&a, &b] {
        assert_eq!(
            call(d, "127.0.0.61", Method::GET, "/me", &alice, None).await,
            (429, Some("LOCKED_OUT".to_owned()))
        );
    }

    // The order quota (a burst of 30) is one budget across the instances.
    let carol = a.token("carol", 600);
    for i in 0..30 {
        let d = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            call(d, "127.0.0.62", Method::POST, "/orders", &carol, None)
                .await
                .0,
            200,
            "order {i}"
        );
    }
    assert_eq!(
        call(&b, "127.0.0.62", Method::POST, "/orders", &carol, None).await,
        (429, Some("RATE_LIMITED".to_owned()))
    );

    // A revocation made on a closes bob's socket on b with 4002, and his old token is refused
    // on b; a notification sent through a reaches bob's socket on b.
    let mut on_b = connect(&b, &b.token("bob", 600)).await;
    let mut dave_on_b = connect(&b, &b.token("dave", 600)).await;
    let (status, _) = call(
        &a,
        "127.0.0.63",
        Method::POST,
        "/admin/notify",
        &admin(&a),
        Some(json!({"sub": "dave", "message": "hi"})),
    )
    .await;
    assert_eq!(status, 202);
    let note = next_event(&mut dave_on_b, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&note).unwrap(),
        json!({"type": "notification", "message": "hi"})
    );
    // /admin/stats adds up both instances (within the 5 s of the contract).
    let _on_a = connect(&a, &a.token("frank", 600)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply: Value = common::client_from("127.0.0.65")
            .get(format!("{}/admin/stats", a.base()))
            .bearer_auth(admin(&a))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if reply == json!({"connections": 3, "users": 3}) {
            break;
        }
        assert!(Instant::now() < deadline, "stats never added up: {reply}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old = b.token("bob", 600);
    let started = Instant::now();
    let (status, _) = call(
        &a,
        "127.0.0.63",
        Method::POST,
        "/admin/revoke",
        &admin(&a),
        Some(json!({"sub": "bob"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        next_event(&mut on_b, Duration::from_secs(2)).await,
        Err(4002)
    );
    eprintln!(
        "bob's socket on the other instance closed {:?} after the revocation",
        started.elapsed()
    );
    assert_eq!(
        call(&b, "127.0.0.64", Method::GET, "/me", &old, None).await,
        (401, Some("TOKEN_REVOKED".to_owned()))
    );
}

/// The 10 msg/s budget is one per user across instances: 12 messages sent at once, 6 on a
/// socket on each instance, get at most 11 echoes (10, plus one more if the sending took over
/// the 100 ms that refill one), where two unshared budgets would echo all 12.
#[tokio::test]
async fn a_users_message_budget_is_shared_across_instances() {
    use futures_util::SinkExt;
    let redis = RedisServer::start();
    let a = demo::start_with_redis(SECRET, &redis.url(0)).await;
    let b = demo::start_with_redis(SECRET, &redis.url(0)).await;
    let mut on_a = connect(&a, &a.token("grace", 600)).await;
    let mut on_b = connect(&b, &b.token("grace", 600)).await;
    for i in 0..6 {
        on_a.send(Message::text(format!("a{i}"))).await.unwrap();
        on_b.send(Message::text(format!("b{i}"))).await.unwrap();
    }
    let (mut echoed, mut limited) = (0, 0);
    for ws in [&mut on_a, &mut on_b] {
        for _ in 0..6 {
            let event = next_event(ws, Duration::from_secs(2)).await.unwrap();
            match serde_json::from_str::<Value>(&event) {
                Ok(v) if v["type"] == "rate_limited" => {
                    assert_eq!(v["code"], "RATE_LIMITED");
                    limited += 1;
                }
                _ => echoed += 1,
            }
        }
    }
    assert!(
        (10..=11).contains(&echoed) && echoed + limited == 12,
        "{echoed} echoed, {limited} refused"
    );
}

#[tokio::test]
async fn with_redis_down_every_request_is_answered_within_a_second() {
    let mut redis = RedisServer::start();
    let a = demo::start_with_redis(SECRET, &redis.url(0)).await;
    let b = demo::start_with_redis(SECRET, &redis.url(0)).await;
    redis.kill();
    let erin = a.token("erin", 600);
    use reqwest::Method;
    for _ in 0..3 {
        assert_eq!(
            call(&a, "127.0.0.71", Method::GET, "/me", &erin, None)
                .await
                .0,
            200
        );
        assert_eq!(
            call(&a, "127.0.0.71", Method::POST, "/orders", &erin, None)
                .await
                .0,
            200
        );
        assert_eq!(
            call(&a, "127.0.0.72", Method::GET, "/me", "bad", None)
                .await
                .0,
            401
        );
    }
    // The revocation holds on this instance while Redis is away.
    let (status, _) = call(&a, "127.0.0.73", Method::POST, "/admin/revoke", &a.sign(json!({"sub": "root", "iat": a.clock.now().as_secs(), "exp": a.clock.now().as_secs() + 600, "type": "access", "role": "admin"})), Some(json!({"sub": "erin"}))).await;
    assert_eq!(status, 200);
    assert_eq!(
        call(&a, "127.0.0.71", Method::GET, "/me", &erin, None).await,
        (401, Some("TOKEN_REVOKED".to_owned()))
    );

    // Redis back on the same port: within 5 s, five failures on a lock the address on b too.
    redis.restart();
    let restarted = Instant::now();
    let frank = a.token("frank", 600);
    for n in 1u8.. {
        let ip = format!("127.0.7.{n}");
        for _ in 0..5 {
            let (status, _) = call(&a, &ip, Method::GET, "/me", "bad", None).await;
            assert!(status == 401 || status == 429, "{status}");
        }
        if call(&b, &ip, Method::GET, "/me", &frank, None).await.0 == 429 {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(5),
            "shared state did not resume within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "shared lockout back {:?} after the restart",
        restarted.elapsed()
    );
}
