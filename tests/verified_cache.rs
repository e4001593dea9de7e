//! The cache of verified tokens, through a real server: a token presented again is accepted
//! without being verified again, yet expiry and the revocation hook are still applied on every
//! request, and a token that differs in any byte is verified in full.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tower_jwt_guard::clock::FakeClock;
use tower_jwt_guard::{AuthContext, JwtAuthLayer};

use common::*;

#[tokio::test]
async fn repeat_token_is_accepted_and_still_expires_and_is_still_checked_for_revocation() {
    let clock = FakeClock::at_unix_secs(NOW);
    let calls = Arc::new(AtomicUsize::new(0));
    let revoked = Arc::new(AtomicUsize::new(0));
    let (seen, gone) = (Arc::clone(&calls), Arc::clone(&revoked));
    let validator = hmac_builder()
        .clock(clock.clone())
        .revocation(move |_: &AuthContext| {
            seen.fetch_add(1, Ordering::SeqCst);
            let revoked = gone.load(Ordering::SeqCst) == 1;
            async move { Ok::<_, std::io::Error>(revoked) }
        })
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let token = sign_hs256(&json!({"sub": "alice", "exp": NOW + 60}));

    for i in 1..=3 {
        assert_accepted(&get_bearer(&server, &token).await, "alice");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            i,
            "the hook runs on every request"
        );
    }

    // Revoked between two requests: refused although the token is cached.
    revoked.store(1, Ordering::SeqCst);
    assert_rejected(&get_bearer(&server, &token).await, "TOKEN_REVOKED");
    revoked.store(0, Ordering::SeqCst);
    assert_accepted(&get_bearer(&server, &token).await, "alice");

    // One byte changed in the signature: not the cached token.
    let at = token.len() - 5;
    let swap = if &token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{swap}{}", &token[..at], &token[at + 1..]);
    assert_rejected(&get_bearer(&server, &tampered).await, "INVALID_TOKEN");

    // Inside the leeway it is still good; past exp + leeway (10 s) the cached token expires.
    clock.advance(Duration::from_secs(69));
    assert_accepted(&get_bearer(&server, &token).await, "alice");
    clock.advance(Duration::from_secs(1));
    assert_rejected(&get_bearer(&server, &token).await, "TOKEN_EXPIRED");
    assert_rejected(&get_bearer(&server, &token).await, "TOKEN_EXPIRED");
}

#[tokio::test]
async fn requirements_are_run_again_on_a_repeat_token() {
    // A requirement that reads state of its own (a deny-list, a feature flag).
    let allowed = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&allowed);
    let validator = hmac_builder()
        .require("the account is suspended", move |_: &TestClaims| {
            flag.load(Ordering::SeqCst)
        })
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let token = sign_hs256(&json!({"sub": "dave", "exp": NOW + 60}));
    assert_accepted(&get_bearer(&server, &token).await, "dave");
    allowed.store(false, Ordering::SeqCst);
    assert_rejected(&get_bearer(&server, &token).await, "FORBIDDEN");
    allowed.store(true, Ordering::SeqCst);
    assert_accepted(&get_bearer(&server, &token).await, "dave");
}

#[tokio::test]
async fn cache_can_be_turned_off() {
    let layer = JwtAuthLayer::builder(hmac_validator())
        .verified_token_cache(0)
        .build()
        .unwrap();
    assert!(format!("{layer:?}").contains("cache: None"));
    let server = serve_layer(layer).await;
    let token = sign_hs256(&json!({"sub": "bob", "exp": NOW + 60}));
    for _ in 0..2 {
        assert_accepted(&get_bearer(&server, &token).await, "bob");
    }
}
