//! The demo server's public contract (shared/DEMO_CONTRACT.md), HTTP part, tested through a real
//! server on loopback with a real client. The demo's app is built from `examples/demo/app.rs`
//! with a controllable clock, so expiry is tested without sleeping.
#![cfg(all(feature = "axum", feature = "websocket"))]

#[path = "common/demo.rs"]
mod demo;

use std::time::Duration;

use serde_json::{Value, json};
use tower_jwt_guard::Algorithm;
use tower_jwt_guard::clock::Clock;
use tower_jwt_guard::jsonwebtoken::{EncodingKey, Header, encode};

const SECRET: &[u8] = b"demo-contract-test-secret-0123456789abcdef";

/// The running demo and a client for it.
struct Contract {
    base: String,
    clock: tower_jwt_guard::clock::FakeClock,
    client: reqwest::Client,
}

async fn start() -> Contract {
    let demo = demo::start(SECRET).await;
    Contract {
        base: demo.base(),
        clock: demo.clock,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    }
}

impl Contract {
    /// A client whose connections come from `ip` (any address in 127.0.0.0/8 is loopback).
    fn client_from(&self, ip: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    async fn get_me(
        &self,
        client: &reqwest::Client,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = client.get(format!("{}/me", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        (status, headers, res.json().await.unwrap_or(Value::Null))
    }

    fn now(&self) -> u64 {
        self.clock.now().as_secs()
    }

    fn sign(&self, claims: Value) -> String {
        self.sign_with(claims, SECRET)
    }

    fn sign_with(&self, claims: Value, secret: &[u8]) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap()
    }

    fn access(&self, sub: &str) -> Value {
        let now = self.now();
        json!({"sub": sub, "iat": now, "exp": now + 600, "type": "access"})
    }

    async fn me(&self, auth: Option<&str>) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.client.get(format!("{}/me", self.base));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.json::<Value>().await.unwrap_or(Value::Null);
        (status, headers, body)
    }
}

fn www(headers: &reqwest::header::HeaderMap) -> &str {
    headers
        .get("www-authenticate")
        .expect("WWW-Authenticate")
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn health_is_public() {
    let d = start().await;
    let res = d
        .client
        .get(format!("{}/health", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn mock_issuer_token_opens_me() {
    let d = start().await;
    let res = d
        .client
        .post(format!("{}/auth/token", d.base))
        .json(&json!({"sub": "alice", "plan": "free"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    let token = body["access_token"].as_str().unwrap();
    let (status, _, me) = d.me(Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 200);
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["plan"], "free");
}

#[tokio::test]
async fn mock_issuer_refuses_bad_requests() {
    let d = start().await;
    for body in [
        json!({"plan": "free"}),
        json!({"sub": "a", "plan": "gold"}),
        json!({"sub": ""}),
    ] {
        let res = d
            .client
            .post(format!("{}/auth/token", d.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{body}");
    }
}

#[tokio::test]
async fn every_contract_source_is_accepted() {
    let d = start().await;
    let token = d.sign(d.access("bob"));
    let (s, _, me) = d.me(Some(&format!("bEaReR {token}"))).await;
    assert_eq!((s, me["sub"].as_str()), (200, Some("bob")));

    let res = d
        .client
        .get(format!("{}/me?token={token}", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let res = d
        .client
        .get(format!("{}/me", d.base))
        .header("x-auth-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn missing_token_is_401_without_error_parameter() {
    let d = start().await;
    let (s, h, body) = d.me(None).await;
    assert_eq!(s, 401);
    assert_eq!(body["error"]["code"], "MISSING_TOKEN");
    assert!(body["error"]["message"].is_string());
    assert!(www(&h).starts_with("Bearer"));
    assert!(!www(&h).contains("error="), "{}", www(&h));
}

#[tokio::test]
async fn invalid_tokens_are_401_invalid_token() {
    let d = start().await;
    let now = d.now();
    let good = d.sign(d.access("carol"));
    let mut tampered: Vec<String> = good.split('.').map(str::to_owned).collect();
    tampered[1] = base64_url(&json!({"sub":"admin","exp":now+600,"type":"access"}).to_string());
    let cases = [
        ("garbage", "garbage".to_owned()),
        (
            "wrong secret",
            d.sign_with(d.access("carol"), b"another-secret-another-secret-123456"),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                base64_url(r#"{"alg":"none","typ":"JWT"}"#),
                base64_url(&d.access("carol").to_string())
            ),
        ),
        (
            "missing exp",
            d.sign(json!({"sub":"carol","iat":now,"type":"access"})),
        ),
        ("tampered", tampered.join(".")),
    ];
    for (name, token) in cases {
        let (s, h, body) = d.me(Some(&format!("Bearer {token}"))).await;
        assert_eq!(s, 401, "{name}");
        assert_eq!(body["error"]["code"], "INVALID_TOKEN", "{name}");
        assert!(www(&h).contains("error=\"invalid_token\""), "{name}");
    }
}

#[tokio::test]
async fn expiry_respects_ten_second_leeway() {
    let d = start().await;
    let token = d.sign(d.access("dave"));
    d.clock.advance(Duration::from_secs(600 + 5));
    assert_eq!(d.me(Some(&format!("Bearer {token}"))).await.0, 200);
    d.clock.advance(Duration::from_secs(6));
    let (s, h, body) = d.me(Some(&format!("Bearer {token}"))).await;
    assert_eq!(s, 401);
    assert_eq!(body["error"]["code"], "TOKEN_EXPIRED");
    assert!(www(&h).contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn not_before_respects_leeway() {
    let d = start().await;
    let now = d.now();
    let soon = d.sign(json!({"sub":"erin","exp":now+600,"nbf":now+5,"type":"access"}));
    assert_eq!(d.me(Some(&format!("Bearer {soon}"))).await.0, 200);
    let later = d.sign(json!({"sub":"erin","exp":now+600,"nbf":now+30,"type":"access"}));
    let (s, _, body) = d.me(Some(&format!("Bearer {later}"))).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("INVALID_TOKEN"))
    );
}

#[tokio::test]
async fn wrong_type_is_forbidden() {
    let d = start().await;
    let now = d.now();
    let refresh = d.sign(json!({"sub":"frank","exp":now+600,"type":"refresh"}));
    let (s, h, body) = d.me(Some(&format!("Bearer {refresh}"))).await;
    assert_eq!(s, 403);
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    assert!(www(&h).contains("insufficient_scope"));
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn retry_after(h: &reqwest::header::HeaderMap) -> u64 {
    h.get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn five_failures_lock_the_address_for_fifteen_minutes() {
    let d = start().await;
    let attacker = d.client_from("127.0.0.2");
    let bystander = d.client_from("127.0.0.3");
    let valid = format!("Bearer {}", d.sign(d.access("mallory")));
    for i in 0..5 {
        let (s, _, body) = d
            .get_me(&attacker, &[("authorization", "Bearer bad.token.x")])
            .await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (401, Some("INVALID_TOKEN")),
            "try {i}"
        );
    }
    // Locked: a valid token is refused too, and so is every other route.
    let (s, h, body) = d
        .get_me(&attacker, &[("authorization", valid.as_str())])
        .await;
    assert_eq!(s, 429);
    assert_eq!(body["error"]["code"], "LOCKED_OUT");
    assert_eq!(retry_after(&h), 900);
    let health = attacker
        .get(format!("{}/health", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 429);
    // Another address is unaffected.
    assert_eq!(
        d.get_me(&bystander, &[("authorization", valid.as_str())])
            .await
            .0,
        200
    );
    // Retry-After counts down, and the lock ends after 15 minutes.
    d.clock.advance(Duration::from_secs(60));
    let (_, h, _) = d.get_me(&attacker, &[]).await;
    assert_eq!(retry_after(&h), 840);
    d.clock.advance(Duration::from_secs(840));
    let valid = format!("Bearer {}", d.sign(d.access("mallory")));
    assert_eq!(
        d.get_me(&attacker, &[("authorization", valid.as_str())])
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn expired_tokens_count_and_missing_tokens_do_not() {
    let d = start().await;
    let client = d.client_from("127.0.0.4");
    for _ in 0..10 {
        assert_eq!(d.get_me(&client, &[]).await.0, 401);
    }
    let now = d.now();
    let expired = format!(
        "Bearer {}",
        d.sign(json!({"sub":"x","exp":now - 60,"type":"access"}))
    );
    for _ in 0..4 {
        assert_eq!(
            d.get_me(&client, &[("authorization", expired.as_str())])
                .await
                .0,
            401
        );
    }
    assert_eq!(
        d.get_me(&client, &[]).await.0,
        401,
        "4 failures do not lock"
    );
    assert_eq!(
        d.get_me(&client, &[("authorization", expired.as_str())])
            .await
            .0,
        401
    );
    assert_eq!(d.get_me(&client, &[]).await.0, 429);
}

#[tokio::test]
async fn spoofed_forwarding_headers_never_change_the_counted_address() {
    let d = start().await;
    let attacker = d.client_from("127.0.0.5");
    let victim = d.client_from("127.0.0.6");
    for i in 0..5 {
        let xff = format!("10.0.0.{i}");
        let fwd = format!("for=10.1.0.{i}");
        let (s, _, _) = d
            .get_me(
                &attacker,
                &[
                    ("authorization", "Bearer bad.token.x"),
                    ("x-forwarded-for", xff.as_str()),
                    ("forwarded", fwd.as_str()),
                    ("x-real-ip", "127.0.0.6"),
                ],
            )
            .await;
        assert_eq!(s, 401);
    }
    assert_eq!(
        d.get_me(&attacker, &[]).await.0,
        429,
        "rotating XFF did not help"
    );
    // Claiming to be the attacker does not get the victim locked or unlocked.
    let (s, _, _) = d.get_me(&victim, &[("x-forwarded-for", "127.0.0.5")]).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn orders_are_limited_to_thirty_a_minute_per_user() {
    let d = start().await;
    let alice = format!("Bearer {}", d.sign(d.access("alice")));
    let bob = format!("Bearer {}", d.sign(d.access("bob")));
    let order = |auth: &str| {
        d.client
            .post(format!("{}/orders", d.base))
            .header("authorization", auth)
            .send()
    };
    for i in 0..30 {
        let res = order(&alice).await.unwrap();
        assert_eq!(res.status(), 200, "order {i}");
    }
    let res = order(&alice).await.unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    // Another user has a budget of their own; no token is 401, not 429.
    assert_eq!(order(&bob).await.unwrap().status(), 200);
    let anonymous = d
        .client
        .post(format!("{}/orders", d.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // A new order is allowed once the quota refills (one every 2 seconds).
    d.clock.advance(Duration::from_secs(2));
    assert_eq!(order(&alice).await.unwrap().status(), 200);
}

/// Defects 4 and 5: the subprotocol source worked on plain requests, and a malformed
/// `Sec-WebSocket-Protocol` on a plain request turned a valid Bearer token into a counted 401.
/// On anything but an upgrade the header is ignored.
#[tokio::test]
async fn the_token_subprotocol_is_no_source_on_plain_requests() {
    let d = start().await;
    let token = d.sign(d.access("alice"));
    let protocol = format!(
        "echo, base64url.bearer.authorization.jwt.{}",
        base64_url(&token)
    );
    let (status, _, body) = d
        .get_me(&d.client, &[("sec-websocket-protocol", &protocol)])
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("MISSING_TOKEN"))
    );
    let res = d
        .client
        .post(format!("{}/orders", d.base))
        .header("sec-websocket-protocol", &protocol)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A non-UTF-8 subprotocol header beside a valid Bearer token changes nothing, however often.
    let bearer = format!("Bearer {token}");
    for _ in 0..7 {
        let res = d
            .client
            .get(format!("{}/me", d.base))
            .header("authorization", &bearer)
            .header(
                "sec-websocket-protocol",
                reqwest::header::HeaderValue::from_bytes(b"echo, \xff\xfe").unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let (status, _, _) = d.me(Some(&bearer)).await;
    assert_eq!(status, 200, "never locked");
}

/// Defect 9: `axum::serve` has no header timer, and a partial request stayed open for as long
/// as the client liked. The demo serves with hyper-util's builder and a 10 s header-read
/// timeout.
#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected_after_10_seconds() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let d = start().await;
    let addr = d.base.trim_start_matches("http://").to_owned();
    // A partial HTTP/1.1 head, nothing at all, and part of the HTTP/2 preface: each connection
    // is closed by the server after 10 s (with or without a 408 first).
    let starts: [&[u8]; 3] = [
        b"GET /health HTTP/1.1\r\nHost: demo\r\nX-Slow: ",
        b"",
        b"PRI * HTTP/2.0\r\n",
    ];
    let waits = starts.map(|start| {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(start).await.unwrap();
            let started = std::time::Instant::now();
            let mut buf = [0u8; 1024];
            let ended = tokio::time::timeout(Duration::from_secs(15), async {
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            (ended.is_ok(), started.elapsed())
        })
    });
    for (wait, start) in waits.into_iter().zip(starts) {
        let (ended, waited) = wait.await.unwrap();
        let what = String::from_utf8_lossy(start);
        assert!(ended, "{what:?}: still connected after 15 s");
        assert!(
            waited >= Duration::from_secs(9) && waited < Duration::from_secs(12),
            "{what:?}: disconnected after {waited:?}"
        );
    }
    // A complete request on a new connection is served as usual.
    assert_eq!(
        d.client
            .get(format!("{}/health", d.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// A valid token beside a second, different one is refused (`400 INVALID_REQUEST`, RFC 6750's
/// "more than one method"), but no token was validated, so it is never a failed attempt.
#[tokio::test]
async fn a_valid_token_beside_junk_is_refused_but_never_counted() {
    let d = start().await;
    let token = d.sign(d.access("alice"));
    for _ in 0..7 {
        let res = d
            .client
            .get(format!("{}/me?token=junk", d.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "INVALID_REQUEST");
    }
    let (status, _, _) = d.me(Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 200, "never locked");
}
