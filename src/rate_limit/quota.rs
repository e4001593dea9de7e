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

/// The window a quota is expressed over, for the `RateLimit-Policy` header: the time to refill
/// the whole burst.
pub(crate) fn window_of(quota: &Quota) -> Duration {
    quota.burst_size_replenished_in()
}
