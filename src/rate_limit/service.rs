use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::Shared;
use super::{RateDecision, RateLimitStore};
use crate::audit::{self, AUDIT_TARGET, RequestInfo};
use crate::body::GuardBody;
use crate::error::{AuthError, ErrorCode};

/// The service produced by [`RateLimitLayer`](super::RateLimitLayer).
pub struct RateLimit<S, St> {
    inner: S,
    shared: Arc<Shared<St>>,
}

impl<S, St> RateLimit<S, St> {
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

impl<S: Clone, St> Clone for RateLimit<S, St> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, St> fmt::Debug for RateLimit<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

pub(crate) fn rate_limited(retry_after: std::time::Duration) -> AuthError {
    AuthError::new(ErrorCode::RateLimited, "rate limit exceeded; slow down")
        .with_retry_after(retry_after)
}

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The IETF `RateLimit-Policy` / `RateLimit` header values for `decision`.
pub(crate) fn ietf_headers(
    decision: &RateDecision,
    policy: &str,
) -> [(HeaderName, HeaderValue); 2] {
    let name: String = policy
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    let name = if name.is_empty() {
        "default".to_owned()
    } else {
        name
    };
    let (limit, window, remaining, reset) = match *decision {
        RateDecision::Allowed {
            limit,
            remaining,
            window,
        } => {
            // Time until the whole burst is back, at the quota's refill rate.
            let remaining = remaining.unwrap_or(limit);
            let used = limit.saturating_sub(remaining);
            let reset = window.mul_f64(f64::from(used) / f64::from(limit.max(1)));
            (limit, window, remaining, reset)
        }
        RateDecision::Limited {
            limit,
            window,
            retry_after,
        } => (limit, window, 0, retry_after),
    };
    let secs = |d: std::time::Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let policy = format!("\"{name}\";q={limit};w={}", secs(window).max(1));
    let state = format!("\"{name}\";r={remaining};t={}", secs(reset));
    [
        (
            RATELIMIT_POLICY,
            HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("\"default\"")),
        ),
        (
            RATELIMIT,
            HeaderValue::from_str(&state).unwrap_or(HeaderValue::from_static("\"default\"")),
        ),
    ]
}

pub(crate) fn add_headers(headers: &mut HeaderMap, pairs: [(HeaderName, HeaderValue); 2]) {
    for (name, value) in pairs {
        headers.insert(name, value);
    }
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: RateLimitStore,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, St, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        let Some(key) = shared.key.key(req.extensions()) else {
            if shared.reject_unauthenticated {
                let err = AuthError::missing_token();
                audit::rejected(&err, None, RequestInfo::of(&req));
                return ResponseFuture::rejected(crate::response::reject(&*shared.responder, &err));
            }
            return ResponseFuture::inner(self.inner.call(req), None);
        };
        let plan = shared.plan.and_then(|f| f(req.extensions()));
        match shared.store.check_now(&key, plan, shared.headers) {
            Some(Ok(decision)) => {
                let headers = shared
                    .headers
                    .then(|| ietf_headers(&decision, shared.store.policy_name(plan)));
                match decision {
                    RateDecision::Allowed { .. } => {
                        ResponseFuture::inner(self.inner.call(req), headers.map(Box::new))
                    }
                    RateDecision::Limited { retry_after, .. } => {
                        let err = rate_limited(retry_after);
                        audit::rejected(&err, Some(&key), RequestInfo::of(&req));
                        let mut response = crate::response::reject(&*shared.responder, &err);
                        if let Some(pairs) = headers {
                            add_headers(response.headers_mut(), pairs);
                        }
                        ResponseFuture::rejected(response)
                    }
                }
            }
            Some(Err(e)) => {
                store_failed(&e);
                ResponseFuture::inner(self.inner.call(req), None)
            }
            None => {
                let check = shared.store.check(&key, plan, shared.headers);
                let plan = plan.map(Box::<str>::from);
                let key = key.into_owned();
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::checking(check, inner, req, key, plan, Arc::clone(&self.shared))
            }
        }
    }
}

pub(crate) fn store_failed(error: &dyn std::error::Error) {
    tracing::error!(
        target: AUDIT_TARGET,
        error = %error,
        "rate-limit store failed; request let through"
    );
}
