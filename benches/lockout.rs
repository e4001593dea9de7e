//! The per-request cost of the lockout layer: resolving the client key and checking the store
//! for an unlocked address, and recording a failure; the same with the store full of locked
//! addresses (`lockout_store_full`).
//!
//! `cargo bench --bench lockout`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Request, Response};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_jwt_guard::client_ip::{ClientIpResolver, IpKey};
use tower_jwt_guard::lockout::{LockoutLayer, LockoutPolicy, LockoutStore, MemoryLockoutStore};
use tower_jwt_guard::peer::PeerAddr;

fn key(n: u32) -> IpKey {
    IpKey::new(IpAddr::V4(Ipv4Addr::from(n)), 64)
}

fn check(c: &mut Criterion) {
    let policy = LockoutPolicy::new();
    let now = Duration::from_secs(1_700_000_000);
    let resolver = ClientIpResolver::new();
    let headers = HeaderMap::new();
    let peer: IpAddr = "198.51.100.7".parse().unwrap();

    let mut group = c.benchmark_group("lockout_check");
    for tracked in [0u32, 100_000] {
        let store = MemoryLockoutStore::new(200_000);
        for n in 0..tracked {
            store
                .record_failure(key(n), now, &policy)
                .into_inner()
                .unwrap();
        }
        group.bench_function(format!("unlocked_ip_untracked/{tracked}_tracked"), |b| {
            b.iter(|| {
                let k = resolver.client_key(black_box(peer), &headers);
                black_box(store.check_now(k, now))
            })
        });
        if tracked > 0 {
            group.bench_function(
                format!("unlocked_ip_with_failures/{tracked}_tracked"),
                |b| {
                    let k = key(tracked / 2);
                    b.iter(|| black_box(store.check_now(black_box(k), now)))
                },
            );
        }
    }
    group.finish();

    let mut group = c.benchmark_group("lockout_record_failure");
    let store = MemoryLockoutStore::new(200_000);
    let mut n = 0u32;
    group.bench_function("distinct_ips_100k_cycle", |b| {
        b.iter(|| {
            n = (n + 1) % 100_000;
            black_box(store.record_failure(key(n), now, &policy).into_inner())
        })
    });
    group.finish();

    // The store full of locked addresses (100 000, its capacity), as after a distributed brute
    // force: what one more failure from a new address costs, and a check of a new address.
    let mut group = c.benchmark_group("lockout_store_full");
    let full = MemoryLockoutStore::new(100_000);
    for n in 0..100_000u32 {
        for _ in 0..5 {
            full.record_failure(key(n), now, &policy)
                .into_inner()
                .unwrap();
        }
    }
    let mut m = 0u32;
    group.bench_function("record_failure_new_address", |b| {
        b.iter(|| {
            m = m.wrapping_add(1);
            // Addresses from 10.0.0.0 on, never tracked before.
            black_box(
                full.record_failure(key(0x0a00_0000 + m), now, &policy)
                    .into_inner(),
            )
        })
    });
    group.bench_function("check_new_address", |b| {
        let k = key(0xc633_6407);
        b.iter(|| black_box(full.check_now(black_box(k), now)))
    });
    group.bench_function("check_locked_address", |b| {
        let k = key(50_000);
        b.iter(|| black_box(full.check_now(black_box(k), now)))
    });
    group.finish();
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bare = tower::service_fn(|_req: Request<()>| async {
        Ok::<_, std::convert::Infallible>(Response::new(()))
    });
    let layered = ServiceBuilder::new()
        .layer(LockoutLayer::builder(LockoutPolicy::new()).build().unwrap())
        .service(bare);
    let peer = PeerAddr(SocketAddr::from(([198, 51, 100, 7], 40000)));

    let mut group = c.benchmark_group("lockout_layer");
    group.bench_function("bare_service", |b| {
        b.to_async(&rt).iter(|| {
            let mut req = Request::new(());
            req.extensions_mut().insert(peer);
            bare.oneshot(req)
        })
    });
    group.bench_function("with_lockout_unlocked_ip", |b| {
        b.to_async(&rt).iter(|| {
            let mut req = Request::new(());
            req.extensions_mut().insert(peer);
            let mut svc = layered.clone();
            async move { svc.ready().await.unwrap().call(req).await }
        })
    });
    group.finish();
}

criterion_group!(benches, check, layer);
criterion_main!(benches);
