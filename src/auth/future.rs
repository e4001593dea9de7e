use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::layer::{AuthConfig, KeyWaiter, Outcome, authenticate};
use crate::audit::{self, RequestInfo};
use crate::body::GuardBody;
use crate::outcome::Unauthenticated;
use crate::scaffold::Rejected;
use crate::validate::{KeysWait, RevocationFuture, Verified};

/// What a request waiting for a remote key set's fetch keeps.
pub(crate) struct Waiting<S, ReqBody, C> {
    /// A clone of the inner service, not ready yet.
    inner: S,
    request: Request<ReqBody>,
    config: Arc<AuthConfig<C>>,
    /// Its place among the waiters, given back as soon as the wait is over.
    waiter: Option<KeyWaiter<C>>,
    /// The validation after the wait, when it passed (the clone is then driven to readiness).
    passed: Option<Option<Verified<C>>>,
}

/// What the revocation state needs to go on once the hook has answered.
struct Pending<S, ReqBody, C> {
    inner: S,
    request: Request<ReqBody>,
    verified: Verified<C>,
    config: Arc<AuthConfig<C>>,
}

pin_project! {
    /// The response future of [`JwtAuth`](super::JwtAuth).
    pub struct ResponseFuture<S, ReqBody, C>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, C>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, C>
    where
        S: Service<Request<ReqBody>>,
    {
        // Boxed: held inline, the request and the claims would make every `ResponseFuture` (and
        // every future wrapping it) hundreds of bytes larger, copied on each move on the hot
        // path. Only a configured revocation hook pays for the box (it is boxed already).
        Revocation {
            check: RevocationFuture,
            pending: Option<Box<Pending<S, ReqBody, C>>>,
        },
        // A remote key set is fetching keys the token may need (rare: a new or unknown `kid`),
        // then the clone of the inner service is driven to readiness.
        AwaitingKeys {
            wait: Option<KeysWait>,
            pending: Option<Box<Waiting<S, ReqBody, C>>>,
        },
        Inner {
            #[pin]
            future: S::Future,
        },
        Rejected {
            rejected: Rejected,
        },
    }
}

impl<S, ReqBody, C> ResponseFuture<S, ReqBody, C>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn inner(future: S::Future) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(crate) fn rejected(response: http::Response<bytes::Bytes>) -> Self {
        Self {
            state: State::Rejected {
                rejected: Rejected::new(response),
            },
        }
    }

    /// Waits for `wait`, then drives `inner` (a clone, not yet ready) to readiness and
    /// validates the request again.
    pub(crate) fn awaiting_keys(
        wait: KeysWait,
        inner: S,
        request: Request<ReqBody>,
        waiter: KeyWaiter<C>,
    ) -> Self {
        let config = Arc::clone(waiter.config());
        Self {
            state: State::AwaitingKeys {
                wait: Some(wait),
                pending: Some(Box::new(Waiting {
                    inner,
                    request,
                    config,
                    waiter: Some(waiter),
                    passed: None,
                })),
            },
        }
    }

    /// What to do with a validated request: refuse it, pass it on (`inner` is ready), or ask
    /// the revocation hook first.
    #[inline]
    pub(crate) fn decide<ResBody>(
        outcome: Outcome<C>,
        mut req: Request<ReqBody>,
        inner: &mut S,
        config: &Arc<AuthConfig<C>>,
    ) -> Self
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
        C: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    {
        match outcome {
            Err((err, subject)) => Self::rejected(crate::response::reject(
                &*config.responder,
                req,
                &err,
                subject.as_deref(),
            )),
            Ok(None) => {
                audit::anonymous(RequestInfo::of(&req));
                req.extensions_mut().insert(Unauthenticated);
                Self::inner(inner.call(req))
            }
            Ok(Some(verified)) => match config.validator.revocation_check(&verified.context) {
                None => {
                    authenticate(&mut req, verified);
                    Self::inner(inner.call(req))
                }
                Some(check) => {
                    // The ready service goes with the future; a clone takes its place.
                    let clone = inner.clone();
                    let ready = std::mem::replace(inner, clone);
                    Self::revocation(check, ready, req, verified, Arc::clone(config))
                }
            },
        }
    }

    pub(crate) fn revocation(
        check: RevocationFuture,
        inner: S,
        request: Request<ReqBody>,
        verified: Verified<C>,
        config: Arc<AuthConfig<C>>,
    ) -> Self {
        Self {
            state: State::Revocation {
                check,
                pending: Some(Box::new(Pending {
                    inner,
                    request,
                    verified,
                    config,
                })),
            },
        }
    }
}

impl<S, ReqBody, ResBody, C> Future for ResponseFuture<S, ReqBody, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    C: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    type Output = Result<Response<GuardBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Revocation { check, pending } => {
                    let result = ready!(check.as_mut().poll(cx));
                    let Pending {
                        mut inner,
                        mut request,
                        verified,
                        config,
                    } = *pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    match crate::validate::revocation_outcome(result) {
                        Ok(()) => {
                            authenticate(&mut request, verified);
                            let future = inner.call(request);
                            state.set(State::Inner { future });
                        }
                        Err(err) => {
                            let response = crate::response::reject(
                                &*config.responder,
                                request,
                                &err,
                                verified.context.subject(),
                            );
                            state.set(State::Rejected {
                                rejected: Rejected::new(response),
                            });
                        }
                    }
                }
                StateProj::AwaitingKeys { wait, pending } => {
                    let waiting = pending
                        .as_mut()
                        .expect("ResponseFuture polled after completion");
                    if let Some(fetch) = wait {
                        ready!(fetch.as_mut().poll(cx));
                        *wait = None;
                        waiting.waiter = None;
                        // Once: a token still short of its key now is refused as it stands.
                        match waiting.config.outcome(&waiting.request) {
                            Ok(passed) => waiting.passed = Some(passed),
                            Err(refused) => {
                                let Waiting {
                                    mut inner,
                                    request,
                                    config,
                                    ..
                                } = *pending.take().expect("checked above");
                                let next = Self::decide(Err(refused), request, &mut inner, &config);
                                state.set(next.state);
                                continue;
                            }
                        }
                    }
                    let polled = ready!(waiting.inner.poll_ready(cx));
                    let Waiting {
                        mut inner,
                        request,
                        config,
                        passed,
                        ..
                    } = *pending.take().expect("checked above");
                    if let Err(e) = polled {
                        return Poll::Ready(Err(e));
                    }
                    let passed = passed.expect("set when the wait ended");
                    let next = Self::decide(Ok(passed), request, &mut inner, &config);
                    state.set(next.state);
                }
                StateProj::Inner { future } => {
                    return future
                        .poll(cx)
                        .map(|res| res.map(|r| r.map(GuardBody::inner)));
                }
                StateProj::Rejected { rejected } => return Poll::Ready(Ok(rejected.take())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{Ready, ready};

    use super::*;

    #[derive(Clone)]
    struct Svc;

    impl Service<Request<[u8; 512]>> for Svc {
        type Response = Response<()>;
        type Error = Infallible;
        type Future = Ready<Result<Response<()>, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<[u8; 512]>) -> Self::Future {
            ready(Ok(Response::new(())))
        }
    }

    #[test]
    fn neither_the_request_nor_the_claims_are_held_inline() {
        type Claims = [u8; 1024];
        let size = std::mem::size_of::<ResponseFuture<Svc, [u8; 512], Claims>>();
        let inner = std::mem::size_of::<<Svc as Service<Request<[u8; 512]>>>::Future>();
        assert!(
            size <= inner + 64,
            "{size} bytes for a {inner}-byte inner future"
        );
    }
}
