//! Sessions act without the application's help (hardening defect 3).

use crate::setup::*;

/// Reads until the close frame, skipping the handler's ticks and anything else; returns the
/// close code and the texts that were not ticks.
async fn close_among_ticks(ws: &mut Ws) -> (u16, Vec<String>) {
    let mut others = Vec::new();
    loop {
        match timeout(WAIT, ws.next()).await.expect("no close in time") {
            Some(Ok(Message::Close(Some(frame)))) => return (u16::from(frame.code), others),
            Some(Ok(Message::Text(t))) if t.as_str() == "tick" => {}
            Some(Ok(Message::Text(t))) => others.push(t.to_string()),
            Some(Ok(_)) => {}
            other => panic!("ended without a close code: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_push_only_handler_session_still_ends_at_expiry() {
    let s = start(Setup::default()).await;
    let mut ws = s
        .connect("/ws/push", &bearer(&token("alice", NOW + 60)))
        .await
        .unwrap();
    // The warning (less than its 5 minutes are left) and the handler's ticks.
    while next_text(&mut ws).await != "tick" {}
    // The handler never calls `recv`; the session's own task closes at exp + leeway.
    s.clock.advance(Duration::from_secs(60 + LEEWAY));
    let (code, others) = close_among_ticks(&mut ws).await;
    assert_eq!(code, 4003);
    assert!(
        others.iter().all(|t| t.contains("token.expiring")),
        "{others:?}"
    );
    s.wait_for("the slot is freed", |r| r.connections() == 0)
        .await;
}

#[tokio::test]
async fn a_push_only_handler_session_is_revoked_and_notified() {
    let s = start(Setup::default()).await;
    let mut ws = s
        .connect("/ws/push", &bearer(&fresh("alice")))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "tick");
    let registry = s.sessions.registry();
    assert_eq!(registry.notify_user("alice", "hi \"there\""), 1);
    loop {
        let text = next_text(&mut ws).await;
        if text != "tick" {
            let json: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                json,
                json!({"type": "notification", "message": "hi \"there\""})
            );
            break;
        }
    }
    assert_eq!(registry.revoke_user("alice"), 1);
    assert_eq!(close_among_ticks(&mut ws).await.0, 4002);
}
