use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::headers::{add_headers, ietf_headers};
use super::layer::{RateLimitConfig, rate_limited, store_failed, store_unavailable};
use super::{RateDecision, RateLimitStore};
use crate::body::GuardBody;
use crate::outcome::AuthRejection;
use crate::scaffold::Rejected;

type Pending<S, ReqBody, St> = (
    S,
    Request<ReqBody>,
    Arc<str>,
    Option<Box<str>>,
    Arc<RateLimitConfig<St>>,
);

pin_project! {
    /// The response future of [`UserRateLimit`](super::UserRateLimit).
    pub struct ResponseFuture<S, St, ReqBody>
    where
        S: Service<Request<ReqBody>>,
        St: RateLimitStore,
    {
        #[pin]
        state: State<S, St, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, St, ReqBody>
    where
        S: Service<Request<ReqBody>>,
        St: RateLimitStore,
    {
        Checking {
            #[pin]
            check: St::Future,
            // Boxed: only asynchronous stores get here, and the future stays small for the
            // in-memory path.
            pending: Option<Box<Pending<S, ReqBody, St>>>,
        },
        Inner {
            #[pin]
            future: S::Future,
            headers: Option<Box<[(HeaderName, HeaderValue); 2]>>,
        },
        Rejected {
            rejected: Rejected,
        },
    }
}

impl<S, St, ReqBody> ResponseFuture<S, St, ReqBody>
where
    S: Service<Request<ReqBody>>,
    St: RateLimitStore,
{
    pub(crate) fn inner(
        future: S::Future,
        headers: Option<Box<[(HeaderName, HeaderValue); 2]>>,
    ) -> Self {
        Self {
            state: State::Inner { future, headers },
        }
    }

    pub(crate) fn rejected(response: Response<bytes::Bytes>) -> Self {
        Self {
            state: State::Rejected {
                rejected: Rejected::new(response),
            },
        }
    }

    pub(crate) fn checking(
        check: St::Future,
        inner: S,
        request: Request<ReqBody>,
        key: Arc<str>,
        plan: Option<Box<str>>,
        shared: Arc<RateLimitConfig<St>>,
    ) -> Self {
        Self {
            state: State::Checking {
                check,
                pending: Some(Box::new((inner, request, key, plan, shared))),
            },
        }
    }
}

const DONE: &str = "rate-limit ResponseFuture polled after completion";

impl<S, St, ReqBody, ResBody> Future for ResponseFuture<S, St, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: RateLimitStore,
{
    type Output = Result<Response<GuardBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Checking { check, pending } => {
                    let decision = ready!(check.poll(cx));
                    let (mut inner, request, key, plan, shared) = *pending.take().expect(DONE);
                    match decision {
                        Ok(decision) => {
                            let headers = shared.headers.then(|| {
                                let quotas = shared.store.quotas();
                                ietf_headers(&decision, quotas.policy_name(plan.as_deref()))
                            });
                            if let RateDecision::Limited { retry_after, .. } = decision {
                                let err = rate_limited(retry_after);
                                let mut response = crate::response::reject(
                                    &*shared.responder,
                                    request,
                                    &err,
                                    Some(&key),
                                );
                                if let Some(pairs) = headers {
                                    add_headers(response.headers_mut(), pairs);
                                }
                                state.set(State::Rejected {
                                    rejected: Rejected::new(response),
                                });
                            } else {
                                let future = inner.call(request);
                                state.set(State::Inner {
                                    future,
                                    headers: headers.map(Box::new),
                                });
                            }
                        }
                        Err(e) if shared.store.fails_closed() => {
                            store_failed(&e, true);
                            let response = crate::response::reject(
                                &*shared.responder,
                                request,
                                &store_unavailable(),
                                Some(&key),
                            );
                            state.set(State::Rejected {
                                rejected: Rejected::new(response),
                            });
                        }
                        Err(e) => {
                            store_failed(&e, false);
                            let future = inner.call(request);
                            state.set(State::Inner {
                                future,
                                headers: None,
                            });
                        }
                    }
                }
                StateProj::Inner { future, headers } => {
                    if headers.is_none() {
                        // The common case: the inner response, moved once.
                        return future
                            .poll(cx)
                            .map_ok(|response| response.map(GuardBody::inner));
                    }
                    let mut response = match ready!(future.poll(cx)) {
                        Ok(response) => response,
                        Err(e) => return Poll::Ready(Err(e)),
                    };
                    // A refusal from a layer further in must not advertise quota left here.
                    if let Some(pairs) = headers.take()
                        && response.extensions().get::<AuthRejection>().is_none()
                    {
                        add_headers(response.headers_mut(), *pairs);
                    }
                    return Poll::Ready(Ok(response.map(GuardBody::inner)));
                }
                StateProj::Rejected { rejected } => return Poll::Ready(Ok(rejected.take())),
            }
        }
    }
}
