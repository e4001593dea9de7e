//! The check alone, without a service around it: tower-jwt-guard's in-memory store against
//! governor's keyed limiter as tower_governor configures it.
//!
//! `cargo bench -p tower-jwt-guard-peer-bench --bench check_only`

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use tower_jwt_guard::rate_limit::{MemoryRateLimitStore, PlanQuotas};

fn bench(c: &mut Criterion) {
    let quota = Quota::with_period(Duration::from_nanos(1))
        .unwrap()
        .allow_burst(NonZeroU32::new(1_000_000_000).unwrap());
    let ours = MemoryRateLimitStore::new(PlanQuotas::new(quota));
    let theirs = RateLimiter::<Arc<str>, _, _>::dashmap(quota);
    let informed = RateLimiter::<Arc<str>, _, _>::dashmap(quota)
        .with_middleware::<governor::middleware::StateInformationMiddleware>();
    let key: Arc<str> = Arc::from("alice");
    let mut group = c.benchmark_group("check_only");
    group.bench_function("tower_jwt_guard_store", |b| {
        b.iter(|| black_box(ours.decide_with(black_box(&key), None, false)))
    });
    group.bench_function("governor_keyed", |b| {
        b.iter(|| black_box(theirs.check_key(black_box(&key)).is_ok()))
    });
    group.bench_function("governor_keyed_state_information", |b| {
        b.iter(|| black_box(informed.check_key(black_box(&key)).is_ok()))
    });
    // Blocks of 256 checks of each, alternating inside every sample; the difference each way,
    // floored at 1 ns (see `rate_limit.rs`).
    for (name, ours_first) in [
        ("tower_jwt_guard_minus_governor_keyed", true),
        ("governor_keyed_minus_tower_jwt_guard", false),
    ] {
        group.bench_function(format!("interleaved/{name}"), |b| {
            b.iter_custom(|iters| {
                let (mut t_ours, mut t_theirs) = (Duration::ZERO, Duration::ZERO);
                let mut done = 0;
                while done < iters {
                    let n = (iters - done).min(256);
                    let start = Instant::now();
                    for _ in 0..n {
                        black_box(ours.decide_with(black_box(&key), None, false));
                    }
                    t_ours += start.elapsed();
                    let start = Instant::now();
                    for _ in 0..n {
                        black_box(theirs.check_key(black_box(&key)).is_ok());
                    }
                    t_theirs += start.elapsed();
                    done += n;
                }
                tower_jwt_guard_peer_bench::difference(t_ours, t_theirs, ours_first)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
