//! Arbitrary `X-Forwarded-For` / `Forwarded` / `X-Real-IP` values and peers against a trusted
//! proxy set. Properties: no panic; the result is the peer or an address written in the header;
//! an untrusted peer is always its own client.
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
    for line in text.split('\n') {
        if let Ok(value) = HeaderValue::from_str(line) {
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
});
