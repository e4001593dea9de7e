use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::JwtAuth;
use super::future::ResponseFuture;
use super::layer::Outcome;
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
            Err((err, _)) if err.is_awaiting_keys() => match self.config.validator.keys_wait() {
                // A remote set is fetching keys this token may need: wait for that fetch
                // (shared with every such request, bounded), then validate once more.
                Some(wait) => {
                    let inner = self.take_ready();
                    ResponseFuture::awaiting_keys(wait, inner, req, Arc::clone(&self.config))
                }
                // It has just completed.
                None => {
                    let again = self.config.outcome(&req);
                    ResponseFuture::decide(again, req, &mut self.inner, &self.config)
                }
            },
            outcome => ResponseFuture::decide(outcome, req, &mut self.inner, &self.config),
        }
    }
}
