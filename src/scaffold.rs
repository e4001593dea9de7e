//! What the crate's middlewares share, written once: the layer holding its configuration
//! behind an `Arc`, the service holding the inner service beside the same `Arc` (with
//! `Clone`, `Debug` and the usual accessors), and the rejected state of a response future.
//! Private, as tower-http keeps its own scaffolding.

use bytes::Bytes;
use http::Response;

use crate::body::GuardBody;

/// Declares a middleware's `Layer` and `Service` types over its configuration type.
///
/// The configuration is generic over one parameter and implements `Debug` (the layer's
/// `Debug` shows it); the service's fields are visible to the declaring module's parent, whose
/// `service.rs` implements `tower_service::Service` for it.
macro_rules! middleware {
    (
        $(#[$layer_meta:meta])*
        pub struct $Layer:ident<$P:ident $(= $Default:ty)?>;
        $(#[$service_meta:meta])*
        pub struct $Service:ident;
        config: $Config:ident;
    ) => {
        $(#[$layer_meta])*
        pub struct $Layer<$P $(= $Default)?> {
            pub(super) config: ::std::sync::Arc<$Config<$P>>,
        }

        impl<$P> $Layer<$P> {
            pub(crate) fn from_config(config: $Config<$P>) -> Self {
                Self {
                    config: ::std::sync::Arc::new(config),
                }
            }
        }

        impl<$P> ::std::clone::Clone for $Layer<$P> {
            fn clone(&self) -> Self {
                Self {
                    config: ::std::sync::Arc::clone(&self.config),
                }
            }
        }

        impl<$P> ::std::fmt::Debug for $Layer<$P>
        where
            $Config<$P>: ::std::fmt::Debug,
        {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_tuple(stringify!($Layer)).field(&self.config).finish()
            }
        }

        impl<S, $P> ::tower_layer::Layer<S> for $Layer<$P> {
            type Service = $Service<S, $P>;

            fn layer(&self, inner: S) -> Self::Service {
                $Service {
                    inner,
                    config: ::std::sync::Arc::clone(&self.config),
                }
            }
        }

        $(#[$service_meta])*
        pub struct $Service<S, $P> {
            pub(super) inner: S,
            pub(super) config: ::std::sync::Arc<$Config<$P>>,
        }

        impl<S, $P> $Service<S, $P> {
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

            /// Takes the service that `poll_ready` made ready, leaving a fresh clone behind (to
            /// be driven to readiness by the next `poll_ready`), for a future that calls it
            /// later.
            #[allow(dead_code)]
            pub(crate) fn take_ready(&mut self) -> S
            where
                S: Clone,
            {
                let clone = self.inner.clone();
                ::std::mem::replace(&mut self.inner, clone)
            }
        }

        impl<S: ::std::clone::Clone, $P> ::std::clone::Clone for $Service<S, $P> {
            fn clone(&self) -> Self {
                Self {
                    inner: self.inner.clone(),
                    config: ::std::sync::Arc::clone(&self.config),
                }
            }
        }

        impl<S: ::std::fmt::Debug, $P> ::std::fmt::Debug for $Service<S, $P> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($Service))
                    .field("inner", &self.inner)
                    .finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use middleware;

/// The rejected state of a response future: the rejection, held inline. Boxing it would keep
/// the future a few words smaller, but cost every rejection an allocation and a free (about
/// 500 instructions a rejection, measured with callgrind; scanners and misconfigured clients
/// take this path), while the accepted path's futures are as large anyway.
pub(crate) struct Rejected(Option<Response<Bytes>>);

impl Rejected {
    pub(crate) fn new(response: Response<Bytes>) -> Self {
        Self(Some(response))
    }

    /// The response, as the layer's response type.
    ///
    /// # Panics
    /// When called twice: a future polled after completion.
    pub(crate) fn take<B>(&mut self) -> Response<GuardBody<B>> {
        let response = self
            .0
            .take()
            .expect("response future polled after completion");
        response.map(GuardBody::rejection)
    }
}
