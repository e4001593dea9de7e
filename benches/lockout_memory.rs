//! Bytes per tracked address in the in-memory lockout store, measured with a counting
//! allocator: the heap growth of a store holding 100 000 failing addresses, divided by 100 000.
//!
//! `cargo bench --bench lockout_memory`

use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower_jwt_guard::client_ip::IpKey;
use tower_jwt_guard::lockout::{LockoutPolicy, LockoutStore, MemoryLockoutStore};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn measure(label: &str, n: u32, make: impl Fn(u32) -> IpKey) {
    // Room to spare: the store is sharded, and a shard that fills before the others would send
    // the last addresses to prefix counting instead of tracking them.
    let policy = LockoutPolicy::new().capacity(2 * n as usize);
    let now = Duration::from_secs(1_700_000_000);
    let region = Region::new(GLOBAL);
    let store = MemoryLockoutStore::new(policy.tracked_capacity());
    for i in 0..n {
        store
            .record_failure(make(i), now, &policy)
            .into_inner()
            .unwrap();
    }
    let change = region.change();
    let live = change.bytes_allocated as i64 - change.bytes_deallocated as i64
        + change.bytes_reallocated as i64;
    assert_eq!(store.len(), n as usize);
    println!(
        "{label}: {n} tracked addresses, {live} bytes live, {:.1} bytes per address",
        live as f64 / f64::from(n)
    );
    drop(store);
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    measure("ipv4", 100_000, |i| {
        IpKey::new(IpAddr::V4(Ipv4Addr::from(i)), 64)
    });
    measure("ipv6 /64", 100_000, |i| {
        IpKey::new(IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64)), 64)
    });
    measure("ipv4 (10 000)", 10_000, |i| {
        IpKey::new(IpAddr::V4(Ipv4Addr::from(i)), 64)
    });
}
