//! `StreamExpiryLayer` on plain HTTP streaming responses: an SSE stream through a real axum
//! server on loopback, read by a real HTTP client, ends when its token expires; buffered
//! responses and unauthenticated requests are left alone.
#![cfg(all(feature = "axum", feature = "stream-expiry"))]

mod common;

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use common::*;
use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::stream_expiry::StreamExpiryLayer;

/// An endless SSE stream: an event every 20 ms.
async fn events() -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let ticks = futures_util::stream::unfold(0u64, |n| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Some((Ok(Event::default().data(n.to_string())), n + 1))
    });
    Sse::new(ticks)
}

async fn start(clock: &FakeClock, optional: bool) -> TestServer {
    let validator = hmac_builder_at(clock)
        .leeway(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut auth = JwtAuthLayer::builder(validator.clone());
    if optional {
        auth = auth.optional();
    }
    let router = Router::new()
        .route("/events", get(events))
        .route("/me", get(whoami))
        .layer(
            StreamExpiryLayer::builder(&validator)
                .max_tick(Duration::from_millis(20))
                .build()
                .unwrap(),
        )
        .layer(auth.build().unwrap());
    serve(router).await
}

/// Reads `url`'s body with `token` until it ends (`Ok(bytes read)`) or `within` passes (`Err`).
async fn read_until_end(
    url: String,
    token: Option<String>,
    clock: &FakeClock,
    advance_after_first: Duration,
) -> Result<usize, usize> {
    let mut request = client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().expect("a first event");
    clock.advance(advance_after_first);
    let mut read = first.len();
    let outcome = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(chunk) = response
            .chunk()
            .await
            .expect("a clean end, not a broken connection")
        {
            read += chunk.len();
        }
    })
    .await;
    match outcome {
        Ok(()) => Ok(read),
        Err(_) => Err(read),
    }
}

#[tokio::test]
async fn an_sse_stream_ends_when_its_token_expires() {
    let clock = FakeClock::at_unix_secs(NOW);
    let server = start(&clock, false).await;
    let token = sign_hs256(&claims("alice", NOW + 60));
    // Past `exp` plus the 5 s leeway: the stream ends cleanly, within a few ticks.
    let started = std::time::Instant::now();
    let ended = read_until_end(
        server.url("/events"),
        Some(token),
        &clock,
        Duration::from_secs(66),
    )
    .await;
    assert!(ended.is_ok(), "the stream did not end: {ended:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn within_the_leeway_the_stream_goes_on() {
    let clock = FakeClock::at_unix_secs(NOW);
    let server = start(&clock, false).await;
    let token = sign_hs256(&claims("alice", NOW + 60));
    let ended = read_until_end(
        server.url("/events"),
        Some(token),
        &clock,
        Duration::from_secs(64),
    )
    .await;
    let read = ended.expect_err("the stream must go on within the leeway");
    // Events kept coming for the two seconds.
    assert!(read > 200, "{read} bytes");
}

#[tokio::test]
async fn unauthenticated_streams_and_buffered_bodies_are_left_alone() {
    let clock = FakeClock::at_unix_secs(NOW);
    let server = start(&clock, true).await;
    // No token (optional mode): no deadline at all.
    let ended = read_until_end(
        server.url("/events"),
        None,
        &clock,
        Duration::from_secs(3600),
    )
    .await;
    assert!(ended.is_err(), "a stream without a token has no expiry");
    // A buffered response of an authenticated request passes whole.
    let now = tower_jwt_guard::clock::Clock::now(&clock).as_secs();
    let token = sign_hs256(&claims("bob", now + 60));
    let reply = send(client().get(server.url("/me")).bearer_auth(&token)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["subject"], "bob");
}
