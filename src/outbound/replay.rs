//! Which refused requests can be sent again: the rule is about the body.

use http_body::Body;

/// Makes a second copy of a request's body, for the one retry after a refused token; `None`
/// when the body cannot be sent twice (the request is then not retried).
///
/// **The rule.** A request refused with HTTP 401 or gRPC `UNAUTHENTICATED` is taken to have
/// been refused before the server acted on it (authentication comes first), so sending it again
/// repeats nothing, whatever its method: a `POST` is as safe to retry as a `GET`. That is an
/// assumption about the server, true of servers that authenticate in a layer before their
/// handlers (as this crate's do); for one that may act and then answer 401,
/// [`TokenLayer::retry_idempotent_only`](super::TokenLayer::retry_idempotent_only) retries only
/// idempotent methods. What limits the retry otherwise is the
/// body, consumed by the first attempt: the request is retried when its policy can make a copy
/// before the first attempt. [`EmptyBodies`] (the default) copies bodies known to be empty,
/// which covers `GET`, `HEAD` and `DELETE` requests without a body; [`CloneBodies`] copies any
/// body that is `Clone` (`Full<Bytes>`, `String`); a closure `Fn(&B) -> Option<B>` decides as
/// it likes; [`NoRetry`] never retries (and makes no copy). A gRPC call's body is a stream of
/// messages that tonic does not let one copy: a call refused with `UNAUTHENTICATED` is not
/// retried, but its refusal still replaces the token, so the next call carries a new one.
///
/// The refused response is dropped unread when the retry goes out (it is handed back only when
/// no new token comes): over HTTP/1 its connection is then closed rather than reused, one new
/// connection per refusal.
pub trait ReplayBody<B>: Clone + Send + Sync + 'static {
    /// A copy of `body`, made before it is sent, or `None`.
    fn replay(&self, body: &B) -> Option<B>;

    /// Whether this policy ever copies (no copy of the request's head is made otherwise).
    fn enabled(&self) -> bool {
        true
    }
}

/// Retries requests whose body is known to be empty (the default; see [`ReplayBody`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyBodies;

impl<B: Body + Default> ReplayBody<B> for EmptyBodies {
    fn replay(&self, body: &B) -> Option<B> {
        body.is_end_stream().then(B::default)
    }
}

/// Retries requests whose body is `Clone`, by cloning it (see [`ReplayBody`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneBodies;

impl<B: Clone> ReplayBody<B> for CloneBodies {
    fn replay(&self, body: &B) -> Option<B> {
        Some(body.clone())
    }
}

/// Never retries: a refused token is still replaced for the next request (see [`ReplayBody`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRetry;

impl<B> ReplayBody<B> for NoRetry {
    fn replay(&self, _: &B) -> Option<B> {
        None
    }

    fn enabled(&self) -> bool {
        false
    }
}

impl<B, F> ReplayBody<B> for F
where
    F: Fn(&B) -> Option<B> + Clone + Send + Sync + 'static,
{
    fn replay(&self, body: &B) -> Option<B> {
        self(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{Empty, Full};

    #[test]
    fn empty_bodies_are_replayed_and_others_not_by_default() {
        assert!(EmptyBodies.replay(&Empty::<Bytes>::new()).is_some());
        assert!(EmptyBodies.replay(&Full::new(Bytes::new())).is_some());
        assert!(EmptyBodies.replay(&Full::new(Bytes::from("x"))).is_none());
        assert!(CloneBodies.replay(&Full::new(Bytes::from("x"))).is_some());
        assert!(ReplayBody::<Empty<Bytes>>::replay(&NoRetry, &Empty::new()).is_none());
        let closure = |body: &String| (body.len() < 4).then(|| body.clone());
        assert_eq!(closure.replay(&"abc".to_owned()).as_deref(), Some("abc"));
    }
}
