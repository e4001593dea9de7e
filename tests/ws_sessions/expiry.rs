//! Expiry, warning, re-authentication.

use crate::setup::*;

#[tokio::test]
async fn a_short_lived_token_warns_at_once_and_closes_after_exp_plus_leeway() {
    let s = start(Setup::default()).await;
    let exp = NOW + 30;
    let mut ws = s.open(&token("alice", exp)).await;
    // 30 s left is less than the default 5-minute warning time: warned at once.
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "token.expiring", "expires_at": exp})
    );
    // One second before exp + leeway the session is open.
    s.clock.advance(Duration::from_secs(30 + LEEWAY - 1));
    assert_echo(&mut ws, "still open").await;
    // Once exp + leeway is reached it closes with 4003, without another warning.
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(close_code(&mut ws).await, 4003);
    s.wait_for("expired session freed", |r| r.connections() == 0)
        .await;
}

#[tokio::test]
async fn the_warning_comes_at_the_configured_time_before_expiry() {
    let s = start(Setup {
        warning: Some(Duration::from_secs(60)),
        ..Setup::default()
    })
    .await;
    let exp = NOW + 600;
    let mut ws = s.open(&token("alice", exp)).await;
    // No warning yet: the first message is the echo.
    assert_echo(&mut ws, "early").await;
    // The warning is due 60 s before exp + leeway.
    s.clock.advance(Duration::from_secs(600 + LEEWAY - 61));
    assert_echo(&mut ws, "before the warning").await;
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "token.expiring", "expires_at": exp})
    );
    assert_echo(&mut ws, "after the warning").await;
    s.clock.advance(Duration::from_secs(60));
    assert_eq!(close_code(&mut ws).await, 4003);
}

#[tokio::test]
async fn reauth_extends_for_the_same_subject_only() {
    let s = start(Setup {
        warning: Some(Duration::from_secs(60)),
        ..Setup::default()
    })
    .await;
    let mut ws = s.open(&token("alice", NOW + 600)).await;
    let reauth = |t: &str| Message::text(json!({"type": "reauth", "token": t}).to_string());

    // A valid token for another user is refused as a forged one is: the answers do not tell
    // them apart.
    ws.send(reauth(&fresh("bob"))).await.unwrap();
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "reauth.failed", "code": "INVALID_TOKEN"})
    );
    ws.send(reauth("garbage")).await.unwrap();
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "reauth.failed", "code": "INVALID_TOKEN"})
    );
    // Three refusals close a socket: go on with a second one.
    let mut ws = s.open(&token("alice", NOW + 600)).await;
    ws.send(reauth(&bad_signature("alice"))).await.unwrap();
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "reauth.failed", "code": "INVALID_TOKEN"})
    );
    ws.send(reauth(&expired("alice"))).await.unwrap();
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "reauth.failed", "code": "TOKEN_EXPIRED"})
    );

    let new_exp = NOW + 7200;
    ws.send(reauth(&token("alice", new_exp))).await.unwrap();
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "reauth.ok", "expires_at": new_exp})
    );
    // Past the first token's exp + leeway the session lives on, without a warning.
    s.clock.advance(Duration::from_secs(600 + LEEWAY + 5));
    assert_echo(&mut ws, "extended").await;
    // The new token's warning and expiry apply.
    s.clock.set_unix_secs(new_exp + LEEWAY - 30);
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "token.expiring", "expires_at": new_exp})
    );
    s.clock.set_unix_secs(new_exp + LEEWAY);
    assert_eq!(close_code(&mut ws).await, 4003);
}

#[tokio::test]
async fn failed_reauth_changes_nothing() {
    let s = start(Setup::default()).await;
    let exp = NOW + 600;
    let (mut ws, hello) = {
        let mut ws = s
            .connect("/ws/id", &bearer(&token("alice", exp)))
            .await
            .unwrap();
        let hello = json_text(&mut ws).await;
        (ws, hello)
    };
    assert_eq!(hello["expires_at"], exp);
    ws.send(Message::text(
        json!({"type": "reauth", "token": token("bob", NOW + 7200)}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(json_text(&mut ws).await["type"], "reauth.failed");
    // Still closed at the original time, even though bob's token lives longer.
    s.clock.set_unix_secs(exp + LEEWAY);
    assert_eq!(close_code(&mut ws).await, 4003);
}

/// The sessions' token cap follows configuration: with HTTP's cap raised to 16 KiB and the
/// sessions told the same, a valid 10 KiB token re-authenticates (the 8 KiB default would
/// refuse it, and count it as a failed attempt); over the cap it is refused.
#[tokio::test]
async fn the_reauth_token_cap_is_the_configured_one() {
    let s = start(Setup {
        extractor: TokenExtractor::new().bearer().max_token_len(16 * 1024),
        max_token_len: Some(16 * 1024),
        ..Setup::default()
    })
    .await;
    let mut ws = s.open(&token("alice", NOW + 600)).await;
    let reauth = |t: &str| Message::text(json!({"type": "reauth", "token": t}).to_string());
    let big = with_claims(json!({"sub": "alice", "exp": NOW + 900, "pad": "x".repeat(7_600)}));
    assert!(big.len() > 10_000 && big.len() < 16 * 1024, "{}", big.len());
    ws.send(reauth(&big)).await.unwrap();
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "reauth.ok", "expires_at": NOW + 900})
    );
    let huge = with_claims(json!({"sub": "alice", "exp": NOW + 900, "pad": "x".repeat(13_000)}));
    assert!(huge.len() > 16 * 1024);
    ws.send(reauth(&huge)).await.unwrap();
    assert_eq!(
        json_text(&mut ws).await,
        json!({"type": "reauth.failed", "code": "INVALID_TOKEN"})
    );
}
