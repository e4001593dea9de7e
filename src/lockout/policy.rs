use std::num::NonZeroU32;
use std::time::Duration;

use ipnet::IpNet;

use crate::error::{ConfigError, ErrorCode};

/// Repeat offenders are locked longer: the n-th lockout of an address lasts
/// `lock_duration × factor^(n-1)`, at most `max` (as fail2ban's `bantime.increment` and
/// Keycloak's wait increment do). An address's history is remembered for `max` after its last
/// lockout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escalation {
    /// Multiplier per further lockout (at least 2 to have an effect).
    pub factor: u32,
    /// The longest lockout.
    pub max: Duration,
}

/// When an address gets locked out, for how long, and what counts as a failure.
///
/// Defaults: 5 failures within 15 minutes lock for 15 minutes; no escalation; `INVALID_TOKEN`
/// and `TOKEN_EXPIRED` count; a request without a token does not (it is not an attempt to guess
/// a credential, and counting it would let anyone lock out a shared address by sending empty
/// requests); success resets nothing; 100 000 tracked addresses at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub(crate) max_failures: NonZeroU32,
    pub(crate) window: Duration,
    pub(crate) lock_duration: Duration,
    pub(crate) escalation: Option<Escalation>,
    pub(crate) allow_list: Vec<IpNet>,
    pub(crate) counted: Vec<ErrorCode>,
    pub(crate) reset_on_success: bool,
    pub(crate) capacity: usize,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: NonZeroU32::new(5).expect("5 is not zero"),
            window: Duration::from_secs(15 * 60),
            lock_duration: Duration::from_secs(15 * 60),
            escalation: None,
            allow_list: Vec::new(),
            counted: vec![ErrorCode::InvalidToken, ErrorCode::TokenExpired],
            reset_on_success: false,
            capacity: 100_000,
        }
    }
}

impl LockoutPolicy {
    /// The defaults (see the type's docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// Failures within the window that lock an address.
    pub fn max_failures(mut self, n: NonZeroU32) -> Self {
        self.max_failures = n;
        self
    }

    /// The window in which failures are counted, from the first failure.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How long a lockout lasts (the first one, with escalation).
    pub fn lock_duration(mut self, duration: Duration) -> Self {
        self.lock_duration = duration;
        self
    }

    /// Longer lockouts for repeat offenders.
    pub fn escalation(mut self, escalation: Escalation) -> Self {
        self.escalation = Some(escalation);
        self
    }

    /// Addresses or CIDRs that are never counted nor locked.
    ///
    /// # Errors
    /// When an entry is neither an address nor a CIDR.
    pub fn allow<I, S>(mut self, cidrs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for cidr in cidrs {
            self.allow_list
                .push(crate::client_ip::parse_net(cidr.as_ref())?);
        }
        Ok(self)
    }

    /// Which rejection codes count as failures (default `INVALID_TOKEN`, `TOKEN_EXPIRED`).
    pub fn count(mut self, codes: impl IntoIterator<Item = ErrorCode>) -> Self {
        self.counted = codes.into_iter().collect();
        self
    }

    /// A successful authentication from an address clears its failure count (not a lockout in
    /// force). Off by default: an attacker holding one valid token could otherwise wash its
    /// failures away between guesses.
    pub fn reset_on_success(mut self) -> Self {
        self.reset_on_success = true;
        self
    }

    /// How many addresses the in-memory store tracks at most (default 100 000).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.window.is_zero() || self.lock_duration.is_zero() {
            return Err(ConfigError::new(
                "lockout window and duration must not be zero",
            ));
        }
        if self.capacity == 0 {
            return Err(ConfigError::new("lockout capacity must not be zero"));
        }
        if let Some(e) = self.escalation
            && e.max < self.lock_duration
        {
            return Err(ConfigError::new(
                "the escalation maximum must not be shorter than the lock duration",
            ));
        }
        Ok(())
    }

    /// The length of the lockout number `previous + 1`.
    pub fn lock_duration_for(&self, previous_lockouts: u32) -> Duration {
        match self.escalation {
            None => self.lock_duration,
            Some(e) => {
                let factor = e.factor.max(1).saturating_pow(previous_lockouts);
                self.lock_duration.saturating_mul(factor).min(e.max)
            }
        }
    }

    /// How long an address's history is kept after its last lockout ends.
    pub(crate) fn memory(&self) -> Duration {
        self.escalation.map_or(Duration::ZERO, |e| e.max)
    }

    pub(crate) fn counts(&self, code: ErrorCode) -> bool {
        self.counted.contains(&code)
    }

    pub(crate) fn is_allowed(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allow_list.iter().any(|net| net.contains(&ip))
    }

    /// The configured maximum failures.
    pub fn failures_to_lock(&self) -> u32 {
        self.max_failures.get()
    }

    /// The configured window.
    pub fn failure_window(&self) -> Duration {
        self.window
    }

    /// The configured capacity.
    pub fn tracked_capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalation_multiplies_up_to_the_cap() {
        let p = LockoutPolicy::new()
            .lock_duration(Duration::from_secs(60))
            .escalation(Escalation {
                factor: 3,
                max: Duration::from_secs(600),
            });
        assert_eq!(p.lock_duration_for(0), Duration::from_secs(60));
        assert_eq!(p.lock_duration_for(1), Duration::from_secs(180));
        assert_eq!(p.lock_duration_for(2), Duration::from_secs(540));
        assert_eq!(p.lock_duration_for(3), Duration::from_secs(600));
        assert_eq!(p.lock_duration_for(40), Duration::from_secs(600));
    }

    #[test]
    fn defaults_count_bad_tokens_only() {
        let p = LockoutPolicy::new();
        assert!(p.counts(ErrorCode::InvalidToken));
        assert!(p.counts(ErrorCode::TokenExpired));
        assert!(!p.counts(ErrorCode::MissingToken));
        assert!(!p.counts(ErrorCode::Forbidden));
        assert!(p.validate().is_ok());
    }

    #[test]
    fn invalid_policies_are_refused() {
        assert!(LockoutPolicy::new().capacity(0).validate().is_err());
        assert!(
            LockoutPolicy::new()
                .window(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(
            LockoutPolicy::new()
                .escalation(Escalation {
                    factor: 2,
                    max: Duration::from_secs(1)
                })
                .validate()
                .is_err()
        );
        assert!(LockoutPolicy::new().allow(["bad"]).is_err());
    }
}
