//! The stack in a plain tonic server: `Server::builder().layer(…)` with the same layer types as
//! for axum, a real tonic client over HTTP/2 on loopback. The lockout sees the peer through
//! tonic's own `TcpConnectInfo` (no `PeerAddr`, no map layer).
#![cfg(all(feature = "axum", feature = "websocket", feature = "tonic"))]

#[path = "common/demo.rs"]
mod demo;

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use demo::grpc::pb::demo_client::DemoClient;
use demo::grpc::{DemoGrpc, DemoServer, pb};
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::clock::{Clock, FakeClock};
use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy};
use tower_jwt_guard::rate_limit::{PlanQuotas, Quota, UserRateLimitLayer};
use tower_jwt_guard::stream_expiry::StreamExpiryLayer;

const SECRET: &[u8] = b"tonic-server-test-secret-0123456789abcdef";

struct Running {
    addr: SocketAddr,
    clock: FakeClock,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A tonic server running the demo's service behind lockout → auth → stream expiry → rate
/// limit (3 calls per minute per user), each with its default (gRPC-aware) responder.
async fn start() -> Running {
    tower_jwt_guard::crypto::install_crypto_provider();
    let clock = FakeClock::starting_now();
    let config = demo::app::DemoConfig {
        secret: SECRET.to_vec(),
        clock: Arc::new(clock.clone()),
        session_tick: Duration::from_millis(20),
        send_timeout: Duration::from_millis(500),
        redis: None,
        oidc: None,
    };
    let validator = demo::app::validator(&config).unwrap();
    let lockout = LockoutLayer::builder(LockoutPolicy::new())
        .clock(clock.clone())
        .build()
        .unwrap();
    let auth = JwtAuthLayer::new(validator.clone());
    let expiry = StreamExpiryLayer::builder(&validator)
        .max_tick(Duration::from_millis(20))
        .build()
        .unwrap();
    let limit = UserRateLimitLayer::builder(PlanQuotas::new(Quota::per_minute(
        NonZeroU32::new(3).unwrap(),
    )))
    .clock(clock.clone())
    .build()
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .layer(lockout)
            .layer(auth)
            .layer(expiry)
            .layer(limit)
            .add_service(DemoServer::new(DemoGrpc::default()))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    Running {
        addr,
        clock,
        _stop: stop,
    }
}

impl Running {
    async fn client_from(&self, last: u8) -> DemoClient<Channel> {
        let channel = Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .local_address(Some(Ipv4Addr::new(127, 0, 0, last).into()))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .expect("connect to the tonic server");
        DemoClient::new(channel)
    }

    fn token(&self, sub: &str, ttl: u64) -> String {
        let now = self.clock.now().as_secs();
        tower_jwt_guard::jsonwebtoken::encode(
            &tower_jwt_guard::jsonwebtoken::Header::new(tower_jwt_guard::Algorithm::HS256),
            &serde_json::json!({"sub": sub, "iat": now, "exp": now + ttl, "type": "access"}),
            &tower_jwt_guard::jsonwebtoken::EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap()
    }
}

fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn claims_reach_the_handler_and_rejections_are_grpc_statuses() {
    let server = start().await;
    let mut client = server.client_from(30).await;
    let token = server.token("alice", 600);
    let reply = client
        .me(bearer(pb::MeRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.sub, "alice");
    let status = client.me(Request::new(pb::MeRequest {})).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "MISSING_TOKEN");
    // The quota (3 per minute, the clock still): the fourth call is RESOURCE_EXHAUSTED.
    for _ in 0..2 {
        client.me(bearer(pb::MeRequest {}, &token)).await.unwrap();
    }
    let status = client
        .me(bearer(pb::MeRequest {}, &token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "RATE_LIMITED");
    let delay = status.get_error_details().retry_info().unwrap().retry_delay;
    assert!(delay.unwrap() > Duration::ZERO);
}

#[tokio::test]
async fn a_locked_peer_is_refused_through_tcp_connect_info() {
    let server = start().await;
    let mut attacker = server.client_from(31).await;
    for _ in 0..5 {
        let status = attacker
            .me(bearer(pb::MeRequest {}, "bad.token.here"))
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "INVALID_TOKEN");
    }
    let token = server.token("mallory", 600);
    let status = attacker
        .me(bearer(pb::MeRequest {}, &token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "LOCKED_OUT");
    // The lock is the attacker's address only: the peer really was told apart.
    let mut other = server.client_from(32).await;
    other
        .me(bearer(pb::MeRequest {}, &server.token("bob", 600)))
        .await
        .expect("another address is served");
}

#[tokio::test]
async fn a_stream_ends_when_its_token_expires() {
    let server = start().await;
    let mut client = server.client_from(33).await;
    let token = server.token("carol", 30);
    let mut ticks = client
        .watch(bearer(pb::WatchRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ticks.message().await.unwrap().unwrap().seq, 1);
    server.clock.advance(Duration::from_secs(30 + 11));
    let status = demo::stream_end(&mut ticks).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "TOKEN_EXPIRED");
}
