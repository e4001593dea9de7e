use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::UserRateLimit;
use super::future::ResponseFuture;
use super::headers::{add_headers, ietf_headers};
use super::layer::{rate_limited, store_failed, store_unavailable};
use super::{RateDecision, RateLimitStore};
use crate::body::GuardBody;
use crate::error::AuthError;

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for UserRateLimit<S, St>
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
        let shared = &*self.config;
        let Some(key) = shared.key.key(req.extensions()) else {
            if shared.reject_unauthenticated {
                let err = AuthError::missing_token();
                return ResponseFuture::rejected(crate::response::reject(
                    &*shared.responder,
                    req,
                    &err,
                    None,
                ));
            }
            return ResponseFuture::inner(self.inner.call(req), None);
        };
        let plan = shared.plan.and_then(|f| f(req.extensions()));
        match shared.store.check_now(&key, plan, shared.headers) {
            Some(Ok(decision)) => {
                let headers = shared
                    .headers
                    .then(|| ietf_headers(&decision, shared.store.quotas().policy_name(plan)));
                match decision {
                    RateDecision::Allowed { .. } => {
                        ResponseFuture::inner(self.inner.call(req), headers.map(Box::new))
                    }
                    RateDecision::Limited { retry_after, .. } => {
                        let err = rate_limited(retry_after);
                        let key = key.into_owned();
                        let mut response =
                            crate::response::reject(&*shared.responder, req, &err, Some(&key));
                        if let Some(pairs) = headers {
                            add_headers(response.headers_mut(), pairs);
                        }
                        ResponseFuture::rejected(response)
                    }
                }
            }
            Some(Err(e)) if shared.store.fails_closed() => {
                store_failed(&e, true);
                let key = key.into_owned();
                let error = store_unavailable();
                ResponseFuture::rejected(crate::response::reject(
                    &*shared.responder,
                    req,
                    &error,
                    Some(&key),
                ))
            }
            Some(Err(e)) => {
                store_failed(&e, false);
                ResponseFuture::inner(self.inner.call(req), None)
            }
            None => {
                let check = shared.store.check(&key, plan, shared.headers);
                let plan = plan.map(Box::<str>::from);
                let key = key.into_owned();
                let config = std::sync::Arc::clone(&self.config);
                ResponseFuture::checking(check, self.take_ready(), req, key, plan, config)
            }
        }
    }
}
