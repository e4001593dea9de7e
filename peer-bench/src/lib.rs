//! Benchmarks only; see `benches/`. What the benches share lives here.

use std::time::Duration;

/// The interleaved comparisons' result for one sample: `ours - theirs` (or the reverse when
/// `ours_first` is false), floored at 1 ns because criterion refuses zero. A median near zero
/// then means "never slower in a sample".
pub fn difference(t_ours: Duration, t_theirs: Duration, ours_first: bool) -> Duration {
    let (a, b) = if ours_first {
        (t_ours, t_theirs)
    } else {
        (t_theirs, t_ours)
    };
    a.saturating_sub(b).max(Duration::from_nanos(1))
}
