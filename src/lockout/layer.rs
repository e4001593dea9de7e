use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{LockoutPolicy, LockoutStore, MemoryLockoutStore};
use crate::client_ip::{ClientIpResolver, IpKey};
use crate::clock::{Clock, SystemClock};
use crate::error::{AuthError, ConfigError, ErrorCode};
use crate::response::Responder;

/// What the [`on_lock`](LockoutBuilder::on_lock) hook is told when an address becomes locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockEvent {
    /// The locked address (IPv6 grouped by prefix).
    pub ip: IpKey,
    /// Failures that led to the lock.
    pub failures: u32,
    /// How long the lock lasts.
    pub lock_duration: Duration,
    /// How many lockouts this address has had, this one included.
    pub lockouts: u32,
}

type LockHook = Box<dyn Fn(&LockEvent) + Send + Sync>;

pub(crate) struct LockoutConfig<St> {
    pub(crate) store: St,
    pub(crate) policy: LockoutPolicy,
    pub(crate) resolver: ClientIpResolver,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) responder: Arc<dyn Responder>,
    pub(crate) on_lock: Option<LockHook>,
    /// Set once the "no peer address" warning has been given.
    pub(crate) warned_no_peer: std::sync::atomic::AtomicBool,
}

impl<St: fmt::Debug> fmt::Debug for LockoutConfig<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockoutConfig")
            .field("store", &self.store)
            .field("policy", &self.policy)
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}

impl<St> LockoutConfig<St> {
    /// Refuses `req` from a locked address.
    pub(crate) fn reject_locked<B>(
        &self,
        req: http::Request<B>,
        retry_after: Duration,
    ) -> http::Response<bytes::Bytes> {
        crate::response::reject(&*self.responder, req, &locked_out(retry_after), None)
    }

    /// The refusal of a request whose address could not be checked (a fail-closed store
    /// failed): `AUTH_FAILED`, 503.
    pub(crate) fn reject_unavailable<B>(
        &self,
        req: http::Request<B>,
    ) -> http::Response<bytes::Bytes> {
        let error = AuthError::unavailable("the lockout store is unavailable; try again shortly");
        crate::response::reject(&*self.responder, req, &error, None)
    }
}

/// The rejection of a locked address.
fn locked_out(retry_after: Duration) -> AuthError {
    AuthError::new(
        ErrorCode::LockedOut,
        "too many failed attempts from this address; try again later",
    )
    .with_retry_after(retry_after)
}

crate::scaffold::middleware! {
    /// A [`Layer`](tower_layer::Layer) that locks out client addresses after repeated failed
    /// attempts; see the [module docs](crate::lockout).
    pub struct LockoutLayer<St = MemoryLockoutStore>;
    /// The service produced by [`LockoutLayer`].
    pub struct Lockout;
    config: LockoutConfig;
}

impl LockoutLayer<MemoryLockoutStore> {
    /// Starts a configuration with an in-memory store sized by `policy`.
    pub fn builder(policy: LockoutPolicy) -> LockoutBuilder<MemoryLockoutStore> {
        let store = MemoryLockoutStore::new(policy.capacity);
        LockoutBuilder {
            store,
            policy,
            resolver: ClientIpResolver::new(),
            clock: Arc::new(SystemClock),
            responder: crate::response::default_responder(),
            on_lock: None,
        }
    }
}

impl<St> LockoutLayer<St> {
    /// The store, e.g. to read how many addresses it tracks.
    pub fn store(&self) -> &St {
        &self.config.store
    }

    /// The policy.
    pub fn policy(&self) -> &LockoutPolicy {
        &self.config.policy
    }
}

/// Configuration of a [`LockoutLayer`].
pub struct LockoutBuilder<St> {
    store: St,
    policy: LockoutPolicy,
    resolver: ClientIpResolver,
    clock: Arc<dyn Clock>,
    responder: Arc<dyn Responder>,
    on_lock: Option<LockHook>,
}

impl<St: fmt::Debug> fmt::Debug for LockoutBuilder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockoutBuilder")
            .field("store", &self.store)
            .field("policy", &self.policy)
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}

impl<St: LockoutStore> LockoutBuilder<St> {
    /// Replaces the store (for example with a shared one).
    pub fn store<St2: LockoutStore>(self, store: St2) -> LockoutBuilder<St2> {
        LockoutBuilder {
            store,
            policy: self.policy,
            resolver: self.resolver,
            clock: self.clock,
            responder: self.responder,
            on_lock: self.on_lock,
        }
    }

    /// How to find the client address (default: the peer address only).
    pub fn resolver(mut self, resolver: ClientIpResolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// The clock (default: the system clock); see [`Clock`] for sharing one.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = clock.into_shared();
        self
    }

    /// How `LOCKED_OUT` rejections are rendered (default [`default_responder`](crate::response::default_responder)); see
    /// [`response`](crate::response). Give every layer of a stack the same one.
    pub fn responder(mut self, responder: impl Responder) -> Self {
        self.responder = Arc::new(responder);
        self
    }

    /// Runs once each time an address becomes locked (e.g. to raise a security alert). Keep it
    /// quick: it runs on the request's task.
    pub fn on_lock(mut self, hook: impl Fn(&LockEvent) + Send + Sync + 'static) -> Self {
        self.on_lock = Some(Box::new(hook));
        self
    }

    /// Checks the policy and builds the layer.
    ///
    /// # Errors
    /// When the policy is invalid (zero window, duration or capacity; an escalation cap below
    /// the lock duration).
    pub fn build(self) -> Result<LockoutLayer<St>, ConfigError> {
        self.policy.validate()?;
        Ok(LockoutLayer::from_config(LockoutConfig {
            store: self.store,
            policy: self.policy,
            resolver: self.resolver,
            clock: self.clock,
            responder: self.responder,
            on_lock: self.on_lock,
            warned_no_peer: std::sync::atomic::AtomicBool::new(false),
        }))
    }
}
