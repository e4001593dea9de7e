//! The demo's revocation and fan-out contract (shared/DEMO_CONTRACT.md, "Revocation and
//! fan-out"), in memory: `/admin/revoke`, `/admin/notify`, `/admin/stats`, through a real
//! server with real HTTP, WebSocket and gRPC clients.
#![cfg(all(feature = "axum", feature = "websocket", feature = "tonic"))]

mod common;
#[path = "common/demo.rs"]
mod demo;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower_jwt_guard::clock::Clock;

use demo::Demo;
use demo::grpc::pb;
use demo::grpc::pb::demo_client::DemoClient;

const SECRET: &[u8] = b"demo-admin-contract-test-secret-0123456789";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn http() -> reqwest::Client {
    common::client_from("127.0.0.1")
}

/// A token from the demo's own issuer (`POST /auth/token`).
async fn issued(d: &Demo, body: Value) -> String {
    let reply: Value = http()
        .post(format!("{}/auth/token", d.base()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["access_token"].as_str().expect("a token").to_owned()
}

fn admin(d: &Demo) -> String {
    let now = d.clock.now().as_secs();
    d.sign(json!({"sub": "root", "iat": now, "exp": now + 600, "type": "access", "role": "admin"}))
}

async fn call(
    d: &Demo,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http()
        .request(method, format!("{}{path}", d.base()))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let reply = request.send().await.unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap_or(Value::Null))
}

async fn me(d: &Demo, token: &str) -> (u16, Value) {
    call(d, reqwest::Method::GET, "/me", token, None).await
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

/// The next text message or the close code, within `within`.
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
async fn admin_routes_need_an_admin_token() {
    let d = demo::start(SECRET).await;
    let user = d.token("alice", 600);
    for (method, path, body) in [
        (
            reqwest::Method::POST,
            "/admin/revoke",
            Some(json!({"sub": "bob"})),
        ),
        (
            reqwest::Method::POST,
            "/admin/notify",
            Some(json!({"sub": "bob", "message": "hi"})),
        ),
        (reqwest::Method::GET, "/admin/stats", None),
    ] {
        let (status, reply) = call(&d, method.clone(), path, &user, body.clone()).await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (403, Some("FORBIDDEN")),
            "{path}"
        );
        let reply = http()
            .request(method, format!("{}{path}", d.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 401, "{path} without a token");
    }
}

#[tokio::test]
async fn a_revoked_subject_is_refused_everywhere_and_its_sockets_close_with_4002() {
    let d = demo::start(SECRET).await;
    let old = d.token("bob", 3600);
    let other = d.token("alice", 3600);
    let mut socket = connect(&d, &old).await;
    let mut bystander = connect(&d, &other).await;
    assert_eq!(me(&d, &old).await.0, 200);

    let (status, reply) = call(
        &d,
        reqwest::Method::POST,
        "/admin/revoke",
        &admin(&d),
        Some(json!({"sub": "bob"})),
    )
    .await;
    let now = d.clock.now().as_secs();
    assert_eq!(
        (status, reply.clone()),
        (200, json!({"revoked": "bob", "at": now}))
    );

    // HTTP: 401 TOKEN_REVOKED, invalid_token.
    let reply = http()
        .get(format!("{}/me", d.base()))
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
    let challenge = reply.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TOKEN_REVOKED");
    // The open socket closes with 4002 within 2 s; another user's stays open.
    assert_eq!(
        next_event(&mut socket, Duration::from_secs(2)).await,
        Err(4002)
    );
    bystander.send_text("still here").await;
    assert_eq!(
        next_event(&mut bystander, Duration::from_secs(2))
            .await
            .as_deref(),
        Ok("still here")
    );
    // A new upgrade with the old token is refused.
    let mut request = format!("ws://{}/ws", d.addr).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {old}").parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_err());
    // gRPC: UNAUTHENTICATED with the TOKEN_REVOKED reason.
    let channel = tonic::transport::Endpoint::from_shared(d.base())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = DemoClient::new(channel);
    let mut request = tonic::Request::new(pb::MeRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {old}").parse().unwrap());
    let status = grpc.me(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    use tonic_types::StatusExt;
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "TOKEN_REVOKED"
    );

    // A token issued afterwards works, even within the same second.
    let fresh = issued(&d, json!({"sub": "bob"})).await;
    assert_eq!(me(&d, &fresh).await.0, 200);
    // A WebSocket re-authentication with the revoked token is refused with its code.
    let mut renewed = connect(&d, &fresh).await;
    renewed
        .send_text(&json!({"type": "reauth", "token": old}).to_string())
        .await;
    let reply = next_event(&mut renewed, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&reply).unwrap(),
        json!({"type": "reauth.failed", "code": "TOKEN_REVOKED"})
    );
    // Revoked tokens are not failed attempts: ten of them lock nothing.
    for _ in 0..10 {
        assert_eq!(me(&d, &old).await.1["error"]["code"], "TOKEN_REVOKED");
    }
    assert_eq!(me(&d, &other).await.0, 200);
}

#[tokio::test]
async fn a_notification_reaches_every_socket_of_the_user() {
    let d = demo::start(SECRET).await;
    let mut first = connect(&d, &d.token("bob", 600)).await;
    let mut second = connect(&d, &d.token("bob", 600)).await;
    let mut other = connect(&d, &d.token("carol", 600)).await;
    let (status, _) = call(
        &d,
        reqwest::Method::POST,
        "/admin/notify",
        &admin(&d),
        Some(json!({"sub": "bob", "message": "hi"})),
    )
    .await;
    assert_eq!(status, 202);
    for ws in [&mut first, &mut second] {
        let text = next_event(ws, Duration::from_secs(2)).await.unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"type": "notification", "message": "hi"})
        );
    }
    other.send_text("ping").await;
    assert_eq!(
        next_event(&mut other, Duration::from_secs(2))
            .await
            .as_deref(),
        Ok("ping"),
        "carol got nothing else"
    );
}

#[tokio::test]
async fn stats_count_connections_and_users() {
    let d = demo::start(SECRET).await;
    let stats = || async { call(&d, reqwest::Method::GET, "/admin/stats", &admin(&d), None).await };
    assert_eq!(stats().await, (200, json!({"connections": 0, "users": 0})));
    let _a = connect(&d, &d.token("bob", 600)).await;
    let _b = connect(&d, &d.token("bob", 600)).await;
    let c = connect(&d, &d.token("carol", 600)).await;
    assert_eq!(stats().await, (200, json!({"connections": 3, "users": 2})));
    drop(c);
    // The server notices the closed connection shortly.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, s) = stats().await;
        if s == json!({"connections": 2, "users": 1}) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stats never dropped to 2/1: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_issuer_takes_a_ttl_and_a_role() {
    let d = demo::start(SECRET).await;
    let reply = |body: Value| {
        let url = format!("{}/auth/token", d.base());
        async move {
            let r = http().post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = reply(json!({"sub": "bob", "ttl": 60})).await;
    assert_eq!((status, body["expires_in"].as_u64()), (200, Some(60)));
    for ttl in [0, 86_401] {
        assert_eq!(
            reply(json!({"sub": "bob", "ttl": ttl})).await.0,
            400,
            "ttl {ttl}"
        );
    }
    let token = issued(&d, json!({"sub": "ops", "role": "admin", "ttl": 86_400})).await;
    assert_eq!(
        call(&d, reqwest::Method::GET, "/admin/stats", &token, None)
            .await
            .0,
        200
    );
}

trait SendText {
    async fn send_text(&mut self, text: &str);
}

impl SendText for Ws {
    async fn send_text(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.send(Message::text(text)).await.unwrap();
    }
}
