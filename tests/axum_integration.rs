//! axum end to end: `Router::layer` / `route_layer` served by `axum::serve` on loopback, the
//! `Claims<C>` / `AuthContext` extractors (required and optional), optional mode, a custom
//! responder, and concurrent requests.
#![cfg(feature = "axum")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::json;
use tower_jwt_guard::response;
use tower_jwt_guard::{AuthContext, AuthError, Claims, JwtAuthLayer};

use common::*;

async fn required(
    Claims(c): Claims<TestClaims>,
    ctx: AuthContext,
) -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "sub": c.sub,
        "role": c.role,
        "ctx_subject": ctx.subject(),
        "source": ctx.source().map(|s| s.as_str()),
        "jti": ctx.token_id(),
        "iat": ctx.issued_at(),
        "exp": ctx.expires_at(),
        "nbf": ctx.not_before(),
        "kid": ctx.key_id(),
    }))
}

async fn optional(
    claims: Option<Claims<TestClaims>>,
    ctx: Option<AuthContext>,
) -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "claims": claims.map(|Claims(c)| c.sub),
        "ctx": ctx.map(|c| c.subject().map(str::to_owned)),
    }))
}

#[tokio::test]
async fn extractors_behind_router_layer() {
    let validator = tower_jwt_guard::validate::Validator::<TestClaims>::builder()
        .key(
            tower_jwt_guard::keys::Key::hmac(HMAC_SECRET)
                .unwrap()
                .with_kid("k1"),
        )
        .clock(tower_jwt_guard::clock::FakeClock::at_unix_secs(NOW))
        .build()
        .unwrap();
    let app = Router::new()
        .route("/me", get(required))
        .layer(JwtAuthLayer::new(validator));
    let server = serve(app).await;

    let token = sign_hs256(&json!({
        "sub": "alice", "role": "admin", "jti": "j-1",
        "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 60,
    }));
    let reply = get_bearer(&server, &token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({
            "sub": "alice", "role": "admin", "ctx_subject": "alice", "source": "bearer",
            "jti": "j-1", "iat": NOW - 10, "exp": NOW + 60, "nbf": NOW - 10, "kid": "k1",
        })
    );
    assert_rejected(
        &send(client().get(server.url("/me"))).await,
        "MISSING_TOKEN",
    );
    // Unknown routes are still behind the layer (Router::layer wraps the fallback too).
    assert_rejected(
        &send(client().get(server.url("/nowhere"))).await,
        "MISSING_TOKEN",
    );
    let reply = send(client().get(server.url("/nowhere")).bearer_auth(&token)).await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn route_layer_protects_some_routes_only() {
    let app = Router::new()
        .route("/me", get(required))
        .route_layer(JwtAuthLayer::new(hmac_validator()))
        .route("/health", get(|| async { "ok" }));
    let server = serve(app).await;
    let reply = send(client().get(server.url("/health"))).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "ok"));
    assert_rejected(
        &send(client().get(server.url("/me"))).await,
        "MISSING_TOKEN",
    );
    let reply = get_bearer(&server, &token_for("bob")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["sub"], "bob");
}

#[tokio::test]
async fn claims_extractor_without_the_layer_is_500_auth_failed() {
    let app = Router::new()
        .route("/claims", get(required))
        .route(
            "/ctx",
            get(|ctx: AuthContext| async move { ctx.subject().unwrap_or_default().to_owned() }),
        )
        .route("/optional", get(optional));
    let server = serve(app).await;
    for path in ["/claims", "/ctx"] {
        // Even with a perfectly valid token: no layer ran, so nothing was verified.
        let reply = send(
            client()
                .get(server.url(path))
                .bearer_auth(token_for("alice")),
        )
        .await;
        assert_rejected(&reply, "AUTH_FAILED");
        let reply = send(client().get(server.url(path))).await;
        assert_rejected(&reply, "AUTH_FAILED");
    }
    // The optional extractors simply see nothing.
    let reply = send(
        client()
            .get(server.url("/optional"))
            .bearer_auth(token_for("alice")),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"claims": null, "ctx": null}));
}

#[tokio::test]
async fn optional_mode() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = JwtAuthLayer::builder(hmac_validator())
        .optional()
        .build()
        .unwrap();
    let app = Router::new()
        .route("/optional", get(optional))
        .route("/required", get(required))
        .route(
            "/count",
            get(|State(calls): State<Arc<AtomicUsize>>| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                "counted"
            }),
        )
        .with_state(Arc::clone(&calls))
        .layer(layer);
    let server = serve(app).await;

    // No token: passes, the handler sees no claims.
    let reply = send(client().get(server.url("/optional"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json(), json!({"claims": null, "ctx": null}));
    let reply = send(client().get(server.url("/count"))).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "counted"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A valid token: claims are there.
    let reply = get_bearer_path(&server, "/optional", &token_for("alice")).await;
    assert_eq!(reply.json(), json!({"claims": "alice", "ctx": "alice"}));

    // A bad token is still refused, before any handler.
    for (token, code) in [
        ("not.a.token".to_owned(), "INVALID_TOKEN"),
        (sign_hs256(&claims("alice", NOW - 3600)), "TOKEN_EXPIRED"),
    ] {
        assert_rejected(&get_bearer_path(&server, "/optional", &token).await, code);
        assert_rejected(&get_bearer_path(&server, "/count", &token).await, code);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let reply = send(
        client()
            .get(server.url("/optional"))
            .header("authorization", "Bearer "),
    )
    .await;
    assert_rejected(&reply, "INVALID_TOKEN");

    // A required extractor on an optional route without a token: 401 MISSING_TOKEN.
    assert_rejected(
        &send(client().get(server.url("/required"))).await,
        "MISSING_TOKEN",
    );
    assert_eq!(
        get_bearer_path(&server, "/required", &token_for("bob"))
            .await
            .json()["sub"],
        "bob"
    );
}

async fn get_bearer_path(server: &TestServer, path: &str, token: &str) -> Reply {
    send(client().get(server.url(path)).bearer_auth(token)).await
}

#[tokio::test]
async fn custom_responder_closure_replaces_the_body() {
    let layer = JwtAuthLayer::builder(hmac_validator())
        .responder(response::from_fn(|_: &Parts, err: &AuthError| {
            Response::builder()
                .status(if err.code() == tower_jwt_guard::ErrorCode::MissingToken {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                })
                .header("content-type", "text/plain")
                .header("x-auth-code", err.code().as_str())
                .body(Bytes::from(format!("denied ({})", err.code())))
                .unwrap()
        }))
        .build()
        .unwrap();
    let server = serve_layer(layer).await;

    let reply = send(client().get(server.url("/me"))).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.text, "denied (MISSING_TOKEN)");
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    assert_eq!(reply.header("x-auth-code"), Some("MISSING_TOKEN"));
    assert_eq!(reply.header("www-authenticate"), None);

    let reply = get_bearer(&server, &sign_hs256(&claims("a", NOW - 3600))).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.text, "denied (TOKEN_EXPIRED)");
    // Accepted requests are untouched by the responder.
    assert_accepted(&get_bearer(&server, &token_for("a")).await, "a");
}

#[tokio::test]
async fn concurrent_requests_keep_their_own_identity() {
    // A revocation hook puts every accepted request through the boxed-future path too.
    let validator = hmac_builder()
        .revocation(|ctx: &AuthContext| {
            let revoked = ctx.subject() == Some("user-13");
            async move {
                tokio::task::yield_now().await;
                Ok::<_, std::io::Error>(revoked)
            }
        })
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let client = client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40u64 {
        let url = server.url("/me");
        let client = client.clone();
        tasks.spawn(async move {
            let sub = format!("user-{i}");
            let token = match i % 4 {
                3 => "garbage".to_owned(),
                _ => token_for(&sub),
            };
            let reply = send(client.get(url).bearer_auth(&token)).await;
            (i, sub, reply)
        });
    }
    let mut seen = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, sub, reply) = joined.unwrap();
        seen += 1;
        if i % 4 == 3 || sub == "user-13" {
            // 13 % 4 == 1: valid but revoked.
            let code = if i % 4 == 3 {
                "INVALID_TOKEN"
            } else {
                "TOKEN_REVOKED"
            };
            assert_rejected(&reply, code);
        } else {
            assert_accepted(&reply, &sub);
        }
    }
    assert_eq!(seen, 40);
}

#[tokio::test]
async fn optional_mode_still_refuses_conflicts_and_oversize() {
    let layer = JwtAuthLayer::builder(hmac_validator())
        .extractor(
            tower_jwt_guard::extract::TokenExtractor::new()
                .bearer()
                .query("token")
                .max_token_len(1024),
        )
        .optional()
        .build()
        .unwrap();
    let server = serve(Router::new().route("/optional", get(optional)).layer(layer)).await;
    let reply = send(
        client()
            .get(server.url(&format!("/optional?token={}", token_for("mallory"))))
            .bearer_auth(token_for("alice")),
    )
    .await;
    // Two credentials: RFC 6750's invalid_request, never counted as a failed attempt.
    assert_rejected(&reply, "INVALID_REQUEST");
    let big = sign_hs256(&json!({"sub": "a", "exp": NOW + 60, "pad": "x".repeat(1024)}));
    assert_rejected(
        &get_bearer_path(&server, "/optional", &big).await,
        "INVALID_TOKEN",
    );
    // Another Authorization scheme is simply no token: anonymous.
    let reply = send(
        client()
            .get(server.url("/optional"))
            .header("authorization", "Basic dXNlcjpwYXNz"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"claims": null, "ctx": null}));
}
