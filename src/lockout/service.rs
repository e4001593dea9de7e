use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::future::{ResponseFuture, Tracking};
use super::layer::Shared;
use super::{LockStatus, LockoutStore, SuccessProbe};
use crate::audit::{self, AUDIT_TARGET, RequestInfo};
use crate::body::GuardBody;
use crate::error::{AuthError, ErrorCode};
use crate::peer::peer_addr;

/// The service produced by [`LockoutLayer`](super::LockoutLayer).
pub struct Lockout<S, St> {
    inner: S,
    shared: Arc<Shared<St>>,
}

impl<S, St> Lockout<S, St> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Shared<St>>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, St> Clone for Lockout<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, St> fmt::Debug for Lockout<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lockout")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

pub(crate) fn locked_out(retry_after: std::time::Duration) -> AuthError {
    AuthError::new(
        ErrorCode::LockedOut,
        "too many failed attempts from this address; try again later",
    )
    .with_retry_after(retry_after)
}

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
        let shared = &self.shared;
        let Some(peer) = peer_addr(req.extensions()) else {
            if !shared.warned_no_peer.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: AUDIT_TARGET,
                    "lockout is inactive for requests without a peer address: serve axum with \
                     into_make_service_with_connect_info::<SocketAddr>(), or insert PeerAddr"
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
        let now = shared.clock.now();
        if crate::extract::is_websocket_upgrade(&req) {
            req.extensions_mut()
                .insert(super::FailureReport::new(key, Arc::clone(shared)));
        }
        let probe = shared.policy.reset_on_success.then(|| {
            let probe = SuccessProbe::default();
            req.extensions_mut().insert(probe.clone());
            probe
        });
        let tracking = Tracking {
            key,
            probe,
            shared: Arc::clone(shared),
        };
        match shared.store.check_now(key, now) {
            Some(Ok(LockStatus::Locked { retry_after })) => {
                let err = locked_out(retry_after);
                audit::rejected(&err, None, RequestInfo::of(&req));
                ResponseFuture::rejected(shared.rejection(&mut req, &err))
            }
            Some(Ok(LockStatus::Open)) => {
                ResponseFuture::inner(self.inner.call(req), Some(tracking))
            }
            Some(Err(e)) => {
                super::future::store_failed(&e, "check");
                ResponseFuture::inner(self.inner.call(req), Some(tracking))
            }
            None => {
                let check = shared.store.check(key, now);
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::checking(check, inner, req, tracking)
            }
        }
    }
}
