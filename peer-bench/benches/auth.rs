//! tower-jwt-guard against jwt-authorizer, every authentication path, one run, interleaved.
//!
//! Each guard runs in front of its own bare router: tower-jwt-guard on axum 0.8, jwt-authorizer
//! (which is on axum 0.7) on axum 0.7, each route answering `"hello, world"`. What a guard
//! *adds* is its router's time per request minus the bare router's, both measured in the same
//! round. A round runs one block of requests through each of the four routers of a case, in
//! turn, so a change of load hits all four alike; the figures are medians over the rounds, and
//! the ratio is ours / jwt-authorizer's added cost.
//!
//! Requests are in-process (`tower::ServiceExt::oneshot` on a clone of the router) on a tokio
//! current-thread runtime: one core. The token is HS256 (or RS256 / ES256 for those rows) with
//! claims `sub`, `exp`, `iat` and `type`, sent as `Authorization: Bearer`.
//!
//! Run (about two minutes):
//! `cargo bench -p tower-jwt-guard-peer-bench --bench auth` (`ROUNDS=n` and `BLOCK=n` change
//! the number of rounds, 41 by default, and requests per block, 2 000). `--quick` (or
//! `QUICK=1`, or `cargo test --benches`) runs 5 rounds of 200 requests, a smoke for CI; `ONLY=text` runs the paths whose
//! name contains `text` (for a profiler).

use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use tower_jwt_guard::JwtAuthLayer;
use tower_jwt_guard::keys::Key;
use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy};
use tower_jwt_guard::rate_limit::{PlanQuotas, Quota, UserRateLimitLayer};
use tower_jwt_guard::validate::Validator;

use axum07 as old;

const SECRET: &str = "peer-bench-secret-peer-bench-secret-0123";
const OTHER_SECRET: &str = "another-secret-another-secret-another-000";
const RSA_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/ec_public.pem");

/// The claims both guards decode into.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
    #[serde(rename = "type")]
    kind: String,
}

fn claims(i: u64) -> Claims {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    Claims {
        sub: "user-4b5e-4d1a".into(),
        exp: now + 24 * 3600,
        iat: now - i,
        kind: "access".into(),
    }
}

fn sign(alg: jsonwebtoken::Algorithm, claims: &Claims, key: &jsonwebtoken::EncodingKey) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), claims, key).expect("signing")
}

// ---- the two frameworks' requests and routers ------------------------------------------------

fn peer_addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 40_000))
}

fn new_request(token: Option<&str>) -> http::Request<axum::body::Body> {
    let mut b = http::Request::get("/").extension(axum::extract::ConnectInfo(peer_addr()));
    if let Some(token) = token {
        b = b.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    b.body(axum::body::Body::empty()).expect("a request")
}

fn old_request(token: Option<&str>) -> http::Request<old::body::Body> {
    let mut b = http::Request::get("/").extension(old::extract::ConnectInfo(peer_addr()));
    if let Some(token) = token {
        b = b.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    b.body(old::body::Body::empty()).expect("a request")
}

fn new_routes() -> axum::Router {
    axum::Router::new().route("/", axum::routing::get(|| async { "hello, world" }))
}

fn old_routes() -> old::Router {
    old::Router::new().route("/", old::routing::get(|| async { "hello, world" }))
}

/// One router of either framework, called the same way.
#[derive(Clone)]
enum Router {
    New(axum::Router),
    Old(old::Router),
}

impl Router {
    /// Sends `tokens[i % len]` (or no token) `n` times; the status of the last answer.
    async fn run(&self, tokens: &[Option<String>], start: usize, n: usize) -> u16 {
        let mut status = 0;
        for i in 0..n {
            let token = tokens[(start + i) % tokens.len()].as_deref();
            status = match self {
                Router::New(r) => {
                    let res = r.clone().oneshot(new_request(black_box(token))).await;
                    res.expect("infallible").status().as_u16()
                }
                Router::Old(r) => {
                    let res = r.clone().oneshot(old_request(black_box(token))).await;
                    res.expect("infallible").status().as_u16()
                }
            };
            black_box(status);
        }
        status
    }
}

// ---- the guards ------------------------------------------------------------------------------

fn ours(key: Key, cache: bool) -> axum::Router {
    let validator = Validator::<Claims>::builder()
        .key(key)
        .build()
        .expect("a valid configuration");
    let layer = if cache {
        JwtAuthLayer::new(validator)
    } else {
        JwtAuthLayer::builder(validator)
            .verified_token_cache(0)
            .build()
            .expect("a valid configuration")
    };
    new_routes().layer(layer)
}

/// The three layers as one (`ServiceBuilder`, applied with one `Router::layer`): axum boxes
/// each `Router::layer`'s service, future and body, so three calls cost two boxings more.
fn ours_stack(key: Key) -> axum::Router {
    let validator = Validator::<Claims>::builder()
        .key(key)
        .build()
        .expect("a valid configuration");
    new_routes().layer(
        tower::ServiceBuilder::new()
            .layer(
                LockoutLayer::builder(LockoutPolicy::new())
                    .build()
                    .expect("a valid configuration"),
            )
            .layer(JwtAuthLayer::new(validator))
            .layer(
                UserRateLimitLayer::builder(PlanQuotas::new(Quota::per_second(
                    std::num::NonZeroU32::MAX,
                )))
                .build()
                .expect("a valid configuration"),
            ),
    )
}

/// The same three layers, one `Router::layer` each (innermost first).
fn ours_stack_routers(key: Key) -> axum::Router {
    let validator = Validator::<Claims>::builder()
        .key(key)
        .build()
        .expect("a valid configuration");
    new_routes()
        .layer(
            UserRateLimitLayer::builder(PlanQuotas::new(Quota::per_second(
                std::num::NonZeroU32::MAX,
            )))
            .build()
            .expect("a valid configuration"),
        )
        .layer(JwtAuthLayer::new(validator))
        .layer(
            LockoutLayer::builder(LockoutPolicy::new())
                .build()
                .expect("a valid configuration"),
        )
}

fn peer(
    rt: &tokio::runtime::Runtime,
    builder: jwt_authorizer::AuthorizerBuilder<Claims>,
) -> old::Router {
    use jwt_authorizer::IntoLayer;
    let authorizer = rt.block_on(builder.build()).expect("a jwt-authorizer");
    old_routes().layer(authorizer.into_layer())
}

// ---- measurement ---------------------------------------------------------------------------

struct Settings {
    rounds: usize,
    block: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Nanoseconds per request of each router, one block each per round, in turn.
fn measure(
    rt: &tokio::runtime::Runtime,
    s: &Settings,
    routers: &[&Router],
    tokens: &[Option<String>],
) -> Vec<Vec<f64>> {
    let mut times = vec![Vec::with_capacity(s.rounds); routers.len()];
    // One warm-up block each.
    for r in routers {
        rt.block_on(r.run(tokens, 0, s.block));
    }
    for round in 0..s.rounds {
        // Alternate the order every round, so no router always runs right after another.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..routers.len()).collect()
        } else {
            (0..routers.len()).rev().collect()
        };
        for i in order {
            let start = Instant::now();
            rt.block_on(routers[i].run(tokens, round * s.block, s.block));
            times[i].push(start.elapsed().as_nanos() as f64 / s.block as f64);
        }
    }
    times
}

/// The median over rounds of `a - b`, round by round.
fn added(a: &[f64], b: &[f64]) -> f64 {
    median(a.iter().zip(b).map(|(a, b)| a - b).collect())
}

struct Row {
    path: &'static str,
    ours: f64,
    peer: Option<f64>,
}

fn print(rows: &[Row]) {
    println!();
    println!("| path | tower-jwt-guard adds | jwt-authorizer adds | ours / peer |");
    println!("|---|---:|---:|---:|");
    for r in rows {
        let (peer, ratio) = match r.peer {
            Some(p) => (format!("{p:.0} ns"), format!("{:.2}", r.ours / p)),
            None => ("–".into(), "–".into()),
        };
        println!("| {} | {:.0} ns | {peer} | {ratio} |", r.path, r.ours);
    }
}

/// Whether `path` runs: every path, or with `ONLY=text` those whose name contains `text`.
fn selected(path: &str) -> bool {
    std::env::var("ONLY").map_or(true, |only| path.contains(only.as_str()))
}

/// One path: the four routers (bare axum 0.8, ours, bare axum 0.7, jwt-authorizer) in the same
/// rounds, each guard's added cost taken round by round against its own bare router.
fn compare(
    rt: &tokio::runtime::Runtime,
    s: &Settings,
    path: &'static str,
    routers: (&Router, &Router),
    tokens: &[Option<String>],
    expect: u16,
) -> Option<Row> {
    let (ours, peer) = routers;
    if !selected(path) {
        return None;
    }
    let new_bare = Router::New(new_routes());
    let old_bare = Router::Old(old_routes());
    // Every router answers as expected before anything is timed.
    assert_eq!(rt.block_on(ours.run(tokens, 0, 1)), expect, "{path}: ours");
    assert_eq!(rt.block_on(peer.run(tokens, 0, 1)), expect, "{path}: peer");
    let t = measure(rt, s, &[&new_bare, ours, &old_bare, peer], tokens);
    let row = Row {
        path,
        ours: added(&t[1], &t[0]),
        peer: Some(added(&t[3], &t[2])),
    };
    eprintln!(
        "{path}: bare axum 0.8 {:.0} ns, bare axum 0.7 {:.0} ns; ours +{:.0} ns, jwt-authorizer +{:.0} ns",
        median(t[0].clone()),
        median(t[2].clone()),
        row.ours,
        row.peer.unwrap_or(0.0)
    );
    Some(row)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this binary without it (a
    // debug build): a smoke then, as with `--quick`.
    let quick = !std::env::args().any(|a| a == "--bench")
        || std::env::args().any(|a| a == "--quick")
        || std::env::var_os("QUICK").is_some();
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let s = if quick {
        Settings {
            rounds: 5,
            block: 200,
        }
    } else {
        Settings {
            rounds: env("ROUNDS", 41),
            block: env("BLOCK", 2_000),
        }
    };
    tower_jwt_guard::crypto::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    use jsonwebtoken::{Algorithm, EncodingKey};
    let hs = EncodingKey::from_secret(SECRET.as_bytes()).expect("hmac key");
    let valid = sign(Algorithm::HS256, &claims(0), &hs);
    let forged = sign(
        Algorithm::HS256,
        &claims(0),
        &EncodingKey::from_secret(OTHER_SECRET.as_bytes()).expect("hmac key"),
    );
    let distinct: Vec<Option<String>> = (0..4 * tower_jwt_guard::auth::DEFAULT_VERIFIED_CACHE
        as u64)
        .map(|i| Some(sign(Algorithm::HS256, &claims(i), &hs)))
        .collect();
    let rs = sign(
        Algorithm::RS256,
        &claims(0),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("rsa key"),
    );
    let es = sign(
        Algorithm::ES256,
        &claims(0),
        &EncodingKey::from_ec_pem(EC_PRIVATE).expect("ec key"),
    );
    eprintln!(
        "auth peer bench: backend {}, HS256 token {} bytes, {} rounds of {} requests",
        tower_jwt_guard::crypto::backend_name(),
        valid.len(),
        s.rounds,
        s.block
    );
    let one = |t: &str| vec![Some(t.to_owned())];

    let hmac = || Key::hmac(SECRET).expect("a 32+ byte secret");
    let ours_cached = Router::New(ours(hmac(), true));
    let ours_uncached = Router::New(ours(hmac(), false));
    let ours_full = Router::New(ours_stack(hmac()));
    let peer_hs = Router::Old(peer(
        &rt,
        jwt_authorizer::JwtAuthorizer::from_secret(SECRET),
    ));
    let rsa_pem = std::str::from_utf8(RSA_PUBLIC).expect("PEM");
    let ec_pem = std::str::from_utf8(EC_PUBLIC).expect("PEM");
    let ours_rs = Router::New(ours(Key::rsa_pem(RSA_PUBLIC).expect("rsa key"), true));
    let ours_es = Router::New(ours(Key::ec_pem(EC_PUBLIC).expect("ec key"), true));
    let peer_rs = Router::Old(peer(
        &rt,
        jwt_authorizer::JwtAuthorizer::from_rsa_pem_text(rsa_pem),
    ));
    let peer_es = Router::Old(peer(
        &rt,
        jwt_authorizer::JwtAuthorizer::from_ec_pem_text(ec_pem),
    ));

    let mut rows: Vec<Row> = [
        compare(
            &rt,
            &s,
            "valid token, repeated (cache hit)",
            (&ours_cached, &peer_hs),
            &one(&valid),
            200,
        ),
        compare(
            &rt,
            &s,
            "valid token, first use (cache off)",
            (&ours_uncached, &peer_hs),
            &one(&valid),
            200,
        ),
        compare(
            &rt,
            &s,
            "valid tokens, 4 096 distinct (cache full)",
            (&ours_cached, &peer_hs),
            &distinct,
            200,
        ),
        compare(
            &rt,
            &s,
            "lockout + auth + rate limit, valid token, repeated",
            (&ours_full, &peer_hs),
            &one(&valid),
            200,
        ),
        compare(
            &rt,
            &s,
            "missing token",
            (&ours_cached, &peer_hs),
            &[None],
            401,
        ),
        compare(
            &rt,
            &s,
            "bad signature",
            (&ours_cached, &peer_hs),
            &one(&forged),
            401,
        ),
        compare(
            &rt,
            &s,
            "RS256, repeated",
            (&ours_rs, &peer_rs),
            &one(&rs),
            200,
        ),
        compare(
            &rt,
            &s,
            "ES256, repeated",
            (&ours_es, &peer_es),
            &one(&es),
            200,
        ),
    ]
    .into_iter()
    .flatten()
    .collect();

    // The full stack against the auth layer alone, in the same rounds: as one layer, and as
    // three `Router::layer` calls.
    let path = "full stack minus auth alone, valid token, repeated";
    if selected(path) {
        let new_bare = Router::New(new_routes());
        let ours_three = Router::New(ours_stack_routers(hmac()));
        let t = measure(
            &rt,
            &s,
            &[&new_bare, &ours_cached, &ours_full, &ours_three],
            &one(&valid),
        );
        rows.push(Row {
            path,
            ours: added(&t[2], &t[1]),
            peer: None,
        });
        rows.push(Row {
            path: "full stack minus auth alone, three Router::layer calls",
            ours: added(&t[3], &t[1]),
            peer: None,
        });
    }

    print(&rows);
}
