use std::time::Duration;

pub use governor::Quota;

use crate::error::ConfigError;

/// Quotas per plan, read from the request (e.g. a `plan` claim), with a default for requests
/// whose plan is unknown or absent.
///
/// ```
/// use std::num::NonZeroU32;
/// use tower_jwt_guard::rate_limit::{PlanQuotas, Quota};
///
/// let nz = |n| NonZeroU32::new(n).unwrap();
/// let quotas = PlanQuotas::new(Quota::per_second(nz(10)))
///     .plan("pro", Quota::per_second(nz(100)))?;
/// assert_eq!(quotas.quota_for(Some("pro")).burst_size().get(), 100);
/// assert_eq!(quotas.quota_for(Some("gold")).burst_size().get(), 10);
/// # Ok::<(), tower_jwt_guard::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanQuotas {
    pub(crate) default: Quota,
    pub(crate) plans: Vec<(Box<str>, Quota)>,
}

impl PlanQuotas {
    /// One quota for everyone.
    pub fn new(default: Quota) -> Self {
        Self {
            default,
            plans: Vec::new(),
        }
    }

    /// A quota for users whose plan is `name`.
    ///
    /// # Errors
    /// When `name` already has a quota.
    pub fn plan(mut self, name: impl Into<Box<str>>, quota: Quota) -> Result<Self, ConfigError> {
        let name = name.into();
        if self.plans.iter().any(|(n, _)| *n == name) {
            return Err(ConfigError::new(format!("plan {name:?} has two quotas")));
        }
        self.plans.push((name, quota));
        Ok(self)
    }

    /// The quota for `plan` (the default when absent or unknown).
    pub fn quota_for(&self, plan: Option<&str>) -> Quota {
        self.index_of(plan)
            .map_or(self.default, |i| self.plans[i].1)
    }

    /// The name of the quota that applies to `plan`, as the `RateLimit-Policy` header gives it:
    /// the plan's name when it has a quota, `"default"` otherwise.
    pub fn policy_name<'a>(&'a self, plan: Option<&str>) -> &'a str {
        self.index_of(plan).map_or("default", |i| &*self.plans[i].0)
    }

    /// The position of `plan` among the named plans.
    pub(crate) fn index_of(&self, plan: Option<&str>) -> Option<usize> {
        let plan = plan?;
        self.plans.iter().position(|(n, _)| &**n == plan)
    }

    /// The quotas in order: the default, then the named plans.
    pub(crate) fn all(&self) -> impl Iterator<Item = Quota> + '_ {
        std::iter::once(self.default).chain(self.plans.iter().map(|(_, q)| *q))
    }
}

/// A quota that never lets more than `n` requests through in any window of `period`: a burst
/// of one, and one request every `period / (n - 1)` (every `period` for `n = 1`). Unlike
/// `Quota::per_minute(n)`, whose burst of `n` lets up to about `2n` through in the first
/// `period` (see the [module docs](crate::rate_limit#bursts-what-30-per-minute-lets-through)),
/// it spaces requests out evenly.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use tower_jwt_guard::rate_limit::strict_quota;
///
/// let q = strict_quota(NonZeroU32::new(30).unwrap(), Duration::from_secs(60));
/// assert_eq!(q.burst_size().get(), 1);
/// assert_eq!(q.replenish_interval(), Duration::from_secs(60) / 29);
/// ```
pub fn strict_quota(n: std::num::NonZeroU32, period: Duration) -> Quota {
    let gaps = n.get().saturating_sub(1).max(1);
    let interval = (period / gaps).max(Duration::from_nanos(1));
    Quota::with_period(interval)
        .expect("a non-zero interval")
        .allow_burst(std::num::NonZeroU32::MIN)
}

/// The window a quota is expressed over, for the `RateLimit-Policy` header: the time to refill
/// the whole burst.
pub(crate) fn window_of(quota: &Quota) -> Duration {
    quota.burst_size_replenished_in()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    /// Admitted requests when a client asks every `step` for `total`, under `quota`.
    fn admitted(quota: Quota, step: Duration, total: Duration) -> Vec<Duration> {
        use governor::clock::FakeRelativeClock;
        let clock = FakeRelativeClock::default();
        let limiter = governor::RateLimiter::direct_with_clock(quota, clock.clone());
        let mut at = Duration::ZERO;
        let mut out = Vec::new();
        while at <= total {
            if limiter.check().is_ok() {
                out.push(at);
            }
            clock.advance(step);
            at += step;
        }
        out
    }

    #[test]
    fn gcra_lets_about_twice_the_nominal_figure_through_at_first_and_strict_does_not() {
        let n = NonZeroU32::new(30).unwrap();
        let minute = Duration::from_secs(60);
        let step = Duration::from_millis(100);
        let gcra = admitted(Quota::per_minute(n), step, Duration::from_secs(10));
        assert_eq!(gcra.len(), 35, "the documented 35 in 10 s");
        // Strict: no window of a minute ever holds more than 30.
        let strict = admitted(strict_quota(n, minute), step, Duration::from_secs(300));
        for (i, start) in strict.iter().enumerate() {
            let within = strict[i..]
                .iter()
                .take_while(|t| **t < *start + minute)
                .count();
            assert!(within <= 30, "{within} in the minute from {start:?}");
        }
        assert!(
            strict.len() >= 140,
            "the long-run rate is kept: {}",
            strict.len()
        );
    }
}
