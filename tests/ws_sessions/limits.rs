//! Connection limits.

use crate::setup::*;

fn limits_2_3() -> SessionRegistry {
    SessionRegistry::new(ConnectionLimits::new().per_user(2).global(3))
}

#[tokio::test]
async fn per_user_and_global_limits_answer_429() {
    let s = start(Setup {
        registry: limits_2_3(),
        ..Setup::default()
    })
    .await;
    let alice = fresh("alice");
    let mut a1 = s.open(&alice).await;
    let _a2 = s.open(&alice).await;
    let r = connect_from(s.addr, ip(1), "/ws", &bearer(&alice)).await;
    assert_http(r, 429, "RATE_LIMITED");
    // Another user gets in, up to the global limit of 3.
    let mut b1 = s.open(&fresh("bob")).await;
    assert_echo(&mut b1, "bob").await;
    let r = connect_from(s.addr, ip(1), "/ws", &bearer(&fresh("carol"))).await;
    assert_http(r, 429, "RATE_LIMITED");
    assert_eq!(s.sessions.registry().connections(), 3);
    // A refused upgrade leaves nothing behind, and a freed slot is usable again.
    a1.close(None).await.unwrap();
    s.wait_for("a slot freed", |r| r.connections() == 2).await;
    let mut c1 = s.open(&fresh("carol")).await;
    assert_echo(&mut c1, "carol").await;
}

#[tokio::test]
async fn over_a_limit_the_session_close_frames_give_4029_with_the_session_first() {
    let s = start(Setup {
        registry: limits_2_3(),
        close_frames: true,
        ..Setup::default()
    })
    .await;
    let alice = fresh("alice");
    let _a1 = s.open(&alice).await;
    let _a2 = s.open(&alice).await;
    let r = connect_from(s.addr, ip(1), "/ws/session-first", &bearer(&alice)).await;
    assert_closed_with(r, 4029, "RATE_LIMITED").await;
    let _b = s.open(&fresh("bob")).await;
    let r = connect_from(s.addr, ip(1), "/ws/session-first", &bearer(&fresh("carol"))).await;
    assert_closed_with(r, 4029, "RATE_LIMITED").await;
    assert_eq!(s.sessions.registry().connections(), 3);
}

/// The documentation asks for `WsSession` before `WebSocketUpgrade`: axum's upgrade extractor
/// removes hyper's `OnUpgrade`, so with the upgrade taken first a close-frame refusal cannot
/// complete the upgrade. The refusal must then still happen, over HTTP (429), never let the
/// client in.
#[tokio::test]
async fn over_a_limit_with_the_upgrade_taken_first_the_refusal_falls_back_to_http() {
    let s = start(Setup {
        registry: limits_2_3(),
        close_frames: true,
        ..Setup::default()
    })
    .await;
    let alice = fresh("alice");
    let _a1 = s.open(&alice).await;
    let _a2 = s.open(&alice).await;
    let r = connect_from(s.addr, ip(1), "/ws", &bearer(&alice)).await;
    assert_http(r, 429, "RATE_LIMITED");
    assert_eq!(s.sessions.registry().connections(), 2);
}

#[tokio::test]
async fn a_plan_has_its_own_per_user_limit() {
    let s = start(Setup {
        registry: SessionRegistry::new(
            ConnectionLimits::new()
                .per_user(1)
                .per_user_on_plan("pro", 3)
                .unwrap(),
        ),
        plan: true,
        ..Setup::default()
    })
    .await;
    let free = fresh("frank");
    let _f1 = s.open(&free).await;
    let r = connect_from(s.addr, ip(1), "/ws", &bearer(&free)).await;
    assert_http(r, 429, "RATE_LIMITED");

    let pro = with_claims(json!({"sub": "paula", "exp": NOW + 3600, "plan": "pro"}));
    let mut held = Vec::new();
    for _ in 0..3 {
        let (ws, hello) = s.open_id(&pro).await;
        assert_eq!(hello["plan"], "pro");
        held.push(ws);
    }
    let r = connect_from(s.addr, ip(1), "/ws", &bearer(&pro)).await;
    assert_http(r, 429, "RATE_LIMITED");
    assert_eq!(s.sessions.registry().connections_of("paula"), 3);
    assert_eq!(s.sessions.registry().connections_of("frank"), 1);
}
