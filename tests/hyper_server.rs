//! The layer on a bare hyper 1 server (no axum): `tower::ServiceBuilder` over a `service_fn`
//! whose body is `Full<Bytes>`, adapted with `TowerToHyperService`, served over HTTP/1 and
//! HTTP/2 (hyper-util `auto`) on loopback, and called with hyper-util's client.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower::service_fn;
use tower_jwt_guard::peer::PeerAddr;
use tower_jwt_guard::{AuthContext, Claims, JwtAuthLayer};

use common::*;

async fn handler(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let ctx = req.extensions().get::<AuthContext>();
    let claims = req.extensions().get::<Claims<TestClaims>>();
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.to_string());
    let body = json!({
        "subject": ctx.and_then(AuthContext::subject),
        "claims_sub": claims.map(|c| c.sub.clone()),
        "peer": peer,
        "version": format!("{:?}", req.version()),
    });
    Ok(Response::new(Full::new(Bytes::from(body.to_string()))))
}

struct HyperServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HyperServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections on loopback and serves each with the layered `service_fn`.
async fn spawn_hyper(layer: JwtAuthLayer<TestClaims>) -> HyperServer {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let svc = ServiceBuilder::new()
                // Record the peer address the way the crate's `peer` module documents.
                .map_request(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(PeerAddr(peer));
                    req
                })
                .layer(layer.clone())
                .service(service_fn(handler));
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    HyperServer { addr, task }
}

/// The same service over `hyper::server::conn::http1` only.
async fn spawn_hyper_http1(layer: JwtAuthLayer<TestClaims>) -> HyperServer {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = ServiceBuilder::new()
                .layer(layer.clone())
                .service(service_fn(handler));
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    HyperServer { addr, task }
}

async fn call(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    auth: Option<String>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = Request::get(format!("http://{addr}/me"));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let exchange = async {
        let response = client
            .request(req.body(Empty::new()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let www = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, www, serde_json::from_slice(&body).unwrap())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .expect("exchange timed out")
}

async fn exercise(addr: SocketAddr, http2: bool) -> Vec<Value> {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build_http::<Empty<Bytes>>();
    let mut bodies = Vec::new();

    let (status, www, body) = call(&client, addr, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www.as_deref(), Some("Bearer"));
    assert_eq!(body["error"]["code"], "MISSING_TOKEN");

    let (status, www, body) = call(&client, addr, Some("Bearer a.b.c".into())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(www.unwrap().contains(r#"error="invalid_token""#));
    assert_eq!(body["error"]["code"], "INVALID_TOKEN");

    let expired = sign_hs256(&claims("alice", NOW - 3600));
    let (status, _, body) = call(&client, addr, Some(format!("Bearer {expired}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "TOKEN_EXPIRED");

    let (status, _, body) = call(
        &client,
        addr,
        Some(format!("Bearer {}", token_for("alice"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["subject"], "alice");
    assert_eq!(body["claims_sub"], "alice");
    bodies.push(body);
    bodies
}

#[tokio::test]
async fn bare_hyper_auto_http1_and_http2() {
    let server = spawn_hyper(JwtAuthLayer::new(hmac_validator())).await;
    let http1 = exercise(server.addr, false).await;
    assert_eq!(http1[0]["version"], "HTTP/1.1");
    assert!(
        http1[0]["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{}",
        http1[0]
    );
    let http2 = exercise(server.addr, true).await;
    assert_eq!(http2[0]["version"], "HTTP/2.0");
}

#[tokio::test]
async fn bare_hyper_http1_connection() {
    let server = spawn_hyper_http1(JwtAuthLayer::new(hmac_validator())).await;
    let bodies = exercise(server.addr, false).await;
    assert_eq!(bodies[0]["peer"], Value::Null);
}

#[tokio::test]
async fn bare_hyper_with_reqwest_and_revocation() {
    let validator = hmac_builder()
        .revocation(|ctx: &AuthContext| {
            let revoked = ctx.subject() == Some("revoked");
            async move { Ok::<_, std::io::Error>(revoked) }
        })
        .build()
        .unwrap();
    let server = spawn_hyper(JwtAuthLayer::new(validator)).await;
    let url = format!("http://{}/me", server.addr);
    let reply = send(client().get(&url).bearer_auth(token_for("ok"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["subject"], "ok");
    let reply = send(client().get(&url).bearer_auth(token_for("revoked"))).await;
    assert_rejected(&reply, "TOKEN_REVOKED");
}
