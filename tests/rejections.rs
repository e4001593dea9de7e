//! Every rejection code through a real server: status, JSON body, content type,
//! `WWW-Authenticate`; predicates, revocation hooks; the `AuthRejection` marker.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tower::{Layer, ServiceExt, service_fn};
use tower_jwt_guard::outcome::AuthRejection;
use tower_jwt_guard::response::{self, JsonResponder};
use tower_jwt_guard::{AuthContext, ErrorCode, JwtAuthLayer};

use common::*;

#[tokio::test]
async fn missing_token_is_401_without_error_parameter() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    for request in [
        client().get(server.url("/me")),
        client().post(server.url("/me")).body("payload"),
        client().delete(server.url("/me?token=ignored-by-default")),
    ] {
        let reply = send(request).await;
        assert_rejected(&reply, "MISSING_TOKEN");
        let www = reply.header("www-authenticate").unwrap();
        assert!(www.starts_with("Bearer"), "{www}");
        assert!(!www.contains("error="), "{www}");
    }
}

#[tokio::test]
async fn invalid_signature_is_401_invalid_token() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let forged = sign_with(
        jsonwebtoken::Algorithm::HS256,
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-another-secret")
            .unwrap(),
        None,
        &fresh_claims("alice"),
    );
    let reply = get_bearer(&server, &forged).await;
    assert_rejected(&reply, "INVALID_TOKEN");
    let www = reply.header("www-authenticate").unwrap();
    assert!(www.contains(r#"error="invalid_token""#), "{www}");
    assert!(www.contains("error_description="), "{www}");
}

#[tokio::test]
async fn expired_token_is_401_token_expired() {
    let server = serve_layer(JwtAuthLayer::new(hmac_validator())).await;
    let token = sign_hs256(&claims("alice", NOW - 3600));
    let reply = get_bearer(&server, &token).await;
    assert_rejected(&reply, "TOKEN_EXPIRED");
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
}

#[tokio::test]
async fn failed_requirement_is_403_forbidden() {
    let validator = hmac_builder()
        .require("an admin token is needed", |c: &TestClaims| {
            c.role.as_deref() == Some("admin")
        })
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;

    let user = sign_hs256(&json!({"sub": "u", "role": "user", "exp": NOW + 60}));
    let reply = get_bearer(&server, &user).await;
    assert_rejected(&reply, "FORBIDDEN");
    assert_eq!(reply.json()["error"]["message"], "an admin token is needed");
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .contains(r#"error="insufficient_scope""#)
    );

    let admin = sign_hs256(&json!({"sub": "a", "role": "admin", "exp": NOW + 60}));
    let reply = get_bearer(&server, &admin).await;
    assert_accepted(&reply, "a");
    assert_eq!(reply.json()["claims_role"], "admin");
}

#[tokio::test]
async fn requirements_run_in_order_and_first_failure_wins() {
    let validator = hmac_builder()
        .require("needs a role", |c: &TestClaims| c.role.is_some())
        .require("needs the admin role", |c: &TestClaims| {
            c.role.as_deref() == Some("admin")
        })
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let no_role = get_bearer(&server, &token_for("x")).await;
    assert_rejected(&no_role, "FORBIDDEN");
    assert_eq!(no_role.json()["error"]["message"], "needs a role");
    let wrong_role = sign_hs256(&json!({"sub": "x", "role": "user", "exp": NOW + 60}));
    let reply = get_bearer(&server, &wrong_role).await;
    assert_eq!(reply.json()["error"]["message"], "needs the admin role");
}

#[tokio::test]
async fn revocation_hook_true_false_and_error() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let validator = hmac_builder()
        .revocation(move |ctx: &AuthContext| {
            seen.fetch_add(1, Ordering::SeqCst);
            let jti = ctx.token_id().map(str::to_owned);
            async move {
                match jti.as_deref() {
                    Some("revoked") => Ok(true),
                    Some("store-down") => Err(std::io::Error::other("revocation store down")),
                    _ => Ok(false),
                }
            }
        })
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let with_jti = |jti: &str| sign_hs256(&json!({"sub": "alice", "jti": jti, "exp": NOW + 60}));

    let reply = get_bearer(&server, &with_jti("fine")).await;
    assert_accepted(&reply, "alice");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let reply = get_bearer(&server, &with_jti("revoked")).await;
    assert_rejected(&reply, "TOKEN_REVOKED");
    assert!(reply.text.contains("revoked"), "{}", reply.text);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let reply = get_bearer(&server, &with_jti("store-down")).await;
    assert_rejected(&reply, "AUTH_FAILED");
    // The hook's own error text never reaches the client.
    assert!(!reply.text.contains("store down"), "{}", reply.text);
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // The hook is not asked for tokens that already failed verification.
    let reply = get_bearer(&server, &sign_hs256(&claims("alice", NOW - 3600))).await;
    assert_rejected(&reply, "TOKEN_EXPIRED");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn rejected_requests_never_reach_the_handler() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let router = Router::new()
        .route(
            "/me",
            axum::routing::any(move |req: axum::extract::Request| {
                counter.fetch_add(1, Ordering::SeqCst);
                whoami(req)
            }),
        )
        .layer(JwtAuthLayer::new(hmac_validator()));
    let server = serve(router).await;
    assert_rejected(
        &send(client().get(server.url("/me"))).await,
        "MISSING_TOKEN",
    );
    assert_rejected(&get_bearer(&server, "a.b.c").await, "INVALID_TOKEN");
    assert_rejected(
        &get_bearer(&server, &sign_hs256(&claims("a", NOW - 100))).await,
        "TOKEN_EXPIRED",
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert_accepted(&get_bearer(&server, &token_for("a")).await, "a");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn realm_appears_in_the_challenge() {
    let layer = JwtAuthLayer::builder(hmac_validator())
        .responder(JsonResponder::new().realm("example-api"))
        .build()
        .unwrap();
    let server = serve_layer(layer).await;
    let reply = send(client().get(server.url("/me"))).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer realm="example-api""#)
    );
    let reply = get_bearer(&server, "x.y.z").await;
    let www = reply.header("www-authenticate").unwrap();
    assert!(
        www.starts_with(r#"Bearer realm="example-api", error="invalid_token""#),
        "{www}"
    );
}

type Inner = Response<Full<Bytes>>;

async fn oneshot_code(
    layer: &JwtAuthLayer<TestClaims>,
    auth: Option<String>,
) -> (StatusCode, Option<AuthRejection>, String) {
    let svc = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<Inner, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
    }));
    let mut req = Request::get("/me");
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let response = svc
        .oneshot(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let marker = response.extensions().get::<AuthRejection>().copied();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, marker, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn rejection_marker_in_response_extensions() {
    let validator = hmac_builder()
        .require("needs a role", |c: &TestClaims| c.role.is_some())
        .build()
        .unwrap();
    let layer = JwtAuthLayer::new(validator);
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    let cases = [
        (None, StatusCode::UNAUTHORIZED, ErrorCode::MissingToken),
        (
            bearer("a.b.c"),
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidToken,
        ),
        (
            bearer(&sign_hs256(&claims("a", NOW - 3600))),
            StatusCode::UNAUTHORIZED,
            ErrorCode::TokenExpired,
        ),
        (
            bearer(&token_for("a")),
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
        ),
    ];
    for (auth, status, code) in cases {
        let (got_status, marker, body) = oneshot_code(&layer, auth).await;
        assert_eq!(got_status, status, "{code:?}");
        assert_eq!(marker, Some(AuthRejection { code }));
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"]["code"], code.as_str());
    }
    // An accepted request is answered by the inner service, unmarked.
    let ok = sign_hs256(&json!({"sub": "a", "role": "r", "exp": NOW + 60}));
    let (status, marker, body) = oneshot_code(&layer, bearer(&ok)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(marker, None);
    assert_eq!(body, "inner");
}

#[tokio::test]
async fn rejection_marker_survives_a_custom_responder() {
    let layer = JwtAuthLayer::builder(hmac_validator())
        .responder(response::from_fn(
            |_: &http::request::Parts, err: &tower_jwt_guard::AuthError| {
                Response::builder()
                    .status(StatusCode::IM_A_TEAPOT)
                    .body(Bytes::from(format!("custom:{}", err.code())))
                    .unwrap()
            },
        ))
        .build()
        .unwrap();
    let (status, marker, body) = oneshot_code(&layer, Some("Bearer a.b.c".into())).await;
    assert_eq!(status, StatusCode::IM_A_TEAPOT);
    assert_eq!(
        marker,
        Some(AuthRejection {
            code: ErrorCode::InvalidToken
        })
    );
    assert_eq!(body, "custom:INVALID_TOKEN");
}

#[tokio::test]
async fn unusual_requirement_messages_keep_a_valid_challenge() {
    let validator = hmac_builder()
        .require("rôle \"admin\" \\ requis\r\n", |c: &TestClaims| {
            c.role.is_some()
        })
        .build()
        .unwrap();
    let server = serve_layer(JwtAuthLayer::new(validator)).await;
    let reply = get_bearer(&server, &token_for("a")).await;
    assert_rejected(&reply, "FORBIDDEN");
    // The JSON body keeps the message as configured...
    assert_eq!(
        reply.json()["error"]["message"],
        "rôle \"admin\" \\ requis\r\n"
    );
    // ...while the header carries a sanitized description that cannot break the quoting.
    let www = reply.header("www-authenticate").unwrap();
    assert_eq!(
        www,
        r#"Bearer error="insufficient_scope", error_description="rle admin  requis""#
    );
}
