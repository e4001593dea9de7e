//! The demo's gRPC service `demo.v1.Demo`, served next to the HTTP routes behind the same
//! layers. The handlers read what the authentication layer inserted from
//! `request.extensions()`; rejections never reach them.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::Stream;
use tonic::{Request, Response, Status};
use tower_jwt_guard::{AuthContext, Claims};

use super::app::DemoClaims;

/// The code generated from `proto/demo.proto` (see that file for how to regenerate it).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!("proto/demo.v1.rs");
}

pub use pb::demo_server::DemoServer;

/// How often `Watch` sends a tick.
pub const TICK_EVERY: Duration = Duration::from_secs(1);

/// The service's state: the number of orders placed.
#[derive(Clone, Default)]
pub struct DemoGrpc {
    orders: Arc<AtomicU64>,
}

/// The claims the authentication layer put in the request; the layer refuses every request
/// without them before it reaches a handler, so their absence is a wiring mistake.
fn claims<T>(request: &Request<T>) -> Result<&DemoClaims, Status> {
    request
        .extensions()
        .get::<Claims<DemoClaims>>()
        .map(|claims| &claims.0)
        .ok_or_else(|| Status::internal("the authentication layer is not in front of the service"))
}

#[tonic::async_trait]
impl pb::demo_server::Demo for DemoGrpc {
    async fn me(&self, request: Request<pb::MeRequest>) -> Result<Response<pb::MeReply>, Status> {
        let claims = claims(&request)?;
        Ok(Response::new(pb::MeReply {
            sub: claims.sub.clone(),
            plan: claims.plan.clone().unwrap_or_else(|| "free".to_owned()),
        }))
    }

    async fn place_order(
        &self,
        request: Request<pb::OrderRequest>,
    ) -> Result<Response<pb::OrderReply>, Status> {
        let sub = claims(&request)?.sub.clone();
        let n = self.orders.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(Response::new(pb::OrderReply {
            order_id: format!("ord-{n}"),
            sub,
        }))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::Tick, Status>> + Send>>;

    /// A tick a second, carrying the token's `exp`. The stream does not look at the clock: the
    /// `StreamExpiryLayer` in front of the service ends it with `UNAUTHENTICATED` /
    /// `TOKEN_EXPIRED` when `exp` plus the leeway passes.
    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let expires_at = request
            .extensions()
            .get::<AuthContext>()
            .and_then(AuthContext::expires_at)
            .unwrap_or(0);
        let ticks = futures_util::stream::unfold(0u64, move |seq| async move {
            if seq > 0 {
                tokio::time::sleep(TICK_EVERY).await;
            }
            let tick = pb::Tick {
                seq: seq + 1,
                expires_at,
            };
            Some((Ok(tick), seq + 1))
        });
        Ok(Response::new(Box::pin(ticks)))
    }
}
