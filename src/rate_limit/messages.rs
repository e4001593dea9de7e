use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{MemoryRateStore, PlanQuotas, RateDecision};
use crate::clock::Clock;

/// The default number of excess messages in a row tolerated before a connection is closed.
pub const DEFAULT_FLOOD_TOLERANCE: u32 = 10;

/// The WebSocket close code for a client that keeps flooding (1008, policy violation).
pub const POLICY_VIOLATION: u16 = 1008;

/// Per-user limits on WebSocket messages, shared by all of a user's connections (several
/// devices share one budget). Cheap to clone.
///
/// Each connection takes a [`MessageGate`] and asks it about every incoming data message.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::sync::Arc;
/// use tower_jwt_guard::rate_limit::{MessageLimiter, MessageVerdict, PlanQuotas, Quota};
///
/// let limiter = MessageLimiter::new(PlanQuotas::new(Quota::per_second(NonZeroU32::new(10).unwrap())));
/// let mut phone = limiter.gate(Arc::from("alice"), None);
/// let mut laptop = limiter.gate(Arc::from("alice"), None);
/// for _ in 0..5 {
///     assert_eq!(phone.check(), MessageVerdict::Deliver);
///     assert_eq!(laptop.check(), MessageVerdict::Deliver);
/// }
/// assert!(matches!(phone.check(), MessageVerdict::Reject { .. })); // the 11th of alice's messages
/// ```
#[derive(Clone)]
pub struct MessageLimiter {
    store: Arc<MemoryRateStore>,
    tolerance: u32,
}

impl fmt::Debug for MessageLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageLimiter")
            .field("store", &self.store)
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl MessageLimiter {
    /// A limiter for `quotas` on a fast monotonic clock.
    pub fn new(quotas: PlanQuotas) -> Self {
        Self::from_store(MemoryRateStore::new(quotas))
    }

    /// A limiter for `quotas` on `clock` (for tests with a `FakeClock`).
    pub fn with_clock(quotas: PlanQuotas, clock: Arc<dyn Clock>) -> Self {
        Self::from_store(MemoryRateStore::with_clock(quotas, clock))
    }

    fn from_store(store: MemoryRateStore) -> Self {
        Self {
            store: Arc::new(store),
            tolerance: DEFAULT_FLOOD_TOLERANCE,
        }
    }

    /// How many excess messages in a row a connection may send before it is closed with 1008
    /// (default 10).
    pub fn flood_tolerance(mut self, tolerance: u32) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The gate for one connection of `subject` on `plan`.
    pub fn gate(&self, subject: Arc<str>, plan: Option<&str>) -> MessageGate {
        MessageGate {
            limiter: self.clone(),
            subject,
            plan: plan.map(Box::from),
            strikes: 0,
        }
    }

    /// Counts one message of `subject` (shared across connections).
    pub fn check(&self, subject: &Arc<str>, plan: Option<&str>) -> RateDecision {
        self.store.decide_with(subject, plan, false)
    }

    /// The underlying store (e.g. for statistics).
    pub fn store(&self) -> &MemoryRateStore {
        &self.store
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
    /// The connection kept flooding past the tolerance: close it with `code`.
    Close {
        /// The close code (1008).
        code: u16,
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

/// One connection's view of a [`MessageLimiter`]: counts its user's messages and its own
/// excess in a row.
pub struct MessageGate {
    limiter: MessageLimiter,
    subject: Arc<str>,
    plan: Option<Box<str>>,
    strikes: u32,
}

impl fmt::Debug for MessageGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageGate")
            .field("subject", &self.subject)
            .field("plan", &self.plan)
            .field("strikes", &self.strikes)
            .finish()
    }
}

impl MessageGate {
    /// Decides about one incoming data message (text or binary; control frames are not counted).
    pub fn check(&mut self) -> MessageVerdict {
        match self.limiter.check(&self.subject, self.plan.as_deref()) {
            RateDecision::Allowed { .. } => {
                self.strikes = 0;
                MessageVerdict::Deliver
            }
            RateDecision::Limited { retry_after, .. } => {
                self.strikes += 1;
                if self.strikes > self.limiter.tolerance {
                    MessageVerdict::Close {
                        code: POLICY_VIOLATION,
                        reason: "message rate limit exceeded",
                    }
                } else {
                    MessageVerdict::Reject { retry_after }
                }
            }
        }
    }

    /// The subject this gate counts for.
    pub fn subject(&self) -> &Arc<str> {
        &self.subject
    }

    /// Moves the gate to another plan (e.g. after re-authentication).
    pub fn set_plan(&mut self, plan: Option<&str>) {
        self.plan = plan.map(Box::from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::rate_limit::Quota;
    use std::num::NonZeroU32;

    #[test]
    fn budget_is_shared_across_connections_and_users_are_separate() {
        let clock = FakeClock::at_unix_secs(1_700_000_000);
        let limiter = MessageLimiter::with_clock(
            PlanQuotas::new(Quota::per_second(NonZeroU32::new(10).unwrap())),
            Arc::new(clock.clone()),
        );
        let mut a1 = limiter.gate(Arc::from("alice"), None);
        let mut a2 = limiter.gate(Arc::from("alice"), None);
        let mut b = limiter.gate(Arc::from("bob"), None);
        let delivered = (0..20)
            .map(|i| if i % 2 == 0 { a1.check() } else { a2.check() })
            .filter(|v| *v == MessageVerdict::Deliver)
            .count();
        assert_eq!(delivered, 10);
        assert_eq!(b.check(), MessageVerdict::Deliver);
        let v = a1.check();
        let notice = v.notice().unwrap();
        let json: serde_json::Value = serde_json::from_str(&notice).unwrap();
        assert_eq!(json["type"], "rate_limited");
        assert_eq!(json["code"], "RATE_LIMITED");
        assert!(json["retry_after_ms"].as_u64().unwrap() >= 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(a2.check(), MessageVerdict::Deliver);
    }

    #[test]
    fn flooding_past_tolerance_closes_with_1008() {
        let limiter = MessageLimiter::with_clock(
            PlanQuotas::new(Quota::per_second(NonZeroU32::new(1).unwrap())),
            Arc::new(FakeClock::at_unix_secs(1)),
        )
        .flood_tolerance(3);
        let mut gate = limiter.gate(Arc::from("u"), None);
        assert_eq!(gate.check(), MessageVerdict::Deliver);
        for _ in 0..3 {
            assert!(matches!(gate.check(), MessageVerdict::Reject { .. }));
        }
        assert_eq!(
            gate.check(),
            MessageVerdict::Close {
                code: 1008,
                reason: "message rate limit exceeded"
            }
        );
    }
}
