//! The demo's gRPC contract (shared/DEMO_CONTRACT.md, "gRPC"), through a real tonic client over
//! HTTP/2 on loopback against the demo's own server, which serves HTTP, WebSocket and gRPC on
//! one address behind one stack. The demo runs on a FakeClock, so expiry is tested without
//! sleeping for it.
#![cfg(all(feature = "axum", feature = "websocket", feature = "tonic"))]

mod common;
#[path = "common/demo.rs"]
mod demo;

use std::net::Ipv4Addr;
use std::time::Duration;

use demo::grpc::pb;
use demo::grpc::pb::demo_client::DemoClient;
use http_body_util::BodyExt;
use serde_json::json;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use tower_jwt_guard::clock::Clock;

const SECRET: &[u8] = b"demo-grpc-contract-test-secret-0123456789";

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// A tonic client of the demo, connecting from `from`.
async fn client_from(demo: &demo::Demo, from: Ipv4Addr) -> DemoClient<Channel> {
    let channel = Endpoint::from_shared(demo.base())
        .unwrap()
        .local_address(Some(from.into()))
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connect to the demo over HTTP/2");
    DemoClient::new(channel)
}

fn authorized<T>(message: T, value: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", value.parse().unwrap());
    request
}

fn bearer<T>(message: T, token: &str) -> Request<T> {
    authorized(message, &format!("Bearer {token}"))
}

/// `status` has `code` and an `ErrorInfo` with `reason` in the crate's domain.
fn assert_status(status: &Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    let details = status.get_error_details();
    let info = details
        .error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason);
    assert_eq!(info.domain, "tower-jwt-guard");
}

/// The positive `RetryInfo` delay of `status`.
fn retry_delay(status: &Status) -> Duration {
    let delay = status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .unwrap_or_else(|| panic!("no RetryInfo in {status:?}"));
    assert!(delay > Duration::ZERO);
    delay
}

#[tokio::test]
async fn me_reaches_the_handler_with_the_claims() {
    let demo = demo::start(SECRET).await;
    let mut client = client_from(&demo, ip(10)).await;
    let now = demo.clock.now().as_secs();
    let token = demo.sign(
        json!({"sub": "alice", "iat": now, "exp": now + 600, "type": "access", "plan": "pro"}),
    );
    let reply = client
        .me(bearer(pb::MeRequest {}, &token))
        .await
        .expect("a valid token is accepted")
        .into_inner();
    assert_eq!(reply.sub, "alice");
    assert_eq!(reply.plan, "pro");
    // The scheme is case-insensitive.
    let reply = client
        .me(authorized(pb::MeRequest {}, &format!("bEaReR {token}")))
        .await
        .expect("scheme case-insensitive")
        .into_inner();
    assert_eq!(reply.sub, "alice");
}

#[tokio::test]
async fn every_rejection_is_a_grpc_status_with_its_reason() {
    let demo = demo::start(SECRET).await;
    let mut client = client_from(&demo, ip(11)).await;
    let now = demo.clock.now().as_secs();

    let status = client.me(Request::new(pb::MeRequest {})).await.unwrap_err();
    assert_status(&status, Code::Unauthenticated, "MISSING_TOKEN");

    let status = client
        .me(bearer(pb::MeRequest {}, "not.a.token"))
        .await
        .unwrap_err();
    assert_status(&status, Code::Unauthenticated, "INVALID_TOKEN");

    let expired =
        demo.sign(json!({"sub": "alice", "iat": now - 700, "exp": now - 60, "type": "access"}));
    let status = client
        .me(bearer(pb::MeRequest {}, &expired))
        .await
        .unwrap_err();
    assert_status(&status, Code::Unauthenticated, "TOKEN_EXPIRED");

    let refresh =
        demo.sign(json!({"sub": "alice", "iat": now, "exp": now + 600, "type": "refresh"}));
    let status = client
        .me(bearer(pb::MeRequest {}, &refresh))
        .await
        .unwrap_err();
    assert_status(&status, Code::PermissionDenied, "FORBIDDEN");
}

/// A rejection on the wire: HTTP 200, `application/grpc`, the status in the headers and no
/// body (trailers-only), `grpc-message` percent-encoded; read by a bare hyper HTTP/2 client.
#[tokio::test]
async fn a_rejection_is_trailers_only_on_the_wire() {
    let demo = demo::start(SECRET).await;
    let stream = tokio::net::TcpStream::connect(demo.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    // An empty `MeRequest`: the 5-byte gRPC frame header of a zero-length message.
    let request = http::Request::post(format!("{}/demo.v1.Demo/Me", demo.base()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(&[
            0, 0, 0, 0, 0,
        ])))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["grpc-status"], "16");
    assert!(headers.contains_key("grpc-message"));
    let status = Status::from_header_map(&headers).unwrap();
    assert_status(&status, Code::Unauthenticated, "MISSING_TOKEN");
    let body = response.into_body().collect().await.unwrap();
    assert!(
        body.trailers().is_none(),
        "trailers-only: no trailers frame"
    );
    assert!(body.to_bytes().is_empty(), "trailers-only: no body");
}

#[tokio::test]
async fn the_lockout_is_shared_by_grpc_and_http_from_one_address() {
    let demo = demo::start(SECRET).await;
    let from = ip(12);
    let mut grpc = client_from(&demo, from).await;
    let http = common::client_from("127.0.0.12");
    // Three failed gRPC attempts and two failed HTTP ones: five, the demo's limit.
    for _ in 0..3 {
        let status = grpc
            .me(bearer(pb::MeRequest {}, "bad.token.here"))
            .await
            .unwrap_err();
        assert_status(&status, Code::Unauthenticated, "INVALID_TOKEN");
    }
    for _ in 0..2 {
        let reply = common::send(
            http.get(format!("{}/me", demo.base()))
                .bearer_auth("bad.token.here"),
        )
        .await;
        common::assert_rejected(&reply, "INVALID_TOKEN");
    }
    // Locked on every protocol, even with a valid token.
    let token = demo.token("alice", 600);
    let status = grpc.me(bearer(pb::MeRequest {}, &token)).await.unwrap_err();
    assert_status(&status, Code::ResourceExhausted, "LOCKED_OUT");
    assert!(retry_delay(&status) > Duration::from_secs(60));
    let reply = common::send(http.get(format!("{}/me", demo.base())).bearer_auth(&token)).await;
    common::assert_rejected(&reply, "LOCKED_OUT");
    assert_eq!(reply.status, 429);
    // Another address is not affected.
    let mut other = client_from(&demo, ip(13)).await;
    other
        .me(bearer(pb::MeRequest {}, &token))
        .await
        .expect("another address is not locked");
}

#[tokio::test]
async fn a_valid_token_never_counts_as_a_failed_attempt() {
    let demo = demo::start(SECRET).await;
    let mut grpc = client_from(&demo, ip(14)).await;
    let token = demo.token("alice", 600);
    for _ in 0..4 {
        grpc.me(bearer(pb::MeRequest {}, "bad.token.here"))
            .await
            .unwrap_err();
    }
    // Four failures, then valid calls: none of them counts, so none is refused.
    for _ in 0..10 {
        grpc.me(bearer(pb::MeRequest {}, &token))
            .await
            .expect("valid");
    }
    grpc.me(bearer(pb::MeRequest {}, &token))
        .await
        .expect("still not locked");
}

#[tokio::test]
async fn the_order_quota_is_shared_by_place_order_and_post_orders() {
    let demo = demo::start(SECRET).await;
    let mut grpc = client_from(&demo, ip(15)).await;
    let http = common::client_from("127.0.0.15");
    let token = demo.token("carol", 600);
    let order = || pb::OrderRequest {
        item: "book".into(),
        quantity: 1,
    };
    // The clock does not move: the burst of 30 is all there is.
    for i in 0..15 {
        let reply = grpc
            .place_order(bearer(order(), &token))
            .await
            .unwrap_or_else(|s| panic!("order {i}: {s:?}"))
            .into_inner();
        assert_eq!(reply.sub, "carol");
        assert!(!reply.order_id.is_empty());
        let reply = common::send(
            http.post(format!("{}/orders", demo.base()))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(reply.status, 200, "order {i} over HTTP");
    }
    let status = grpc.place_order(bearer(order(), &token)).await.unwrap_err();
    assert_status(&status, Code::ResourceExhausted, "RATE_LIMITED");
    let delay = retry_delay(&status);
    assert!(delay <= Duration::from_secs(3), "{delay:?}");
    let reply = common::send(
        http.post(format!("{}/orders", demo.base()))
            .bearer_auth(&token),
    )
    .await;
    common::assert_rejected(&reply, "RATE_LIMITED");
    // `Me` has no quota; another user has their own.
    grpc.me(bearer(pb::MeRequest {}, &token)).await.unwrap();
    grpc.place_order(bearer(order(), &demo.token("dave", 600)))
        .await
        .unwrap();
    // Rate-limited calls are not failed attempts: still not locked after five of them.
    for _ in 0..5 {
        grpc.place_order(bearer(order(), &token)).await.unwrap_err();
    }
    grpc.me(bearer(pb::MeRequest {}, &token)).await.unwrap();
}

#[tokio::test]
async fn watch_ends_with_unauthenticated_when_the_token_expires() {
    let demo = demo::start(SECRET).await;
    let mut client = client_from(&demo, ip(16)).await;
    let token = demo.token("erin", 60);
    let exp = demo.clock.now().as_secs() + 60;
    let mut ticks = client
        .watch(bearer(pb::WatchRequest {}, &token))
        .await
        .expect("watch starts")
        .into_inner();
    let first = ticks.message().await.unwrap().expect("a first tick");
    assert_eq!(first.seq, 1);
    assert_eq!(first.expires_at, exp);
    // Past `exp` but within the 10 s leeway: the stream goes on.
    demo.clock.advance(Duration::from_secs(65));
    let second = tokio::time::timeout(Duration::from_secs(5), ticks.message())
        .await
        .expect("a tick within the leeway")
        .unwrap()
        .expect("a second tick");
    assert_eq!(second.seq, 2);
    // Beyond the leeway: the stream ends with 16 / TOKEN_EXPIRED, before the next tick is due.
    demo.clock.advance(Duration::from_secs(6));
    let started = std::time::Instant::now();
    let end = demo::stream_end(&mut ticks).await;
    assert_status(&end, Code::Unauthenticated, "TOKEN_EXPIRED");
    assert!(started.elapsed() < Duration::from_millis(900));
}

#[tokio::test]
async fn health_answers_serving_without_a_token() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let demo = demo::start(SECRET).await;
    let channel = Endpoint::from_shared(demo.base())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "demo.v1.Demo"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("{service:?}: {s:?}"))
            .into_inner();
        assert_eq!(reply.status(), ServingStatus::Serving, "{service:?}");
    }
}
