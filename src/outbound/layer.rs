//! [`TokenLayer`] and [`TokenService`]: a token on every outgoing request, one retry after a
//! refused token.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderName, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::config::{Attach, BoxError, Config, Tokens};
use super::future::{Pending, ResponseFuture};
use super::replay::{EmptyBodies, ReplayBody};
use super::source::TokenSource;
use super::users::UserSources;
#[cfg(doc)]
use super::{config::NoUser, users::ForUser};

/// Attaches a fresh token to every request (`Authorization: Bearer` by default), and after a
/// refused token (HTTP 401, gRPC `UNAUTHENTICATED`) replaces it once for every request that saw
/// it and retries the request once when its body can be sent again (see [`ReplayBody`]).
///
/// It fits a tonic `Channel` and a hyper-util client alike (see the [module docs](super)).
///
/// - The token comes from a [`TokenSource`] ([`new`](Self::new)) or, for a client that acts for
///   many users, from each user's source ([`per_user`](Self::per_user)), the user named by a
///   [`ForUser`] extension or a header the layer removes ([`user_header`](Self::user_header)).
/// - A fresh token costs the request one atomic load and a reference count for its header
///   (once a refresh is due, a short lock too). With a retry policy that can replay the body,
///   the request's head is copied before it is sent, for the one retry (`NoRetry` avoids the
///   copy; `BENCHMARKS.md` has the figures). A request that finds no valid token waits for the
///   refresh (shared with every other).
/// - **Never a loop**: a request is sent twice at most. A refusal counts as one only when the
///   response says so in its status or, for gRPC, in its headers (`grpc-status: 16` in a
///   trailers-only response, as servers that authenticate before the call send it); a
///   `grpc-status` in the trailers comes after the response is handed over.
/// - A refused token is replaced at most once per force cooldown (5 s by default, see
///   [`TokenSourceBuilder::force_cooldown`](super::TokenSourceBuilder::force_cooldown)): a server
///   that refuses every token costs two attempts per request at most and one provider call per
///   cooldown, never a provider call per request.
/// - When the replacement fails, the refused response is handed back as it came.
#[derive(Debug, Clone)]
pub struct TokenLayer<R = EmptyBodies> {
    config: Arc<Config>,
    replay: R,
}

impl TokenLayer {
    /// Tokens from `source`, in `Authorization: Bearer`.
    pub fn new(source: TokenSource) -> Self {
        Self::with(Tokens::One(source))
    }

    /// Each request's token from the source of the user it names (a [`ForUser`] extension, or
    /// the [`user_header`](Self::user_header)); a request naming none fails with [`NoUser`].
    pub fn per_user(users: UserSources) -> Self {
        Self::with(Tokens::Users(users))
    }

    fn with(tokens: Tokens) -> Self {
        Self {
            config: Arc::new(Config {
                tokens,
                attach: Attach::Bearer,
                user_header: None,
                idempotent_only: false,
            }),
            replay: EmptyBodies,
        }
    }
}

impl<R> TokenLayer<R> {
    /// The bare token in the header (or gRPC metadata key) `name`, instead of
    /// `Authorization: Bearer`.
    ///
    /// # Panics
    /// When `name` ends in `-bin`: gRPC takes such a key's value as base64 of binary data,
    /// which a token is not (the server would decode it into something else).
    pub fn header(mut self, name: HeaderName) -> Self {
        assert!(
            !name.as_str().ends_with("-bin"),
            "a token goes in an ASCII header or metadata key, not a binary `-bin` one"
        );
        self.config_mut().attach = Attach::Header(name);
        self
    }

    /// Retries a refused request only when its method is idempotent (`GET`, `HEAD`,
    /// `OPTIONS`, `TRACE`, `PUT`, `DELETE`), besides its body being replayable.
    ///
    /// By default the method does not matter (see [`ReplayBody`]): a 401 is taken to mean the
    /// server did nothing, which holds for servers that authenticate before they act (this
    /// crate's layers do). Use this for a server that may act and then answer 401.
    pub fn retry_idempotent_only(mut self) -> Self {
        self.config_mut().idempotent_only = true;
        self
    }

    /// The header naming the user a request is sent for (with [`per_user`](TokenLayer::per_user);
    /// a [`ForUser`] extension wins over it). It is removed from every request, so that it never
    /// reaches the server.
    ///
    /// **Set it in your own code, never pass it through from a request you received**: whoever
    /// chooses its value gets that user's token sent on their behalf. A server that acts for
    /// its callers should name the user from their *validated* identity (this crate's
    /// [`Claims`](crate::Claims) of the incoming request), not from a header a client sent.
    pub fn user_header(mut self, name: HeaderName) -> Self {
        self.config_mut().user_header = Some(name);
        self
    }

    /// Which refused requests are retried (default [`EmptyBodies`]; see [`ReplayBody`]).
    pub fn replay<P>(self, replay: P) -> TokenLayer<P> {
        TokenLayer {
            config: self.config,
            replay,
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        // Settings are given before the layer is cloned: no copy then.
        Arc::make_mut(&mut self.config)
    }
}

impl<S, R: Clone> Layer<S> for TokenLayer<R> {
    type Service = TokenService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenService {
            inner,
            config: Arc::clone(&self.config),
            replay: self.replay.clone(),
        }
    }
}

/// The service of [`TokenLayer`].
#[derive(Debug, Clone)]
pub struct TokenService<S, R = EmptyBodies> {
    inner: S,
    config: Arc<Config>,
    replay: R,
}

impl<S, B, ResB, R> Service<Request<B>> for TokenService<S, R>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    R: ReplayBody<B>,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let source = match self.config.source(&mut request) {
            Ok(source) => source,
            Err(no_user) => return ResponseFuture::failed(no_user.into()),
        };
        let retry = if self.replay.enabled() && self.config.may_retry(request.method()) {
            self.replay
                .replay(request.body())
                .map(|body| copy_head(&request, body))
        } else {
            None
        };
        let config = Arc::clone(&self.config);
        if let Some(token) = source.token_now() {
            config.attach(&mut request, &token);
            // The retry's service is a clone, driven to readiness if it is needed.
            let retry = retry.map(|request| Pending {
                service: self.inner.clone(),
                request,
            });
            let future = self.inner.call(request);
            return ResponseFuture::sent(future, source, config, token, retry);
        }
        // No valid token: wait for the refresh with a clone driven to readiness afterwards;
        // the ready service is given back, so that no capacity is held while waiting.
        let clone = self.inner.clone();
        drop(std::mem::replace(&mut self.inner, clone));
        let pending = Pending {
            service: self.inner.clone(),
            request,
        };
        let retry = retry.map(|request| Pending {
            service: self.inner.clone(),
            request,
        });
        ResponseFuture::waiting(pending, source, config, retry)
    }
}

/// A copy of `request`'s head with `body`, for the retry (made before the token goes on).
fn copy_head<B>(request: &Request<B>, body: B) -> Request<B> {
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::IssuedToken;
    use bytes::Bytes;
    use http_body_util::Empty;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;
    use tokio::time::{Instant, Sleep};
    use tower::ServiceExt;

    /// Ready at once, but its clones only from `ready_at` on; records the `authorization` of
    /// each request.
    struct SlowReady {
        ready: bool,
        ready_at: Instant,
        sleep: Option<Pin<Box<Sleep>>>,
        sent: Arc<Mutex<Vec<String>>>,
    }

    impl Clone for SlowReady {
        fn clone(&self) -> Self {
            Self {
                ready: false,
                ready_at: self.ready_at,
                sleep: None,
                sent: Arc::clone(&self.sent),
            }
        }
    }

    impl Service<Request<Empty<Bytes>>> for SlowReady {
        type Response = Response<Empty<Bytes>>;
        type Error = BoxError;
        type Future = std::future::Ready<Result<Self::Response, BoxError>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            if self.ready {
                return Poll::Ready(Ok(()));
            }
            let ready_at = self.ready_at;
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(ready_at)));
            sleep.as_mut().poll(cx).map(Ok)
        }

        fn call(&mut self, request: Request<Empty<Bytes>>) -> Self::Future {
            let token = request.headers()[http::header::AUTHORIZATION]
                .to_str()
                .unwrap()
                .to_owned();
            self.sent.lock().unwrap().push(token);
            std::future::ready(Ok(Response::new(Empty::new())))
        }
    }

    #[test]
    #[should_panic(expected = "-bin")]
    fn a_binary_metadata_key_is_refused_for_the_token() {
        let source = TokenSource::builder(|| async { Ok(IssuedToken::new("t")) }).build();
        let _ = TokenLayer::new(source).header(HeaderName::from_static("token-bin"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_that_expired_while_the_service_was_not_ready_is_not_sent() {
        let calls = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&calls);
        let source =
            TokenSource::builder(move || {
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    Ok(IssuedToken::new(format!("token-{n}")).expires_in(Duration::from_secs(10)))
                }
            })
            .build();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let inner = SlowReady {
            ready: true,
            ready_at: Instant::now() + Duration::from_secs(20),
            sleep: None,
            sent: Arc::clone(&sent),
        };
        let service = TokenLayer::new(source).layer(inner);
        // No token yet: the request waits for token-1 (the service it was ready with given
        // back), then 20 s for a clone's readiness, by which time token-1 has expired.
        service.oneshot(Request::new(Empty::new())).await.unwrap();
        assert_eq!(*sent.lock().unwrap(), ["Bearer token-2"]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
