//! The per-user rate-limit store on Redis: GCRA evaluated atomically in one script, one round
//! trip per check, time from Redis's own clock (`TIME`), so instances' clocks do not matter.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{RedisClient, RedisError, RedisFuture};
use crate::rate_limit::{MemoryRateLimitStore, PlanQuotas, RateDecision, RateLimitStore};

/// GCRA (the generic cell rate algorithm, as redis-cell and go-redis's `redis_rate` use it),
/// with the theoretical arrival time `tat` of the key in microseconds of Redis's clock:
/// a request is allowed when `tat + T - now <= T * burst`, and then `tat` moves to
/// `max(tat, now) + T`. The key expires when its `tat` passes.
///
/// ARGV: T (µs), burst. Returns {allowed (1/0), remaining, retry after (µs)}.
const SCRIPT: &str = r"
local k = KEYS[1]
local t = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', k) or 0)
if tat < now then tat = now end
local new_tat = tat + t
local allow_at = new_tat - t * burst
if allow_at > now then
  return {0, 0, allow_at - now}
end
local ttl = math.ceil((new_tat - now) / 1000)
redis.call('SET', k, string.format('%d', new_tat), 'PX', math.min(math.max(ttl, 1), 1125899906842624))
local remaining = math.floor((t * burst - (new_tat - now)) / t)
return {1, remaining, 0}
";

/// The rate-limit store on Redis, with this instance's in-memory store (same quotas) as its
/// fallback while Redis does not answer, or refusing then, as the client's
/// [`OutagePolicy`](super::OutagePolicy) says (see the [module docs](super)).
#[derive(Debug, Clone)]
pub struct RedisRateLimitStore {
    client: RedisClient,
    script: Arc<::redis::Script>,
    fallback: Arc<MemoryRateLimitStore>,
    quotas: PlanQuotas,
    namespace: Arc<str>,
}

impl RedisRateLimitStore {
    /// The store counting `quotas`.
    pub fn new(client: RedisClient, quotas: PlanQuotas) -> Self {
        Self {
            client,
            script: Arc::new(::redis::Script::new(SCRIPT)),
            fallback: Arc::new(MemoryRateLimitStore::new(quotas.clone())),
            quotas,
            namespace: Arc::from(""),
        }
    }

    /// Counts in buckets of their own, apart from other stores' (default: none). Two stores
    /// on one Redis with the same quotas and namespace share their users' buckets: give each
    /// budget its name (`"orders"`, `"messages"`), and the same name to the stores that must
    /// share one (a route over HTTP and the same call over gRPC).
    pub fn namespace(mut self, namespace: impl Into<Arc<str>>) -> Self {
        self.namespace = namespace.into();
        self
    }

    fn call(
        &self,
        key: &str,
        interval_us: u64,
        burst: u64,
    ) -> impl Future<Output = Result<[u64; 3], RedisError>> + Send + 'static {
        let (client, script) = (self.client.clone(), Arc::clone(&self.script));
        let key = key.to_owned();
        async move {
            let reply: Vec<u64> = client.eval(&script, &key, &[interval_us, burst]).await?;
            <[u64; 3]>::try_from(reply).map_err(|_| RedisError::BAD_REPLY)
        }
    }
}

impl RateLimitStore for RedisRateLimitStore {
    type Error = RedisError;
    type Future = RedisFuture<RateDecision>;

    fn check(&self, key: &Arc<str>, plan: Option<&str>, detailed: bool) -> Self::Future {
        let quota = self.quotas.quota_for(plan);
        let limit = quota.burst_size().get();
        let window = quota.burst_size_replenished_in();
        // At least 1 µs (the script's unit) and at most about a year, so that the script's
        // doubles stay exact and its expiry in range.
        let interval = u64::try_from(quota.replenish_interval().as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, 1 << 45);
        // One key per user, namespace and quota: a user on another plan starts a bucket of its
        // own, and two stores with other quotas or namespaces never share one. The user's and
        // the namespace's lengths come first, so that no subject (which may hold `:`) can
        // spell another's key.
        let name = &*self.namespace;
        let id = format!(
            "{}:{}:{key}:{name}:{}:{interval}:{limit}",
            key.len(),
            name.len(),
            self.quotas.policy_name(plan)
        );
        let call = self.call(&self.client.key("rate", id), interval, u64::from(limit));
        let (fallback, key, plan) = (
            Arc::clone(&self.fallback),
            Arc::clone(key),
            plan.map(str::to_owned),
        );
        let closed = self.client.fails_closed();
        Box::pin(async move {
            match call.await {
                Ok([1, remaining, _]) => Ok(RateDecision::Allowed {
                    limit,
                    remaining: detailed.then(|| u32::try_from(remaining).unwrap_or(u32::MAX)),
                    window,
                }),
                Ok([_, _, retry_us]) => Ok(RateDecision::Limited {
                    limit,
                    window,
                    retry_after: Duration::from_micros(retry_us),
                }),
                Err(e) if closed => Err(e),
                Err(_) => Ok(fallback.decide_with(&key, plan.as_deref(), detailed)),
            }
        })
    }

    fn quotas(&self) -> &PlanQuotas {
        &self.quotas
    }

    fn fails_closed(&self) -> bool {
        self.client.fails_closed()
    }
}
