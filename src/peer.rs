//! The connection's peer address, as the server knows it.
//!
//! hyper does not put the peer address in the request; servers do, each in its own way. This
//! crate reads, in order:
//! - [`PeerAddr`], which a bare hyper server inserts itself (see below);
//! - axum's `ConnectInfo<SocketAddr>` (feature `axum`), present when the app is served with
//!   `into_make_service_with_connect_info::<SocketAddr>()`;
//! - tonic's `TcpConnectInfo` (feature `tonic`) and `TlsConnectInfo<TcpConnectInfo>` (feature
//!   `tonic-tls`), which tonic's server puts in every request: with `Server::builder().layer(…)`
//!   the lockout sees the real peer without any extra layer.
//!
//! With bare hyper, wrap the service per connection:
//!
//! ```no_run
//! # use std::net::SocketAddr;
//! # use tower_jwt_guard::peer::PeerAddr;
//! # fn per_connection(peer: SocketAddr, mut req: http::Request<()>) {
//! req.extensions_mut().insert(PeerAddr(peer));
//! # }
//! ```
//!
//! The address is used for audit events here, and by the lockout layer
//! ([`client_ip`](crate::client_ip) decides when forwarding headers may override it). Proxy
//! headers are never read by this module.

use std::net::SocketAddr;

use http::Extensions;

/// The TCP peer address of the connection a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// The peer address recorded in `extensions`, if any.
pub fn peer_addr(extensions: &Extensions) -> Option<SocketAddr> {
    if let Some(PeerAddr(addr)) = extensions.get::<PeerAddr>() {
        return Some(*addr);
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*addr);
    }
    #[cfg(feature = "tonic")]
    {
        use tonic::transport::server::TcpConnectInfo;
        if let Some(addr) = extensions
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
        {
            return Some(addr);
        }
    }
    #[cfg(feature = "tonic-tls")]
    {
        use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
        if let Some(addr) = extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.get_ref().remote_addr())
        {
            return Some(addr);
        }
    }
    None
}
