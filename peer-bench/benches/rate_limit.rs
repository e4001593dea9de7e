//! Per-user rate limiting: tower-jwt-guard's `UserRateLimitLayer` against `tower_governor`, keyed
//! the same way (the authenticated subject read from the request's `AuthContext`), over the
//! same trivial service, in the same run. Quotas are large enough that every check is allowed:
//! what is measured is the cost of a check.
//!
//! A second group, `per_user_rate_limit_interleaved`, alternates blocks of 32 requests through
//! each layer inside every sample and reports the difference each way (`a_minus_b`, floored at
//! 1 ns): machine load then hits both alike, where separate runs of each moved by ±20 ns.
//!
//! `cargo bench -p tower-jwt-guard-peer-bench --bench rate_limit`

use std::convert::Infallible;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_governor::GovernorError;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_jwt_guard::AuthContext;
use tower_jwt_guard::rate_limit::{PlanQuotas, Quota, UserRateLimitLayer};

/// tower_governor keyed on the authenticated subject, as tower-jwt-guard does.
#[derive(Clone)]
struct SubjectKey;

impl KeyExtractor for SubjectKey {
    type Key = Arc<str>;

    fn extract<T>(&self, req: &Request<T>) -> Result<Arc<str>, GovernorError> {
        req.extensions()
            .get::<AuthContext>()
            .and_then(|c| c.subject_arc().cloned())
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

async fn ok(_req: Request<Body>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Body::empty()))
}

fn request(ctx: &AuthContext) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    req.extensions_mut().insert(ctx.clone());
    req
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let huge = NonZeroU32::new(1_000_000_000).unwrap();
    let ours = ServiceBuilder::new()
        .layer(
            UserRateLimitLayer::builder(PlanQuotas::new(
                Quota::with_period(Duration::from_nanos(1))
                    .unwrap()
                    .allow_burst(huge),
            ))
            .build()
            .unwrap(),
        )
        .service_fn(ok);
    let config = GovernorConfigBuilder::default()
        .period(Duration::from_nanos(1))
        .burst_size(huge.get())
        .key_extractor(SubjectKey)
        .finish()
        .unwrap();
    let theirs = ServiceBuilder::new()
        .layer(tower_governor::GovernorLayer::new(config))
        .service_fn(ok);
    let bare = ServiceBuilder::new().service_fn(ok);

    let hot = AuthContext::for_subject("alice");
    let many: Vec<AuthContext> = (0..100_000)
        .map(|n| AuthContext::for_subject(format!("user-{n}")))
        .collect();

    let mut group = c.benchmark_group("per_user_rate_limit");
    macro_rules! case {
        ($name:expr, $svc:expr, $ctxs:expr) => {{
            let svc = $svc.clone();
            let ctxs: &[AuthContext] = $ctxs;
            let mut i = 0usize;
            group.bench_function($name, |b| {
                b.to_async(&rt).iter(|| {
                    i = (i + 1) % ctxs.len();
                    let req = request(&ctxs[i]);
                    let mut svc = svc.clone();
                    async move { black_box(svc.ready().await.unwrap().call(req).await) }
                })
            });
        }};
    }
    case!(
        "bare_service/one_hot_user",
        bare,
        std::slice::from_ref(&hot)
    );
    case!(
        "tower_jwt_guard/one_hot_user",
        ours,
        std::slice::from_ref(&hot)
    );
    case!(
        "tower_governor/one_hot_user",
        theirs,
        std::slice::from_ref(&hot)
    );
    case!("bare_service/100k_users", bare, &many);
    case!("tower_jwt_guard/100k_users", ours, &many);
    case!("tower_governor/100k_users", theirs, &many);
    group.finish();

    let mut group = c.benchmark_group("per_user_rate_limit_interleaved");
    for (case, ctxs) in [
        ("one_hot_user", std::slice::from_ref(&hot)),
        ("100k_users", &many[..]),
    ] {
        for ours_first in [true, false] {
            let name = if ours_first {
                "tower_jwt_guard_minus_tower_governor"
            } else {
                "tower_governor_minus_tower_jwt_guard"
            };
            let (ours, theirs) = (ours.clone(), theirs.clone());
            let mut next = 0usize;
            group.bench_function(format!("{name}/{case}"), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let (mut ours, mut theirs) = (ours.clone(), theirs.clone());
                    let start_at = next;
                    next = next.wrapping_add(iters as usize);
                    async move {
                        let (mut t_ours, mut t_theirs) = (Duration::ZERO, Duration::ZERO);
                        let mut done = 0u64;
                        while done < iters {
                            let n = (iters - done).min(BLOCK);
                            let ctx = |i: u64| &ctxs[(start_at + i as usize) % ctxs.len()];
                            let start = Instant::now();
                            for i in done..done + n {
                                let req = request(ctx(i));
                                black_box(ours.ready().await.unwrap().call(req).await.unwrap());
                            }
                            t_ours += start.elapsed();
                            let start = Instant::now();
                            for i in done..done + n {
                                let req = request(ctx(i));
                                black_box(theirs.ready().await.unwrap().call(req).await.unwrap());
                            }
                            t_theirs += start.elapsed();
                            done += n;
                        }
                        tower_jwt_guard_peer_bench::difference(t_ours, t_theirs, ours_first)
                    }
                })
            });
        }
    }
    group.finish();
}

/// Requests per block in the interleaved comparison.
const BLOCK: u64 = 32;

criterion_group!(benches, bench);
criterion_main!(benches);
