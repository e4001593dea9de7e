//! Arbitrary `X-Forwarded-For` / `Forwarded` / `X-Real-IP` values (any bytes a header may hold)
//! and peers against a trusted proxy set.
//!
//! Properties, besides "no panic": an untrusted peer is always its own client; the result is the
//! peer or an address written in the header; a trusted proxy's address is never the client
//! while an untrusted hop stands among the 32 right-most, right of every unreadable one; for `X-Forwarded-For`
//! (the default), the result is exactly the documented rule written out: the right-most
//! untrusted hop, reading from the right at most 32 hops, the peer when a hop on the way is
//! not an address, the left-most hop when all are trusted.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tower_jwt_guard::client_ip::{ClientIpResolver, ProxyHeader};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (selector, rest) = (data[0], &data[1..]);
    let peer = match selector & 3 {
        0 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, rest[0])),
        1 => IpAddr::V4(Ipv4Addr::new(203, 0, 113, rest[0])),
        2 => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(rest[0]))),
        _ => IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            0,
            u16::from(rest[0]),
        )),
    };
    let header = match (selector >> 2) % 3 {
        0 => ProxyHeader::XForwardedFor,
        1 => ProxyHeader::Forwarded,
        _ => ProxyHeader::XRealIp,
    };
    let name = match header {
        ProxyHeader::XForwardedFor => "x-forwarded-for",
        ProxyHeader::Forwarded => "forwarded",
        _ => "x-real-ip",
    };
    let resolver = ClientIpResolver::new()
        .trusted_proxies(["10.0.0.0/8", "fd00::/8"])
        .unwrap()
        .proxy_header(header);
    let mut headers = HeaderMap::new();
    let text = String::from_utf8_lossy(&rest[1..]);
    for line in rest[1..].split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(name, value);
        }
    }
    let client = resolver.client_ip(peer, &headers);
    if !resolver.is_trusted(peer) {
        assert_eq!(client, peer, "an untrusted peer is its own client");
    }
    // Every address written in the header, however it is quoted or bracketed.
    let written: Vec<IpAddr> = text
        .split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .flat_map(|run| [run, run.rsplit_once(':').map_or(run, |(host, _)| host)])
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    assert!(
        client == peer.to_canonical() || written.contains(&client),
        "an address neither the peer nor in the header"
    );
    if resolver.is_trusted(peer) && header != ProxyHeader::XRealIp {
        // The hops as written, from the right, up to the first that is not an address, and at
        // most the 32 that are examined.
        let hops = hops(&headers, name, header);
        let readable: Vec<IpAddr> = hops.iter().rev().take(32).map_while(|h| *h).collect();
        if readable.iter().any(|ip| !resolver.is_trusted(*ip)) {
            assert!(
                !resolver.is_trusted(client),
                "a trusted proxy's address behind an untrusted hop"
            );
        }
        if header == ProxyHeader::XForwardedFor {
            assert_eq!(
                client,
                xff_rule(&resolver, peer, &headers),
                "the X-Forwarded-For rule"
            );
        }
    }
});

/// One node as the forwarding headers write it: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`,
/// `[::1]:80`, optionally quoted.
fn node(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            s.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })
        .map(|ip| ip.to_canonical())
}

/// Every hop of every value, left to right (`None`: not an address, or not UTF-8). Each hop is
/// read on its own. `Forwarded` hops are the `for=` of each element.
fn hops(headers: &HeaderMap, name: &str, header: ProxyHeader) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all(name) {
        for element in value.as_bytes().split(|&b| b == b',') {
            let Ok(element) = std::str::from_utf8(element) else {
                hops.push(None);
                continue;
            };
            hops.push(match header {
                ProxyHeader::Forwarded => element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| node(v))
                        .flatten()
                }),
                _ => node(element),
            });
        }
    }
    hops
}

fn xff_rule(resolver: &ClientIpResolver, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let peer = peer.to_canonical();
    let hops = hops(headers, "x-forwarded-for", ProxyHeader::XForwardedFor);
    if hops.is_empty() {
        return peer;
    }
    for hop in hops.iter().rev().take(32) {
        match hop {
            None => return peer,
            Some(ip) if !resolver.is_trusted(*ip) => return *ip,
            Some(_) => {}
        }
    }
    if hops.len() <= 32 {
        hops[0].unwrap()
    } else {
        peer
    }
}
