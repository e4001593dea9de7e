//! Shared state on Redis (feature `redis`): the stores that let a fleet of instances act as
//! one. Valkey works the same; every script touches one key, so each runs in one cluster slot.
//!
//! - [`RedisLockoutStore`]: failures, locks and escalation history per address;
//! - [`RedisRateLimitStore`]: per-user quotas (GCRA, by Redis's clock), for requests, gRPC
//!   calls and WebSocket messages alike (give it to `UserRateLimitLayer` and
//!   `MessageLimiter` builders' `.store(…)`).
//!
//! [`RedisClient`] holds one managed, multiplexed connection (the `redis` crate's
//! `ConnectionManager`: reconnects by itself, no pool) created lazily, so an application starts
//! while Redis is down. Every call is bounded by a timeout (250 ms by default). When Redis is
//! slow or down, a store falls back to its in-memory counterpart for the duration of the
//! outage, so requests keep being checked, per instance (fail-open with a fallback).
//!
//! A `WARN` event says when an outage starts and an `INFO` when Redis answers again, once each,
//! never per request. During an outage one call a second goes to Redis and the others fall
//! back at once, so requests do not each wait for the timeout; recovery needs no restart: the
//! first such call that Redis answers ends the outage.
//!
//! Keys are `<prefix>:<kind>:{<id>}` (prefix `tjg` by default); the `{…}` hash tag is the
//! identity the key is about, so the keys of one address or user share a slot.

mod fanout;
mod lockout;
mod rate_limit;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use fanout::{FanoutError, FleetStats, RedisFanout};
pub use lockout::{RedisFuture, RedisLockoutStore};
pub use rate_limit::RedisRateLimitStore;

/// The default bound on one Redis call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// Why a Redis call failed (no credentials or URL in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisError {
    kind: &'static str,
}

impl RedisError {
    const TIMEOUT: Self = Self { kind: "timed out" };
    const FAILED: Self = Self {
        kind: "failed or unreachable",
    };
    const BAD_REPLY: Self = Self {
        kind: "answered with an unexpected reply",
    };
    const SKIPPED: Self = Self {
        kind: "was skipped: Redis is down, and is tried once a second",
    };
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the Redis call {}", self.kind)
    }
}

impl std::error::Error for RedisError {}

/// The configuration could not be used: the URL (not echoed, it may hold a password) or the
/// connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfigError(&'static str);

impl fmt::Display for RedisConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for RedisConfigError {}

struct Inner {
    /// For the subscriber's own connection.
    client: ::redis::Client,
    connection: ConnectionManager,
    timeout: Duration,
    prefix: Box<str>,
    /// An outage is in progress (its `WARN` was logged).
    down: AtomicBool,
    /// When a call last went to Redis during an outage (ms since `started`).
    last_try: AtomicU64,
    started: std::time::Instant,
}

/// During an outage, one call a second goes to Redis (to notice it is back); the others fall
/// back at once instead of each waiting for the timeout.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// A connection to Redis shared by the stores; cheap to clone.
#[derive(Clone)]
pub struct RedisClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("RedisClient")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("down", &self.inner.down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisClient`].
pub struct RedisClientBuilder {
    url: String,
    timeout: Duration,
    prefix: String,
}

impl fmt::Debug for RedisClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClientBuilder")
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisClient {
    /// A client of the server at `url`: `redis://[[user]:password@]host[:port][/db]`. (TLS,
    /// `rediss://`, needs a TLS feature of the `redis` crate, which this crate does not turn
    /// on yet.)
    pub fn builder(url: impl Into<String>) -> RedisClientBuilder {
        RedisClientBuilder {
            url: url.into(),
            timeout: DEFAULT_TIMEOUT,
            prefix: "tjg".to_owned(),
        }
    }

    /// `<prefix>:<kind>:{<id>}`.
    pub(crate) fn key(&self, kind: &str, id: impl fmt::Display) -> String {
        format!("{}:{kind}:{{{id}}}", self.inner.prefix)
    }

    /// `<prefix>:<kind>`, for keys and channels that are not about one identity.
    pub(crate) fn plain_key(&self, kind: &str) -> String {
        format!("{}:{kind}", self.inner.prefix)
    }

    /// Runs `f` on the shared connection within the timeout, and notes an outage.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = ::redis::RedisResult<T>>,
    {
        if self.skip() {
            return Err(RedisError::SKIPPED);
        }
        let result =
            tokio::time::timeout(self.inner.timeout, f(self.inner.connection.clone())).await;
        let outcome = match result {
            Err(_) => Err(RedisError::TIMEOUT),
            Ok(Err(_)) => Err(RedisError::FAILED),
            Ok(Ok(value)) => Ok(value),
        };
        self.note(outcome.as_ref().err());
        outcome
    }

    /// `PUBLISH channel payload`.
    pub(crate) async fn publish(&self, channel: &str, payload: &str) -> Result<(), RedisError> {
        self.run(|mut c| async move {
            ::redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<i64>(&mut c)
                .await
                .map(|_| ())
        })
        .await
    }

    /// Records `subject` revoked at `at` in `hash` and publishes it on `channel`, atomically.
    pub(crate) async fn publish_revocation(
        &self,
        hash: &str,
        channel: &str,
        subject: &str,
        at: u64,
    ) -> Result<(), RedisError> {
        let message = format!("{at} {subject}");
        self.run(|mut c| async move {
            ::redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(hash)
                .arg(subject)
                .arg(at)
                .ignore()
                .cmd("PUBLISH")
                .arg(channel)
                .arg(message)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// `HGETALL hash`.
    pub(crate) async fn hash_all_raw(
        &self,
        hash: &str,
    ) -> Result<Vec<(String, String)>, RedisError> {
        self.run(|mut c| async move {
            ::redis::cmd("HGETALL")
                .arg(hash)
                .query_async::<Vec<(String, String)>>(&mut c)
                .await
        })
        .await
    }

    /// `HGETALL hash`, values as numbers (others skipped).
    pub(crate) async fn hash_all(&self, hash: &str) -> Result<Vec<(String, u64)>, RedisError> {
        self.hash_all_raw(hash).await.map(|all| {
            all.into_iter()
                .filter_map(|(k, v)| v.parse().ok().map(|v| (k, v)))
                .collect()
        })
    }

    /// `HSET hash field value`.
    pub(crate) async fn hash_set(
        &self,
        hash: &str,
        field: &str,
        value: &str,
    ) -> Result<(), RedisError> {
        self.run(|mut c| async move {
            ::redis::cmd("HSET")
                .arg(hash)
                .arg(field)
                .arg(value)
                .query_async::<i64>(&mut c)
                .await
                .map(|_| ())
        })
        .await
    }

    /// `HDEL hash fields…` (nothing when `fields` is empty).
    pub(crate) async fn hash_delete(
        &self,
        hash: &str,
        fields: &[String],
    ) -> Result<(), RedisError> {
        if fields.is_empty() {
            return Ok(());
        }
        self.run(|mut c| async move {
            ::redis::cmd("HDEL")
                .arg(hash)
                .arg(fields)
                .query_async::<i64>(&mut c)
                .await
                .map(|_| ())
        })
        .await
    }

    /// A connection of its own for pub/sub, within the timeout.
    pub(crate) async fn pubsub(&self) -> Result<::redis::aio::PubSub, RedisError> {
        match tokio::time::timeout(self.inner.timeout, self.inner.client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(_)) => Err(RedisError::FAILED),
            Err(_) => Err(RedisError::TIMEOUT),
        }
    }

    /// Runs `script` on `key` with `args`, within the timeout; `EVALSHA`, loading the script
    /// on `NOSCRIPT`. Logs the start and the end of an outage.
    pub(crate) async fn eval<T: ::redis::FromRedisValue>(
        &self,
        script: &::redis::Script,
        key: &str,
        args: &[u64],
    ) -> Result<T, RedisError> {
        if self.skip() {
            return Err(RedisError::SKIPPED);
        }
        let mut connection = self.inner.connection.clone();
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(*arg);
        }
        let result = tokio::time::timeout(
            self.inner.timeout,
            invocation.invoke_async::<T>(&mut connection),
        )
        .await;
        let outcome = match result {
            Err(_) => Err(RedisError::TIMEOUT),
            Ok(Err(e)) if e.kind() == ::redis::ErrorKind::UnexpectedReturnType => {
                Err(RedisError::BAD_REPLY)
            }
            Ok(Err(_)) => Err(RedisError::FAILED),
            Ok(Ok(value)) => Ok(value),
        };
        self.note(outcome.as_ref().err());
        outcome
    }

    /// Whether to skip Redis for this call: during an outage, all but one call a second.
    fn skip(&self) -> bool {
        let inner = &self.inner;
        if !inner.down.load(Ordering::Acquire) {
            return false;
        }
        let now = u64::try_from(inner.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = inner.last_try.load(Ordering::Acquire);
        let every = u64::try_from(PROBE_EVERY.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) < every {
            return true;
        }
        // One caller wins the probe; the others skip.
        inner
            .last_try
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    }

    /// Logs an outage's start (`WARN`) and end (`INFO`), once each.
    fn note(&self, error: Option<&RedisError>) {
        let down = &self.inner.down;
        match error {
            Some(e) => {
                if !down.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        target: crate::audit::AUDIT_TARGET,
                        error = %e,
                        "Redis is not answering: shared state is unavailable until it does"
                    );
                }
            }
            None => {
                if down.swap(false, Ordering::AcqRel) {
                    tracing::info!(
                        target: crate::audit::AUDIT_TARGET,
                        "Redis answers again: shared state resumed"
                    );
                }
            }
        }
    }
}

impl RedisClientBuilder {
    /// The bound on each call (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key prefix (default `tjg`), to share one Redis between applications.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The client. Connects lazily: Redis need not be up yet. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// A URL the `redis` crate does not accept (`rediss://` included), an empty prefix, a
    /// zero timeout, or no tokio runtime to run in.
    pub fn build(self) -> Result<RedisClient, RedisConfigError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisConfigError(
                "a Redis client is built inside a tokio runtime (its connection runs there)",
            ));
        }
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return Err(RedisConfigError(
                "the Redis key prefix must be non-empty and hold no braces",
            ));
        }
        if self.timeout.is_zero() {
            return Err(RedisConfigError("the Redis timeout must not be zero"));
        }
        let client = ::redis::Client::open(self.url.as_str())
            .map_err(|_| RedisConfigError("the Redis URL is not usable"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|_| RedisConfigError("the Redis connection could not be set up"))?;
        Ok(RedisClient {
            inner: Arc::new(Inner {
                client,
                connection,
                timeout: self.timeout,
                prefix: self.prefix.into_boxed_str(),
                down: AtomicBool::new(false),
                last_try: AtomicU64::new(0),
                started: std::time::Instant::now(),
            }),
        })
    }
}
