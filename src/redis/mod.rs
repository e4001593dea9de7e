//! Shared state on Redis (feature `redis`): the stores that let a fleet of instances act as
//! one. Valkey works the same; every script touches one key, so each runs in one cluster slot.
//!
//! - [`RedisLockoutStore`]: failures, locks and escalation history per address;
//! - [`RedisRateLimitStore`]: per-user quotas (GCRA, by Redis's clock), for requests, gRPC
//!   calls and WebSocket messages alike (give it to `UserRateLimitLayer` and
//!   `MessageLimiter` builders' `.store(…)`).
//!
//! [`RedisClient`] holds one managed, multiplexed connection, created lazily so an application
//! starts while Redis is down: the `redis` crate's `ConnectionManager` for one server
//! ([`RedisClient::builder`]), its cluster connection for a Redis Cluster
//! ([`RedisClient::cluster`]); both reconnect by themselves, and neither needs a pool. Every
//! call is bounded by a timeout (250 ms by default). When Redis is
//! slow or down, what happens is the client's [`OutagePolicy`]:
//!
//! - [`OutagePolicy::FailOpen`] (the default): each store falls back to its in-memory
//!   counterpart for the duration of the outage, so requests keep being checked, per instance
//!   (an attacker's budget is then multiplied by the number of instances, and a user's quota
//!   too, until Redis is back);
//! - [`OutagePolicy::FailClosed`]: a request whose lockout or quota cannot be checked is refused
//!   with `AUTH_FAILED` (HTTP 503 with `Retry-After: 1`, gRPC 14 `UNAVAILABLE`), and a
//!   WebSocket message is refused as over quota. Revocation and fan-out are unaffected: each
//!   instance keeps its last revocation list (see [`RedisFanout`]).
//!
//! A `WARN` event says when an outage starts and an `INFO` when Redis answers again, once each,
//! never per request. During an outage one call a second goes to Redis and the others fall
//! back at once, so requests do not each wait for the timeout; recovery needs no restart: the
//! first such call that Redis answers ends the outage.
//!
//! Keys are `<prefix>:<kind>:{<id>}` (prefix `tjg` by default); the `{…}` hash tag is the
//! identity the key is about, so the keys of one address or user share a slot.

mod connection;
mod fanout;
mod lockout;
mod rate_limit;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

use connection::{Connection, Handle};

pub use fanout::{FanoutError, FleetStats, RedisFanout};
pub use lockout::{RedisFuture, RedisLockoutStore};
pub use rate_limit::RedisRateLimitStore;

/// What the stores do while Redis does not answer (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutagePolicy {
    /// Fall back to this instance's in-memory store (the default).
    #[default]
    FailOpen,
    /// Refuse what cannot be checked with `AUTH_FAILED` (503).
    FailClosed,
}

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
    const SERVER: Self = Self {
        kind: "was refused by the server (authentication, permissions, a read-only replica, \
               an out-of-memory Redis or a script error)",
    };
    const SKIPPED: Self = Self {
        kind: "was skipped: Redis is down, and is tried once a second",
    };
}

impl RedisError {
    /// What `error` says, without its text (which may quote a command); a script's own error
    /// is logged once per outage like the others.
    fn from_redis(error: &::redis::RedisError) -> Self {
        match error.kind() {
            ::redis::ErrorKind::UnexpectedReturnType | ::redis::ErrorKind::Parse => Self::BAD_REPLY,
            ::redis::ErrorKind::Server(_) => Self::SERVER,
            _ => Self::FAILED,
        }
    }
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
    /// For the subscriber's own connection: the server, or each node of a cluster in turn (a
    /// cluster delivers every `PUBLISH` on every node). Never empty.
    subscribers: Vec<::redis::Client>,
    next_subscriber: std::sync::atomic::AtomicUsize,
    connection: Connection,
    /// The fan-out's own connection, with the longer bound.
    background: Connection,
    timeout: Duration,
    prefix: Box<str>,
    outage: OutagePolicy,
    /// An outage is in progress (its `WARN` was logged).
    down: AtomicBool,
    /// When a call last went to Redis during an outage (ms since `started`).
    last_try: AtomicU64,
    started: std::time::Instant,
}

/// What [`RedisClient::admit`] decided for a call.
enum Admit {
    Call,
    Probe,
    Skip,
}

/// Where a call is made: on the request path (the probe and the outage state apply), or in
/// the fan-out's background.
#[derive(Clone, Copy)]
enum Path {
    Request,
    Background,
}

/// The bound on the fan-out's background calls (at least the client's timeout).
const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(2);

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
            .field("outage", &self.inner.outage)
            .field("down", &self.inner.down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisClient`].
pub struct RedisClientBuilder {
    /// One URL, or a cluster's nodes.
    urls: Vec<String>,
    cluster: bool,
    timeout: Duration,
    prefix: String,
    outage: OutagePolicy,
    /// The CA that signs the server's certificate (PEM), instead of the webpki roots.
    #[cfg(feature = "redis-tls")]
    root_certificate: Option<Vec<u8>>,
}

impl fmt::Debug for RedisClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClientBuilder")
            .field("cluster", &self.cluster)
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .field("outage", &self.outage)
            .finish_non_exhaustive()
    }
}

impl RedisClient {
    /// A client of the server at `url`: `redis://[[user]:password@]host[:port][/db]`, or
    /// `rediss://…` for TLS (feature `redis-tls`; the server's certificate is checked against
    /// the webpki roots, or [`RedisClientBuilder::tls_root_certificate`]).
    pub fn builder(url: impl Into<String>) -> RedisClientBuilder {
        RedisClientBuilder::new(vec![url.into()], false)
    }

    /// A client of a Redis Cluster, given some of its nodes' URLs (`redis://[[user]:password@]
    /// host:port`; the others are found from them). Every script touches one key, so each runs
    /// on one slot's node; the subscriber of [`RedisFanout`] listens on the first node, which
    /// a cluster delivers every `PUBLISH` to.
    pub fn cluster<I, U>(nodes: I) -> RedisClientBuilder
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        RedisClientBuilder::new(nodes.into_iter().map(Into::into).collect(), true)
    }

    /// What the stores do while Redis does not answer.
    pub fn outage_policy(&self) -> OutagePolicy {
        self.inner.outage
    }

    /// Whether the stores refuse what they cannot check.
    pub(crate) fn fails_closed(&self) -> bool {
        self.inner.outage == OutagePolicy::FailClosed
    }

    /// `<prefix>:<kind>:{<id>}`.
    pub(crate) fn key(&self, kind: &str, id: impl fmt::Display) -> String {
        format!("{}:{kind}:{{{id}}}", self.inner.prefix)
    }

    /// `<prefix>:<kind>`, for keys and channels that are not about one identity.
    pub(crate) fn plain_key(&self, kind: &str) -> String {
        format!("{}:{kind}", self.inner.prefix)
    }

    /// Runs `f` on the shared connection within the timeout, and notes an outage: the stores'
    /// calls, on the request path.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(Handle) -> Fut,
        Fut: std::future::Future<Output = ::redis::RedisResult<T>>,
    {
        let probe = match self.admit() {
            Admit::Skip => return Err(RedisError::SKIPPED),
            Admit::Call => false,
            Admit::Probe => true,
        };
        let outcome = self
            .call(&self.inner.connection, self.inner.timeout, f)
            .await;
        self.note(outcome.as_ref().err(), probe);
        outcome
    }

    /// Runs `f` within `timeout`, leaving the outage state alone: the fan-out's calls, in the
    /// background (reloads of whole hashes, statistics), which must neither wait for the probe
    /// nor make the request path believe Redis is down.
    async fn run_background<T, F, Fut>(&self, f: F) -> Result<T, RedisError>
    where
        F: FnOnce(Handle) -> Fut,
        Fut: std::future::Future<Output = ::redis::RedisResult<T>>,
    {
        let timeout = self.inner.timeout.max(BACKGROUND_TIMEOUT);
        self.call(&self.inner.background, timeout, f).await
    }

    async fn call<T, F, Fut>(
        &self,
        connection: &Connection,
        timeout: Duration,
        f: F,
    ) -> Result<T, RedisError>
    where
        F: FnOnce(Handle) -> Fut,
        Fut: std::future::Future<Output = ::redis::RedisResult<T>>,
    {
        let call = async {
            let handle = connection.handle().await?;
            f(handle).await
        };
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(RedisError::TIMEOUT),
            Ok(Err(e)) => Err(RedisError::from_redis(&e)),
            Ok(Ok(value)) => Ok(value),
        }
    }

    /// `PUBLISH channel payload`.
    pub(crate) async fn publish(&self, channel: &str, payload: &str) -> Result<(), RedisError> {
        self.run_background(|mut c| async move {
            ::redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<i64>(&mut c)
                .await
                .map(|_| ())
        })
        .await
    }

    /// Records `field` (a subject or a `jti`) as revoked with `value` (its `at`, or its
    /// entry's end) in `hash`, unless the hash holds a later value already, and publishes the
    /// value kept on `channel` as `<value> <field>`: atomically, one script on the hash's slot
    /// (a cluster takes no transaction across a `PUBLISH`).
    pub(crate) async fn publish_revocation(
        &self,
        hash: &str,
        channel: &str,
        field: &str,
        value: u64,
    ) -> Result<(), RedisError> {
        static SCRIPT: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
            ::redis::Script::new(
                "local v = tonumber(ARGV[2]) \
                 local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) \
                 if old and old > v then v = old else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end \
                 redis.call('PUBLISH', ARGV[3], string.format('%d', v) .. ' ' .. ARGV[1]) return 1",
            )
        });
        let value = value.to_string();
        self.eval_on::<i64>(Path::Background, &SCRIPT, hash, &[field, &value, channel])
            .await
            .map(|_| ())
    }

    /// `HGETALL hash`; fields and values that are not UTF-8 are skipped.
    pub(crate) async fn hash_all_raw(
        &self,
        hash: &str,
    ) -> Result<Vec<(String, String)>, RedisError> {
        let all = self
            .run_background(|mut c| async move {
                ::redis::cmd("HGETALL")
                    .arg(hash)
                    .query_async::<Vec<(Vec<u8>, Vec<u8>)>>(&mut c)
                    .await
            })
            .await?;
        Ok(all
            .into_iter()
            .filter_map(|(k, v)| Some((String::from_utf8(k).ok()?, String::from_utf8(v).ok()?)))
            .collect())
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
    #[cfg(feature = "websocket")]
    pub(crate) async fn hash_set(
        &self,
        hash: &str,
        field: &str,
        value: &str,
    ) -> Result<(), RedisError> {
        self.run_background(|mut c| async move {
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

    /// Deletes each `(field, value)` of `entries` from `hash` if the field still holds that
    /// value (one script: a revocation made again meanwhile, with a new value, stays).
    pub(crate) async fn hash_delete_unchanged(
        &self,
        hash: &str,
        entries: &[(String, String)],
    ) -> Result<(), RedisError> {
        static SCRIPT: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
            ::redis::Script::new(
                "for i = 1, #ARGV, 2 do \
                   if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then \
                     redis.call('HDEL', KEYS[1], ARGV[i]) end end return 1",
            )
        });
        // In batches, so that no one script holds Redis for long.
        for batch in entries.chunks(500) {
            let args: Vec<String> = batch
                .iter()
                .flat_map(|(field, value)| [field.clone(), value.clone()])
                .collect();
            self.eval_on::<i64>(Path::Background, &SCRIPT, hash, &args)
                .await?;
        }
        Ok(())
    }

    /// A connection of its own for pub/sub, within the timeout: to the next node in turn after
    /// a failure (a cluster's nodes all receive every `PUBLISH`).
    pub(crate) async fn pubsub(&self) -> Result<::redis::aio::PubSub, RedisError> {
        let nodes = &self.inner.subscribers;
        let at = self.inner.next_subscriber.load(Ordering::Relaxed) % nodes.len();
        let outcome = match tokio::time::timeout(
            self.inner.timeout.max(BACKGROUND_TIMEOUT),
            nodes[at].get_async_pubsub(),
        )
        .await
        {
            Ok(Ok(pubsub)) => return Ok(pubsub),
            Ok(Err(_)) => Err(RedisError::FAILED),
            Err(_) => Err(RedisError::TIMEOUT),
        };
        self.inner.next_subscriber.fetch_add(1, Ordering::Relaxed);
        outcome
    }

    /// Runs `script` on `key` with `args`, within the timeout; `EVALSHA`, loading the script
    /// on `NOSCRIPT`. On the request path: notes outages.
    pub(crate) async fn eval<T: ::redis::FromRedisValue>(
        &self,
        script: &::redis::Script,
        key: &str,
        args: &[impl ::redis::ToRedisArgs + Sync],
    ) -> Result<T, RedisError> {
        self.eval_on(Path::Request, script, key, args).await
    }

    /// [`eval`](Self::eval) on `path`.
    async fn eval_on<T: ::redis::FromRedisValue>(
        &self,
        path: Path,
        script: &::redis::Script,
        key: &str,
        args: &[impl ::redis::ToRedisArgs + Sync],
    ) -> Result<T, RedisError> {
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(arg);
        }
        let call =
            |mut handle: Handle| async move { invocation.invoke_async::<T>(&mut handle).await };
        match path {
            Path::Request => self.run(call).await,
            Path::Background => self.run_background(call).await,
        }
    }

    /// Whether this call goes to Redis: always when Redis is up; during an outage, one call a
    /// second, the probe, and the others are skipped. Decided from one reading of the state,
    /// so that a call that began before an outage is never taken for its probe.
    fn admit(&self) -> Admit {
        let inner = &self.inner;
        if !inner.down.load(Ordering::Acquire) {
            return Admit::Call;
        }
        let now = u64::try_from(inner.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = inner.last_try.load(Ordering::Acquire);
        let every = u64::try_from(PROBE_EVERY.as_millis()).unwrap_or(u64::MAX);
        // `last` starts at zero: an outage in the first second gets its probe at once.
        if last != 0 && now.saturating_sub(last) < every {
            return Admit::Skip;
        }
        // One caller wins the probe; the others skip.
        match inner
            .last_try
            .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Admit::Probe,
            Err(_) => Admit::Skip,
        }
    }

    /// Logs an outage's start (`WARN`) and end (`INFO`), once each. Only the probe ends an
    /// outage: a call that was under way when it began and succeeds late does not.
    fn note(&self, error: Option<&RedisError>, probe: bool) {
        let down = &self.inner.down;
        match error {
            Some(e) if !down.swap(true, Ordering::AcqRel) => {
                tracing::warn!(
                    target: crate::audit::AUDIT_TARGET,
                    error = %e,
                    "Redis is not answering: shared state is unavailable until it does"
                );
            }
            None if probe && down.swap(false, Ordering::AcqRel) => {
                tracing::info!(
                    target: crate::audit::AUDIT_TARGET,
                    "Redis answers again: shared state resumed"
                );
            }
            _ => {}
        }
    }
}

impl RedisClientBuilder {
    /// A connection (made on first use) whose commands are each bounded by `timeout`.
    fn connection(
        &self,
        client: &::redis::Client,
        timeout: Duration,
    ) -> Result<Connection, RedisConfigError> {
        if !self.cluster {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1));
            let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
                .map_err(|_| RedisConfigError("the Redis connection could not be set up"))?;
            return Ok(Connection::Single(manager));
        }
        #[allow(unused_mut)]
        let mut cluster =
            ::redis::cluster::ClusterClient::builder(self.urls.iter().map(String::as_str))
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(1);
        #[cfg(feature = "redis-tls")]
        if let Some(pem) = &self.root_certificate {
            cluster = cluster.certs(::redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            });
        }
        let cluster = cluster
            .build()
            .map_err(|_| RedisConfigError("the Redis cluster's URLs are not usable"))?;
        Ok(Connection::Cluster(Box::new(connection::Cluster {
            client: cluster,
            connection: tokio::sync::OnceCell::new(),
        })))
    }

    fn new(urls: Vec<String>, cluster: bool) -> Self {
        Self {
            urls,
            cluster,
            timeout: DEFAULT_TIMEOUT,
            prefix: "tjg".to_owned(),
            outage: OutagePolicy::FailOpen,
            #[cfg(feature = "redis-tls")]
            root_certificate: None,
        }
    }

    /// For `rediss://` URLs: trust the CA certificate `pem` (PEM) for the server's certificate,
    /// instead of the webpki roots (feature `redis-tls`).
    #[cfg(feature = "redis-tls")]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// A client of `url`: with the configured CA when there is one.
    fn open(&self, url: &str) -> Result<::redis::Client, RedisConfigError> {
        // Schemes are case-insensitive (RFC 3986 §3.1).
        let tls = url
            .get(..9)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"));
        if tls && !cfg!(feature = "redis-tls") {
            return Err(RedisConfigError(
                "a rediss:// URL needs the crate feature `redis-tls`",
            ));
        }
        #[cfg(feature = "redis-tls")]
        if !tls && self.root_certificate.is_some() {
            // The user expects TLS: never a plaintext connection instead.
            return Err(RedisConfigError(
                "a TLS root certificate was given for a Redis URL that is not rediss://",
            ));
        }
        #[cfg(feature = "redis-tls")]
        if tls {
            crate::crypto::install_rustls_provider();
            if let Some(pem) = &self.root_certificate {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                let mut certificates = CertificateDer::pem_slice_iter(pem);
                if !matches!(certificates.next(), Some(Ok(_))) || certificates.any(|c| c.is_err()) {
                    return Err(RedisConfigError(
                        "the TLS root certificate for Redis must be PEM with a certificate",
                    ));
                }
                return ::redis::Client::build_with_tls(
                    url,
                    ::redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone()),
                    },
                )
                .map_err(|_| {
                    RedisConfigError("the Redis URL or its TLS root certificate is not usable")
                });
            }
        }
        ::redis::Client::open(url).map_err(|_| RedisConfigError("the Redis URL is not usable"))
    }

    /// The bound on each call (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What the stores do while Redis does not answer (default [`OutagePolicy::FailOpen`]).
    pub fn outage_policy(mut self, policy: OutagePolicy) -> Self {
        self.outage = policy;
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
    /// A URL the `redis` crate does not accept (`rediss://` without the feature `redis-tls`,
    /// or a root certificate that is not PEM), no node for a cluster,
    /// an empty prefix, a zero timeout, or no tokio runtime to run in.
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
        let Some(first) = self.urls.first() else {
            return Err(RedisConfigError("a Redis cluster needs at least one node"));
        };
        let client = self.open(first)?;
        let mut subscribers = vec![client.clone()];
        if self.cluster {
            for url in &self.urls[1..] {
                subscribers.push(self.open(url)?);
            }
        }
        // One connection for the stores' calls, bounded by the client's timeout, and one for
        // the fan-out's background calls (whole hashes), bounded by a longer one: a connection
        // bounds each of its commands by its own response timeout.
        let connection = self.connection(&client, self.timeout)?;
        let background = self.connection(&client, self.timeout.max(BACKGROUND_TIMEOUT))?;
        Ok(RedisClient {
            inner: Arc::new(Inner {
                subscribers,
                next_subscriber: std::sync::atomic::AtomicUsize::new(0),
                connection,
                background,
                timeout: self.timeout,
                prefix: self.prefix.into_boxed_str(),
                outage: self.outage,
                down: AtomicBool::new(false),
                last_try: AtomicU64::new(0),
                started: std::time::Instant::now(),
            }),
        })
    }
}
