use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::DEFAULT_MAX_TICK;
use super::body::{Binding, ExpiryConfig};
use super::future::ResponseFuture;
use crate::clock::Clock;
use crate::context::AuthContext;
use crate::error::ConfigError;
use crate::validate::Validator;

/// Ends authenticated streaming responses when their token expires; see the
/// [module docs](super).
#[derive(Clone, Debug)]
pub struct StreamExpiryLayer {
    config: Arc<ExpiryConfig>,
}

impl StreamExpiryLayer {
    /// With the validator's clock and leeway, and [`DEFAULT_MAX_TICK`].
    pub fn new<C>(validator: &Validator<C>) -> Self
    where
        C: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        Self {
            config: Arc::new(ExpiryConfig {
                clock: Arc::clone(validator.clock()),
                leeway: validator.leeway(),
                max_tick: DEFAULT_MAX_TICK,
            }),
        }
    }

    /// A builder starting from the validator's clock and leeway.
    pub fn builder<C>(validator: &Validator<C>) -> StreamExpiryBuilder
    where
        C: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        StreamExpiryBuilder {
            clock: Arc::clone(validator.clock()),
            leeway: validator.leeway(),
            max_tick: DEFAULT_MAX_TICK,
        }
    }
}

/// Builds a [`StreamExpiryLayer`].
#[derive(Debug)]
pub struct StreamExpiryBuilder {
    clock: Arc<dyn Clock>,
    leeway: Duration,
    max_tick: Duration,
}

impl StreamExpiryBuilder {
    /// Where time comes from (default: the validator's clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = clock.into_shared();
        self
    }

    /// How long after `exp` a stream may go on (default: the validator's leeway).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How long a waiting stream sleeps at most before it reads the clock again (default
    /// [`DEFAULT_MAX_TICK`]; tests that move a fake clock use a few milliseconds).
    pub fn max_tick(mut self, max_tick: Duration) -> Self {
        self.max_tick = max_tick;
        self
    }

    /// The layer; fails when `max_tick` is zero.
    pub fn build(self) -> Result<StreamExpiryLayer, ConfigError> {
        if self.max_tick.is_zero() {
            return Err(ConfigError::new("stream expiry: max_tick must not be zero"));
        }
        Ok(StreamExpiryLayer {
            config: Arc::new(ExpiryConfig {
                clock: self.clock,
                leeway: self.leeway,
                max_tick: self.max_tick,
            }),
        })
    }
}

impl<S> Layer<S> for StreamExpiryLayer {
    type Service = StreamExpiry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StreamExpiry {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service of [`StreamExpiryLayer`].
#[derive(Clone, Debug)]
pub struct StreamExpiry<S> {
    inner: S,
    config: Arc<ExpiryConfig>,
}

impl<S> StreamExpiry<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the middleware, returning the wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for StreamExpiry<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body,
{
    type Response = Response<super::ExpiringBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let bound = req.extensions().get::<AuthContext>().and_then(|ctx| {
            let exp = ctx.expires_at()?;
            Some(Binding {
                deadline: Duration::from_secs(exp).saturating_add(self.config.leeway),
                subject: ctx.subject_arc().cloned(),
                config: Arc::clone(&self.config),
            })
        });
        ResponseFuture::new(self.inner.call(req), bound)
    }
}
