//! WebSocket sessions through a real server (axum, and plain hyper) and a real WebSocket client
//! (tokio-tungstenite): every rejection in both modes, each token source, expiry and its
//! warning, re-authentication, connection limits, the registry (statistics, messages to a user,
//! revocation, slots freed when clients vanish) and `RateLimitedSocket`.
//!
//! Time moves with a FakeClock; sessions look at it every 20 ms. Clients bind their source
//! address (127.0.0.x) so that lockout tests can tell them apart.
#![cfg(all(feature = "axum", feature = "websocket"))]

#[path = "../common/mod.rs"]
mod common;
mod setup;

mod expiry;
mod hyper;
mod limits;
mod rate_limited;
mod registry;
mod rejections;
mod sources;
mod unattended;
