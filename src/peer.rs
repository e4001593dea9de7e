//! The connection's peer address, as the server knows it.
//!
//! hyper does not put the peer address in the request; servers do, each in its own way. This
//! crate reads, in order:
//! - [`PeerAddr`], which a bare hyper server inserts itself (see below);
//! - axum's `ConnectInfo<SocketAddr>` (feature `axum`), present when the app is served with
//!   `into_make_service_with_connect_info::<SocketAddr>()`.
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
//! With tonic, the transport puts its `TcpConnectInfo` in the request's extensions; copy the
//! address into a [`PeerAddr`] with a small map layer placed before this crate's layers:
//!
//! ```ignore
//! use tonic::transport::server::TcpConnectInfo;
//! let copy_peer = tower::util::MapRequestLayer::new(|mut req: http::Request<_>| {
//!     if let Some(addr) = req.extensions().get::<TcpConnectInfo>().and_then(|i| i.remote_addr()) {
//!         req.extensions_mut().insert(PeerAddr(addr));
//!     }
//!     req
//! });
//! Server::builder().layer(copy_peer).layer(lockout).layer(auth) // ...
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
    None
}
