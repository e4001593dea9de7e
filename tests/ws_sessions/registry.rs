//! The registry.

use crate::setup::*;

#[tokio::test]
async fn registry_counts_sends_to_a_user_and_revokes_a_user() {
    let s = start(Setup::default()).await;
    let registry = s.sessions.registry();
    let alice = fresh("alice");
    let mut a1 = s.open(&alice).await;
    let mut a2 = s.open(&alice).await;
    let mut b1 = s.open(&fresh("bob")).await;
    // The upgrade has completed once each socket echoes.
    for ws in [&mut a1, &mut a2, &mut b1] {
        assert_echo(ws, "up").await;
    }
    let stats = registry.stats();
    assert_eq!(stats.connections, 3);
    assert_eq!(stats.users, 2);
    assert_eq!(stats.per_user.get("alice"), Some(&2));
    assert_eq!(stats.per_user.get("bob"), Some(&1));

    assert_eq!(registry.send_to_user("alice", "to alice"), 2);
    assert_eq!(next_text(&mut a1).await, "to alice");
    assert_eq!(next_text(&mut a2).await, "to alice");
    // Bob's next message is his own echo, not alice's message.
    assert_echo(&mut b1, "bob only").await;
    assert_eq!(registry.send_to_user("nobody", "x"), 0);

    assert_eq!(registry.revoke_user("alice"), 2);
    assert_eq!(close_code(&mut a1).await, 4002);
    assert_eq!(close_code(&mut a2).await, 4002);
    assert_echo(&mut b1, "still here").await;
    s.wait_for("alice's sessions freed", |r| {
        r.connections() == 1 && r.connections_of("alice") == 0
    })
    .await;
    assert_eq!(registry.users(), 1);
}

#[tokio::test]
async fn stats_return_to_zero_after_clean_closes_and_vanished_clients() {
    let s = start(Setup::default()).await;
    let mut clean = Vec::new();
    let mut vanish = Vec::new();
    for n in 0..6 {
        let mut ws = s.open(&fresh(&format!("user{}", n % 3))).await;
        assert_echo(&mut ws, "up").await;
        if n % 2 == 0 {
            clean.push(ws);
        } else {
            vanish.push(ws);
        }
    }
    let stats = s.sessions.registry().stats();
    assert_eq!((stats.connections, stats.users), (6, 3));
    for ws in &mut clean {
        // Whether the server answers the close is checked below; here only that it ends.
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = timeout(WAIT, ws.next()).await.expect("socket end") {}
    }
    s.wait_for("clean closes freed", |r| r.connections() == 3)
        .await;
    // The others just drop their TCP connection, no close frame.
    drop(vanish);
    s.wait_for("vanished clients freed", |r| r.connections() == 0)
        .await;
    assert_eq!(s.sessions.registry().stats(), Default::default());
}

/// Sends a close frame and reads to the end: `Ok` when the server answered with its own close
/// frame (RFC 6455 5.5.1), the error otherwise.
async fn close_handshake(ws: &mut Ws) -> Result<(), String> {
    ws.close(None).await.map_err(|e| e.to_string())?;
    let mut answered = false;
    loop {
        match timeout(WAIT, ws.next()).await.expect("socket end in time") {
            Some(Ok(Message::Close(_))) => answered = true,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None if answered => return Ok(()),
            None => return Err("ended without a close reply".into()),
        }
    }
}

#[tokio::test]
async fn plain_axum_answers_a_client_close() {
    // The control for the next test: without the guard, the same echo loop completes the close
    // handshake.
    let s = start(Setup::default()).await;
    for _ in 0..3 {
        let mut ws = s.connect("/plain", &[]).await.unwrap();
        assert_echo(&mut ws, "plain").await;
        assert_eq!(close_handshake(&mut ws).await, Ok(()));
    }
}

#[tokio::test]
async fn an_authenticated_socket_answers_a_client_close() {
    let s = start(Setup::default()).await;
    for _ in 0..3 {
        let mut ws = s.open(&fresh("alice")).await;
        assert_echo(&mut ws, "guarded").await;
        assert_eq!(close_handshake(&mut ws).await, Ok(()));
    }
}

#[tokio::test]
async fn a_rate_limited_socket_answers_a_client_close() {
    let s = start(Setup::default()).await;
    for _ in 0..3 {
        let mut ws = s
            .connect("/ws/limited", &bearer(&fresh("alice")))
            .await
            .unwrap();
        assert_echo(&mut ws, "limited").await;
        assert_eq!(close_handshake(&mut ws).await, Ok(()));
    }
}

// Session ids

#[tokio::test]
async fn two_devices_of_one_user_have_distinct_session_ids() {
    let s = start(Setup::default()).await;
    let alice = fresh("alice");
    let (mut phone, p) = s.open_id(&alice).await;
    let (mut laptop, l) = s.open_id(&alice).await;
    assert_eq!(p["sub"], "alice");
    assert_eq!(l["sub"], "alice");
    let (p, l) = (p["id"].as_u64().unwrap(), l["id"].as_u64().unwrap());
    assert_ne!(p, l);
    assert_echo(&mut phone, "phone").await;
    assert_echo(&mut laptop, "laptop").await;
    // A new session after one ends gets a fresh id too.
    phone.close(None).await.unwrap();
    s.wait_for("phone freed", |r| r.connections() == 1).await;
    let (_tablet, t) = s.open_id(&alice).await;
    let t = t["id"].as_u64().unwrap();
    assert!(t != p && t != l, "{t} reused");
}
