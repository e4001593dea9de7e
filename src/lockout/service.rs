use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::Lockout;
use super::future::{ResponseFuture, Tracking, store_failed};
use super::{LockStatus, LockoutStore};
use crate::audit::AUDIT_TARGET;
use crate::body::GuardBody;
use crate::outcome::SuccessSignal;
use crate::peer::peer_addr;

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for Lockout<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: LockoutStore,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, St, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &self.config;
        let Some(peer) = peer_addr(req.extensions()) else {
            if !shared.warned_no_peer.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: AUDIT_TARGET,
                    "lockout is inactive for requests without a peer address: serve axum with \
                     into_make_service_with_connect_info::<SocketAddr>(), serve tonic with \
                     the `tonic` feature on, or insert PeerAddr"
                );
            }
            tracing::debug!(
                target: AUDIT_TARGET,
                path = ?req.uri().path(),
                "lockout skipped: the server recorded no peer address"
            );
            return ResponseFuture::inner(self.inner.call(req), None);
        };
        let ip = shared.resolver.client_ip(peer.ip(), req.headers());
        if shared.policy.is_allowed(ip) {
            return ResponseFuture::inner(self.inner.call(req), None);
        }
        let key = shared.resolver.key_of(ip);
        if crate::extract::is_websocket_upgrade(&req) {
            req.extensions_mut()
                .insert(super::FailureReport::new(key, Arc::clone(shared)));
        }
        // Read at most once, and only if the store needs it.
        let mut read = None;
        let mut now = || *read.get_or_insert_with(|| shared.clock.now());
        let (status, on_record) = match shared.store.check_now_and_record(key, &mut now) {
            Some(Ok((status, on_record))) => (Some(Ok(status)), on_record),
            Some(Err(e)) => (Some(Err(e)), true),
            None => (None, true),
        };
        // The signal costs an allocation: planted only when a success has something to reset.
        let success = (shared.policy.reset_on_success && on_record).then(|| {
            let signal = SuccessSignal::new();
            req.extensions_mut().insert(signal.clone());
            signal
        });
        let tracking = Tracking {
            key,
            success,
            shared: Arc::clone(shared),
        };
        match status {
            Some(Ok(LockStatus::Locked { retry_after })) => {
                ResponseFuture::rejected(shared.reject_locked(req, retry_after))
            }
            Some(Ok(LockStatus::Open)) => {
                ResponseFuture::inner(self.inner.call(req), Some(tracking))
            }
            Some(Err(e)) => {
                store_failed(&e, "check");
                if shared.store.fails_closed() {
                    ResponseFuture::rejected(shared.reject_unavailable(req))
                } else {
                    ResponseFuture::inner(self.inner.call(req), Some(tracking))
                }
            }
            None => {
                let check = shared.store.check(key, now());
                ResponseFuture::checking(check, self.take_ready(), req, tracking)
            }
        }
    }
}
