//! The response body of the crate's layers: the inner service's body, or a rejection's bytes.
//!
//! Wrapping the body (as `tower-http`'s `limit` does) lets a layer answer with JSON whatever the
//! inner body type is: axum's, hyper's `Incoming`, tonic's, or your own.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// Either the inner service's body or a rejection produced by a layer of this crate.
    pub struct GuardBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        // Boxed, so that `GuardBody<B>` is no bigger than a pointer-sized `B` needs: `Bytes` is
        // four words, and every move of a response on the accepted path (the hot one) paid
        // for them. The rejection path pays one allocation instead.
        Rejection { data: Option<Box<Bytes>> },
    }
}

impl<B> GuardBody<B> {
    /// Wraps the inner service's body.
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A complete body made of `data`.
    pub(crate) fn rejection(data: Bytes) -> Self {
        Self {
            kind: Kind::Rejection {
                data: (!data.is_empty()).then(|| Box::new(data)),
            },
        }
    }

    /// Whether this body is a rejection produced by this crate.
    pub fn is_rejection(&self) -> bool {
        matches!(self.kind, Kind::Rejection { .. })
    }
}

impl<B> std::fmt::Debug for GuardBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("GuardBody::Inner"),
            Kind::Rejection { data } => f
                .debug_struct("GuardBody::Rejection")
                .field("len", &data.as_ref().map_or(0, |d| d.len()))
                .finish(),
        }
    }
}

impl<B> Body for GuardBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(*d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_a_pointer_sized_body_costs_one_word_at_most() {
        type Inner = http_body_util::combinators::UnsyncBoxBody<Bytes, std::convert::Infallible>;
        assert!(std::mem::size_of::<GuardBody<Inner>>() <= std::mem::size_of::<Inner>() + 8);
    }
}
