//! The outbound side against the demo on loopback: the client example
//! (`examples/client.rs`, DEMO_CONTRACT "The client example") with `TOKEN_URL=…/auth/token`
//! and `API_URL=…/me`, including a revocation mid-run and short-lived tokens; and a tonic
//! client through a `Channel` with `TokenLayer`, against the demo's gRPC service.
#![cfg(all(
    feature = "axum",
    feature = "websocket",
    feature = "tonic",
    feature = "outbound"
))]

#[path = "../examples/client.rs"]
#[allow(dead_code)]
mod client;
mod common;
#[path = "common/demo.rs"]
mod demo;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tower::ServiceBuilder;
use tower_jwt_guard::clock::Clock;
use tower_jwt_guard::outbound::{IssuedToken, ProviderError, TokenLayer, TokenSource};

use demo::Demo;
use demo::grpc::pb;
use demo::grpc::pb::demo_client::DemoClient;

const SECRET: &[u8] = b"outbound-demo-test-secret-0123456789abcdef";

fn settings(d: &Demo, env: &[(&str, &str)]) -> client::Settings {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("TOKEN_URL".to_owned(), format!("{}/auth/token", d.base())),
        ("API_URL".to_owned(), format!("{}/me", d.base())),
    ]);
    for (name, value) in env {
        vars.insert((*name).to_owned(), (*value).to_owned());
    }
    client::Settings::from_env(|name| vars.get(name).cloned()).unwrap()
}

/// `POST /admin/revoke {"sub": sub}` with an admin token, then the demo's clock a second on, so
/// that tokens issued from then on (`iat` > the revocation) pass.
async fn revoke(d: &Demo, sub: &str) {
    let now = d.clock.now().as_secs();
    let admin = d.sign(
        json!({"sub": "root", "role": "admin", "iat": now, "exp": now + 600, "type": "access"}),
    );
    let reply = reqwest::Client::new()
        .post(format!("{}/admin/revoke", d.base()))
        .bearer_auth(admin)
        .json(&json!({ "sub": sub }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    d.clock.advance(Duration::from_secs(1));
}

#[tokio::test]
async fn the_client_example_against_the_demo() {
    let d = demo::start(SECRET).await;
    let summary = client::run(&settings(&d, &[("DURATION_S", "2")])).await;
    assert_eq!(
        summary,
        client::Summary {
            ok: 200,
            failed: 0,
            token_fetches: 1
        }
    );
    assert_eq!(
        summary.json_line(),
        r#"{"ok": 200, "failed": 0, "token_fetches": 1}"#
    );
    let line: Value = serde_json::from_str(&summary.json_line()).unwrap();
    assert_eq!(line, json!({"ok": 200, "failed": 0, "token_fetches": 1}));
}

#[tokio::test]
async fn the_client_example_refreshes_short_tokens_and_survives_a_revocation() {
    let d = demo::start(SECRET).await;
    // 3 s tokens over 6 s: refreshed at 61-71 % of their lifetime, so 3 or 4 fetches.
    let short = settings(
        &d,
        &[
            ("TOKEN_TTL", "3"),
            ("DURATION_S", "6"),
            ("REQUESTS", "120"),
            ("SUB", "carol"),
        ],
    );
    let summary = client::run(&short).await;
    assert_eq!((summary.ok, summary.failed), (120, 0), "{summary:?}");
    assert!(
        (3..=4).contains(&summary.token_fetches),
        "{summary:?}: a 3 s token refreshed after 1.8 s to 2.1 s"
    );

    // Long tokens, a revocation of the user one second in: one forced refresh, and every
    // request through (those refused are sent once more with the new token).
    let long = settings(
        &d,
        &[("DURATION_S", "3"), ("REQUESTS", "150"), ("SUB", "bob")],
    );
    let running = tokio::spawn(async move { client::run(&long).await });
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    revoke(&d, "bob").await;
    let summary = running.await.unwrap();
    assert_eq!(
        summary,
        client::Summary {
            ok: 150,
            failed: 0,
            token_fetches: 2
        }
    );
}

#[test]
fn the_client_example_reads_its_environment() {
    let vars = HashMap::from([("REQUESTS", "5"), ("CONCURRENCY", "0")]);
    let refused = client::Settings::from_env(|n| vars.get(n).map(|v| (*v).to_owned()));
    assert!(refused.unwrap_err().contains("CONCURRENCY"));
    let defaults = client::Settings::from_env(|_| None).unwrap();
    assert_eq!(defaults.token_url, "http://127.0.0.1:3000/auth/token");
    assert_eq!(defaults.api_url, "http://127.0.0.1:3000/me");
    assert_eq!(
        (
            defaults.requests,
            defaults.concurrency,
            defaults.duration,
            defaults.sub.as_str()
        ),
        (200, 20, Duration::from_secs(10), "alice")
    );
    let https = HashMap::from([("API_URL", "https://example.test/me")]);
    assert!(client::Settings::from_env(|n| https.get(n).map(|v| (*v).to_owned())).is_err());
}

#[tokio::test]
async fn a_tonic_channel_with_the_layer_calls_the_demo() {
    let d = demo::start(SECRET).await;
    let url = format!("{}/auth/token", d.base());
    let http = reqwest::Client::new();
    let source = TokenSource::builder(move || {
        let (url, http) = (url.clone(), http.clone());
        async move {
            let reply: Value = http
                .post(url)
                .json(&json!({"sub": "alice", "plan": "pro"}))
                .send()
                .await
                .map_err(|_| ProviderError("no answer"))?
                .json()
                .await
                .map_err(|_| ProviderError("not JSON"))?;
            let token = reply["access_token"].as_str().unwrap_or_default();
            let lifetime = reply["expires_in"].as_u64().unwrap_or_default();
            Ok(IssuedToken::new(token).expires_in(Duration::from_secs(lifetime)))
        }
    })
    .build();
    let channel = tonic::transport::Endpoint::from_shared(d.base())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let channel = ServiceBuilder::new()
        .layer(TokenLayer::new(source.clone()))
        .service(channel);
    let mut grpc = DemoClient::new(channel);

    let me = grpc.me(pb::MeRequest {}).await.unwrap().into_inner();
    assert_eq!((me.sub.as_str(), me.plan.as_str()), ("alice", "pro"));
    for _ in 0..20 {
        grpc.me(pb::MeRequest {}).await.unwrap();
    }
    assert_eq!(source.fetches(), 1);

    // Revoked: the call in flight is refused UNAUTHENTICATED (a gRPC body is not sent twice),
    // the token is replaced, and the next call passes.
    revoke(&d, "alice").await;
    let refused = grpc.me(pb::MeRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let me = grpc.me(pb::MeRequest {}).await.unwrap().into_inner();
    assert_eq!(me.sub, "alice");
    assert_eq!(source.fetches(), 2);
    // A server stream too.
    let mut ticks = grpc.watch(pb::WatchRequest {}).await.unwrap().into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), ticks.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.expires_at > d.clock.now().as_secs());
}
