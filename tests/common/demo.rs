#![allow(dead_code)]
//! The demo application (`examples/demo/app.rs`), served on loopback with a FakeClock the test
//! keeps. Included only by the demo's contract tests (`#[path = "common/demo.rs"] mod demo;`),
//! so that other test binaries do not compile the demo.

#[path = "../../examples/demo/app.rs"]
#[allow(dead_code)]
pub mod app;
#[path = "../../examples/demo/grpc.rs"]
#[allow(dead_code)]
pub mod grpc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tower_jwt_guard::clock::{Clock, FakeClock};
use tower_jwt_guard::jsonwebtoken::{EncodingKey, Header, encode};
use tower_jwt_guard::{Algorithm, crypto::install_crypto_provider};

/// A running demo.
pub struct Demo {
    pub addr: SocketAddr,
    pub clock: FakeClock,
    pub secret: &'static [u8],
}

/// Starts the demo with `secret`, sessions looking at the clock every 20 ms and a 500 ms send
/// timeout (the demo's own is 10 s), served by the demo's own `serve`.
pub async fn start(secret: &'static [u8]) -> Demo {
    start_on(secret, None, None).await
}

/// [`start`], accepting the tokens of an OpenID Connect issuer too (`OIDC_ISSUER`).
pub async fn start_with_oidc(secret: &'static [u8], oidc: app::OidcConfig) -> Demo {
    start_on(secret, None, Some(oidc)).await
}

/// [`start`], with the demo's shared state on the Redis at `redis_url` (`REDIS_URL`).
pub async fn start_with_redis(secret: &'static [u8], redis_url: &str) -> Demo {
    let client = tower_jwt_guard::redis::RedisClient::builder(redis_url)
        .timeout(Duration::from_millis(250))
        .build()
        .expect("a Redis URL");
    start_on(secret, Some(client), None).await
}

async fn start_on(
    secret: &'static [u8],
    redis: Option<tower_jwt_guard::redis::RedisClient>,
    oidc: Option<app::OidcConfig>,
) -> Demo {
    install_crypto_provider();
    let clock = FakeClock::starting_now();
    let config = app::DemoConfig {
        secret: secret.to_vec(),
        clock: Arc::new(clock.clone()),
        session_tick: Duration::from_millis(20),
        send_timeout: Duration::from_millis(500),
        redis,
        oidc,
    };
    let router = app::app(&config).expect("demo config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(app::serve(
        listener,
        router,
        app::HEADER_READ_TIMEOUT,
        std::future::pending(),
    ));
    Demo {
        addr,
        clock,
        secret,
    }
}

impl Demo {
    /// `http://<addr>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An access token for `sub`, valid for `ttl` seconds from the demo's now.
    pub fn token(&self, sub: &str, ttl: u64) -> String {
        let now = self.clock.now().as_secs();
        self.sign(json!({"sub": sub, "iat": now, "exp": now + ttl, "type": "access"}))
    }

    /// `claims` signed with the demo's secret (HS256).
    pub fn sign(&self, claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.secret).expect("HMAC key"),
        )
        .expect("signing")
    }
}

/// The status a gRPC server stream ends with (its messages skipped), within 5 seconds.
pub async fn stream_end<T>(stream: &mut tonic::Streaming<T>) -> tonic::Status {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream ends within 5 s")
}
