//! RateLimitedSocket over axum's WebSocket.

use crate::setup::*;

#[tokio::test]
async fn rate_limited_socket_sends_notices_then_closes_a_flood_with_1008() {
    let s = start(Setup::default()).await;
    let mut ws = s
        .connect("/ws/limited", &bearer(&fresh("alice")))
        .await
        .unwrap();
    for i in 0..5 {
        ws.send(Message::text(format!("m{i}"))).await.unwrap();
    }
    for i in 0..3 {
        assert_eq!(next_text(&mut ws).await, format!("m{i}"));
    }
    for _ in 0..2 {
        let notice = json_text(&mut ws).await;
        assert_eq!(notice["type"], "rate_limited");
        assert_eq!(notice["code"], "RATE_LIMITED");
        assert!(notice["retry_after_ms"].as_u64().unwrap() > 0);
    }
    // A second later the budget is back and the strikes are forgotten.
    s.clock.advance(Duration::from_secs(1));
    assert_echo(&mut ws, "later").await;
    // Flooding: 10 a second against 3, for over a second (the flood window here): each
    // message is answered before the clock moves 100 ms; refusals interleave with deliveries
    // until the close.
    let (mut echoes, mut notices) = (0, 0);
    let mut code = None;
    for i in 0..40 {
        ws.send(Message::text(format!("f{i}"))).await.unwrap();
        match timeout(WAIT, ws.next())
            .await
            .expect("an answer to every message")
        {
            Some(Ok(Message::Text(t))) if t.contains("rate_limited") => notices += 1,
            Some(Ok(Message::Text(_))) => echoes += 1,
            Some(Ok(Message::Close(Some(frame)))) => {
                code = Some(u16::from(frame.code));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
        s.clock.advance(Duration::from_millis(100));
    }
    assert_eq!(code, Some(1008));
    assert!(
        echoes >= 3 && notices > 3,
        "{echoes} echoes, {notices} notices"
    );
}
