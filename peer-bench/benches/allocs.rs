//! Heap allocations per request that each guard adds, on every path of the `auth` bench.
//!
//! The same routers, tokens and paths as `auth` (tower-jwt-guard on axum 0.8, jwt-authorizer
//! 0.15 on axum 0.7, each against its own bare router), with a counting global allocator
//! (`allocation-counter`, counting the calling thread): after a warm-up block, `n` requests
//! through each router, and the guard's figure is its router's allocations minus the bare
//! router's, divided by `n`. Allocations, not time: the figures do not depend on the machine's
//! load, and a change that adds one shows at once.
//!
//! Run: `cargo bench -p tower-jwt-guard-peer-bench --bench allocs` (a second or two; `N=n`
//! requests per router, 1 000 by default). Under `cargo test --benches` it runs the same, a
//! smoke of the counting.

mod shared;

use shared::*;

fn count(
    rt: &tokio::runtime::Runtime,
    router: &Router,
    tokens: &[Option<String>],
    n: usize,
) -> (f64, f64) {
    // Warm-up: caches filled, lazily built state built, every token seen once.
    rt.block_on(router.run(tokens, 0, n.max(tokens.len())));
    let info = allocation_counter::measure(|| {
        rt.block_on(router.run(tokens, 0, n));
    });
    (
        info.count_total as f64 / n as f64,
        info.bytes_total as f64 / n as f64,
    )
}

fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    tower_jwt_guard::crypto::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let new_bare = Router::New(new_routes());
    let old_bare = Router::Old(old_routes());
    // What axum's `Router::layer` costs by itself: a layer that passes the response through.
    let noop = Router::New(new_routes().layer(tower::util::MapResponseLayer::new(
        |r: axum::response::Response| r,
    )));
    let probe = vec![None];
    let (bare, _) = count(&rt, &new_bare, &probe, n);
    let (layered, _) = count(&rt, &noop, &probe, n);
    println!();
    println!(
        "axum's own cost of one Router::layer (a pass-through layer): {:.1} allocations per request",
        layered - bare
    );
    println!();
    println!("| path | tower-jwt-guard adds | jwt-authorizer adds |");
    println!("|---|---:|---:|");
    for path in paths(&rt) {
        assert_eq!(
            rt.block_on(path.ours.run(&path.tokens, 0, 1)),
            path.expect,
            "{}: ours",
            path.name
        );
        assert_eq!(
            rt.block_on(path.peer.run(&path.tokens, 0, 1)),
            path.expect,
            "{}: peer",
            path.name
        );
        let (bare_new, bare_new_bytes) = count(&rt, &new_bare, &path.tokens, n);
        let (ours, ours_bytes) = count(&rt, &path.ours, &path.tokens, n);
        let (bare_old, bare_old_bytes) = count(&rt, &old_bare, &path.tokens, n);
        let (peer, peer_bytes) = count(&rt, &path.peer, &path.tokens, n);
        println!(
            "| {} | {:.1} ({:.0} B) | {:.1} ({:.0} B) |",
            path.name,
            ours - bare_new,
            ours_bytes - bare_new_bytes,
            peer - bare_old,
            peer_bytes - bare_old_bytes
        );
    }
}
