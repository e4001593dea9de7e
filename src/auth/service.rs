use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::Unauthenticated;
use super::future::ResponseFuture;
use super::layer::AuthConfig;
use crate::audit::{self, RequestInfo};
use crate::body::GuardBody;
use crate::context::Claims;
use crate::error::AuthError;
use crate::validate::Verified;

/// A validation result; on failure, the subject when the signature was good (for audit).
type Outcome<C> = Result<Option<Verified<C>>, (AuthError, Option<Arc<str>>)>;

/// The service produced by [`JwtAuthLayer`](super::JwtAuthLayer).
pub struct JwtAuth<S, C> {
    inner: S,
    config: Arc<AuthConfig<C>>,
}

impl<S, C> JwtAuth<S, C> {
    pub(crate) fn from_parts(inner: S, config: Arc<AuthConfig<C>>) -> Self {
        Self { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C> Clone for JwtAuth<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S: fmt::Debug, C> fmt::Debug for JwtAuth<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("inner", &self.inner)
            .field("optional", &self.config.optional)
            .finish_non_exhaustive()
    }
}

/// Puts the verified context and claims where handlers find them.
pub(crate) fn authenticate<B, C>(req: &mut Request<B>, verified: Verified<C>)
where
    C: Clone + Send + Sync + 'static,
{
    audit::accepted(&verified.context, RequestInfo::of(req));
    if let Some(probe) = req.extensions().get::<crate::lockout::SuccessProbe>() {
        probe.0.store(true, std::sync::atomic::Ordering::Release);
    }
    let extensions = req.extensions_mut();
    extensions.insert(verified.context);
    extensions.insert(Claims(verified.claims));
}

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
            Err((err, subject)) => {
                audit::rejected(&err, subject.as_deref(), RequestInfo::of(&req));
                ResponseFuture::rejected(config.rejection(&mut req, &err))
            }
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
                    // The ready service goes into the future; a fresh clone stays behind and
                    // will be driven to readiness by the next `poll_ready`.
                    let clone = self.inner.clone();
                    let inner = std::mem::replace(&mut self.inner, clone);
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
