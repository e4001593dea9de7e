//! The lockout store on Redis: failures, locks and escalation history of an address shared by
//! every instance, one round trip per check and per recorded failure.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::{RedisClient, RedisError};
use crate::client_ip::IpKey;
use crate::lockout::{FailureOutcome, LockStatus, LockoutPolicy, LockoutStore, MemoryLockoutStore};

/// One hash per address: `ws` window start, `f` failures in the window, `lu` locked until,
/// `lo` lockouts so far, `ex` when the entry has nothing left to say (times in ms). The key
/// expires by itself then, so Redis holds an address only while it matters. The arithmetic is
/// the in-memory store's.
///
/// ARGV: op (0 check, 1 failure, 2 reset), now, window, max failures, lock duration,
/// escalation factor (1: none), escalation maximum, history kept after a lock.
const SCRIPT: &str = r"
local k = KEYS[1]
local op = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local h = redis.call('HMGET', k, 'ws', 'f', 'lu', 'lo', 'ex')
local ws = tonumber(h[1]) or 0
local f = tonumber(h[2]) or 0
local lu = tonumber(h[3]) or 0
local lo = tonumber(h[4]) or 0
local ex = tonumber(h[5]) or 0
if op == 0 then
  if lu > now then return {1, lu - now, f, lo} end
  return {0, 0, f, lo}
end
if op == 2 then
  if ex > now then redis.call('HSET', k, 'f', 0) end
  return {0, 0, 0, lo}
end
if lu > now then return {0, 0, f, lo} end
if ex <= now then ws = 0; f = 0; lu = 0; lo = 0 end
local window = tonumber(ARGV[3])
if now - ws >= window or f == 0 then ws = now; f = 0 end
f = f + 1
local locked = 0
if f >= tonumber(ARGV[4]) then
  local d = tonumber(ARGV[5])
  local factor = tonumber(ARGV[6])
  local maxd = tonumber(ARGV[7])
  if factor > 1 then
    for _ = 1, lo do
      d = d * factor
      if d >= maxd then d = maxd; break end
    end
  end
  lu = now + d
  lo = lo + 1
  locked = d
end
local reported = f
if locked > 0 then f = 0 end
local memory = 0
if lo > 0 then memory = tonumber(ARGV[8]) end
ex = math.max(ws + window, lu + memory)
redis.call('HSET', k, 'ws', ws, 'f', f, 'lu', lu, 'lo', lo, 'ex', ex)
redis.call('PEXPIRE', k, math.max(ex - now, 1))
return {locked > 0 and 1 or 0, locked, reported, lo}
";

/// A boxed future: a Redis call costs far more than the allocation.
pub type RedisFuture<T> = Pin<Box<dyn Future<Output = Result<T, RedisError>> + Send>>;

/// The lockout store on Redis, with this instance's in-memory store as its fallback while Redis
/// does not answer (and a lock earned there holds until it ends, Redis back or not), or refusing then, as the client's [`OutagePolicy`](super::OutagePolicy)
/// says (see the [module docs](super)). With fail-closed, a failure that cannot be recorded
/// is logged (at most once per 10 s) and lost: the request it belongs to is refused anyway, and
/// every further request is refused until Redis answers.
#[derive(Debug, Clone)]
pub struct RedisLockoutStore {
    client: RedisClient,
    script: std::sync::Arc<::redis::Script>,
    fallback: std::sync::Arc<MemoryLockoutStore>,
}

impl RedisLockoutStore {
    /// The store, falling back to an in-memory store of `policy`'s capacity.
    pub fn new(client: RedisClient, policy: &LockoutPolicy) -> Self {
        Self {
            client,
            script: std::sync::Arc::new(::redis::Script::new(SCRIPT)),
            fallback: std::sync::Arc::new(MemoryLockoutStore::new(policy.tracked_capacity())),
        }
    }

    fn call(
        &self,
        key: IpKey,
        args: [u64; 8],
    ) -> impl Future<Output = Result<[u64; 4], RedisError>> + Send + 'static {
        let (client, script) = (self.client.clone(), std::sync::Arc::clone(&self.script));
        let key = client.key("lockout", key.ip());
        async move {
            let reply: Vec<u64> = client.eval(&script, &key, &args).await?;
            <[u64; 4]>::try_from(reply).map_err(|_| RedisError::BAD_REPLY)
        }
    }
}

/// What the fallback says of `key`.
fn local(fallback: &MemoryLockoutStore, key: IpKey, now: Duration) -> LockStatus {
    match fallback.check(key, now).into_inner() {
        Ok(status) => status,
        Err(never) => match never {},
    }
}

/// Milliseconds, at most 2^52 (about 140 000 years): Lua numbers are doubles, exact to 2^53,
/// and the script adds two of these.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(u64::MAX)
        .min(1 << 52)
}

impl LockoutStore for RedisLockoutStore {
    type Error = RedisError;
    type CheckFuture = RedisFuture<LockStatus>;
    type FailureFuture = RedisFuture<FailureOutcome>;
    type ResetFuture = RedisFuture<()>;

    fn check(&self, key: IpKey, now: Duration) -> Self::CheckFuture {
        let call = self.call(key, [0, ms(now), 0, 0, 0, 0, 0, 0]);
        let fallback = std::sync::Arc::clone(&self.fallback);
        let closed = self.client.fails_closed();
        Box::pin(async move {
            match call.await {
                // The longer of the shared lock and one earned in the fallback.
                Ok([1, retry, _, _]) => Ok(LockStatus::Locked {
                    retry_after: match local(&fallback, key, now) {
                        LockStatus::Locked { retry_after } => {
                            retry_after.max(Duration::from_millis(retry))
                        }
                        LockStatus::Open => Duration::from_millis(retry),
                    },
                }),
                // A lock earned in the fallback during an outage still holds once Redis is
                // back (a lookup in memory, nothing for an address that never failed then).
                Ok(_) => Ok(local(&fallback, key, now)),
                Err(e) if closed => Err(e),
                Err(_) => Ok(local(&fallback, key, now)),
            }
        })
    }

    fn record_failure(
        &self,
        key: IpKey,
        now: Duration,
        policy: &LockoutPolicy,
    ) -> Self::FailureFuture {
        let (factor, max) = policy
            .escalation
            .map_or((1, 0), |e| (u64::from(e.factor.max(1)), ms(e.max)));
        let call = self.call(
            key,
            [
                1,
                ms(now),
                ms(policy.window),
                u64::from(policy.max_failures.get()),
                ms(policy.lock_duration),
                factor,
                max,
                ms(policy.memory()),
            ],
        );
        let fallback = std::sync::Arc::clone(&self.fallback);
        let closed = self.client.fails_closed();
        let policy = policy.clone();
        Box::pin(async move {
            match call.await {
                Ok([_, locked, failures, lockouts]) => Ok(FailureOutcome {
                    failures: u32::try_from(failures).unwrap_or(u32::MAX),
                    locked_for: (locked > 0).then(|| Duration::from_millis(locked)),
                    lockouts: u32::try_from(lockouts).unwrap_or(u32::MAX),
                    counted_as: None,
                }),
                Err(e) if closed => Err(e),
                Err(_) => Ok(
                    match fallback.record_failure(key, now, &policy).into_inner() {
                        Ok(outcome) => outcome,
                        Err(never) => match never {},
                    },
                ),
            }
        })
    }

    fn fails_closed(&self) -> bool {
        self.client.fails_closed()
    }

    fn reset(&self, key: IpKey, now: Duration) -> Self::ResetFuture {
        let call = self.call(key, [2, ms(now), 0, 0, 0, 0, 0, 0]);
        let fallback = std::sync::Arc::clone(&self.fallback);
        Box::pin(async move {
            // Both: failures counted in the fallback during an outage must not lock early in
            // the next one.
            let _ = fallback.reset(key, now).into_inner();
            let _ = call.await;
            Ok(())
        })
    }
}
