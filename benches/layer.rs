//! Per-request cost of an axum router with and without [`JwtAuthLayer`], HS256.
//!
//! Every case is one in-process request (`tower::ServiceExt::oneshot` on a clone of the router)
//! on a tokio current-thread runtime: building the request, routing, the handler, and dropping
//! the response are included for both the bare and the guarded router, so their difference is
//! what the layer adds. `Validator::validate` and `jsonwebtoken::decode` on the same token are
//! in the same group, so "layer overhead vs decode" comes from one run. The default layer keeps
//! verified tokens, so its repeated token is a cache hit; `layer_uncached` and
//! `valid_new_tokens` measure a token verified in full (its first use).
//!
//! Run: `cargo bench --bench layer -- --measurement-time 5` (see BENCHMARKS.md).

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, StatusCode, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use tower::ServiceExt;
use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy};
use tower_jwt_guard::rate_limit::{PlanQuotas, Quota, UserRateLimitLayer};
use tower_jwt_guard::validate::Validator;

mod common;
use common::{BenchClaims, SECRET, claims};

const OTHER_SECRET: &[u8] = b"another-secret-another-secret-another-secret";

fn sign(claims: &BenchClaims, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .expect("signing the bench token")
}

fn request(token: Option<&str>) -> Request<Body> {
    // The peer address axum's `ConnectInfo` gives, so that the lockout of the stack has an
    // address to check (the other routers ignore it).
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40_000));
    let mut builder = Request::get("/").extension(axum::extract::ConnectInfo(peer));
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::empty()).expect("a valid request")
}

fn routes() -> Router {
    Router::new().route("/", get(|| async { "hello, world" }))
}

fn bench_layer(c: &mut Criterion) {
    tower_jwt_guard::crypto::install_crypto_provider();
    let claims = claims();
    let payload_len = serde_json::to_vec(&claims).expect("claims to JSON").len();
    let valid = sign(&claims, SECRET);
    let invalid = sign(&claims, OTHER_SECRET);
    eprintln!(
        "layer bench: backend {}, payload {payload_len} bytes, token {} bytes",
        tower_jwt_guard::crypto::backend_name(),
        valid.len()
    );

    let validator = Validator::<BenchClaims>::builder()
        .key(Key::hmac(SECRET).expect("a 32+ byte secret"))
        .build()
        .expect("a valid configuration");
    let bare = routes();
    // The default layer: a token seen before is taken from its cache of verified tokens.
    let guarded = routes().layer(JwtAuthLayer::new(validator.clone()));
    // Every token verified in full, as on its first use.
    let uncached = routes().layer(
        JwtAuthLayer::builder(validator.clone())
            .verified_token_cache(0)
            .build()
            .expect("a valid configuration"),
    );
    // The full stack of the README: lockout → auth → per-user rate limit (a quota never
    // reached), each with its defaults.
    let stack = routes()
        .layer(
            UserRateLimitLayer::builder(PlanQuotas::new(Quota::per_second(
                std::num::NonZeroU32::MAX,
            )))
            .build()
            .expect("a valid configuration"),
        )
        .layer(JwtAuthLayer::new(validator.clone()))
        .layer(
            LockoutLayer::builder(LockoutPolicy::new())
                .build()
                .expect("a valid configuration"),
        );
    // Distinct valid tokens, four times the default cache: the cache fills up and the rest
    // are verified in full (a lookup that misses, then validation).
    let fresh: Vec<String> = (0..4 * tower_jwt_guard::auth::DEFAULT_VERIFIED_CACHE as u64)
        .map(|i| {
            let mut c = claims.clone();
            c.iat += i;
            sign(&c, SECRET)
        })
        .collect();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");

    // Sanity checks, so a broken setup cannot produce flattering numbers.
    rt.block_on(async {
        let status = |router: &Router, token: Option<&str>| {
            let fut = router.clone().oneshot(request(token));
            async move { fut.await.expect("infallible").status() }
        };
        assert_eq!(status(&bare, Some(&valid)).await, StatusCode::OK);
        assert_eq!(status(&guarded, Some(&valid)).await, StatusCode::OK);
        assert_eq!(status(&uncached, Some(&valid)).await, StatusCode::OK);
        assert_eq!(status(&stack, Some(&valid)).await, StatusCode::OK);
        assert_eq!(
            status(&stack, Some(&invalid)).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(status(&guarded, Some(&fresh[0])).await, StatusCode::OK);
        assert_eq!(status(&guarded, None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            status(&guarded, Some(&invalid)).await,
            StatusCode::UNAUTHORIZED
        );
    });
    assert!(validator.validate(&valid).is_ok());
    assert!(validator.validate(&invalid).is_err());

    let decoding_key = DecodingKey::from_secret(SECRET).unwrap();
    let validation = Validation::new(Algorithm::HS256);
    assert!(jsonwebtoken::decode::<BenchClaims>(&valid, &decoding_key, &validation).is_ok());

    let mut group = c.benchmark_group("layer_hs256");
    let cases: [(&str, Option<&str>); 3] = [
        ("valid", Some(&valid)),
        ("missing", None),
        ("invalid", Some(&invalid)),
    ];
    for (case, token) in cases {
        let routers: &[(&str, &Router)] = if case == "valid" {
            &[
                ("bare", &bare),
                ("layer", &guarded),
                ("layer_uncached", &uncached),
            ]
        } else {
            &[("bare", &bare), ("layer", &guarded)]
        };
        for &(which, router) in routers {
            group.bench_function(format!("{which}/{case}"), |b| {
                b.to_async(&rt).iter(|| async {
                    let response = router
                        .clone()
                        .oneshot(request(black_box(token)))
                        .await
                        .expect("infallible");
                    black_box(response.status())
                });
            });
        }
    }
    group.bench_function("validate/valid", |b| {
        b.iter(|| validator.validate(black_box(&valid)).expect("valid"));
    });
    group.bench_function("validate/invalid", |b| {
        b.iter(|| {
            validator
                .validate(black_box(&invalid))
                .expect_err("invalid")
        });
    });
    group.bench_function("jsonwebtoken_decode/valid", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<BenchClaims>(black_box(&valid), &decoding_key, &validation)
                .expect("valid")
        });
    });
    group.bench_function("jsonwebtoken_decode/invalid", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<BenchClaims>(black_box(&invalid), &decoding_key, &validation)
                .expect_err("invalid")
        });
    });
    group.finish();

    // The same differences measured directly: blocks of requests through the guarded router,
    // the bare router and (for tokens) `jsonwebtoken::decode` alternate within one sample, so
    // a change in machine load hits all of them alike instead of whichever ran later. The
    // reported time per iteration is `layer - bare` or `layer - bare - decode`.
    let mut group = c.benchmark_group("layer_hs256_overhead");
    // (case, guarded router, tokens: one, or a pool cycled through).
    let overhead_cases: [(&str, &Router, Vec<&str>); 6] = [
        ("valid", &guarded, vec![valid.as_str()]),
        ("valid_full_stack", &stack, vec![valid.as_str()]),
        ("valid_uncached", &uncached, vec![valid.as_str()]),
        (
            "valid_new_tokens",
            &guarded,
            fresh.iter().map(String::as_str).collect(),
        ),
        ("missing", &guarded, vec![]),
        ("invalid", &guarded, vec![invalid.as_str()]),
    ];
    for (case, router, tokens) in &overhead_cases {
        let variants: &[bool] = if tokens.is_empty() {
            &[false]
        } else {
            &[false, true]
        };
        for &subtract_decode in variants {
            let what = if subtract_decode {
                "layer_minus_bare_minus_decode"
            } else {
                "layer_minus_bare"
            };
            let (bare, guarded, key, validation) = (&bare, *router, &decoding_key, &validation);
            let tokens = &tokens[..];
            group.bench_function(format!("{what}/{case}"), |b| {
                let mut next = 0usize;
                b.to_async(&rt).iter_custom(|iters| {
                    let start_at = next;
                    next = next.wrapping_add(iters as usize);
                    async move {
                        let token = |i: u64| -> Option<&str> {
                            (!tokens.is_empty())
                                .then(|| tokens[(start_at + i as usize) % tokens.len()])
                        };
                        let (mut t_layer, mut t_bare, mut t_decode) =
                            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
                        let mut done = 0;
                        while done < iters {
                            let n = (iters - done).min(BLOCK);
                            let start = Instant::now();
                            for i in done..done + n {
                                let response =
                                    guarded.clone().oneshot(request(black_box(token(i))));
                                black_box(response.await.expect("infallible").status());
                            }
                            t_layer += start.elapsed();
                            let start = Instant::now();
                            for i in done..done + n {
                                let response = bare.clone().oneshot(request(black_box(token(i))));
                                black_box(response.await.expect("infallible").status());
                            }
                            t_bare += start.elapsed();
                            if subtract_decode {
                                let start = Instant::now();
                                for i in done..done + n {
                                    let _ = black_box(jsonwebtoken::decode::<BenchClaims>(
                                        black_box(token(i).expect("a token")),
                                        key,
                                        validation,
                                    ));
                                }
                                t_decode += start.elapsed();
                            }
                            done += n;
                        }
                        // Floored at 1 ns per sample (criterion refuses zero): a median near 0
                        // means the layer's cost is within the noise of decode's own.
                        t_layer
                            .saturating_sub(t_bare)
                            .saturating_sub(t_decode)
                            .max(Duration::from_nanos(1))
                    }
                });
            });
        }
    }
    group.finish();
}

/// Requests per block in the interleaved overhead measurements.
const BLOCK: u64 = 32;

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    targets = bench_layer
}
criterion_main!(benches);
