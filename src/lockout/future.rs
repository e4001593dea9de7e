use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::layer::{LockEvent, LockoutConfig};
use super::{FailureOutcome, LockStatus, LockoutStore};
use crate::audit::AUDIT_TARGET;
use crate::body::GuardBody;
use crate::client_ip::IpKey;
use crate::outcome::{AuthRejection, SuccessSignal};
use crate::scaffold::Rejected;

/// What the future needs to count the outcome of a request.
pub(crate) struct Tracking<St> {
    pub(crate) key: IpKey,
    /// Set by the authentication layer when the request authenticates (only when success
    /// resets failures).
    pub(crate) success: Option<SuccessSignal>,
    pub(crate) shared: Arc<LockoutConfig<St>>,
}

/// A store that failed lets the request through (fail-open), unless the store fails closed
/// ([`LockoutStore::fails_closed`]) and the failure is of a check, which then refuses it. The
/// error describes the store, never the request. At most one `ERROR` event per 10 seconds, with
/// the number of failures since the last one, so that an outage under load does not flood the
/// log.
pub(crate) fn store_failed(error: &dyn std::error::Error, operation: &'static str) {
    static THROTTLE: crate::audit::Throttle = crate::audit::Throttle::new();
    let Some(failures) = THROTTLE.ready(10_000) else {
        return;
    };
    tracing::error!(
        target: AUDIT_TARGET,
        operation,
        error = %error,
        failures,
        "lockout store failed"
    );
}

/// Reports what recording a failure of `key` did: the lock event and hook when it locked.
pub(crate) fn record_outcome<St>(outcome: &FailureOutcome, key: IpKey, shared: &LockoutConfig<St>) {
    if let Some(duration) = outcome.locked_for {
        // With the store full, what gets locked is the address's wider prefix.
        let ip = outcome.counted_as.unwrap_or(key);
        tracing::warn!(
            target: AUDIT_TARGET,
            outcome = "locked",
            client = %ip,
            prefix = outcome.counted_as.is_some(),
            failures = outcome.failures,
            lock_secs = duration.as_secs(),
            lockouts = outcome.lockouts,
            "client address locked out after repeated failed attempts"
        );
        if let Some(hook) = &shared.on_lock {
            hook(&LockEvent {
                ip,
                failures: outcome.failures,
                lock_duration: duration,
                lockouts: outcome.lockouts,
            });
        }
    }
}

pin_project! {
    /// The response future of [`Lockout`](super::Lockout).
    pub struct ResponseFuture<S, St, ReqBody>
    where
        S: Service<Request<ReqBody>>,
        St: LockoutStore,
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
        St: LockoutStore,
    {
        Checking {
            #[pin]
            check: St::CheckFuture,
            // Boxed, so that the request does not make every response future larger (only
            // stores that answer asynchronously get here).
            pending: Option<Box<(S, Request<ReqBody>, Tracking<St>)>>,
        },
        Inner {
            #[pin]
            future: S::Future,
            tracking: Option<Tracking<St>>,
        },
        Recording {
            #[pin]
            record: St::FailureFuture,
            response: Option<S::Response>,
            tracking: Option<Tracking<St>>,
        },
        Resetting {
            #[pin]
            reset: St::ResetFuture,
            response: Option<S::Response>,
        },
        Rejected {
            rejected: Rejected,
        },
    }
}

impl<S, St, ReqBody> ResponseFuture<S, St, ReqBody>
where
    S: Service<Request<ReqBody>>,
    St: LockoutStore,
{
    pub(crate) fn inner(future: S::Future, tracking: Option<Tracking<St>>) -> Self {
        Self {
            state: State::Inner { future, tracking },
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
        check: St::CheckFuture,
        inner: S,
        request: Request<ReqBody>,
        tracking: Tracking<St>,
    ) -> Self {
        Self {
            state: State::Checking {
                check,
                pending: Some(Box::new((inner, request, tracking))),
            },
        }
    }
}

const DONE: &str = "lockout ResponseFuture polled after completion";

impl<S, St, ReqBody, ResBody> Future for ResponseFuture<S, St, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: LockoutStore,
{
    type Output = Result<Response<GuardBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Checking { check, pending } => {
                    let status = ready!(check.poll(cx));
                    let (mut inner, request, tracking) = *pending.take().expect(DONE);
                    match status {
                        Ok(LockStatus::Locked { retry_after }) => {
                            let response = tracking.shared.reject_locked(request, retry_after);
                            state.set(State::Rejected {
                                rejected: Rejected::new(response),
                            });
                        }
                        Err(e) if tracking.shared.store.fails_closed() => {
                            store_failed(&e, "check");
                            let response = tracking.shared.reject_unavailable(request);
                            state.set(State::Rejected {
                                rejected: Rejected::new(response),
                            });
                        }
                        other => {
                            if let Err(e) = other {
                                store_failed(&e, "check");
                            }
                            let future = inner.call(request);
                            state.set(State::Inner {
                                future,
                                tracking: Some(tracking),
                            });
                        }
                    }
                }
                StateProj::Inner { future, tracking } => {
                    let response = match ready!(future.poll(cx)) {
                        Ok(response) => response,
                        Err(e) => return Poll::Ready(Err(e)),
                    };
                    let Some(tracking) = tracking.take() else {
                        return Poll::Ready(Ok(response.map(GuardBody::inner)));
                    };
                    let shared = Arc::clone(&tracking.shared);
                    let failed = response
                        .extensions()
                        .get::<AuthRejection>()
                        .is_some_and(|r| shared.policy.counts(r.code));
                    if failed {
                        let record = shared.store.record_failure(
                            tracking.key,
                            shared.clock.now(),
                            &shared.policy,
                        );
                        state.set(State::Recording {
                            record,
                            response: Some(response),
                            tracking: Some(tracking),
                        });
                    } else if tracking.success.as_ref().is_some_and(SuccessSignal::is_set) {
                        let reset = shared.store.reset(tracking.key, shared.clock.now());
                        state.set(State::Resetting {
                            reset,
                            response: Some(response),
                        });
                    } else {
                        return Poll::Ready(Ok(response.map(GuardBody::inner)));
                    }
                }
                StateProj::Recording {
                    record,
                    response,
                    tracking,
                } => {
                    match ready!(record.poll(cx)) {
                        Ok(outcome) => {
                            let tracking = tracking.as_ref().expect(DONE);
                            record_outcome(&outcome, tracking.key, &tracking.shared);
                        }
                        Err(e) => store_failed(&e, "record_failure"),
                    }
                    let response = response.take().expect(DONE);
                    return Poll::Ready(Ok(response.map(GuardBody::inner)));
                }
                StateProj::Resetting { reset, response } => {
                    if let Err(e) = ready!(reset.poll(cx)) {
                        store_failed(&e, "reset");
                    }
                    let response = response.take().expect(DONE);
                    return Poll::Ready(Ok(response.map(GuardBody::inner)));
                }
                StateProj::Rejected { rejected } => return Poll::Ready(Ok(rejected.take())),
            }
        }
    }
}
