use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::JwtAuth;
use super::future::ResponseFuture;
use super::layer::authenticate;
use crate::audit::{self, RequestInfo};
use crate::body::GuardBody;
use crate::error::AuthError;
use crate::outcome::Unauthenticated;
use crate::validate::Verified;

/// A validation result; on failure, the subject when the signature was good (for audit).
type Outcome<C> = Result<Option<Verified<C>>, (AuthError, Option<Arc<str>>)>;

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

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let outcome: Outcome<C> = match config.extractor.extract_request(&req) {
            Err(e) => Err((e.into(), None)),
            Ok(None) if config.optional => Ok(None),
            Ok(None) => Err((AuthError::missing_token(), None)),
            Ok(Some(token)) => config.validate(token.as_str()).map(|mut v| {
                v.context.set_source(Some(token.source()));
                Some(v)
            }),
        };
        match outcome {
            Err((err, subject)) => ResponseFuture::rejected(crate::response::reject(
                &*config.responder,
                req,
                &err,
                subject.as_deref(),
            )),
            Ok(None) => {
                audit::anonymous(RequestInfo::of(&req));
                req.extensions_mut().insert(Unauthenticated);
                ResponseFuture::inner(self.inner.call(req))
            }
            Ok(Some(verified)) => match config.validator.revocation_check(&verified.context) {
                None => {
                    authenticate(&mut req, verified);
                    ResponseFuture::inner(self.inner.call(req))
                }
                Some(check) => {
                    let inner = self.take_ready();
                    ResponseFuture::revocation(
                        check,
                        inner,
                        req,
                        verified,
                        Arc::clone(&self.config),
                    )
                }
            },
        }
    }
}
