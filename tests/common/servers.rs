//! Real servers on loopback (port 0), aborted when dropped.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_jwt_guard::{AuthContext, Claims, JwtAuthLayer};

use super::TestClaims;

/// The handler behind every protected test route: reports what the layer put into the request.
pub async fn whoami(req: Request) -> Response {
    let ctx = req.extensions().get::<AuthContext>();
    let claims = req.extensions().get::<Claims<TestClaims>>();
    axum::Json(json!({
        "authenticated": ctx.is_some(),
        "subject": ctx.and_then(AuthContext::subject),
        "source": ctx.and_then(AuthContext::source).map(|s| s.as_str()),
        "kid": ctx.and_then(AuthContext::key_id),
        "claims_sub": claims.map(|c| c.sub.clone()),
        "claims_role": claims.and_then(|c| c.role.clone()),
    }))
    .into_response()
}

/// A router with `/me` (any method) answered by [`whoami`], behind `layer`.
pub fn protected_router(layer: JwtAuthLayer<TestClaims>) -> Router {
    Router::new()
        .route("/me", axum::routing::any(whoami))
        .layer(layer)
}

/// A running axum server on `127.0.0.1:<ephemeral>`; aborted when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TestServer {
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` (with `ConnectInfo<SocketAddr>`) on loopback, port 0.
pub async fn serve(router: Router) -> TestServer {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    assert!(addr.ip().is_loopback());
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("axum server");
    });
    TestServer { addr, task }
}

/// Serves [`protected_router`]`(layer)`.
pub async fn serve_layer(layer: JwtAuthLayer<TestClaims>) -> TestServer {
    serve(protected_router(layer)).await
}
