use std::task::{Context, Poll};

use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::JwtAuth;
use super::future::ResponseFuture;
use super::layer::{KeyWaiter, Outcome};
use crate::body::GuardBody;

impl<S, C, ReqBody, ResBody> Service<Request<ReqBody>> for JwtAuth<S, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let outcome: Outcome<C> = self.config.outcome(&req);
        match outcome {
            Err((err, subject)) if err.is_awaiting_keys() => {
                // A remote set is fetching keys this token may need: wait for that fetch
                // (shared with every such request, bounded), then validate once more. The
                // ready service stays here; the future gets a clone and drives it to
                // readiness after the wait, so a waiting request holds no capacity of the
                // services inside.
                let wait = match self.config.extractor.extract_request(&req) {
                    Ok(Some(token)) => self.config.validator.keys_wait(token.as_str()),
                    _ => None,
                };
                match (wait, KeyWaiter::take(&self.config)) {
                    (Some(wait), Some(waiter)) => {
                        ResponseFuture::awaiting_keys(wait, self.inner.clone(), req, waiter)
                    }
                    _ => ResponseFuture::decide(
                        Err((err, subject)),
                        req,
                        &mut self.inner,
                        &self.config,
                    ),
                }
            }
            outcome => ResponseFuture::decide(outcome, req, &mut self.inner, &self.config),
        }
    }
}
