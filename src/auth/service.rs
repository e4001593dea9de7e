use std::task::{Context, Poll};

use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::JwtAuth;
use super::future::ResponseFuture;
use super::layer::{KeyWaiter, Outcome};
use crate::body::GuardBody;
use crate::error::AuthError;

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
                // ready service is given back (dropped: whatever capacity it holds in the
                // services inside is freed) and the future drives a clone to readiness only
                // once the token passed, so a waiting request holds none of it.
                let wait = match self.config.extractor.extract_request(&req) {
                    Ok(Some(token)) => self.config.validator.keys_wait(token.as_str()),
                    _ => None,
                };
                match wait {
                    // The fetch has just completed: validate once more, now.
                    None => {
                        let again = self.config.outcome(&req);
                        ResponseFuture::decide(again, req, &mut self.inner, &self.config)
                    }
                    Some(wait) => match KeyWaiter::take(&self.config) {
                        Some(waiter) => {
                            drop(self.take_ready());
                            let inner = self.inner.clone();
                            ResponseFuture::awaiting_keys(wait, inner, req, waiter)
                        }
                        // Too many waiting already: the token may be good, so the refusal is
                        // not the client's fault (not a failed attempt).
                        None => ResponseFuture::decide(
                            Err((
                                AuthError::keys_unavailable(
                                    "too many requests wait for the issuer's keys",
                                ),
                                subject,
                            )),
                            req,
                            &mut self.inner,
                            &self.config,
                        ),
                    },
                }
            }
            outcome => ResponseFuture::decide(outcome, req, &mut self.inner, &self.config),
        }
    }
}
