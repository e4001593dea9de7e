//! The rate limiter's audit event and rejection marker, with logs captured at TRACE.
//!
//! Alone in its test binary: `tracing` caches per call site whether anyone listens, and tests
//! running in parallel threads without a subscriber could race that cache with the scoped
//! subscriber of this test.

#![cfg(feature = "rate-limit")]

mod common;

use std::convert::Infallible;
use std::num::NonZeroU32;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};
use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::outcome::AuthRejection;
use tower_jwt_guard::rate_limit::{PlanQuotas, Quota, UserRateLimitLayer};
use tower_jwt_guard::validate::Validator;
use tower_jwt_guard::{ErrorCode, JwtAuthLayer};

use common::{HMAC_SECRET, NOW, sign_hs256};

#[derive(Debug, Clone, Deserialize)]
struct PlanClaims {
    #[allow(dead_code)]
    sub: String,
}

fn clock() -> FakeClock {
    FakeClock::at_unix_secs(NOW)
}

fn validator(clock: &FakeClock) -> Validator<PlanClaims> {
    Validator::<PlanClaims>::builder()
        .key(Key::hmac(HMAC_SECRET).expect("HMAC key"))
        .clock(clock.clone())
        .build()
        .expect("validator")
}

fn limiter(
    quotas: PlanQuotas,
    clock: &FakeClock,
) -> tower_jwt_guard::rate_limit::UserRateLimitBuilder<
    tower_jwt_guard::rate_limit::MemoryRateLimitStore,
> {
    UserRateLimitLayer::builder(quotas).clock(clock.clone())
}

fn per_minute(n: u32) -> PlanQuotas {
    PlanQuotas::new(Quota::per_minute(NonZeroU32::new(n).unwrap()))
}

fn plain(sub: &str) -> String {
    sign_hs256(&json!({ "sub": sub, "exp": NOW + 3600 }))
}

#[test]
fn the_rejection_is_marked_and_the_audit_log_holds_no_token() {
    let buffer = common::LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_target(true)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = plain("alice");
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let clock = clock();
            let svc = ServiceBuilder::new()
                .layer(JwtAuthLayer::new(validator(&clock)))
                .layer(limiter(per_minute(2), &clock).build().unwrap())
                .service(tower::service_fn(|_req: http::Request<()>| async {
                    Ok::<_, Infallible>(http::Response::new(Empty::<Bytes>::new()))
                }));
            let request = || {
                http::Request::post("/orders")
                    .header("authorization", format!("Bearer {token}"))
                    .body(())
                    .unwrap()
            };
            for _ in 0..2 {
                let res = svc.clone().oneshot(request()).await.unwrap();
                assert_eq!(res.status(), 200);
                assert_eq!(res.extensions().get::<AuthRejection>(), None);
            }
            let res = svc.clone().oneshot(request()).await.unwrap();
            assert_eq!(res.status(), 429);
            assert_eq!(
                res.extensions().get::<AuthRejection>(),
                Some(&AuthRejection {
                    code: ErrorCode::RateLimited
                })
            );
            assert_eq!(res.headers()["retry-after"], "30");
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"]["code"], "RATE_LIMITED");
        });
    });
    drop(runtime);
    let logs = buffer.text();

    let refused: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("tower_jwt_guard::audit") && l.contains("RATE_LIMITED"))
        .collect();
    assert_eq!(refused.len(), 1, "{logs}");
    assert!(refused[0].contains("alice"), "{}", refused[0]);
    assert!(refused[0].contains("/orders"), "{}", refused[0]);
    let segments: Vec<&str> = token.split('.').collect();
    for piece in [token.as_str(), segments[1], segments[2], &segments[2][..16]] {
        assert!(!logs.contains(piece), "the logs contain token text");
    }
    assert!(
        !logs.contains("eyJ"),
        "the logs contain something JWT-shaped"
    );
}
