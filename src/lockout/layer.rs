use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::{LockoutPolicy, LockoutStore, MemoryStore};
use crate::client_ip::{ClientIpResolver, IpKey};
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::response::{JsonResponder, Responder};

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

impl<St> Shared<St> {
    /// The response for a locked request: a 4029 close frame for WebSocket upgrades in
    /// close-frame mode, the responder's answer otherwise.
    pub(crate) fn rejection<B>(
        &self,
        req: &mut http::Request<B>,
        error: &crate::error::AuthError,
    ) -> http::Response<bytes::Bytes> {
        // The lockout does not know a custom token prefix; application protocols exclude the
        // default one and any long name, so a token is never echoed either way.
        crate::response::reject_request(
            &*self.responder,
            req,
            error,
            self.close_frames.then_some(None),
        )
    }
}

pub(crate) struct Shared<St> {
    pub(crate) store: St,
    pub(crate) policy: LockoutPolicy,
    pub(crate) resolver: ClientIpResolver,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) responder: Box<dyn Responder>,
    pub(crate) on_lock: Option<LockHook>,
    /// Refuse locked WebSocket upgrades with a 4029 close frame.
    pub(crate) close_frames: bool,
    /// Set once the "no peer address" warning has been given.
    pub(crate) warned_no_peer: std::sync::atomic::AtomicBool,
}

/// A [`Layer`] that locks out client addresses after repeated failed attempts; see the
/// [module docs](crate::lockout).
pub struct LockoutLayer<St = MemoryStore> {
    shared: Arc<Shared<St>>,
}

impl<St> Clone for LockoutLayer<St> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for LockoutLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockoutLayer")
            .field("store", &self.shared.store)
            .field("policy", &self.shared.policy)
            .field("resolver", &self.shared.resolver)
            .finish_non_exhaustive()
    }
}

impl LockoutLayer<MemoryStore> {
    /// Starts a configuration with an in-memory store sized by `policy`.
    pub fn builder(policy: LockoutPolicy) -> LockoutBuilder<MemoryStore> {
        let store = MemoryStore::new(policy.capacity);
        LockoutBuilder {
            store,
            policy,
            resolver: ClientIpResolver::new(),
            clock: Arc::new(SystemClock),
            responder: Box::new(JsonResponder::new()),
            on_lock: None,
            close_frames: false,
        }
    }
}

impl<St> LockoutLayer<St> {
    /// The store, e.g. to read how many addresses it tracks.
    pub fn store(&self) -> &St {
        &self.shared.store
    }

    /// The policy.
    pub fn policy(&self) -> &LockoutPolicy {
        &self.shared.policy
    }
}

impl<S, St> Layer<S> for LockoutLayer<St> {
    type Service = super::Lockout<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        super::Lockout::from_parts(inner, Arc::clone(&self.shared))
    }
}

/// Configuration of a [`LockoutLayer`].
pub struct LockoutBuilder<St> {
    store: St,
    policy: LockoutPolicy,
    resolver: ClientIpResolver,
    clock: Arc<dyn Clock>,
    responder: Box<dyn Responder>,
    on_lock: Option<LockHook>,
    close_frames: bool,
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
            close_frames: self.close_frames,
        }
    }

    /// How to find the client address (default: the peer address only).
    pub fn resolver(mut self, resolver: ClientIpResolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The clock, already shared.
    pub fn shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the [`JsonResponder`] for `LOCKED_OUT` responses.
    pub fn responder(mut self, responder: impl Responder) -> Self {
        self.responder = Box::new(responder);
        self
    }

    /// Runs once each time an address becomes locked (e.g. to raise a security alert). Keep it
    /// quick: it runs on the request's task.
    pub fn on_lock(mut self, hook: impl Fn(&LockEvent) + Send + Sync + 'static) -> Self {
        self.on_lock = Some(Box::new(hook));
        self
    }

    /// Refuses a locked address's WebSocket upgrades (HTTP/1.1) by completing them and closing
    /// at once with 4029, for browsers. The subprotocol answered is one the client offered that
    /// does not start with the default token prefix.
    #[cfg(feature = "websocket")]
    pub fn websocket_close_frames(mut self) -> Self {
        self.close_frames = true;
        self
    }

    /// Checks the policy and builds the layer.
    ///
    /// # Errors
    /// When the policy is invalid (zero window, duration or capacity; an escalation cap below
    /// the lock duration).
    pub fn build(self) -> Result<LockoutLayer<St>, ConfigError> {
        self.policy.validate()?;
        Ok(LockoutLayer {
            shared: Arc::new(Shared {
                store: self.store,
                policy: self.policy,
                resolver: self.resolver,
                clock: self.clock,
                responder: self.responder,
                on_lock: self.on_lock,
                close_frames: self.close_frames,
                warned_no_peer: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }
}
