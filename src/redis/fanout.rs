//! Revocations and notifications that reach every instance: published on Redis, applied by a
//! subscriber task on each instance to its in-memory [`RevocationList`] (whose hooks close the
//! subject's sessions) and to its notification hook.
//!
//! Checking a token never waits on Redis: each instance keeps the revocations in memory, fed by
//! pub/sub. A revocation reaches the other instances in the time a Redis `PUBLISH` takes to be
//! delivered (milliseconds on one network); an instance that was disconnected reloads every
//! live revocation from the hashes `<prefix>:revocations` (subjects → `at`) and
//! `<prefix>:revoked-tokens` (`jti` → the entry's end) when it reconnects (within about a
//! second of Redis answering again), and every minute besides, so none is lost to a dropped
//! message (a Redis restarted without persistence has lost them all, though: see the
//! README). Each reload also deletes from the hashes the entries that cover no token any more
//! (by this instance's list: give every instance the same maximum token lifetime and leeway),
//! so they hold only live revocations.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;

use super::{RedisClient, RedisError};
use crate::revocation::{RevocationError, RevocationList};

type NotifyHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// How often the subscriber checks that its connection is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// How often the subscriber reloads (and prunes) the revocation hashes.
const RELOAD_EVERY: Duration = Duration::from_secs(60);

/// How long the subscriber waits before connecting again.
const RETRY: Duration = Duration::from_millis(250);

/// Why a shared revocation or notification failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FanoutError {
    /// The local list refused it (full, or an empty subject).
    Revocation(RevocationError),
    /// Redis did not take it: it holds on this instance only.
    Redis(RedisError),
}

impl std::fmt::Display for FanoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Revocation(e) => e.fmt(f),
            Self::Redis(e) => write!(f, "{e}: it holds on this instance only"),
        }
    }
}

impl std::error::Error for FanoutError {}

/// Live WebSocket sessions across every instance that shares its statistics
/// ([`RedisFanout::share_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FleetStats {
    /// Sessions, summed over the instances.
    pub connections: usize,
    /// Distinct users among them.
    pub users: usize,
    /// Instances that reported within the last 3 seconds.
    pub instances: usize,
}

/// Publishes revocations and notifications to every instance, and applies those of the others.
/// Cheap to clone; the subscriber task ends when the last clone is dropped.
#[derive(Clone)]
pub struct RedisFanout {
    client: RedisClient,
    revocations: RevocationList,
    synced: Arc<AtomicBool>,
    /// Set by the first `share_stats`.
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    sharing_stats: Arc<AtomicBool>,
    _task: Arc<TaskGuard>,
}

impl std::fmt::Debug for RedisFanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFanout")
            .field("client", &self.client)
            .field("revocations", &self.revocations)
            .finish_non_exhaustive()
    }
}

struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often an instance writes its statistics, and how long they are kept.
#[cfg(feature = "websocket")]
const STATS_EVERY: Duration = Duration::from_secs(1);
const STATS_KEPT: Duration = Duration::from_secs(3);

impl RedisFanout {
    /// Writes this instance's session statistics (its connection count and its users' subjects)
    /// to the hash `<prefix>:stats` every second, for [`fleet_stats`](Self::fleet_stats); a
    /// report older than 3 s no longer counts (instances' clocks are assumed to agree within
    /// a second). The task ends with the last clone of this fan-out; every minute it also
    /// deletes the reports of instances gone, so the hash holds live instances only. A second call does
    /// nothing (one report per instance).
    #[cfg(feature = "websocket")]
    pub fn share_stats(&self, registry: crate::ws::SessionRegistry) {
        use std::hash::{BuildHasher, Hasher};
        if self.sharing_stats.swap(true, Ordering::AcqRel) {
            return;
        }
        let instance = format!(
            "{:016x}",
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        );
        let hash = self.client.plain_key("stats");
        let client = self.client.clone();
        let task = Arc::downgrade(&self._task);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(STATS_EVERY);
            let mut ticks = 0u32;
            while task.strong_count() > 0 {
                every.tick().await;
                ticks = ticks.wrapping_add(1);
                if ticks.is_multiple_of(60) {
                    let _ = read_stats(&client).await;
                }
                let stats = registry.stats();
                let users: Vec<&str> = stats.per_user.keys().map(|u| &**u).collect();
                let value = serde_json::json!({
                    "t": unix_ms(),
                    "connections": stats.connections,
                    "users": users,
                })
                .to_string();
                let _ = client.hash_set(&hash, &instance, &value).await;
            }
        });
    }

    /// The statistics of every instance that reported within the last 3 seconds (reports older
    /// than that are removed).
    ///
    /// # Errors
    /// [`FanoutError::Redis`] when Redis did not answer.
    pub async fn fleet_stats(&self) -> Result<FleetStats, FanoutError> {
        read_stats(&self.client).await
    }

    /// Starts the subscriber: revocations published by any instance are applied to
    /// `revocations`, and notifications are handed to `on_notify(subject, message)` (for
    /// instance [`SessionRegistry::notify_user`](crate::ws::SessionRegistry::notify_user)).
    /// Must run inside a tokio runtime.
    pub fn start(
        client: RedisClient,
        revocations: RevocationList,
        on_notify: impl Fn(&str, &str) + Send + Sync + 'static,
    ) -> Self {
        let synced = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(subscribe(
            client.clone(),
            revocations.clone(),
            Arc::new(on_notify),
            Arc::clone(&synced),
        ));
        Self {
            client,
            revocations,
            synced,
            sharing_stats: Arc::new(AtomicBool::new(false)),
            _task: Arc::new(TaskGuard(task)),
        }
    }

    /// Whether the subscriber is listening and has loaded the shared revocations: while it is
    /// not, revocations made on other instances do not reach this one (a `WARN` says so once;
    /// for a readiness check).
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Revokes every token of `subject` issued at or before now, here at once and on every
    /// instance; returns now.
    ///
    /// # Errors
    /// [`FanoutError::Revocation`] when the local list refuses it (nothing is published);
    /// [`FanoutError::Redis`] when Redis did not take it (it holds here only).
    pub async fn revoke_subject(&self, subject: &str) -> Result<u64, FanoutError> {
        let at = self
            .revocations
            .revoke_subject(subject)
            .map_err(FanoutError::Revocation)?;
        let hash = self.client.plain_key("revocations");
        let channel = self.client.plain_key("revoked");
        self.client
            .publish_revocation(&hash, &channel, subject, at)
            .await
            .map_err(FanoutError::Redis)?;
        Ok(at)
    }

    /// Revokes the token whose `jti` is `jti` (`expires_at`: its `exp` when known), here at once
    /// and on every instance.
    ///
    /// # Errors
    /// As [`revoke_subject`](Self::revoke_subject).
    pub async fn revoke_token(
        &self,
        jti: &str,
        expires_at: Option<u64>,
    ) -> Result<(), FanoutError> {
        let until = self.revocations.token_entry_until(expires_at);
        self.revocations
            .revoke_token_until(jti, until)
            .map_err(FanoutError::Revocation)?;
        let hash = self.client.plain_key("revoked-tokens");
        let channel = self.client.plain_key("revoked-token");
        self.client
            .publish_revocation(&hash, &channel, jti, until)
            .await
            .map_err(FanoutError::Redis)
    }

    /// Hands `message` for `subject` to every instance's notification hook, this one's
    /// included (through Redis, so in the same order as everyone's).
    ///
    /// # Errors
    /// [`FanoutError::Redis`] when Redis did not take it (no instance was told).
    pub async fn notify(&self, subject: &str, message: &str) -> Result<(), FanoutError> {
        let payload = serde_json::json!({ "sub": subject, "message": message }).to_string();
        self.client
            .publish(&self.client.plain_key("notify"), &payload)
            .await
            .map_err(FanoutError::Redis)
    }
}

/// The live instances' reports, summed; the reports of instances gone are deleted.
async fn read_stats(client: &RedisClient) -> Result<FleetStats, FanoutError> {
    let hash = client.plain_key("stats");
    let reports = client
        .hash_all_raw(&hash)
        .await
        .map_err(FanoutError::Redis)?;
    let now = unix_ms();
    let kept = u64::try_from(STATS_KEPT.as_millis()).unwrap_or(u64::MAX);
    let mut stats = FleetStats::default();
    let mut users = std::collections::HashSet::new();
    let mut stale = Vec::new();
    for (instance, value) in reports {
        let report = serde_json::from_str::<serde_json::Value>(&value).unwrap_or_default();
        let at = report["t"].as_u64().unwrap_or(0);
        if now.saturating_sub(at) > kept {
            stale.push((instance, value));
            continue;
        }
        stats.instances += 1;
        stats.connections +=
            usize::try_from(report["connections"].as_u64().unwrap_or(0)).unwrap_or(usize::MAX);
        if let Some(list) = report["users"].as_array() {
            users.extend(list.iter().filter_map(|u| u.as_str().map(str::to_owned)));
        }
    }
    stats.users = users.len();
    // Only the reports unchanged since they were read: one rewritten meanwhile is live.
    let _ = client.hash_delete_unchanged(&hash, &stale).await;
    Ok(stats)
}

/// The channels and hashes of the fan-out.
struct Names {
    subjects_channel: String,
    tokens_channel: String,
    notify_channel: String,
    subjects_hash: String,
    tokens_hash: String,
}

/// The subscriber: (re)connects, reloads the live revocations, then applies messages until the
/// connection drops (reloading every minute); waits a moment between attempts.
async fn subscribe(
    client: RedisClient,
    revocations: RevocationList,
    on_notify: NotifyHook,
    synced: Arc<AtomicBool>,
) {
    let names = Names {
        subjects_channel: client.plain_key("revoked"),
        tokens_channel: client.plain_key("revoked-token"),
        notify_channel: client.plain_key("notify"),
        subjects_hash: client.plain_key("revocations"),
        tokens_hash: client.plain_key("revoked-tokens"),
    };
    let channels = [
        names.subjects_channel.as_str(),
        names.tokens_channel.as_str(),
        names.notify_channel.as_str(),
    ];
    // Whether the loss of the subscription has been logged (once per run of failures).
    let mut warned = false;
    loop {
        if let Ok(mut pubsub) = client.pubsub().await
            && matches!(
                tokio::time::timeout(HEARTBEAT, pubsub.subscribe(&channels)).await,
                Ok(Ok(()))
            )
        {
            // Subscribed first, then reloaded: nothing published in between is missed. Without
            // the reload, messages published while this instance was away would be: start
            // over until it succeeds.
            if reload(&client, &revocations, &names).await.is_err() {
                lost(&synced, &mut warned);
                tokio::time::sleep(RETRY).await;
                continue;
            }
            synced.store(true, Ordering::Release);
            if std::mem::take(&mut warned) {
                tracing::info!(
                    target: crate::audit::AUDIT_TARGET,
                    "revocation subscriber connected and reloaded: revocations made elsewhere \
                     reach this instance again"
                );
            }
            let (mut sink, mut messages) = pubsub.split();
            let mut heartbeat = tokio::time::interval(HEARTBEAT);
            heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut reloaded = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    message = messages.next() => {
                        let Some(message) = message else { break };
                        apply(&message, &names, &revocations, &*on_notify);
                    }
                    _ = heartbeat.tick() => {
                        // A dropped connection does not always end the stream: a ping that
                        // does not come back within the heartbeat does.
                        let ping = tokio::time::timeout(HEARTBEAT, sink.ping::<::redis::Value>()).await;
                        if !matches!(ping, Ok(Ok(_))) {
                            break;
                        }
                        if reloaded.elapsed() >= RELOAD_EVERY {
                            reloaded = tokio::time::Instant::now();
                            let _ = reload(&client, &revocations, &names).await;
                        }
                    }
                }
            }
        }
        lost(&synced, &mut warned);
        tokio::time::sleep(RETRY).await;
    }
}

/// Notes that the subscriber is not (or no longer) listening: one `WARN` per run of failures.
fn lost(synced: &AtomicBool, warned: &mut bool) {
    synced.store(false, Ordering::Release);
    if !std::mem::replace(warned, true) {
        tracing::warn!(
            target: crate::audit::AUDIT_TARGET,
            "revocation subscriber cannot listen on Redis: revocations and notifications made \
             on other instances do not reach this one until it can (it keeps trying)"
        );
    }
}

/// Applies every revocation of the hashes to the list, and deletes from the hashes those that
/// cover no token any more (unless made again meanwhile).
async fn reload(
    client: &RedisClient,
    revocations: &RevocationList,
    names: &Names,
) -> Result<(), RedisError> {
    let subjects = client.hash_all(&names.subjects_hash).await?;
    let tokens = client.hash_all(&names.tokens_hash).await?;
    // The list ignores the entries that cover no token any more (its own expiry rule), and
    // hooks hear only of those it did not hold yet.
    let mut stale = Vec::new();
    for (subject, at) in subjects {
        if revocations.subject_entry_expired(at) {
            stale.push((subject, at.to_string()));
        } else {
            apply_subject(revocations, &subject, at);
        }
    }
    let now = revocations.now();
    let mut stale_tokens = Vec::new();
    for (jti, until) in tokens {
        if until <= now {
            stale_tokens.push((jti, until.to_string()));
        } else {
            apply_token(revocations, &jti, until);
        }
    }
    // Every entry is applied: pruning is housekeeping, and its failure is no failure to sync.
    let _ = client
        .hash_delete_unchanged(&names.subjects_hash, &stale)
        .await;
    let _ = client
        .hash_delete_unchanged(&names.tokens_hash, &stale_tokens)
        .await;
    Ok(())
}

/// Applies a subject revocation made elsewhere. One dated more than a leeway ahead of this
/// instance's clock (a publisher's clock ahead, or a forged entry) waits: a reload applies it
/// once this clock has reached it. Applied early it would refuse the subject's tokens issued
/// until then; clamped to now, later reloads would raise it again and again (and the hooks
/// would close new sessions each time).
fn apply_subject(revocations: &RevocationList, subject: &str, at: u64) {
    let latest = revocations
        .now()
        .saturating_add(revocations.leeway().as_secs());
    if at <= latest {
        let _ = revocations.revoke_subject_at(subject, at);
    }
}

/// Applies a `jti` revocation made elsewhere, kept at most as long as a token can live. An
/// entry already here is not raised by a remote one beyond that bound (no token accepted here
/// outlives the entry it has).
fn apply_token(revocations: &RevocationList, jti: &str, until: u64) {
    let longest = revocations.token_entry_until(None);
    if until > longest && revocations.token_revoked_until(jti).is_some() {
        return;
    }
    let _ = revocations.revoke_token_until(jti, until.min(longest));
}

/// Applies one published message: `<at> <subject>`, `<until> <jti>`, or a notification.
fn apply(
    message: &::redis::Msg,
    names: &Names,
    revocations: &RevocationList,
    on_notify: &(dyn Fn(&str, &str) + Send + Sync),
) {
    let Ok(payload) = std::str::from_utf8(message.get_payload_bytes()) else {
        return;
    };
    let channel = message.get_channel_name();
    let revocation = || {
        let (value, name) = payload.split_once(' ')?;
        Some((value.parse::<u64>().ok()?, name))
    };
    if channel == names.subjects_channel {
        if let Some((at, subject)) = revocation() {
            apply_subject(revocations, subject, at);
        }
    } else if channel == names.tokens_channel {
        if let Some((until, jti)) = revocation() {
            apply_token(revocations, jti, until);
        }
    } else if let Ok(note) = serde_json::from_str::<serde_json::Value>(payload)
        && let (Some(subject), Some(text)) = (note["sub"].as_str(), note["message"].as_str())
    {
        on_notify(subject, text);
    }
}

/// Milliseconds since the epoch, by this machine's clock.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
