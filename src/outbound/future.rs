//! The response future of [`TokenService`](super::TokenService): the attempt, and the one
//! retry after a refused token.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::config::{BoxError, Config};
use super::source::TokenSource;
use super::token::{ProviderError, SecretToken};

/// A wait for a token (rare: none was valid, or the server refused it); a refresh costs far
/// more than the box.
type TokenWait = Pin<Box<dyn Future<Output = Result<Arc<SecretToken>, ProviderError>> + Send>>;

/// A request not sent yet, with a clone of the service to send it with.
pub(super) struct Pending<S, B> {
    pub(super) service: S,
    pub(super) request: Request<B>,
}

pin_project! {
    /// The response future of [`TokenService`](super::TokenService).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
        source: Option<TokenSource>,
        config: Option<Arc<Config>>,
        // The token of the attempt under way.
        seen: Option<Arc<SecretToken>>,
        // The copy for the retry (boxed: rare, and a request is large).
        retry: Option<Box<Pending<S, B>>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Failed {
            error: Option<BoxError>,
        },
        // No valid token when the request came: waiting for the refresh.
        Token {
            wait: TokenWait,
            pending: Option<Box<Pending<S, B>>>,
        },
        // A clone of the service driven to readiness; the request carries its token.
        Ready {
            pending: Option<Box<Pending<S, B>>>,
        },
        Call {
            #[pin]
            future: S::Future,
        },
        // The server refused the token: waiting for its replacement, the refusal kept to hand
        // back if there is none.
        Refresh {
            wait: TokenWait,
            refused: Option<S::Response>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn failed(error: BoxError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
            source: None,
            config: None,
            seen: None,
            retry: None,
        }
    }

    /// Sent at once with a fresh `token`.
    pub(super) fn sent(
        future: S::Future,
        source: TokenSource,
        config: Arc<Config>,
        token: Arc<SecretToken>,
        retry: Option<Pending<S, B>>,
    ) -> Self {
        Self {
            state: State::Call { future },
            source: Some(source),
            config: Some(config),
            seen: Some(token),
            retry: retry.map(Box::new),
        }
    }

    /// Waiting for a token first.
    pub(super) fn waiting(
        pending: Pending<S, B>,
        source: TokenSource,
        config: Arc<Config>,
        retry: Option<Pending<S, B>>,
    ) -> Self {
        let waiting = source.clone();
        Self {
            state: State::Token {
                wait: Box::pin(async move { waiting.token().await }),
                pending: Some(Box::new(pending)),
            },
            source: Some(source),
            config: Some(config),
            seen: None,
            retry: retry.map(Box::new),
        }
    }
}

/// Whether the server refused the token: HTTP 401, or gRPC `UNAUTHENTICATED` in the headers
/// of a trailers-only response.
fn refused<ResB>(response: &Response<ResB>) -> bool {
    response.status() == StatusCode::UNAUTHORIZED
        || response
            .headers()
            .get("grpc-status")
            .is_some_and(|status| status.as_bytes() == b"16")
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<ResB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Failed { error } => {
                    return Poll::Ready(Err(error
                        .take()
                        .unwrap_or_else(|| "polled after completion".into())));
                }
                StateProj::Token { wait, pending } => {
                    let token = match ready!(wait.as_mut().poll(cx)) {
                        Ok(token) => token,
                        Err(error) => {
                            this.state.set(State::Failed {
                                error: Some(error.into()),
                            });
                            continue;
                        }
                    };
                    let mut pending = pending.take();
                    if let (Some(pending), Some(config)) = (&mut pending, &*this.config) {
                        config.attach(&mut pending.request, &token);
                    }
                    *this.seen = Some(token);
                    this.state.set(State::Ready { pending });
                }
                StateProj::Ready { pending } => {
                    let Some(p) = pending.as_mut() else {
                        this.state.set(State::Failed { error: None });
                        continue;
                    };
                    if let Err(error) = ready!(p.service.poll_ready(cx)) {
                        this.state.set(State::Failed {
                            error: Some(error.into()),
                        });
                        continue;
                    }
                    let Some(mut p) = pending.take() else {
                        continue;
                    };
                    // Readiness may have taken long: the token must still be valid when the
                    // request leaves. A newer one goes on instead; with none, the wait again.
                    if let (Some(source), Some(config)) = (&*this.source, &*this.config) {
                        match source.token_now() {
                            Some(token) => {
                                if !this.seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &token)) {
                                    config.attach(&mut p.request, &token);
                                    *this.seen = Some(token);
                                }
                            }
                            None => {
                                // The ready service gives back what it holds (a buffer's
                                // slot, a pool's connection) while the request waits: a
                                // clone, not ready, takes its place, driven to readiness
                                // again after the wait.
                                let fresh = p.service.clone();
                                drop(std::mem::replace(&mut p.service, fresh));
                                let waiting = source.clone();
                                this.state.set(State::Token {
                                    wait: Box::pin(async move { waiting.token().await }),
                                    pending: Some(p),
                                });
                                continue;
                            }
                        }
                    }
                    let future = p.service.call(p.request);
                    this.state.set(State::Call { future });
                }
                StateProj::Call { future } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    if !refused(&response) {
                        return Poll::Ready(Ok(response));
                    }
                    let (Some(source), Some(seen)) = (&*this.source, this.seen.take()) else {
                        return Poll::Ready(Ok(response));
                    };
                    // Every refusal is reported, the retry's too; the first attempt's alone
                    // may be retried, and only when a token other than `seen` will come.
                    if !source.refused(&seen) {
                        return Poll::Ready(Ok(response));
                    }
                    if this.retry.is_none() {
                        return Poll::Ready(Ok(response));
                    }
                    let waiting = source.clone();
                    this.state.set(State::Refresh {
                        wait: Box::pin(async move { waiting.force_refresh(&seen).await }),
                        refused: Some(response),
                    });
                }
                StateProj::Refresh { wait, refused } => {
                    let outcome = ready!(wait.as_mut().poll(cx));
                    let retry = this.retry.take();
                    match (outcome, retry, &*this.config) {
                        (Ok(token), Some(mut retry), Some(config)) => {
                            config.attach(&mut retry.request, &token);
                            *this.seen = Some(token);
                            this.state.set(State::Ready {
                                pending: Some(retry),
                            });
                        }
                        _ => {
                            let refused = refused.take();
                            return match refused {
                                Some(response) => Poll::Ready(Ok(response)),
                                None => Poll::Ready(Err("polled after completion".into())),
                            };
                        }
                    }
                }
            }
        }
    }
}
