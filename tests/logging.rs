//! Logging: every request below runs under a TRACE-level `tracing_subscriber` writing into an
//! in-memory buffer (set as the thread's default around a current-thread runtime, so events of
//! the server tasks are captured). The audit events must be there, and no token text, signature
//! segment, query string or secret may appear anywhere in the captured output. `Debug` output
//! of the public types must not show secrets either.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderName;
use serde_json::json;
use tower_jwt_guard::extract::{DEFAULT_WEBSOCKET_PROTOCOL_PREFIX, TokenExtractor};
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::{AuthContext, AuthError, JwtAuthLayer};
use tracing::Level;

use common::*;

/// A `MakeWriter` (through `Fn() -> W`) appending to a shared buffer.
/// Runs `test` on a current-thread runtime with a TRACE subscriber as this thread's default,
/// and returns everything it logged.
fn captured<F, Fut>(test: F) -> String
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(Level::TRACE)
        .with_ansi(false)
        .with_target(true)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || runtime.block_on(test()));
    drop(runtime);
    buffer.text()
}

/// The pieces of `token` that must never be logged.
fn forbidden_pieces(token: &str) -> Vec<String> {
    let mut pieces = vec![token.to_owned()];
    let segments: Vec<&str> = token.split('.').collect();
    if segments.len() == 3 {
        // The payload and signature segments (the header is the same for all HS256 tokens
        // and carries nothing secret, but the other two identify the token).
        pieces.push(segments[1].to_owned());
        pieces.push(segments[2].to_owned());
        // Also a long prefix of the signature, in case it were truncated in a message.
        pieces.push(segments[2][..16].to_owned());
    }
    pieces
}

fn assert_no_leak(logs: &str, tokens: &[String]) {
    for token in tokens {
        for piece in forbidden_pieces(token) {
            assert!(
                !logs.contains(&piece),
                "the logs contain token text ({} bytes of a {}-byte token)",
                piece.len(),
                token.len()
            );
        }
    }
    assert!(!logs.contains("token="), "the logs contain a query string");
    assert!(!logs.contains("/me?"), "the logs contain a query string");
    assert!(!logs.contains("?token"), "the logs contain a query string");
    let secret = std::str::from_utf8(HMAC_SECRET).unwrap();
    assert!(!logs.contains(secret), "the logs contain the HMAC secret");
    assert!(
        !logs.contains("eyJ"),
        "the logs contain something JWT-shaped"
    );
}

/// The token subprotocol beside `chat`; sent with [`upgrade`]'s headers, since it is a source
/// on WebSocket upgrades only.
fn ws(token: &str) -> String {
    format!(
        "chat, {DEFAULT_WEBSOCKET_PROTOCOL_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(token)
    )
}

/// The audit lines (one event per line with the default fmt format).
fn audit_lines(logs: &str) -> Vec<&str> {
    logs.lines()
        .filter(|l| l.contains("tower_jwt_guard::audit"))
        .collect()
}

#[test]
fn audit_events_are_logged_without_any_token_text() {
    let valid = token_for("alice");
    let other = token_for("mallory");
    let expired = sign_hs256(&claims("alice", NOW - 3600));
    let forged = sign_with(
        jsonwebtoken::Algorithm::HS256,
        &jsonwebtoken::EncodingKey::from_secret(b"wrong-secret-wrong-secret-wrong-secret!!")
            .unwrap(),
        None,
        &fresh_claims("alice"),
    );
    let oversize = sign_hs256(&json!({"sub": "big", "exp": NOW + 60, "pad": "p".repeat(7000)}));
    let forbidden = sign_hs256(&json!({"sub": "eve", "role": "guest", "exp": NOW + 60}));
    let revoked = sign_hs256(&json!({"sub": "rev", "jti": "revoked", "exp": NOW + 60}));
    let failing = sign_hs256(&json!({"sub": "err", "jti": "fail", "exp": NOW + 60}));
    let tokens = vec![
        valid.clone(),
        other.clone(),
        expired.clone(),
        forged.clone(),
        oversize.clone(),
        forbidden.clone(),
        revoked.clone(),
        failing.clone(),
    ];

    let logs = captured(|| async {
        let validator = hmac_builder()
            .require("a guest may not", |c: &TestClaims| {
                c.role.as_deref() != Some("guest")
            })
            .revocation(|ctx: &AuthContext| {
                let jti = ctx.token_id().map(str::to_owned);
                async move {
                    match jti.as_deref() {
                        Some("revoked") => Ok(true),
                        Some("fail") => Err(std::io::Error::other("store unavailable")),
                        _ => Ok(false),
                    }
                }
            })
            .build()
            .unwrap();
        let layer = JwtAuthLayer::builder(validator)
            .extractor(
                TokenExtractor::new()
                    .bearer()
                    .query("token")
                    .header(HeaderName::from_static("x-auth-token"))
                    .cookie("jwt")
                    .websocket_protocol(),
            )
            .build()
            .unwrap();
        let server = serve_layer(layer).await;
        let me = server.url("/me");
        let c = client();

        // Valid, through every source.
        assert_accepted(&send(c.get(&me).bearer_auth(&valid)).await, "alice");
        assert_accepted(&send(c.get(format!("{me}?token={valid}"))).await, "alice");
        assert_accepted(
            &send(c.get(&me).header("x-auth-token", &valid)).await,
            "alice",
        );
        assert_accepted(
            &send(c.get(&me).header("cookie", format!("jwt={valid}"))).await,
            "alice",
        );
        assert_accepted(
            &send(
                c.get(&me)
                    .header("connection", "upgrade")
                    .header("upgrade", "websocket")
                    .header("sec-websocket-protocol", ws(&valid)),
            )
            .await,
            "alice",
        );
        // Rejections of every kind, also through the query string.
        assert_rejected(&send(c.get(&me)).await, "MISSING_TOKEN");
        assert_rejected(
            &send(c.get(&me).bearer_auth(&forged)).await,
            "INVALID_TOKEN",
        );
        assert_rejected(
            &send(c.get(format!("{me}?token={forged}"))).await,
            "INVALID_TOKEN",
        );
        assert_rejected(
            &send(c.get(&me).header("x-auth-token", &expired)).await,
            "TOKEN_EXPIRED",
        );
        assert_rejected(
            &send(c.get(format!("{me}?token={expired}"))).await,
            "TOKEN_EXPIRED",
        );
        assert_rejected(
            &send(c.get(format!("{me}?token={other}")).bearer_auth(&valid)).await,
            "INVALID_REQUEST",
        );
        assert_rejected(
            &send(
                c.get(&me)
                    .header("cookie", format!("jwt={valid}"))
                    .header("connection", "upgrade")
                    .header("upgrade", "websocket")
                    .header("sec-websocket-protocol", ws(&other)),
            )
            .await,
            "INVALID_REQUEST",
        );
        assert_rejected(
            &send(c.get(&me).bearer_auth(&oversize)).await,
            "INVALID_TOKEN",
        );
        assert_rejected(
            &send(c.get(format!("{me}?token={oversize}"))).await,
            "INVALID_TOKEN",
        );
        assert_rejected(&send(c.get(&me).bearer_auth(&forbidden)).await, "FORBIDDEN");
        assert_rejected(
            &send(c.get(&me).bearer_auth(&revoked)).await,
            "TOKEN_REVOKED",
        );
        assert_rejected(&send(c.get(&me).bearer_auth(&failing)).await, "AUTH_FAILED");
        // Malformed input that could be echoed by a careless error message.
        assert_rejected(
            &send(
                c.get(&me)
                    .bearer_auth(format!("{}.x", valid.replace('.', ""))),
            )
            .await,
            "INVALID_TOKEN",
        );
    });

    assert_no_leak(&logs, &tokens);
    // The hook's error text is not logged either (it could hold anything).
    assert!(!logs.contains("store unavailable"));

    let audit = audit_lines(&logs);
    let count = |needles: &[&str]| {
        audit
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    };
    assert_eq!(count(&["outcome=\"accepted\""]), 5, "{logs}");
    for source in ["bearer", "query", "header", "cookie", "websocket_protocol"] {
        assert_eq!(
            count(&[
                "outcome=\"accepted\"",
                &format!("source=\"{source}\""),
                "subject=\"alice\""
            ]),
            1,
            "{source}: {logs}"
        );
    }
    assert_eq!(count(&["outcome=\"rejected\""]), 13, "{logs}");
    assert_eq!(count(&["code=\"MISSING_TOKEN\""]), 1, "{logs}");
    assert_eq!(count(&["code=\"TOKEN_EXPIRED\""]), 2, "{logs}");
    assert_eq!(count(&["code=\"INVALID_TOKEN\""]), 5, "{logs}");
    assert_eq!(count(&["code=\"TOKEN_REVOKED\""]), 1, "{logs}");
    assert_eq!(count(&["code=\"INVALID_REQUEST\""]), 2, "{logs}");
    assert_eq!(count(&["code=\"FORBIDDEN\""]), 1, "{logs}");
    assert_eq!(count(&["code=\"AUTH_FAILED\"", "WARN"]), 1, "{logs}");
    assert_eq!(
        count(&["reason=\"conflicting tokens were presented\""]),
        2,
        "{logs}"
    );
    assert_eq!(
        count(&["reason=\"the token exceeds the maximum size\""]),
        2,
        "{logs}"
    );
    assert_eq!(
        count(&["reason=\"the token has been revoked\""]),
        1,
        "{logs}"
    );
    // Every audit event names the path (without query) and the loopback client.
    assert_eq!(audit.len(), 18, "{logs}");
    for line in &audit {
        assert!(line.contains("path=\"/me\""), "{line}");
        // axum's ConnectInfo is read only with the `axum` feature.
        if cfg!(feature = "axum") {
            assert!(line.contains("client=127.0.0.1:"), "{line}");
        }
        assert!(line.contains("method=GET"), "{line}");
    }
}

/// The audit module documents `subject` on rejections "when known". For `FORBIDDEN` and
/// `TOKEN_EXPIRED` the signature has been verified, so the subject is known and logged.
#[test]
fn rejections_after_verification_log_the_subject() {
    let logs = captured(|| async {
        let validator = hmac_builder()
            .require("a guest may not", |c: &TestClaims| {
                c.role.as_deref() != Some("guest")
            })
            .build()
            .unwrap();
        let server = serve_layer(JwtAuthLayer::new(validator)).await;
        let guest = sign_hs256(&json!({"sub": "eve", "role": "guest", "exp": NOW + 60}));
        assert_rejected(&get_bearer(&server, &guest).await, "FORBIDDEN");
        let expired = sign_hs256(&claims("zed", NOW - 3600));
        assert_rejected(&get_bearer(&server, &expired).await, "TOKEN_EXPIRED");
    });
    let audit = audit_lines(&logs);
    assert_eq!(audit.len(), 2, "{logs}");
    assert!(
        audit[0].contains("code=\"FORBIDDEN\"") && audit[0].contains("subject=\"eve\""),
        "{logs}"
    );
    assert!(
        audit[1].contains("code=\"TOKEN_EXPIRED\"") && audit[1].contains("subject=\"zed\""),
        "{logs}"
    );
}

#[test]
fn optional_mode_logs_anonymous_requests() {
    let logs = captured(|| async {
        let layer = JwtAuthLayer::builder(hmac_validator())
            .optional()
            .build()
            .unwrap();
        let server = serve_layer(layer).await;
        let reply = send(client().get(server.url("/me"))).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["authenticated"], false);
    });
    let audit = audit_lines(&logs);
    assert_eq!(audit.len(), 1, "{logs}");
    assert!(audit[0].contains("outcome=\"anonymous\""), "{logs}");
    assert!(audit[0].contains("DEBUG"), "{logs}");
}

#[cfg(feature = "axum")]
#[test]
fn missing_layer_is_logged_as_an_error() {
    let logs = captured(|| async {
        let app = axum::Router::new().route(
            "/me",
            axum::routing::get(|c: tower_jwt_guard::Claims<TestClaims>| async move { c.0.sub }),
        );
        let server = serve(app).await;
        let reply = send(
            client()
                .get(server.url("/me?token=abc"))
                .bearer_auth(token_for("x")),
        )
        .await;
        assert_rejected(&reply, "AUTH_FAILED");
    });
    let audit = audit_lines(&logs);
    assert_eq!(audit.len(), 1, "{logs}");
    assert!(audit[0].contains("ERROR"), "{logs}");
    assert!(audit[0].contains("without the JwtAuthLayer"), "{logs}");
    assert_no_leak(&logs, &[token_for("x")]);
}

#[test]
fn debug_output_never_shows_secrets() {
    let secret = std::str::from_utf8(HMAC_SECRET).unwrap();
    // The secret as text, as a byte list (derived Debug of a Vec<u8>), and base64.
    let as_bytes = format!("{:?}", &HMAC_SECRET[..6]);
    let as_bytes = as_bytes
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let as_b64 = URL_SAFE_NO_PAD.encode(HMAC_SECRET);
    let check = |what: &str, dbg: String| {
        assert!(!dbg.contains(secret), "{what} Debug shows the secret");
        assert!(
            !dbg.contains(&secret[..12]),
            "{what} Debug shows part of the secret"
        );
        assert!(
            !dbg.contains(&as_bytes),
            "{what} Debug shows the secret bytes"
        );
        assert!(
            !dbg.contains(&as_b64[..12]),
            "{what} Debug shows the secret in base64"
        );
        assert!(!dbg.contains("MII"), "{what} Debug shows key material");
    };

    let key = Key::hmac(HMAC_SECRET).unwrap().with_kid("k1");
    check("Key", format!("{key:?}"));
    check("Key (alternate)", format!("{key:#?}"));
    let rsa = Key::rsa_pem(fixture("rsa_public.pem")).unwrap();
    check("RSA Key", format!("{rsa:?}"));
    let jwk = Key::from_jwk_json(&format!(r#"{{"kty":"oct","kid":"j","k":"{as_b64}"}}"#)).unwrap();
    check("JWK Key", format!("{jwk:?}"));

    let builder = hmac_builder()
        .key(key.clone())
        .require("msg", |_: &TestClaims| true);
    check("ValidatorBuilder", format!("{builder:?}"));
    let validator = builder.build().unwrap();
    check("Validator", format!("{validator:#?}"));
    let layer = JwtAuthLayer::new(validator.clone());
    check("JwtAuthLayer", format!("{layer:#?}"));
    let layer_builder = JwtAuthLayer::builder(validator.clone());
    check("JwtAuthBuilder", format!("{layer_builder:?}"));
    let service = tower::Layer::layer(
        &layer,
        tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }),
    );
    check("JwtAuth", format!("{service:?}"));

    let err = AuthError::invalid_token("the token signature is invalid");
    check("AuthError", format!("{err:?}"));
    check("AuthError (Display)", format!("{err}"));

    // Verified context and extracted tokens: no token text.
    let token = token_for("alice");
    let verified = validator.validate(&token).unwrap();
    let dbg = format!("{verified:?}");
    check("Verified", dbg.clone());
    for piece in forbidden_pieces(&token) {
        assert!(!dbg.contains(&piece), "Verified Debug shows token text");
    }
    let req = http::Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let (parts, ()) = req.into_parts();
    let found = TokenExtractor::default()
        .extract_parts(&parts)
        .unwrap()
        .unwrap();
    let dbg = format!("{found:?}");
    for piece in forbidden_pieces(&token) {
        assert!(
            !dbg.contains(&piece),
            "ExtractedToken Debug shows token text"
        );
    }
    // A validation failure's error never carries the token either.
    let err = validator.validate(&format!("{token}x")).unwrap_err();
    for piece in forbidden_pieces(&token) {
        assert!(!format!("{err:?}").contains(&piece));
        assert!(!err.to_string().contains(&piece));
    }
}
