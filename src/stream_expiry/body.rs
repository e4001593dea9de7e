use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Response;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::audit::AUDIT_TARGET;
use crate::clock::Clock;

/// What every stream of a [`StreamExpiryLayer`](super::StreamExpiryLayer) shares.
pub(super) struct ExpiryConfig {
    pub(super) clock: Arc<dyn Clock>,
    pub(super) leeway: Duration,
    pub(super) max_tick: Duration,
}

impl fmt::Debug for ExpiryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpiryConfig")
            .field("clock", &self.clock)
            .field("leeway", &self.leeway)
            .field("max_tick", &self.max_tick)
            .finish()
    }
}

/// The token a response is bound to: when it stops being valid, and whose it is.
pub(crate) struct Binding {
    pub(super) deadline: Duration,
    pub(super) subject: Option<Arc<str>>,
    pub(super) config: Arc<ExpiryConfig>,
}

pin_project! {
    /// A response body that ends when the token of its request expires; see the
    /// [module docs](super).
    pub struct ExpiringBody<B> {
        #[pin]
        inner: B,
        bound: Option<Binding>,
        // Armed the first time `inner` is pending; boxed, so that a body that never waits
        // (a unary call, a buffered response) carries one word for it.
        timer: Option<Pin<Box<Sleep>>>,
        grpc: bool,
        done: bool,
    }
}

impl<B: Body> ExpiringBody<B> {
    /// Wraps `response`'s body, bound to `bound` if it streams.
    pub(super) fn wrap(response: Response<B>, bound: Option<Binding>) -> Response<Self> {
        let bound = bound.filter(|_| response.body().size_hint().exact().is_none());
        // How the stream ends matters only for a bound one.
        #[cfg(feature = "tonic")]
        let grpc = bound.is_some() && crate::response::is_grpc(response.headers());
        #[cfg(not(feature = "tonic"))]
        let grpc = false;
        response.map(|inner| Self {
            inner,
            bound,
            timer: None,
            grpc,
            done: false,
        })
    }
}

impl<B> ExpiringBody<B> {
    /// Whether this body is bound to a token's expiry.
    pub fn is_bound(&self) -> bool {
        self.bound.is_some()
    }
}

impl<B> std::fmt::Debug for ExpiringBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpiringBody")
            .field("bound", &self.bound.is_some())
            .field("done", &self.done)
            .finish()
    }
}

/// The end of an expired stream: the gRPC trailers for `TOKEN_EXPIRED`, or nothing.
fn expired<D, E>(grpc: bool, subject: Option<&str>) -> Option<Result<Frame<D>, E>> {
    tracing::info!(
        target: AUDIT_TARGET,
        outcome = "stream_expired",
        code = "TOKEN_EXPIRED",
        subject = subject.map(tracing::field::debug),
        "streaming response ended: its token expired"
    );
    #[cfg(feature = "tonic")]
    if grpc {
        let trailers = crate::response::grpc_trailers(&crate::error::AuthError::expired());
        return Some(Ok(Frame::trailers(trailers)));
    }
    let _ = grpc;
    None
}

impl<B: Body> Body for ExpiringBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let Some(bound) = this.bound.as_ref() else {
            return this.inner.poll_frame(cx);
        };
        let config = &*bound.config;
        let mut now = config.clock.now();
        if now >= bound.deadline {
            *this.done = true;
            *this.timer = None;
            return Poll::Ready(expired(*this.grpc, bound.subject.as_deref()));
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(None) => {
                *this.done = true;
                *this.timer = None;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(frame)) => {
                // Trailers end a body: nothing, the expiry's trailers included, may follow.
                if matches!(&frame, Ok(f) if f.is_trailers()) {
                    *this.done = true;
                    *this.timer = None;
                }
                return Poll::Ready(Some(frame));
            }
            Poll::Pending => {}
        }
        // The service has nothing to send: wake at the deadline (or within `max_tick`, to look
        // at the clock again) if nothing else wakes this body first.
        loop {
            let wait = bound.deadline.saturating_sub(now).min(config.max_tick);
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            now = config.clock.now();
            if now >= bound.deadline {
                *this.done = true;
                *this.timer = None;
                return Poll::Ready(expired(*this.grpc, bound.subject.as_deref()));
            }
            let wait = bound.deadline.saturating_sub(now).min(config.max_tick);
            timer.as_mut().reset(tokio::time::Instant::now() + wait);
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let hint = self.inner.size_hint();
        if self.bound.is_none() {
            return hint;
        }
        // It may end early.
        let mut cut = SizeHint::new();
        if let Some(upper) = hint.upper() {
            cut.set_upper(upper);
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::HeaderMap;
    use http_body_util::{BodyExt, StreamBody};

    use super::*;
    use crate::clock::{Clock, FakeClock};

    fn binding(clock: &FakeClock, deadline: u64) -> Binding {
        Binding {
            deadline: Duration::from_secs(deadline),
            subject: None,
            config: Arc::new(ExpiryConfig {
                clock: clock.clone().into_shared(),
                leeway: Duration::ZERO,
                max_tick: Duration::from_millis(10),
            }),
        }
    }

    #[tokio::test]
    async fn nothing_follows_the_services_own_trailers() {
        let clock = FakeClock::at_unix_secs(1_000);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"tick"))),
            Ok(Frame::trailers(trailers)),
        ];
        let response = Response::builder()
            .header("content-type", "application/grpc")
            .body(StreamBody::new(futures_util::stream::iter(frames)))
            .unwrap();
        let mut body = ExpiringBody::wrap(response, Some(binding(&clock, 1_010))).into_body();
        assert!(body.is_bound());
        let data = body.frame().await.unwrap().unwrap();
        assert!(data.is_data());
        let own = body.frame().await.unwrap().unwrap();
        assert_eq!(own.trailers_ref().unwrap()["grpc-status"], "0");
        // The deadline passes now: the call has already ended with its own status.
        clock.advance(Duration::from_secs(60));
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn a_passed_deadline_ends_the_body_before_any_frame() {
        let clock = FakeClock::at_unix_secs(2_000);
        let frames: Vec<Result<Frame<Bytes>, Infallible>> =
            vec![Ok(Frame::data(Bytes::from_static(b"late")))];
        let response = Response::new(StreamBody::new(futures_util::stream::iter(frames)));
        let mut body = ExpiringBody::wrap(response, Some(binding(&clock, 1_999))).into_body();
        assert!(body.frame().await.is_none(), "no data after the deadline");
    }
}
