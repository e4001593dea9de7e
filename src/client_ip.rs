//! Which IP address a request comes from, honestly.
//!
//! By default only the TCP peer address counts ([`peer`](crate::peer) says how each server
//! provides it). A proxy header is read **only when the peer is a proxy you configured as
//! trusted**, and only **the one header that proxy sets** ([`ClientIpResolver::proxy_header`]:
//! `X-Forwarded-For` by default, or `Forwarded` (RFC 7239), or `X-Real-IP`): a proxy passes the
//! headers it does not set through untouched, so reading any other one would let the client
//! choose its own address. In the header, the right-most address that is not itself a trusted
//! proxy is the client. A client that sends its own `X-Forwarded-For` to a server with no
//! trusted proxy changes nothing.
//!
//! A header that cannot be parsed never hides the client: the peer address is used instead.
//! IPv4-mapped IPv6 addresses count as IPv4. IPv6 clients are grouped by prefix (default /64)
//! into one [`IpKey`], since one host usually owns a whole /64 and could otherwise rotate through
//! it.
//!
//! ```
//! use std::net::IpAddr;
//! use http::HeaderMap;
//! use tower_jwt_guard::client_ip::ClientIpResolver;
//!
//! let resolver = ClientIpResolver::new().trusted_proxies(["10.0.0.0/8"])?;
//! let mut headers = HeaderMap::new();
//! headers.insert("x-forwarded-for", "198.51.100.7, 203.0.113.9, 10.0.0.2".parse().unwrap());
//!
//! // Through the trusted proxy 10.0.0.1: the right-most untrusted address is the client.
//! let peer: IpAddr = "10.0.0.1".parse().unwrap();
//! assert_eq!(resolver.client_ip(peer, &headers), "203.0.113.9".parse::<IpAddr>().unwrap());
//!
//! // Straight from the internet: the header is ignored.
//! let peer: IpAddr = "192.0.2.1".parse().unwrap();
//! assert_eq!(resolver.client_ip(peer, &headers), peer);
//! # Ok::<(), tower_jwt_guard::ConfigError>(())
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::header::FORWARDED;
use http::{HeaderMap, HeaderName};
use ipnet::IpNet;

use crate::error::ConfigError;

/// At most this many addresses are examined from the right of a forwarding header.
const MAX_HOPS: usize = 32;

/// The default IPv6 grouping prefix.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// The proxy header the resolver reads (only behind trusted proxies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyHeader {
    /// `Forwarded: for=...` (RFC 7239).
    Forwarded,
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    XForwardedFor,
    /// `X-Real-IP: client` (one address, set by the proxy).
    XRealIp,
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// A client address as a lockout or rate-limit key: IPv4 as is, IPv6 cut to its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpKey(IpAddr);

impl IpKey {
    /// The key of `ip` with IPv6 grouped by `/ipv6_prefix` (IPv4-mapped addresses become IPv4).
    pub fn new(ip: IpAddr, ipv6_prefix: u8) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
                Self(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)))
            }
        }
    }

    /// The (grouped) address.
    pub fn ip(&self) -> IpAddr {
        self.0
    }

    /// The wider prefix this key belongs to: the /24 of an IPv4 address, the /48 of an IPv6
    /// one (the common end-site allocation). The lockout counts failures against it when its
    /// store is full.
    pub fn wider(&self) -> IpKey {
        match self.0 {
            IpAddr::V4(v4) => Self(IpAddr::V4(Ipv4Addr::from(u32::from(v4) & !0xff))),
            IpAddr::V6(v6) => Self(IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & (u128::MAX << 80),
            ))),
        }
    }
}

impl fmt::Display for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}"),
        }
    }
}

/// Resolves the client address from the peer address and, behind trusted proxies, the
/// forwarding headers. Build it once; layers keep it behind an `Arc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIpResolver {
    trusted: Vec<IpNet>,
    header: ProxyHeader,
    ipv6_prefix: u8,
}

impl Default for ClientIpResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientIpResolver {
    /// Peer address only; no proxy is trusted.
    pub fn new() -> Self {
        Self {
            trusted: Vec::new(),
            header: ProxyHeader::XForwardedFor,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }

    /// Trusts the proxies in these CIDRs (or single addresses), e.g. `["10.0.0.0/8", "::1"]`.
    ///
    /// # Errors
    /// When an entry is neither an address nor a CIDR.
    pub fn trusted_proxies<I, S>(mut self, cidrs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for cidr in cidrs {
            self.trusted.push(parse_net(cidr.as_ref())?);
        }
        Ok(self)
    }

    /// The one header your trusted proxies set (default `X-Forwarded-For`). Only that header
    /// is read: a client's own copy of another header would pass through the proxy untouched.
    pub fn proxy_header(mut self, header: ProxyHeader) -> Self {
        self.header = header;
        self
    }

    /// The IPv6 grouping prefix length (default 64; 128 groups nothing).
    ///
    /// # Errors
    /// When `len` is over 128.
    pub fn ipv6_prefix(mut self, len: u8) -> Result<Self, ConfigError> {
        if len > 128 {
            return Err(ConfigError::new("an IPv6 prefix is at most 128 bits"));
        }
        self.ipv6_prefix = len;
        Ok(self)
    }

    /// Whether any proxy is trusted.
    pub fn trusts_proxies(&self) -> bool {
        !self.trusted.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client address for a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        let found = match self.header {
            ProxyHeader::Forwarded => self.walk(headers, &FORWARDED, forwarded_for),
            ProxyHeader::XForwardedFor => self.walk(headers, &X_FORWARDED_FOR, parse_node),
            ProxyHeader::XRealIp => real_ip(headers),
        };
        match found {
            Hop::Client(ip) => ip,
            Hop::Absent | Hop::Malformed => peer,
        }
    }

    /// The grouped key for a request from `peer` with `headers`.
    pub fn client_key(&self, peer: IpAddr, headers: &HeaderMap) -> IpKey {
        IpKey::new(self.client_ip(peer, headers), self.ipv6_prefix)
    }

    /// The key of an already resolved address.
    pub fn key_of(&self, ip: IpAddr) -> IpKey {
        IpKey::new(ip, self.ipv6_prefix)
    }

    /// Walks a list header from the right, skipping trusted proxies, without collecting it.
    ///
    /// Each hop is read on its own, so bytes that are not visible ASCII in a hop to the left of
    /// the client's (written by the client, before the proxies appended theirs) cannot make the
    /// header unreadable: that would let a client behind a proxy be counted as the proxy.
    fn walk(
        &self,
        headers: &HeaderMap,
        name: &HeaderName,
        parse: impl Fn(&str) -> Option<IpAddr>,
    ) -> Hop {
        let mut seen = 0;
        let mut leftmost = None;
        for value in headers.get_all(name).iter().rev() {
            for hop in value.as_bytes().rsplit(|&b| b == b',') {
                if seen == MAX_HOPS {
                    // Every hop examined is a trusted proxy, and there are more.
                    return Hop::Malformed;
                }
                seen += 1;
                let Some(ip) = std::str::from_utf8(hop).ok().and_then(&parse) else {
                    return Hop::Malformed;
                };
                let ip = ip.to_canonical();
                if !self.is_trusted(ip) {
                    return Hop::Client(ip);
                }
                leftmost = Some(ip);
            }
        }
        // Every hop is a trusted proxy: the first one is the closest thing to a client.
        leftmost.map_or(Hop::Absent, Hop::Client)
    }
}

enum Hop {
    Absent,
    Client(IpAddr),
    Malformed,
}

/// An address or CIDR from configuration (an address is its own /32 or /128).
pub(crate) fn parse_net(s: &str) -> Result<IpNet, ConfigError> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| ConfigError::new(format!("{s:?} is not an IP address or CIDR")))
}

/// One node of a forwarding header: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:80`.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = s.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    s.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

/// The `for=` node of one element of a `Forwarded` header; `None` for an element without a
/// usable `for` (including `unknown` and obfuscated identifiers).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(v))
            .flatten()
    })
}

fn real_ip(headers: &HeaderMap) -> Hop {
    let mut values = headers.get_all(X_REAL_IP).iter();
    let Some(value) = values.next() else {
        return Hop::Absent;
    };
    if values.next().is_some() {
        return Hop::Malformed;
    }
    match value.to_str().ok().and_then(parse_node) {
        Some(ip) => Hop::Client(ip.to_canonical()),
        None => Hop::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    fn behind_proxy() -> ClientIpResolver {
        ClientIpResolver::new()
            .trusted_proxies(["10.0.0.0/8", "fd00::/8"])
            .unwrap()
    }

    #[test]
    fn untrusted_peer_ignores_every_header() {
        let r = ClientIpResolver::new();
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-real-ip", "2.2.2.2"),
            ("forwarded", "for=3.3.3.3"),
        ]);
        assert_eq!(r.client_ip(ip("192.0.2.9"), &h), ip("192.0.2.9"));
        assert_eq!(
            behind_proxy().client_ip(ip("192.0.2.9"), &h),
            ip("192.0.2.9")
        );
    }

    #[test]
    fn rightmost_untrusted_wins() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 7.7.7.7"),
            ("x-forwarded-for", "10.1.1.1"),
        ]);
        assert_eq!(behind_proxy().client_ip(ip("10.0.0.1"), &h), ip("7.7.7.7"));
    }

    #[test]
    fn all_trusted_chain_gives_leftmost() {
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(behind_proxy().client_ip(ip("10.0.0.1"), &h), ip("10.9.9.9"));
    }

    #[test]
    fn forwarded_header_with_ports_quotes_and_v6() {
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, For=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1",
        )]);
        let r = behind_proxy().proxy_header(ProxyHeader::Forwarded);
        assert_eq!(r.client_ip(ip("10.0.0.1"), &h), ip("2001:db8:cafe::17"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // A proxy that sets X-Forwarded-For passes a client's own Forwarded through.
        let h = headers(&[("forwarded", "for=1.1.1.1"), ("x-forwarded-for", "2.2.2.2")]);
        assert_eq!(behind_proxy().client_ip(ip("10.0.0.1"), &h), ip("2.2.2.2"));
        let fwd = behind_proxy().proxy_header(ProxyHeader::Forwarded);
        assert_eq!(fwd.client_ip(ip("10.0.0.1"), &h), ip("1.1.1.1"));
        let only_forwarded = headers(&[("forwarded", "for=1.1.1.1")]);
        assert_eq!(
            behind_proxy().client_ip(ip("10.0.0.1"), &only_forwarded),
            ip("10.0.0.1"),
            "the configured header is absent: the peer counts"
        );
    }

    #[test]
    fn x_real_ip() {
        let r = behind_proxy().proxy_header(ProxyHeader::XRealIp);
        let h = headers(&[("x-real-ip", "5.5.5.5")]);
        assert_eq!(r.client_ip(ip("10.0.0.1"), &h), ip("5.5.5.5"));
        let h = headers(&[("x-real-ip", "5.5.5.5"), ("x-real-ip", "6.6.6.6")]);
        assert_eq!(r.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn malformed_headers_fall_back_to_peer() {
        for r in [
            behind_proxy(),
            behind_proxy().proxy_header(ProxyHeader::Forwarded),
        ] {
            for value in [
                "",
                "not-an-ip",
                "1.1.1.1, garbage",
                "for=unknown",
                "999.1.1.1",
                ",,,",
            ] {
                let mut h = HeaderMap::new();
                h.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
                h.insert("forwarded", HeaderValue::from_str(value).unwrap());
                assert_eq!(r.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"), "{value:?}");
            }
        }
        let r = behind_proxy();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff1.1.1.1").unwrap(),
        );
        assert_eq!(r.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    /// Found by the client_ip fuzz target: bytes that are not visible ASCII in a hop the client
    /// wrote made the whole header unreadable, so the client was counted as its proxy.
    #[test]
    fn a_non_ascii_hop_left_of_the_client_is_never_read() {
        for r in [
            behind_proxy(),
            behind_proxy().proxy_header(ProxyHeader::Forwarded),
        ] {
            let mut h = HeaderMap::new();
            // One value, the proxy appending to what the client sent; and two values.
            h.insert(
                "x-forwarded-for",
                HeaderValue::from_bytes(b"\xff1.1.1.1, 203.0.113.9").unwrap(),
            );
            h.insert(
                "forwarded",
                HeaderValue::from_bytes(b"for=\xff, for=203.0.113.9").unwrap(),
            );
            assert_eq!(r.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.9"));
            h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.7"));
            h.append("forwarded", HeaderValue::from_static("for=10.0.0.7"));
            assert_eq!(r.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        }
    }

    #[test]
    fn too_many_trusted_hops_fall_back_to_peer() {
        let chain = vec!["10.0.0.2"; MAX_HOPS + 1].join(", ");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(&chain).unwrap());
        assert_eq!(behind_proxy().client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn ipv6_grouped_by_prefix_and_mapped_v4_canonical() {
        let a = IpKey::new(ip("2001:db8:1:2:aaaa::1"), 64);
        let b = IpKey::new(ip("2001:db8:1:2:ffff::9"), 64);
        let c = IpKey::new(ip("2001:db8:1:3::1"), 64);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(IpKey::new(ip("::ffff:192.0.2.1"), 64).ip(), ip("192.0.2.1"));
        assert_eq!(IpKey::new(ip("2001:db8::1"), 128).ip(), ip("2001:db8::1"));
        assert_eq!(IpKey::new(ip("2001:db8::1"), 0).ip(), ip("::"));
    }

    #[test]
    fn bad_cidr_is_a_config_error() {
        assert!(
            ClientIpResolver::new()
                .trusted_proxies(["10.0.0.0/33"])
                .is_err()
        );
        assert!(ClientIpResolver::new().trusted_proxies(["nope"]).is_err());
        assert!(ClientIpResolver::new().ipv6_prefix(129).is_err());
    }
}
