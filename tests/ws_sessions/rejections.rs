//! Rejections in both modes.

use crate::setup::*;

#[tokio::test]
async fn close_frame_mode_refuses_with_the_close_code_of_each_failure() {
    let s = start(Setup {
        close_frames: true,
        ..Setup::default()
    })
    .await;
    let cases = [
        ("no token", vec![], 4001, "MISSING_TOKEN"),
        (
            "bad signature",
            bearer(&bad_signature("alice")),
            4002,
            "INVALID_TOKEN",
        ),
        ("garbage", bearer("not.a.jwt-at-all"), 4002, "INVALID_TOKEN"),
        ("expired", bearer(&expired("alice")), 4003, "TOKEN_EXPIRED"),
        ("forbidden", bearer(&forbidden_token()), 4000, "FORBIDDEN"),
    ];
    for (what, headers, code, reason) in cases {
        eprintln!("case: {what}");
        let result = connect_from(s.addr, ip(1), "/ws", &headers).await;
        assert_closed_with(result, code, reason).await;
    }
    // No session was ever opened for a refused client.
    assert_eq!(s.sessions.registry().connections(), 0);
    // A good token still gets a working socket in close-frame mode.
    let mut ws = s.open(&fresh("alice")).await;
    assert_echo(&mut ws, "hello").await;
}

#[tokio::test]
async fn close_frame_mode_answers_an_offered_application_protocol() {
    let s = start(Setup {
        close_frames: true,
        extractor: TokenExtractor::new().bearer().websocket_protocol(),
        ..Setup::default()
    })
    .await;
    let offered = format!(
        "chat, base64url.bearer.authorization.jwt.{}",
        URL_SAFE_NO_PAD.encode(expired("alice"))
    );
    let result = connect_from(s.addr, ip(1), "/ws", &[("sec-websocket-protocol", offered)]).await;
    let response = assert_closed_with(result, 4003, "TOKEN_EXPIRED").await;
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
}

#[tokio::test]
async fn http_mode_refuses_before_any_upgrade() {
    let s = start(Setup::default()).await;
    let cases = [
        (vec![], 401, "MISSING_TOKEN"),
        (bearer(&bad_signature("alice")), 401, "INVALID_TOKEN"),
        (bearer("garbage"), 401, "INVALID_TOKEN"),
        (bearer(&expired("alice")), 401, "TOKEN_EXPIRED"),
        (bearer(&forbidden_token()), 403, "FORBIDDEN"),
    ];
    for (headers, status, code) in cases {
        assert_http(
            connect_from(s.addr, ip(1), "/ws", &headers).await,
            status,
            code,
        );
    }
    assert_eq!(s.sessions.registry().connections(), 0);
}

#[tokio::test]
async fn a_locked_address_is_closed_with_4029_in_close_frame_mode() {
    let s = start(Setup {
        close_frames: true,
        lockout: true,
        ..Setup::default()
    })
    .await;
    let locked = ip(9);
    for _ in 0..2 {
        let r = connect_from(s.addr, locked, "/ws", &bearer("garbage")).await;
        assert_closed_with(r, 4002, "INVALID_TOKEN").await;
    }
    // Now even a valid token from that address is refused; another address is not.
    let r = connect_from(s.addr, locked, "/ws", &bearer(&fresh("alice"))).await;
    assert_closed_with(r, 4029, "LOCKED_OUT").await;
    let (mut ws, _) = connect_from(s.addr, ip(10), "/ws", &bearer(&fresh("alice")))
        .await
        .expect("another address is not locked");
    assert_echo(&mut ws, "free").await;
    // After the lock (15 minutes) the address is let in again.
    s.clock.advance(Duration::from_secs(15 * 60 + 1));
    let (mut ws, _) = connect_from(s.addr, locked, "/ws", &bearer(&fresh("alice")))
        .await
        .expect("the lock expired");
    assert_echo(&mut ws, "again").await;
}

#[tokio::test]
async fn a_locked_address_gets_429_in_http_mode() {
    let s = start(Setup {
        lockout: true,
        ..Setup::default()
    })
    .await;
    let locked = ip(11);
    for _ in 0..2 {
        let r = connect_from(s.addr, locked, "/ws", &bearer(&expired("alice"))).await;
        assert_http(r, 401, "TOKEN_EXPIRED");
    }
    let r = connect_from(s.addr, locked, "/ws", &bearer(&fresh("alice"))).await;
    assert_http(r, 429, "LOCKED_OUT");
    let (mut ws, _) = connect_from(s.addr, ip(12), "/ws", &bearer(&fresh("alice")))
        .await
        .expect("another address is not locked");
    assert_echo(&mut ws, "free").await;
}
