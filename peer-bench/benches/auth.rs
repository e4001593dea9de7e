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
//! the number of rounds, 101 by default, and requests per block, 2 000). `--quick` (or
//! `QUICK=1`, or `cargo test --benches`) runs 5 rounds of 200 requests, a smoke for CI; `ONLY=text` runs the paths whose
//! name contains `text` (for a profiler).

use std::time::Instant;

mod shared;

use shared::*;
use tower_jwt_guard::keys::Key;

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
    /// Each router's whole time per request (median), for the refusals-per-second figures.
    totals: Option<(f64, f64)>,
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
    println!();
    println!(
        "| refused, whole request through the router, one core | tower-jwt-guard | jwt-authorizer |"
    );
    println!("|---|---:|---:|");
    for r in rows.iter().filter(|r| r.path.starts_with("random")) {
        if let Some((ours, peer)) = r.totals {
            println!(
                "| {} | {:.0} /s | {:.0} /s |",
                r.path,
                1e9 / ours,
                1e9 / peer
            );
        }
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
        totals: Some((median(t[1].clone()), median(t[3].clone()))),
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
            rounds: env("ROUNDS", 101),
            block: env("BLOCK", 2_000),
        }
    };
    tower_jwt_guard::crypto::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    let paths = shared::paths(&rt);
    eprintln!(
        "auth peer bench: backend {}, HS256 token {} bytes, {} rounds of {} requests",
        tower_jwt_guard::crypto::backend_name(),
        paths[0].tokens[0].as_deref().map_or(0, str::len),
        s.rounds,
        s.block
    );
    let mut rows: Vec<Row> = paths
        .iter()
        .filter_map(|p| compare(&rt, &s, p.name, (&p.ours, &p.peer), &p.tokens, p.expect))
        .collect();
    let valid = paths[0].tokens.clone();
    let hmac = || Key::hmac(SECRET).expect("a 32+ byte secret");
    let ours_cached = Router::New(ours(hmac(), true));
    let ours_full = Router::New(ours_stack(hmac()));

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
            &valid,
        );
        rows.push(Row {
            path,
            ours: added(&t[2], &t[1]),
            peer: None,
            totals: None,
        });
        rows.push(Row {
            path: "full stack minus auth alone, three Router::layer calls",
            ours: added(&t[3], &t[1]),
            peer: None,
            totals: None,
        });
    }

    print(&rows);
}
