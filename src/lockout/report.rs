//! Failures that happen after the request: a WebSocket re-authentication refused on a live
//! socket is a failed attempt of the socket's address, like a refused HTTP request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use std::time::Duration;

use super::future::{record_outcome, store_failed};
use super::layer::LockoutConfig;
use super::{LockStatus, LockoutStore};
use crate::client_ip::IpKey;
use crate::error::ErrorCode;

type Recording = Pin<Box<dyn Future<Output = ()> + Send>>;
type Checking = Pin<Box<dyn Future<Output = Option<Duration>> + Send>>;

/// Where a [`FailureReport`] records.
trait Recorder: Send + Sync {
    fn record(self: Arc<Self>, key: IpKey, code: ErrorCode) -> Option<Recording>;
    fn check(self: Arc<Self>, key: IpKey) -> Checking;
}

impl<St: LockoutStore> Recorder for LockoutConfig<St> {
    fn check(self: Arc<Self>, key: IpKey) -> Checking {
        let future = self.store.check(key, self.clock.now());
        Box::pin(async move {
            match future.await {
                Ok(LockStatus::Locked { retry_after }) => Some(retry_after),
                Ok(LockStatus::Open) => None,
                Err(e) => {
                    store_failed(&e, "check");
                    // The re-authentication goes on to validation, even with a store that fails
                    // closed: its token is still verified, and closing every socket that
                    // re-authenticates during a blip of the store (as "locked out") would
                    // punish clients for the store. Only the address's lock went unread.
                    None
                }
            }
        })
    }

    fn record(self: Arc<Self>, key: IpKey, code: ErrorCode) -> Option<Recording> {
        if !self.policy.counts(code) {
            return None;
        }
        let future = self
            .store
            .record_failure(key, self.clock.now(), &self.policy);
        Some(Box::pin(async move {
            match future.await {
                Ok(outcome) => record_outcome(&outcome, key, &self),
                Err(e) => store_failed(&e, "record_failure"),
            }
        }))
    }
}

/// The lockout's handle for failures that come after the request, put by the
/// [`LockoutLayer`](super::LockoutLayer) into the extensions of every WebSocket upgrade request
/// it checks (not on other requests, which end with their response).
///
/// A live socket's re-authentication is such a failure: [`WsSessions`](crate::ws::WsSessions)
/// takes the handle at the upgrade and reports each refused re-authentication through it, so
/// that guesses on an open socket count toward the same address, in the same store, as guesses
/// over HTTP. Anything else that authenticates later in a connection's life can do the same.
#[derive(Clone)]
pub struct FailureReport {
    key: IpKey,
    recorder: Arc<dyn Recorder>,
}

impl fmt::Debug for FailureReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureReport")
            .field("client", &self.key)
            .finish_non_exhaustive()
    }
}

impl FailureReport {
    pub(crate) fn new<St: LockoutStore>(key: IpKey, shared: Arc<LockoutConfig<St>>) -> Self {
        Self {
            key,
            recorder: shared,
        }
    }

    /// The client address the failures count toward (IPv6 grouped by prefix).
    pub fn client(&self) -> IpKey {
        self.key
    }

    /// Whether the client address is locked now, and for how long. A locked address is refused
    /// on every protocol, so a live socket's re-authentication is refused too. When the store
    /// cannot answer (even one that fails closed), the address counts as not locked: the
    /// re-authentication's token is verified all the same.
    pub async fn locked(&self) -> Option<Duration> {
        Arc::clone(&self.recorder).check(self.key).await
    }

    /// Counts a refusal with `code` as a failed attempt of the client address, if the lockout
    /// policy counts that code (by default `INVALID_TOKEN` and `TOKEN_EXPIRED`); locks the
    /// address when the policy says so, with the usual audit event and `on_lock` hook.
    pub async fn report(&self, code: ErrorCode) {
        if let Some(recording) = Arc::clone(&self.recorder).record(self.key, code) {
            recording.await;
        }
    }
}
