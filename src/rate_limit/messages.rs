use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::layer::store_failed;
use super::{MemoryRateLimitStore, PlanQuotas, RateDecision, RateLimitStore};
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;

/// A connection that sends at more than this many times its rate ...
pub const DEFAULT_FLOOD_FACTOR: u32 = 2;

/// ... over this long is closed with 1008 (policy violation).
pub const DEFAULT_FLOOD_WINDOW: Duration = Duration::from_secs(3);

/// The flood window is counted in this many slices.
const FLOOD_SLICES: usize = 12;

/// Per-user limits on WebSocket messages, shared by all of a user's connections (several
/// devices share one budget). Cheap to clone.
///
/// Each connection takes a [`MessageGate`] and asks it about every incoming data message.
/// Over quota, a message is dropped and the client told. A connection that keeps flooding is
/// closed with 1008: one that sends at more than [`flood_factor`](MessageLimiterBuilder::flood_factor) times its
/// rate (default 2) for [`flood_window`](MessageLimiterBuilder::flood_window) (default 3 s). That is seen as
/// more than `(factor - 1) × rate × window` refused messages within the last window, while
/// refusals have gone on for at least the window, however they interleave with delivered ones;
/// or as more than four times that many refused within the window, however short the run (so
/// bursts with pauses between them are closed too).
/// The rate is the plan quota's replenishment rate, so a quota's burst never counts as flooding,
/// and neither does sending at exactly `factor` times the rate.
///
///
/// Like the [`UserRateLimitLayer`](super::UserRateLimitLayer), it counts in a
/// [`RateLimitStore`]: in memory by default, or in a store shared by a fleet.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::sync::Arc;
/// use tower_jwt_guard::rate_limit::{MessageLimiter, MessageVerdict, PlanQuotas, Quota};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let quotas = PlanQuotas::new(Quota::per_second(NonZeroU32::new(10).unwrap()));
/// let limiter = MessageLimiter::builder(quotas).build()?;
/// let mut phone = limiter.gate(Arc::from("alice"), None);
/// let mut laptop = limiter.gate(Arc::from("alice"), None);
/// for _ in 0..5 {
///     assert_eq!(phone.check().await, MessageVerdict::Deliver);
///     assert_eq!(laptop.check().await, MessageVerdict::Deliver);
/// }
/// // The 11th of alice's messages:
/// assert!(matches!(phone.check().await, MessageVerdict::Reject { .. }));
/// # Ok::<(), tower_jwt_guard::ConfigError>(())
/// # }).unwrap();
/// ```
pub struct MessageLimiter<St = MemoryRateLimitStore> {
    inner: Arc<LimiterInner<St>>,
}

struct LimiterInner<St> {
    store: St,
    /// Times the flood window (the store keeps its own time for quotas).
    clock: Arc<dyn Clock>,
    flood_factor: u32,
    flood_window: Duration,
}

impl<St> Clone for MessageLimiter<St> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Configuration of a [`MessageLimiter`].
pub struct MessageLimiterBuilder<St> {
    store: St,
    quotas: PlanQuotas,
    clock: Option<Arc<dyn Clock>>,
    flood_factor: u32,
    flood_window: Duration,
}

impl<St: fmt::Debug> fmt::Debug for MessageLimiterBuilder<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageLimiterBuilder")
            .field("store", &self.store)
            .field("flood_factor", &self.flood_factor)
            .field("flood_window", &self.flood_window)
            .finish_non_exhaustive()
    }
}

impl MessageLimiter<MemoryRateLimitStore> {
    /// Starts a configuration counting `quotas` in memory.
    pub fn builder(quotas: PlanQuotas) -> MessageLimiterBuilder<MemoryRateLimitStore> {
        MessageLimiterBuilder {
            store: MemoryRateLimitStore::new(quotas.clone()),
            quotas,
            clock: None,
            flood_factor: DEFAULT_FLOOD_FACTOR,
            flood_window: DEFAULT_FLOOD_WINDOW,
        }
    }
}

impl<St: RateLimitStore> MessageLimiterBuilder<St> {
    /// Counts in `store` instead of memory; it must count the same quotas.
    pub fn store<St2: RateLimitStore>(self, store: St2) -> MessageLimiterBuilder<St2> {
        MessageLimiterBuilder {
            store,
            quotas: self.quotas,
            clock: self.clock,
            flood_factor: self.flood_factor,
            flood_window: self.flood_window,
        }
    }

    /// The clock for the store (see [`RateLimitStore::with_clock`]) and the flood window
    /// (default: the system clock); see [`Clock`] for sharing one.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(clock.into_shared());
        self
    }

    /// A connection sending at more than `factor` times its rate over the flood window is
    /// closed with 1008 (default 2; at least 2, since at 1 every refused message would be
    /// flooding).
    pub fn flood_factor(mut self, factor: u32) -> Self {
        self.flood_factor = factor;
        self
    }

    /// The window over which flooding is judged (default 3 s; at least 1 ms).
    pub fn flood_window(mut self, window: Duration) -> Self {
        self.flood_window = window;
        self
    }

    /// Builds the limiter.
    ///
    /// # Errors
    /// When the flood factor is under 2 or the window under 1 ms, or when the store counts
    /// other quotas than the ones the builder was started with.
    pub fn build(self) -> Result<MessageLimiter<St>, ConfigError> {
        if self.flood_factor < 2 {
            return Err(ConfigError::new("the flood factor must be at least 2"));
        }
        if self.flood_window < Duration::from_millis(1) {
            return Err(ConfigError::new("the flood window must be at least 1 ms"));
        }
        if *self.store.quotas() != self.quotas {
            return Err(ConfigError::new(
                "the message limiter's store counts other quotas than the limiter's",
            ));
        }
        let (store, clock) = match self.clock {
            Some(clock) => (self.store.with_clock(Arc::clone(&clock)), clock),
            None => (self.store, SystemClock.into_shared()),
        };
        Ok(MessageLimiter {
            inner: Arc::new(LimiterInner {
                store,
                clock,
                flood_factor: self.flood_factor,
                flood_window: self.flood_window,
            }),
        })
    }
}

impl<St: fmt::Debug> fmt::Debug for MessageLimiter<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageLimiter")
            .field("store", &self.inner.store)
            .field("flood_factor", &self.inner.flood_factor)
            .field("flood_window", &self.inner.flood_window)
            .finish()
    }
}

impl<St: RateLimitStore> MessageLimiter<St> {
    /// The gate for one connection of `subject` on `plan`.
    pub fn gate(&self, subject: Arc<str>, plan: Option<&str>) -> MessageGate {
        self.gates().gate(subject, plan)
    }

    /// Counts one message of `subject` (shared across connections). A store that fails lets
    /// the message through, as the layer lets a request through, unless it fails closed: then
    /// the answer is `Limited`, retry after a second.
    pub async fn check(&self, subject: &Arc<str>, plan: Option<&str>) -> RateDecision {
        let checked = match self.inner.check_now(subject, plan) {
            Some(checked) => checked,
            None => self.inner.check_later(subject, plan).await,
        };
        match checked {
            Checked::Decided(decision) => decision,
            Checked::Unavailable => {
                let quota = self.inner.store.quotas().quota_for(plan);
                RateDecision::Limited {
                    limit: quota.burst_size().get(),
                    window: super::quota::window_of(&quota),
                    retry_after: UNAVAILABLE_RETRY,
                }
            }
        }
    }

    /// The underlying store (e.g. for statistics).
    pub fn store(&self) -> &St {
        &self.inner.store
    }

    /// This limiter without its store type, as sessions keep it.
    pub(crate) fn gates(&self) -> MessageGates {
        MessageGates(Arc::clone(&self.inner) as Arc<dyn Gates>)
    }
}

type Later = std::pin::Pin<Box<dyn std::future::Future<Output = Checked> + Send>>;

/// A check's answer: the store's decision, or none from a fail-closed store that failed (the
/// message is refused, but is no sign of flooding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    Decided(RateDecision),
    Unavailable,
}

/// How long a client is told to wait when the store is unavailable.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);

/// What a gate needs from its limiter, whatever the store: object safe, so that gates (and the
/// WebSocket sessions holding them) are not generic over the store. A store that answers at
/// once ([`RateLimitStore::check_now`]) is never boxed.
trait Gates: Send + Sync {
    fn check_now(&self, subject: &Arc<str>, plan: Option<&str>) -> Option<Checked>;
    fn check_later(&self, subject: &Arc<str>, plan: Option<&str>) -> Later;
    fn flood_threshold(&self, plan: Option<&str>) -> u32;
    fn flood_window(&self) -> Duration;
    fn now(&self) -> Duration;
}

/// A store that failed lets the message through, or, when the store fails closed, refuses it.
fn decision_on_error<E: std::error::Error>(
    quotas: &PlanQuotas,
    plan: Option<&str>,
    e: &E,
    fails_closed: bool,
) -> Checked {
    store_failed(e, fails_closed);
    if fails_closed {
        return Checked::Unavailable;
    }
    let quota = quotas.quota_for(plan);
    Checked::Decided(RateDecision::Allowed {
        limit: quota.burst_size().get(),
        remaining: None,
        window: super::quota::window_of(&quota),
    })
}

impl<St: RateLimitStore> Gates for LimiterInner<St> {
    fn check_now(&self, subject: &Arc<str>, plan: Option<&str>) -> Option<Checked> {
        let result = self.store.check_now(subject, plan, false)?;
        let closed = self.store.fails_closed();
        Some(result.map_or_else(
            |e| decision_on_error(self.store.quotas(), plan, &e, closed),
            Checked::Decided,
        ))
    }

    fn check_later(&self, subject: &Arc<str>, plan: Option<&str>) -> Later {
        let future = self.store.check(subject, plan, false);
        let quotas = self.store.quotas().clone();
        let plan = plan.map(Box::<str>::from);
        let closed = self.store.fails_closed();
        Box::pin(async move {
            future.await.map_or_else(
                |e| decision_on_error(&quotas, plan.as_deref(), &e, closed),
                Checked::Decided,
            )
        })
    }

    /// How many refused messages within the flood window close a connection on `plan`:
    /// `(factor - 1) × window / replenish interval`, at least 1.
    fn flood_threshold(&self, plan: Option<&str>) -> u32 {
        let interval = self
            .store
            .quotas()
            .quota_for(plan)
            .replenish_interval()
            .as_nanos()
            .max(1);
        let allowed = self.flood_window.as_nanos() * u128::from(self.flood_factor - 1) / interval;
        u32::try_from(allowed).unwrap_or(u32::MAX).max(1)
    }

    fn flood_window(&self) -> Duration {
        self.flood_window
    }

    fn now(&self) -> Duration {
        self.clock.now()
    }
}

/// A [`MessageLimiter`] of any store, as WebSocket sessions keep it.
#[derive(Clone)]
pub(crate) struct MessageGates(Arc<dyn Gates>);

impl fmt::Debug for MessageGates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageLimiter")
            .field("flood_window", &self.0.flood_window())
            .finish_non_exhaustive()
    }
}

impl MessageGates {
    /// The gate for one connection of `subject` on `plan`.
    pub(crate) fn gate(&self, subject: Arc<str>, plan: Option<&str>) -> MessageGate {
        MessageGate {
            threshold: self.0.flood_threshold(plan),
            limiter: self.clone(),
            subject,
            plan: plan.map(Box::from),
            refused: [0; FLOOD_SLICES],
            latest_slice: 0,
            run_start: 0,
        }
    }
}

/// What to do with one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageVerdict {
    /// Within quota: deliver it.
    Deliver,
    /// Over quota: drop it and tell the client ([`MessageVerdict::notice`]).
    Reject {
        /// When the user may send again.
        retry_after: Duration,
    },
    /// The connection kept flooding (see [`MessageLimiter`]): close it with 1008 (policy
    /// violation).
    Close {
        /// A short close reason.
        reason: &'static str,
    },
}

impl MessageVerdict {
    /// For `Reject`, the JSON text message for the client:
    /// `{"type":"rate_limited","code":"RATE_LIMITED","retry_after_ms":N}`.
    pub fn notice(&self) -> Option<String> {
        match self {
            Self::Reject { retry_after } => Some(format!(
                r#"{{"type":"rate_limited","code":"RATE_LIMITED","retry_after_ms":{}}}"#,
                retry_after.as_millis().max(1)
            )),
            _ => None,
        }
    }
}

/// One connection's view of a [`MessageLimiter`]: counts its user's messages, and its own
/// refused messages over the flood window.
pub struct MessageGate {
    limiter: MessageGates,
    subject: Arc<str>,
    plan: Option<Box<str>>,
    /// Refused messages that close the connection when reached within the window.
    threshold: u32,
    /// Refused messages per slice of the window, a ring indexed by slice number.
    refused: [u32; FLOOD_SLICES],
    /// The slice number (time / slice length) of the latest refusal.
    latest_slice: u64,
    /// The slice in which the current run of refusals began (the window was empty before).
    run_start: u64,
}

impl fmt::Debug for MessageGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageGate")
            .field("subject", &self.subject)
            .field("plan", &self.plan)
            .field("threshold", &self.threshold)
            .field("refused_in_window", &self.refused.iter().sum::<u32>())
            .field("run_start", &self.run_start)
            .finish()
    }
}

impl MessageGate {
    /// Decides about one incoming data message (text or binary; control frames are not counted).
    ///
    /// A store that fails lets the message through (fail-open, as the layer does for requests;
    /// an `ERROR` event at most every 10 s says so), and while it fails no message is refused,
    /// so the flood close (1008) cannot trigger either. A store that fails closed
    /// ([`RateLimitStore::fails_closed`]) refuses the message instead (`Reject`, retry after a
    /// second), without counting it toward the flood close: the client is not flooding.
    pub async fn check(&mut self) -> MessageVerdict {
        let limiter = &self.limiter.0;
        let plan = self.plan.as_deref();
        let checked = match limiter.check_now(&self.subject, plan) {
            Some(checked) => checked,
            None => limiter.check_later(&self.subject, plan).await,
        };
        let decision = match checked {
            Checked::Decided(decision) => decision,
            Checked::Unavailable => {
                return MessageVerdict::Reject {
                    retry_after: UNAVAILABLE_RETRY,
                };
            }
        };
        match decision {
            RateDecision::Allowed { .. } => MessageVerdict::Deliver,
            RateDecision::Limited { retry_after, .. } => {
                if self.count_refusal() {
                    MessageVerdict::Close {
                        reason: "message rate limit exceeded",
                    }
                } else {
                    MessageVerdict::Reject { retry_after }
                }
            }
        }
    }

    /// Counts one refusal now; `true` when the connection is flooding: more refusals than the
    /// threshold within the window, in a run of refusals at least a window long.
    fn count_refusal(&mut self) -> bool {
        let limiter = &self.limiter.0;
        let slice_ns = (limiter.flood_window().as_nanos() / FLOOD_SLICES as u128).max(1);
        let slice = u64::try_from(limiter.now().as_nanos() / slice_ns).unwrap_or(u64::MAX);
        let passed = slice.saturating_sub(self.latest_slice);
        if passed >= FLOOD_SLICES as u64 {
            self.refused = [0; FLOOD_SLICES];
        } else {
            // Clear the slices that have left the window since the latest refusal.
            for s in 1..=passed {
                self.refused[((self.latest_slice + s) % FLOOD_SLICES as u64) as usize] = 0;
            }
        }
        let before = self.refused.iter().fold(0u32, |a, b| a.saturating_add(*b));
        self.latest_slice = self.latest_slice.max(slice);
        if before == 0 {
            self.run_start = self.latest_slice;
        }
        let current = &mut self.refused[(self.latest_slice % FLOOD_SLICES as u64) as usize];
        *current = current.saturating_add(1);
        let refused = before.saturating_add(1);
        // Sustained for the window, or so many at once (4 windows' worth) that waiting for the
        // window to pass would only let a burst-and-pause pattern through.
        (refused > self.threshold && self.latest_slice - self.run_start >= FLOOD_SLICES as u64)
            || refused > self.threshold.saturating_mul(4)
    }

    /// The subject this gate counts for.
    pub fn subject(&self) -> &Arc<str> {
        &self.subject
    }

    /// Moves the gate to another plan (e.g. after re-authentication).
    pub fn set_plan(&mut self, plan: Option<&str>) {
        self.threshold = self.limiter.0.flood_threshold(plan);
        self.plan = plan.map(Box::from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::rate_limit::Quota;
    use futures_util::FutureExt;
    use std::num::NonZeroU32;

    fn limiter_on(clock: &FakeClock, quota: Quota) -> MessageLimiter {
        MessageLimiter::builder(PlanQuotas::new(quota))
            .clock(clock.clone())
            .build()
            .unwrap()
    }

    #[test]
    fn budget_is_shared_across_connections_and_users_are_separate() {
        let clock = FakeClock::at_unix_secs(1_700_000_000);
        let limiter = limiter_on(&clock, Quota::per_second(NonZeroU32::new(10).unwrap()));
        let mut a1 = limiter.gate(Arc::from("alice"), None);
        let mut a2 = limiter.gate(Arc::from("alice"), None);
        let mut b = limiter.gate(Arc::from("bob"), None);
        let delivered = (0..20)
            .map(|i| {
                if i % 2 == 0 {
                    a1.check().now_or_never().unwrap()
                } else {
                    a2.check().now_or_never().unwrap()
                }
            })
            .filter(|v| *v == MessageVerdict::Deliver)
            .count();
        assert_eq!(delivered, 10);
        assert_eq!(b.check().now_or_never().unwrap(), MessageVerdict::Deliver);
        let v = a1.check().now_or_never().unwrap();
        let notice = v.notice().unwrap();
        let json: serde_json::Value = serde_json::from_str(&notice).unwrap();
        assert_eq!(json["type"], "rate_limited");
        assert_eq!(json["code"], "RATE_LIMITED");
        assert!(json["retry_after_ms"].as_u64().unwrap() >= 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(a2.check().now_or_never().unwrap(), MessageVerdict::Deliver);
    }

    #[test]
    fn flooding_at_over_twice_the_rate_closes_with_1008_whatever_the_interleaving() {
        let clock = FakeClock::at_unix_secs(1_700_000_000);
        let limiter = limiter_on(&clock, Quota::per_second(NonZeroU32::new(10).unwrap()));
        let mut gate = limiter.gate(Arc::from("u"), None);
        // 25 messages a second, evenly spaced: about 10 delivered and 15 refused each second,
        // interleaved. The old rule (10 refusals in a row) never fired.
        let mut closed_at = None;
        for i in 0..250u64 {
            if let MessageVerdict::Close { .. } = gate.check().now_or_never().unwrap() {
                closed_at = Some(i);
                break;
            }
            clock.advance(Duration::from_millis(40));
        }
        let closed_at = closed_at.expect("a client at 2.5x its rate is closed");
        // After 3 seconds of refusals, which begin once the burst of 10 is spent (~0.7 s).
        assert!(
            (85..=100).contains(&closed_at),
            "closed after {closed_at} messages"
        );
    }

    #[test]
    fn twice_the_rate_or_a_burst_is_not_flooding() {
        let clock = FakeClock::at_unix_secs(1_700_000_000);
        let limiter = limiter_on(&clock, Quota::per_second(NonZeroU32::new(10).unwrap()));
        let mut gate = limiter.gate(Arc::from("u"), None);
        for _ in 0..400 {
            assert_ne!(
                std::mem::discriminant(&gate.check().now_or_never().unwrap()),
                std::mem::discriminant(&MessageVerdict::Close { reason: "" }),
                "20 a second is twice the rate, not more"
            );
            clock.advance(Duration::from_millis(50));
        }
        // A per-minute quota's burst, all at once, is delivered and never flooding.
        let per_minute = limiter_on(&clock, Quota::per_minute(NonZeroU32::new(30).unwrap()));
        let mut gate = per_minute.gate(Arc::from("m"), None);
        for _ in 0..30 {
            assert_eq!(
                gate.check().now_or_never().unwrap(),
                MessageVerdict::Deliver
            );
        }
    }

    #[test]
    fn a_huge_burst_is_closed_without_waiting_for_the_window() {
        let clock = FakeClock::at_unix_secs(1_700_000_000);
        let limiter = limiter_on(&clock, Quota::per_second(NonZeroU32::new(10).unwrap()));
        let mut gate = limiter.gate(Arc::from("u"), None);
        // Threshold 30: the 121st refusal at once closes (10 delivered first).
        let verdicts: Vec<_> = (0..200)
            .map(|_| gate.check().now_or_never().unwrap())
            .collect();
        let closed = verdicts
            .iter()
            .position(|v| matches!(v, MessageVerdict::Close { .. }))
            .expect("closed");
        assert_eq!(closed, 10 + 120);
    }
}
