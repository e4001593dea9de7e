//! Defect 8 of the hardening review: a `sub` with a newline and an ANSI escape, logged with
//! `Display` by the WebSocket session code, forged a log line and reached the terminal raw.
//! Every event of a real server is captured twice: by the fmt subscriber (the output must have
//! no raw newline inside an event and no escape character), and by a layer that records
//! string fields exactly as a naive subscriber would write them (none may carry a control
//! character: client-controlled values must arrive as escaped `Debug` values).
#![cfg(all(feature = "axum", feature = "websocket"))]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::ws::{WsSession, WsSessions};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;

use common::*;

const EVIL: &str = "mallory\nINFO tower_jwt_guard::audit: forged line \u{1b}[31mred\u{1b}[0m";

/// Records every `&str` field value as it is handed to the subscriber.
#[derive(Clone, Default)]
struct RawStrings(Arc<Mutex<Vec<String>>>);

impl Visit for RawStrings {
    fn record_str(&mut self, _field: &Field, value: &str) {
        self.0.lock().unwrap().push(value.to_owned());
    }
    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> Layer<S> for RawStrings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        event.record(&mut self.clone());
    }
}

async fn echo(session: WsSession<TestClaims>, upgrade: WebSocketUpgrade) -> Response {
    session.configure(upgrade).on_upgrade(|socket| async move {
        let mut socket = session.attach(socket);
        while let Some(Ok(message)) = socket.recv().await {
            if let AxMessage::Text(t) = message
                && socket.send(AxMessage::Text(t)).await.is_err()
            {
                break;
            }
        }
    })
}

#[test]
fn client_controlled_values_never_reach_the_log_raw() {
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let raw = RawStrings::default();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        )
        .with(raw.clone())
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let validator = hmac_builder()
                .require("no guests", |c: &TestClaims| {
                    c.role.as_deref() != Some("guest")
                })
                .build()
                .unwrap();
            let sessions = WsSessions::builder(validator.clone())
                .max_tick(Duration::from_millis(10))
                .build()
                .unwrap();
            let router = Router::new()
                .route("/ws", get(echo))
                .route("/me", get(whoami))
                .layer(JwtAuthLayer::new(validator))
                .layer(Extension(sessions));
            let server = serve(router).await;
            let token = sign_hs256(&json!({"sub": EVIL, "exp": NOW + 3600}));
            // HTTP: accepted, and refused after verification (both log the subject).
            let c = client();
            assert_accepted(
                &send(c.get(server.url("/me")).bearer_auth(&token)).await,
                EVIL,
            );
            let guest = sign_hs256(&json!({"sub": EVIL, "role": "guest", "exp": NOW + 3600}));
            assert_rejected(
                &send(c.get(server.url("/me")).bearer_auth(&guest)).await,
                "FORBIDDEN",
            );
            // WebSocket: a refused and an accepted re-authentication, then the server's close.
            let mut req = server
                .url("/ws")
                .replace("http", "ws")
                .into_client_request()
                .unwrap();
            req.headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
            for t in ["not.a.token", token.as_str()] {
                let reauth = json!({"type": "reauth", "token": t}).to_string();
                ws.send(Message::text(reauth)).await.unwrap();
                let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                assert!(reply.to_text().unwrap().contains("reauth."), "{reply:?}");
            }
        });
    });
    drop(runtime);
    let logs = buffer.text();
    assert!(logs.contains("mallory"), "the subject is logged: {logs}");
    assert!(logs.contains("re-authentication refused"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "a raw escape character reached the log"
    );
    for line in logs.lines() {
        // Every line the fmt subscriber writes starts with its timestamp; a line that does not
        // was started by a newline from a client.
        assert!(
            line.starts_with(|c: char| c.is_ascii_digit()),
            "a forged log line: {line}"
        );
        if line.contains("forged line") {
            assert!(line.contains("mallory\\n"), "escaped in place: {line}");
        }
    }
    for value in raw.0.lock().unwrap().iter() {
        assert!(
            !value.chars().any(char::is_control),
            "a raw control character in a string field: {value:?}"
        );
    }
}
