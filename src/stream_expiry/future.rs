use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use pin_project_lite::pin_project;

use super::body::{Binding, ExpiringBody};

pin_project! {
    /// The response future of [`StreamExpiry`](super::StreamExpiry).
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        bound: Option<Binding>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(future: F, bound: Option<Binding>) -> Self {
        Self { future, bound }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("bound", &self.bound.is_some())
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<ExpiringBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.future.poll(cx))?;
        let bound = this.bound.take();
        Poll::Ready(Ok(ExpiringBody::wrap(response, bound)))
    }
}
